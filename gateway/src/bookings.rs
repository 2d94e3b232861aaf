//! Answering offers, cancelling bookings and withdrawing: the database side shared by
//! citizens (booking code or offer link) and call-centre agents acting for them.
//!
//! Each operation is one transaction that first locks the row it changes (the offer, the
//! booking, the registrant), so concurrent answers to the same offer queue up and the second
//! sees the first's result. Acceptance, the busiest, is one statement instead, shared by the
//! acceptances waiting at that moment (see `batch`): it books only while the offer is still
//! pending, and falls back to the locked path to explain a refusal.
//! The schema's unique indexes hold invariants 1 and 2 underneath, so even a wrong check here
//! could not book a pair twice. Every booking and cancellation writes
//! its messages to the outbox in the same transaction (invariant 3).

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use std::sync::{Arc, LazyLock};

use drawbridge_domain::{CheckinPass, Policy};
use drawbridge_platform::outbox::{self, Appointment, Notification};
use drawbridge_platform::policies::PublishedPolicy;
use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::batch::{self, Batcher};
use crate::error::ApiError;
use crate::me::Registrant;
use crate::staff::{audit, Acting};
use crate::AppState;

/// A pair and where it is, as shown to the person and written into their messages.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Place {
    pub slot_pair_id: Uuid,
    pub centre_id: String,
    pub centre: String,
    pub address: String,
    pub region_id: String,
    pub timezone: String,
    pub vaccine: String,
    pub first_at: DateTime<Utc>,
    pub second_at: Option<DateTime<Utc>>,
}

pub(crate) const PLACE: &str =
    "p.id AS slot_pair_id, c.id AS centre_id, c.name AS centre, c.address, c.region_id,
                     g.timezone, p.vaccine, p.first_slot_at AS first_at, p.second_slot_at AS second_at";
pub(crate) const PLACE_JOINS: &str =
    "JOIN centres c ON c.id = p.centre_id JOIN regions g ON g.id = c.region_id";

impl Place {
    /// The appointment as messages describe it. The policy (for the vaccine's name) is read
    /// before the transaction starts: a transaction waiting for a second pool connection while
    /// holding its first could starve the pool under a burst of answers.
    pub(crate) fn appointment(&self, policy: &Policy) -> Appointment {
        Appointment {
            centre_name: self.centre.clone(),
            centre_address: self.address.clone(),
            vaccine_name: policy
                .vaccine(&self.vaccine)
                .map_or_else(|| self.vaccine.clone(), |v| v.name.clone()),
            first_at: self.first_at,
            second_at: self.second_at,
            timezone: self.timezone.clone(),
        }
    }
}

/// The current policy of the region `sql` (with `$1` = `id`) names; 404 if it names none.
async fn policy_of(state: &AppState, sql: &str, id: Uuid) -> Result<Arc<PublishedPolicy>, ApiError> {
    let region: Option<String> = sqlx::query_scalar(sql)
        .bind(id)
        .fetch_optional(&state.pool)
        .await?;
    match region {
        Some(region) => state.policies.current(&region).await,
        None => Err(ApiError::NotFound(
            "There is no such offer or registration.".into(),
        )),
    }
}

const OFFER_REGION: &str = "SELECT c.region_id FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id
                            JOIN centres c ON c.id = p.centre_id WHERE o.id = $1";

#[derive(sqlx::FromRow)]
struct OfferRow {
    id: Uuid,
    registrant_id: Uuid,
    state: String,
    expires_at: DateTime<Utc>,
    #[sqlx(flatten)]
    place: Place,
    /// Read with the offer, so the confirmation needs no further lookup.
    #[sqlx(flatten)]
    contact: Contact,
}

/// A booking just made.
#[derive(Debug, Serialize)]
pub struct Booked {
    pub booking_id: Uuid,
    /// Short reference people read out at the centre or on the phone.
    pub reference: String,
    #[serde(flatten)]
    pub place: Place,
    /// The check-in pass: the QR code's content.
    pub checkin_pass: String,
}

