//! `drawbridge simulate`: arguments and what each form of the command does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{bail, Context};
use drawbridge_domain::Policy;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::metrics::{GroupDayRow, PairDayRow};
use crate::output::{self, read_csv, Report};
use crate::stats::Estimate;
use crate::Scenario;

/// `drawbridge simulate` (see `simulations/README.md`).
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimulateArgs {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// The scenario file (TOML).
    pub scenario: Option<PathBuf>,
    /// Run the scenario under two policy files instead of its own, on the same people and
    /// random numbers, and report each metric's difference (B - A) with its 95% interval.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub compare: Option<Vec<PathBuf>>,
    /// Replay the published draw manifests (JSON files) in this directory.
    #[arg(long, conflicts_with_all = ["scenario", "compare"])]
    pub from_manifests: Option<PathBuf>,
    /// With --from-manifests: re-draw each recorded pool under this policy file too.
    #[arg(long, requires = "from_manifests")]
    pub policy: Option<PathBuf>,
    /// Seeds to run, `A..B` (B excluded) or one number; the scenario's seed by default.
    #[arg(long)]
    pub seeds: Option<Seeds>,
    /// Output directory.
    #[arg(long, default_value = "simulation")]
    pub out: PathBuf,
    /// Threads (seeds run in parallel); all cores by default. Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run the audit's bias tests on every simulated draw (slower: every key is needed).
    #[arg(long)]
    pub audit: bool,
    /// Run the scenario at this population size, with deliveries scaled alike so that
    /// scarcity stays the same (for quick looks and scaling runs).
    #[arg(long)]
    pub population: Option<u64>,
}

/// Sub-commands of `drawbridge simulate`.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Combine the output directories of runs over parts of a seed range into one report.
    Merge {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The parts' output directories.
        #[arg(required = true)]
        parts: Vec<PathBuf>,
    },
}

/// A seed range, `A..B` or `N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeds(pub Vec<u64>);

impl FromStr for Seeds {
    type Err = String;
    fn from_str(text: &str) -> Result<Seeds, String> {
        let number = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("{t:?} is not a seed"))
        };
        match text.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a >= b {
                    return Err(format!("the range {text} is empty"));
                }
                Ok(Seeds((a..b).collect()))
            }
            None => Ok(Seeds(vec![number(text)?])),
        }
    }
}

/// Runs the command.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    if let Some(Action::Merge { out, parts }) = &args.action {
        return merge(out, parts);
    }
    if let Some(dir) = &args.from_manifests {
        return from_manifests(dir, args.policy.as_deref(), &args.out);
    }
    let Some(path) = &args.scenario else {
        bail!("name a scenario file, --from-manifests DIR, or `merge`");
    };
    let mut scenario = Scenario::load(path)?;
    if let Some(size) = args.population {
        scenario.scale_population(size);
    }
    let seeds = args
        .seeds
        .clone()
        .map_or_else(|| vec![scenario.file.seed], |s| s.0);
    match &args.compare {
        Some(files) => compare(&scenario, &files[0], &files[1], &seeds, &args),
        None => simulate(&scenario, &seeds, &args),
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} simulated days, eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

fn simulate(scenario: &Scenario, seeds: &[u64], args: &SimulateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let bar = progress_bar(seeds.len() as u64 * u64::from(scenario.file.days));
    let results = crate::run_seeds(scenario, seeds, args.threads, args.audit, &|_| bar.inc(1))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let (report, rows, pair_rows) = crate::report(scenario, results);
    output::write_all(&args.out, &report, &rows, &pair_rows)?;
    print!("{}", output::terminal(&report));
    let person_days =
        scenario.file.population.size as f64 * f64::from(scenario.file.days) * seeds.len() as f64;
    eprintln!(
        "{} seed(s) in {elapsed:.2} s: {:.2} M person-days/s; written to {}",
        seeds.len(),
        person_days / elapsed / 1e6,
        args.out.display()
    );
    Ok(())
}

