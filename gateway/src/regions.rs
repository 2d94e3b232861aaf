//! Published rules, open to everyone: the list of regions, each region's current policy, and
//! an eligibility check that explains every decision and stores nothing.

use actix_web::{web, HttpResponse};
use chrono::{NaiveDate, Utc};
use drawbridge_domain::{evaluate, Person};
use drawbridge_platform::policies;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::AppState;

#[derive(Serialize)]
struct RegionSummary {
    id: String,
    name: String,
    policy_version: u32,
}

pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let regions: Vec<RegionSummary> = policies::all_current(&state.pool)
        .await?
        .into_iter()
        .map(|p| RegionSummary {
            id: p.region,
            name: p.policy.name,
            policy_version: p.version,
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "regions": regions })))
}

pub async fn policy(state: web::Data<AppState>, region: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let published = state.policies.current(&region).await?;
    Ok(HttpResponse::Ok().json(&*published))
}

/// What a person tells us to check their eligibility. The same fields are part of a
/// registration, so the check shows exactly what a registration would be judged by.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EligibilityRequest {
    pub birth_year: i32,
    pub priority_group: u8,
    pub postcode: String,
    pub accepted_vaccines: Vec<String>,
    /// Defaults to today; lets people see when they will become eligible.
    #[serde(default)]
    pub on: Option<NaiveDate>,
}

pub async fn eligibility(
    state: web::Data<AppState>,
    region: web::Path<String>,
    request: web::Json<EligibilityRequest>,
) -> Result<HttpResponse, ApiError> {
    let published = state.policies.current(&region).await?;
    let request = request.into_inner();
    let person = Person {
        birth_year: check_birth_year(request.birth_year)?,
        priority_group: request.priority_group,
        postcode: check_postcode(&request.postcode)?,
        accepted_vaccines: request.accepted_vaccines,
    };
    let on = request.on.unwrap_or_else(|| Utc::now().date_naive());
    Ok(HttpResponse::Ok().json(evaluate(&published.policy, &person, on)))
}

/// A birth year a living person can have. Ages themselves are the policy's business.
pub fn check_birth_year(year: i32) -> Result<i32, ApiError> {
    let this_year = chrono::Datelike::year(&Utc::now());
    if (1900..=this_year).contains(&year) {
        Ok(year)
    } else {
        Err(ApiError::invalid(
            "birth_year",
            format!("Please give a birth year between 1900 and {this_year}, like 1956."),
        ))
    }
}

/// A German postcode: exactly five digits (spaces around it are forgiven).
pub fn check_postcode(postcode: &str) -> Result<String, ApiError> {
    let postcode = postcode.trim();
    if postcode.len() == 5 && postcode.bytes().all(|b| b.is_ascii_digit()) {
        Ok(postcode.to_owned())
    } else {
        Err(ApiError::invalid(
            "postcode",
            "Please give your five-digit postcode, like 70173.",
        ))
    }
}
