//! The `drawbridge` binary's library half: the demo data set and the wiring of all components
//! into one process, shared by `main` and the end-to-end tests.

pub mod demo;
pub mod keys;

/// `drawbridge audit`'s code, which the analysts' console shares.
pub use drawbridge_platform::audit;

/// Every SQL statement of every component, `crate::module::NAME` and its text: the schema test
/// prepares each one against a freshly migrated database.
pub fn all_statements() -> Vec<(String, &'static str)> {
    let crates = [
        ("platform", drawbridge_platform::all_statements()),
        ("gateway", drawbridge_gateway::store::all_statements()),
        ("allocator", drawbridge_allocator::all_statements()),
        ("notifier", drawbridge_notifier::all_statements()),
        (
            "drawbridge",
            drawbridge_platform::list_statements(&[("demo", demo::STATEMENTS), ("keys", keys::STATEMENTS)]),
        ),
    ];
    crates
        .into_iter()
        .flat_map(|(name, statements)| {
            statements
                .into_iter()
                .map(move |(statement, sql)| (format!("{name}::{statement}"), sql))
        })
        .collect()
}
