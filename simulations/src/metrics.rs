//! What a run measures, per day and per priority group, and its summary.

use std::collections::BTreeMap;

use chrono::Duration;
use drawbridge_domain::allocation::draw::UnmatchedReason;
use drawbridge_domain::allocation::fairness::TestResult;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::engine::{PairState, PersonState};
use crate::scenario::Scenario;

#[derive(Debug, Clone, Default)]
struct GroupDay {
    registered: u64,
    became_eligible: u64,
    pool: u64,
    ineligible: u64,
    offers: u64,
    first_offers: u64,
    bookings: u64,
    declines: u64,
    lapses: u64,
    cancellations: u64,
    envy: u64,
    /// Registration to first offer, days.
    offer_waits: Vec<f64>,
    /// Registration to booking, days.
    booking_waits: Vec<f64>,
    /// First eligible to booking, days.
    eligible_waits: Vec<f64>,
}

#[derive(Debug, Clone, Default)]
struct PairDay {
    published: u64,
    used: u64,
    no_show: u64,
    unused: u64,
    unmatched: [u64; 4],
}

/// Collects a run's figures as they happen.
#[derive(Debug, Clone)]
pub struct DayRecorder {
    /// The scenario's priority groups, in scenario order.
    pub groups: Vec<u8>,
    days: Vec<Vec<GroupDay>>,
    pairs: Vec<PairDay>,
    audits: BTreeMap<String, (u64, u64)>,
    draws: u64,
}

impl DayRecorder {
    /// An empty recorder for `days` days.
    pub fn new(days: u32, groups: Vec<u8>) -> DayRecorder {
        DayRecorder {
            days: vec![vec![GroupDay::default(); groups.len()]; days as usize],
            pairs: vec![PairDay::default(); days as usize],
            groups,
            audits: BTreeMap::new(),
            draws: 0,
        }
    }

    fn at(&mut self, day: u32, group: u8) -> &mut GroupDay {
        let g = self.groups.iter().position(|&g| g == group).unwrap_or(0);
        &mut self.days[day as usize][g]
    }

