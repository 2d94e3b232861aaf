//! Registering through a waiting room. The guard checks admission tokens in process, without
//! Redis; here, on the registration path only, the admission is spent in Redis by the
//! registration it admits, so one admission registers one phone number (the same registration
//! sent again, its answer lost, still passes), and an admission whose visitor left the room is
//! refused at once, on every gateway. Without Redis an admission cannot be spent, so the
//! registration is refused (503) rather than let through unchecked.

use drawbridge_domain::waiting_room::room::admitted_phone;
use drawbridge_domain::{PhoneNumber, RoomTokenError};

use super::register::{self, RegistrationForm, Started};
use crate::error::{ApiError, ErrorCode};
use crate::rooms::store::Spent;
use crate::rooms::{unix_now, Admission};
use crate::AppState;

/// Seconds to wait before trying again when Redis does not answer.
const RETRY_AFTER_SECONDS: u64 = 30;

/// Registers on the web, spending `admission` (if the region's rooms asked for one).
pub async fn register(
    state: &AppState,
    admission: Option<&Admission>,
    region: &str,
    form: RegistrationForm,
    idempotency_key: Option<&str>,
    address: &str,
) -> Result<Started, ApiError> {
    if let Some(admission) = admission {
        // A phone number that cannot be read registers nothing, so it spends nothing: the
        // registration refuses it, naming the field.
        if let Ok(phone) = PhoneNumber::parse(&form.phone, &state.settings.default_country_code) {
            spend(state, admission, &phone).await?;
        }
    }
    register::on_the_web(state, region, form, idempotency_key, address).await
}

async fn spend(state: &AppState, admission: &Admission, phone: &PhoneNumber) -> Result<(), ApiError> {
    let spent_on = admitted_phone(&state.hash_key, phone.as_str());
    let seconds = u64::try_from(admission.ends_at - unix_now()).unwrap_or(1);
    let spent = state
        .rooms
        .store
        .spend(&admission.room, admission.ticket, &spent_on, seconds)
        .await;
    match spent {
        Ok(Spent::OnThis) => Ok(()),
        Ok(Spent::OnAnother) => Err(ApiError::new(ErrorCode::AdmissionSpent)),
        Ok(Spent::Left) => Err(RoomTokenError::Dropped.into()),
        Err(error) => {
            tracing::warn!(%error, room = %admission.room, "an admission cannot be spent: Redis fails");
            Err(ApiError::new(ErrorCode::AdmissionUnavailable).with_retry_after(RETRY_AFTER_SECONDS))
        }
    }
}
