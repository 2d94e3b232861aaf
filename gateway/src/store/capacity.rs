//! Centres' capacity: publishing batches of slot pairs idempotently, withdrawing a batch with
//! everything that hangs on it, and the day's schedule.

use chrono::{DateTime, Utc};
use drawbridge_platform::states::{BookingState, SlotPairState};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::offers::Place;
use super::statements;

statements! {
    /// A centre's region and that region's time zone.
    CENTRE =
        "SELECT c.region_id, g.timezone, c.vaccines, c.closed_at IS NOT NULL AS closed
         FROM centres c JOIN regions g ON g.id = c.region_id WHERE c.id = $1";
    /// A batch under its idempotency key; a concurrent twin waits on the key's index entry,
    /// then inserts nothing.
    INSERT_BATCH =
        "INSERT INTO capacity_batches (id, centre_id, idempotency_key, request, request_digest, pairs, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (centre_id, idempotency_key) DO NOTHING RETURNING id";
    BATCH_BY_KEY =
        "SELECT id, request_digest, pairs FROM capacity_batches WHERE centre_id = $1 AND idempotency_key = $2";
    /// A batch of the centre, locked: when it was cancelled, if it was.
    LOCK_BATCH = "SELECT cancelled_at FROM capacity_batches WHERE id = $1 AND centre_id = $2 FOR UPDATE";
    CANCEL_OPEN_PAIRS = "UPDATE slot_pairs SET state = 'cancelled' WHERE batch_id = $1 AND state = 'open'";
    LOCK_PENDING_OFFERS =
        "SELECT o.id FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id
         WHERE p.batch_id = $1 AND o.state = 'pending' ORDER BY o.id FOR UPDATE OF o";
    LOCK_LIVE_BOOKINGS =
        "SELECT b.id FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id
         WHERE p.batch_id = $1 AND b.state <> 'cancelled' ORDER BY b.id FOR UPDATE OF b";
    /// The batch's pairs still in use, with whoever holds them.
    HELD_PAIRS =
        "SELECT o.id AS offer_id, o.registrant_id AS offer_registrant, b.id AS booking_id,
                b.registrant_id AS booking_registrant, b.state AS booking_state,
                p.id AS slot_pair_id, c.id AS centre_id, c.name AS centre, c.address, c.region_id,
                g.timezone, p.vaccine, p.first_slot_at AS first_at, p.second_slot_at AS second_at
         FROM slot_pairs p JOIN centres c ON c.id = p.centre_id JOIN regions g ON g.id = c.region_id
         LEFT JOIN offers o ON o.id = p.offer_id AND o.state = 'pending'
         LEFT JOIN bookings b ON b.id = p.booking_id
         WHERE p.batch_id = $1 AND p.state IN ('open', 'offered', 'booked')
         ORDER BY p.id FOR UPDATE OF p";
    WITHDRAW_OFFER = "UPDATE offers SET state = 'withdrawn', answered_at = now() WHERE id = $1";
    CANCEL_PAIRS =
        "UPDATE slot_pairs SET state = 'cancelled', offer_id = NULL, booking_id = NULL WHERE id = ANY($1)";
    MARK_BATCH_CANCELLED =
        "UPDATE capacity_batches SET cancelled_at = now(), cancel_reason = $2 WHERE id = $1";
    /// The centres of a region.
    CENTRES_OF_REGION = "SELECT id, name, address FROM centres WHERE region_id = $1 ORDER BY name";
    /// The centre's batches whose first doses are on or after `$2`, newest first, with their
    /// pairs by state.
    BATCHES =
        "SELECT b.id, b.created_at, b.request->>'vaccine' AS vaccine, (b.request->>'day')::date AS day,
                b.request->>'from' AS from_time, b.request->>'until' AS until_time, b.pairs,
                b.cancelled_at, b.cancel_reason,
                count(p.id) FILTER (WHERE p.state = 'open') AS open,
                count(p.id) FILTER (WHERE p.state = 'offered') AS offered,
                count(p.id) FILTER (WHERE p.state IN ('booked', 'used')) AS booked
         FROM capacity_batches b LEFT JOIN slot_pairs p ON p.batch_id = b.id
         WHERE b.centre_id = $1 AND (b.request->>'day')::date >= $2
         GROUP BY b.id ORDER BY (b.request->>'day')::date, b.created_at LIMIT 200";
    /// Every appointment (a pair has one or two) of the centre between `$2` and `$3`.
    APPOINTMENTS =
        "SELECT a.at, a.dose, p.vaccine, p.state AS pair_state, b.id AS booking_id, b.state AS booking_state,
                CASE a.dose WHEN 'first' THEN b.first_dose_at ELSE b.second_dose_at END AS given_at
         FROM slot_pairs p
         CROSS JOIN LATERAL (VALUES (p.first_slot_at, 'first'), (p.second_slot_at, 'second')) AS a(at, dose)
         LEFT JOIN bookings b ON b.id = p.booking_id
         WHERE p.centre_id = $1 AND a.at >= $2 AND a.at < $3
           AND ((p.first_slot_at >= $2 AND p.first_slot_at < $3) OR (p.second_slot_at >= $2 AND p.second_slot_at < $3))
         ORDER BY a.at, a.dose, p.id";
}

/// A centre's region and its time zone's name.
/// What publishing capacity at a centre needs to know of it.
#[derive(sqlx::FromRow)]
pub struct CentreRow {
    pub region_id: String,
    pub timezone: String,
    /// `None`: every vaccine of the region's policy.
    pub vaccines: Option<Vec<String>>,
    pub closed: bool,
}

pub async fn centre(pool: &PgPool, id: &str) -> Result<Option<CentreRow>, sqlx::Error> {
    sqlx::query_as(CENTRE).bind(id).fetch_optional(pool).await
}