    pub(crate) fn registered(&mut self, day: u32, group: u8) {
        self.at(day, group).registered += 1;
    }
    pub(crate) fn became_eligible(&mut self, day: u32, group: u8) {
        self.at(day, group).became_eligible += 1;
    }
    pub(crate) fn pool(&mut self, day: u32, group: u8, count: u64) {
        self.at(day, group).pool += count;
    }
    pub(crate) fn ineligible(&mut self, day: u32, group: u8) {
        self.at(day, group).ineligible += 1;
    }
    pub(crate) fn offered(&mut self, day: u32, group: u8, first_after: Option<i64>) {
        let d = self.at(day, group);
        d.offers += 1;
        if let Some(secs) = first_after {
            d.first_offers += 1;
            d.offer_waits.push(secs as f64 / 86_400.0);
        }
    }
    pub(crate) fn booked(&mut self, day: u32, group: u8, since_registration: i64, since_eligible: i64) {
        let d = self.at(day, group);
        d.bookings += 1;
        d.booking_waits.push(since_registration as f64 / 86_400.0);
        d.eligible_waits.push(since_eligible as f64 / 86_400.0);
    }
    pub(crate) fn declined(&mut self, day: u32, group: u8) {
        self.at(day, group).declines += 1;
    }
    pub(crate) fn lapsed(&mut self, day: u32, group: u8) {
        self.at(day, group).lapses += 1;
    }
    pub(crate) fn cancelled(&mut self, day: u32, group: u8) {
        self.at(day, group).cancellations += 1;
    }
    pub(crate) fn envy(&mut self, day: u32, group: u8) {
        self.at(day, group).envy += 1;
    }
    pub(crate) fn published(&mut self, day: u32) {
        self.pairs[day as usize].published += 1;
    }
    pub(crate) fn unused(&mut self, day: u32) {
        self.pairs[day as usize].unused += 1;
    }
    pub(crate) fn appointment(&mut self, day: u32, shows: bool) {
        let d = &mut self.pairs[day as usize];
        if shows {
            d.used += 1;
        } else {
            d.no_show += 1;
        }
    }
    pub(crate) fn unmatched(&mut self, day: u32, reason: UnmatchedReason) {
        let i = match reason {
            UnmatchedReason::TooSoon => 0,
            UnmatchedReason::NoOneEligible => 1,
            UnmatchedReason::OutOfReach => 2,
            UnmatchedReason::PoolServed => 3,
        };
        self.pairs[day as usize].unmatched[i] += 1;
        let _ = self.draws;
    }
    pub(crate) fn audited(&mut self, _day: u32, result: &TestResult) {
        let entry = self.audits.entry(result.name.clone()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(!result.passed);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish(
        self,
        scenario: &Scenario,
        seed: u64,
        population: u64,
        people: FxHashMap<(u8, PersonState), u64>,
        pairs: FxHashMap<PairState, u64>,
        waits: Vec<Vec<f64>>,
        all_waits: Vec<f64>,
    ) -> RunResult {
        let start = scenario.file.start;
        let mut rows = Vec::new();
        let mut cumulative = vec![(0u64, 0u64, 0u64); self.groups.len()];
        let mut offer_waits: Vec<Vec<f64>> = vec![Vec::new(); self.groups.len()];
        let mut booking_waits: Vec<Vec<f64>> = vec![Vec::new(); self.groups.len()];
        let mut totals: Vec<GroupDay> = vec![GroupDay::default(); self.groups.len()];
        for (day, groups) in self.days.iter().enumerate() {
            for (g, d) in groups.iter().enumerate() {
                let c = &mut cumulative[g];
                c.0 += d.registered;
                c.1 += d.became_eligible;
                c.2 += d.first_offers;
                offer_waits[g].extend(&d.offer_waits);
                booking_waits[g].extend(&d.booking_waits);
                let t = &mut totals[g];
                t.offers += d.offers;
                t.bookings += d.bookings;
                t.declines += d.declines;
                t.lapses += d.lapses;
                t.cancellations += d.cancellations;
                t.envy += d.envy;
                rows.push(GroupDayRow {
                    seed,
                    day: day as u32,
                    date: (start + Duration::days(day as i64)).to_string(),
                    group: self.groups[g],
                    registered: c.0,
                    ever_eligible: c.1,
                    pool: d.pool,
                    ineligible: d.ineligible,
                    offers: d.offers,
                    offer_rate: ratio(d.offers, d.pool),
                    bookings: d.bookings,
                    declines: d.declines,
                    expiries: d.lapses,
                    cancellations: d.cancellations,
                    time_to_offer_p50_days: quantile(&d.offer_waits, 0.5),
                    time_to_offer_p90_days: quantile(&d.offer_waits, 0.9),
                    time_to_booking_p50_days: quantile(&d.booking_waits, 0.5),
                    time_to_booking_p90_days: quantile(&d.booking_waits, 0.9),
                    reached_share: ratio(c.2, c.1),
                    envy: d.envy,
                    booking_wait_gini: gini(&d.eligible_waits),
                });
            }
        }
        let pair_rows: Vec<PairDayRow> = self
            .pairs
            .iter()
            .enumerate()
            .map(|(day, p)| PairDayRow {
                seed,
                day: day as u32,
                date: (start + Duration::days(day as i64)).to_string(),
                appointments: p.published,
                used: p.used,
                no_show: p.no_show,
                unused: p.unused,
                utilisation: ratio(p.used, p.published),
                wasted: p.no_show + p.unused,
                unmatched_too_soon: p.unmatched[0],
                unmatched_no_one_eligible: p.unmatched[1],
                unmatched_out_of_reach: p.unmatched[2],
                unmatched_pool_served: p.unmatched[3],
            })
            .collect();
        let mut groups = Vec::new();
        let mut metrics = BTreeMap::new();
        for (g, &id) in self.groups.iter().enumerate() {
            let states: BTreeMap<String, u64> = PersonState::ALL
                .iter()
                .map(|s| (s.name().to_owned(), people.get(&(id, *s)).copied().unwrap_or(0)))
                .collect();
            let size: u64 = states.values().sum();
            let t = &totals[g];
            let summary = GroupSummary {
                group: id,
                people: size,
                ever_eligible: cumulative[g].1,
                reached_share: ratio(cumulative[g].2, cumulative[g].1),
                vaccinated_share: ratio(states["vaccinated"], cumulative[g].1),
                offers: t.offers,
                bookings: t.bookings,
                declines: t.declines,
                expiries: t.lapses,
                cancellations: t.cancellations,
                envy: t.envy,
                time_to_offer_p50_days: quantile(&offer_waits[g], 0.5),
                time_to_offer_p90_days: quantile(&offer_waits[g], 0.9),
                time_to_booking_p50_days: quantile(&booking_waits[g], 0.5),
                time_to_booking_p90_days: quantile(&booking_waits[g], 0.9),
                wait_gini: gini(&waits[g]),
                states,
            };
            let name = |m: &str| format!("group{id}.{m}");
            metrics.insert(name("reached_share"), summary.reached_share);
            metrics.insert(name("vaccinated_share"), summary.vaccinated_share);
            metrics.insert(name("time_to_offer_p50_days"), summary.time_to_offer_p50_days);
            metrics.insert(name("time_to_booking_p50_days"), summary.time_to_booking_p50_days);
            metrics.insert(name("wait_gini"), summary.wait_gini);
            metrics.insert(name("envy"), summary.envy as f64);
            groups.push(summary);
        }
        let pair_states: BTreeMap<String, u64> = PairState::ALL
            .iter()
            .map(|s| (s.name().to_owned(), pairs.get(s).copied().unwrap_or(0)))
            .collect();
        let published: u64 = pair_states.values().sum();
        let past = pair_states["used"] + pair_states["no_show"] + pair_states["unused"];
        let wasted = pair_states["no_show"] + pair_states["unused"];
        let envy: u64 = totals.iter().map(|t| t.envy).sum();
        metrics.insert("utilisation".into(), ratio(pair_states["used"], past));
        metrics.insert("wasted_pairs".into(), wasted as f64);
        metrics.insert("wait_gini".into(), gini(&all_waits));
        metrics.insert("envy".into(), envy as f64);
        metrics.insert(
            "vaccinated".into(),
            groups.iter().map(|g| g.states["vaccinated"]).sum::<u64>() as f64,
        );
        let summary = Summary {
            scenario: scenario.file.name.clone(),
            seed,
            population,
            days: scenario.file.days,
            draws_per_day: scenario.file.draws_per_day,
            pairs_published: published,
            pair_states,
            utilisation: ratio(pair_rows.iter().map(|p| p.used).sum(), past),
            wasted_pairs: wasted,
            wait_gini: gini(&all_waits),
            envy,
            groups,
            audit: self
                .audits
                .into_iter()
                .map(|(test, (runs, failures))| AuditSummary { test, runs, failures })
                .collect(),
            metrics,
        };
        RunResult {
            rows,
            pair_rows,
            summary,
        }
    }
}

/// One day of one priority group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupDayRow {
    /// The run's seed.
    pub seed: u64,
    /// Day index from 0.
    pub day: u32,
    /// The day's date.
    pub date: String,
    /// The priority group.
    pub group: u8,
    /// Registered so far.
    pub registered: u64,
    /// Ever in a draw's pool so far.
    pub ever_eligible: u64,
    /// In the pool at the day's first draw.
    pub pool: u64,
    /// Registered and waiting, but not eligible for any vaccine, at the day's first draw.
    pub ineligible: u64,
    /// Offers made this day.
    pub offers: u64,
    /// Offers per person in the pool.
    pub offer_rate: f64,
    /// Offers accepted this day.
    pub bookings: u64,
    /// Offers declined this day.
    pub declines: u64,
    /// Offers lapsed this day.
    pub expiries: u64,
    /// Bookings cancelled this day.
    pub cancellations: u64,
    /// Registration to first offer, of this day's first offers: median, days.
    pub time_to_offer_p50_days: f64,
    /// ... 90th percentile.
    pub time_to_offer_p90_days: f64,
    /// Registration to booking, of this day's bookings: median, days.
    pub time_to_booking_p50_days: f64,
    /// ... 90th percentile.
    pub time_to_booking_p90_days: f64,
    /// Of those ever eligible so far, the share offered at least once.
    pub reached_share: f64,
    /// Offers a better-tier person left without offer in the same draw could have taken.
    pub envy: u64,
    /// Gini of the waits (eligible to booking) of this day's bookings.
    pub booking_wait_gini: f64,
}

/// One day's pairs, by their first appointment's day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairDayRow {
    /// The run's seed.
    pub seed: u64,
    /// Day index from 0.
    pub day: u32,
    /// The day's date.
    pub date: String,
    /// Pairs whose first appointment is this day.
    pub appointments: u64,
    /// ... used.
    pub used: u64,
    /// ... booked but nobody came.
    pub no_show: u64,
    /// ... never booked.
    pub unused: u64,
    /// used / appointments.
    pub utilisation: f64,
    /// no_show + unused.
    pub wasted: u64,
    /// Pairs left over in this day's draws: too soon to offer.
    pub unmatched_too_soon: u64,
    /// ... nobody may have the vaccine.
    pub unmatched_no_one_eligible: u64,
    /// ... nobody eligible lives near enough.
    pub unmatched_out_of_reach: u64,
    /// ... everyone who could was served.
    pub unmatched_pool_served: u64,
}

