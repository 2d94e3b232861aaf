//! Everything stored about one registrant, for their copy of it (GDPR Art. 15): their
//! registration, every offer and booking, every message queued for them and every staff action
//! that concerned them.

use chrono::{DateTime, Utc};
use drawbridge_platform::states::{BookingState, OfferState, RegistrationChannel};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::statements;

statements! {
    /// The registration's own columns beyond what the status shows.
    REGISTRATION =
        "SELECT channel, phone, email, language, created_at, verified_at
         FROM registrants WHERE id = $1";
    /// Every offer made to `$1`, oldest first, with the appointments it offered.
    OFFERS =
        "SELECT o.id, o.state, o.offered_at, o.expires_at, o.answered_at, o.draw_id,
                p.centre_id, p.vaccine, p.first_slot_at, p.second_slot_at
         FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id
         WHERE o.registrant_id = $1 ORDER BY o.offered_at, o.id";
    /// Every booking of `$1`, oldest first.
    BOOKINGS =
        "SELECT b.id, b.state, b.booked_at, b.cancelled_at, b.cancel_reason,
                p.centre_id, p.vaccine, p.first_slot_at, p.second_slot_at
         FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id
         WHERE b.registrant_id = $1 ORDER BY b.booked_at, b.id";
    /// Every message queued about `$1`, their SMS codes, offers and bookings: to whom, when,
    /// whether handed on for sending; not its content, which may hold codes.
    MESSAGES =
        "SELECT m.kind, m.channel, m.recipient, m.recipient_of, m.language, m.created_at, m.published_at
         FROM outbox m
         WHERE m.subject_id = $1
            OR m.subject_id IN (SELECT id FROM phone_verifications WHERE registrant_id = $1)
            OR m.subject_id IN (SELECT id FROM offers WHERE registrant_id = $1)
            OR m.subject_id IN (SELECT id FROM bookings WHERE registrant_id = $1)
         ORDER BY m.created_at, m.kind, m.channel";
    /// What staff did concerning `$1` or their bookings: the action, where and when, not who.
    STAFF_ACTIONS =
        "SELECT a.action, a.region_id, a.centre_id, a.at
         FROM staff_actions a
         WHERE a.subject_id = $1
            OR a.subject_id IN (SELECT id FROM bookings WHERE registrant_id = $1)
         ORDER BY a.at, a.id";
}

/// The phone number and email address are read sealed; the use case opens them.
#[derive(Serialize, sqlx::FromRow)]
pub struct Registration {
    pub channel: RegistrationChannel,
    #[sqlx(rename = "phone")]
    #[serde(skip)]
    pub sealed_phone: Option<Vec<u8>>,
    #[sqlx(rename = "email")]
    #[serde(skip)]
    pub sealed_email: Option<Vec<u8>>,
    #[sqlx(skip)]
    pub phone: Option<String>,
    #[sqlx(skip)]
    pub email: Option<String>,
    pub language: String,
    pub created_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, sqlx::FromRow)]
pub struct OfferMade {
    pub id: Uuid,
    pub state: OfferState,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    /// The draw that made it; none for a call-centre rebooking.
    pub draw_id: Option<Uuid>,
    pub centre_id: String,
    pub vaccine: String,
    pub first_slot_at: DateTime<Utc>,
    pub second_slot_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, sqlx::FromRow)]
pub struct BookingMade {
    pub id: Uuid,
    pub state: BookingState,
    pub booked_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub centre_id: String,
    pub vaccine: String,
    pub first_slot_at: DateTime<Utc>,
    pub second_slot_at: Option<DateTime<Utc>>,
}

/// The recipient is read sealed (empty once erased), with the registration it is bound to; the
/// use case opens it.
#[derive(Serialize, sqlx::FromRow)]
pub struct MessageQueued {
    pub kind: String,
    pub channel: String,
    #[sqlx(rename = "recipient")]
    #[serde(skip)]
    pub sealed_recipient: Vec<u8>,
    #[serde(skip)]
    pub recipient_of: Uuid,
    #[sqlx(skip)]
    pub recipient: String,
    pub language: String,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, sqlx::FromRow)]
pub struct StaffAction {
    pub action: String,
    pub region_id: String,
    pub centre_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// Everything the tables hold about `registrant` beyond their status.
pub struct Held {
    pub registration: Registration,
    pub offers: Vec<OfferMade>,
    pub bookings: Vec<BookingMade>,
    pub messages: Vec<MessageQueued>,
    pub staff_actions: Vec<StaffAction>,
}

pub async fn held(pool: &PgPool, registrant: Uuid) -> Result<Option<Held>, sqlx::Error> {
    let Some(registration) = sqlx::query_as(REGISTRATION)
        .bind(registrant)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Held {
        registration,
        offers: sqlx::query_as(OFFERS).bind(registrant).fetch_all(pool).await?,
        bookings: sqlx::query_as(BOOKINGS).bind(registrant).fetch_all(pool).await?,
        messages: sqlx::query_as(MESSAGES).bind(registrant).fetch_all(pool).await?,
        staff_actions: sqlx::query_as(STAFF_ACTIONS)
            .bind(registrant)
            .fetch_all(pool)
            .await?,
    }))
}
