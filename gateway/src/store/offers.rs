//! Offers: reading and locking them, ending them (declined, expired), and accepting them
//! (batched), and the place of a slot pair as people are told it.

use chrono::{DateTime, Utc};
use drawbridge_platform::outbox::Notification;
use drawbridge_platform::states::OfferState;
use prometheus::Histogram;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::batch::{self, Batcher};
use super::{statements, Store};

statements! {
    /// An offer with its place and the person's contact.
    OFFER =
        "SELECT o.id, o.registrant_id, o.state, o.expires_at,
                p.id AS slot_pair_id, c.id AS centre_id, c.name AS centre, c.address, c.region_id,
                g.timezone, p.vaccine, p.first_slot_at AS first_at, p.second_slot_at AS second_at,
                r.phone, r.email, r.language
         FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id
         JOIN centres c ON c.id = p.centre_id JOIN regions g ON g.id = c.region_id
         JOIN registrants r ON r.id = o.registrant_id
         WHERE o.id = $1";
    /// `OFFER`, locking the offer.
    LOCK_OFFER =
        "SELECT o.id, o.registrant_id, o.state, o.expires_at,
                p.id AS slot_pair_id, c.id AS centre_id, c.name AS centre, c.address, c.region_id,
                g.timezone, p.vaccine, p.first_slot_at AS first_at, p.second_slot_at AS second_at,
                r.phone, r.email, r.language
         FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id
         JOIN centres c ON c.id = p.centre_id JOIN regions g ON g.id = c.region_id
         JOIN registrants r ON r.id = o.registrant_id
         WHERE o.id = $1 FOR UPDATE OF o";
    /// The region an offer was drawn in.
    OFFER_REGION =
        "SELECT c.region_id FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id
         JOIN centres c ON c.id = p.centre_id WHERE o.id = $1";
    END_OFFER = "UPDATE offers SET state = $2, answered_at = now() WHERE id = $1";
    REOPEN_OFFERED_PAIR =
        "UPDATE slot_pairs SET state = 'open', offer_id = NULL WHERE id = $1 AND offer_id = $2";
    /// Acceptances of many offers in one statement (batched).
    BOOK_MANY = include_str!("sql/book_many.sql");
}

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

/// How to reach the person, sealed as stored; no phone once they withdrew (their data is
/// erased).
#[derive(Debug, sqlx::FromRow)]
pub struct Contact {
    pub phone: Option<Vec<u8>>,
    pub email: Option<Vec<u8>>,
    pub language: String,
}

/// An offer with its place and the person's contact, read together so an answer needs no
/// further lookup.
#[derive(Debug, sqlx::FromRow)]
pub struct Offer {
    pub id: Uuid,
    pub registrant_id: Uuid,
    pub state: OfferState,
    pub expires_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub place: Place,
    #[sqlx(flatten)]
    pub contact: Contact,
}

pub async fn offer(pool: &PgPool, id: Uuid) -> Result<Option<Offer>, sqlx::Error> {
    sqlx::query_as(OFFER).bind(id).fetch_optional(pool).await
}

/// The offer, locked until the caller's transaction ends.
pub async fn lock_offer(tx: &mut PgConnection, id: Uuid) -> Result<Option<Offer>, sqlx::Error> {
    sqlx::query_as(LOCK_OFFER).bind(id).fetch_optional(tx).await
}

pub async fn offer_region(pool: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(OFFER_REGION)
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Ends a pending offer in `state` and reopens its pair for the next draw.
pub async fn end_offer(tx: &mut PgConnection, offer: &Offer, state: OfferState) -> Result<(), sqlx::Error> {
    sqlx::query(END_OFFER)
        .bind(offer.id)
        .bind(state)
        .execute(&mut *tx)
        .await?;
    sqlx::query(REOPEN_OFFERED_PAIR)
        .bind(offer.place.slot_pair_id)
        .bind(offer.id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One acceptance: a row of `BOOK_MANY`.
#[derive(Clone, Serialize)]
pub struct Acceptance {
    pub booking: Uuid,
    pub offer: Uuid,
    pub slot_pair: Uuid,
    pub registrant: Uuid,
    /// The registrant's phone and email as stored (sealed), in base64.
    pub phone: String,
    pub email: Option<String>,
    pub language: String,
    /// The confirmation, with the check-in pass.
    pub notification: Notification,
    /// The agent accepting for the registrant, recorded in the audit log.
    pub staff: Option<Uuid>,
    pub staff_region: Option<String>,
}

/// The batcher of acceptances: each answers whether its booking was made.
pub(super) fn batcher(pool: PgPool, sizes: Histogram) -> Batcher<Acceptance, bool> {
    batch::made(pool, sizes, |a: &Acceptance| a.offer, BOOK_MANY, |a| a.booking)
}

/// Whether an acceptance booked.
pub enum Booking {
    Made,
    /// The offer was no longer pending, unexpired and the registrant's.
    NotMade,
    /// The registrant holds a booking already (the schema's unique index).
    AlreadyBooked,
}

impl Store {
    /// Books both appointments of a pending offer with its confirmation, in a shared statement.
    pub async fn accept(&self, acceptance: Acceptance) -> Result<Booking, sqlx::Error> {
        match self.acceptances.submit(acceptance).await {
            Ok(true) => Ok(Booking::Made),
            Ok(false) => Ok(Booking::NotMade),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(Booking::AlreadyBooked),
            Err(error) => Err(error),
        }
    }
}
