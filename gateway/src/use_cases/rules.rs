//! Published rules, open to everyone: the regions, each region's current policy, and an
//! eligibility check that explains every decision and stores nothing.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use drawbridge_domain::{evaluate, BirthYear, Evaluation, Label, Person, Postcode};
use drawbridge_platform::policies::{self, PublishedPolicy};
use serde::{Deserialize, Serialize};

use super::register::{check_vaccines, this_year};
use crate::error::ApiError;
use crate::AppState;

/// A region in the list of regions.
#[derive(Serialize)]
pub struct RegionSummary {
    pub id: String,
    pub name: Label,
    pub policy_version: u32,
}

pub async fn regions(state: &AppState) -> Result<Vec<RegionSummary>, ApiError> {
    Ok(policies::all_current(state.store.pool())
        .await?
        .into_iter()
        .map(|p| RegionSummary {
            id: p.region,
            name: p.policy.name,
            policy_version: p.version,
        })
        .collect())
}

/// The region's current policy; 404 for a region that does not exist.
pub async fn policy(state: &AppState, region: &str) -> Result<Arc<PublishedPolicy>, ApiError> {
    state.policies.current(region).await
}

/// What a person tells us to check their eligibility. The same fields are part of a
/// registration, so the check shows exactly what a registration would be judged by.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EligibilityQuestion {
    pub birth_year: i32,
    pub priority_group: u8,
    pub postcode: String,
    pub accepted_vaccines: Vec<String>,
    /// Defaults to today; lets people see when they will become eligible.
    #[serde(default)]
    pub on: Option<NaiveDate>,
}

/// The person's eligibility in the region on the day asked, rule by rule.
pub async fn eligibility(
    state: &AppState,
    region: &str,
    question: EligibilityQuestion,
) -> Result<Evaluation, ApiError> {
    let published = state.policies.current(region).await?;
    // The same rule as a registration's, so the check never answers what registering refuses.
    check_vaccines(&published.policy, &question.accepted_vaccines)?;
    let person = Person {
        birth_year: BirthYear::parse(question.birth_year, this_year())?.get(),
        priority_group: question.priority_group,
        postcode: Postcode::parse(&question.postcode)?.into_string(),
        accepted_vaccines: question.accepted_vaccines,
    };
    let on = question.on.unwrap_or_else(|| Utc::now().date_naive());
    Ok(evaluate(&published.policy, &person, on))
}
