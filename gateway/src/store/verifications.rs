//! SMS codes: checking them (batched), and sending another one at a limited pace.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use drawbridge_platform::outbox::Notification;
use drawbridge_platform::states::RegistrantStatus;
use prometheus::Histogram;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::batch::Batcher;
use super::{statements, Store};

statements! {
    /// Checks codes of many registrations in one statement (batched).
    VERIFY_MANY = include_str!("sql/verify_many.sql");
    /// How many codes a registration was sent, and how long ago the last one.
    CODES_SENT =
        "SELECT count(*), EXTRACT(EPOCH FROM now() - max(created_at))::float8
         FROM phone_verifications WHERE registrant_id = $1";
    /// Codes and notices sent in the last `$2` hours to the phone of registration `$1`, for
    /// all the registrations on it.
    CODES_TO_PHONE =
        "SELECT count(*) FROM registrants r JOIN phone_verifications v ON v.registrant_id = r.id
         WHERE r.phone_index = (SELECT phone_index FROM registrants WHERE id = $1)
           AND v.created_at > now() - make_interval(hours => $2)";
    /// Earlier codes die when a new one is sent, so only the newest SMS counts.
    KILL_UNUSED_CODES =
        "UPDATE phone_verifications SET attempts_left = 0 WHERE registrant_id = $1 AND verified_at IS NULL";
    /// A further code for a registrant and its SMS (the code, or a notice sent instead), with
    /// the Idempotency-Key of the repeated registration that asked for it, if any. The code is
    /// stored only as a keyed hash; the verification row is the message's subject, so every
    /// code (first or resent) is one SMS, to the registrant's phone as stored (sealed).
    ANOTHER_CODE =
        "WITH code AS (
             INSERT INTO phone_verifications (id, registrant_id, code_hash, attempts_left, expires_at,
                                              idempotency_key, request_digest)
             VALUES ($2, $1, $3, $4, $5, $8, $9) RETURNING id
         )
         INSERT INTO outbox (id, kind, subject_id, channel, recipient, recipient_of, language, payload)
         SELECT gen_random_uuid(), $7::jsonb->>'kind', code.id, 'sms', r.phone, r.id, $6, $7
         FROM code, registrants r WHERE r.id = $1";
}

/// A code submitted for a registration: one row of `VERIFY_MANY`. Hashes in base64, as JSON
/// has no bytes.
#[derive(Clone, Serialize)]
pub struct Guess {
    pub id: Uuid,
    pub code_hash: String,
    /// The booking code the registrant gets if the code is right.
    pub booking_code_hash: String,
    pub notification: Notification,
}

/// What `VERIFY_MANY` found and did for one registration.
#[derive(sqlx::FromRow)]
pub struct Verification {
    id: Uuid,
    /// None: there is no such registration.
    pub status: Option<RegistrantStatus>,
    pub has_code: bool,
    pub live: bool,
    pub matches: bool,
    pub attempts_left: Option<i16>,
}

/// The batcher of verifications: each guess is answered with what was found and done. Guesses
/// for the same registration never share a batch.
pub(super) fn batcher(pool: PgPool, sizes: Histogram) -> Batcher<Guess, Verification> {
    Batcher::start(
        sizes,
        |guess: &Guess| guess.id,
        move |batch: Vec<Guess>| {
            let pool = pool.clone();
            async move {
                let mut found: HashMap<Uuid, Verification> = sqlx::query_as(VERIFY_MANY)
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

impl Store {
    /// Checks a code; a right one activates the registrant and queues their booking code.
    pub async fn verify(&self, guess: Guess) -> Result<Verification, sqlx::Error> {
        self.verifications.submit(guess).await
    }
}

/// Codes sent to a registration so far.
pub struct CodesSent {
    pub count: i64,
    pub seconds_since_last: Option<f64>,
}

pub async fn codes_sent(tx: &mut PgConnection, registrant: Uuid) -> Result<CodesSent, sqlx::Error> {
    let (count, seconds_since_last) = sqlx::query_as(CODES_SENT).bind(registrant).fetch_one(tx).await?;
    Ok(CodesSent {
        count,
        seconds_since_last,
    })
}

/// Codes and notices sent to the phone of registration `registrant` in the last `hours`.
pub async fn codes_to_phone(tx: &mut PgConnection, registrant: Uuid, hours: i32) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(CODES_TO_PHONE)
        .bind(registrant)
        .bind(hours)
        .fetch_one(tx)
        .await
}

/// A new code, not yet stored.
pub struct NewCode<'a> {
    pub id: Uuid,
    pub registrant: Uuid,
    pub hash: &'a [u8],
    pub attempts: i16,
    pub expires_at: DateTime<Utc>,
    pub language: &'a str,
    pub notification: &'a Notification,
    /// The Idempotency-Key and keyed digest of the request that asked for the code.
    pub request: Option<(&'a str, &'a [u8])>,
}

/// Whether `error` is a request's Idempotency-Key found taken by another request written at
/// the same moment.
pub(super) fn key_taken(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.constraint() == Some("phone_verifications_idempotency_key"))
}

/// Kills the registrant's unused codes and stores a new one with its SMS. `false`: the request's
/// Idempotency-Key was taken by another request meanwhile, and the transaction is spoilt.
pub async fn replace_code(tx: &mut PgConnection, code: &NewCode<'_>) -> Result<bool, sqlx::Error> {
    sqlx::query(KILL_UNUSED_CODES)
        .bind(code.registrant)
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(ANOTHER_CODE)
        .bind(code.registrant)
        .bind(code.id)
        .bind(code.hash)
        .bind(code.attempts)
        .bind(code.expires_at)
        .bind(code.language)
        .bind(sqlx::types::Json(code.notification))
        .bind(code.request.map(|(key, _)| key))
        .bind(code.request.map(|(_, digest)| digest))
        .execute(&mut *tx)
        .await;
    match inserted {
        Err(error) if key_taken(&error) => Ok(false),
        Err(error) => Err(error),
        Ok(_) => Ok(true),
    }
}