/// The short reference of a booking, as printed on confirmations.
pub fn reference(booking: Uuid) -> String {
    let hex = booking.simple().to_string().to_ascii_uppercase();
    format!("B-{}-{}", &hex[..4], &hex[4..8])
}

/// How to reach the person; no phone once they withdrew (their data is erased).
#[derive(sqlx::FromRow)]
struct Contact {
    phone: Option<String>,
    email: Option<String>,
    language: String,
}

fn withdrawn() -> ApiError {
    ApiError::NotFound("This registration was withdrawn.".into())
}

/// Queues a notification (`$3` kind, `$4` payload, `$2` subject) to the active registrant
/// `$1` by SMS and, if they gave one, by email, reading their contact in the same statement.
static TELL: LazyLock<String> = LazyLock::new(|| {
    outbox::enqueue_sql(
        "(SELECT $2::uuid AS subject, phone, email, language FROM registrants
          WHERE id = $1 AND status = 'active' AND phone IS NOT NULL)",
        "$3",
        "$4",
    )
});

/// Queues `notification` to the person by SMS and, if they gave one, by email.
pub(crate) async fn tell(
    tx: &mut PgConnection,
    registrant: Uuid,
    subject: Uuid,
    notification: Notification,
) -> Result<(), ApiError> {
    let queued = sqlx::query(&TELL)
        .bind(registrant)
        .bind(subject)
        .bind(notification.kind())
        .bind(sqlx::types::Json(&notification))
        .execute(&mut *tx)
        .await?;
    if queued.rows_affected() == 0 {
        return Err(withdrawn());
    }
    Ok(())
}

/// An offer (`$1`) with its place and the person's contact.
static OFFER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT o.id, o.registrant_id, o.state, o.expires_at, {PLACE}, r.phone, r.email, r.language
         FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id {PLACE_JOINS}
         JOIN registrants r ON r.id = o.registrant_id
         WHERE o.id = $1"
    )
});

/// Locks the offer and checks it may still be answered by `registrant` (any registrant when
/// `None`: the caller holds a signed link for this very offer). A lapsed offer is expired here
/// and its pair freed; the caller must commit before reporting the error.
async fn pending_offer(
    tx: &mut PgConnection,
    offer: Uuid,
    registrant: Option<Uuid>,
) -> Result<Result<OfferRow, ApiError>, ApiError> {
    let row: Option<OfferRow> = sqlx::query_as(&format!("{} FOR UPDATE OF o", *OFFER))
        .bind(offer)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row.filter(|row| registrant.is_none_or(|r| r == row.registrant_id)) else {
        return Ok(Err(ApiError::NotFound(
            "There is no such offer for you. Offers are shown under GET /v1/me.".into(),
        )));
    };
    match row.state.as_str() {
        "pending" if row.expires_at <= Utc::now() => {
            release(tx, &row, "expired").await?;
            Ok(Err(ApiError::Conflict {
                code: "offer_expired",
                message: "This offer has expired and its appointment went back to the draw. You stay in \
                          the pool: the next draw gives you a new chance."
                    .into(),
            }))
        }
        "pending" => Ok(Ok(row)),
        "accepted" => Ok(Err(ApiError::Conflict {
            code: "offer_already_accepted",
            message: "This offer was accepted already; your booking is shown under GET /v1/me.".into(),
        })),
        "declined" => Ok(Err(ApiError::Conflict {
            code: "offer_already_declined",
            message: "This offer was declined already and its appointment went to the next draw.".into(),
        })),
        "expired" => Ok(Err(ApiError::Conflict {
            code: "offer_expired",
            message: "This offer has expired. You stay in the pool: the next draw gives you a new chance."
                .into(),
        })),
        _ => Ok(Err(ApiError::Conflict {
            code: "offer_withdrawn",
            message: "This offer was withdrawn (the centre cancelled the appointment). You stay in the pool, ahead of others.".into(),
        })),
    }
}

