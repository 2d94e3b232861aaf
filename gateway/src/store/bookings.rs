//! Bookings: cancelling them, and recording doses at the door.

use chrono::{DateTime, Utc};
use drawbridge_domain::Dose;
use drawbridge_platform::states::BookingState;
use sqlx::PgConnection;
use uuid::Uuid;

use super::offers::Place;
use super::statements;

statements! {
    /// The registrant's live booking with its place, locked.
    LOCK_LIVE_BOOKING =
        "SELECT b.id, b.state,
                p.id AS slot_pair_id, c.id AS centre_id, c.name AS centre, c.address, c.region_id,
                g.timezone, p.vaccine, p.first_slot_at AS first_at, p.second_slot_at AS second_at
         FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id
         JOIN centres c ON c.id = p.centre_id JOIN regions g ON g.id = c.region_id
         WHERE b.registrant_id = $1 AND b.state <> 'cancelled' FOR UPDATE OF b";
    /// The registrant's booking no dose of which was given yet, with its pair.
    UNUSED_BOOKING = "SELECT id, slot_pair_id FROM bookings WHERE registrant_id = $1 AND state = 'booked'";
    CANCEL_BOOKING =
        "UPDATE bookings SET state = 'cancelled', cancelled_at = now(), cancel_reason = $2 WHERE id = $1";
    REOPEN_BOOKED_PAIR =
        "UPDATE slot_pairs SET state = 'open', booking_id = NULL WHERE id = $1 AND booking_id = $2";
    /// A booking as the door checks it, locked.
    LOCK_AT_DOOR =
        "SELECT b.state, p.centre_id, p.first_slot_at, p.second_slot_at, p.vaccine
         FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id WHERE b.id = $1 FOR UPDATE OF b";
    RECORD_FIRST_DOSE = "UPDATE bookings SET state = $2, first_dose_at = $3 WHERE id = $1";
    RECORD_SECOND_DOSE = "UPDATE bookings SET state = $2, second_dose_at = $3 WHERE id = $1";
    /// The pair of a completed course is used up.
    MARK_PAIR_USED = "UPDATE slot_pairs SET state = 'used' WHERE booking_id = $1";
}

/// A live booking with its place.
#[derive(sqlx::FromRow)]
pub struct LiveBooking {
    pub id: Uuid,
    pub state: BookingState,
    #[sqlx(flatten)]
    pub place: Place,
}

pub async fn lock_live_booking(
    tx: &mut PgConnection,
    registrant: Uuid,
) -> Result<Option<LiveBooking>, sqlx::Error> {
    sqlx::query_as(LOCK_LIVE_BOOKING)
        .bind(registrant)
        .fetch_optional(tx)
        .await
}

/// The registrant's booking no dose of which was given yet: (booking, pair).
pub async fn unused_booking(
    tx: &mut PgConnection,
    registrant: Uuid,
) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(UNUSED_BOOKING)
        .bind(registrant)
        .fetch_optional(tx)
        .await
}

/// Marks a booking cancelled for `reason` and reopens its pair (when `pair` is given; a centre
/// that withdraws capacity cancels the pairs themselves).
pub async fn cancel(
    tx: &mut PgConnection,
    booking: Uuid,
    pair: Option<Uuid>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(CANCEL_BOOKING)
        .bind(booking)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    if let Some(pair) = pair {
        sqlx::query(REOPEN_BOOKED_PAIR)
            .bind(pair)
            .bind(booking)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A booking as the door checks it.
#[derive(sqlx::FromRow)]
pub struct AtDoor {
    pub state: BookingState,
    pub centre_id: String,
    pub first_slot_at: DateTime<Utc>,
    pub second_slot_at: Option<DateTime<Utc>>,
    pub vaccine: String,
}

pub async fn lock_at_door(tx: &mut PgConnection, booking: Uuid) -> Result<Option<AtDoor>, sqlx::Error> {
    sqlx::query_as(LOCK_AT_DOOR)
        .bind(booking)
        .fetch_optional(tx)
        .await
}

/// Records a dose given at `at`, the booking now in `next`; a completed course uses up its pair.
pub async fn record_dose(
    tx: &mut PgConnection,
    booking: Uuid,
    dose: Dose,
    next: BookingState,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let statement = match dose {
        Dose::First => RECORD_FIRST_DOSE,
        Dose::Second => RECORD_SECOND_DOSE,
    };
    sqlx::query(statement)
        .bind(booking)
        .bind(next)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    if next == BookingState::Completed {
        sqlx::query(MARK_PAIR_USED)
            .bind(booking)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
