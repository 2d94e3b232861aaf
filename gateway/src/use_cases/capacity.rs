//! What vaccination centres do with their capacity: publish it as slot pairs (idempotently),
//! read the day's schedule, and withdraw capacity that cannot be served. Centre staff act for
//! their own centre only; region admins for any centre of their region.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use drawbridge_domain::{plan, CapacityError, CapacityRequest, StaffMember};
use drawbridge_platform::capacity::insert_pairs;
use drawbridge_platform::outbox::Notification;
use drawbridge_platform::states::{BookingState, SlotPairState};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::answer_offer::{appointment, reference, withdrawn};
use super::{audit, forbidden};
use crate::error::{ApiError, ErrorCode};
use crate::store::capacity::{self, NewBatch};
use crate::store::messages::tell;
use crate::store::{bookings, registrants};
use crate::AppState;

/// A centre as these use cases need it.
pub struct Centre {
    pub id: String,
    pub region: String,
    pub timezone: Tz,
    /// `None`: every vaccine of the region's policy.
    pub vaccines: Option<Vec<String>>,
    pub closed: bool,
}

impl Centre {
    /// Whether the centre gives `vaccine`.
    pub fn gives(&self, vaccine: &str) -> bool {
        self.vaccines
            .as_ref()
            .is_none_or(|given| given.iter().any(|v| v == vaccine))
    }
}

/// The centre, if it exists and `member` may run it.
pub async fn centre(state: &AppState, member: &StaffMember, id: &str) -> Result<Centre, ApiError> {
    let row = capacity::centre(state.store.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("There is no centre {id:?}.")))?;
    member.may_run_centre(id, &row.region_id).map_err(forbidden)?;
    Ok(Centre {
        id: id.to_owned(),
        timezone: row
            .timezone
            .parse()
            .map_err(|_| ApiError::internal(format!("region time zone {:?} is unknown", row.timezone)))?,
        region: row.region_id,
        vaccines: row.vaccines,
        closed: row.closed,
    })
}

/// Capacity published, now or by an earlier request with the same key.
#[derive(Serialize)]
pub struct Published {
    pub capacity_id: Uuid,
    pub pairs_created: usize,
    /// True when an earlier request with the same key made it.
    pub replayed: bool,
}

