//! Registration, step two: the person proves the phone is theirs with the SMS code, and in
//! return gets their booking code, the only credential they will ever need. Codes die after
//! five wrong tries or when they expire; a new one can be requested, at a limited pace.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use drawbridge_domain::{BookingCode, Language, PhoneNumber, VerificationCode};
use drawbridge_platform::outbox::Notification;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::registrations::issue_code;
use crate::AppState;

/// Seconds between two codes for the same registration.
const RESEND_INTERVAL_SECONDS: i64 = 60;
/// Codes one registration may receive in all, so a number cannot be used to spam someone.
const MAX_CODES: i64 = 5;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub code: String,
}

/// The registration as far as verification is concerned, with the newest code sent for it.
#[derive(sqlx::FromRow)]
struct Pending {
    status: String,
    phone: Option<String>,
    email: Option<String>,
    language: String,
    code_id: Option<Uuid>,
    code_hash: Option<Vec<u8>>,
    attempts_left: Option<i16>,
    expires_at: Option<DateTime<Utc>>,
}

/// Locks the registration and reads its newest code in one round trip.
async fn pending(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Pending, ApiError> {
    let registration: Option<Pending> = sqlx::query_as(
        "SELECT r.status, r.phone, r.email, r.language,
                v.id AS code_id, v.code_hash, v.attempts_left, v.expires_at
         FROM registrants r
         LEFT JOIN LATERAL (SELECT id, code_hash, attempts_left, expires_at FROM phone_verifications
                            WHERE registrant_id = r.id ORDER BY created_at DESC LIMIT 1) v ON true
         WHERE r.id = $1
         FOR UPDATE OF r",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let registration = registration
        .filter(|r| r.status != "withdrawn")
        .ok_or_else(|| ApiError::NotFound("There is no such registration. Please register again.".into()))?;
    if registration.status == "active" {
        return Err(ApiError::Conflict {
            code: "already_verified",
            message: "This registration is already verified. Use your booking code to see its status.".into(),
        });
    }
    Ok(registration)
}

fn language(registration: &Pending) -> Language {
    Language::parse(&registration.language).unwrap_or_default()
}

pub async fn verify(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    request: web::Json<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let code =
        VerificationCode::parse(&request.code).map_err(|e| ApiError::invalid("code", e.to_string()))?;
    let id = id.into_inner();
    let mut tx = state.pool.begin().await?;
    let mut registration = pending(&mut tx, id).await?;
    let (Some(verification_id), Some(stored), Some(attempts_left), Some(expires_at)) = (
        registration.code_id,
        registration.code_hash.take(),
        registration.attempts_left,
        registration.expires_at,
    ) else {
        return Err(ApiError::DeadCode(
            "No code was sent yet; please request one.".into(),
        ));
    };
    if attempts_left == 0 || expires_at <= Utc::now() {
        return Err(ApiError::DeadCode(
            "This code can no longer be used. Please request a new one (POST /v1/registrations/{id}/resend)."
                .into(),
        ));
    }
    let stored: [u8; 32] = stored
        .try_into()
        .map_err(|_| ApiError::Internal("stored code hash is not 32 bytes".into()))?;
    if !code.matches(&state.hash_key, id.as_bytes(), &stored) {
        let (attempts_left,): (i16,) = sqlx::query_as(
            "UPDATE phone_verifications SET attempts_left = attempts_left - 1 WHERE id = $1 RETURNING attempts_left",
        )
        .bind(verification_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        return Err(ApiError::WrongCode { attempts_left });
    }

    let booking_code = BookingCode::generate(&mut rand::rngs::OsRng);
    sqlx::query(
        "WITH used AS (UPDATE phone_verifications SET verified_at = now() WHERE id = $3)
         UPDATE registrants SET status = 'active', verified_at = now(), booking_code_hash = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(booking_code.keyed_hash(&state.hash_key).as_slice())
    .bind(verification_id)
    .execute(&mut *tx)
    .await?;
    let phone = registration
        .phone
        .as_deref()
        .expect("live registrations have a phone");
    send_booking_code(
        &mut tx,
        &state,
        id,
        &booking_code,
        (phone, registration.email.as_deref()),
        language(&registration),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(registration_id = %id, "phone verified; booking code issued");
    Ok(HttpResponse::Ok().json(json!({
        "registration_id": id,
        "status": "active",
        "booking_code": booking_code.to_string(),
        "message": "Keep this booking code safe: it is the only key to your registration. We also sent it by SMS.",
    })))
}

pub async fn resend(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let mut tx = state.pool.begin().await?;
    let registration = pending(&mut tx, id).await?;
    let (codes, seconds_since_last): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM now() - max(created_at))::float8
         FROM phone_verifications WHERE registrant_id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if codes >= MAX_CODES {
        return Err(ApiError::TooManyRequests {
            message: format!("{MAX_CODES} codes were sent for this registration already. Please call the hotline to register by phone."),
            retry_after_seconds: 86_400,
        });
    }
    if let Some(elapsed) = seconds_since_last.filter(|s| *s < RESEND_INTERVAL_SECONDS as f64) {
        let wait = (RESEND_INTERVAL_SECONDS as f64 - elapsed).ceil() as u64;
        return Err(ApiError::TooManyRequests {
            message: format!(
                "A code was sent moments ago. Please wait {wait} seconds before asking for another."
            ),
            retry_after_seconds: wait,
        });
    }
    // Earlier codes die when a new one is sent, so only the newest SMS counts.
    sqlx::query(
        "UPDATE phone_verifications SET attempts_left = 0 WHERE registrant_id = $1 AND verified_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let phone = registration
        .phone
        .as_deref()
        .expect("live registrations have a phone");
    let phone = PhoneNumber::parse(phone, &state.settings.default_country_code)
        .map_err(|e| ApiError::Internal(format!("stored phone number does not parse: {e}")))?;
    let issued = issue_code(&mut tx, &state, id, &phone, language(&registration)).await?;
    tx.commit().await?;
    Ok(HttpResponse::Accepted().json(json!({
        "registration_id": id,
        "verification": { "channel": "sms", "expires_at": issued.expires_at, "attempts_left": crate::registrations::VERIFICATION_ATTEMPTS },
    })))
}

/// Queues the booking code to the registrant by SMS and, if they gave one, by email; the
/// registrant is the messages' subject, so each registration gets its code exactly once.
pub async fn send_booking_code(
    tx: &mut sqlx::PgConnection,
    state: &AppState,
    registrant: Uuid,
    code: &BookingCode,
    (phone, email): (&str, Option<&str>),
    language: Language,
) -> Result<(), ApiError> {
    let notification = Notification::BookingCode {
        booking_code: code.to_string(),
        status_url: format!("{}/me", state.settings.public_url.trim_end_matches('/')),
    };
    crate::bookings::send(tx, registrant, (phone, email), language, notification).await
}
