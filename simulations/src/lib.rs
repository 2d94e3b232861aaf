//! Drawbridge's simulations: what-if scenarios run on the production allocation code, policy
//! comparisons with common random numbers, and replays of published draws.
//!
//! `drawbridge simulate` is [`cli::run`]; the simulation itself is [`engine`].

#![forbid(unsafe_code)]

pub mod cli;
pub mod engine;
pub mod envy;
pub mod html;
pub mod metrics;
pub mod output;
pub mod parquet;
pub mod random;
pub mod replay;
pub mod scenario;
pub mod stats;

use std::collections::BTreeMap;

use rayon::prelude::*;

pub use engine::{run, RunOptions};
pub use metrics::RunResult;
pub use scenario::Scenario;

use crate::metrics::{GroupDayRow, PairDayRow};
use crate::output::Report;
use crate::stats::Estimate;

/// Runs `seeds` on `threads` threads (all cores when `None`); the results come back in seed
/// order and each depends only on its seed, so the thread count changes nothing but speed.
pub fn run_seeds(
    scenario: &Scenario,
    seeds: &[u64],
    threads: Option<usize>,
    audit: bool,
    progress: &(dyn Fn(u32) + Sync),
) -> anyhow::Result<Vec<RunResult>> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(threads) = threads {
        builder = builder.num_threads(threads);
    }
    let pool = builder.build()?;
    pool.install(|| {
        seeds
            .par_iter()
            .map(|&seed| {
                let options = RunOptions {
                    audit,
                    ..RunOptions::new(seed)
                };
                engine::run(scenario, options, progress).map_err(anyhow::Error::from)
            })
            .collect()
    })
}

/// The report of some runs of one scenario, and their tables.
pub fn report(scenario: &Scenario, results: Vec<RunResult>) -> (Report, Vec<GroupDayRow>, Vec<PairDayRow>) {
    let mut rows = Vec::new();
    let mut pair_rows = Vec::new();
    let mut runs = Vec::new();
    for result in results {
        rows.extend(result.rows);
        pair_rows.extend(result.pair_rows);
        runs.push(result.summary);
    }
    let policies = scenario
        .file
        .policies
        .iter()
        .map(|p| format!("{} (from day {})", p.file.display(), p.from_day))
        .collect();
    let report = Report {
        scenario: scenario.file.name.clone(),
        policies,
        metrics: estimates(&runs),
        runs,
    };
    (report, rows, pair_rows)
}

/// Each metric's mean and interval over the runs.
pub fn estimates(runs: &[metrics::Summary]) -> BTreeMap<String, Estimate> {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in runs {
        for (name, value) in &run.metrics {
            values.entry(name.clone()).or_default().push(*value);
        }
    }
    values
        .into_iter()
        .map(|(name, values)| (name, Estimate::of(&values)))
        .collect()
}
