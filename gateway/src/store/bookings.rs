//! Bookings: cancelling them, and recording doses at the door.

use chrono::{DateTime, Utc};
use drawbridge_domain::Dose;
use drawbridge_platform::states::BookingState;
use sqlx::PgConnection;
use uuid::Uuid;

use super::offers::Place;
use super::statements;

/// A booking with its place, as [`LiveBooking`] reads it.
macro_rules! booking_with_place {
    () => {
        "SELECT b.id, b.state,
                p.id AS slot_pair_id, c.id AS centre_id, c.name AS centre, c.address, c.region_id,
                g.timezone, p.vaccine, p.first_slot_at AS first_at, p.second_slot_at AS second_at
         FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id
         JOIN centres c ON c.id = p.centre_id JOIN regions g ON g.id = c.region_id "
    };
}

statements! {
    /// The registrant's live booking with its place, locked.
    LOCK_LIVE_BOOKING = concat!(
        booking_with_place!(),
        "WHERE b.registrant_id = $1 AND b.state <> 'cancelled' FOR UPDATE OF b"
    );
    /// A booking with its place, whatever its state.
    BOOKING = concat!(booking_with_place!(), "WHERE b.id = $1");
    /// The registrant's booking no dose of which was given yet, with its pair.
    UNUSED_BOOKING = "SELECT id, slot_pair_id FROM bookings WHERE registrant_id = $1 AND state = 'booked'";
    CANCEL_BOOKING =
        "UPDATE bookings SET state = 'cancelled', cancelled_at = now(), cancel_reason = $2 WHERE id = $1";
    REOPEN_BOOKED_PAIR =
        "UPDATE slot_pairs SET state = 'open', booking_id = NULL WHERE id = $1 AND booking_id = $2";
    /// The live booking of the active registrant with this booking code's hash and birth year.
    LIVE_BOOKING_OF_CODE =
        "SELECT b.id FROM registrants r JOIN bookings b ON b.registrant_id = r.id
         WHERE r.booking_code_hash = $1 AND r.status = 'active' AND r.birth_year = $2
           AND b.state <> 'cancelled'";
    /// Live bookings at a centre with ids in a reference's range, of people born in a year.
    LIVE_BOOKINGS_BY_REFERENCE =
        "SELECT b.id FROM bookings b JOIN registrants r ON r.id = b.registrant_id
         JOIN slot_pairs p ON p.id = b.slot_pair_id
         WHERE b.id BETWEEN $1 AND $2 AND r.birth_year = $3 AND p.centre_id = $4
           AND b.state <> 'cancelled'";
    /// A booking as the door checks it, locked.
    LOCK_AT_DOOR =
        "SELECT b.state, p.centre_id, p.first_slot_at, p.second_slot_at, p.vaccine
         FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id WHERE b.id = $1 FOR UPDATE OF b";
    RECORD_FIRST_DOSE = "UPDATE bookings SET state = $2, first_dose_at = $3 WHERE id = $1";
    RECORD_SECOND_DOSE = "UPDATE bookings SET state = $2, second_dose_at = $3 WHERE id = $1";
    /// The pair of a completed course is used up.
    MARK_PAIR_USED = "UPDATE slot_pairs SET state = 'used' WHERE booking_id = $1";
}

/// A booking with its place.
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

/// A booking with its place, whatever its state.
pub async fn booking(pool: &sqlx::PgPool, id: Uuid) -> Result<Option<LiveBooking>, sqlx::Error> {
    sqlx::query_as(BOOKING).bind(id).fetch_optional(pool).await
}

/// The live booking of the person with this booking code's hash, born in `birth_year`.
pub async fn live_booking_of_code(
    pool: &sqlx::PgPool,
    code_hash: &[u8],
    birth_year: i32,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(LIVE_BOOKING_OF_CODE)
        .bind(code_hash)
        .bind(birth_year)
        .fetch_optional(pool)
        .await
}

/// Live bookings at `centre` with ids in `ids` (a reference's range) of people born in
/// `birth_year`.
pub async fn live_bookings_by_reference(
    pool: &sqlx::PgPool,
    ids: (Uuid, Uuid),
    birth_year: i32,
    centre: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(LIVE_BOOKINGS_BY_REFERENCE)
        .bind(ids.0)
        .bind(ids.1)
        .bind(birth_year)
        .bind(centre)
        .fetch_all(pool)
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
