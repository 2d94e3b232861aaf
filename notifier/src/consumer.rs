//! The consumer: takes messages from a channel's queue, sends each through its transport and
//! acknowledges only once the outcome is recorded. A message whose id already has a delivery
//! record is acknowledged without sending, so a redelivery (after a crash, a lost ack, or a
//! relay publishing twice) never reaches the person twice.

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use rand::Rng;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use drawbridge_platform::outbox::Message;

use crate::render::Templates;
use crate::topology::{header_name, RetryStep, Topology, ATTEMPT_HEADER, REASON_HEADER};
use crate::{Metrics, NotifierError, SendError, Transports};

pub struct Consumer {
    pub pool: PgPool,
    pub topology: Topology,
    pub transports: Arc<Transports>,
    pub templates: Templates,
    pub metrics: Arc<Metrics>,
    pub concurrency: usize,
    pub prefetch: u16,
}

enum Outcome {
    Sent { provider_id: String },
    AlreadyDone,
    Retry { step: RetryStep, reason: String },
    Dead { reason: String },
}

impl Consumer {
    /// Consumes every kind's queue until `shutdown`, then lets the messages in flight finish.
    pub async fn run(
        self: Arc<Self>,
        amqp: lapin::Channel,
        shutdown: CancellationToken,
    ) -> Result<(), NotifierError> {
        amqp.basic_qos(self.prefetch, BasicQosOptions::default()).await?;
        let tag = Uuid::new_v4();
        let mut streams = Vec::new();
        for queue in self.topology.kind_queues() {
            let options = BasicConsumeOptions::default();
            let consumer = amqp
                .basic_consume(
                    &queue,
                    &format!("notifier-{tag}-{queue}"),
                    options,
                    FieldTable::default(),
                )
                .await?;
            streams.push(consumer);
        }
        let mut deliveries = futures_util::stream::select_all(streams);
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let failure = CancellationToken::new();
        loop {
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = failure.cancelled() => break,
                next = deliveries.next() => match next {
                    Some(delivery) => delivery?,
                    None => return Err(NotifierError::Broker("the consumer was cancelled by the broker".into())),
                },
            };
            let permit = slots.clone().acquire_owned().await.expect("never closed");
            let consumer = self.clone();
            let amqp = amqp.clone();
            let failure = failure.clone();
            tokio::spawn(async move {
                if let Err(error) = consumer.handle(&amqp, delivery).await {
                    // Unacknowledged messages return to the queue when the channel closes.
                    tracing::warn!(%error, "message not settled; reconnecting");
                    failure.cancel();
                }
                drop(permit);
            });
        }
        // Graceful: wait until every message in flight is settled.
        let _all = slots
            .acquire_many(self.concurrency as u32)
            .await
            .expect("never closed");
        if failure.is_cancelled() && !shutdown.is_cancelled() {
            return Err(NotifierError::Broker("a message could not be settled".into()));
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(message_id, kind))]
    async fn handle(&self, amqp: &lapin::Channel, delivery: Delivery) -> Result<(), NotifierError> {
        let attempt = attempt_of(&delivery);
        let parsed = serde_json::from_slice::<Message>(&delivery.data);
        let kind = parsed
            .as_ref()
            .map(|m| m.notification.kind())
            .unwrap_or("unreadable");
        let outcome = match &parsed {
            Err(error) => Outcome::Dead {
                reason: format!("unreadable message: {error}"),
            },
            Ok(message) => {
                tracing::Span::current().record("message_id", tracing::field::display(message.id));
                tracing::Span::current().record("kind", kind);
                self.deliver(message, attempt).await?
            }
        };
        let channel = parsed.as_ref().map(|m| m.channel.as_str()).unwrap_or("unknown");
        let labels = [channel, kind];
        match &outcome {
            Outcome::Sent { .. } => self.metrics.sent.with_label_values(&labels).inc(),
            Outcome::AlreadyDone => self.metrics.duplicates.with_label_values(&labels).inc(),
            Outcome::Retry { step, reason } => {
                tracing::warn!(%reason, attempt, "send failed; will retry");
                // Jitter (80-100 % of the delay) keeps a burst that failed together from
                // retrying together.
                let delay_ms = u64::from(step.delay_seconds) * rand::thread_rng().gen_range(800..=1000);
                let target = Target::Retry {
                    exchange: &step.exchange,
                    expiration_ms: delay_ms,
                };
                self.forward(amqp, target, &delivery, attempt + 1, reason).await?;
                self.metrics.retried.with_label_values(&labels).inc();
            }
            Outcome::Dead { reason } => {
                tracing::error!(%reason, attempt, "message dead-lettered");
                let queue = self.topology.dead_letter_queue();
                self.forward(amqp, Target::Dead { queue: &queue }, &delivery, attempt, reason)
                    .await?;
                self.metrics.dead.with_label_values(&labels).inc();
            }
        }
        delivery.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// Sends a message at most once, even across crashes. A session advisory lock on the message
    /// id keeps two copies (a relay that published twice) from being handled at once; if this
    /// process dies, its database session and the lock go with it and the unacknowledged copy
    /// is redelivered.
    async fn deliver(&self, message: &Message, attempt: u32) -> Result<Outcome, NotifierError> {
        let mut connection = self.pool.acquire().await?;
        let key = lock_key(message.id);
        // One round trip: the lock, and what an earlier attempt recorded.
        let (claimed, recorded): (bool, Option<String>) = sqlx::query_as(
            "SELECT pg_try_advisory_lock($1), (SELECT state FROM deliveries WHERE outbox_id = $2)",
        )
        .bind(key)
        .bind(message.id)
        .fetch_one(&mut *connection)
        .await?;
        // Not claimed: another consumer holds this very message and will settle it.
        if !claimed {
            return Ok(Outcome::AlreadyDone);
        }
        if let Some("sent" | "dead") = recorded.as_deref() {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .execute(&mut *connection)
                .await?;
            return Ok(Outcome::AlreadyDone);
        }
        let in_doubt = recorded.is_some();
        let result = self
            .deliver_locked(&mut connection, message, attempt, in_doubt)
            .await;
        if result.is_err() {
            // The session may still hold the lock: end it instead of returning it to the pool.
            let _ = connection.close().await;
        }
        result
    }

    /// Intent first, then the provider, then the outcome (which also releases the lock). An
    /// intent from an earlier attempt (`in_doubt`) means that attempt died mid-call: ask the
    /// provider whether the message went out before sending it again.
    async fn deliver_locked(
        &self,
        connection: &mut PgConnection,
        message: &Message,
        attempt: u32,
        in_doubt: bool,
    ) -> Result<Outcome, NotifierError> {
        let rendered = match self.templates.render(&message.notification, message.language) {
            Ok(rendered) => rendered,
            // A message we cannot word will not word itself on a retry.
            Err(error) => {
                return self
                    .settle(
                        connection,
                        message,
                        attempt,
                        Outcome::Dead {
                            reason: error.to_string(),
                        },
                    )
                    .await
            }
        };
        if in_doubt {
            match self
                .transports
                .find_sent(message.channel, &message.recipient, &rendered)
                .await
            {
                Ok(Some(provider_id)) => {
                    self.metrics
                        .reconciled
                        .with_label_values(&[message.channel.as_str(), message.notification.kind()])
                        .inc();
                    return self
                        .settle(connection, message, attempt, Outcome::Sent { provider_id })
                        .await;
                }
                Ok(None) => {}
                Err(error) => {
                    return self
                        .settle(connection, message, attempt, self.failed(attempt, error))
                        .await
                }
            }
        } else {
            sqlx::query("INSERT INTO deliveries (outbox_id, state, attempts) VALUES ($1, 'sending', $2)")
                .bind(message.id)
                .bind(attempt as i32)
                .execute(&mut *connection)
                .await?;
        }
        let started = std::time::Instant::now();
        let result = self
            .transports
            .send(message.channel, &message.recipient, &rendered)
            .await;
        self.metrics
            .send_seconds
            .with_label_values(&[message.channel.as_str()])
            .observe(started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(provider_id) => Outcome::Sent { provider_id },
            Err(error) => self.failed(attempt, error),
        };
        self.settle(connection, message, attempt, outcome).await
    }

    fn failed(&self, attempt: u32, error: SendError) -> Outcome {
        match error {
            SendError::Retryable(reason) => match self.topology.retry_after(attempt) {
                Some(step) => Outcome::Retry { step, reason },
                None => Outcome::Dead {
                    reason: format!("gave up after {attempt} attempts: {reason}"),
                },
            },
            SendError::Permanent(reason) => Outcome::Dead { reason },
        }
    }

    /// Records the outcome and releases the message's lock. A retry keeps the intent: a timeout may still have reached the
    /// provider, so the next attempt asks before sending.
    async fn settle(
        &self,
        connection: &mut PgConnection,
        message: &Message,
        attempt: u32,
        outcome: Outcome,
    ) -> Result<Outcome, NotifierError> {
        let (state, provider_id, detail) = match &outcome {
            Outcome::Sent { provider_id } => ("sent", Some(provider_id.as_str()), None),
            Outcome::Dead { reason } => ("dead", None, Some(reason.as_str())),
            Outcome::Retry { reason, .. } => ("sending", None, Some(reason.as_str())),
            Outcome::AlreadyDone => return Ok(outcome),
        };
        // Record and release the message's lock in one round trip.
        sqlx::query(
            "WITH settled AS (
                 INSERT INTO deliveries (outbox_id, state, attempts, provider_message_id, detail, finished_at)
                 VALUES ($1, $2, $3, $4, $5, CASE WHEN $2 = 'sending' THEN NULL ELSE now() END)
                 ON CONFLICT (outbox_id) DO UPDATE SET state = EXCLUDED.state, attempts = EXCLUDED.attempts,
                     provider_message_id = EXCLUDED.provider_message_id, detail = EXCLUDED.detail,
                     finished_at = EXCLUDED.finished_at
                 RETURNING 1)
             SELECT pg_advisory_unlock($6) FROM settled",
        )
        .bind(message.id)
        .bind(state)
        .bind(attempt as i32)
        .bind(provider_id)
        .bind(detail)
        .bind(lock_key(message.id))
        .execute(connection)
        .await?;
        Ok(outcome)
    }

    /// Re-publishes the message (to a retry queue or the dead-letter queue) and waits for the
    /// broker's confirm before the original is acknowledged.
    async fn forward(
        &self,
        amqp: &lapin::Channel,
        target: Target<'_>,
        delivery: &Delivery,
        attempt: u32,
        reason: &str,
    ) -> Result<(), NotifierError> {
        let mut headers = FieldTable::default();
        headers.insert(header_name(ATTEMPT_HEADER), AMQPValue::LongUInt(attempt));
        headers.insert(
            header_name(REASON_HEADER),
            AMQPValue::LongString(LongString::from(reason.as_bytes().to_vec())),
        );
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(headers)
            .with_content_type("application/json".into());
        if let Some(id) = delivery.properties.message_id() {
            properties = properties.with_message_id(id.clone());
        }
        // A retry keeps the routing key, which brings it back to its kind's queue after the delay.
        let (exchange, routing_key) = match target {
            Target::Retry {
                exchange,
                expiration_ms,
            } => {
                properties = properties.with_expiration(expiration_ms.to_string().into());
                (exchange, delivery.routing_key.as_str())
            }
            Target::Dead { queue } => ("", queue),
        };
        let confirm = amqp
            .basic_publish(
                exchange,
                routing_key,
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        if confirm.is_nack() {
            return Err(NotifierError::Broker(format!(
                "the broker refused the message for {exchange}{routing_key}"
            )));
        }
        Ok(())
    }
}

/// Where a settled-but-not-sent message goes next.
enum Target<'a> {
    Retry { exchange: &'a str, expiration_ms: u64 },
    Dead { queue: &'a str },
}

/// The advisory lock key of a message: its id's first 64 bits.
fn lock_key(id: Uuid) -> i64 {
    i64::from_be_bytes(id.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn attempt_of(delivery: &Delivery) -> u32 {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(ATTEMPT_HEADER))
        .and_then(|value| match value {
            AMQPValue::LongUInt(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(1)
}
