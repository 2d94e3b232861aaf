//! Registrants: registering (web, batched; call centre, in the agent's transaction), reading
//! them by id or booking code, their choices, their part in recent draws, and withdrawal with
//! its erasure.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use drawbridge_platform::outbox::Notification;
use drawbridge_platform::states::{BookingState, RegistrantStatus};
use prometheus::Histogram;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::batch::Batcher;
use super::verifications::key_taken;
use super::{statements, Store};

/// The registrant's own columns, with their pending offer and whether they hold a booking, so
/// an answer needs no second lookup.
macro_rules! registrant_columns {
    () => {
        "SELECT id, region_id, status, language, email, birth_year, initials, priority_group, postcode,
                accepted_vaccines, max_distance_km, verified_at,
                (SELECT g.timezone FROM regions g WHERE g.id = registrants.region_id) AS timezone,
                (SELECT o.id FROM offers o WHERE o.registrant_id = registrants.id AND o.state = 'pending')
                    AS pending_offer,
                EXISTS (SELECT 1 FROM bookings b WHERE b.registrant_id = registrants.id
                        AND b.state <> 'cancelled') AS booked
         FROM registrants "
    };
}

statements! {
    /// A web registration with its first code and SMS (batched).
    REGISTER_MANY = include_str!("sql/register_many.sql");
    /// A registrant whose phone a call-centre agent attests: active at once, with its booking
    /// code.
    INSERT_ACTIVE =
        "INSERT INTO registrants (id, region_id, status, channel, phone, email, language, birth_year,
                                  initials, priority_group, postcode, accepted_vaccines,
                                  max_distance_km, booking_code_hash, verified_at, phone_index)
         VALUES ($1, $2, 'active', 'callcentre', $3, $4, $5, $6, $12, $7, $8, $9, $10, $11, now(), $13)";
    /// The people a phone (by its index) holds verified registrations for.
    PEOPLE_ON_PHONE = "SELECT count(*) FROM registrants WHERE phone_index = $1 AND status = 'active'";
    /// What a phone holds besides registration `$1` (waiting for its code): when the same
    /// person registered on it, and how many people it holds, with the region's time zone.
    PHONE_HOLDS =
        "SELECT r.birth_year, r.initials, g.timezone, a.verified_at AS registered_at,
                (SELECT count(*) FROM registrants x WHERE x.phone_index = r.phone_index AND x.status = 'active')
                    AS people
         FROM registrants r JOIN regions g ON g.id = r.region_id
              LEFT JOIN registrants a
                     ON (a.phone_index, a.birth_year, a.initials) = (r.phone_index, r.birth_year, r.initials)
                                     AND a.status = 'active'
         WHERE r.id = $1";
    /// A person's registration waiting for its code, on a phone (by its index), given up
    /// because an agent registers that person by phone.
    PENDING_OF_PERSON =
        "SELECT id FROM registrants
         WHERE (phone_index, birth_year, initials) = ($1, $2, $3) AND status = 'pending_verification'
         FOR UPDATE";
    /// Up to 500 registrations whose last code died `$1` hours ago or more, locked for expiry.
    UNVERIFIED_LONG_DEAD =
        "SELECT r.id FROM registrants r
         WHERE r.status = 'pending_verification' AND r.created_at < now() - make_interval(hours => $1)
           AND NOT EXISTS (SELECT 1 FROM phone_verifications v WHERE v.registrant_id = r.id
                           AND v.expires_at > now() - make_interval(hours => $1))
         ORDER BY r.created_at LIMIT 500 FOR UPDATE SKIP LOCKED";
    ACTIVE_BY_ID = concat!(registrant_columns!(), "WHERE id = $1 AND status = 'active'");
    ACTIVE_BY_BOOKING_CODE =
        concat!(registrant_columns!(), "WHERE booking_code_hash = $1 AND status = 'active'");
    REGION = "SELECT region_id FROM registrants WHERE id = $1";
    /// New details for a registration still waiting for its code, entered again: the person
    /// who proves the phone verifies what they entered last.
    UPDATE_UNVERIFIED =
        "UPDATE registrants SET region_id = $2, email = $3, language = $4,
                priority_group = $5, postcode = $6, accepted_vaccines = $7, max_distance_km = $8
         WHERE id = $1 AND status = 'pending_verification'";
    /// Locks a registration for a new SMS code.
    LOCK_FOR_CODE = "SELECT status, region_id, language FROM registrants WHERE id = $1 FOR UPDATE";
    CHANGE_CHOICES =
        "UPDATE registrants SET accepted_vaccines = coalesce($2, accepted_vaccines),
                max_distance_km = coalesce($3, max_distance_km),
                email = CASE WHEN $4 THEN $5 ELSE email END,
                language = coalesce($6, language)
         WHERE id = $1 AND status = 'active'";
    /// The pending offer as the person sees it.
    OFFER_SHOWN =
        "SELECT o.id, o.expires_at, p.vaccine, c.name AS centre, c.address, p.first_slot_at AS first_at,
                p.second_slot_at AS second_at
         FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id JOIN centres c ON c.id = p.centre_id
         WHERE o.registrant_id = $1 AND o.state = 'pending'";
    /// The live booking as the person sees it.
    BOOKING_SHOWN =
        "SELECT b.id, b.state, p.vaccine, c.id AS centre_id, c.name AS centre, c.address,
                p.first_slot_at AS first_at, p.second_slot_at AS second_at
         FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id JOIN centres c ON c.id = p.centre_id
         WHERE b.registrant_id = $1 AND b.state <> 'cancelled'";
    /// The registrant's part (by pseudonym) in the region's recent completed draws.
    DRAWS_TAKEN_PART_IN =
        "SELECT d.id, d.completed_at, (d.manifest->>'pool')::bigint AS pool, c.lottery_key,
                EXISTS (SELECT 1 FROM draw_matches m WHERE m.draw_id = d.id AND m.pseudonym = $2) AS offered
         FROM draws d LEFT JOIN draw_candidates c ON c.draw_id = d.id AND c.pseudonym = $2
         WHERE d.region_id = $1 AND d.state = 'completed'
         ORDER BY d.started_at DESC LIMIT $3";
    /// Puts a person whose appointment a centre withdrew ahead of others in the next draws.
    PUT_AHEAD =
        "UPDATE registrants SET ahead_since = coalesce(ahead_since, now()) WHERE id = $1 AND status = 'active'";
    LOCK_STATUS = "SELECT status FROM registrants WHERE id = $1 FOR UPDATE";
    HAS_DOSE_GIVEN =
        "SELECT EXISTS (SELECT 1 FROM bookings WHERE registrant_id = $1 AND state = 'first_dose_given')";
    /// Reopens the pair of the registrant's pending offer; first of the two steps that withdraw it.
    REOPEN_PENDING_OFFERS_PAIR =
        "UPDATE slot_pairs p SET state = 'open', offer_id = NULL FROM offers o
         WHERE o.registrant_id = $1 AND o.state = 'pending' AND p.offer_id = o.id";
    WITHDRAW_PENDING_OFFER =
        "UPDATE offers SET state = 'withdrawn', answered_at = now() WHERE registrant_id = $1 AND state = 'pending'";
    /// The notifier reads a message's row when it sends it: a message not yet sent is not sent
    /// once erased (it is given up as erased), and an unpublished one is never published.
    ERASE_MESSAGES =
        "UPDATE outbox SET recipient = '', payload = jsonb_build_object('kind', kind, 'erased', true),
                           published_at = coalesce(published_at, now())
         WHERE subject_id = ANY($1)
            OR subject_id IN (SELECT id FROM phone_verifications WHERE registrant_id = ANY($1))
            OR subject_id IN (SELECT id FROM offers WHERE registrant_id = ANY($1))
            OR subject_id IN (SELECT id FROM bookings WHERE registrant_id = ANY($1))";
    /// The keyed digests of the registration's requests go too, and with them their keys.
    FORGET_REQUESTS =
        "UPDATE phone_verifications SET idempotency_key = NULL, request_digest = NULL
         WHERE registrant_id = ANY($1) AND idempotency_key IS NOT NULL";
    /// Withdraws and erases every personal field; the row stays, pseudonymous, because
    /// published draws refer to it.
    ERASE =
        "UPDATE registrants SET status = 'withdrawn', withdrawn_at = now(), phone = NULL, phone_index = NULL,
                email = NULL,
                birth_year = NULL, initials = '', priority_group = NULL, postcode = NULL,
                accepted_vaccines = '{}', max_distance_km = NULL, booking_code_hash = NULL,
                ahead_since = NULL
         WHERE id = $1";
    /// Gives up registrations that were never verified, erasing every personal field.
    EXPIRE =
        "UPDATE registrants SET status = 'expired', phone = NULL, phone_index = NULL, email = NULL,
                birth_year = NULL,
                initials = '', priority_group = NULL, postcode = NULL, accepted_vaccines = '{}',
                max_distance_km = NULL
         WHERE id = ANY($1) AND status = 'pending_verification'";
}