/// A group's totals over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// The group.
    pub group: u8,
    /// Its members.
    pub people: u64,
    /// Ever in a draw's pool.
    pub ever_eligible: u64,
    /// Of those, offered at least once.
    pub reached_share: f64,
    /// Of those, vaccinated by the horizon.
    pub vaccinated_share: f64,
    /// Offers.
    pub offers: u64,
    /// Bookings.
    pub bookings: u64,
    /// Declines.
    pub declines: u64,
    /// Lapsed offers.
    pub expiries: u64,
    /// Cancelled bookings.
    pub cancellations: u64,
    /// Envied offers (see [`GroupDayRow::envy`]).
    pub envy: u64,
    /// Registration to first offer: median, days.
    pub time_to_offer_p50_days: f64,
    /// ... 90th percentile.
    pub time_to_offer_p90_days: f64,
    /// Registration to booking: median, days.
    pub time_to_booking_p50_days: f64,
    /// ... 90th percentile.
    pub time_to_booking_p90_days: f64,
    /// Gini of everyone's wait from first eligible to booking, or to the horizon if unbooked.
    pub wait_gini: f64,
    /// Members by state at the horizon.
    pub states: BTreeMap<String, u64>,
}

/// How often a bias test ran on the run's draws and failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditSummary {
    /// The test.
    pub test: String,
    /// Draws it ran on.
    pub runs: u64,
    /// Draws it flagged.
    pub failures: u64,
}

