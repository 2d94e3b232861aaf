//! Turning a centre's published capacity into slot pairs. A pair is one first-dose slot plus
//! the second-dose slot the same person will get (none for one-dose vaccines), so booking a
//! pair books the whole course at once, and the interval always respects the policy.

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};

use crate::allocation::policy::Policy;

/// One block of capacity a centre publishes: a day, a time window cut into slots, how many
/// people each slot takes, and when the second dose follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityRequest {
    /// Vaccine code from the policy.
    pub vaccine: String,
    /// Day of the first dose (centre's local calendar).
    pub day: NaiveDate,
    /// Start of the first slot (local time).
    pub from: NaiveTime,
    /// No slot starts at or after this time.
    pub until: NaiveTime,
    /// Length of one slot in minutes.
    pub slot_minutes: u32,
    /// People vaccinated in parallel per slot.
    pub people_per_slot: u32,
    /// Days from the first to the second dose; required for two-dose vaccines only.
    pub second_dose_after_days: Option<u32>,
}

/// One planned pair in the centre's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPair {
    /// First (or only) dose.
    pub first: NaiveDateTime,
    /// Second dose, `None` for one-dose vaccines.
    pub second: Option<NaiveDateTime>,
}

/// Why capacity cannot be published; each names the field to correct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CapacityError {
    /// The request field at fault.
    pub field: &'static str,
    /// What is wrong, in words a centre's staff can act on.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> CapacityError {
    CapacityError {
        field,
        message: message.into(),
    }
}

/// How far ahead capacity may be published: deliveries are not known further out, and a year
/// typed wrong (9999 for 2021) must be refused, not published.
pub const MAX_DAYS_AHEAD: u64 = 366;

impl CapacityRequest {
    /// Whether the day can be published on `today` (the centre's local date): from today up to
    /// [`MAX_DAYS_AHEAD`] days ahead. Capacity for a day gone by could never be booked.
    pub fn check_day(&self, today: NaiveDate) -> Result<(), CapacityError> {
        let last = today + chrono::Days::new(MAX_DAYS_AHEAD);
        if self.day < today || self.day > last {
            return Err(invalid(
                "day",
                format!("must be between today ({today}) and {last}, got {}", self.day),
            ));
        }
        Ok(())
    }
}

/// The most pairs one request may create, so a typo cannot flood the pool.
pub const MAX_PAIRS_PER_REQUEST: usize = 10_000;

