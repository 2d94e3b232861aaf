//! The consumer: takes messages from every kind's queue in batches, sends each through its
//! transport and acknowledges only once the outcome is recorded. A message whose id already has
//! a final delivery record is acknowledged without sending, so a redelivery (after a crash, a
//! lost ack, or a relay publishing twice) is not sent again. A message whose earlier attempt may
//! have reached the provider is looked up there first, or, where the provider cannot be asked,
//! sent again or dead-lettered as the channel's `in_doubt` policy says. RabbitMQ carries only
//! a reference; the message is read from its outbox row when it is sent, and its words are
//! erased from the row in the statement that records it sent or given up.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{join_all, try_join_all};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use rand::Rng;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use drawbridge_domain::PersonalDataKeys;
use drawbridge_platform::config::{InDoubt, SendBatches};
use drawbridge_platform::outbox::{Message, Notification, Reference};
use drawbridge_platform::states::DeliveryState;

use crate::relay::OutboxRow;
use crate::render::{Rendered, Templates};
use crate::topology::{header_name, RetryStep, Topology, ATTEMPT_HEADER, REASON_HEADER};
use crate::{Lookup, Metrics, NotifierError, SendError, Transports};

use drawbridge_platform::statements;

statements! {
    /// Takes each message's advisory lock, reads its delivery record and records the intent to
    /// send (a new record, or a waiting or in-doubt one taken up again), in one statement (one
    /// commit) for the batch; for a message it may send, its outbox row (read only then: a copy
    /// of a settled message reads nothing, and its words may be erased by then). The record is read per message through the primary key (`OFFSET 0`
    /// keeps the lookup from being flattened into a join), because the planner's statistics for a
    /// fast-growing `deliveries` table lag behind and a hash join over all of it grows with every
    /// message ever sent. An intent is due back when its attempt is settled at the provider ($3,
    /// seconds per message: the request's timeout and the grace for recording it); an in-doubt
    /// record due later is left alone and its wait returned. Attempts are counted in the record,
    /// not in the copy, which a redelivery or a new publication resets. A record is taken up only
    /// if it is still as read: every claim raises its count, so a read from before another
    /// consumer's claim takes up nothing.
    CLAIM = "
    WITH claims AS MATERIALIZED (
        SELECT t.n, t.id, t.settles_in, pg_try_advisory_lock(t.key) AS claimed, d.state,
               COALESCE(d.attempts + 1, 1) AS attempt,
               CASE WHEN d.state = 'sending' AND d.next_attempt_at > now()
                    THEN extract(epoch FROM d.next_attempt_at - now())::float8 END AS wait
        FROM UNNEST($1::uuid[], $2::bigint[], $3::float8[]) WITH ORDINALITY AS t(id, key, settles_in, n)
        LEFT JOIN LATERAL (
            SELECT state, attempts, next_attempt_at FROM deliveries WHERE outbox_id = t.id OFFSET 0
        ) d ON true
    ), intents AS (
        INSERT INTO deliveries AS d (outbox_id, state, attempts, next_attempt_at)
        SELECT id, 'sending', attempt, now() + make_interval(secs => settles_in) FROM claims
        WHERE claimed AND wait IS NULL AND (state IS NULL OR state IN ('sending', 'waiting'))
        ON CONFLICT (outbox_id) DO UPDATE
            SET state = 'sending', attempts = EXCLUDED.attempts, next_attempt_at = EXCLUDED.next_attempt_at
            WHERE d.state IN ('sending', 'waiting') AND d.attempts + 1 = EXCLUDED.attempts
        RETURNING outbox_id
    )
    SELECT c.claimed, c.state, c.attempt, i.outbox_id IS NOT NULL AS intended, c.wait AS wait_seconds,
           o.subject_id, o.channel, o.recipient, o.recipient_of, o.language, o.payload
    FROM claims c LEFT JOIN intents i ON i.outbox_id = c.id
    LEFT JOIN outbox o ON o.id = i.outbox_id
    ORDER BY c.n";
    /// Records the outcomes of a batch's attempts. A retry keeps the record in flight: `sending`
    /// if the attempt may have reached the provider, `waiting` if it certainly did not, due back
    /// after its delay ($6, seconds). A message sent or given up has its credentials (codes,
    /// link tokens: the fields $8) erased from its outbox row in the same statement; the record
    /// keeps the keyed digest of the words sent ($7). A copy that comes later finds the record
    /// final and reads nothing.
    SETTLE = "
    WITH settled AS (
        INSERT INTO deliveries AS d (outbox_id, state, attempts, provider_message_id, detail, finished_at,
                                     next_attempt_at, body_digest)
        SELECT id, state, attempt, provider_id, detail,
               CASE WHEN state IN ('sending', 'waiting') THEN NULL ELSE now() END,
               now() + make_interval(secs => due_in), digest
        FROM UNNEST($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[], $6::float8[], $7::bytea[])
             AS t(id, state, attempt, provider_id, detail, due_in, digest)
        ON CONFLICT (outbox_id) DO UPDATE SET state = EXCLUDED.state, attempts = EXCLUDED.attempts,
            provider_message_id = EXCLUDED.provider_message_id, detail = EXCLUDED.detail,
            finished_at = EXCLUDED.finished_at, next_attempt_at = EXCLUDED.next_attempt_at,
            body_digest = coalesce(EXCLUDED.body_digest, d.body_digest)
        RETURNING outbox_id, finished_at
    )
    UPDATE outbox o SET payload = (o.payload - $8::text[]) || jsonb_build_object('erased', true)
    FROM settled s WHERE o.id = s.outbox_id AND s.finished_at IS NOT NULL";
    UNLOCK = "SELECT pg_advisory_unlock(key) FROM UNNEST($1::bigint[]) AS key";
}

