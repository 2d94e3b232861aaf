//! Statistical self-checks of recorded draws, so that a broken shuffle (like the 2012 US
//! diversity visa lottery, which favoured early applicants through a bug) is caught by anyone
//! auditing the published draws, not only by reading the code.
//!
//! The tests look at the lottery order, not at the offers: the order is where randomness and
//! weights act, and replaying a draw proves that the offers follow from the order. Within a
//! tier, Efraimidis–Spirakis keys `ln(u)/w` put a candidate above a threshold `t` with
//! probability `1 - e^(t·w)`. Choosing `t` so that the expected number above it is half the
//! tier gives, for any partition of the tier into cells (priority groups, registration-time
//! quintiles, database-row-order quintiles), the expected number of each cell in the early
//! half. A Pearson chi-square test compares it with what the draw did. Each cell's expectation
//! already includes its weights, so legitimate weights (waiting time, groups) do not count as
//! bias; anything else that moves a cell forward does.

use std::collections::BTreeMap;

use serde::Serialize;

/// Significance level of every test: a fair draw fails a test once in a thousand audits.
pub const SIGNIFICANCE: f64 = 0.001;

/// The standard normal quantile for 1 - [`SIGNIFICANCE`].
const Z: f64 = 3.090_232_306;

/// Cells expecting fewer than this many candidates in the early half are merged away: the
/// chi-square approximation needs a handful per cell.
pub const MIN_EXPECTED: f64 = 5.0;

/// The equal bins of [`uniformity_test`].
pub const UNIFORMITY_BINS: usize = 10;

/// A candidate as the tests see them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contender {
    /// Strict priority tier.
    pub tier: u32,
    /// Lottery weight under the policy.
    pub weight: f64,
    /// Recorded lottery key.
    pub key: f64,
}

/// The result of one test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    /// What was tested.
    pub name: String,
    /// The chi-square statistic.
    pub statistic: f64,
    /// Degrees of freedom.
    pub degrees_of_freedom: usize,
    /// The statistic's critical value at [`SIGNIFICANCE`].
    pub critical_value: f64,
    /// False when the statistic exceeds the critical value: the draw looks biased.
    pub passed: bool,
}

/// Upper critical value of chi-square with `df` degrees of freedom at [`SIGNIFICANCE`]:
/// exact for one degree of freedom (the square of the two-sided normal quantile), and the
/// Wilson–Hilferty approximation above, within 2% of the tables and on the safe (higher) side.
pub fn critical_value(df: usize) -> f64 {
    if df == 1 {
        return 3.290_526_731f64.powi(2);
    }
    let k = df as f64;
    let h = 2.0 / (9.0 * k);
    k * (1.0 - h + Z * h.sqrt()).powi(3)
}

/// Whether membership in the early half of each tier's order depends on `cell_of` beyond
/// what the weights explain. `cell_of[i]` is the cell of `contenders[i]`. `None` when no tier
/// has enough candidates to test.
pub fn early_half_test(name: &str, contenders: &[Contender], cell_of: &[usize]) -> Option<TestResult> {
    let mut tiers: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, c) in contenders.iter().enumerate() {
        tiers.entry(c.tier).or_default().push(i);
    }
    let (mut statistic, mut df) = (0.0, 0);
    for members in tiers.values() {
        let weights: Vec<f64> = members.iter().map(|&i| contenders[i].weight).collect();
        let early = members.len() / 2;
        let Some(t) = threshold(&weights, early as f64) else {
            continue;
        };
        // The `early` best keys of the tier: ties are impossible for distinct pseudonyms.
        let mut by_key = members.clone();
        by_key.sort_by(|&a, &b| contenders[b].key.total_cmp(&contenders[a].key));
        let mut is_early = vec![false; contenders.len()];
        for &i in &by_key[..early] {
            is_early[i] = true;
        }
        // Per cell: observed early, expected early, size.
        let mut cells: BTreeMap<usize, (f64, f64, f64)> = BTreeMap::new();
        for &i in members {
            let p = 1.0 - (t * contenders[i].weight).exp();
            let cell = cells.entry(cell_of[i]).or_default();
            cell.0 += f64::from(u8::from(is_early[i]));
            cell.1 += p;
            cell.2 += 1.0;
        }
        let cells = merge_small(cells.into_values().collect());
        if cells.len() < 2 {
            continue;
        }
        df += cells.len() - 1;
        statistic += cells
            .iter()
            .map(|&(observed, expected, size)| {
                // Both sides of the 2×k table: early and late.
                (observed - expected).powi(2) / expected
                    + (observed - expected).powi(2) / (size - expected).max(f64::MIN_POSITIVE)
            })
            .sum::<f64>();
    }
    (df > 0).then(|| result(name, statistic, df))
}

