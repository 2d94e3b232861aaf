//! The outbox relay: publishes a reference to each outbox row (its id, channel and kind, not
//! its recipient or words) to RabbitMQ with publisher confirms, then marks the rows published.
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several relays share the work without
//! publishing a row twice at the same time. A crash between the broker's confirm and
//! the commit publishes the row again later: delivery is at least once, and the consumer's
//! delivery record keeps a second copy of a sent message from being sent again.
//!
//! A row's recipient is stored sealed (`drawbridge_domain::personal_data`); the relay opens it
//! only to check the row can be sent, and the consumer opens it when it sends, so neither the
//! database nor the broker holds it as text.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::ShortString;
use lapin::BasicProperties;
use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use drawbridge_domain::{Field, Language, PersonalDataKeys};
use drawbridge_platform::outbox::{Channel, Message, Notification, Reference};

use crate::topology::Topology;
use crate::{Metrics, NotifierError};

use drawbridge_platform::statements;

statements! {
    RELAY_SESSION =
        "SELECT set_config('enable_bitmapscan', 'off', true), set_config('synchronous_commit', 'off', true)";
    UNPUBLISHED =
        "SELECT id, subject_id, channel, recipient, recipient_of, language, payload FROM outbox
         WHERE published_at IS NULL AND last_error IS NULL ORDER BY created_at
         LIMIT $1 FOR UPDATE SKIP LOCKED";
    PUBLISH_FAILED =
        "UPDATE outbox SET publish_attempts = publish_attempts + 1, last_error = $2 WHERE id = $1";
    PUBLISHED =
        "UPDATE outbox SET published_at = now(), publish_attempts = publish_attempts + 1, last_error = NULL
         WHERE id = ANY($1)";
}

/// An outbox row as read for publishing or sending.
#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    pub(crate) id: Uuid,
    pub(crate) subject_id: Uuid,
    pub(crate) channel: String,
    /// Sealed for the registration `recipient_of`.
    pub(crate) recipient: Vec<u8>,
    pub(crate) recipient_of: Uuid,
    pub(crate) language: String,
    pub(crate) payload: Json<serde_json::Value>,
}

impl OutboxRow {
    fn channel(&self) -> Result<Channel, String> {
        match self.channel.as_str() {
            "sms" => Ok(Channel::Sms),
            "email" => Ok(Channel::Email),
            other => Err(format!("unknown channel {other:?}")),
        }
    }

    /// Its words were erased: its message was sent or given up, or its person withdrew.
    fn erased(&self) -> bool {
        self.payload.0.get("erased") == Some(&serde_json::Value::Bool(true))
    }

    /// What RabbitMQ carries for the row. An erased row (published again by a sweeper that met
    /// its settlement) has one too: the consumer's delivery record decides what becomes of it.
    fn reference(self, keys: &PersonalDataKeys) -> Result<Reference, String> {
        if !self.erased() {
            return self.into_message(keys).map(|message| message.reference());
        }
        let kind = self.payload.0.get("kind").and_then(|kind| kind.as_str());
        Ok(Reference {
            id: self.id,
            channel: self.channel()?,
            kind: kind.ok_or("an erased payload without its kind")?.to_owned(),
        })
    }

    /// The message to send, its recipient opened with `keys`.
    pub(crate) fn into_message(self, keys: &PersonalDataKeys) -> Result<Message, String> {
        let channel = self.channel()?;
        let field = match channel {
            Channel::Sms => Field::Phone,
            Channel::Email => Field::Email,
        };
        let recipient = keys
            .open(field, self.recipient_of, &self.recipient)
            .map_err(|e| format!("recipient: {e}"))?;
        let language =
            Language::parse(&self.language).ok_or_else(|| format!("unknown language {:?}", self.language))?;
        if self.erased() {
            return Err("its words were erased before it was sent (the person withdrew)".into());
        }
        Ok(Message {
            id: self.id,
            subject_id: self.subject_id,
            channel,
            recipient,
            language,
            notification: serde_json::from_value::<Notification>(self.payload.0)
                .map_err(|e| format!("unreadable payload: {e}"))?,
        })
    }
}

pub struct Relay<'a> {
    pub pool: &'a PgPool,
    pub keys: &'a PersonalDataKeys,
    pub amqp: &'a lapin::Channel,
    pub topology: &'a Topology,
    pub metrics: &'a Metrics,
    pub batch: u32,
}

impl Relay<'_> {
    pub async fn enable_confirms(amqp: &lapin::Channel) -> Result<(), lapin::Error> {
        amqp.confirm_select(ConfirmSelectOptions::default()).await
    }

    /// Publishes one batch; returns how many rows were published (0: the outbox is empty).
    #[tracing::instrument(skip_all, name = "relay_batch")]
    pub async fn publish_batch(&self) -> Result<usize, NotifierError> {
        let mut tx = self.pool.begin().await?;
        // After a burst (a draw's offers) the planner's statistics still describe a near-empty
        // outbox, and its bitmap plan then reads and sorts every unpublished row for each batch
        // (18 ms at 30,000 rows, spilling to disk); walking the partial index in order reads
        // only the batch. Marking rows published need not wait for the disk: if Postgres loses
        // its last moments of commits in a crash, those rows are published again, and the
        // consumer's delivery records keep the second copies from reaching anyone.
        sqlx::query(RELAY_SESSION).execute(&mut *tx).await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(UNPUBLISHED)
            .bind(self.batch as i64)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut confirms = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id;
            let reference = match row.reference(self.keys) {
                Ok(reference) => reference,
                // A row this version cannot read is parked with its error for an operator,
                // so it does not stop everything behind it.
                Err(problem) => {
                    tracing::error!(%id, %problem, "outbox row cannot be published");
                    sqlx::query(PUBLISH_FAILED)
                        .bind(id)
                        .bind(&problem)
                        .execute(&mut *tx)
                        .await?;
                    continue;
                }
            };
            let body = serde_json::to_vec(&reference).expect("references serialise");
            let properties = BasicProperties::default()
                .with_delivery_mode(2) // persistent
                .with_content_type(ShortString::from("application/json"))
                .with_message_id(ShortString::from(id.to_string()));
            let options = BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            };
            let confirm = self
                .amqp
                .basic_publish(
                    &self.topology.exchange(),
                    &reference.routing_key(),
                    options,
                    &body,
                    properties,
                )
                .await?;
            confirms.push((id, confirm));
            ids.push(id);
        }
        for (id, confirm) in confirms {
            match confirm.await? {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(_returned)) => {
                    return Err(NotifierError::Unroutable(format!(
                        "no queue is bound for outbox row {id}"
                    )))
                }
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    return Err(NotifierError::Broker(format!(
                        "the broker did not confirm outbox row {id}"
                    )))
                }
            }
        }
        sqlx::query(PUBLISHED).bind(&ids).execute(&mut *tx).await?;
        tx.commit().await?;
        self.metrics.published.inc_by(ids.len() as u64);
        Ok(ids.len())
    }
}
