//! `POST /v1/registrations/{id}/verify` and `/resend`: the SMS code.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::answers::CodeSent;
use super::extract::Json;
use crate::error::ApiError;
use crate::use_cases::verify;
use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeForm {
    pub code: String,
}

#[derive(Serialize)]
struct Verified {
    registration_id: Uuid,
    status: &'static str,
    booking_code: String,
    message: &'static str,
}

pub async fn verify(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    form: Json<CodeForm>,
) -> Result<HttpResponse, ApiError> {
    let booking_code = verify::verify(&state, *id, &form.code).await?;
    Ok(HttpResponse::Ok().json(Verified {
        registration_id: *id,
        status: "active",
        booking_code: booking_code.to_string(),
        message:
            "Keep this booking code safe: it is the only key to your registration. We also sent it by SMS.",
    }))
}

#[derive(Serialize)]
struct Resent {
    registration_id: Uuid,
    verification: CodeSent,
}

pub async fn resend(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let sent = verify::resend(&state, *id).await?;
    Ok(HttpResponse::Accepted().json(Resent {
        registration_id: *id,
        verification: CodeSent::by_sms(sent.expires_at, sent.attempts_left),
    }))
}
