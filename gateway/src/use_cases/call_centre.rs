//! Call-centre agents act for callers who cannot or will not use the web: they look callers up
//! by the booking code they read out, and see what the caller would see. Agents see only their
//! own region, and every look is written to the audit log. (Registering a caller is in
//! `register`, answering for them in `answer_offer`, `cancel` and `withdraw`.)

use drawbridge_domain::{BookingCode, StaffMember};
use uuid::Uuid;

use super::my_status::{self, MyStatus};
use super::{audit, forbidden};
use crate::error::ApiError;
use crate::store::registrants::Registrant;
use crate::AppState;

/// The caller whose booking code the agent typed.
pub async fn look_up(
    state: &AppState,
    agent: &StaffMember,
    booking_code: &str,
) -> Result<MyStatus, ApiError> {
    let code =
        BookingCode::parse(booking_code).map_err(|e| ApiError::invalid("booking_code", e.to_string()))?;
    let registrant = my_status::by_booking_code(state, &code).await?.ok_or_else(|| {
        ApiError::not_found("No active registration has this booking code. Ask the caller to read it again.")
    })?;
    show(state, agent, registrant, "registrant.lookup").await
}

/// A caller by their registration id.
pub async fn open(state: &AppState, agent: &StaffMember, id: Uuid) -> Result<MyStatus, ApiError> {
    let registrant = my_status::load(state, id).await?;
    show(state, agent, registrant, "registrant.view").await
}

/// The active registrant `id`, if the agent may act for them.
pub async fn caller(state: &AppState, agent: &StaffMember, id: Uuid) -> Result<Registrant, ApiError> {
    let caller = my_status::load(state, id).await?;
    agent.may_act_for_callers(&caller.region_id).map_err(forbidden)?;
    Ok(caller)
}

async fn show(
    state: &AppState,
    agent: &StaffMember,
    registrant: Registrant,
    action: &str,
) -> Result<MyStatus, ApiError> {
    agent
        .may_act_for_callers(&registrant.region_id)
        .map_err(forbidden)?;
    // The connection goes back to the pool before the status takes its own.
    audit(
        &mut *state.store.pool().acquire().await?,
        agent,
        action,
        None,
        Some(registrant.id),
        serde_json::json!({}),
    )
    .await?;
    my_status::status(state, registrant).await
}
