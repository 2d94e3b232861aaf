//! `POST /v1/regions/{region}/registrations`: registering on the web, guarded by the region's
//! waiting rooms (see `extract::Admitted`), with an optional `Idempotency-Key`.

use actix_web::{web, HttpRequest, HttpResponse};
use drawbridge_domain::Evaluation;
use serde::Serialize;
use uuid::Uuid;

use super::answers::CodeSent;
use super::extract::{client_address, idempotency_key, Admitted, Json};
use crate::error::ApiError;
use crate::use_cases::admission;
use crate::use_cases::register::RegistrationForm;
use crate::AppState;

#[derive(Serialize)]
struct Started {
    registration_id: Uuid,
    status: &'static str,
    verification: CodeSent,
    eligibility: Evaluation,
}

pub async fn create(
    admitted: Admitted,
    state: web::Data<AppState>,
    region: web::Path<String>,
    http: HttpRequest,
    form: Json<RegistrationForm>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&http)?;
    let address = client_address(&http);
    let started = admission::register(
        &state,
        admitted.0.as_ref(),
        &region,
        form.into_inner(),
        key,
        &address,
    )
    .await?;
    Ok(HttpResponse::Accepted().json(Started {
        registration_id: started.registration_id,
        status: "pending_verification",
        verification: CodeSent::by_sms(started.code_expires_at, started.attempts_left),
        eligibility: started.eligibility,
    }))
}
