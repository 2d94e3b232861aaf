//! `/v1/callcentre/...`: agents register callers, look them up by the booking code they read
//! out, and act for them. Agents see only their own region; every action is audited.

use actix_web::{web, HttpResponse};
use drawbridge_domain::Evaluation;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::answers::outcome;
use super::extract::{Json, Staff};
use crate::error::ApiError;
use crate::use_cases::register::{self, RegistrationForm};
use crate::use_cases::{act, call_centre, Acting, Request};
use crate::AppState;

#[derive(Serialize)]
struct Registered {
    registration_id: Uuid,
    status: &'static str,
    booking_code: String,
    eligibility: Evaluation,
    message: &'static str,
}

/// `POST /v1/callcentre/registrations`: registers a caller in the agent's region.
pub async fn register(
    state: web::Data<AppState>,
    staff: Staff,
    form: Json<RegistrationForm>,
) -> Result<HttpResponse, ApiError> {
    let registered = register::by_phone(&state, &staff.0, form.into_inner()).await?;
    Ok(HttpResponse::Created().json(Registered {
        registration_id: registered.registration_id,
        status: "active",
        booking_code: registered.booking_code.to_string(),
        eligibility: registered.eligibility,
        message: "Registered. Please read the booking code out to the caller; it is also on its way by SMS.",
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    booking_code: String,
}

/// `POST /v1/callcentre/lookup`: the caller's registration, by the booking code they read out
/// (in the body, so codes never land in URLs or access logs).
pub async fn lookup(
    state: web::Data<AppState>,
    staff: Staff,
    body: Json<Lookup>,
) -> Result<HttpResponse, ApiError> {
    let status = call_centre::look_up(&state, &staff.0, &body.booking_code).await?;
    Ok(HttpResponse::Ok().json(status))
}

/// `GET /v1/callcentre/registrants/{id}`.
pub async fn registrant(
    state: web::Data<AppState>,
    staff: Staff,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let status = call_centre::open(&state, &staff.0, *id).await?;
    Ok(HttpResponse::Ok().json(status))
}

/// `POST /v1/callcentre/registrants/{id}/offer/accept`.
pub async fn accept(
    state: web::Data<AppState>,
    staff: Staff,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &staff, *id, Request::Accept).await
}

/// `POST /v1/callcentre/registrants/{id}/offer/decline`.
pub async fn decline(
    state: web::Data<AppState>,
    staff: Staff,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &staff, *id, Request::Decline).await
}

/// `POST /v1/callcentre/registrants/{id}/booking/cancel`.
pub async fn cancel(
    state: web::Data<AppState>,
    staff: Staff,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &staff, *id, Request::Cancel).await
}

/// `POST /v1/callcentre/registrants/{id}/withdraw`: withdraws and erases, at the caller's request.
pub async fn withdraw(
    state: web::Data<AppState>,
    staff: Staff,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &staff, *id, Request::Withdraw).await
}

async fn answer(
    state: &AppState,
    staff: &Staff,
    id: Uuid,
    request: Request,
) -> Result<HttpResponse, ApiError> {
    let caller = call_centre::caller(state, &staff.0, id).await?;
    Ok(outcome(
        act(state, &caller, &Acting::Staff(&staff.0), request).await?,
    ))
}