/// How the delivery record of a message sent again in doubt, without a way to ask the provider,
/// begins its detail: the person may have it twice.
pub const RESENT_IN_DOUBT: &str = "sent again in doubt";

pub struct Consumer {
    pub pool: PgPool,
    pub topology: Topology,
    pub transports: Arc<Transports>,
    pub templates: Templates,
    pub metrics: Arc<Metrics>,
    pub concurrency: usize,
    pub batches: SendBatches,
    pub prefetch: u16,
    /// How long after an attempt's request ended the provider may still record its message.
    pub grace: Duration,
    /// Keys the digests that delivery records keep of the words they sent.
    pub hash_key: Vec<u8>,
    /// Open the recipients, which the outbox keeps sealed.
    pub keys: PersonalDataKeys,
}

/// One delivery with what was read from it.
struct Item {
    delivery: Delivery,
    /// As the copy's header says, until the claim counts it from the delivery record.
    attempt: u32,
    reference: Result<Reference, String>,
}

/// Outcomes to record, as columns for one `UNNEST` statement.
#[derive(Default)]
struct Settled {
    ids: Vec<Uuid>,
    states: Vec<DeliveryState>,
    attempts: Vec<i32>,
    provider_ids: Vec<Option<String>>,
    details: Vec<Option<String>>,
    /// Seconds until a message in flight is due back.
    due_in: Vec<f64>,
    digests: Vec<Option<Vec<u8>>>,
}

impl Settled {
    /// `grace`: how long after its answer the provider may still record an attempt. A
    /// provider's answer may quote the phone number or address: the record names it no more.
    fn add(&mut self, id: Uuid, recipient: &str, attempt: u32, outcome: &Outcome, grace: Duration) {
        let (state, provider_id, detail) = match outcome {
            Outcome::Sent {
                provider_id, note, ..
            } => (DeliveryState::Sent, Some(provider_id.clone()), note.clone()),
            Outcome::Dead { reason } => (DeliveryState::Dead, None, Some(reason.clone())),
            // An attempt that may have reached the provider keeps its intent, so the retry asks.
            Outcome::Retry {
                reason,
                in_doubt: true,
                ..
            } => (DeliveryState::Sending, None, Some(reason.clone())),
            Outcome::Retry {
                reason,
                in_doubt: false,
                ..
            } => (DeliveryState::Waiting, None, Some(reason.clone())),
            Outcome::AlreadyDone | Outcome::Wait { .. } => return,
        };
        let due_in = match outcome {
            // The provider may still record an attempt in doubt for a while after its answer.
            Outcome::Retry {
                step, in_doubt: true, ..
            } => f64::from(step.delay_seconds).max(grace.as_secs_f64()),
            Outcome::Retry { step, .. } => f64::from(step.delay_seconds),
            _ => 0.0,
        };
        self.due_in.push(due_in);
        self.ids.push(id);
        self.states.push(state);
        self.attempts.push(attempt as i32);
        self.provider_ids.push(provider_id);
        // A provider's answer may quote the number or address; the record keeps neither.
        self.details.push(detail.map(|detail| match recipient {
            "" => detail,
            recipient => detail.replace(recipient, "the recipient"),
        }));
        self.digests.push(match outcome {
            Outcome::Sent { digest, .. } => Some(digest.to_vec()),
            _ => None,
        });
    }
}