/// Opens the answer's transaction with the offer locked and answerable by `acting`. A refusal
/// is reported after committing, so a lapsed offer found here stays expired.
async fn lock_offer(
    state: &AppState,
    offer: Uuid,
    registrant: Option<Uuid>,
    acting: &Acting<'_>,
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, OfferRow), ApiError> {
    let mut tx = state.pool.begin().await?;
    match pending_offer(&mut tx, offer, registrant).await? {
        Ok(row) => {
            acting.check_region(&row.place.region_id)?;
            Ok((tx, row))
        }
        Err(refusal) => {
            tx.commit().await?;
            Err(refusal)
        }
    }
}

/// Ends a pending offer in `state` and reopens its pair for the next draw.
async fn release(tx: &mut PgConnection, offer: &OfferRow, state: &str) -> Result<(), ApiError> {
    sqlx::query("UPDATE offers SET state = $2, answered_at = now() WHERE id = $1")
        .bind(offer.id)
        .bind(state)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE slot_pairs SET state = 'open', offer_id = NULL WHERE id = $1 AND offer_id = $2")
        .bind(offer.place.slot_pair_id)
        .bind(offer.id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One acceptance: a row of [`BOOK_MANY`].
#[derive(Clone, Serialize)]
pub struct Acceptance {
    booking: Uuid,
    offer: Uuid,
    slot_pair: Uuid,
    registrant: Uuid,
    phone: String,
    email: Option<String>,
    language: String,
    notification: Notification,
    /// The agent accepting for the registrant, recorded in the audit log.
    staff: Option<Uuid>,
    staff_region: Option<String>,
}

/// Bookings, offers, pairs, the confirmations' messages and (when staff act) the audit entries
/// of many acceptances in one statement (see `batch`), `$1` a JSON array of [`Acceptance`]s, no
/// two for the same offer. It takes an offer only while it is pending, unexpired and the
/// registrant's, locking it before its pair as every other writer does; a concurrent answer
/// waits for that lock and then finds the offer answered, so it books nothing. An offer taken
/// whose pair is not held for it leaves its booking without a pair, which the schema refuses:
/// the statement fails, changes nothing, and each acceptance runs again alone, so only that one
/// fails. Returns the bookings made.
static BOOK_MANY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH input AS (
             SELECT i.* FROM batch_rows($1) b, jsonb_to_record(b) AS i(
                 booking uuid, offer uuid, slot_pair uuid, registrant uuid, phone text,
                 email text, language text, notification jsonb, staff uuid, staff_region text)
         ), offer AS (
             UPDATE offers o SET state = 'accepted', answered_at = now()
             FROM input i
             WHERE o.id = i.offer AND o.registrant_id = i.registrant AND o.state = 'pending'
               AND o.expires_at > now()
             RETURNING o.id, i.booking, i.slot_pair
         ), pair AS (
             UPDATE slot_pairs p SET state = 'booked', offer_id = NULL, booking_id = o.booking
             FROM offer o
             WHERE p.id = o.slot_pair AND p.state = 'offered' AND p.offer_id = o.id
             RETURNING p.id, p.booking_id
         ), booking AS (
             INSERT INTO bookings (id, offer_id, slot_pair_id, registrant_id, state)
             SELECT o.booking, o.id, pair.id, i.registrant, 'booked'
             FROM offer o JOIN input i ON i.offer = o.id LEFT JOIN pair ON pair.booking_id = o.booking
             RETURNING id
         ), booked AS (
             SELECT i.* FROM booking JOIN input i ON i.booking = booking.id
         ), confirmation AS ({}),
         audited AS (
             INSERT INTO staff_actions (staff_id, action, region_id, subject_id, detail)
             SELECT staff, 'offer.accept', staff_region, registrant,
                    jsonb_build_object('offer', offer, 'booking', booking)
             FROM booked WHERE staff IS NOT NULL)
         SELECT id FROM booking",
        outbox::enqueue_sql(
            "(SELECT booking AS subject, phone, email, language, notification FROM booked)",
            "s.notification->>'kind'",
            "s.notification"
        )
    )
});

