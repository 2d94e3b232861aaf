//! Withdrawing a registration: a pending offer is withdrawn and a booking cancelled (their
//! pairs go to the next draw), and every personal field is erased, here and in the messages
//! about the person. The row stays, pseudonymous, because published draws refer to it.

use drawbridge_platform::states::RegistrantStatus;
use uuid::Uuid;

use super::Acting;
use crate::error::{ApiError, ErrorCode};
use crate::store::{bookings, registrants};
use crate::AppState;

pub async fn withdraw(state: &AppState, registrant: Uuid, acting: &Acting<'_>) -> Result<(), ApiError> {
    let mut tx = state.store.begin().await?;
    let status = registrants::lock_status(&mut tx, registrant).await?;
    if status.is_none_or(|s| s == RegistrantStatus::Withdrawn) {
        return Err(ApiError::not_found("This registration was withdrawn already."));
    }
    if registrants::has_dose_given(&mut tx, registrant).await? {
        return Err(ApiError::new(ErrorCode::CourseInProgress));
    }
    registrants::withdraw_pending_offer(&mut tx, registrant).await?;
    if let Some((booking, pair)) = bookings::unused_booking(&mut tx, registrant).await? {
        bookings::cancel(&mut tx, booking, Some(pair), "registration withdrawn").await?;
    }
    registrants::erase(&mut tx, registrant).await?;
    acting
        .audit(
            &mut tx,
            "registration.withdraw",
            Some(registrant),
            serde_json::json!({}),
        )
        .await?;
    tx.commit().await?;
    tracing::info!(%registrant, "registration withdrawn and erased");
    Ok(())
}
