//! `/v1/me`: a registrant's own view and requests, opened with their booking code.

use actix_web::{web, HttpResponse};

use super::answers::outcome;
use super::extract::{BookingCodeHolder, Json};
use crate::error::ApiError;
use crate::use_cases::my_data;
use crate::use_cases::my_status::{self, Changes};
use crate::use_cases::{act, Acting, Request};
use crate::AppState;

/// `GET /v1/me`.
pub async fn show(state: web::Data<AppState>, me: BookingCodeHolder) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(my_status::status(&state, me.0).await?))
}

/// `GET /v1/me/export`: everything held about the registrant.
pub async fn export(state: web::Data<AppState>, me: BookingCodeHolder) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(my_data::export(&state, me.0).await?))
}

/// `PATCH /v1/me`: change choices; they count from the next draw on.
pub async fn change(
    state: web::Data<AppState>,
    changes: Json<Changes>,
    me: BookingCodeHolder,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(my_status::change(&state, me.0, changes.into_inner()).await?))
}

/// `POST /v1/me/offer/accept`: books both appointments of the current offer.
pub async fn accept(state: web::Data<AppState>, me: BookingCodeHolder) -> Result<HttpResponse, ApiError> {
    answer(&state, me, Request::Accept).await
}

/// `POST /v1/me/offer/decline`.
pub async fn decline(state: web::Data<AppState>, me: BookingCodeHolder) -> Result<HttpResponse, ApiError> {
    answer(&state, me, Request::Decline).await
}

/// `POST /v1/me/booking/cancel`.
pub async fn cancel(state: web::Data<AppState>, me: BookingCodeHolder) -> Result<HttpResponse, ApiError> {
    answer(&state, me, Request::Cancel).await
}

/// `DELETE /v1/me`: withdraw and erase personal data.
pub async fn withdraw(state: web::Data<AppState>, me: BookingCodeHolder) -> Result<HttpResponse, ApiError> {
    answer(&state, me, Request::Withdraw).await
}

async fn answer(state: &AppState, me: BookingCodeHolder, request: Request) -> Result<HttpResponse, ApiError> {
    Ok(outcome(act(state, &me.0, &Acting::Registrant, request).await?))
}