/// The batcher of acceptances: each answers whether its booking was made.
pub fn batcher(pool: sqlx::PgPool, sizes: prometheus::Histogram) -> Batcher<Acceptance, bool> {
    batch::made(pool, sizes, |a: &Acceptance| a.offer, &BOOK_MANY, |a| a.booking)
}

/// Books both appointments of the offered pair at once and queues the confirmation.
/// `registrant`: who answers (`None`: the holder of a signed link for this very offer).
pub async fn accept(
    state: &AppState,
    offer: Uuid,
    registrant: Option<&Registrant>,
    acting: &Acting<'_>,
) -> Result<Booked, ApiError> {
    // Offers are drawn within the registrant's region, so theirs names the policy.
    let policy = match registrant {
        Some(registrant) => state.policies.current(&registrant.region_id).await?,
        None => policy_of(state, OFFER_REGION, offer).await?,
    };
    let row: Option<OfferRow> = sqlx::query_as(&OFFER)
        .bind(offer)
        .fetch_optional(&state.pool)
        .await?;
    let answerable =
        row.filter(|row| row.state == "pending" && registrant.is_none_or(|r| r.id == row.registrant_id));
    if let Some(row) = answerable {
        acting.check_region(&row.place.region_id)?;
        if let Some(booked) = book(state, row, &policy.policy, acting).await? {
            return Ok(booked);
        }
    }
    // Nothing booked: find out why under the offer's lock (expiring a lapsed offer on the way).
    let (_tx, row) = lock_offer(state, offer, registrant.map(|r| r.id), acting).await?;
    Err(ApiError::Internal(format!(
        "offer {} is pending but its pair {} is not held for it",
        row.id, row.place.slot_pair_id
    )))
}

/// [`BOOK_MANY`] for an offer read a moment ago; `None` if it could no longer be booked.
async fn book(
    state: &AppState,
    row: OfferRow,
    policy: &Policy,
    acting: &Acting<'_>,
) -> Result<Option<Booked>, ApiError> {
    let phone = row.contact.phone.as_deref().ok_or_else(withdrawn)?;
    let booking = Uuid::new_v4();
    let pass = CheckinPass {
        booking,
        centre: row.place.centre_id.clone(),
        first_at: row.place.first_at,
        second_at: row.place.second_at,
    }
    .sign(&state.keyring, Utc::now());
    let notification = Notification::Confirmation {
        booking_reference: reference(booking),
        appointment: row.place.appointment(policy),
        qr_token: pass.clone(),
    };
    let staff = match acting {
        Acting::Staff(member) => Some(member),
        Acting::Registrant => None,
    };
    let booked = state
        .acceptances
        .submit(Acceptance {
            booking,
            offer: row.id,
            slot_pair: row.place.slot_pair_id,
            registrant: row.registrant_id,
            phone: phone.to_owned(),
            email: row.contact.email.clone(),
            language: row.contact.language.clone(),
            notification,
            staff: staff.map(|member| member.id),
            staff_region: staff.map(|member| member.region.clone()),
        })
        .await;
    if let Err(sqlx::Error::Database(error)) = &booked {
        if error.is_unique_violation() {
            return Err(ApiError::Conflict {
                code: "already_booked",
                message: "You already have a booking. Cancel it first if you want this offer instead.".into(),
            });
        }
    }
    if !booked? {
        return Ok(None);
    }
    tracing::info!(offer = %row.id, %booking, "offer accepted");
    Ok(Some(Booked {
        booking_id: booking,
        reference: reference(booking),
        place: row.place,
        checkin_pass: pass,
    }))
}

