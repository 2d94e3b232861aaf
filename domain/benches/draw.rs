//! The pure draw at 10k, 100k and 1M waiting registrants, with a tenth as many free pairs:
//! lottery keys, ordering, serial dictatorship and leftovers, without any I/O.
//!
//! `cargo bench -p drawbridge-domain --bench draw` (also times a bare sort of a million keys as
//! the baseline)

use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use drawbridge_domain::allocation::draw::{draw, Candidate, DrawInput, FreePair, Pseudonym, Seed};
use drawbridge_domain::Policy;
use uuid::Uuid;

const POLICY: &str = include_str!("../../deploy/policies/bw.toml");

const CENTRES: [&str; 12] = [
    "stuttgart",
    "karlsruhe",
    "mannheim",
    "heidelberg",
    "freiburg",
    "ulm",
    "heilbronn",
    "pforzheim",
    "reutlingen",
    "tuebingen",
    "konstanz",
    "aalen",
];
const VACCINES: [&str; 4] = ["biontech", "moderna", "astrazeneca", "janssen"];

/// A region-sized input: candidates in all four groups with 1 to 4 accepted vaccines and 1 to
/// 4 reachable centres; pairs spread over 12 centres, 4 vaccines and 6 weeks.
fn input(candidates: usize, pairs: usize) -> DrawInput {
    let drawn_at = Utc.with_ymd_and_hms(2021, 6, 14, 7, 0, 0).unwrap();
    DrawInput {
        drawn_at,
        pairs: (0..pairs)
            .map(|i| FreePair {
                id: Uuid::from_u128(i as u128 + 1),
                centre: CENTRES[i % CENTRES.len()].to_owned(),
                vaccine: VACCINES[(i / CENTRES.len()) % VACCINES.len()].to_owned(),
                first_at: drawn_at + Duration::hours(2) + Duration::minutes((i % 60_480) as i64),
                second_at: Some(drawn_at + Duration::days(42)),
            })
            .collect(),
        candidates: (0..candidates)
            .map(|i| Candidate {
                pseudonym: Pseudonym::of(b"bench", &(i as u128).to_le_bytes()),
                group: (i % 4) as u8 + 1,
                age_band: "60-69".into(),
                waited_weeks: (i % 12) as u32,
                declines: (i % 7 == 0) as u32,
                vaccines: VACCINES[..1 + i % 4].iter().map(|v| v.to_string()).collect(),
                centres: (0..1 + i % 4)
                    .map(|k| CENTRES[(i / 4 + k) % CENTRES.len()].to_owned())
                    .collect(),
                ahead: false,
            })
            .collect(),
    }
}

fn bench(c: &mut Criterion) {
    let policy = Policy::from_toml(POLICY).expect("the bench policy is valid");
    let seed = Seed::from_bytes([7; 32]);
    let mut group = c.benchmark_group("draw");
    group.sample_size(10);
    for candidates in [10_000, 100_000, 1_000_000] {
        let input = input(candidates, candidates / 10);
        let offers = draw(&policy, &seed, &input)
            .expect("a generated input draws")
            .matches
            .len();
        eprintln!(
            "{candidates} candidates, {} pairs: {offers} offers",
            input.pairs.len()
        );
        group.bench_with_input(BenchmarkId::from_parameter(candidates), &input, |b, input| {
            b.iter(|| draw(&policy, &seed, input).expect("a generated input draws"))
        });
    }
    group.finish();
    // Baseline in the same run: only sorting a million (tier, key) pairs, the least any
    // ordered lottery over a million people must do.
    let keys: Vec<(u32, f64)> = (0..1_000_000u64)
        .map(|i| {
            (
                (i % 4) as u32,
                (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64,
            )
        })
        .collect();
    c.bench_function("baseline/sort_1000000_keys", |b| {
        b.iter(|| {
            let mut sorted = keys.clone();
            sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
            sorted
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