/// An active registrant as the citizen and call-centre routes need them.
#[derive(Debug, sqlx::FromRow)]
pub struct Registrant {
    pub id: Uuid,
    pub region_id: String,
    pub status: RegistrantStatus,
    pub language: String,
    /// Sealed ([`drawbridge_domain::PersonalDataKeys`]).
    pub email: Option<Vec<u8>>,
    pub birth_year: i32,
    pub initials: String,
    pub priority_group: i16,
    pub postcode: String,
    pub accepted_vaccines: Vec<String>,
    pub max_distance_km: i32,
    pub verified_at: Option<DateTime<Utc>>,
    /// The region's time zone, for showing times.
    pub timezone: String,
    pub pending_offer: Option<Uuid>,
    pub booked: bool,
}

/// A web registration's details, checked: what the person entered. The phone number and email
/// address travel to the database sealed, in [`NewRegistration`], never as their text.
#[derive(Clone, Serialize)]
pub struct Details {
    pub region_id: String,
    #[serde(skip)]
    pub phone: String,
    #[serde(skip)]
    pub email: Option<String>,
    pub language: &'static str,
    pub birth_year: i32,
    pub initials: String,
    pub priority_group: i16,
    pub postcode: String,
    pub accepted_vaccines: Vec<String>,
    pub max_distance_km: i32,
}

