//! Writing results: CSV tables, the JSON summary, the terminal table and the HTML report.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::metrics::{GroupDayRow, PairDayRow, Summary};
use crate::stats::Estimate;

/// A flat row of a table.
pub trait Row: Sized {
    /// Column names.
    const COLUMNS: &'static [&'static str];
    /// Column kinds: `n` whole number, `f` real number, `s` text.
    const KINDS: &'static [char];
    /// The row's cells, in column order.
    fn cells(&self) -> Vec<String>;
    /// The row from its cells (as written by [`Row::cells`]).
    fn parse(cells: &[&str]) -> Option<Self>;
}

fn float(x: f64) -> String {
    // Shortest text that reads back to the same number: byte-identical and lossless.
    format!("{x:?}")
}

macro_rules! row {
    ($type:ty { $($field:ident : $kind:ident),* $(,)? }) => {
        impl Row for $type {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
            const KINDS: &'static [char] = &[$(row!(@kind $kind)),*];
            fn cells(&self) -> Vec<String> {
                vec![$(row!(@cell $kind self.$field)),*]
            }
            fn parse(cells: &[&str]) -> Option<Self> {
                let mut cells = cells.iter();
                Some(Self { $($field: row!(@parse $kind cells.next()?)),* })
            }
        }
    };
    (@kind f) => { 'f' };
    (@kind s) => { 's' };
    (@kind n) => { 'n' };
    (@cell f $value:expr) => { float($value) };
    (@cell s $value:expr) => { $value.clone() };
    (@cell n $value:expr) => { $value.to_string() };
    (@parse f $cell:expr) => { $cell.parse().ok()? };
    (@parse s $cell:expr) => { $cell.to_string() };
    (@parse n $cell:expr) => { $cell.parse().ok()? };
}

row!(GroupDayRow {
    seed: n,
    day: n,
    date: s,
    group: n,
    registered: n,
    ever_eligible: n,
    pool: n,
    ineligible: n,
    offers: n,
    offer_rate: f,
    bookings: n,
    declines: n,
    expiries: n,
    cancellations: n,
    time_to_offer_p50_days: f,
    time_to_offer_p90_days: f,
    time_to_booking_p50_days: f,
    time_to_booking_p90_days: f,
    reached_share: f,
    envy: n,
    booking_wait_gini: f,
});

row!(PairDayRow {
    seed: n,
    day: n,
    date: s,
    appointments: n,
    used: n,
    no_show: n,
    unused: n,
    utilisation: f,
    wasted: n,
    unmatched_too_soon: n,
    unmatched_no_one_eligible: n,
    unmatched_out_of_reach: n,
    unmatched_pool_served: n,
});

/// The rows as CSV text (no cell needs quoting: numbers and ISO dates).
pub fn csv<R: Row>(rows: &[R]) -> String {
    let mut text = R::COLUMNS.join(",");
    text.push('\n');
    for row in rows {
        text.push_str(&row.cells().join(","));
        text.push('\n');
    }
    text
}

/// Reads rows written by [`csv`].
pub fn read_csv<R: Row>(text: &str) -> anyhow::Result<Vec<R>> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    anyhow::ensure!(header == R::COLUMNS.join(","), "unexpected CSV header {header:?}");
    lines
        .enumerate()
        .map(|(i, line)| {
            let cells: Vec<&str> = line.split(',').collect();
            R::parse(&cells).with_context(|| format!("CSV line {}: cannot read {line:?}", i + 2))
        })
        .collect()
}

/// What a simulate command writes to its output directory, and merges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The policies run (files as named), with the day each applies from.
    pub policies: Vec<String>,
    /// Each seed's summary, by seed.
    pub runs: Vec<Summary>,
    /// Each metric over the seeds: mean and 95% confidence interval.
    pub metrics: std::collections::BTreeMap<String, Estimate>,
}

/// Writes `groups.csv`, `pairs.csv`, `summary.json` and `report.html` into `dir`.
pub fn write_all(
    dir: &Path,
    report: &Report,
    rows: &[GroupDayRow],
    pair_rows: &[PairDayRow],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, text: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write("groups.csv", csv(rows).as_bytes())?;
    write("pairs.csv", csv(pair_rows).as_bytes())?;
    write("groups.parquet", &crate::parquet::write(rows))?;
    write("pairs.parquet", &crate::parquet::write(pair_rows))?;
    let mut json = serde_json::to_string_pretty(report)?;
    json.push('\n');
    write("summary.json", json.as_bytes())?;
    write(
        "report.html",
        crate::html::report(report, rows, pair_rows).as_bytes(),
    )?;
    Ok(())
}

/// The summary as a terminal table: one line per group, then the pairs, then the seeds'
/// estimates when there are several.
pub fn terminal(report: &Report) -> String {
    let mut out = String::new();
    let Some(first) = report.runs.first() else {
        return "no runs\n".into();
    };
    let _ = writeln!(
        out,
        "{} — {} people, {} days, {} draw(s) a day, seed{} {}",
        report.scenario,
        first.population,
        first.days,
        first.draws_per_day,
        if report.runs.len() > 1 { "s" } else { "" },
        seeds_text(report)
    );
    let _ = writeln!(
        out,
        "{:>5} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9} {:>6} {:>7} {:>8} {:>8}",
        "group",
        "people",
        "eligible",
        "reached",
        "vacc.",
        "offer p50",
        "book p50",
        "book p90",
        "gini",
        "envy",
        "declines",
        "expiries"
    );
    for g in &first.groups {
        let _ = writeln!(
            out,
            "{:>5} {:>9} {:>9} {:>7.1}% {:>7.1}% {:>8.1}d {:>8.1}d {:>8.1}d {:>6.3} {:>7} {:>8} {:>8}",
            g.group,
            g.people,
            g.ever_eligible,
            100.0 * g.reached_share,
            100.0 * g.vaccinated_share,
            g.time_to_offer_p50_days,
            g.time_to_booking_p50_days,
            g.time_to_booking_p90_days,
            g.wait_gini,
            g.envy,
            g.declines,
            g.expiries
        );
    }
    let states: Vec<String> = first
        .pair_states
        .iter()
        .map(|(state, n)| format!("{state} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "pairs: {} published ({}); utilisation {:.1}%, wasted {}; waiting-time Gini {:.3}",
        first.pairs_published,
        states.join(", "),
        100.0 * first.utilisation,
        first.wasted_pairs,
        first.wait_gini
    );
    for audit in &first.audit {
        let _ = writeln!(
            out,
            "audit: {} — flagged {} of {} draws",
            audit.test, audit.failures, audit.runs
        );
    }
    if report.runs.len() > 1 {
        let _ = writeln!(
            out,
            "over {} seeds (mean, 95% confidence interval):",
            report.runs.len()
        );
        for (name, e) in &report.metrics {
            let _ = writeln!(
                out,
                "  {name:<36} {:>12.4}  [{:.4}, {:.4}]",
                e.mean, e.low, e.high
            );
        }
    }
    out
}

fn seeds_text(report: &Report) -> String {
    let seeds: Vec<u64> = report.runs.iter().map(|r| r.seed).collect();
    match seeds.as_slice() {
        [one] => one.to_string(),
        [first, .., last] if (last - first + 1) as usize == seeds.len() => format!("{first}..{}", last + 1),
        _ => format!("{seeds:?}"),
    }
}