/// Declines a pending offer; its pair goes to the next draw and the person stays in the pool.
pub async fn decline(
    state: &AppState,
    offer: Uuid,
    registrant: Option<Uuid>,
    acting: &Acting<'_>,
) -> Result<(), ApiError> {
    let (mut tx, row) = lock_offer(state, offer, registrant, acting).await?;
    release(&mut tx, &row, "declined").await?;
    audit(
        &mut tx,
        acting,
        "offer.decline",
        Some(row.registrant_id),
        json!({ "offer": row.id }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(offer = %row.id, "offer declined");
    Ok(())
}

/// What a registrant asks for, themselves or through an agent.
#[derive(Debug, Clone, Copy)]
pub enum Request {
    Accept,
    Decline,
    Cancel,
    Withdraw,
}

/// Carries out `request` for `registrant` and answers it: the one path behind both the
/// booking-code routes and the call-centre routes.
pub async fn act(
    state: &AppState,
    registrant: &Registrant,
    acting: &Acting<'_>,
    request: Request,
) -> Result<HttpResponse, ApiError> {
    match request {
        Request::Accept => {
            let offer = current_offer(registrant)?;
            Ok(booked_response(
                accept(state, offer, Some(registrant), acting).await?,
            ))
        }
        Request::Decline => {
            let offer = current_offer(registrant)?;
            decline(state, offer, Some(registrant.id), acting).await?;
            Ok(declined_response(offer))
        }
        Request::Cancel => {
            let booking = cancel(state, registrant.id, acting).await?;
            Ok(HttpResponse::Ok().json(json!({
                "booking": booking,
                "state": "cancelled",
                "message": "Cancelled. The appointments go to someone else; you stay in the pool for later draws.",
            })))
        }
        Request::Withdraw => {
            withdraw(state, registrant.id, acting).await?;
            Ok(HttpResponse::Ok().json(json!({
                "registration_id": registrant.id,
                "status": "withdrawn",
                "message": "Your registration is withdrawn and your phone number, email, birth year and choices are erased. The booking code no longer works.",
            })))
        }
    }
}

pub fn booked_response(booked: Booked) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "booking": booked,
        "message": "Both appointments are booked. We sent the confirmation with your QR code; show it at the centre.",
    }))
}

pub fn declined_response(offer: Uuid) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "offer": offer,
        "state": "declined",
        "message": "Declined. You stay in the pool and take part in the next draws.",
    }))
}

/// The registrant's pending offer: 409 if they are booked already, 404 if there is none.
fn current_offer(registrant: &Registrant) -> Result<Uuid, ApiError> {
    let (offer, booked) = (registrant.pending_offer, registrant.booked);
    match (offer, booked) {
        (Some(offer), _) => Ok(offer),
        (None, true) => Err(ApiError::Conflict {
            code: "already_booked",
            message: "You have a booking already; it is shown under GET /v1/me.".into(),
        }),
        (None, false) => Err(ApiError::NotFound(
            "There is no offer to answer right now. We text you as soon as a draw offers you an appointment."
                .into(),
        )),
    }
}

#[derive(sqlx::FromRow)]
struct BookingRow {
    id: Uuid,
    state: String,
    #[sqlx(flatten)]
    place: Place,
}