/// A web registration with its first code: one row of `REGISTER_MANY`.
#[derive(Clone, Serialize)]
pub struct NewRegistration {
    pub id: Uuid,
    #[serde(flatten)]
    pub details: Details,
    /// The phone number sealed for this registration, its blind index and the email address
    /// sealed, each in base64, as JSON has no bytes.
    pub phone: String,
    pub phone_index: String,
    pub email: Option<String>,
    pub code_id: Uuid,
    /// Base64, as JSON has no bytes.
    pub code_hash: String,
    pub attempts_left: i16,
    pub expires_at: DateTime<Utc>,
    pub notification: Notification,
    pub idempotency_key: Option<String>,
    /// Base64 of the keyed digest of the request, with `idempotency_key`.
    pub request_digest: Option<String>,
}

/// Wrong SMS codes allowed before a code is dead.
pub const VERIFICATION_ATTEMPTS: i16 = 5;

/// What became of a web registration (see `sql/register_many.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Outcome {
    /// Registered, with its first code and SMS.
    Made,
    /// Its Idempotency-Key came with the same request before: that request's registration and
    /// code expiry.
    Replayed,
    /// Its Idempotency-Key came with another request before.
    KeyReused,
    /// The person's registration on this phone waits for its code.
    Unverified,
    /// The phone was sent as many codes as it may be in a day.
    Busy,
    /// The person is registered on this phone already: a registration without a code was made.
    Verified,
    /// The phone holds as many people as it may: a registration without a code was made.
    Full,
    /// Another request for the phone or key was written at the same moment: run it again.
    Raced,
}