/// One metric's difference between two policies over the seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// The metric.
    pub metric: String,
    /// Its mean under A.
    pub a: f64,
    /// Its mean under B.
    pub b: f64,
    /// B - A, paired by seed, with its 95% interval.
    pub difference: Estimate,
}

fn policy_file(path: &Path) -> anyhow::Result<(u32, Policy, String)> {
    let document =
        std::fs::read_to_string(path).with_context(|| format!("cannot read policy {}", path.display()))?;
    let policy = Policy::from_toml(&document).with_context(|| format!("policy {}", path.display()))?;
    Ok((0, policy, document))
}

/// Runs both policies over the seeds and returns each metric's paired difference.
pub fn differences(
    scenario_a: &Scenario,
    scenario_b: &Scenario,
    seeds: &[u64],
    threads: Option<usize>,
    progress: &(dyn Fn(u32) + Sync),
) -> anyhow::Result<(Vec<crate::RunResult>, Vec<crate::RunResult>, Vec<Difference>)> {
    let a = crate::run_seeds(scenario_a, seeds, threads, false, progress)?;
    let b = crate::run_seeds(scenario_b, seeds, threads, false, progress)?;
    let mut paired: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for (ra, rb) in a.iter().zip(&b) {
        for (name, va) in &ra.summary.metrics {
            if let Some(vb) = rb.summary.metrics.get(name) {
                let entry = paired.entry(name.clone()).or_default();
                entry.0.push(*va);
                entry.1.push(*vb);
            }
        }
    }
    let differences = paired
        .into_iter()
        .map(|(metric, (va, vb))| {
            let diffs: Vec<f64> = va.iter().zip(&vb).map(|(a, b)| b - a).collect();
            Difference {
                metric,
                a: Estimate::of(&va).mean,
                b: Estimate::of(&vb).mean,
                difference: Estimate::of(&diffs),
            }
        })
        .collect();
    Ok((a, b, differences))
}

fn compare(
    scenario: &Scenario,
    a: &Path,
    b: &Path,
    seeds: &[u64],
    args: &SimulateArgs,
) -> anyhow::Result<()> {
    let scenario_a = scenario.with_policies(vec![policy_file(a)?])?;
    let scenario_b = scenario.with_policies(vec![policy_file(b)?])?;
    let bar = progress_bar(2 * seeds.len() as u64 * u64::from(scenario.file.days));
    let (runs_a, runs_b, diffs) =
        differences(&scenario_a, &scenario_b, seeds, args.threads, &|_| bar.inc(1))?;
    bar.finish_and_clear();
    for (name, scenario, runs) in [("a", &scenario_a, runs_a), ("b", &scenario_b, runs_b)] {
        let (report, rows, pair_rows) = crate::report(scenario, runs);
        output::write_all(&args.out.join(name), &report, &rows, &pair_rows)?;
    }
    let mut csv = String::from("metric,a,b,difference,low,high,seeds\n");
    let mut table = format!(
        "{}: B = {} against A = {}, {} seed(s), common random numbers\n{:<36} {:>12} {:>12} {:>12}  95% interval\n",
        scenario.file.name,
        b.display(),
        a.display(),
        seeds.len(),
        "metric",
        "A",
        "B",
        "B - A"
    );
    for d in &diffs {
        let _ = writeln!(
            csv,
            "{},{:?},{:?},{:?},{:?},{:?},{}",
            d.metric, d.a, d.b, d.difference.mean, d.difference.low, d.difference.high, d.difference.n
        );
        let _ = writeln!(
            table,
            "{:<36} {:>12.4} {:>12.4} {:>12.4}  [{:.4}, {:.4}]{}",
            d.metric,
            d.a,
            d.b,
            d.difference.mean,
            d.difference.low,
            d.difference.high,
            if d.difference.excludes_zero() { " *" } else { "" }
        );
    }
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("compare.csv"), csv)?;
    std::fs::write(
        args.out.join("compare.json"),
        serde_json::to_string_pretty(&diffs)? + "\n",
    )?;
    print!("{table}");
    println!("* the interval excludes 0. Written to {}", args.out.display());
    Ok(())
}

