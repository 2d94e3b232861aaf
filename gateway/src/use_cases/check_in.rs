//! Check-in at the door: a scanned pass is verified, the dose it books today is recorded, and
//! the answer says which; a second scan of the same dose says it was used already.

use chrono::{DateTime, Utc};
use drawbridge_domain::allocation::booking::after_dose;
use drawbridge_domain::{checkin, BookingAtDoor, CheckinPass, Dose, StaffMember};
use drawbridge_platform::states::BookingState;

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

/// Checks in the holder of `pass` at the centre `centre_id`.
pub async fn check_in(
    state: &AppState,
    member: &StaffMember,
    centre_id: &str,
    pass: &str,
) -> Result<CheckedIn, ApiError> {
    let centre = centre(state, member, centre_id).await?;
    let now = Utc::now();
    let pass = CheckinPass::verify(&state.keyring, pass, now).map_err(|error| {
        ApiError::invalid(
            "pass",
            format!("Not a valid check-in pass: {error}. Ask for the booking code and look the booking up."),
        )
    })?;
    let mut tx = state.store.begin().await?;
    let booking = bookings::lock_at_door(&mut tx, pass.booking)
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
    bookings::record_dose(&mut tx, pass.booking, dose, next, now).await?;
    audit(
        &mut tx,
        member,
        "checkin",
        Some(&centre.id),
        Some(pass.booking),
        serde_json::json!({ "dose": dose }),
    )
    .await?;
    tx.commit().await?;
    Ok(CheckedIn {
        valid: true,
        booking: reference(pass.booking),
        dose,
        vaccine,
        booking_state: next,
        second_at: if dose == Dose::First { second_at } else { None },
    })
}