/// Whether the uniform numbers behind the keys (`u = e^(key·w)`) are uniform: ten equal bins.
pub fn uniformity_test(contenders: &[Contender]) -> Option<TestResult> {
    const BINS: usize = UNIFORMITY_BINS;
    let n = contenders.len() as f64;
    if n / (BINS as f64) < MIN_EXPECTED {
        return None;
    }
    let mut counts = [0.0; BINS];
    for c in contenders {
        let u = (c.key * c.weight).exp();
        counts[((u * BINS as f64) as usize).min(BINS - 1)] += 1.0;
    }
    let expected = n / BINS as f64;
    let statistic = counts.iter().map(|o| (o - expected).powi(2) / expected).sum();
    Some(result("lottery numbers are uniform", statistic, BINS - 1))
}

/// Cell of each of `n` items when split into `cells` equal runs by `rank` (0 = first).
pub fn quantile_cells(ranks: &[usize], cells: usize) -> Vec<usize> {
    let n = ranks.len().max(1);
    ranks.iter().map(|&r| r * cells / n).collect()
}

fn result(name: &str, statistic: f64, df: usize) -> TestResult {
    let critical_value = critical_value(df);
    TestResult {
        name: name.to_owned(),
        statistic,
        degrees_of_freedom: df,
        critical_value,
        passed: statistic <= critical_value,
    }
}

/// `t < 0` with `Σ (1 - e^(t·w)) = target`, by bisection; `None` if the tier is too small.
fn threshold(weights: &[f64], target: f64) -> Option<f64> {
    if target < 1.0 || target >= weights.len() as f64 {
        return None;
    }
    let above = |t: f64| weights.iter().map(|w| 1.0 - (t * w).exp()).sum::<f64>();
    let (mut low, mut high) = (-1.0f64, 0.0f64);
    while above(low) < target {
        low *= 2.0;
        if low < -1e12 {
            return None;
        }
    }
    for _ in 0..200 {
        let mid = (low + high) / 2.0;
        if above(mid) < target {
            high = mid;
        } else {
            low = mid;
        }
    }
    Some((low + high) / 2.0)
}

/// Folds cells expecting too few into their neighbour, so each tested cell is large enough.
fn merge_small(cells: Vec<(f64, f64, f64)>) -> Vec<(f64, f64, f64)> {
    let mut merged: Vec<(f64, f64, f64)> = Vec::new();
    for cell in cells {
        match merged.last_mut() {
            Some(last) if last.1 < MIN_EXPECTED || last.2 - last.1 < MIN_EXPECTED => {
                last.0 += cell.0;
                last.1 += cell.1;
                last.2 += cell.2;
            }
            _ => merged.push(cell),
        }
    }
    if let [.., before, last] = merged.as_mut_slice() {
        if last.1 < MIN_EXPECTED || last.2 - last.1 < MIN_EXPECTED {
            before.0 += last.0;
            before.1 += last.1;
            before.2 += last.2;
            merged.pop();
        }
    }
    merged
}

/// One cell of a draw's pool (a priority group, an age band, ...): its candidates, the offers
/// they got and the offer rate, offers / candidates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferRate {
    /// The cell, as shown: `2`, `60-69`, `2026-W49`, `web`.
    pub cell: String,
    /// Candidates in the cell.
    pub candidates: u64,
    /// Offers the draw made them.
    pub offers: u64,
    /// offers / candidates.
    pub rate: f64,
}

/// The offer rates of a pool split into cells: each candidate's cell and whether the draw
/// offered them a pair. Cells come in the order of their keys, named by `label`.
pub fn offer_rates<K: Ord>(
    people: impl IntoIterator<Item = (K, bool)>,
    label: impl Fn(&K) -> String,
) -> Vec<OfferRate> {
    let mut cells: BTreeMap<K, (u64, u64)> = BTreeMap::new();
    for (cell, offered) in people {
        let counts = cells.entry(cell).or_default();
        counts.0 += 1;
        counts.1 += u64::from(offered);
    }
    cells
        .into_iter()
        .map(|(cell, (candidates, offers))| OfferRate {
            cell: label(&cell),
            candidates,
            offers,
            rate: offers as f64 / candidates as f64,
        })
        .collect()
}