/// A run's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// People.
    pub population: u64,
    /// Days simulated.
    pub days: u32,
    /// Draws a day.
    pub draws_per_day: u32,
    /// Pairs published.
    pub pairs_published: u64,
    /// Pairs by state at the horizon.
    pub pair_states: BTreeMap<String, u64>,
    /// Used / pairs whose first appointment passed.
    pub utilisation: f64,
    /// Pairs whose first appointment passed without a dose.
    pub wasted_pairs: u64,
    /// Gini of waits, everyone.
    pub wait_gini: f64,
    /// Envied offers.
    pub envy: u64,
    /// Per group.
    pub groups: Vec<GroupSummary>,
    /// Bias tests on the draws (with `--audit`).
    pub audit: Vec<AuditSummary>,
    /// The scalar metrics compared across policies and seeds.
    pub metrics: BTreeMap<String, f64>,
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Per day and group.
    pub rows: Vec<GroupDayRow>,
    /// Per day.
    pub pair_rows: Vec<PairDayRow>,
    /// Totals.
    pub summary: Summary,
}

/// `a / b`, 0 when `b` is 0.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The `q` quantile (nearest rank), 0 for no values.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The Gini coefficient of non-negative values: 0 when all are equal, towards 1 when one
/// holds everything; 0 for no values or all zero.
pub fn gini(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let total: f64 = sorted.iter().sum();
    if sorted.is_empty() || total <= 0.0 {
        return 0.0;
    }
    let weighted: f64 = sorted.iter().enumerate().map(|(i, x)| (i as f64 + 1.0) * x).sum();
    2.0 * weighted / (n * total) - (n + 1.0) / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_is_zero_for_equal_waits_and_high_for_one_long_wait() {
        assert_eq!(gini(&[3.0, 3.0, 3.0]), 0.0);
        let g = gini(&[0.0, 0.0, 0.0, 10.0]);
        assert!((g - 0.75).abs() < 1e-12, "{g}");
        assert_eq!(gini(&[]), 0.0);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 5.0);
        assert_eq!(quantile(&v, 0.9), 9.0);
        assert_eq!(quantile(&v, 1.0), 10.0);
    }
}
