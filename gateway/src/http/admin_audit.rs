//! The region's audit log for its admin, `/staff/admin/audit`: every action staff took, newest
//! first, filtered by staff member, kind of action, subject and days.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use drawbridge_domain::language::when;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::console::{Console, TIMEZONE};
use super::refusal;
use crate::error::ApiError;
use crate::store::staff::ActionFilter;
use crate::use_cases::region_setup;
use crate::AppState;

/// The filter as the form sends it; empty fields match everything.
#[derive(Serialize, Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    staff: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
}

impl AuditQuery {
    fn filter(&self) -> Result<ActionFilter, ApiError> {
        let zone: chrono_tz::Tz = TIMEZONE.parse().expect("the service's time zone is known");
        let day = |field: &'static str, text: &str, days_after: i64| -> Result<_, ApiError> {
            if text.trim().is_empty() {
                return Ok(None);
            }
            let day = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map_err(|_| ApiError::invalid(field, "Please enter a day like 2026-12-24."))?;
            let midnight = (day + Duration::days(days_after))
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists");
            Ok(zone
                .from_local_datetime(&midnight)
                .earliest()
                .map(|at| at.with_timezone(&Utc)))
        };
        let given = |text: &str| Some(text.trim().to_owned()).filter(|text| !text.is_empty());
        Ok(ActionFilter {
            subject: match self.subject.trim() {
                "" => None,
                subject => Some(subject.parse::<Uuid>().map_err(|_| {
                    ApiError::invalid(
                        "subject",
                        "The subject is an id like 0b5e8f3a-…; leave it empty for all.",
                    )
                })?),
            },
            staff: given(&self.staff),
            action: given(&self.action),
            from: day("from", &self.from, 0)?,
            // The day given is the last day shown, whole.
            until: day("until", &self.until, 1)?,
        })
    }
}

#[derive(Serialize)]
struct EntryView {
    at: String,
    staff: String,
    role: String,
    action: String,
    centre: Option<String>,
    subject: Option<Uuid>,
    detail: String,
}

#[derive(Serialize)]
struct AuditView {
    entered: AuditQuery,
    kinds: Vec<String>,
    entries: Vec<EntryView>,
    problem: Option<String>,
}

/// `GET /staff/admin/audit`.
pub async fn page(
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
    console: Console,
) -> HttpResponse {
    let member = &console.member;
    let kinds = match region_setup::audit_kinds(&state, member).await {
        Ok(kinds) => kinds,
        Err(refused) => return console.refused(&state, "/staff", &refused),
    };
    let entered = query.into_inner();
    let (entries, problem) = match entered.filter() {
        Ok(filter) => match region_setup::audit_log(&state, member, &filter).await {
            Ok(entries) => (entries, None),
            Err(refused) => return console.refused(&state, "/staff", &refused),
        },
        Err(refused) => {
            let said = refusal::problem(&state, console.language, "console_errors", &refused);
            (Vec::new(), Some(said.message))
        }
    };
    let status = problem
        .as_ref()
        .map_or(StatusCode::OK, |_| StatusCode::UNPROCESSABLE_ENTITY);
    let view = AuditView {
        entries: entries
            .into_iter()
            .map(|entry| EntryView {
                at: when(entry.at, TIMEZONE, console.language),
                staff: entry.staff,
                role: entry.role,
                action: entry.action,
                centre: entry.centre,
                subject: entry.subject,
                detail: entry.detail.to_string(),
            })
            .collect(),
        entered,
        kinds,
        problem,
    };
    console.page(&state, "admin_audit.html", status, view)
}