/// A web registration's answer: one row of `REGISTER_MANY`.
#[derive(Debug, sqlx::FromRow)]
pub struct Registered {
    id: Uuid,
    pub outcome: Outcome,
    /// The registration made, replayed or found by phone.
    pub registrant_id: Option<Uuid>,
    /// The replayed request's code expiry.
    pub code_expires_at: Option<DateTime<Utc>>,
}

/// What one phone may hold and be sent.
#[derive(Debug, Clone, Copy)]
pub struct PhoneLimits {
    /// Verified registrations of different people.
    pub people: i32,
    /// Codes and notices sent in `window_hours`.
    pub codes: i32,
    pub window_hours: i32,
}

/// The batcher of web registrations: each is answered with what became of it. The batcher
/// never puts one phone twice in a batch.
pub(super) fn batcher(
    pool: PgPool,
    sizes: Histogram,
    limits: PhoneLimits,
) -> Batcher<NewRegistration, Registered> {
    Batcher::start(
        sizes,
        |r: &NewRegistration| r.details.phone.clone(),
        move |batch: Vec<NewRegistration>| {
            let pool = pool.clone();
            async move {
                let mut answers: HashMap<Uuid, Registered> = sqlx::query_as(REGISTER_MANY)
                    .bind(sqlx::types::Json(&batch))
                    .bind(limits.people)
                    .bind(limits.codes)
                    .bind(limits.window_hours)
                    .fetch_all(&pool)
                    .await?
                    .into_iter()
                    .map(|r: Registered| (r.id, r))
                    .collect();
                batch
                    .iter()
                    .map(|r| answers.remove(&r.id).ok_or(sqlx::Error::RowNotFound))
                    .collect()
            }
        },
    )
}

impl Store {
    /// Registers on the web, with the first code and its SMS, unless the request's key or the
    /// phone number was seen before (see [`Outcome`]).
    pub async fn register(&self, registration: NewRegistration) -> Result<Registered, sqlx::Error> {
        let id = registration.id;
        match self.registrations.submit(registration).await {
            Err(error) if key_taken(&error) => Ok(Registered {
                id,
                outcome: Outcome::Raced,
                registrant_id: None,
                code_expires_at: None,
            }),
            answer => answer,
        }
    }
}

/// A caller's registration as an agent enters it.
pub struct NewCaller<'a> {
    pub id: Uuid,
    pub region: &'a str,
    /// Sealed, with its blind index.
    pub phone: &'a [u8],
    pub phone_index: &'a [u8],
    /// Sealed.
    pub email: Option<&'a [u8]>,
    pub language: &'a str,
    pub birth_year: i32,
    pub initials: &'a str,
    pub priority_group: i16,
    pub postcode: &'a str,
    pub accepted_vaccines: &'a [String],
    pub max_distance_km: i32,
    pub booking_code_hash: &'a [u8],
}

/// Whether an insert found the person's place on the phone free.
pub enum Inserted {
    Yes,
    PersonTaken,
}

/// The verified registrations the phone with this blind index holds.
pub async fn people_on_phone(tx: &mut PgConnection, phone_index: &[u8]) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(PEOPLE_ON_PHONE)
        .bind(phone_index)
        .fetch_one(tx)
        .await
}

/// The person's registration on the phone with this blind index that waits for its code,
/// locked.
pub async fn pending_of_person(
    tx: &mut PgConnection,
    phone_index: &[u8],
    birth_year: i32,
    initials: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(PENDING_OF_PERSON)
        .bind(phone_index)
        .bind(birth_year)
        .bind(initials)
        .fetch_optional(tx)
        .await
}