/// Plans the pairs of `request` under `policy`, or says which field is wrong.
pub fn plan(policy: &Policy, request: &CapacityRequest) -> Result<Vec<PlannedPair>, CapacityError> {
    let vaccine = policy.vaccine(&request.vaccine).ok_or_else(|| {
        let known: Vec<&str> = policy.vaccines.iter().map(|v| v.code.as_str()).collect();
        invalid(
            "vaccine",
            format!(
                "unknown vaccine {:?}; this region has {}",
                request.vaccine,
                known.join(", ")
            ),
        )
    })?;
    if request.from >= request.until {
        return Err(invalid("until", format!("must be after from ({})", request.from)));
    }
    if !(1..=240).contains(&request.slot_minutes) {
        return Err(invalid(
            "slot_minutes",
            format!("must be between 1 and 240, got {}", request.slot_minutes),
        ));
    }
    if !(1..=100).contains(&request.people_per_slot) {
        return Err(invalid(
            "people_per_slot",
            format!("must be between 1 and 100, got {}", request.people_per_slot),
        ));
    }
    let second_after = match (&vaccine.interval_days, request.second_dose_after_days) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                "second_dose_after_days",
                format!(
                    "{} needs one dose only; leave the second dose out",
                    vaccine.name.en
                ),
            ))
        }
        (Some(window), None) => {
            return Err(invalid(
                "second_dose_after_days",
                format!(
                    "{} needs a second dose {}–{} days after the first",
                    vaccine.name.en, window.min, window.max
                ),
            ))
        }
        (Some(window), Some(days)) => {
            if days < u32::from(window.min) || days > u32::from(window.max) {
                return Err(invalid(
                    "second_dose_after_days",
                    format!(
                        "{} days is outside {}'s interval of {}–{} days",
                        days, vaccine.name.en, window.min, window.max
                    ),
                ));
            }
            Some(Duration::days(days.into()))
        }
    };
    let slot = Duration::minutes(request.slot_minutes.into());
    let end = request.day.and_time(request.until);
    let mut start = request.day.and_time(request.from);
    let mut pairs = Vec::new();
    while start < end {
        for _ in 0..request.people_per_slot {
            pairs.push(PlannedPair {
                first: start,
                second: second_after.map(|after| start + after),
            });
        }
        if pairs.len() > MAX_PAIRS_PER_REQUEST {
            return Err(invalid(
                "people_per_slot",
                format!("this request would create more than {MAX_PAIRS_PER_REQUEST} pairs; split it"),
            ));
        }
        start += slot;
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_day_gone_by_or_a_year_typed_wrong_is_refused() {
        let today = NaiveDate::from_ymd_opt(2021, 5, 3).unwrap();
        let on = |day: NaiveDate| CapacityRequest {
            day,
            ..request("biontech", Some(21))
        };
        assert!(on(today).check_day(today).is_ok());
        assert!(on(today + chrono::Days::new(MAX_DAYS_AHEAD))
            .check_day(today)
            .is_ok());
        for day in [
            NaiveDate::from_ymd_opt(1900, 1, 1).unwrap(),
            today - chrono::Days::new(1),
            today + chrono::Days::new(MAX_DAYS_AHEAD + 1),
            NaiveDate::from_ymd_opt(9999, 12, 31).unwrap(),
        ] {
            assert_eq!(on(day).check_day(today).unwrap_err().field, "day", "{day}");
        }
    }

    fn policy() -> Policy {
        Policy::from_toml(include_str!("../../../deploy/policies/bw.toml")).expect("example policy is valid")
    }

    fn request(vaccine: &str, second: Option<u32>) -> CapacityRequest {
        CapacityRequest {
            vaccine: vaccine.into(),
            day: NaiveDate::from_ymd_opt(2021, 5, 3).unwrap(),
            from: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            until: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            slot_minutes: 15,
            people_per_slot: 2,
            second_dose_after_days: second,
        }
    }

    #[test]
    fn two_dose_pairs_follow_the_offset() {
        let pairs = plan(&policy(), &request("biontech", Some(42))).unwrap();
        assert_eq!(pairs.len(), 8); // 4 slots x 2 people
        let first = pairs[0];
        assert_eq!(first.first.to_string(), "2021-05-03 08:00:00");
        assert_eq!(first.second.unwrap().to_string(), "2021-06-14 08:00:00");
        assert_eq!(pairs[7].first.to_string(), "2021-05-03 08:45:00");
    }

    #[test]
    fn one_dose_vaccine_makes_one_slot_pairs() {
        let pairs = plan(&policy(), &request("janssen", None)).unwrap();
        assert!(pairs.iter().all(|p| p.second.is_none()));
        let err = plan(&policy(), &request("janssen", Some(28))).unwrap_err();
        assert_eq!(err.field, "second_dose_after_days");
    }

    #[test]
    fn offset_outside_the_interval_window_is_refused() {
        let err = plan(&policy(), &request("biontech", Some(14))).unwrap_err();
        assert_eq!(err.field, "second_dose_after_days");
        assert!(err.message.contains("21–42"), "{err}");
        assert_eq!(
            plan(&policy(), &request("biontech", None)).unwrap_err().field,
            "second_dose_after_days"
        );
    }

    #[test]
    fn bad_windows_and_sizes_name_the_field() {
        let mut r = request("biontech", Some(21));
        r.until = r.from;
        assert_eq!(plan(&policy(), &r).unwrap_err().field, "until");
        let mut r = request("biontech", Some(21));
        r.slot_minutes = 0;
        assert_eq!(plan(&policy(), &r).unwrap_err().field, "slot_minutes");
        let mut r = request("biontech", Some(21));
        r.people_per_slot = 101;
        assert_eq!(plan(&policy(), &r).unwrap_err().field, "people_per_slot");
        assert_eq!(
            plan(&policy(), &request("sputnik", None)).unwrap_err().field,
            "vaccine"
        );
        let mut r = request("biontech", Some(21));
        r.from = NaiveTime::from_hms_opt(0, 0, 0).unwrap();
        r.until = NaiveTime::from_hms_opt(23, 59, 0).unwrap();
        r.slot_minutes = 1;
        r.people_per_slot = 100;
        assert!(plan(&policy(), &r).unwrap_err().message.contains("split"));
    }

    proptest! {
        #[test]
        fn every_pair_is_inside_the_window_and_the_interval(
            from_h in 0u32..23, hours in 1u32..4, slot in 1u32..120, people in 1u32..5, after in 21u32..=42,
        ) {
            let mut r = request("biontech", Some(after));
            r.from = NaiveTime::from_hms_opt(from_h, 0, 0).unwrap();
            r.until = NaiveTime::from_hms_opt((from_h + hours).min(23), 59, 0).unwrap();
            r.slot_minutes = slot;
            r.people_per_slot = people;
            let pairs = plan(&policy(), &r).unwrap();
            prop_assert!(!pairs.is_empty());
            prop_assert_eq!(pairs.len() % people as usize, 0);
            for p in pairs {
                prop_assert!(p.first >= r.day.and_time(r.from) && p.first < r.day.and_time(r.until));
                prop_assert_eq!(p.second.unwrap() - p.first, Duration::days(after.into()));
            }
        }
    }
}
