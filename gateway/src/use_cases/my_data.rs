//! A registrant's copy of everything held about them (GDPR Art. 15), opened with their booking
//! code: the status as `/v1/me` shows it, their contact and registration, every offer, booking
//! and message, and every staff action that concerned them. Message contents are left out:
//! they may hold codes, and the person received them.

use chrono::{DateTime, Utc};
use drawbridge_domain::Field;
use serde::Serialize;

use super::my_status::{self, MyStatus};
use super::open_field;
use crate::error::ApiError;
use crate::store::personal_data::{self, BookingMade, MessageQueued, OfferMade, Registration, StaffAction};
use crate::store::registrants::Registrant;
use crate::AppState;

#[derive(Serialize)]
pub struct MyData {
    pub exported_at: DateTime<Utc>,
    /// Who holds the data and why, in a sentence.
    pub controller: &'static str,
    pub registration: Registration,
    pub status: MyStatus,
    pub offers: Vec<OfferMade>,
    pub bookings: Vec<BookingMade>,
    pub messages: Vec<MessageQueued>,
    pub staff_actions: Vec<StaffAction>,
}

const CONTROLLER: &str = "Drawbridge holds these data of yours to offer you vaccination \
     appointments by its published rules. Withdrawing erases them, except the pseudonymous \
     entries of published draws, which keep the draws replayable.";

pub async fn export(state: &AppState, me: Registrant) -> Result<MyData, ApiError> {
    let mut held = personal_data::held(state.store.pool(), me.id)
        .await?
        .ok_or_else(|| ApiError::not_found("There is no registration to export."))?;
    let registration = &mut held.registration;
    for (sealed, field, open) in [
        (&registration.sealed_phone, Field::Phone, &mut registration.phone),
        (&registration.sealed_email, Field::Email, &mut registration.email),
    ] {
        *open = sealed
            .as_deref()
            .map(|sealed| open_field(state, field, me.id, sealed))
            .transpose()?;
    }
    for message in &mut held.messages {
        let field = if message.channel == "email" {
            Field::Email
        } else {
            Field::Phone
        };
        message.recipient = if message.sealed_recipient.is_empty() {
            "erased".to_owned()
        } else {
            open_field(state, field, message.recipient_of, &message.sealed_recipient)?
        };
    }
    let status = my_status::status(state, me).await?;
    Ok(MyData {
        exported_at: Utc::now(),
        controller: CONTROLLER,
        registration: held.registration,
        status,
        offers: held.offers,
        bookings: held.bookings,
        messages: held.messages,
        staff_actions: held.staff_actions,
    })
}
