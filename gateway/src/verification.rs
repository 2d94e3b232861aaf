//! Registration, step two: the person proves the phone is theirs with the SMS code, and in
//! return gets their booking code, the only credential they will ever need. Codes die after
//! five wrong tries or when they expire; a new one can be requested, at a limited pace.

use std::collections::HashMap;
use std::sync::LazyLock;

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use drawbridge_domain::{BookingCode, Language, PhoneNumber, VerificationCode};
use drawbridge_platform::outbox::{self, Notification};
use prometheus::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::batch::Batcher;
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

/// The registration as far as a new code is concerned.
#[derive(sqlx::FromRow)]
struct Pending {
    status: String,
    phone: Option<String>,
    language: String,
}

/// Locks the registration for a new code.
async fn pending(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Pending, ApiError> {
    let registration: Option<Pending> =
        sqlx::query_as("SELECT status, phone, language FROM registrants WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    still_pending(registration.as_ref().map(|r| r.status.as_str()))?;
    Ok(registration.expect("still pending"))
}

/// Refuses a registration (by its status, if it exists) that is gone or already verified.
fn still_pending(status: Option<&str>) -> Result<(), ApiError> {
    match status {
        None | Some("withdrawn") => Err(ApiError::NotFound(
            "There is no such registration. Please register again.".into(),
        )),
        Some("active") => Err(ApiError::Conflict {
            code: "already_verified",
            message: "This registration is already verified. Use your booking code to see its status.".into(),
        }),
        Some(_) => Ok(()),
    }
}

fn language(registration: &Pending) -> Language {
    Language::parse(&registration.language).unwrap_or_default()
}

fn booking_code_notification(state: &AppState, code: &BookingCode) -> Notification {
    Notification::BookingCode {
        booking_code: code.to_string(),
        status_url: format!("{}/me", state.settings.public_url.trim_end_matches('/')),
    }
}

/// A code submitted for a registration: one row of [`VERIFY_MANY`]. Hashes in base64, as JSON
/// has no bytes.
#[derive(Clone, Serialize)]
pub struct Guess {
    id: Uuid,
    code_hash: String,
    booking_code_hash: String,
    notification: Notification,
}

/// Verification of many registrations in one statement (see `batch`), `$1` a JSON array of
/// [`Guess`]es, no two for the same registration. It locks the registrations, then their newest
/// codes, each in id order so that concurrent batches cannot deadlock; guesses for the same
/// registration in different batches queue on those locks, and each sees the tries the ones
/// before it used up. A right code marks the code used, activates the registrant and queues the
/// booking code by SMS and (if given) email; a wrong one uses up a try. Both answers are one
/// UPDATE of the code: each data-modifying step costs its own executor set-up (the table and its
/// indexes), and two of them were a tenth of a verified registration.
///
/// The submitted code is compared as its keyed hash: equal hashes are equal codes, and how
/// long the comparison takes says nothing about a code without the key.
static VERIFY_MANY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
    WITH input AS (
        SELECT i.* FROM batch_rows($1) b, jsonb_to_record(b)
            AS i(id uuid, code_hash text, booking_code_hash text, notification jsonb)
    ), registration AS (
        SELECT id, status FROM registrants WHERE id IN (SELECT id FROM input) ORDER BY id FOR UPDATE
    ), code AS (
        SELECT id, registrant_id, code_hash, attempts_left, expires_at FROM phone_verifications
        WHERE id IN (SELECT (SELECT newest.id FROM phone_verifications newest
                             WHERE newest.registrant_id = r.id
                             ORDER BY newest.created_at DESC LIMIT 1)
                     FROM registration r)
        ORDER BY id FOR UPDATE
    ), checked AS MATERIALIZED (
        SELECT i.id, r.status, c.id AS code_id,
               c.id IS NOT NULL AND c.attempts_left > 0 AND c.expires_at > now() AS live,
               c.code_hash = decode(i.code_hash, 'base64') AS matches,
               i.booking_code_hash, i.notification
        FROM input i LEFT JOIN registration r ON r.id = i.id LEFT JOIN code c ON c.registrant_id = i.id
    ), answered AS (
        UPDATE phone_verifications p
        SET attempts_left = p.attempts_left - CASE WHEN c.matches THEN 0 ELSE 1 END,
            verified_at = CASE WHEN c.matches THEN now() ELSE p.verified_at END
        FROM checked c
        WHERE p.id = c.code_id AND c.status = 'pending_verification' AND c.live
        RETURNING p.registrant_id, c.matches, p.attempts_left
    ), activated AS (
        UPDATE registrants r
        SET status = 'active', verified_at = now(), booking_code_hash = decode(c.booking_code_hash, 'base64')
        FROM checked c
        WHERE r.id = c.id AND r.id IN (SELECT registrant_id FROM answered WHERE matches)
        RETURNING r.id AS subject, r.phone, r.email, r.language, c.notification
    ), sent AS ({})
    SELECT c.id, c.status, c.code_id IS NOT NULL AS has_code, c.live,
           coalesce(c.matches, false) AS matches, a.attempts_left
    FROM checked c LEFT JOIN answered a ON a.registrant_id = c.id AND NOT a.matches",
        outbox::enqueue_sql("activated", "s.notification->>'kind'", "s.notification")
    )
});

