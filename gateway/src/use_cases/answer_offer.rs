//! Answering an offer: accept books both appointments at once, decline frees the pair for the
//! next draw. The same path serves citizens (booking code or offer link) and agents acting for
//! them.
//!
//! Acceptance, the busiest, is one statement shared by the acceptances waiting at that moment
//! (see `store::offers`): it books only while the offer is still pending, and falls back to the
//! locked path to explain a refusal. Declining locks the offer first, so concurrent answers to
//! the same offer queue up and the second sees the first's result. The schema's unique indexes
//! hold invariants 1 and 2 underneath, so even a wrong check here could not book a pair twice.
//! Every booking writes its confirmation to the outbox in the same statement (invariant 3).

use std::sync::Arc;

use chrono::Utc;
use drawbridge_domain::{pass_path, BookingReference, CheckinPass, Policy};
use drawbridge_platform::outbox::{Appointment, Notification};
use drawbridge_platform::policies::PublishedPolicy;
use drawbridge_platform::states::OfferState;
use serde::Serialize;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::register::base64_of;
use super::Acting;
use crate::error::{ApiError, ErrorCode};
use crate::store::offers::{self, Acceptance, Booking, Offer, Place};
use crate::store::registrants::Registrant;
use crate::AppState;

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
    /// The page that shows the pass.
    pub pass_url: String,
}

/// The short reference of a booking, as printed on confirmations.
pub fn reference(booking: Uuid) -> String {
    BookingReference::of(booking)
}

/// The appointment as messages describe it. The policy (for the vaccine's name) is read before
/// any transaction starts: a transaction waiting for a second pool connection while holding its
/// first could starve the pool under a burst of answers.
pub(super) fn appointment(place: &Place, policy: &Policy) -> Appointment {
    Appointment {
        centre_name: place.centre.clone(),
        centre_address: place.address.clone(),
        vaccine_name: policy.vaccine_name(&place.vaccine),
        first_at: place.first_at,
        second_at: place.second_at,
        timezone: place.timezone.clone(),
    }
}

/// The address of a booking's pass page.
pub fn pass_url(state: &AppState, booking: Uuid) -> String {
    state.public_link(&pass_path(&state.hash_key, booking))
}

pub(super) fn withdrawn() -> ApiError {
    ApiError::not_found("This registration was withdrawn.")
}

fn no_such_offer() -> ApiError {
    ApiError::not_found("There is no such offer or registration.")
}

/// The current policy of the region the offer was drawn in.
async fn policy_of_offer(state: &AppState, offer: Uuid) -> Result<Arc<PublishedPolicy>, ApiError> {
    let region = offers::offer_region(state.store.pool(), offer)
        .await?
        .ok_or_else(no_such_offer)?;
    state.policies.current(&region).await
}

/// Locks the offer and checks it may still be answered by `registrant` (any registrant when
/// `None`: the caller holds a signed link for this very offer). A lapsed offer is expired here
/// and its pair freed; the caller must commit before reporting the error.
async fn pending_offer(
    tx: &mut sqlx::PgConnection,
    offer: Uuid,
    registrant: Option<Uuid>,
) -> Result<Result<Offer, ApiError>, ApiError> {
    let row = offers::lock_offer(tx, offer).await?;
    let Some(row) = row.filter(|row| registrant.is_none_or(|r| r == row.registrant_id)) else {
        return Ok(Err(ApiError::not_found(
            "There is no such offer for you. Offers are shown under GET /v1/me.",
        )));
    };
    Ok(match row.state {
        OfferState::Pending if row.expires_at <= Utc::now() => {
            offers::end_offer(tx, &row, OfferState::Expired).await?;
            Err(ApiError::new(ErrorCode::OfferExpired))
        }
        OfferState::Pending => Ok(row),
        OfferState::Accepted => Err(ApiError::new(ErrorCode::OfferAlreadyAccepted)),
        OfferState::Declined => Err(ApiError::new(ErrorCode::OfferAlreadyDeclined)),
        OfferState::Expired => Err(ApiError::new(ErrorCode::OfferExpired)),
        OfferState::Withdrawn => Err(ApiError::new(ErrorCode::OfferWithdrawn)),
    })
}