/// Inserts an active registrant, in the caller's transaction.
pub async fn insert_active(tx: &mut PgConnection, caller: &NewCaller<'_>) -> Result<Inserted, sqlx::Error> {
    let result = sqlx::query(INSERT_ACTIVE)
        .bind(caller.id)
        .bind(caller.region)
        .bind(caller.phone)
        .bind(caller.email)
        .bind(caller.language)
        .bind(caller.birth_year)
        .bind(caller.priority_group)
        .bind(caller.postcode)
        .bind(caller.accepted_vaccines)
        .bind(caller.max_distance_km)
        .bind(caller.booking_code_hash)
        .bind(caller.initials)
        .bind(caller.phone_index)
        .execute(&mut *tx)
        .await;
    match result {
        Err(sqlx::Error::Database(error))
            if error.constraint() == Some("registrants_one_active_per_person") =>
        {
            Ok(Inserted::PersonTaken)
        }
        Err(error) => Err(error),
        Ok(_) => Ok(Inserted::Yes),
    }
}

pub async fn active_by_id(pool: &PgPool, id: Uuid) -> Result<Option<Registrant>, sqlx::Error> {
    sqlx::query_as(ACTIVE_BY_ID).bind(id).fetch_optional(pool).await
}

/// The active registrant whose booking code has this keyed hash.
pub async fn active_by_booking_code(pool: &PgPool, hash: &[u8]) -> Result<Option<Registrant>, sqlx::Error> {
    sqlx::query_as(ACTIVE_BY_BOOKING_CODE)
        .bind(hash)
        .fetch_optional(pool)
        .await
}

/// The region of any registrant, withdrawn ones too.
pub async fn region(pool: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(REGION).bind(id).fetch_optional(pool).await
}

/// A registration as far as a new SMS code is concerned.
#[derive(sqlx::FromRow)]
pub struct ForCode {
    pub status: RegistrantStatus,
    pub region_id: String,
    pub language: String,
}

/// Locks a registration for a new SMS code.
pub async fn lock_for_code(tx: &mut PgConnection, id: Uuid) -> Result<Option<ForCode>, sqlx::Error> {
    sqlx::query_as(LOCK_FOR_CODE).bind(id).fetch_optional(tx).await
}

/// Replaces the details of a registration that waits for its code (locked by the caller);
/// `email` is the address sealed for it.
pub async fn update_unverified(
    tx: &mut PgConnection,
    id: Uuid,
    details: &Details,
    email: Option<&[u8]>,
) -> Result<(), sqlx::Error> {
    sqlx::query(UPDATE_UNVERIFIED)
        .bind(id)
        .bind(&details.region_id)
        .bind(email)
        .bind(details.language)
        .bind(details.priority_group)
        .bind(&details.postcode)
        .bind(&details.accepted_vaccines)
        .bind(details.max_distance_km)
        .execute(tx)
        .await?;
    Ok(())
}

/// New choices; `None` keeps a choice, `email: Some(None)` removes the address (sealed).
pub struct Choices<'a> {
    pub accepted_vaccines: Option<&'a [String]>,
    pub max_distance_km: Option<i32>,
    pub email: Option<Option<&'a [u8]>>,
    pub language: Option<&'a str>,
}

pub async fn change_choices(pool: &PgPool, id: Uuid, choices: &Choices<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(CHANGE_CHOICES)
        .bind(id)
        .bind(choices.accepted_vaccines)
        .bind(choices.max_distance_km)
        .bind(choices.email.is_some())
        .bind(choices.email.flatten())
        .bind(choices.language)
        .execute(pool)
        .await?;
    Ok(())
}

/// The pending offer as its holder sees it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OfferShown {
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub vaccine: String,
    pub centre: String,
    pub address: String,
    pub first_at: DateTime<Utc>,
    pub second_at: Option<DateTime<Utc>>,
}

/// The live booking as its holder sees it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct BookingShown {
    pub id: Uuid,
    pub state: BookingState,
    pub vaccine: String,
    pub centre_id: String,
    pub centre: String,
    pub address: String,
    pub first_at: DateTime<Utc>,
    pub second_at: Option<DateTime<Utc>>,
}

