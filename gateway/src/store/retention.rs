//! The statements of the retention purge: each removes one kind of data whose time is up
//! (before `$1`, or `$2` where a status comes first). None touches a draw's records, nor the
//! pseudonymous rows of registrants, offers and slot pairs they refer to.

use chrono::{DateTime, Utc};
use drawbridge_platform::states::RegistrantStatus;
use sqlx::PgConnection;
use uuid::Uuid;

use drawbridge_platform::statements;

statements! {
    /// What is left of ended registrations (expired or withdrawn: their personal fields are
    /// erased already) besides their pseudonymous rows: their code records and every message
    /// about them, their offers or their bookings. How many rows went.
    PURGE_ENDED = "
    WITH ended AS (
        SELECT id FROM registrants WHERE status = $1 AND coalesce(withdrawn_at, created_at) < $2
    ), codes AS (
        DELETE FROM phone_verifications v USING ended e WHERE v.registrant_id = e.id RETURNING v.id
    ), messages AS (
        DELETE FROM outbox o
        WHERE o.subject_id IN (SELECT id FROM ended)
           OR o.subject_id IN (SELECT id FROM codes)
           OR o.subject_id IN (SELECT f.id FROM offers f JOIN ended e ON e.id = f.registrant_id)
           OR o.subject_id IN (SELECT b.id FROM bookings b JOIN ended e ON e.id = b.registrant_id)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM codes) + (SELECT count(*) FROM messages)";
    /// People whose course was complete before `$1`, locked for erasure.
    COURSES_COMPLETED = "
    SELECT r.id FROM registrants r JOIN bookings b ON b.registrant_id = r.id
    WHERE r.status = 'active' AND b.state = 'completed' AND coalesce(b.second_dose_at, b.first_dose_at) < $1
    FOR UPDATE OF r SKIP LOCKED";
    /// Bookings cancelled before `$1` that no pair points at any longer, with their messages.
    PURGE_CANCELLED_BOOKINGS = "
    WITH gone AS (
        SELECT b.id FROM bookings b
        WHERE b.state = 'cancelled' AND b.cancelled_at < $1
          AND NOT EXISTS (SELECT 1 FROM slot_pairs p WHERE p.booking_id = b.id)
        FOR UPDATE OF b SKIP LOCKED
    ), messages AS (
        DELETE FROM outbox o USING gone g WHERE o.subject_id = g.id RETURNING 1
    )
    DELETE FROM bookings b USING gone g WHERE b.id = g.id";
    /// Messages sent or given up before `$1`, with their delivery records; an offer's message
    /// stays while the offer is open, because its reminder repeats its appointment.
    PURGE_DELIVERED_MESSAGES = "
    DELETE FROM outbox o USING deliveries d
    WHERE d.outbox_id = o.id AND d.finished_at < $1
      AND NOT EXISTS (SELECT 1 FROM offers f WHERE f.id = o.subject_id AND f.state = 'pending')";
    /// Staff sessions that ended (signed out, disabled or expired) before `$1`.
    PURGE_STAFF_SESSIONS =
        "DELETE FROM staff_sessions WHERE least(coalesce(ended_at, expires_at), expires_at) < $1";
    /// Audit entries made before `$1`; the database refuses any younger than a year.
    PURGE_AUDIT_ENTRIES = "DELETE FROM staff_actions WHERE at < $1";
}

/// Removes what is left of registrations with `status` that ended before `before`.
pub async fn ended_registrations(
    tx: &mut PgConnection,
    status: RegistrantStatus,
    before: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(PURGE_ENDED)
        .bind(status)
        .bind(before)
        .fetch_one(tx)
        .await?;
    Ok(count as u64)
}

/// The people whose course was complete before `before`, locked.
pub async fn courses_completed(
    tx: &mut PgConnection,
    before: DateTime<Utc>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(COURSES_COMPLETED)
        .bind(before)
        .fetch_all(tx)
        .await
}

pub async fn cancelled_bookings(tx: &mut PgConnection, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    deleted(tx, PURGE_CANCELLED_BOOKINGS, before).await
}

pub async fn delivered_messages(tx: &mut PgConnection, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    deleted(tx, PURGE_DELIVERED_MESSAGES, before).await
}

pub async fn staff_sessions(tx: &mut PgConnection, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    deleted(tx, PURGE_STAFF_SESSIONS, before).await
}

pub async fn audit_entries(tx: &mut PgConnection, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    deleted(tx, PURGE_AUDIT_ENTRIES, before).await
}

async fn deleted(
    tx: &mut PgConnection,
    statement: &'static str,
    before: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(statement)
        .bind(before)
        .execute(tx)
        .await?
        .rows_affected())
}
