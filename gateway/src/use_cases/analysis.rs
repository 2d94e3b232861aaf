//! What analysts (and region admins) read of their region: its draws with their figures, each
//! draw's manifest, replay verdict, bias tests and offer rates (`drawbridge audit`'s code, in
//! `drawbridge_platform::audit`). Everything here is pseudonymised or counted in cells: no
//! phone, email, booking code or registrant id leaves this module.

use drawbridge_domain::{Manifest, StaffMember};
use drawbridge_platform::audit::{self, AuditError, DrawAudit};
use drawbridge_platform::draws::{self, DrawSummary};
use drawbridge_platform::states::DrawState;
use uuid::Uuid;

use super::forbidden;
use crate::error::ApiError;
use crate::AppState;

/// The newest draws of the member's region, at most `limit`.
pub async fn draws(state: &AppState, member: &StaffMember, limit: i64) -> Result<Vec<DrawSummary>, ApiError> {
    member.may_analyse(&member.region).map_err(forbidden)?;
    Ok(draws::list(state.store.pool(), Some(&member.region), limit).await?)
}

/// A draw of the member's region, with its audit once it completed.
pub struct DrawAnalysis {
    pub summary: DrawSummary,
    pub audit: Option<DrawAudit>,
}

/// The draw `id` with its replay verdict, bias tests and offer rates.
pub async fn draw(state: &AppState, member: &StaffMember, id: Uuid) -> Result<DrawAnalysis, ApiError> {
    let summary = of_region(state, member, id).await?;
    let audit = if summary.state == DrawState::Completed {
        audit::draw(state.store.pool(), &state.hash_key, id)
            .await
            .map_err(|error: AuditError| ApiError::internal(error))?
    } else {
        None
    };
    Ok(DrawAnalysis { summary, audit })
}

/// The manifest of the draw `id`, as `/v1/draws/{id}/manifest` publishes it.
pub async fn manifest(state: &AppState, member: &StaffMember, id: Uuid) -> Result<Manifest, ApiError> {
    of_region(state, member, id).await?;
    super::draws::manifest(state, id).await
}

/// The draw `id`, if the member may analyse its region.
async fn of_region(state: &AppState, member: &StaffMember, id: Uuid) -> Result<DrawSummary, ApiError> {
    member.may_analyse(&member.region).map_err(forbidden)?;
    let summary = super::draws::summary(state, id).await?;
    member.may_analyse(&summary.region).map_err(forbidden)?;
    Ok(summary)
}
