//! Answering an offer from the link in its message, without typing the booking code: the
//! link's signed token works for that one offer and only until it expires.

use chrono::{DateTime, Utc};
use drawbridge_domain::{Label, Language, OfferLink, TokenError};
use drawbridge_platform::states::OfferState;
use uuid::Uuid;

use super::answer_offer::{self, Booked};
use super::Acting;
use crate::error::{ApiError, ErrorCode};
use crate::store::offers::{self, Place};
use crate::AppState;

/// The offer a link token opens: it must be genuine, unexpired and for this offer.
fn check(state: &AppState, offer: Uuid, token: &str) -> Result<(), ApiError> {
    let link = OfferLink::verify(&state.keyring, token, Utc::now()).map_err(|error| match error {
        TokenError::Expired => ApiError::new(ErrorCode::OfferExpired),
        other => ApiError::new(ErrorCode::InvalidOfferLink).with_message(format!(
            "This link does not open an offer: {other}. Use the link from your SMS exactly, or your booking code."
        )),
    })?;
    if link.offer != offer {
        return Err(ApiError::new(ErrorCode::InvalidOfferLink)
            .with_message("This link belongs to another offer. Use the link from your SMS exactly."));
    }
    Ok(())
}

/// Accepts the offer the link is for.
pub async fn accept(state: &AppState, offer: Uuid, token: &str) -> Result<Booked, ApiError> {
    check(state, offer, token)?;
    answer_offer::accept(state, offer, None, &Acting::Registrant).await
}

/// Declines the offer the link is for.
pub async fn decline(state: &AppState, offer: Uuid, token: &str) -> Result<(), ApiError> {
    check(state, offer, token)?;
    answer_offer::decline(state, offer, None, &Acting::Registrant).await
}

/// What a link shows.
pub enum Opened {
    /// The link does not open this offer: forged, expired or another offer's.
    Refused(ApiError),
    Missing,
    /// Answered already, or lapsed.
    Ended(OfferState),
    Pending {
        place: Place,
        /// The vaccine's name in the region's policy.
        vaccine: Label,
        expires_at: DateTime<Utc>,
    },
}

/// An offer opened from its link, in the language of the person it was made to.
pub struct LinkedOffer {
    pub language: Option<Language>,
    pub opened: Opened,
}

/// The offer behind a link, for its page; opening it answers nothing, because mail scanners and
/// link previews open links too.
pub async fn open(state: &AppState, offer: Uuid, token: &str) -> Result<LinkedOffer, ApiError> {
    let shown = offers::offer(state.store.pool(), offer).await?;
    let language = shown.as_ref().and_then(|s| Language::parse(&s.contact.language));
    let opened = match (check(state, offer, token), shown) {
        (Err(error), _) => Opened::Refused(error),
        (Ok(()), None) => Opened::Missing,
        (Ok(()), Some(shown)) if shown.state != OfferState::Pending => Opened::Ended(shown.state),
        (Ok(()), Some(shown)) => {
            let policy = state.policies.current(&shown.place.region_id).await?;
            let vaccine = policy.policy.vaccine_name(&shown.place.vaccine);
            Opened::Pending {
                place: shown.place,
                vaccine,
                expires_at: shown.expires_at,
            }
        }
    };
    Ok(LinkedOffer { language, opened })
}
