//! Published draws: anyone can list them, read a draw's commitments and figures, and download
//! its pseudonymised manifest to replay it with `drawbridge replay`.

use actix_web::{web, HttpResponse};
use drawbridge_platform::draws::{self, ManifestError};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    region: Option<String>,
    limit: Option<i64>,
}

const MAX_LIST: i64 = 100;

pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIST}, got {limit}"),
        ));
    }
    let draws = draws::list(&state.pool, query.region.as_deref(), limit).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "draws": draws })))
}

pub async fn show(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let draw = draws::summary(&state.pool, *id)
        .await?
        .ok_or_else(|| unknown(*id))?;
    Ok(HttpResponse::Ok().json(draw))
}

pub async fn manifest(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    match draws::manifest(&state.pool, *id).await {
        Ok(Some(manifest)) => Ok(HttpResponse::Ok().json(manifest)),
        Ok(None) => Err(unknown(*id)),
        Err(ManifestError::NotCompleted(id)) => Err(ApiError::Conflict {
            code: "draw_not_completed",
            message: format!(
                "Draw {id} has not completed (it is running, or failed and was rolled back), so \
                 its seed and outcome are not published. Its seed commitment is at /v1/draws/{id}."
            ),
        }),
        Err(error) => Err(ApiError::Internal(error.to_string())),
    }
}

fn unknown(id: Uuid) -> ApiError {
    ApiError::NotFound(format!(
        "There is no draw {id}. Recent draws are listed at /v1/draws."
    ))
}