enum Outcome {
    Sent {
        provider_id: String,
        /// Kept in the delivery record: why this message may have reached the person twice.
        note: Option<String>,
        /// Of the words sent, for the delivery record.
        digest: [u8; 32],
    },
    AlreadyDone,
    /// Try again after the step's delay; `in_doubt` if this attempt may have reached the provider.
    Retry {
        step: RetryStep,
        reason: String,
        in_doubt: bool,
    },
    Dead {
        reason: String,
    },
    /// An earlier attempt may still be under way or not yet recorded by the provider: back
    /// through the step's delay queue for `wait`, the record untouched and nothing asked.
    Wait {
        step: RetryStep,
        wait: Duration,
    },
}

/// What the claim statement found and did for one message.
#[derive(sqlx::FromRow)]
struct Claim {
    /// This session holds the message's advisory lock.
    claimed: bool,
    /// The delivery record as it was before this attempt.
    state: Option<DeliveryState>,
    /// This attempt's number: one more than the record's.
    attempt: i32,
    /// The intent of this attempt is recorded: it may go to the provider.
    intended: bool,
    /// Seconds until an earlier attempt in doubt is settled at the provider, if it is not yet.
    wait_seconds: Option<f64>,
    /// The outbox row, if the intent is recorded.
    subject_id: Option<Uuid>,
    channel: Option<String>,
    recipient: Option<Vec<u8>>,
    recipient_of: Option<Uuid>,
    language: Option<String>,
    payload: Option<Json<serde_json::Value>>,
}

