//! Published draws: anyone can list them, read a draw's commitments and figures, and download
//! its pseudonymised manifest to replay it with `drawbridge replay`.

use drawbridge_domain::Manifest;
use drawbridge_platform::draws::{self, DrawSummary, ManifestError};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::AppState;

/// Most draws one list answers.
pub const MAX_LIST: i64 = 100;

pub async fn list(
    state: &AppState,
    region: Option<&str>,
    limit: Option<i64>,
) -> Result<Vec<DrawSummary>, ApiError> {
    let limit = limit.unwrap_or(20);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIST}, got {limit}"),
        ));
    }
    Ok(draws::list(state.store.pool(), region, limit).await?)
}

pub async fn summary(state: &AppState, id: Uuid) -> Result<DrawSummary, ApiError> {
    draws::summary(state.store.pool(), id)
        .await?
        .ok_or_else(|| unknown(id))
}

/// The draw's manifest, as published.
pub async fn manifest(state: &AppState, id: Uuid) -> Result<Manifest, ApiError> {
    match draws::manifest(state.store.pool(), id).await {
        Ok(Some(manifest)) => Ok(manifest),
        Ok(None) => Err(unknown(id)),
        Err(ManifestError::NotCompleted(id)) => {
            Err(ApiError::new(ErrorCode::DrawNotCompleted).with_message(format!(
                "Draw {id} has not completed (it is running, or failed and was rolled back), so \
             its seed and outcome are not published. Its seed commitment is at /v1/draws/{id}."
            )))
        }
        Err(error) => Err(ApiError::internal(error)),
    }
}

fn unknown(id: Uuid) -> ApiError {
    ApiError::not_found(format!(
        "There is no draw {id}. Recent draws are listed at /v1/draws."
    ))
}
