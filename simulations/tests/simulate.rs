//! The simulations' guarantees, checked from the outside: determinism whatever the thread
//! count, Parquet files that another reader reads as the CSV files, conservation of people and
//! pairs, policies that favour a group showing it, a broken draw caught by the audit, and the
//! simulated draw being the allocator's draw.

// Helpers outside #[test] functions unwrap too: in a test a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drawbridge_domain::allocation::draw::{
    self, DrawError, DrawInput, DrawOutcome, LotteryKey, Manifest, PublishedCandidate, Seed,
};
use drawbridge_domain::Policy;
use drawbridge_simulations::engine::{self, production_draw, RunOptions};
use drawbridge_simulations::output;
use drawbridge_simulations::{cli, Scenario};
use sha2::{Digest, Sha256};

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// The small county, at `people` registrants and as scarce as with its 40,000.
fn county(people: u64) -> Scenario {
    let mut scenario = Scenario::load(&scenarios().join("small-county.toml")).expect("a valid scenario");
    scenario.scale_population(people);
    scenario
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("drawbridge-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

#[test]
fn the_same_seeds_give_byte_identical_outputs_on_one_and_on_four_threads() {
    let scenario = county(6_000);
    let seeds = [3, 4, 5, 6];
    let mut outputs = Vec::new();
    for threads in [1, 4] {
        let results =
            drawbridge_simulations::run_seeds(&scenario, &seeds, Some(threads), false, &|_| {}).unwrap();
        let (report, rows, pair_rows) = drawbridge_simulations::report(&scenario, results);
        let dir = temp_dir(&format!("threads-{threads}"));
        output::write_all(&dir, &report, &rows, &pair_rows).unwrap();
        outputs.push(files(&dir));
    }
    assert_eq!(outputs[0].len(), 6, "csv, parquet, json and html files");
    assert_eq!(outputs[0], outputs[1]);
    // Different seeds do give different results: the comparison above can fail.
    let one = engine::run(&scenario, RunOptions::new(3), &|_| {}).unwrap();
    let other = engine::run(&scenario, RunOptions::new(4), &|_| {}).unwrap();
    assert_ne!(one.summary.metrics, other.summary.metrics);
}

/// A Parquet file's columns as another reader sees them: each column's name and its values
/// written as the CSV writes them (whole numbers, `{:?}` reals, text), and the row count the
/// footer declares.
fn read_parquet(path: &Path) -> (usize, Vec<(String, Vec<String>)>) {
    use parquet2::deserialize::native_cast;
    use parquet2::encoding::plain_byte_array::BinaryIter;
    use parquet2::page::{split_buffer, Page};
    use parquet2::read::{decompress, get_page_iterator, read_metadata};
    use parquet2::schema::types::{PhysicalType, PrimitiveConvertedType};

    let mut file = std::fs::File::open(path).unwrap();
    let metadata = read_metadata(&mut file).unwrap();
    let mut columns = Vec::new();
    for column in metadata.row_groups.iter().flat_map(|group| group.columns()) {
        let primitive = &column.descriptor().descriptor.primitive_type;
        let mut values = Vec::new();
        for page in get_page_iterator(column, &mut file, None, vec![], usize::MAX).unwrap() {
            let Page::Data(page) = decompress(page.unwrap(), &mut vec![]).unwrap() else {
                panic!("the writer writes no dictionary pages");
            };
            match primitive.physical_type {
                PhysicalType::Int64 => {
                    values.extend(native_cast::<i64>(&page).unwrap().map(|v| v.to_string()))
                }
                PhysicalType::Double => {
                    values.extend(native_cast::<f64>(&page).unwrap().map(|v| format!("{v:?}")))
                }
                PhysicalType::ByteArray => {
                    assert_eq!(primitive.converted_type, Some(PrimitiveConvertedType::Utf8));
                    let (_, _, bytes) = split_buffer(&page).unwrap();
                    values.extend(
                        BinaryIter::new(bytes, Some(page.num_values()))
                            .map(|v| String::from_utf8(v.unwrap().to_vec()).unwrap()),
                    );
                }
                other => panic!("unexpected physical type {other:?}"),
            }
        }
        columns.push((primitive.field_info.name.clone(), values));
    }
    (metadata.num_rows, columns)
}

#[test]
fn the_parquet_files_read_back_in_another_reader_as_the_csv_files() {
    let scenario = county(3_000);
    let results = drawbridge_simulations::run_seeds(&scenario, &[1, 2], Some(1), false, &|_| {}).unwrap();
    let (report, rows, pair_rows) = drawbridge_simulations::report(&scenario, results);
    let dir = temp_dir("parquet");
    output::write_all(&dir, &report, &rows, &pair_rows).unwrap();
    for table in ["groups", "pairs"] {
        let csv = std::fs::read_to_string(dir.join(format!("{table}.csv"))).unwrap();
        let mut lines = csv.lines().map(|line| line.split(',').collect::<Vec<_>>());
        let header = lines.next().unwrap();
        let csv_rows: Vec<Vec<&str>> = lines.collect();
        let (rows, columns) = read_parquet(&dir.join(format!("{table}.parquet")));
        assert!(csv_rows.len() > 50, "{table}: {} rows", csv_rows.len());
        assert_eq!(rows, csv_rows.len(), "{table}: the footer's row count");
        let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, header, "{table}: column names");
        for (c, (name, values)) in columns.iter().enumerate() {
            let from_csv: Vec<&str> = csv_rows.iter().map(|row| row[c]).collect();
            assert_eq!(*values, from_csv, "{table}.{name}");
        }
    }
    // A few values by name, so that the comparison is not of two empty tables.
    let (_, columns) = read_parquet(&dir.join("groups.parquet"));
    let column = |name: &str| &columns.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(column("seed")[0], "1");
    assert_eq!(column("date")[0], scenario.file.start.to_string());
    assert!(column("offers").iter().any(|v| v != "0"));
}

#[test]
fn every_pair_and_every_person_ends_in_exactly_one_state() {
    let scenario = county(8_000);
    let result = engine::run(&scenario, RunOptions::new(11), &|_| {}).unwrap();
    let s = &result.summary;
    // Pairs: every published pair is open, offered, booked, used, not used, or a no-show.
    assert_eq!(s.pair_states.values().sum::<u64>(), s.pairs_published);
    let by_day: u64 = result.pair_rows.iter().map(|p| p.appointments).sum();
    assert_eq!(
        by_day, s.pairs_published,
        "every pair has one first appointment day"
    );
    let ended: u64 = result
        .pair_rows
        .iter()
        .map(|p| p.used + p.no_show + p.unused)
        .sum();
    assert_eq!(
        ended,
        s.pair_states["used"] + s.pair_states["no_show"] + s.pair_states["unused"]
    );
    assert!(
        s.pair_states["used"] > 0 && s.pair_states["unused"] > 0,
        "{:?}",
        s.pair_states
    );
    // People: every registrant is in exactly one state, and the states agree with the pairs.
    let people: u64 = s.groups.iter().map(|g| g.states.values().sum::<u64>()).sum();
    assert_eq!(people, 8_000);
    let state = |name: &str| s.groups.iter().map(|g| g.states[name]).sum::<u64>();
    assert_eq!(state("vaccinated"), s.pair_states["used"]);
    assert_eq!(state("no_show"), s.pair_states["no_show"]);
    assert_eq!(state("booked"), s.pair_states["booked"]);
    assert_eq!(state("offered"), s.pair_states["offered"]);
    // Each group's offers end as bookings, declines, expiries or are still pending.
    for g in &s.groups {
        let pending = g.states["offered"];
        assert_eq!(
            g.offers,
            g.bookings + g.declines + g.expiries + pending,
            "group {}",
            g.group
        );
    }
}

/// The county's policy with a reserve of `share` of each draw for group 3.
fn reserve_for_group_3(share: f64) -> (u32, Policy, String) {
    let base = scenarios().join("policies/bw-group3-monday.toml");
    let document = std::fs::read_to_string(base).unwrap().trim_end().to_owned()
        + &format!("\nreserves = [{{ groups = [3], share = {share} }}]\n");
    (0, Policy::from_toml(&document).expect("valid"), document)
}

#[test]
fn a_policy_that_favours_a_group_measurably_favours_it() {
    let base = county(6_000);
    let favoured = base.with_policies(vec![reserve_for_group_3(0.4)]).unwrap();
    let seeds: Vec<u64> = (0..6).collect();
    let (_, _, diffs) = cli::differences(&base, &favoured, &seeds, None, &|_| {}).unwrap();
    let diff = |metric: &str| diffs.iter().find(|d| d.metric == metric).unwrap().difference;
    let group3 = diff("group3.reached_share");
    assert!(
        group3.low > 0.02,
        "group 3 is reached more with its reserve: {group3:?}"
    );
    let group2 = diff("group2.time_to_offer_p50_days");
    assert!(group2.low > 0.0, "and group 2 waits longer for it: {group2:?}");
    let envy = diff("envy");
    assert!(
        envy.low > 0.0,
        "a reserve makes offers a better tier envies: {envy:?}"
    );
    // The same policy on both sides makes no difference at all (common random numbers).
    let (_, _, none) = cli::differences(&base, &base, &seeds[..2], None, &|_| {}).unwrap();
    assert!(none
        .iter()
        .all(|d| d.difference.mean == 0.0 && d.difference.high == 0.0));
}

/// A deliberately broken draw, like the 2012 diversity visa lottery: people who registered
/// early weigh three times what the policy says (their waiting weeks are tripled inside the
/// draw), while the record shows the true weights.
fn early_registrants_first(
    policy: &Policy,
    seed: &Seed,
    input: &DrawInput,
    _keys: bool,
) -> Result<(DrawOutcome, Vec<f64>), DrawError> {
    let mut rigged = input.clone();
    for c in &mut rigged.candidates {
        c.waited_weeks = c.waited_weeks * 3 + 3;
    }
    draw::draw_with_keys(policy, seed, &rigged)
}

#[test]
fn an_arrival_order_biased_draw_is_flagged_by_the_audit() {
    let scenario = county(20_000);
    let audited = |draw: engine::DrawFn| {
        let options = RunOptions {
            audit: true,
            draw,
            ..RunOptions::new(5)
        };
        engine::run(&scenario, options, &|_| {}).unwrap().summary.audit
    };
    let fair = audited(production_draw);
    let broken = audited(early_registrants_first);
    let flagged = |audit: &[drawbridge_simulations::metrics::AuditSummary], test: &str| {
        let a = audit
            .iter()
            .find(|a| a.test.starts_with(test))
            .expect("the test ran");
        (a.failures, a.runs)
    };
    let (fair_failures, runs) = flagged(&fair, "any of the tests");
    assert!(runs >= 30, "{fair:?}");
    assert!(
        fair_failures <= 1,
        "each test fails a fair draw once in 1000: {fair:?}"
    );
    let (broken_failures, runs) = flagged(&broken, "any of the tests");
    assert!(
        broken_failures * 2 > runs,
        "the broken draw is flagged in most draws: {broken:?}"
    );
    let (by_time, _) = flagged(&broken, "registration time");
    assert!(by_time > 0, "and registration time is named: {broken:?}");
}

/// The manifest the allocator publishes for a draw of `input` under `policy` with `seed`.
fn manifest_of(
    policy: &Policy,
    document: &str,
    seed: &Seed,
    input: &DrawInput,
    outcome: &DrawOutcome,
    keys: &[f64],
) -> Manifest {
    let policy_digest: [u8; 32] = Sha256::digest(document.as_bytes()).into();
    Manifest {
        draw: uuid::Uuid::from_u128(1),
        region: policy.region.clone(),
        policy_version: policy.version,
        policy_digest: draw::hex(&policy_digest),
        policy: document.to_owned(),
        seed_commitment: draw::hex(&seed.commitment()),
        seed: draw::hex(seed.as_bytes()),
        beacon: None,
        drawn_at: input.drawn_at,
        inputs_digest: draw::hex(&input.digest(&policy_digest)),
        outputs_digest: draw::hex(&outcome.digest()),
        pairs: input.pairs.clone(),
        candidates: input
            .candidates
            .iter()
            .zip(keys)
            .map(|(c, &k)| PublishedCandidate {
                candidate: c.clone(),
                lottery_key: LotteryKey::exact(k),
            })
            .collect(),
        matches: outcome.matches.clone(),
        unmatched: outcome.unmatched.clone(),
    }
}

thread_local! {
    static INPUTS: RefCell<Vec<(Seed, DrawInput)>> = const { RefCell::new(Vec::new()) };
}

fn recording_draw(
    policy: &Policy,
    seed: &Seed,
    input: &DrawInput,
    keys: bool,
) -> Result<(DrawOutcome, Vec<f64>), DrawError> {
    INPUTS.with(|inputs| inputs.borrow_mut().push((*seed, input.clone())));
    production_draw(policy, seed, input, keys)
}

/// The seed and input of every draw of a run of `scenario`.
fn recorded_pools(scenario: &Scenario, seed: u64) -> Vec<(Seed, DrawInput)> {
    let options = RunOptions {
        draw: recording_draw,
        ..RunOptions::new(seed)
    };
    INPUTS.with(|inputs| inputs.borrow_mut().clear());
    engine::run(scenario, options, &|_| {}).unwrap();
    INPUTS.with(|inputs| inputs.take())
}

/// The allocator's draw needs Postgres for its inputs and records; what it does with them
/// between reading and writing is `draw::draw_with_keys` on the pool built by the domain's
/// `waiting::candidate` (allocator/src/pool.rs, lib.rs). This test takes pools the simulation
/// built, draws them the allocator's way, publishes the manifest the allocator would publish
/// (same digests), and checks that `drawbridge replay`'s check reproduces it and that the
/// offers are exactly the simulation's. The allocator's tick itself, Postgres included, is
/// compared with the simulator's draw in tests/api/simulation.rs.
#[test]
fn a_simulated_draw_and_the_allocators_draw_on_the_same_pool_and_seed_give_the_same_offers() {
    let scenario = county(5_000);
    let inputs = recorded_pools(&scenario, 9);
    assert!(inputs.len() >= 30);
    let (policy, document) = scenario.policy_on(0);
    let mut offers = 0;
    for (seed, input) in inputs.iter().step_by(5) {
        let simulated = draw::draw(policy, seed, input).unwrap();
        let (allocated, keys) = draw::draw_with_keys(policy, seed, input).unwrap();
        assert_eq!(simulated, allocated);
        offers += allocated.matches.len();
        let manifest = manifest_of(policy, document, seed, input, &allocated, &keys);
        let verdict = manifest.replay();
        assert!(verdict.reproduced(), "{:?}", verdict.problems);
        // And through the JSON the gateway serves.
        let served: Manifest = serde_json::from_str(&serde_json::to_string(&manifest).unwrap()).unwrap();
        let replayed = drawbridge_simulations::replay::replay(&served, None);
        assert!(replayed.reproduced, "{:?}", replayed.problems);
    }
    assert!(offers > 100, "{offers}");
}

#[test]
fn a_sweep_split_by_seed_ranges_merges_into_the_report_of_one_run() {
    let scenario_path = scenarios().join("small-county.toml");
    let run = |seeds: &str, out: &Path| {
        let args = cli::SimulateArgs {
            scenario: Some(scenario_path.clone()),
            seeds: Some(seeds.parse().unwrap()),
            threads: Some(2),
            population: Some(3_000),
            ..arguments(out)
        };
        cli::run(args).unwrap();
    };
    let (whole, first, second, merged) = (
        temp_dir("whole"),
        temp_dir("part-a"),
        temp_dir("part-b"),
        temp_dir("merged"),
    );
    run("0..4", &whole);
    run("0..2", &first);
    run("2..4", &second);
    cli::run(cli::SimulateArgs {
        action: Some(cli::Action::Merge {
            out: merged.clone(),
            parts: vec![second, first],
        }),
        ..arguments(Path::new("unused"))
    })
    .unwrap();
    assert_eq!(files(&whole), files(&merged));
}

/// `drawbridge simulate --out OUT` and nothing else.
fn arguments(out: &Path) -> cli::SimulateArgs {
    cli::SimulateArgs {
        action: None,
        scenario: None,
        compare: None,
        from_manifests: None,
        policy: None,
        seeds: None,
        out: out.to_owned(),
        threads: None,
        audit: false,
        population: None,
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Per group, the sum of `field` over every draw of a `replay.json`.
fn per_group(replays: &serde_json::Value, field: &str) -> BTreeMap<u64, u64> {
    let mut sums = BTreeMap::new();
    for replay in replays.as_array().unwrap() {
        for g in replay["groups"].as_array().unwrap() {
            *sums.entry(g["group"].as_u64().unwrap()).or_default() += g[field].as_u64().unwrap();
        }
    }
    sums
}

#[test]
fn replaying_published_manifests_measures_the_real_draws_and_redraws_their_pools_under_another_policy() {
    let scenario = county(5_000);
    let (policy, document) = scenario.policy_on(0);
    // Published manifests of the draws after group 3's release, as the gateway serves them.
    let manifests = temp_dir("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let mut recorded_offers: BTreeMap<u64, u64> = BTreeMap::new();
    let pools = recorded_pools(&scenario, 9);
    let later = pools
        .iter()
        .filter(|(_, input)| input.candidates.iter().any(|c| c.group == 3));
    for (n, (seed, input)) in later.step_by(3).take(6).enumerate() {
        let (outcome, keys) = draw::draw_with_keys(policy, seed, input).unwrap();
        for c in &input.candidates {
            recorded_offers.entry(u64::from(c.group)).or_default();
        }
        let group_of = |m: &drawbridge_domain::Match| {
            input
                .candidates
                .iter()
                .find(|c| c.pseudonym == m.pseudonym)
                .unwrap()
                .group
        };
        for m in &outcome.matches {
            *recorded_offers.entry(u64::from(group_of(m))).or_default() += 1;
        }
        let manifest = manifest_of(policy, document, seed, input, &outcome, &keys);
        let served = serde_json::to_string(&manifest).unwrap();
        std::fs::write(manifests.join(format!("{n:03}.json")), served).unwrap();
    }
    // Strict tiers: group 3 waits behind group 2 in these draws.
    assert_eq!(recorded_offers.get(&3), Some(&0), "{recorded_offers:?}");
    let policies = temp_dir("counterfactual-policies");
    std::fs::create_dir_all(&policies).unwrap();
    let replay_under = |name: &str, text: &str| {
        let file = policies.join(name);
        std::fs::write(&file, text).unwrap();
        let out = temp_dir(&format!("replay-{name}"));
        cli::run(cli::SimulateArgs {
            from_manifests: Some(manifests.clone()),
            policy: Some(file),
            ..arguments(&out)
        })
        .unwrap();
        assert!(
            std::fs::read_to_string(out.join("replay.csv"))
                .unwrap()
                .lines()
                .count()
                > 6
        );
        json(&out.join("replay.json"))
    };

    // Under a policy with a reserve for group 3: the real draws are reproduced and measured,
    // and their pools drawn again give group 3 more offers, some of which a better tier envies.
    let (_, _, reserve) = reserve_for_group_3(0.4);
    let replays = replay_under("reserve.toml", &reserve);
    assert_eq!(replays.as_array().unwrap().len(), 6);
    for r in replays.as_array().unwrap() {
        assert_eq!(r["reproduced"], true, "{}", r["problems"]);
        assert!(!r["tests"].as_array().unwrap().is_empty(), "the bias tests ran");
        assert!(r["counterfactual_changed"].as_u64().unwrap() > 0);
    }
    assert_eq!(per_group(&replays, "offers"), recorded_offers);
    assert!(
        per_group(&replays, "envy").values().all(|&e| e == 0),
        "strict tiers: no envy"
    );
    let counterfactual = per_group(&replays, "counterfactual_offers");
    assert!(
        counterfactual[&3] > recorded_offers[&3],
        "{counterfactual:?} against {recorded_offers:?}"
    );
    assert!(per_group(&replays, "counterfactual_envy").values().sum::<u64>() > 0);

    // Under the draws' own policy, nothing changes.
    let same = replay_under("same.toml", document);
    for r in same.as_array().unwrap() {
        assert_eq!(r["counterfactual_changed"], 0);
    }
    assert_eq!(per_group(&same, "counterfactual_offers"), recorded_offers);

    // A manifest whose offers were altered after the draw is not reproduced.
    let first = manifests.join("000.json");
    let mut altered: Manifest = serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
    let last = altered.matches.len() - 1;
    let (a, b) = (altered.matches[0].pair, altered.matches[last].pair);
    altered.matches[0].pair = b;
    altered.matches[last].pair = a;
    std::fs::write(&first, serde_json::to_string(&altered).unwrap()).unwrap();
    let replays = replay_under("same.toml", document);
    assert_eq!(replays[0]["reproduced"], false);
    assert_eq!(replays[1]["reproduced"], true);
}

#[test]
fn compare_reports_each_metrics_difference_with_its_interval_and_writes_both_reports() {
    let policies = temp_dir("compare-policies");
    std::fs::create_dir_all(&policies).unwrap();
    let reserve = policies.join("reserve.toml");
    std::fs::write(&reserve, reserve_for_group_3(0.4).2).unwrap();
    let out = temp_dir("compare");
    cli::run(cli::SimulateArgs {
        scenario: Some(scenarios().join("small-county.toml")),
        compare: Some(vec![scenarios().join("policies/bw-group3-monday.toml"), reserve]),
        seeds: Some("0..4".parse().unwrap()),
        population: Some(4_000),
        ..arguments(&out)
    })
    .unwrap();
    let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("metric,a,b,difference,low,high,seeds"));
    let rows: BTreeMap<&str, Vec<f64>> = lines
        .map(|line| {
            let (metric, values) = line.split_once(',').unwrap();
            (metric, values.split(',').map(|v| v.parse().unwrap()).collect())
        })
        .collect();
    assert!(rows.len() > 20, "every metric: {}", rows.len());
    for (metric, v) in &rows {
        let [a, b, difference, low, high, seeds] = v[..] else {
            panic!("{metric}: {v:?}");
        };
        assert_eq!(seeds, 4.0, "{metric}");
        assert!((b - a - difference).abs() < 1e-9, "{metric}: paired by seed");
        assert!(low <= difference && difference <= high, "{metric}: {v:?}");
    }
    assert!(
        rows["group3.reached_share"][3] > 0.0,
        "the reserve reaches group 3 more"
    );
    assert_eq!(
        json(&out.join("compare.json")).as_array().unwrap().len(),
        rows.len()
    );
    for side in ["a", "b"] {
        let summary = json(&out.join(side).join("summary.json"));
        assert_eq!(summary["runs"].as_array().unwrap().len(), 4, "{side}");
    }
}

#[test]
fn the_report_page_is_self_contained_with_charts_and_the_terminal_table_shows_every_group() {
    let scenario = county(3_000);
    let results = drawbridge_simulations::run_seeds(&scenario, &[1], Some(1), false, &|_| {}).unwrap();
    let (report, rows, pair_rows) = drawbridge_simulations::report(&scenario, results);
    let dir = temp_dir("report");
    output::write_all(&dir, &report, &rows, &pair_rows).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.matches("<svg").count() >= 4, "charts drawn as SVG");
    assert!(html.matches("<polyline").count() >= 4, "with lines in them");
    for external in ["<script", "src=", "href=", "@import", "url("] {
        assert!(
            !html.contains(external),
            "nothing loaded from elsewhere: {external}"
        );
    }
    let table = output::terminal(&report);
    for g in &report.runs[0].groups {
        let row = format!("\n{:>5} {:>9}", g.group, g.people);
        assert!(table.contains(&row), "group {} in\n{table}", g.group);
    }
    assert!(table.contains("utilisation"), "{table}");
}

#[test]
fn every_shipped_scenario_runs_and_the_german_state_has_the_seeds_figures() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(scenarios()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let mut scenario = Scenario::load(&path).unwrap();
        scenario.scale_population(3_000);
        let result = engine::run(&scenario, RunOptions::new(1), &|_| {}).unwrap();
        let s = &result.summary;
        let people: u64 = s.groups.iter().map(|g| g.states.values().sum::<u64>()).sum();
        assert_eq!(people, 3_000, "{}", path.display());
        assert!(
            s.pair_states["used"] > 0,
            "{}: {:?}",
            path.display(),
            s.pair_states
        );
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(names.len() >= 3, "{names:?}");

    // Baden-Württemberg at one in eleven: ~11 M people, 50+ centres, deliveries of which
    // some arrive late.
    let state = Scenario::load(&scenarios().join("bw-spring-2021.toml")).unwrap();
    let file = &state.file;
    assert_eq!(file.population.size * 11, 11_000_000);
    assert!(file.centres.len() >= 50, "{}", file.centres.len());
    assert!(file
        .supply
        .iter()
        .all(|s| s.late_share > 0.0 && s.late_lead_days < s.lead_days));
    // The registration peak: `engine`'s own test, which sees each arrival's time.
}