impl Claim {
    /// The message as its outbox row holds it, its recipient opened with `keys`.
    fn message(self, id: Uuid, keys: &PersonalDataKeys) -> Result<Message, String> {
        match (
            self.subject_id,
            self.channel,
            self.recipient,
            self.recipient_of,
            self.language,
            self.payload,
        ) {
            (
                Some(subject_id),
                Some(channel),
                Some(recipient),
                Some(recipient_of),
                Some(language),
                Some(payload),
            ) => OutboxRow {
                id,
                subject_id,
                channel,
                recipient,
                recipient_of,
                language,
                payload,
            }
            .into_message(keys),
            _ => Err("no outbox row has its id".to_owned()),
        }
    }
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
            let name = format!("notifier-{tag}-{queue}");
            let options = BasicConsumeOptions::default();
            streams.push(
                amqp.basic_consume(&queue, &name, options, FieldTable::default())
                    .await?,
            );
        }
        let mut batches = futures_util::stream::select_all(streams).ready_chunks(self.batches.size);
        let sends = Arc::new(Semaphore::new(self.concurrency));
        let batch_slots = Arc::new(Semaphore::new(self.batches.in_flight));
        let acks = Arc::new(Mutex::new(Acks::default()));
        let failure = CancellationToken::new();
        loop {
            // A batch starts when a slot is free and takes whatever has arrived by then: one
            // message when traffic is light; under load deliveries pile up meanwhile, so batches
            // are full and their two commits cover many messages.
            let slot = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = failure.cancelled() => break,
                slot = batch_slots.clone().acquire_owned() => slot.expect("never closed"),
            };
            let batch = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = failure.cancelled() => break,
                next = batches.next() => match next {
                    Some(batch) => batch.into_iter().collect::<Result<Vec<Delivery>, _>>()?,
                    None => return Err(NotifierError::Broker("the consumer was cancelled by the broker".into())),
                },
            };
            let permits = sends
                .clone()
                .acquire_many_owned(batch.len() as u32)
                .await
                .expect("never closed");
            let consumer = self.clone();
            let amqp = amqp.clone();
            let failure = failure.clone();
            let acks = acks.clone();
            tokio::spawn(async move {
                if let Err(error) = consumer.handle(&amqp, &acks, batch).await {
                    // Unacknowledged messages return to the queue when the channel closes.
                    tracing::warn!(%error, "messages not settled; reconnecting");
                    failure.cancel();
                }
                drop((permits, slot));
            });
        }
        // Graceful: wait until every message in flight is settled.
        let _all = sends
            .acquire_many(self.concurrency as u32)
            .await
            .expect("never closed");
        if failure.is_cancelled() && !shutdown.is_cancelled() {
            return Err(NotifierError::Broker("a message could not be settled".into()));
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(messages = deliveries.len()))]
    async fn handle(
        &self,
        amqp: &lapin::Channel,
        acks: &Mutex<Acks>,
        deliveries: Vec<Delivery>,
    ) -> Result<(), NotifierError> {
        self.metrics.send_batch_messages.observe(deliveries.len() as f64);
        let mut items: Vec<Item> = deliveries
            .into_iter()
            .map(|delivery| Item {
                attempt: attempt_of(&delivery),
                reference: serde_json::from_slice::<Reference>(&delivery.data).map_err(|e| e.to_string()),
                delivery,
            })
            .collect();
        let outcomes = self.deliver_all(&mut items).await?;
        try_join_all(
            items
                .iter()
                .zip(outcomes)
                .map(|(item, outcome)| self.conclude(amqp, item, outcome)),
        )
        .await?;
        let tags: Vec<u64> = items.iter().map(|item| item.delivery.delivery_tag).collect();
        // Under the lock until the frames are queued, so a later `multiple` acknowledgement
        // never overtakes (and so invalidates) a single one it covers.
        let mut acks = acks.lock().await;
        let frames = match acks.settle(&tags) {
            Acknowledge::UpTo(tag) => vec![(tag, true)],
            Acknowledge::Each(tags) => tags.into_iter().map(|tag| (tag, false)).collect(),
        };
        try_join_all(
            frames
                .into_iter()
                .map(|(tag, multiple)| amqp.basic_ack(tag, BasicAckOptions { multiple })),
        )
        .await?;
        Ok(())
    }

    /// Metrics, then retry or dead-letter (confirmed before the message is acknowledged).
    async fn conclude(
        &self,
        amqp: &lapin::Channel,
        item: &Item,
        outcome: Outcome,
    ) -> Result<(), NotifierError> {
        let (channel, kind) = match &item.reference {
            Ok(reference) => (reference.channel.as_str(), reference.kind.as_str()),
            Err(_) => ("unknown", "unreadable"),
        };
        let labels = [channel, kind];
        let attempt = item.attempt;
        match &outcome {
            Outcome::Sent { .. } => self.metrics.sent.with_label_values(&labels).inc(),
            Outcome::AlreadyDone => self.metrics.duplicates.with_label_values(&labels).inc(),
            Outcome::Retry { step, reason, .. } => {
                tracing::warn!(%reason, attempt, kind, "send failed; will retry");
                // Jitter (80-100 % of the delay) keeps a burst that failed together from
                // retrying together.
                let expiration_ms = u64::from(step.delay_seconds) * rand::thread_rng().gen_range(800..=1000);
                let target = Target::Retry {
                    exchange: &step.exchange,
                    expiration_ms,
                };
                self.forward(amqp, target, &item.delivery, attempt + 1, reason)
                    .await?;
                self.metrics.retried.with_label_values(&labels).inc();
            }
            Outcome::Wait { step, wait } => {
                let expiration_ms = (wait.as_millis() as u64).clamp(1, u64::from(step.delay_seconds) * 1000);
                let target = Target::Retry {
                    exchange: &step.exchange,
                    expiration_ms,
                };
                let reason = "an earlier attempt may still be under way";
                self.forward(amqp, target, &item.delivery, attempt, reason)
                    .await?;
                self.metrics.waited.with_label_values(&labels).inc();
            }
            Outcome::Dead { reason } => {
                tracing::error!(%reason, attempt, kind, "message dead-lettered");
                let queue = self.topology.dead_letter_queue();
                self.forward(
                    amqp,
                    Target::Dead { queue: &queue },
                    &item.delivery,
                    attempt,
                    reason,
                )
                .await?;
                self.metrics.dead.with_label_values(&labels).inc();
            }
        }
        Ok(())
    }

    /// Attempts each message of a batch, one copy at a time, even across crashes. Session
    /// advisory locks on the message ids keep two copies (a relay that published twice) from
    /// being handled at once; if this process dies, its database session and the locks go with
    /// it and the unacknowledged copies are redelivered. Sets each claimed item's attempt number.
    async fn deliver_all(&self, items: &mut [Item]) -> Result<Vec<Outcome>, NotifierError> {
        let mut outcomes: Vec<Option<Outcome>> = items.iter().map(|_| None).collect();
        let mut seen = HashSet::new();
        let mut candidates = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match &item.reference {
                Err(error) => {
                    outcomes[index] = Some(Outcome::Dead {
                        reason: format!("unreadable message: {error}"),
                    })
                }
                // Session locks are re-entrant, so a second copy in the same batch is settled here.
                Ok(reference) if !seen.insert(reference.id) => outcomes[index] = Some(Outcome::AlreadyDone),
                Ok(_) => candidates.push(index),
            }
        }
        if !candidates.is_empty() {
            let mut connection = self.pool.acquire().await?;
            let result = self
                .deliver_claimed(&mut connection, items, &candidates, &mut outcomes)
                .await;
            if result.is_err() {
                // The session may still hold locks: end it instead of returning it to the pool.
                let _ = connection.close().await;
            }
            result?;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every message has an outcome"))
            .collect())
    }

    /// Claim with intents (reading the messages to send), send, record outcomes, release: three
    /// round trips for the batch.
    /// An intent left by an earlier attempt means that attempt may have reached the provider
    /// (it timed out, got a 5xx, or died mid-call): ask the provider before sending again.
    async fn deliver_claimed(
        &self,
        connection: &mut PgConnection,
        items: &mut [Item],
        candidates: &[usize],
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), NotifierError> {
        let ids: Vec<Uuid> = candidates.iter().map(|&i| parsed(&items[i]).id).collect();
        let keys: Vec<i64> = ids.iter().map(|id| lock_key(*id)).collect();
        // An attempt is settled at the provider once its request has timed out and the grace
        // for recording it has passed.
        // Taken before the claim, so that each attempt's deadline (this plus the channel's
        // timeout) comes no later than the database reckons its intent settled.
        let claimed_at = tokio::time::Instant::now();
        let settles_in: Vec<f64> = candidates
            .iter()
            .map(|&i| {
                let channel = parsed(&items[i]).channel;
                (self.transports.in_flight(channel).timeout + self.grace).as_secs_f64()
            })
            .collect();
        let claims: Vec<Claim> = sqlx::query_as(CLAIM)
            .bind(&ids)
            .bind(&keys)
            .bind(&settles_in)
            .fetch_all(&mut *connection)
            .await?;
        let mut locked = Vec::new();
        let mut to_send = Vec::new();
        for ((&index, key), claim) in candidates.iter().zip(&keys).zip(claims) {
            if !claim.claimed {
                // Another consumer holds this very message and will settle it.
                outcomes[index] = Some(Outcome::AlreadyDone);
                continue;
            }
            locked.push(*key);
            items[index].attempt = claim.attempt as u32;
            // An attempt that may still be under way (its notifier died a moment ago, and
            // RabbitMQ redelivered at once) is not looked up yet: the provider may not have
            // recorded it, and a lookup that misses it sends the message twice.
            let wait = claim.wait_seconds.map(|seconds| {
                let wait = Duration::from_secs_f64(seconds);
                let step = self
                    .topology
                    .wait_step(wait)
                    .expect("the settings require a retry delay");
                (step, wait)
            });
            match (claim.state, claim.intended, wait) {
                (Some(DeliveryState::Sent | DeliveryState::Dead), _, _) => {
                    outcomes[index] = Some(Outcome::AlreadyDone)
                }
                (_, _, Some((step, wait))) => outcomes[index] = Some(Outcome::Wait { step, wait }),
                (state, true, _) => {
                    let in_doubt = state == Some(DeliveryState::Sending);
                    to_send.push((
                        index,
                        in_doubt,
                        claim.message(parsed(&items[index]).id, &self.keys),
                    ));
                }
                // Another consumer changed the record between this statement's snapshot and its
                // lock, and has settled this message or left it to its own copy.
                (_, false, _) => outcomes[index] = Some(Outcome::AlreadyDone),
            }
        }
        let items = &*items;
        let sent = join_all(to_send.iter().map(|&(index, in_doubt, ref message)| async move {
            match message {
                Ok(message) => {
                    self.attempt(message, items[index].attempt, in_doubt, claimed_at)
                        .await
                }
                Err(reason) => Outcome::Dead {
                    reason: format!("cannot be sent: {reason}"),
                },
            }
        }))
        .await;
        let mut settled = Settled::default();
        for (&(index, _, ref message), outcome) in to_send.iter().zip(sent) {
            let recipient = message.as_ref().map_or("", |message| message.recipient.as_str());
            settled.add(
                parsed(&items[index]).id,
                recipient,
                items[index].attempt,
                &outcome,
                self.grace,
            );
            outcomes[index] = Some(outcome);
        }
        if !settled.ids.is_empty() {
            sqlx::query(SETTLE)
                .bind(&settled.ids)
                .bind(&settled.states)
                .bind(&settled.attempts)
                .bind(&settled.provider_ids)
                .bind(&settled.details)
                .bind(&settled.due_in)
                .bind(&settled.digests)
                .bind(&Notification::SECRET_FIELDS[..])
                .execute(&mut *connection)
                .await?;
        }
        if !locked.is_empty() {
            sqlx::query(UNLOCK)
                .bind(&locked)
                .execute(&mut *connection)
                .await?;
        }
        Ok(())
    }

    /// One message through its transport, after asking the provider if it may have it already.
    /// Its request ends within the channel's timeout of `claimed_at`, when the attempt's intent
    /// was recorded: a later lookup must not miss it.
    async fn attempt(
        &self,
        message: &Message,
        attempt: u32,
        in_doubt: bool,
        claimed_at: tokio::time::Instant,
    ) -> Outcome {
        let rendered = match self.templates.render(&message.notification, message.language) {
            Ok(rendered) => rendered,
            // A message we cannot word will not word itself on a retry.
            Err(error) => {
                return Outcome::Dead {
                    reason: error.to_string(),
                }
            }
        };
        let labels = [message.channel.as_str(), message.notification.kind()];
        let digest = drawbridge_domain::message_digest(&self.hash_key, words(message, &rendered));
        let mut note = None;
        if in_doubt {
            match self
                .transports
                .find_sent(message.channel, &message.recipient, &rendered)
                .await
            {
                Ok(Lookup::Found(provider_id)) => {
                    self.metrics.reconciled.with_label_values(&labels).inc();
                    return Outcome::Sent {
                        provider_id,
                        note: None,
                        digest,
                    };
                }
                Ok(Lookup::NotFound) => {}
                Ok(Lookup::Unavailable(why)) => match self.transports.in_flight(message.channel).in_doubt {
                    InDoubt::Resend => {
                        self.metrics.resent_in_doubt.with_label_values(&labels).inc();
                        note = Some(format!(
                            "{RESENT_IN_DOUBT}: an earlier attempt may have reached the provider, and {why} \
                             (in_doubt = \"resend\")"
                        ));
                    }
                    InDoubt::DeadLetter => {
                        return Outcome::Dead {
                            reason: format!(
                                "in doubt: an earlier attempt may have reached the provider, and {why} \
                                 (in_doubt = \"dead-letter\")"
                            ),
                        }
                    }
                },
                // Still in doubt: ask again on the next attempt.
                Err(reason) => return self.failed(attempt, SendError::InDoubt(reason)),
            }
        }
        let started = std::time::Instant::now();
        let deadline = claimed_at + self.transports.in_flight(message.channel).timeout;
        let result = self
            .transports
            .send(message.channel, &message.recipient, &rendered, deadline)
            .await;
        self.metrics
            .send_seconds
            .with_label_values(&[message.channel.as_str()])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(provider_id) => Outcome::Sent {
                provider_id,
                note,
                digest,
            },
            Err(error) => self.failed(attempt, error),
        }
    }

    fn failed(&self, attempt: u32, error: SendError) -> Outcome {
        let (reason, in_doubt) = match error {
            SendError::NotSent(reason) => (reason, false),
            SendError::InDoubt(reason) => (reason, true),
            SendError::Permanent(reason) => return Outcome::Dead { reason },
        };
        match self.topology.retry_after(attempt) {
            Some(step) => Outcome::Retry {
                step,
                reason,
                in_doubt,
            },
            None => Outcome::Dead {
                reason: format!("gave up after {attempt} attempts: {reason}"),
            },
        }
    }

    /// Re-publishes the message (to a delay queue or the dead-letter queue) and waits for the
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

