//! The pass page behind the link in a confirmation: the booking's check-in pass (QR code and
//! reference) for everyone, with or without email. The link's key is a keyed hash of the
//! booking, so it opens that one pass; a booking cancelled since shows no pass.

use chrono::Utc;
use drawbridge_domain::{is_pass_key, CheckinPass, JwkSet, Label};
use drawbridge_platform::states::BookingState;
use uuid::Uuid;

use super::answer_offer::reference;
use crate::error::ApiError;
use crate::store::bookings::{self, LiveBooking};
use crate::AppState;

/// A booking's pass.
pub struct Pass {
    pub booking: LiveBooking,
    pub vaccine_name: Label,
    pub reference: String,
    /// The QR code's content; `None` once the booking is cancelled or fully used.
    pub checkin_pass: Option<String>,
}

/// The pass of `booking`, if `key` is its link's key.
pub async fn show(state: &AppState, booking: Uuid, key: &str) -> Result<Pass, ApiError> {
    let no_pass =
        || ApiError::not_found("There is no such pass. Use the link from your confirmation exactly.");
    if !is_pass_key(&state.hash_key, booking, key) {
        return Err(no_pass());
    }
    let found = bookings::booking(state.store.pool(), booking)
        .await?
        .ok_or_else(no_pass)?;
    let checkin_pass = match found.state {
        BookingState::Cancelled | BookingState::Completed => None,
        BookingState::Booked | BookingState::FirstDoseGiven => Some(
            CheckinPass {
                booking,
                centre: found.place.centre_id.clone(),
                first_at: found.place.first_at,
                second_at: found.place.second_at,
            }
            .sign(&state.pass_keys, Utc::now()),
        ),
    };
    let policy = state.policies.current(&found.place.region_id).await?;
    let vaccine_name = policy.policy.vaccine_name(&found.place.vaccine);
    Ok(Pass {
        vaccine_name,
        reference: reference(booking),
        booking: found,
        checkin_pass,
    })
}

/// The public keys that check every pass, for doors that check them offline.
pub fn public_keys(state: &AppState) -> JwkSet {
    state.pass_keys.public().jwk_set()
}
