//! Registration, step two: the person proves the phone is theirs with the SMS code, and in
//! return gets their booking code, the only credential they will ever need. Codes die after
//! five wrong tries or when they expire; a new one can be requested, at a limited pace.

use chrono::{DateTime, Utc};
use drawbridge_domain::{BookingCode, Language, VerificationCode};
use drawbridge_platform::states::RegistrantStatus;
use sqlx::PgConnection;
use uuid::Uuid;

use drawbridge_platform::outbox::Notification;

use super::register::{base64_of, booking_code_message, spend_sms_budget, status_url, SmsCode};
use crate::error::{ApiError, ErrorCode};
use crate::store::registrants::{self, VERIFICATION_ATTEMPTS};
use crate::store::verifications::{self, Guess, NewCode};
use crate::AppState;

/// Seconds between two codes for the same registration.
const RESEND_INTERVAL_SECONDS: i64 = 60;
/// Codes one registration may receive in all, so a number cannot be used to spam someone.
const MAX_CODES: i64 = 5;

/// Refuses a registration (by its status, if it exists) that is gone or already verified.
fn still_pending(status: Option<RegistrantStatus>) -> Result<(), ApiError> {
    match status {
        None | Some(RegistrantStatus::Withdrawn | RegistrantStatus::Expired) => Err(ApiError::not_found(
            "There is no such registration. Please register again.",
        )),
        Some(RegistrantStatus::Active) => Err(ApiError::new(ErrorCode::AlreadyVerified)),
        Some(RegistrantStatus::PendingVerification) => Ok(()),
    }
}

/// Checks the SMS code of registration `id`; the right one activates it and answers the
/// booking code, which is also sent by SMS (and email).
pub async fn verify(state: &AppState, id: Uuid, code: &str) -> Result<BookingCode, ApiError> {
    let code = VerificationCode::parse(code).map_err(|e| ApiError::invalid("code", e.to_string()))?;
    let booking_code = BookingCode::generate(&mut rand::rngs::OsRng);
    let verification = state
        .store
        .verify(Guess {
            id,
            code_hash: base64_of(&code.keyed_hash(&state.hash_key, id.as_bytes())),
            booking_code_hash: base64_of(&booking_code.keyed_hash(&state.hash_key)),
            notification: booking_code_message(state, &booking_code),
        })
        .await?;
    still_pending(verification.status)?;
    if !verification.has_code {
        return Err(ApiError::new(ErrorCode::CodeNoLongerValid)
            .with_message("No code was sent yet; please request one."));
    }
    if !verification.live {
        return Err(ApiError::new(ErrorCode::CodeNoLongerValid));
    }
    if !verification.matches {
        let attempts_left = verification
            .attempts_left
            .ok_or_else(|| ApiError::internal("a wrong code used up no try"))?;
        return Err(ApiError::wrong_code(attempts_left));
    }
    tracing::info!(registration_id = %id, "phone verified; booking code issued");
    Ok(booking_code)
}

/// A code just sent.
pub struct CodeSent {
    pub expires_at: DateTime<Utc>,
    pub attempts_left: i16,
}

/// Sends registration `id` a new code (earlier ones die), within the pace and count limits.
pub async fn resend(state: &AppState, id: Uuid) -> Result<CodeSent, ApiError> {
    let mut tx = state.store.begin().await?;
    let registration = registrants::lock_for_code(&mut tx, id).await?;
    still_pending(registration.as_ref().map(|r| r.status))?;
    let registration = registration.ok_or_else(|| ApiError::internal("a pending registration vanished"))?;
    spend_sms_budget(state, &registration.region_id).await?;
    let language = Language::parse(&registration.language).unwrap_or_default();
    let sent = send_code(state, &mut tx, id, language.as_str(), None)
        .await?
        .ok_or_else(|| ApiError::internal("a resend without a key found its key taken"))?;
    tx.commit().await?;
    Ok(sent)
}

/// The answer when a phone was sent as many codes as it may be in the window.
pub(super) fn too_many_codes(state: &AppState) -> ApiError {
    ApiError::too_many(
        format!(
            "This phone number was sent {} codes and notices in the last {} hours, the most it may be. Please try again later or call the hotline to register by phone.",
            state.settings.codes_per_phone_per_day, state.settings.unverified_hours
        ),
        3_600,
    )
}

/// Sends pending registration `id`, locked by the caller's transaction, a new code (earlier
/// ones die), within the pace and count limits of the registration and of its phone. If the
/// same person is registered on the phone already, or the phone holds as many people as it
/// may, the phone gets a notice saying so instead, and the code stored is one nobody was sent,
/// so the registration cannot be verified yet answers like any other. `request` is the
/// Idempotency-Key and digest of a repeated registration; `None` if that key was taken by
/// another request meanwhile (the transaction is then spoilt).
pub(super) async fn send_code(
    state: &AppState,
    tx: &mut PgConnection,
    id: Uuid,
    language: &str,
    request: Option<(&str, &[u8])>,
) -> Result<Option<CodeSent>, ApiError> {
    let sent = verifications::codes_sent(tx, id).await?;
    if sent.count >= MAX_CODES {
        return Err(ApiError::too_many(
            format!("{MAX_CODES} codes were sent for this registration already. Please call the hotline to register by phone."),
            86_400,
        ));
    }
    if let Some(elapsed) = sent
        .seconds_since_last
        .filter(|s| *s < RESEND_INTERVAL_SECONDS as f64)
    {
        let wait = (RESEND_INTERVAL_SECONDS as f64 - elapsed).ceil() as u64;
        return Err(ApiError::too_many(
            format!("A code was sent moments ago. Please wait {wait} seconds before asking for another."),
            wait,
        ));
    }
    let window_hours = state.settings.unverified_hours as i32;
    if verifications::codes_to_phone(tx, id, window_hours).await?
        >= i64::from(state.settings.codes_per_phone_per_day)
    {
        return Err(too_many_codes(state));
    }
    let holds = registrants::phone_holds(tx, id)
        .await?
        .ok_or_else(|| ApiError::internal("a pending registration vanished"))?;
    let mut code = SmsCode::generate(state, id);
    if let Some(registered_at) = holds.registered_at {
        code.notification = Notification::AlreadyRegistered {
            birth_year: holds.birth_year,
            initials: holds.initials,
            registered_at,
            timezone: holds.timezone,
            status_url: status_url(state),
        };
    } else if holds.people >= i64::from(state.settings.registrations_per_phone) {
        code.notification = Notification::PhoneFull {
            registrations: u32::try_from(holds.people).unwrap_or(u32::MAX),
        };
    }
    let stored = verifications::replace_code(
        tx,
        &NewCode {
            id: code.id,
            registrant: id,
            hash: &code.hash,
            attempts: VERIFICATION_ATTEMPTS,
            expires_at: code.expires_at,
            language,
            notification: &code.notification,
            request,
        },
    )
    .await?;
    Ok(stored.then_some(CodeSent {
        expires_at: code.expires_at,
        attempts_left: VERIFICATION_ATTEMPTS,
    }))
}