fn from_manifests(dir: &Path, policy: Option<&Path>, out: &Path) -> anyhow::Result<()> {
    let manifests = crate::replay::load_manifests(dir)?;
    if manifests.is_empty() {
        bail!("no *.json manifests in {}", dir.display());
    }
    let other = policy.map(policy_file).transpose()?;
    let name = policy.map(|p| p.display().to_string()).unwrap_or_default();
    let replays: Vec<_> = manifests
        .iter()
        .map(|m| crate::replay::replay(m, other.as_ref().map(|(_, p, _)| (p, name.as_str()))))
        .collect();
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("replay.csv"), crate::replay::csv(&replays))?;
    std::fs::write(
        out.join("replay.json"),
        serde_json::to_string_pretty(&replays)? + "\n",
    )?;
    for r in &replays {
        let verdict = if r.reproduced {
            "reproduced"
        } else {
            "NOT reproduced"
        };
        println!("draw {} ({}, {}): {verdict}", r.draw, r.region, r.drawn_at);
        for problem in &r.problems {
            println!("  problem: {problem}");
        }
        for t in &r.tests {
            println!(
                "  {}: chi2 {:.2} (df {}, critical {:.2}) {}",
                t.name,
                t.statistic,
                t.degrees_of_freedom,
                t.critical_value,
                if t.passed { "passed" } else { "FAILED" }
            );
        }
        for g in &r.groups {
            let counterfactual = match (g.counterfactual_offers, g.counterfactual_envy) {
                (Some(offers), Some(envy)) => format!("; under {name}: {offers} offers, envy {envy}"),
                _ => String::new(),
            };
            println!(
                "  group {}: {} in pool, {} offers ({:.1}%), envy {}{counterfactual}",
                g.group,
                g.pool,
                g.offers,
                100.0 * g.offer_rate,
                g.envy
            );
        }
        if let Some(changed) = r.counterfactual_changed {
            println!("  {changed} candidates would have had another outcome under {name}");
        }
    }
    let failed = replays
        .iter()
        .filter(|r| !r.reproduced || r.tests.iter().any(|t| !t.passed))
        .count();
    println!(
        "{} draws, {failed} not reproduced or flagged. Written to {}",
        replays.len(),
        out.display()
    );
    Ok(())
}

fn merge(out: &Path, parts: &[PathBuf]) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    let mut rows: Vec<GroupDayRow> = Vec::new();
    let mut pair_rows: Vec<PairDayRow> = Vec::new();
    for part in parts {
        let read = |name: &str| {
            let path = part.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
        };
        let report: Report = serde_json::from_str(&read("summary.json")?)?;
        rows.extend(read_csv::<GroupDayRow>(&read("groups.csv")?)?);
        pair_rows.extend(read_csv::<PairDayRow>(&read("pairs.csv")?)?);
        reports.push(report);
    }
    let first = reports.first().context("no parts")?;
    for r in &reports {
        if r.scenario != first.scenario || r.policies != first.policies {
            bail!("the parts are of different scenarios or policies");
        }
    }
    let mut runs: Vec<_> = reports.iter().flat_map(|r| r.runs.clone()).collect();
    runs.sort_by_key(|r| r.seed);
    if let Some(w) = runs.windows(2).find(|w| w[0].seed == w[1].seed) {
        bail!("seed {} is in more than one part", w[0].seed);
    }
    // Stable: each seed's rows come from one part, in the order its run wrote them.
    rows.sort_by_key(|r| r.seed);
    pair_rows.sort_by_key(|r| r.seed);
    let report = Report {
        scenario: first.scenario.clone(),
        policies: first.policies.clone(),
        metrics: crate::estimates(&runs),
        runs,
    };
    output::write_all(out, &report, &rows, &pair_rows)?;
    print!("{}", output::terminal(&report));
    Ok(())
}
