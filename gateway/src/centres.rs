//! What vaccination centres do: publish capacity as slot pairs (idempotently), read the day's
//! schedule, withdraw capacity that cannot be served, and check people in by their QR pass.
//! Centre staff act for their own centre only; region admins for any centre of their region.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use drawbridge_domain::booking::after_dose;
use drawbridge_domain::{checkin, plan, BookingAtDoor, CapacityRequest, CheckinPass, Dose, StaffMember};
use drawbridge_platform::capacity;
use drawbridge_platform::outbox::Notification;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::bookings::{reference, tell, Place, PLACE, PLACE_JOINS};
use crate::error::ApiError;
use crate::staff::{forbidden, record, Staff};
use crate::AppState;

/// A centre as these routes need it.
struct Centre {
    id: String,
    region: String,
    timezone: Tz,
}

/// The centre, if it exists and `member` may run it.
async fn centre(state: &AppState, member: &StaffMember, id: &str) -> Result<Centre, ApiError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT c.region_id, g.timezone FROM centres c JOIN regions g ON g.id = c.region_id WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    let (region, timezone) = row.ok_or_else(|| ApiError::NotFound(format!("There is no centre {id:?}.")))?;
    member.may_run_centre(id, &region).map_err(forbidden)?;
    Ok(Centre {
        id: id.to_owned(),
        region,
        timezone: timezone
            .parse()
            .map_err(|_| ApiError::Internal(format!("region time zone {timezone:?} is unknown")))?,
    })
}

