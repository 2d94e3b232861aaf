//! The transactional outbox. A state change and the message announcing it are written in one
//! Postgres transaction, so "state changed" and "message will be sent" can never disagree; the
//! notifier's relay publishes the rows to RabbitMQ afterwards.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use drawbridge_domain::{Label, Language};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::copy::{self, CopyRows};

use crate::statements;

statements! {
    ENQUEUE =
        "INSERT INTO outbox (id, kind, subject_id, channel, recipient, recipient_of, language, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }
}

/// Where and when: everything a person needs to turn up, carried in the message itself so the
/// notifier never reads registrant data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appointment {
    pub centre_name: String,
    pub centre_address: String,
    /// In every language, so each message names it in its reader's.
    #[serde(deserialize_with = "label_or_text")]
    pub vaccine_name: Label,
    pub first_at: DateTime<Utc>,
    /// `None` for one-dose vaccines.
    pub second_at: Option<DateTime<Utc>>,
    /// The centre's time zone, in which times are shown.
    pub timezone: String,
}

/// A label, or the one text of a message queued before names carried languages.
fn label_or_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Label, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Named {
        Each(Label),
        One(String),
    }
    Ok(match Named::deserialize(deserializer)? {
        Named::Each(label) => label,
        Named::One(text) => Label::same(&text),
    })
}

/// What a person is told. Each variant is one message kind with one template per language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    /// The 6-digit code that proves a registrant holds the phone.
    VerificationCode { code: String, valid_minutes: u32 },
    /// The booking code: the registrant's only credential.
    BookingCode {
        booking_code: String,
        status_url: String,
    },
    /// A drawn slot pair, to accept before `expires_at`.
    Offer {
        appointment: Appointment,
        expires_at: DateTime<Utc>,
        accept_url: String,
    },
    /// A reminder that an offer is about to lapse.
    OfferExpiring {
        appointment: Appointment,
        expires_at: DateTime<Utc>,
        accept_url: String,
    },
    /// Both appointments are booked; `qr_token` is the signed check-in code, and `pass_url` the
    /// page that shows it, for those who get no email.
    Confirmation {
        booking_reference: String,
        appointment: Appointment,
        qr_token: String,
        pass_url: String,
    },
    /// The centre withdrew the capacity; the person is back in the pool, ahead of others.
    CancelledByCentre {
        appointment: Appointment,
        reason: String,
    },
    /// The person (or an agent for them) cancelled their booking; the pair goes to someone else.
    BookingCancelled { appointment: Appointment },
    /// Someone registered a person this phone already holds a verified registration for:
    /// nothing new was made and no code is sent, so the answer to the registration cannot tell
    /// a stranger whether the number is registered; the phone's owner learns it here.
    AlreadyRegistered {
        birth_year: i32,
        initials: String,
        registered_at: DateTime<Utc>,
        timezone: String,
        status_url: String,
    },
    /// Someone registered another person on a phone that holds as many people's registrations
    /// as one phone may.
    PhoneFull { registrations: u32 },
}

impl Notification {
    /// Every kind, for topology and tests.
    pub const KINDS: [&'static str; 9] = [
        "verification_code",
        "booking_code",
        "offer",
        "offer_expiring",
        "confirmation",
        "cancelled_by_centre",
        "booking_cancelled",
        "already_registered",
        "phone_full",
    ];

    /// The fields that are credentials (SMS and booking codes, offer link and pass tokens): an
    /// outbox row keeps them only until its message is sent or given up.
    pub const SECRET_FIELDS: [&'static str; 5] =
        ["code", "booking_code", "accept_url", "qr_token", "pass_url"];

    pub fn kind(&self) -> &'static str {
        match self {
            Notification::VerificationCode { .. } => "verification_code",
            Notification::BookingCode { .. } => "booking_code",
            Notification::Offer { .. } => "offer",
            Notification::OfferExpiring { .. } => "offer_expiring",
            Notification::Confirmation { .. } => "confirmation",
            Notification::CancelledByCentre { .. } => "cancelled_by_centre",
            Notification::BookingCancelled { .. } => "booking_cancelled",
            Notification::AlreadyRegistered { .. } => "already_registered",
            Notification::PhoneFull { .. } => "phone_full",
        }
    }
}

/// One outbox row as the notifier sends it. `id` is the idempotency key: the notifier records
/// one delivery per id, and does not send a sent id again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub subject_id: Uuid,
    pub channel: Channel,
    pub recipient: String,
    pub language: Language,
    pub notification: Notification,
}

impl Message {
    /// What RabbitMQ carries for this message.
    pub fn reference(&self) -> Reference {
        Reference {
            id: self.id,
            channel: self.channel,
            kind: self.notification.kind().to_owned(),
        }
    }
}

/// What travels through RabbitMQ for an outbox row: its id and what it is, never its recipient
/// or its words, so no queue (the delay and dead-letter queues included) holds a code, a link
/// token or an address. The notifier reads the row when it sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub id: Uuid,
    pub channel: Channel,
    pub kind: String,
}

