//! `GET /v1/regions`, `GET /v1/regions/{region}/policy`, `POST /v1/regions/{region}/eligibility`.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::extract::Json;
use crate::error::ApiError;
use crate::use_cases::rules::{self, EligibilityQuestion, RegionSummary};
use crate::AppState;

#[derive(Serialize)]
struct Regions {
    regions: Vec<RegionSummary>,
}

pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let regions = rules::regions(&state).await?;
    Ok(HttpResponse::Ok().json(Regions { regions }))
}

pub async fn policy(state: web::Data<AppState>, region: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let published = rules::policy(&state, &region).await?;
    Ok(HttpResponse::Ok().json(&*published))
}

pub async fn eligibility(
    state: web::Data<AppState>,
    region: web::Path<String>,
    question: Json<EligibilityQuestion>,
) -> Result<HttpResponse, ApiError> {
    let evaluation = rules::eligibility(&state, &region, question.into_inner()).await?;
    Ok(HttpResponse::Ok().json(evaluation))
}