/// `POST /v1/centres/{centre}/capacity` with an `Idempotency-Key` header: publishes slot pairs.
/// Repeating a request with the same key creates nothing and answers as the first time; the
/// same key with a different request is refused.
pub async fn publish(
    state: web::Data<AppState>,
    staff: Staff,
    centre_id: web::Path<String>,
    http: HttpRequest,
    request: web::Json<CapacityRequest>,
) -> Result<HttpResponse, ApiError> {
    let centre = centre(&state, &staff.0, &centre_id).await?;
    let key = http
        .headers()
        .get("Idempotency-Key")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|key| (1..=128).contains(&key.len()))
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "Send a header `Idempotency-Key` (1 to 128 characters, e.g. a UUID) so a retried request cannot publish the same capacity twice.",
            )
        })?
        .to_owned();
    let request = request.into_inner();
    let policy = state.policies.current(&centre.region).await?;
    let pairs = plan(&policy.policy, &request).map_err(|e| ApiError::InvalidField {
        field: e.field,
        message: format!("{}: {}", e.field, e.message),
    })?;
    let document = serde_json::to_value(&request).map_err(|e| ApiError::Internal(e.to_string()))?;
    let digest: [u8; 32] = Sha256::digest(document.to_string().as_bytes()).into();
    let batch = Uuid::new_v4();
    let mut tx = state.pool.begin().await?;
    // A concurrent twin waits here on the key's index entry, then finds the first one's row.
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO capacity_batches (id, centre_id, idempotency_key, request, request_digest, pairs, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (centre_id, idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(batch)
    .bind(&centre.id)
    .bind(&key)
    .bind(&document)
    .bind(digest.as_slice())
    .bind(pairs.len() as i32)
    .bind(staff.0.id)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        let (id, stored, count): (Uuid, Vec<u8>, i32) = sqlx::query_as(
            "SELECT id, request_digest, pairs FROM capacity_batches WHERE centre_id = $1 AND idempotency_key = $2",
        )
        .bind(&centre.id)
        .bind(&key)
        .fetch_one(&mut *tx)
        .await?;
        if stored != digest {
            return Err(ApiError::Conflict {
                code: "idempotency_key_reused",
                message: format!(
                    "The Idempotency-Key {key:?} was used before for a different request (capacity {id}). Use a new key for new capacity."
                ),
            });
        }
        return Ok(HttpResponse::Ok().json(json!({
            "capacity_id": id,
            "pairs_created": count,
            "replayed": true,
        })));
    }
    let zone = centre.timezone.name();
    capacity::insert_pairs(&mut tx, &centre.id, &request.vaccine, zone, &pairs, Some(batch)).await?;
    record(
        &mut tx,
        &staff.0,
        "capacity.publish",
        Some(&centre.id),
        Some(batch),
        json!({ "pairs": pairs.len(), "vaccine": request.vaccine, "day": request.day }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(centre = %centre.id, %batch, pairs = pairs.len(), "capacity published");
    Ok(HttpResponse::Created().json(json!({
        "capacity_id": batch,
        "pairs_created": pairs.len(),
        "replayed": false,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    reason: String,
}

#[derive(sqlx::FromRow)]
struct Affected {
    offer_id: Option<Uuid>,
    offer_registrant: Option<Uuid>,
    booking_id: Option<Uuid>,
    booking_registrant: Option<Uuid>,
    booking_state: Option<String>,
    #[sqlx(flatten)]
    place: Place,
}

/// `POST /v1/centres/{centre}/capacity/{id}/cancel`: withdraws a published batch. Pending
/// offers on it are withdrawn and bookings cancelled; those people are told and go back to
/// the pool ahead of everyone else. Pairs whose first dose was given stay, so no course is
/// cut in half.
pub async fn withdraw(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<(String, Uuid)>,
    body: web::Json<Withdrawal>,
) -> Result<HttpResponse, ApiError> {
    let (centre_id, batch) = path.into_inner();
    let centre = centre(&state, &staff.0, &centre_id).await?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 200 {
        return Err(ApiError::invalid(
            "reason",
            "Say in a few words (up to 200 characters) why; the people affected are told.",
        ));
    }
    let policy = state.policies.current(&centre.region).await?;
    let mut tx = state.pool.begin().await?;
    let cancelled: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "SELECT cancelled_at FROM capacity_batches WHERE id = $1 AND centre_id = $2 FOR UPDATE",
    )
    .bind(batch)
    .bind(&centre.id)
    .fetch_optional(&mut *tx)
    .await?;
    match cancelled {
        None => {
            return Err(ApiError::NotFound(format!(
                "Centre {} has no capacity {batch}.",
                centre.id
            )))
        }
        Some(Some(at)) => {
            return Err(ApiError::Conflict {
                code: "capacity_already_cancelled",
                message: format!("This capacity was cancelled already, at {at}."),
            })
        }
        Some(None) => {}
    }
    // Locks in the order every other writer takes them (offer or booking first, then the
    // pair), so a concurrent acceptance or check-in either finishes first and is seen, or
    // waits and then finds its offer withdrawn or its booking cancelled; never a deadlock.
    // Open pairs go first, so no draw can offer them from here on.
    let open =
        sqlx::query("UPDATE slot_pairs SET state = 'cancelled' WHERE batch_id = $1 AND state = 'open'")
            .bind(batch)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    for holders in [
        "SELECT o.id FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id
         WHERE p.batch_id = $1 AND o.state = 'pending' ORDER BY o.id FOR UPDATE OF o",
        "SELECT b.id FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id
         WHERE p.batch_id = $1 AND b.state <> 'cancelled' ORDER BY b.id FOR UPDATE OF b",
    ] {
        sqlx::query(holders).bind(batch).execute(&mut *tx).await?;
    }
    // A new statement: it sees everything committed before the locks above were granted.
    let affected: Vec<Affected> = sqlx::query_as(&format!(
        "SELECT o.id AS offer_id, o.registrant_id AS offer_registrant, b.id AS booking_id,
                b.registrant_id AS booking_registrant, b.state AS booking_state, {PLACE}
         FROM slot_pairs p {PLACE_JOINS}
         LEFT JOIN offers o ON o.id = p.offer_id AND o.state = 'pending'
         LEFT JOIN bookings b ON b.id = p.booking_id
         WHERE p.batch_id = $1 AND p.state IN ('open', 'offered', 'booked')
         ORDER BY p.id FOR UPDATE OF p"
    ))
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let mut cancelled_pairs = Vec::new();
    let (mut offers, mut bookings, mut kept) = (0, 0, 0);
    for pair in &affected {
        if matches!(
            pair.booking_state.as_deref(),
            Some("first_dose_given" | "completed")
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
                sqlx::query("UPDATE offers SET state = 'withdrawn', answered_at = now() WHERE id = $1")
                    .bind(offer)
                    .execute(&mut *tx)
                    .await?;
                offers += 1;
                (offer, registrant)
            }
            (None, Some((booking, registrant))) => {
                sqlx::query(
                    "UPDATE bookings SET state = 'cancelled', cancelled_at = now(), cancel_reason = $2 WHERE id = $1",
                )
                .bind(booking)
                .bind(format!("capacity withdrawn by the centre: {reason}"))
                .execute(&mut *tx)
                .await?;
                bookings += 1;
                (booking, registrant)
            }
            (None, None) => continue,
        };
        sqlx::query("UPDATE registrants SET ahead_since = coalesce(ahead_since, now()) WHERE id = $1 AND status = 'active'")
            .bind(registrant)
            .execute(&mut *tx)
            .await?;
        let notification = Notification::CancelledByCentre {
            appointment: pair.place.appointment(&policy.policy),
            reason: reason.to_owned(),
        };
        tell(&mut tx, registrant, subject, notification).await?;
    }
    sqlx::query(
        "UPDATE slot_pairs SET state = 'cancelled', offer_id = NULL, booking_id = NULL WHERE id = ANY($1)",
    )
    .bind(&cancelled_pairs)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE capacity_batches SET cancelled_at = now(), cancel_reason = $2 WHERE id = $1")
        .bind(batch)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    let outcome = json!({
        "capacity_id": batch,
        "pairs_cancelled": cancelled_pairs.len() + open as usize,
        "offers_withdrawn": offers,
        "bookings_cancelled": bookings,
        "kept_course_in_progress": kept,
    });
    record(
        &mut tx,
        &staff.0,
        "capacity.cancel",
        Some(&centre.id),
        Some(batch),
        json!({ "reason": reason, "outcome": outcome }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(centre = %centre.id, %batch, offers, bookings, "capacity withdrawn");
    Ok(HttpResponse::Ok().json(outcome))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleQuery {
    date: NaiveDate,
}

#[derive(sqlx::FromRow)]
struct Appointment {
    at: DateTime<Utc>,
    dose: String,
    vaccine: String,
    pair_state: String,
    booking_id: Option<Uuid>,
    booking_state: Option<String>,
    given_at: Option<DateTime<Utc>>,
}

/// `GET /v1/centres/{centre}/schedule?date=`: the day's appointments per slot, with bookings
/// by reference only: the door needs no names, phone numbers or birth years.
pub async fn schedule(
    state: web::Data<AppState>,
    staff: Staff,
    centre_id: web::Path<String>,
    query: web::Query<ScheduleQuery>,
) -> Result<HttpResponse, ApiError> {
    let centre = centre(&state, &staff.0, &centre_id).await?;
    let local_midnight = |day: NaiveDate| {
        centre
            .timezone
            .from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| ApiError::invalid("date", "This day has no midnight in the centre's time zone."))
    };
    let start = local_midnight(query.date)?;
    let end = local_midnight(
        query
            .date
            .succ_opt()
            .ok_or_else(|| ApiError::invalid("date", "Too far in the future."))?,
    )?;
    let appointments: Vec<Appointment> = sqlx::query_as(
        "SELECT a.at, a.dose, p.vaccine, p.state AS pair_state, b.id AS booking_id, b.state AS booking_state,
                CASE a.dose WHEN 'first' THEN b.first_dose_at ELSE b.second_dose_at END AS given_at
         FROM slot_pairs p
         CROSS JOIN LATERAL (VALUES (p.first_slot_at, 'first'), (p.second_slot_at, 'second')) AS a(at, dose)
         LEFT JOIN bookings b ON b.id = p.booking_id
         WHERE p.centre_id = $1 AND a.at >= $2 AND a.at < $3
           AND ((p.first_slot_at >= $2 AND p.first_slot_at < $3) OR (p.second_slot_at >= $2 AND p.second_slot_at < $3))
         ORDER BY a.at, a.dose, p.id",
    )
    .bind(&centre.id)
    .bind(start)
    .bind(end)
    .fetch_all(&state.pool)
    .await?;
    let mut slots: BTreeMap<(DateTime<Utc>, String, String), Slot> = BTreeMap::new();
    for a in appointments {
        let slot = slots
            .entry((a.at, a.vaccine.clone(), a.dose.clone()))
            .or_insert_with(|| Slot {
                at: a.at,
                vaccine: a.vaccine,
                dose: a.dose,
                ..Slot::default()
            });
        slot.capacity += 1;
        *match a.pair_state.as_str() {
            "open" => &mut slot.open,
            "offered" => &mut slot.offered,
            "cancelled" => &mut slot.cancelled,
            _ => &mut slot.booked,
        } += 1;
        if let Some(booking) = a.booking_id {
            slot.bookings.push(ScheduledBooking {
                reference: reference(booking),
                state: a.booking_state,
                checked_in_at: a.given_at,
            });
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "centre": centre.id,
        "date": query.date,
        "timezone": centre.timezone.name(),
        "slots": slots.into_values().collect::<Vec<_>>(),
    })))
}

/// One slot of the schedule: one time, vaccine and dose.
#[derive(Default, Serialize)]
struct Slot {
    at: DateTime<Utc>,
    vaccine: String,
    dose: String,
    capacity: u32,
    open: u32,
    offered: u32,
    booked: u32,
    cancelled: u32,
    bookings: Vec<ScheduledBooking>,
}

/// A booking as the door sees it: a reference, no personal data.
#[derive(Serialize)]
struct ScheduledBooking {
    reference: String,
    state: Option<String>,
    checked_in_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct AtDoor {
    state: String,
    centre_id: String,
    first_slot_at: DateTime<Utc>,
    second_slot_at: Option<DateTime<Utc>>,
    vaccine: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scan {
    /// The QR code's content.
    pass: String,
}

/// `POST /v1/centres/{centre}/checkins`: a scanned pass. Valid: the dose is recorded and the
/// answer says which; a second scan of the same dose says it was used already.
pub async fn check_in(
    state: web::Data<AppState>,
    staff: Staff,
    centre_id: web::Path<String>,
    scan: web::Json<Scan>,
) -> Result<HttpResponse, ApiError> {
    let centre = centre(&state, &staff.0, &centre_id).await?;
    let now = Utc::now();
    let pass =
        CheckinPass::verify(&state.keyring, &scan.pass, now).map_err(|error| ApiError::InvalidField {
            field: "pass",
            message: format!(
                "Not a valid check-in pass: {error}. Ask for the booking code and look the booking up."
            ),
        })?;
    let mut tx = state.pool.begin().await?;
    let booking: Option<AtDoor> = sqlx::query_as(
        "SELECT b.state, p.centre_id, p.first_slot_at, p.second_slot_at, p.vaccine
         FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id WHERE b.id = $1 FOR UPDATE OF b",
    )
    .bind(pass.booking)
    .fetch_optional(&mut *tx)
    .await?;
    let booking =
        booking.ok_or_else(|| ApiError::invalid("pass", "This pass names a booking we do not have."))?;
    let (second_at, vaccine) = (booking.second_slot_at, booking.vaccine);
    let door = BookingAtDoor {
        centre: booking.centre_id,
        state: booking.state,
        first_at: booking.first_slot_at,
        second_at,
    };
    let dose = checkin(&door, &centre.id, now).map_err(|refusal| ApiError::Conflict {
        code: refusal.code(),
        message: format!("{}.", refusal),
    })?;
    let next = after_dose(dose, second_at.is_some());
    let column = match dose {
        Dose::First => "first_dose_at",
        Dose::Second => "second_dose_at",
    };
    sqlx::query(&format!(
        "UPDATE bookings SET state = $2, {column} = $3 WHERE id = $1"
    ))
    .bind(pass.booking)
    .bind(next)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if next == "completed" {
        sqlx::query("UPDATE slot_pairs SET state = 'used' WHERE booking_id = $1")
            .bind(pass.booking)
            .execute(&mut *tx)
            .await?;
    }
    record(
        &mut tx,
        &staff.0,
        "checkin",
        Some(&centre.id),
        Some(pass.booking),
        json!({ "dose": dose }),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({
        "valid": true,
        "booking": reference(pass.booking),
        "dose": dose,
        "vaccine": vaccine,
        "booking_state": next,
        "second_at": if dose == Dose::First { second_at } else { None },
    })))
}