/// The key that sorts age bands (`5-9`, `60-69`, `100-109`) by age, not as text.
pub fn age_band_order(band: &str) -> (u32, String) {
    let from = band
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(u32::MAX);
    (from, band.to_owned())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::allocation::draw::{lottery_key, Pseudonym, Seed};

    #[test]
    fn offer_rates_count_each_cell_in_the_order_of_its_key() {
        let bands = ["60-69", "100-109", "5-9", "60-69", "5-9", "60-69"];
        let offered = [true, false, true, false, false, true];
        let rates = offer_rates(
            bands.iter().map(|b| age_band_order(b)).zip(offered),
            |(_, band)| band.clone(),
        );
        let cells: Vec<(&str, u64, u64)> = rates
            .iter()
            .map(|r| (r.cell.as_str(), r.candidates, r.offers))
            .collect();
        assert_eq!(cells, [("5-9", 2, 1), ("60-69", 3, 2), ("100-109", 1, 0)]);
        assert_eq!(rates[0].rate, 0.5);
        assert!(offer_rates(Vec::<(u8, bool)>::new(), u8::to_string).is_empty());
    }

    /// 4,000 candidates in one tier; every fourth has weight 3, the rest weight 1.
    fn pool(seed: u8) -> (Vec<Contender>, Vec<usize>) {
        let seed = Seed::from_bytes([seed; 32]);
        let contenders: Vec<Contender> = (0..4000u128)
            .map(|i| {
                let weight = if i % 4 == 0 { 3.0 } else { 1.0 };
                let pseudonym = Pseudonym::of(b"k", &i.to_le_bytes());
                Contender {
                    tier: 1,
                    weight,
                    key: lottery_key(&seed, &pseudonym, weight),
                }
            })
            .collect();
        let groups = (0..4000).map(|i| usize::from(i % 4 == 0)).collect();
        (contenders, groups)
    }

    #[test]
    fn fair_draws_pass_every_test() {
        let mut failures = 0;
        for seed in 0..20 {
            let (contenders, groups) = pool(seed);
            let order: Vec<usize> = (0..contenders.len()).collect();
            let tests = [
                early_half_test("groups", &contenders, &groups),
                early_half_test("registration time", &contenders, &quantile_cells(&order, 5)),
                uniformity_test(&contenders),
            ];
            failures += tests.iter().flatten().filter(|t| !t.passed).count();
        }
        // At significance 0.001, 60 tests of fair draws essentially never fail.
        assert_eq!(failures, 0);
    }

    #[test]
    fn ignoring_weights_is_caught() {
        let (mut contenders, groups) = pool(1);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for c in &mut contenders {
            // A shuffle that forgets the weights: u alone.
            c.key = rng.gen::<f64>().ln();
        }
        let test = early_half_test("groups", &contenders, &groups).unwrap();
        assert!(!test.passed, "{test:?}");
    }

    #[test]
    fn favouring_early_registrants_is_caught() {
        let (mut contenders, _) = pool(2);
        let n = contenders.len();
        // Like the 2012 visa lottery: the first fifth of registrants all sort to the front.
        for c in &mut contenders[..n / 5] {
            c.key /= 4.0;
        }
        let order: Vec<usize> = (0..n).collect();
        let test = early_half_test("registration time", &contenders, &quantile_cells(&order, 5)).unwrap();
        assert!(!test.passed, "{test:?}");
        assert!(!uniformity_test(&contenders).unwrap().passed);
    }

    #[test]
    fn critical_values_are_close_to_the_tables() {
        for (df, exact) in [(1, 10.8275), (4, 18.4668), (9, 27.8772), (20, 45.3147)] {
            let approx = critical_value(df);
            assert!(
                approx >= exact && (approx - exact) / exact < 0.02,
                "df {df}: {approx} vs {exact}"
            );
        }
    }

    #[test]
    fn tiny_tiers_are_not_tested() {
        let (contenders, groups) = pool(3);
        assert!(early_half_test("groups", &contenders[..3], &groups[..3]).is_none());
        assert!(uniformity_test(&contenders[..10]).is_none());
    }
}
