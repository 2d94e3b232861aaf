//! `/v1/draws`: published draws, their commitments and figures, and their manifests.

use actix_web::{web, HttpResponse};
use drawbridge_platform::draws::DrawSummary;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::use_cases::draws;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    region: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct Draws {
    draws: Vec<DrawSummary>,
}

pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let draws = draws::list(&state, query.region.as_deref(), query.limit).await?;
    Ok(HttpResponse::Ok().json(Draws { draws }))
}

pub async fn show(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(draws::summary(&state, *id).await?))
}

pub async fn manifest(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(draws::manifest(&state, *id).await?))
}