pub async fn offer_shown(pool: &PgPool, registrant: Uuid) -> Result<Option<OfferShown>, sqlx::Error> {
    sqlx::query_as(OFFER_SHOWN)
        .bind(registrant)
        .fetch_optional(pool)
        .await
}

pub async fn booking_shown(pool: &PgPool, registrant: Uuid) -> Result<Option<BookingShown>, sqlx::Error> {
    sqlx::query_as(BOOKING_SHOWN)
        .bind(registrant)
        .fetch_optional(pool)
        .await
}

/// A registrant's part in one draw.
#[derive(sqlx::FromRow)]
pub struct DrawTakenPartIn {
    pub id: Uuid,
    pub completed_at: Option<DateTime<Utc>>,
    pub pool: Option<i64>,
    /// `None` when they were not in that draw's pool.
    pub lottery_key: Option<f64>,
    pub offered: bool,
}

/// The `limit` newest completed draws of `region`, with the part of the person whose
/// pseudonym is `pseudonym` in each.
pub async fn draws_taken_part_in(
    pool: &PgPool,
    region: &str,
    pseudonym: &[u8],
    limit: i64,
) -> Result<Vec<DrawTakenPartIn>, sqlx::Error> {
    sqlx::query_as(DRAWS_TAKEN_PART_IN)
        .bind(region)
        .bind(pseudonym)
        .bind(limit)
        .fetch_all(pool)
        .await
}

pub async fn put_ahead(tx: &mut PgConnection, registrant: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(PUT_AHEAD).bind(registrant).execute(tx).await?;
    Ok(())
}

/// Locks a registration to withdraw it; its status, if it exists.
pub async fn lock_status(tx: &mut PgConnection, id: Uuid) -> Result<Option<RegistrantStatus>, sqlx::Error> {
    sqlx::query_scalar(LOCK_STATUS).bind(id).fetch_optional(tx).await
}

/// Whether the registrant's first dose was given and the second is still to come.
pub async fn has_dose_given(tx: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(HAS_DOSE_GIVEN).bind(id).fetch_one(tx).await
}

/// Withdraws the registrant's pending offer, if any, and reopens its pair.
pub async fn withdraw_pending_offer(tx: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(REOPEN_PENDING_OFFERS_PAIR)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(WITHDRAW_PENDING_OFFER)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Erases every personal field of a registrant, of the messages about them and of their
/// requests, and marks them withdrawn.
pub async fn erase(tx: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    forget_messages_and_requests(tx, &[id]).await?;
    sqlx::query(ERASE).bind(id).execute(&mut *tx).await?;
    Ok(())
}

/// Gives up unverified registrations (locked by the caller), erasing what they held.
pub async fn expire(tx: &mut PgConnection, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    forget_messages_and_requests(tx, ids).await?;
    sqlx::query(EXPIRE).bind(ids).execute(&mut *tx).await?;
    Ok(())
}

async fn forget_messages_and_requests(tx: &mut PgConnection, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query(ERASE_MESSAGES).bind(ids).execute(&mut *tx).await?;
    sqlx::query(FORGET_REQUESTS).bind(ids).execute(&mut *tx).await?;
    Ok(())
}

/// Registrations whose last code died `hours` ago or more (up to 500), locked for expiry.
pub async fn unverified_long_dead(tx: &mut PgConnection, hours: i32) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(UNVERIFIED_LONG_DEAD)
        .bind(hours)
        .fetch_all(tx)
        .await
}

/// What a phone holds besides a registration waiting for its code.
#[derive(sqlx::FromRow)]
pub struct PhoneHolds {
    pub birth_year: i32,
    pub initials: String,
    pub timezone: String,
    /// When the same person's verified registration on this phone was made, if there is one.
    pub registered_at: Option<DateTime<Utc>>,
    /// The people with a verified registration on this phone.
    pub people: i64,
}

pub async fn phone_holds(tx: &mut PgConnection, id: Uuid) -> Result<Option<PhoneHolds>, sqlx::Error> {
    sqlx::query_as(PHONE_HOLDS).bind(id).fetch_optional(tx).await
}
