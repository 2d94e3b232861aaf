//! Who waits for a draw, and how a waiting registrant enters it: the allocation rules that sit
//! between the stored registrants and the pure draw, kept here so that the allocator and the
//! simulations apply the very same ones.
//!
//! - A registrant waits while active with neither a pending offer nor a live booking; an offer
//!   that lapses or is declined, and a booking that is cancelled, put them back in the pool.
//! - An offer lapses at the first tick at or after its expiry ([`offer_lapsed`]); its pair is
//!   open again for that very draw.
//! - Declined and lapsed offers both count as declines ([`counts_as_decline`]): either way a
//!   pair stayed unused for a while.
//! - A waiting registrant enters a draw only with at least one vaccine they may have that day
//!   ([`candidate`]); the weeks they have waited count from their verification.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::allocation::draw::{Candidate, Pseudonym};
use crate::allocation::eligibility::{eligible_vaccines, Person};
use crate::allocation::geo::Place;
use crate::allocation::policy::Policy;

/// How an offer ended, as far as the pool is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferEnd {
    /// Accepted: the pair is booked and the registrant leaves the pool.
    Accepted,
    /// Declined: the pair is open again and the registrant back in the pool.
    Declined,
    /// Not answered in time: the pair is open again and the registrant back in the pool.
    Lapsed,
    /// Withdrawn by the centre: the registrant goes back in the pool ahead of every tier.
    Withdrawn,
}

/// Whether an offer that ended this way counts against the registrant's lottery weight.
pub fn counts_as_decline(end: OfferEnd) -> bool {
    matches!(end, OfferEnd::Declined | OfferEnd::Lapsed)
}

/// Whether a pending offer expiring at `expires_at` has lapsed at a tick at `now`.
pub fn offer_lapsed(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    expires_at <= now
}

/// Full weeks since verification, as the draw's waiting-time weight counts them.
pub fn waited_weeks(verified_at: DateTime<Utc>, drawn_at: DateTime<Utc>) -> u32 {
    (drawn_at - verified_at).num_weeks().max(0) as u32
}

/// The age band published with a candidate, e.g. `60-69`, from their age this year.
pub fn age_band(person: &Person, today: NaiveDate) -> String {
    let age = person.age_in_year(today.year()).max(0);
    format!("{}-{}", age / 10 * 10, age / 10 * 10 + 9)
}

/// What the draw needs to know about one waiting registrant besides their person.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// Their pseudonym.
    pub pseudonym: Pseudonym,
    /// When their phone was verified: waiting time counts from then.
    pub verified_at: DateTime<Utc>,
    /// Offers they declined or let lapse ([`counts_as_decline`]).
    pub declines: u32,
    /// A centre withdrew their pair: they go before every tier.
    pub ahead: bool,
    /// The centres within their travel distance, nearest first ([`reachable`]).
    pub centres: Vec<String>,
}

/// The registrant as a draw candidate on `today` (the region's calendar day of `drawn_at`), or
/// `None` when no vaccine may be offered to them today (group not released, too young for
/// every vaccine they accept, postcode outside the region, ...).
pub fn candidate(
    policy: &Policy,
    person: &Person,
    waiting: Waiting,
    drawn_at: DateTime<Utc>,
    today: NaiveDate,
) -> Option<Candidate> {
    let vaccines: Vec<String> = eligible_vaccines(policy, person, today)
        .map(|v| v.code.clone())
        .collect();
    if vaccines.is_empty() {
        return None;
    }
    Some(Candidate {
        pseudonym: waiting.pseudonym,
        group: person.priority_group,
        age_band: age_band(person, today),
        waited_weeks: waited_weeks(waiting.verified_at, drawn_at),
        declines: waiting.declines,
        vaccines,
        centres: waiting.centres,
        ahead: waiting.ahead,
    })
}

/// The centres within `max_km` of `home`, nearest first (ties by id): the travel rule.
pub fn reachable<'a>(
    home: Place,
    centres: impl IntoIterator<Item = (&'a str, Place)>,
    max_km: f64,
) -> Vec<String> {
    let mut near: Vec<(f64, &str)> = centres
        .into_iter()
        .map(|(id, place)| (home.distance_km(place), id))
        .filter(|(km, _)| *km <= max_km)
        .collect();
    near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    near.into_iter().map(|(_, id)| id.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    #[test]
    fn waited_weeks_count_full_weeks_and_never_go_negative() {
        let at = Utc.with_ymd_and_hms(2021, 4, 1, 8, 0, 0).unwrap();
        assert_eq!(waited_weeks(at, at + Duration::days(13)), 1);
        assert_eq!(waited_weeks(at, at + Duration::days(14)), 2);
        assert_eq!(waited_weeks(at, at - Duration::days(3)), 0);
    }

    #[test]
    fn an_offer_lapses_at_its_expiry_and_declines_count_lapses_too() {
        let at = Utc.with_ymd_and_hms(2021, 4, 1, 8, 0, 0).unwrap();
        assert!(offer_lapsed(at, at));
        assert!(!offer_lapsed(at, at - Duration::seconds(1)));
        assert!(counts_as_decline(OfferEnd::Lapsed) && counts_as_decline(OfferEnd::Declined));
        assert!(!counts_as_decline(OfferEnd::Accepted) && !counts_as_decline(OfferEnd::Withdrawn));
    }

    #[test]
    fn reachable_centres_are_nearest_first_within_the_distance() {
        let stuttgart = Place {
            latitude: 48.7784,
            longitude: 9.1730,
        };
        let karlsruhe = Place {
            latitude: 49.0040,
            longitude: 8.4037,
        };
        let centres = [("ka", karlsruhe), ("s", stuttgart)];
        assert_eq!(reachable(stuttgart, centres, 100.0), ["s", "ka"]);
        assert_eq!(reachable(stuttgart, centres, 10.0), ["s"]);
    }
}
