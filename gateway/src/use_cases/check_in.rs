//! Check-in at the door: a scanned pass is verified (or, with no pass at hand, the booking is
//! found by booking code or booking reference, each with the holder's birth year), the dose it
//! books today is recorded, and the answer says which; a second scan of the same dose says it
//! was used already.

use chrono::{DateTime, Utc};
use drawbridge_domain::allocation::booking::after_dose;
use drawbridge_domain::{
    checkin, BookingAtDoor, BookingCode, BookingReference, CheckinPass, Dose, StaffMember,
};
use drawbridge_platform::states::BookingState;
use uuid::Uuid;

use super::answer_offer::reference;
use super::audit;
use super::capacity::centre;
use crate::error::ApiError;
use crate::store::bookings;
use crate::AppState;

/// A dose recorded.
#[derive(serde::Serialize)]
pub struct CheckedIn {
    pub valid: bool,
    pub booking: String,
    pub dose: Dose,
    pub vaccine: String,
    pub booking_state: BookingState,
    /// After a first dose, when to come back.
    pub second_at: Option<DateTime<Utc>>,
}

/// What the person shows at the door.
pub enum Presented<'a> {
    /// The scanned QR code.
    Pass(&'a str),
    /// No code at hand: the booking code, with the holder's birth year.
    BookingCode { code: &'a str, birth_year: i32 },
    /// The reference from the confirmation (`B-1A2B-3C4D`), with the holder's birth year.
    Reference { reference: &'a str, birth_year: i32 },
}

/// The booking `presented` names at `centre` (a pass names it whatever the centre; the check
/// that follows refuses another centre's booking).
async fn booking_presented(
    state: &AppState,
    centre: &str,
    presented: &Presented<'_>,
    now: DateTime<Utc>,
) -> Result<Uuid, ApiError> {
    let pool = state.store.pool();
    match *presented {
        Presented::Pass(pass) => CheckinPass::verify(state.pass_keys.public(), pass, now)
            .map(|pass| pass.booking)
            .map_err(|error| {
                ApiError::invalid(
                    "pass",
                    format!("Not a valid check-in pass: {error}. Ask for the booking code or the booking reference and the birth year."),
                )
            }),
        Presented::BookingCode { code, birth_year } => {
            let code = BookingCode::parse(code).map_err(|e| ApiError::invalid("booking_code", e.to_string()))?;
            bookings::live_booking_of_code(pool, &code.keyed_hash(&state.hash_key), birth_year)
                .await?
                .ok_or_else(|| {
                    ApiError::invalid(
                        "booking_code",
                        "No live booking has this booking code with this birth year. Check both with the person.",
                    )
                })
        }
        Presented::Reference { reference, birth_year } => {
            let ids = BookingReference::id_range(reference).ok_or_else(|| {
                ApiError::invalid("reference", "A booking reference looks like B-1A2B-3C4D.")
            })?;
            match bookings::live_bookings_by_reference(pool, ids, birth_year, centre).await?[..] {
                [booking] => Ok(booking),
                [] => Err(ApiError::invalid(
                    "reference",
                    "No live booking at this centre has this reference with this birth year. Check both with the person.",
                )),
                _ => Err(ApiError::invalid(
                    "reference",
                    "Several bookings here have this reference and birth year. Please ask for the booking code.",
                )),
            }
        }
    }
}

/// Checks in the person who presented `presented` at the centre `centre_id`.
pub async fn check_in(
    state: &AppState,
    member: &StaffMember,
    centre_id: &str,
    presented: &Presented<'_>,
) -> Result<CheckedIn, ApiError> {
    let centre = centre(state, member, centre_id).await?;
    let now = Utc::now();
    let booking_id = booking_presented(state, &centre.id, presented, now).await?;
    let mut tx = state.store.begin().await?;
    let booking = bookings::lock_at_door(&mut tx, booking_id)
        .await?
        .ok_or_else(|| ApiError::invalid("pass", "This pass names a booking we do not have."))?;
    let (second_at, vaccine) = (booking.second_slot_at, booking.vaccine);
    let door = BookingAtDoor {
        centre: booking.centre_id,
        state: booking.state.as_str().to_owned(),
        first_at: booking.first_slot_at,
        second_at,
    };
    let dose = checkin(&door, &centre.id, now)?;
    let next = after_dose(dose, second_at.is_some());
    let next =
        BookingState::parse(next).ok_or_else(|| ApiError::internal(format!("no booking state {next:?}")))?;
    bookings::record_dose(&mut tx, booking_id, dose, next, now).await?;
    audit(
        &mut tx,
        member,
        "checkin",
        Some(&centre.id),
        Some(booking_id),
        serde_json::json!({ "dose": dose }),
    )
    .await?;
    tx.commit().await?;
    Ok(CheckedIn {
        valid: true,
        booking: reference(booking_id),
        dose,
        vaccine,
        booking_state: next,
        second_at: if dose == Dose::First { second_at } else { None },
    })
}