/// A batch of capacity as published.
pub struct NewBatch<'a> {
    pub id: Uuid,
    pub centre: &'a str,
    pub idempotency_key: &'a str,
    pub request: &'a serde_json::Value,
    pub digest: &'a [u8],
    pub pairs: i32,
    pub created_by: Uuid,
}

/// A batch published before under the same key.
pub struct Published {
    pub id: Uuid,
    pub digest: Vec<u8>,
    pub pairs: i32,
}

/// Inserts the batch, or returns the one published under its key before.
pub async fn insert_batch(
    tx: &mut PgConnection,
    batch: &NewBatch<'_>,
) -> Result<Option<Published>, sqlx::Error> {
    let inserted: Option<Uuid> = sqlx::query_scalar(INSERT_BATCH)
        .bind(batch.id)
        .bind(batch.centre)
        .bind(batch.idempotency_key)
        .bind(batch.request)
        .bind(batch.digest)
        .bind(batch.pairs)
        .bind(batch.created_by)
        .fetch_optional(&mut *tx)
        .await?;
    if inserted.is_some() {
        return Ok(None);
    }
    let (id, digest, pairs) = sqlx::query_as(BATCH_BY_KEY)
        .bind(batch.centre)
        .bind(batch.idempotency_key)
        .fetch_one(&mut *tx)
        .await?;
    Ok(Some(Published { id, digest, pairs }))
}

/// Locks a batch of the centre: `None` if there is none, `Some(Some(at))` if it was cancelled.
pub async fn lock_batch(
    tx: &mut PgConnection,
    batch: Uuid,
    centre: &str,
) -> Result<Option<Option<DateTime<Utc>>>, sqlx::Error> {
    sqlx::query_scalar(LOCK_BATCH)
        .bind(batch)
        .bind(centre)
        .fetch_optional(tx)
        .await
}

/// Cancels the batch's open pairs, so no draw can offer them from here on; how many.
pub async fn cancel_open_pairs(tx: &mut PgConnection, batch: Uuid) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(CANCEL_OPEN_PAIRS)
        .bind(batch)
        .execute(tx)
        .await?
        .rows_affected())
}

/// Locks the batch's pending offers, then its live bookings, in the order every other writer
/// takes them (offer or booking first, then the pair), so a concurrent acceptance or check-in
/// either finishes first and is seen, or waits and then finds its offer withdrawn or its
/// booking cancelled; never a deadlock.
pub async fn lock_holders(tx: &mut PgConnection, batch: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(LOCK_PENDING_OFFERS)
        .bind(batch)
        .execute(&mut *tx)
        .await?;
    sqlx::query(LOCK_LIVE_BOOKINGS)
        .bind(batch)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A pair of a batch still in use, and who holds it.
#[derive(sqlx::FromRow)]
pub struct HeldPair {
    pub offer_id: Option<Uuid>,
    pub offer_registrant: Option<Uuid>,
    pub booking_id: Option<Uuid>,
    pub booking_registrant: Option<Uuid>,
    pub booking_state: Option<BookingState>,
    #[sqlx(flatten)]
    pub place: Place,
}

/// The batch's pairs still in use, locked. A new statement after [`lock_holders`]: it sees
/// everything committed before those locks were granted.
pub async fn held_pairs(tx: &mut PgConnection, batch: Uuid) -> Result<Vec<HeldPair>, sqlx::Error> {
    sqlx::query_as(HELD_PAIRS).bind(batch).fetch_all(tx).await
}

pub async fn withdraw_offer(tx: &mut PgConnection, offer: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(WITHDRAW_OFFER).bind(offer).execute(tx).await?;
    Ok(())
}

/// Cancels the pairs and marks the batch cancelled for `reason`.
pub async fn cancel_batch(
    tx: &mut PgConnection,
    batch: Uuid,
    pairs: &[Uuid],
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(CANCEL_PAIRS).bind(pairs).execute(&mut *tx).await?;
    sqlx::query(MARK_BATCH_CANCELLED)
        .bind(batch)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One appointment: a pair's first or second slot.
#[derive(sqlx::FromRow)]
pub struct Appointment {
    pub at: DateTime<Utc>,
    pub dose: String,
    pub vaccine: String,
    pub pair_state: SlotPairState,
    pub booking_id: Option<Uuid>,
    pub booking_state: Option<BookingState>,
    pub given_at: Option<DateTime<Utc>>,
}

/// The centre's appointments from `start` to `end`, by time, dose and pair.
pub async fn appointments(
    pool: &PgPool,
    centre: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Appointment>, sqlx::Error> {
    sqlx::query_as(APPOINTMENTS)
        .bind(centre)
        .bind(start)
        .bind(end)
        .fetch_all(pool)
        .await
}

/// A batch of capacity as the centre's console lists it.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct Batch {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub vaccine: String,
    pub day: chrono::NaiveDate,
    pub from_time: String,
    pub until_time: String,
    pub pairs: i32,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub open: i64,
    pub offered: i64,
    pub booked: i64,
}

/// The centre's batches of first doses from `day` on.
pub async fn batches(pool: &PgPool, centre: &str, day: chrono::NaiveDate) -> Result<Vec<Batch>, sqlx::Error> {
    sqlx::query_as(BATCHES)
        .bind(centre)
        .bind(day)
        .fetch_all(pool)
        .await
}

/// A centre as a list of the region's centres shows it.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct CentreListed {
    pub id: String,
    pub name: String,
    pub address: String,
}

pub async fn centres_of_region(pool: &PgPool, region: &str) -> Result<Vec<CentreListed>, sqlx::Error> {
    sqlx::query_as(CENTRES_OF_REGION)
        .bind(region)
        .fetch_all(pool)
        .await
}