/// The acknowledgements of one channel, whose delivery tags count up from 1. Once every tag up
/// to a batch's last is settled, one `multiple` acknowledgement covers the batch, instead of
/// a frame per message for the broker to handle. A batch that finishes ahead of an earlier
/// one acknowledges its messages one by one: a slow send must not hold back everyone else's
/// acknowledgements, or the consumer would stall at its prefetch limit.
#[derive(Default)]
struct Acks {
    /// Every tag up to this one is settled.
    settled_through: u64,
    /// Settled tags above a gap.
    ahead: BTreeSet<u64>,
}

#[derive(Debug, PartialEq, Eq)]
enum Acknowledge {
    UpTo(u64),
    Each(Vec<u64>),
}

impl Acks {
    fn settle(&mut self, tags: &[u64]) -> Acknowledge {
        self.ahead.extend(tags);
        while self.ahead.remove(&(self.settled_through + 1)) {
            self.settled_through += 1;
        }
        match tags.iter().max() {
            Some(&last) if last <= self.settled_through => Acknowledge::UpTo(last),
            _ => Acknowledge::Each(tags.to_vec()),
        }
    }
}

/// Where a settled-but-not-sent message goes next.
enum Target<'a> {
    Retry { exchange: &'a str, expiration_ms: u64 },
    Dead { queue: &'a str },
}

/// The reference of an item that passed parsing.
fn parsed(item: &Item) -> &Reference {
    item.reference.as_ref().expect("only parsed messages are claimed")
}

/// The words a channel sends: the SMS, or the email's text (its HTML says the same).
fn words<'a>(message: &Message, rendered: &'a Rendered) -> &'a str {
    match message.channel {
        drawbridge_platform::outbox::Channel::Sms => &rendered.sms,
        drawbridge_platform::outbox::Channel::Email => &rendered.text,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_settled_in_order_are_acknowledged_with_one_frame_each() {
        let mut acks = Acks::default();
        assert_eq!(acks.settle(&[1, 2, 3]), Acknowledge::UpTo(3));
        assert_eq!(acks.settle(&[5, 4]), Acknowledge::UpTo(5));
    }

    #[test]
    fn a_batch_ahead_of_an_unsettled_one_is_acknowledged_message_by_message() {
        let mut acks = Acks::default();
        assert_eq!(acks.settle(&[4, 5]), Acknowledge::Each(vec![4, 5]));
        // Tag 3 is still in flight (or not yet taken from the stream); 1 and 2 can be covered.
        assert_eq!(acks.settle(&[1, 2]), Acknowledge::UpTo(2));
        assert_eq!(acks.settle(&[6]), Acknowledge::Each(vec![6]));
        // Settling 3 closes the gap: its frame covers only what is still unacknowledged up to 3.
        assert_eq!(acks.settle(&[3]), Acknowledge::UpTo(3));
        assert_eq!(acks.settle(&[7]), Acknowledge::UpTo(7));
    }
}