/// Opens the answer's transaction with the offer locked and answerable by `acting`. A refusal
/// is reported after committing, so a lapsed offer found here stays expired.
async fn lock_answerable(
    state: &AppState,
    offer: Uuid,
    registrant: Option<Uuid>,
    acting: &Acting<'_>,
) -> Result<(Transaction<'static, Postgres>, Offer), ApiError> {
    let mut tx = state.store.begin().await?;
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
        None => policy_of_offer(state, offer).await?,
    };
    let row = offers::offer(state.store.pool(), offer).await?;
    let answerable = row.filter(|row| {
        row.state == OfferState::Pending && registrant.is_none_or(|r| r.id == row.registrant_id)
    });
    if let Some(row) = answerable {
        acting.check_region(&row.place.region_id)?;
        if let Some(booked) = book(state, row, &policy.policy, acting).await? {
            return Ok(booked);
        }
    }
    // Nothing booked: find out why under the offer's lock (expiring a lapsed offer on the way).
    let (_tx, row) = lock_answerable(state, offer, registrant.map(|r| r.id), acting).await?;
    Err(ApiError::internal(format!(
        "offer {} is pending but its pair {} is not held for it",
        row.id, row.place.slot_pair_id
    )))
}

/// Books an offer read a moment ago; `None` if it could no longer be booked.
async fn book(
    state: &AppState,
    row: Offer,
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
    .sign(&state.pass_keys, Utc::now());
    let notification = Notification::Confirmation {
        booking_reference: reference(booking),
        appointment: appointment(&row.place, policy),
        qr_token: pass.clone(),
        pass_url: pass_url(state, booking),
    };
    let staff = match acting {
        Acting::Staff(member) => Some(member),
        Acting::Registrant => None,
    };
    let booked = state
        .store
        .accept(Acceptance {
            booking,
            offer: row.id,
            slot_pair: row.place.slot_pair_id,
            registrant: row.registrant_id,
            phone: base64_of(phone),
            email: row.contact.email.as_deref().map(base64_of),
            language: row.contact.language.clone(),
            notification,
            staff: staff.map(|member| member.id),
            staff_region: staff.map(|member| member.region.clone()),
        })
        .await?;
    match booked {
        Booking::AlreadyBooked => Err(ApiError::new(ErrorCode::AlreadyBooked)),
        Booking::NotMade => Ok(None),
        Booking::Made => {
            tracing::info!(offer = %row.id, %booking, "offer accepted");
            Ok(Some(Booked {
                booking_id: booking,
                reference: reference(booking),
                place: row.place,
                checkin_pass: pass,
                pass_url: pass_url(state, booking),
            }))
        }
    }
}

/// Declines a pending offer; its pair goes to the next draw and the person stays in the pool.
pub async fn decline(
    state: &AppState,
    offer: Uuid,
    registrant: Option<Uuid>,
    acting: &Acting<'_>,
) -> Result<(), ApiError> {
    let (mut tx, row) = lock_answerable(state, offer, registrant, acting).await?;
    offers::end_offer(&mut tx, &row, OfferState::Declined).await?;
    acting
        .audit(
            &mut tx,
            "offer.decline",
            Some(row.registrant_id),
            serde_json::json!({ "offer": row.id }),
        )
        .await?;
    tx.commit().await?;
    tracing::info!(offer = %row.id, "offer declined");
    Ok(())
}

/// The registrant's pending offer: 409 if they are booked already, 404 if there is none.
pub fn current_offer(registrant: &Registrant) -> Result<Uuid, ApiError> {
    match (registrant.pending_offer, registrant.booked) {
        (Some(offer), _) => Ok(offer),
        (None, true) => Err(ApiError::new(ErrorCode::AlreadyBooked)),
        (None, false) => Err(ApiError::not_found(
            "There is no offer to answer right now. We text you as soon as a draw offers you an appointment.",
        )),
    }
}
