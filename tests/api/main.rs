//! Drawbridge end to end, against the real local PostgreSQL, Redis and RabbitMQ: one test
//! binary, one module per area. Every test starts its own isolated app with
//! [`drawbridge_test_support::spawn_app`] (or a sibling), so the tests of all areas run in
//! parallel in this one process; a few also run the `drawbridge` binary, see [`drawbridge`].

// Helpers outside #[test] functions unwrap too: in a test binary a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod allocator;
mod browser;
mod centres;
mod cli;
mod every_way_in;
mod faults;
mod flows;
mod gateway_api;
mod households;
mod me;
mod no_plaintext;
mod notifier_crashes;
mod notifier_delivery;
mod pages;
mod passes;
mod personal_data_at_rest;
mod pipeline;
mod redis_outage;
mod region_setup;
mod retention;
mod schema;
mod schema_invariants;
mod simulation;
mod sms_bill;
mod staff_pages;
mod verification;
mod waiting_room;

/// Runs the `drawbridge` binary Cargo built for these tests, from the repository root, with
/// `env` added and no RUST_LOG.
fn drawbridge(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    drawbridge_test_support::run_drawbridge(env!("CARGO_BIN_EXE_drawbridge"), args, env)
}

/// A fresh folder of simulation reports as the analysts' console reads it, `<region>/<name>/`
/// for each of `reports`: each a real run of the shipped small-county scenario at 2,000 people.
fn simulation_reports(reports: &[(&str, &str)]) -> std::path::PathBuf {
    let folder = std::env::temp_dir().join(format!("drawbridge-reports-{}", uuid::Uuid::new_v4()));
    for (region, name) in reports {
        let out = folder.join(region).join(name);
        let run = drawbridge(
            &[
                "simulate",
                "simulations/scenarios/small-county.toml",
                "--population",
                "2000",
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        );
        assert!(run.status.success(), "{run:?}");
    }
    folder
}
