//! The `drawbridge` binary as an operator meets it: bad configuration stops it with one line
//! saying what to fix, unreachable services are retried then reported, and the operator
//! commands work against a real database.

use std::path::Path;
use std::process::{Command, Output};

use drawbridge_test_support::{spawn_with, Components};
use uuid::Uuid;

use crate::drawbridge;

/// Exits non-zero with `error: ...` as the last line; returns that line.
fn fails(output: &Output) -> String {
    assert!(!output.status.success(), "expected failure, got {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("error: "), "last line of stderr: {stderr}");
    last
}

const CONFIG: &str = "deploy/local.toml";

#[test]
fn a_missing_config_file_is_named() {
    let line = fails(&drawbridge(&["--config", "nowhere.toml", "migrate"], &[]));
    assert!(line.contains("nowhere.toml does not exist"), "{line}");
}

#[test]
fn an_unknown_key_is_named() {
    let dir = std::env::temp_dir().join(format!("drawbridge-cli-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[gateway]\nport = 8080\n").unwrap();
    let line = fails(&drawbridge(&["--config", file.to_str().unwrap(), "gateway"], &[]));
    assert!(line.contains("unknown field") && line.contains("port"), "{line}");
    let stderr_lines =
        String::from_utf8_lossy(&drawbridge(&["--config", file.to_str().unwrap(), "gateway"], &[]).stderr)
            .lines()
            .count();
    assert_eq!(stderr_lines, 1, "one line");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_url_from_the_environment_is_named() {
    let line = fails(&drawbridge(
        &["--config", CONFIG, "migrate"],
        &[("DRAWBRIDGE_REDIS__URL", "http://localhost")],
    ));
    assert!(line.contains("redis.url") && line.contains("scheme"), "{line}");
}

#[test]
fn an_invalid_policy_names_the_field() {
    let dir = std::env::temp_dir().join(format!("drawbridge-cli-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/policies/bw.toml"))
            .unwrap()
            .replacen("{ min = 21, max = 42 }", "{ min = 42, max = 21 }", 1);
    assert!(
        broken.contains("{ min = 42, max = 21 }"),
        "the example policy changed; update this test"
    );
    let file = dir.join("policy.toml");
    std::fs::write(&file, broken).unwrap();
    let line = fails(&drawbridge(&["policy", "check", file.to_str().unwrap()], &[]));
    assert!(line.contains("vaccines[0].interval_days"), "{line}");
    let ok = drawbridge(&["policy", "check", "deploy/policies/bw.toml"], &[]);
    assert!(ok.status.success(), "{ok:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unreachable_database_is_retried_then_reported() {
    let output = drawbridge(
        &["--config", CONFIG, "migrate"],
        &[
            (
                "DRAWBRIDGE_DATABASE__URL",
                "postgres://postgres@127.0.0.1:1/drawbridge",
            ),
            ("DRAWBRIDGE_DATABASE__STARTUP_RETRY_SECONDS", "2"),
        ],
    );
    let line = fails(&output);
    assert!(
        line.contains("Postgres at postgres://127.0.0.1:1/drawbridge is not reachable"),
        "{line}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("retrying"),
        "retried with backoff first: {stderr}"
    );
}

#[test]
fn migrate_demo_and_one_allocator_tick_on_a_fresh_database() {
    let database = format!("drawbridge_test_cli_{}", Uuid::new_v4().simple());
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    let env = [
        ("DRAWBRIDGE_DATABASE__URL", url.as_str()),
        ("DRAWBRIDGE_ALLOCATOR__LISTEN", "127.0.0.1:0"),
    ];
    let migrate = drawbridge(&["--config", CONFIG, "migrate"], &env);
    assert!(migrate.status.success(), "{migrate:?}");
    for _ in 0..2 {
        let demo = drawbridge(&["--config", CONFIG, "demo"], &env);
        assert!(demo.status.success(), "{demo:?}");
    }
    let tick = drawbridge(
        &["--config", CONFIG, "allocator", "--once", "--region", "bw"],
        &env,
    );
    assert!(tick.status.success(), "{tick:?}");
    let ticks: serde_json::Value = serde_json::from_slice(&tick.stdout).expect("JSON on stdout");
    assert_eq!(ticks[0]["region"], "bw");
    assert_eq!(ticks[0]["ticked"], true);
    // Nobody is registered yet, so there is nothing to draw.
    assert_eq!(ticks[0]["draw"], serde_json::Value::Null);
    // Two runs of `demo` created one week of capacity, not two.
    assert_eq!(ticks[0]["free_pairs"], 5292);
    let drop = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qc",
            &format!("DROP DATABASE \"{database}\" WITH (FORCE)"),
        ])
        .status()
        .unwrap();
    assert!(drop.success());
}

#[tokio::test]
async fn a_one_shot_allocator_tick_runs_while_the_allocator_service_holds_its_port() {
    let app = spawn_with(
        Components {
            allocator: true,
            notifier: false,
        },
        |_| {},
    )
    .await;
    // The running allocator holds `allocator.listen`, as `drawbridge serve` holds 8081.
    let service = app.allocator_address.clone().unwrap();
    let held = service.trim_start_matches("http://");
    let env = [
        ("DRAWBRIDGE_DATABASE__URL", app.database_url()),
        ("DRAWBRIDGE_ALLOCATOR__LISTEN", held),
    ];
    let tick = drawbridge(&["--config", CONFIG, "allocator", "--once"], &env);
    assert!(tick.status.success(), "{}", String::from_utf8_lossy(&tick.stderr));
    let ticks: serde_json::Value = serde_json::from_slice(&tick.stdout).expect("JSON on stdout");
    assert!(ticks.is_array(), "{ticks}");
    app.stop().await;
}

#[test]
fn rooms_are_created_changed_and_shown_from_the_command_line() {
    let prefix = format!("test-cli-{}", Uuid::new_v4().simple());
    let env = [("DRAWBRIDGE_REDIS__KEY_PREFIX", prefix.as_str())];
    let run = |args: &[&str]| drawbridge(&[&["--config", CONFIG, "rooms"], args].concat(), &env);
    let created = run(&[
        "set",
        "launch",
        "--mode",
        "random",
        "--admit-per-minute",
        "100",
        "--guards",
        "bw,by",
    ]);
    assert!(created.status.success(), "{created:?}");
    let room: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(room["config"]["mode"], "random");
    assert_eq!(room["config"]["guards"], serde_json::json!(["bw", "by"]));
    assert_eq!(
        room["config"]["max_active"], 1000,
        "defaults for what was not given"
    );

    let changed = run(&["set", "launch", "--max-active", "5"]);
    assert!(changed.status.success(), "{changed:?}");
    let shown: serde_json::Value = serde_json::from_slice(&run(&["show", "launch"]).stdout).unwrap();
    assert_eq!(
        shown["config"]["admit_per_minute"], 100,
        "unchanged settings keep their value"
    );
    assert_eq!(shown["config"]["max_active"], 5);
    let listed: serde_json::Value = serde_json::from_slice(&run(&["list"]).stdout).unwrap();
    assert_eq!(listed[0]["room"], "launch");

    let line = fails(&run(&["set", "launch", "--admit-per-minute", "0"]));
    assert!(line.contains("admit_per_minute"), "{line}");
    let bad_mode = run(&["set", "launch", "--mode", "lottery"]);
    assert!(!bad_mode.status.success());
    assert!(String::from_utf8_lossy(&bad_mode.stderr).contains("\"lottery\" is not a mode"));
    let line = fails(&run(&["show", "nowhere"]));
    assert!(line.contains("no room"), "{line}");
}
