//! `/v1/centres/{centre}/...`: publishing and withdrawing capacity, the day's schedule, and
//! check-in at the door.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use drawbridge_domain::CapacityRequest;
use serde::Deserialize;
use uuid::Uuid;

use super::extract::{idempotency_key, Json, Staff};
use crate::error::ApiError;
use crate::use_cases::check_in::Presented;
use crate::use_cases::{capacity, check_in};
use crate::AppState;

/// `POST /v1/centres/{centre}/capacity` with an `Idempotency-Key` header: publishes slot pairs.
pub async fn publish(
    state: web::Data<AppState>,
    staff: Staff,
    centre: web::Path<String>,
    http: HttpRequest,
    request: Json<CapacityRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&http)?;
    let published = capacity::publish(&state, &staff.0, &centre, key, request.into_inner()).await?;
    Ok(if published.replayed {
        HttpResponse::Ok().json(published)
    } else {
        HttpResponse::Created().json(published)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    reason: String,
}

/// `POST /v1/centres/{centre}/capacity/{id}/cancel`: withdraws a published batch.
pub async fn withdraw(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<(String, Uuid)>,
    body: Json<Withdrawal>,
) -> Result<HttpResponse, ApiError> {
    let (centre, batch) = path.into_inner();
    let withdrawn = capacity::withdraw(&state, &staff.0, &centre, batch, &body.reason).await?;
    Ok(HttpResponse::Ok().json(withdrawn))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleQuery {
    date: NaiveDate,
}

/// `GET /v1/centres/{centre}/schedule?date=`.
pub async fn schedule(
    state: web::Data<AppState>,
    staff: Staff,
    centre: web::Path<String>,
    query: web::Query<ScheduleQuery>,
) -> Result<HttpResponse, ApiError> {
    let schedule = capacity::schedule(&state, &staff.0, &centre, query.date).await?;
    Ok(HttpResponse::Ok().json(schedule))
}

/// What the door sends: the scanned pass, or the booking code or reference with the birth year.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scan {
    /// The QR code's content.
    pass: Option<String>,
    booking_code: Option<String>,
    reference: Option<String>,
    birth_year: Option<i32>,
}

impl Scan {
    fn presented(&self) -> Result<Presented<'_>, ApiError> {
        let birth_year = || {
            self.birth_year.ok_or_else(|| {
                ApiError::invalid(
                    "birth_year",
                    "Give the person's birth year with a booking code or reference.",
                )
            })
        };
        match (&self.pass, &self.booking_code, &self.reference) {
            (Some(pass), None, None) => Ok(Presented::Pass(pass)),
            (None, Some(code), None) => Ok(Presented::BookingCode {
                code,
                birth_year: birth_year()?,
            }),
            (None, None, Some(reference)) => Ok(Presented::Reference {
                reference,
                birth_year: birth_year()?,
            }),
            _ => Err(ApiError::invalid(
                "pass",
                "Send one of: the scanned pass, the booking code with the birth year, or the booking reference with the birth year.",
            )),
        }
    }
}

/// `POST /v1/centres/{centre}/checkins`: a scanned pass, or a booking code or reference.
pub async fn check_in(
    state: web::Data<AppState>,
    staff: Staff,
    centre: web::Path<String>,
    scan: Json<Scan>,
) -> Result<HttpResponse, ApiError> {
    let checked_in = check_in::check_in(&state, &staff.0, &centre, &scan.presented()?).await?;
    Ok(HttpResponse::Ok().json(checked_in))
}