/// Cancels the registrant's live booking: the pair is free for the next draw, the person
/// stays in the pool and is told by SMS (and email).
pub async fn cancel(state: &AppState, registrant: Uuid, acting: &Acting<'_>) -> Result<Uuid, ApiError> {
    let policy = policy_of(
        state,
        "SELECT region_id FROM registrants WHERE id = $1",
        registrant,
    )
    .await?;
    let mut tx = state.pool.begin().await?;
    let row: Option<BookingRow> = sqlx::query_as(&format!(
        "SELECT b.id, b.state, {PLACE}
         FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id {PLACE_JOINS}
         WHERE b.registrant_id = $1 AND b.state <> 'cancelled' FOR UPDATE OF b"
    ))
    .bind(registrant)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| ApiError::NotFound("There is no booking to cancel.".into()))?;
    acting.check_region(&row.place.region_id)?;
    if row.state != "booked" {
        return Err(ApiError::Conflict {
            code: "already_checked_in",
            message: "The first dose was given already, so the booking can no longer be cancelled here. \
                      Please talk to the centre about your second appointment."
                .into(),
        });
    }
    let reason = if acting.is_staff() {
        "cancelled by the call centre for the registrant"
    } else {
        "cancelled by the registrant"
    };
    cancel_booking(&mut tx, row.id, row.place.slot_pair_id, reason).await?;
    let notification = Notification::BookingCancelled {
        appointment: row.place.appointment(&policy.policy),
    };
    tell(&mut tx, registrant, row.id, notification).await?;
    audit(
        &mut tx,
        acting,
        "booking.cancel",
        Some(registrant),
        json!({ "booking": row.id }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(booking = %row.id, "booking cancelled");
    Ok(row.id)
}

/// Marks a booking cancelled and reopens its pair.
async fn cancel_booking(
    tx: &mut PgConnection,
    booking: Uuid,
    pair: Uuid,
    reason: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE bookings SET state = 'cancelled', cancelled_at = now(), cancel_reason = $2 WHERE id = $1",
    )
    .bind(booking)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE slot_pairs SET state = 'open', booking_id = NULL WHERE id = $1 AND booking_id = $2")
        .bind(pair)
        .bind(booking)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Withdraws a registration: a pending offer is withdrawn and a booking cancelled (their pairs
/// go to the next draw), and every personal field is erased, here and in the sent messages.
/// The row stays, pseudonymous, because published draws refer to it.
pub async fn withdraw(state: &AppState, registrant: Uuid, acting: &Acting<'_>) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM registrants WHERE id = $1 FOR UPDATE")
            .bind(registrant)
            .fetch_optional(&mut *tx)
            .await?;
    if status.as_deref().is_none_or(|s| s == "withdrawn") {
        return Err(ApiError::NotFound(
            "This registration was withdrawn already.".into(),
        ));
    }
    let given: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM bookings WHERE registrant_id = $1 AND state = 'first_dose_given')",
    )
    .bind(registrant)
    .fetch_one(&mut *tx)
    .await?;
    if given {
        return Err(ApiError::Conflict {
            code: "course_in_progress",
            message: "Your first dose was given and your second appointment is booked. Please settle the \
                      second appointment with the centre before withdrawing."
                .into(),
        });
    }
    sqlx::query(
        "UPDATE slot_pairs p SET state = 'open', offer_id = NULL FROM offers o
         WHERE o.registrant_id = $1 AND o.state = 'pending' AND p.offer_id = o.id",
    )
    .bind(registrant)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE offers SET state = 'withdrawn', answered_at = now() WHERE registrant_id = $1 AND state = 'pending'")
        .bind(registrant)
        .execute(&mut *tx)
        .await?;
    let booking: Option<(Uuid, Uuid)> =
        sqlx::query_as("SELECT id, slot_pair_id FROM bookings WHERE registrant_id = $1 AND state = 'booked'")
            .bind(registrant)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((booking, pair)) = booking {
        cancel_booking(&mut tx, booking, pair, "registration withdrawn").await?;
    }
    // Messages already handed to the notifier carry their own copy; the stored rows need not
    // keep the number or address any longer. Unsent ones are dropped with the registration.
    sqlx::query(
        "UPDATE outbox SET recipient = 'erased', payload = jsonb_build_object('kind', kind, 'erased', true),
                           published_at = coalesce(published_at, now())
         WHERE subject_id = $1
            OR subject_id IN (SELECT id FROM phone_verifications WHERE registrant_id = $1)
            OR subject_id IN (SELECT id FROM offers WHERE registrant_id = $1)
            OR subject_id IN (SELECT id FROM bookings WHERE registrant_id = $1)",
    )
    .bind(registrant)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE registrants SET status = 'withdrawn', withdrawn_at = now(), phone = NULL, email = NULL,
                birth_year = NULL, priority_group = NULL, postcode = NULL, accepted_vaccines = '{}',
                max_distance_km = NULL, booking_code_hash = NULL, ahead_since = NULL
         WHERE id = $1",
    )
    .bind(registrant)
    .execute(&mut *tx)
    .await?;
    audit(
        &mut tx,
        acting,
        "registration.withdraw",
        Some(registrant),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%registrant, "registration withdrawn and erased");
    Ok(())
}
