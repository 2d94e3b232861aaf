//! Cancelling a booking: the pair is free for the next draw, the person stays in the pool and
//! is told by SMS (and email), all in one transaction.

use drawbridge_platform::outbox::Notification;
use drawbridge_platform::states::BookingState;
use uuid::Uuid;

use super::answer_offer::{appointment, withdrawn};
use super::Acting;
use crate::error::{ApiError, ErrorCode};
use crate::store::messages::tell;
use crate::store::{bookings, registrants};
use crate::AppState;

/// Cancels the registrant's live booking; answers the booking's id.
pub async fn cancel(state: &AppState, registrant: Uuid, acting: &Acting<'_>) -> Result<Uuid, ApiError> {
    let region = registrants::region(state.store.pool(), registrant)
        .await?
        .ok_or_else(|| ApiError::not_found("There is no such offer or registration."))?;
    let policy = state.policies.current(&region).await?;
    let mut tx = state.store.begin().await?;
    let booking = bookings::lock_live_booking(&mut tx, registrant)
        .await?
        .ok_or_else(|| ApiError::not_found("There is no booking to cancel."))?;
    acting.check_region(&booking.place.region_id)?;
    if booking.state != BookingState::Booked {
        return Err(ApiError::new(ErrorCode::AlreadyCheckedIn));
    }
    let reason = if acting.is_staff() {
        "cancelled by the call centre for the registrant"
    } else {
        "cancelled by the registrant"
    };
    bookings::cancel(&mut tx, booking.id, Some(booking.place.slot_pair_id), reason).await?;
    let notification = Notification::BookingCancelled {
        appointment: appointment(&booking.place, &policy.policy),
    };
    if !tell(&mut tx, registrant, booking.id, &notification).await? {
        return Err(withdrawn());
    }
    acting
        .audit(
            &mut tx,
            "booking.cancel",
            Some(registrant),
            serde_json::json!({ "booking": booking.id }),
        )
        .await?;
    tx.commit().await?;
    tracing::info!(booking = %booking.id, "booking cancelled");
    Ok(booking.id)
}