/// What [`VERIFY_MANY`] found and did for one registration.
#[derive(sqlx::FromRow)]
pub struct Verification {
    id: Uuid,
    /// None: there is no such registration.
    status: Option<String>,
    has_code: bool,
    live: bool,
    matches: bool,
    attempts_left: Option<i16>,
}

/// The batcher of verifications: each guess is answered with what was found and done.
pub fn batcher(pool: PgPool, sizes: Histogram) -> Batcher<Guess, Verification> {
    Batcher::start(
        sizes,
        |guess: &Guess| guess.id,
        move |batch: Vec<Guess>| {
            let pool = pool.clone();
            async move {
                let mut found: HashMap<Uuid, Verification> = sqlx::query_as(&VERIFY_MANY)
                    .bind(sqlx::types::Json(&batch))
                    .fetch_all(&pool)
                    .await?
                    .into_iter()
                    .map(|v: Verification| (v.id, v))
                    .collect();
                batch
                    .iter()
                    .map(|guess| found.remove(&guess.id).ok_or(sqlx::Error::RowNotFound))
                    .collect()
            }
        },
    )
}

pub async fn verify(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    request: web::Json<VerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let code =
        VerificationCode::parse(&request.code).map_err(|e| ApiError::invalid("code", e.to_string()))?;
    let id = id.into_inner();
    let booking_code = BookingCode::generate(&mut rand::rngs::OsRng);
    let notification = booking_code_notification(&state, &booking_code);
    let verification = state
        .verifications
        .submit(Guess {
            id,
            code_hash: BASE64.encode(code.keyed_hash(&state.hash_key, id.as_bytes())),
            booking_code_hash: BASE64.encode(booking_code.keyed_hash(&state.hash_key)),
            notification,
        })
        .await?;
    still_pending(verification.status.as_deref())?;
    if !verification.has_code {
        return Err(ApiError::DeadCode(
            "No code was sent yet; please request one.".into(),
        ));
    }
    if !verification.live {
        return Err(ApiError::DeadCode(
            "This code can no longer be used. Please request a new one (POST /v1/registrations/{id}/resend)."
                .into(),
        ));
    }
    if !verification.matches {
        let attempts_left = verification
            .attempts_left
            .ok_or_else(|| ApiError::Internal("a wrong code used up no try".into()))?;
        return Err(ApiError::WrongCode { attempts_left });
    }
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
) -> Result<(), ApiError> {
    let notification = booking_code_notification(state, code);
    crate::bookings::tell(tx, registrant, registrant, notification).await
}