impl Reference {
    /// `<channel>.<kind>`: lets queues subscribe by channel or by kind.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.channel.as_str(), self.kind)
    }
}

/// Where a message goes: a registration's phone number or email address as the registration
/// stores it, sealed for that registration (`of`); the relay opens it when it hands the message on.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub sealed: &'a [u8],
    pub of: Uuid,
}

/// A message to add to the outbox; see [`copy_many`].
pub struct Outgoing<'a> {
    pub subject_id: Uuid,
    pub channel: Channel,
    pub recipient: Recipient<'a>,
    pub language: Language,
    pub notification: Notification,
}

/// Adds a whole draw's messages with COPY inside the caller's transaction: for batches of many
/// thousands, where binding arrays of JSON costs more than the insert itself. Returns the new rows' ids,
/// in order.
pub async fn copy_many(
    connection: &mut PgConnection,
    messages: &[Outgoing<'_>],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = messages.iter().map(|_| Uuid::new_v4()).collect();
    let mut rows = CopyRows::start(
        connection,
        "COPY outbox (id, kind, subject_id, channel, recipient, recipient_of, language, payload) FROM STDIN",
    )
    .await?;
    let mut payload = Vec::new();
    for (id, message) in ids.iter().zip(messages) {
        payload.clear();
        serde_json::to_writer(&mut payload, &message.notification)
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let row = rows.row();
        let _ = write!(
            row,
            "{id}\t{kind}\t{subject}\t{channel}\t",
            kind = message.notification.kind(),
            subject = message.subject_id,
            channel = message.channel.as_str(),
        );
        copy::bytea(row, message.recipient.sealed);
        let _ = write!(row, "\t{}\t{}\t", message.recipient.of, message.language.as_str());
        copy::escape(
            row,
            std::str::from_utf8(&payload).expect("serde_json writes UTF-8"),
        );
        rows.end_row().await?;
    }
    rows.finish().await?;
    Ok(ids)
}

/// Adds a message to the outbox inside the caller's transaction. `subject_id` is the entity the
/// message is about (registration, offer, booking); (kind, subject, channel) is unique.
pub async fn enqueue(
    connection: &mut PgConnection,
    subject_id: Uuid,
    channel: Channel,
    recipient: Recipient<'_>,
    language: Language,
    notification: &Notification,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query(ENQUEUE)
        .bind(id)
        .bind(notification.kind())
        .bind(subject_id)
        .bind(channel.as_str())
        .bind(recipient.sealed)
        .bind(recipient.of)
        .bind(language.as_str())
        .bind(sqlx::types::Json(notification))
        .execute(connection)
        .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erasing_the_secret_fields_leaves_no_code_or_token() {
        let appointment = Appointment {
            centre_name: "Impfzentrum".into(),
            centre_address: "Straße 1".into(),
            vaccine_name: Label::same("Comirnaty"),
            first_at: Utc::now(),
            second_at: None,
            timezone: "Europe/Berlin".into(),
        };
        let secret = "SECRET-VALUE";
        let notifications = [
            Notification::VerificationCode {
                code: secret.into(),
                valid_minutes: 10,
            },
            Notification::BookingCode {
                booking_code: secret.into(),
                status_url: "https://example.test/me".into(),
            },
            Notification::Offer {
                appointment: appointment.clone(),
                expires_at: Utc::now(),
                accept_url: format!("https://example.test/offers/1?token={secret}"),
            },
            Notification::OfferExpiring {
                appointment: appointment.clone(),
                expires_at: Utc::now(),
                accept_url: format!("https://example.test/offers/1?token={secret}"),
            },
            Notification::Confirmation {
                booking_reference: "R".into(),
                appointment,
                qr_token: secret.into(),
                pass_url: format!("https://example.test/pass/1/{secret}"),
            },
        ];
        for notification in notifications {
            let mut payload = serde_json::to_value(&notification).unwrap();
            assert!(payload.to_string().contains(secret));
            for field in Notification::SECRET_FIELDS {
                payload.as_object_mut().unwrap().remove(field);
            }
            assert!(!payload.to_string().contains(secret), "{payload}");
        }
    }

    #[test]
    fn a_message_queued_with_one_vaccine_name_still_reads() {
        let appointment = |name: serde_json::Value| {
            serde_json::json!({
                "centre_name": "Impfzentrum", "centre_address": "Straße 1",
                "vaccine_name": name, "first_at": "2021-05-24T07:30:00Z",
                "second_at": null, "timezone": "Europe/Berlin"
            })
        };
        let older: Appointment = serde_json::from_value(appointment("Comirnaty".into())).unwrap();
        assert_eq!(older.vaccine_name, Label::same("Comirnaty"));
        let each = serde_json::json!({ "de": "Impfstoff", "en": "Vaccine" });
        let newer: Appointment = serde_json::from_value(appointment(each.clone())).unwrap();
        assert_eq!(newer.vaccine_name.get(Language::En), "Vaccine");
        assert_eq!(serde_json::to_value(&newer).unwrap()["vaccine_name"], each);
    }
}