/// Publishes slot pairs. Repeating a request with the same `idempotency_key` creates nothing
/// and answers as the first time; the same key with a different request is refused. The key
/// is required (1 to 128 characters), checked after the centre so a stranger learns nothing.
pub async fn publish(
    state: &AppState,
    member: &StaffMember,
    centre_id: &str,
    idempotency_key: Option<&str>,
    request: CapacityRequest,
) -> Result<Published, ApiError> {
    let centre = centre(state, member, centre_id).await?;
    let idempotency_key = idempotency_key.ok_or_else(|| {
        ApiError::invalid(
            "Idempotency-Key",
            "Send a header `Idempotency-Key` (1 to 128 characters, e.g. a UUID) so a retried request cannot publish the same capacity twice.",
        )
    })?;
    if centre.closed {
        return Err(ApiError::new(ErrorCode::CentreClosed));
    }
    let policy = state.policies.current(&centre.region).await?;
    let refused = |e: CapacityError| ApiError::invalid(e.field, format!("{}: {}", e.field, e.message));
    request
        .check_day(Utc::now().with_timezone(&centre.timezone).date_naive())
        .map_err(refused)?;
    let pairs = plan(&policy.policy, &request).map_err(refused)?;
    // After the policy's checks: what the rules refuse is said first, as it is anywhere.
    if !centre.gives(&request.vaccine) {
        return Err(ApiError::invalid(
            "vaccine",
            format!(
                "vaccine: centre {} does not give {:?}; a region admin can add it to the centre's vaccines.",
                centre.id, request.vaccine
            ),
        ));
    }
    let document = serde_json::to_value(&request).map_err(ApiError::internal)?;
    let digest: [u8; 32] = Sha256::digest(document.to_string().as_bytes()).into();
    let batch = Uuid::new_v4();
    let mut tx = state.store.begin().await?;
    let earlier = capacity::insert_batch(
        &mut tx,
        &NewBatch {
            id: batch,
            centre: &centre.id,
            idempotency_key,
            request: &document,
            digest: &digest,
            pairs: pairs.len() as i32,
            created_by: member.id,
        },
    )
    .await?;
    if let Some(earlier) = earlier {
        if earlier.digest != digest {
            return Err(ApiError::new(ErrorCode::IdempotencyKeyReused).with_message(format!(
                "The Idempotency-Key {idempotency_key:?} was used before for a different request (capacity {}). Use a new key for new capacity.",
                earlier.id
            )));
        }
        return Ok(Published {
            capacity_id: earlier.id,
            pairs_created: earlier.pairs as usize,
            replayed: true,
        });
    }
    insert_pairs(
        &mut tx,
        &centre.id,
        &request.vaccine,
        centre.timezone.name(),
        &pairs,
        Some(batch),
    )
    .await?;
    audit(
        &mut tx,
        member,
        "capacity.publish",
        Some(&centre.id),
        Some(batch),
        serde_json::json!({ "pairs": pairs.len(), "vaccine": request.vaccine, "day": request.day }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(centre = %centre.id, %batch, pairs = pairs.len(), "capacity published");
    Ok(Published {
        capacity_id: batch,
        pairs_created: pairs.len(),
        replayed: false,
    })
}

/// What withdrawing a batch did.
#[derive(Serialize)]
pub struct Withdrawn {
    pub capacity_id: Uuid,
    pub pairs_cancelled: usize,
    pub offers_withdrawn: u32,
    pub bookings_cancelled: u32,
    /// Pairs kept because their first dose was given: no course is cut in half.
    pub kept_course_in_progress: u32,
    /// The references of the bookings cancelled: these people, and those whose offer was
    /// withdrawn, are told and go ahead of others in the next draws.
    pub cancelled_bookings: Vec<String>,
}

/// Withdraws a published batch. Pending offers on it are withdrawn and bookings cancelled;
/// those people are told and go back to the pool ahead of everyone else. Pairs whose first
/// dose was given stay, so no course is cut in half.
pub async fn withdraw(
    state: &AppState,
    member: &StaffMember,
    centre_id: &str,
    batch: Uuid,
    reason: &str,
) -> Result<Withdrawn, ApiError> {
    let centre = centre(state, member, centre_id).await?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(ApiError::invalid(
            "reason",
            "Say in a few words (up to 200 characters) why; the people affected are told.",
        ));
    }
    let policy = state.policies.current(&centre.region).await?;
    let mut tx = state.store.begin().await?;
    match capacity::lock_batch(&mut tx, batch, &centre.id).await? {
        None => {
            return Err(ApiError::not_found(format!(
                "Centre {} has no capacity {batch}.",
                centre.id
            )))
        }
        Some(Some(at)) => {
            return Err(ApiError::new(ErrorCode::CapacityAlreadyCancelled)
                .with_message(format!("This capacity was cancelled already, at {at}.")))
        }
        Some(None) => {}
    }
    // Open pairs go first, so no draw can offer them from here on.
    let open = capacity::cancel_open_pairs(&mut tx, batch).await?;
    capacity::lock_holders(&mut tx, batch).await?;
    let held = capacity::held_pairs(&mut tx, batch).await?;
    let mut cancelled_pairs = Vec::new();
    let (mut offers, mut kept) = (0, 0);
    let mut cancelled_bookings = Vec::new();
    for pair in &held {
        if matches!(
            pair.booking_state,
            Some(BookingState::FirstDoseGiven | BookingState::Completed)
        ) {
            kept += 1;
            continue;
        }
        cancelled_pairs.push(pair.place.slot_pair_id);
        let (subject, registrant) = match (
            pair.offer_id.zip(pair.offer_registrant),
            pair.booking_id.zip(pair.booking_registrant),
        ) {
            (Some((offer, registrant)), _) => {
                capacity::withdraw_offer(&mut tx, offer).await?;
                offers += 1;
                (offer, registrant)
            }
            (None, Some((booking, registrant))) => {
                let why = format!("capacity withdrawn by the centre: {reason}");
                bookings::cancel(&mut tx, booking, None, &why).await?;
                cancelled_bookings.push(reference(booking));
                (booking, registrant)
            }
            (None, None) => continue,
        };
        registrants::put_ahead(&mut tx, registrant).await?;
        let notification = Notification::CancelledByCentre {
            appointment: appointment(&pair.place, &policy.policy),
            reason: reason.to_owned(),
        };
        if !tell(&mut tx, registrant, subject, &notification).await? {
            return Err(withdrawn());
        }
    }
    capacity::cancel_batch(&mut tx, batch, &cancelled_pairs, reason).await?;
    let outcome = Withdrawn {
        capacity_id: batch,
        pairs_cancelled: cancelled_pairs.len() + open as usize,
        offers_withdrawn: offers,
        bookings_cancelled: cancelled_bookings.len() as u32,
        kept_course_in_progress: kept,
        cancelled_bookings,
    };
    audit(
        &mut tx,
        member,
        "capacity.cancel",
        Some(&centre.id),
        Some(batch),
        serde_json::json!({ "reason": reason, "outcome": &outcome }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(centre = %centre.id, %batch, offers, bookings = outcome.bookings_cancelled, "capacity withdrawn");
    Ok(outcome)
}

pub use crate::store::capacity::{Batch, CentreListed};

/// The centres of the member's region, for a region admin to choose one to run.
pub async fn centres(state: &AppState, member: &StaffMember) -> Result<Vec<CentreListed>, ApiError> {
    // Any centre of the region: only those who may run every centre of it pass.
    member.may_run_centre("", &member.region).map_err(forbidden)?;
    Ok(capacity::centres_of_region(state.store.pool(), &member.region).await?)
}

/// The centre's batches of capacity from `day` on, for its staff to review or withdraw.
pub async fn batches(
    state: &AppState,
    member: &StaffMember,
    centre_id: &str,
    day: NaiveDate,
) -> Result<Vec<Batch>, ApiError> {
    let centre = centre(state, member, centre_id).await?;
    Ok(capacity::batches(state.store.pool(), &centre.id, day).await?)
}

/// A centre's day, per slot.
#[derive(Serialize)]
pub struct Schedule {
    pub centre: String,
    pub date: NaiveDate,
    pub timezone: &'static str,
    pub slots: Vec<Slot>,
}

/// One slot of the schedule: one time, vaccine and dose. Times are the centre's local time
/// with its offset, as the day asked for is the centre's.
#[derive(Default, Serialize)]
pub struct Slot {
    pub at: DateTime<FixedOffset>,
    pub vaccine: String,
    pub dose: String,
    pub capacity: u32,
    pub open: u32,
    pub offered: u32,
    pub booked: u32,
    pub cancelled: u32,
    pub bookings: Vec<ScheduledBooking>,
}

/// A booking as the door sees it: a reference, no personal data.
#[derive(Serialize)]
pub struct ScheduledBooking {
    pub reference: String,
    pub state: Option<BookingState>,
    pub checked_in_at: Option<DateTime<FixedOffset>>,
}

/// The day's appointments per slot, with bookings by reference only: the door needs no names,
/// phone numbers or birth years.
pub async fn schedule(
    state: &AppState,
    member: &StaffMember,
    centre_id: &str,
    date: NaiveDate,
) -> Result<Schedule, ApiError> {
    let centre = centre(state, member, centre_id).await?;
    let local_midnight = |day: NaiveDate| {
        centre
            .timezone
            .from_local_datetime(&day.and_time(NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| ApiError::invalid("date", "This day has no midnight in the centre's time zone."))
    };
    let start = local_midnight(date)?;
    let end = local_midnight(
        date.succ_opt()
            .ok_or_else(|| ApiError::invalid("date", "Too far in the future."))?,
    )?;
    let appointments = capacity::appointments(state.store.pool(), &centre.id, start, end).await?;
    let local = |at: DateTime<Utc>| at.with_timezone(&centre.timezone).fixed_offset();
    let mut slots: BTreeMap<(DateTime<Utc>, String, String), Slot> = BTreeMap::new();
    for a in appointments {
        let slot = slots
            .entry((a.at, a.vaccine.clone(), a.dose.clone()))
            .or_insert_with(|| Slot {
                at: local(a.at),
                vaccine: a.vaccine,
                dose: a.dose,
                ..Slot::default()
            });
        slot.capacity += 1;
        *match a.pair_state {
            SlotPairState::Open => &mut slot.open,
            SlotPairState::Offered => &mut slot.offered,
            SlotPairState::Cancelled => &mut slot.cancelled,
            SlotPairState::Booked | SlotPairState::Used => &mut slot.booked,
        } += 1;
        if let Some(booking) = a.booking_id {
            slot.bookings.push(ScheduledBooking {
                reference: reference(booking),
                state: a.booking_state,
                checked_in_at: a.given_at.map(local),
            });
        }
    }
    Ok(Schedule {
        centre: centre.id,
        date,
        timezone: centre.timezone.name(),
        slots: slots.into_values().collect(),
    })
}
