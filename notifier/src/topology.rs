//! The RabbitMQ topology, declared idempotently at start-up by every notifier:
//!
//! ```text
//! outbox relay --(<channel>.<kind>)--> <p>.notifications (topic)
//!     *.<kind> -> <p>.<kind>   one durable queue per message kind, so a flood of one kind
//!                              (say SMS codes at a release) cannot hold up offers
//!     a temporary failure -> <p>.delay.<n>s (fanout exchange and queue, TTL n s), which
//!         dead-letters back to <p>.notifications with the original routing key
//!     a permanent failure or the last retry -> <p>.dead (kept for an operator)
//! ```
//! Each delay queue has one fixed TTL, so no message waits long behind a longer-delayed one.
//! Delay queues are quorum queues that dead-letter at least once, whatever `quorum_queues`
//! says: a classic queue hands an expired message on without a confirm, and in a broker
//! restart messages on their way back were lost. At least once needs `reject-publish` on
//! overflow, and a target that takes every message: the kind queues have no length limit,
//! and a message the broker cannot route yet stays in its delay queue until it can.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel as AmqpChannel, ExchangeKind};

use drawbridge_platform::config::AmqpSettings;
use drawbridge_platform::outbox::Notification;

/// Names of everything the notifier declares, derived from the configured prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    quorum: bool,
    retry_delays_seconds: Vec<u32>,
}

/// Where a failed message waits before its next attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryStep {
    pub exchange: String,
    pub delay_seconds: u32,
}

impl Topology {
    pub fn new(settings: &AmqpSettings, retry_delays_seconds: &[u32]) -> Self {
        Topology {
            prefix: settings.prefix.clone(),
            quorum: settings.quorum_queues,
            retry_delays_seconds: retry_delays_seconds.to_vec(),
        }
    }

    pub fn exchange(&self) -> String {
        format!("{}.notifications", self.prefix)
    }

    /// The queue of one message kind.
    pub fn queue(&self, kind: &str) -> String {
        format!("{}.{kind}", self.prefix)
    }

    pub fn kind_queues(&self) -> Vec<String> {
        Notification::KINDS.iter().map(|kind| self.queue(kind)).collect()
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// The retry step after the given failed attempt (1-based), or `None` when retries are
    /// used up.
    pub fn retry_after(&self, failed_attempt: u32) -> Option<RetryStep> {
        let delay_seconds = *self.retry_delays_seconds.get(failed_attempt as usize - 1)?;
        Some(RetryStep {
            exchange: self.retry_name(delay_seconds),
            delay_seconds,
        })
    }

    /// Where a message waits that must not be attempted for `wait` yet: the longest delay
    /// not above it (it may come back early and wait again), or the shortest delay.
    pub fn wait_step(&self, wait: Duration) -> Option<RetryStep> {
        let delays = self.retry_delays_seconds.iter().copied();
        let fitting = delays
            .clone()
            .filter(|&delay| u64::from(delay) <= wait.as_secs())
            .max();
        let delay_seconds = fitting.or_else(|| delays.min())?;
        Some(RetryStep {
            exchange: self.retry_name(delay_seconds),
            delay_seconds,
        })
    }

    /// A delay exchange and its queue share this name.
    fn retry_name(&self, delay_seconds: u32) -> String {
        format!("{}.delay.{delay_seconds}s", self.prefix)
    }

    /// Every queue name, for monitoring and for tests that clean up after themselves.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = self.kind_queues();
        queues.push(self.dead_letter_queue());
        let mut delays = self.retry_delays_seconds.clone();
        delays.sort_unstable();
        delays.dedup();
        queues.extend(delays.into_iter().map(|delay| self.retry_name(delay)));
        queues
    }

    /// Every exchange name.
    pub fn exchanges(&self) -> Vec<String> {
        let mut exchanges = vec![self.exchange()];
        exchanges.extend(
            self.retry_delays_seconds
                .iter()
                .map(|delay| self.retry_name(*delay)),
        );
        exchanges.dedup();
        exchanges
    }

    pub async fn declare(&self, amqp: &AmqpChannel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        amqp.exchange_declare(
            &self.exchange(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
        self.declare_queue(amqp, &self.dead_letter_queue(), self.durable_arguments())
            .await?;
        for kind in Notification::KINDS {
            let queue = self.queue(kind);
            self.declare_queue(amqp, &queue, self.durable_arguments()).await?;
            amqp.queue_bind(
                &queue,
                &self.exchange(),
                &format!("*.{kind}"),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        for delay in &self.retry_delays_seconds {
            let name = self.retry_name(*delay);
            amqp.exchange_declare(&name, ExchangeKind::Fanout, durable, FieldTable::default())
                .await?;
            let mut arguments = FieldTable::default();
            arguments.insert("x-queue-type".into(), long_string("quorum"));
            arguments.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(i64::from(*delay) * 1000),
            );
            // No dead-letter routing key: the message keeps its own, `<channel>.<kind>`.
            arguments.insert("x-dead-letter-exchange".into(), long_string(&self.exchange()));
            // The queue lets a message go only once its kind queue has confirmed it; without
            // `reject-publish` the broker silently falls back to at most once.
            arguments.insert("x-dead-letter-strategy".into(), long_string("at-least-once"));
            arguments.insert("x-overflow".into(), long_string("reject-publish"));
            self.declare_queue(amqp, &name, arguments).await?;
            amqp.queue_bind(
                &name,
                &name,
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(())
    }

    fn durable_arguments(&self) -> FieldTable {
        let mut arguments = FieldTable::default();
        if self.quorum {
            arguments.insert("x-queue-type".into(), long_string("quorum"));
        }
        arguments
    }

    async fn declare_queue(
        &self,
        amqp: &AmqpChannel,
        name: &str,
        arguments: FieldTable,
    ) -> Result<(), lapin::Error> {
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        amqp.queue_declare(name, options, arguments).await.map(drop)
    }

    /// Messages waiting in each queue, read with passive declares.
    pub async fn depths(&self, amqp: &AmqpChannel) -> Result<Vec<(String, u32)>, lapin::Error> {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let mut depths = Vec::new();
        for queue in self.queues() {
            let declared = amqp.queue_declare(&queue, passive, FieldTable::default()).await?;
            depths.push((queue, declared.message_count()));
        }
        Ok(depths)
    }
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

/// Header carrying how many times a message has been tried.
pub const ATTEMPT_HEADER: &str = "x-drawbridge-attempt";
/// Header carrying why a message was dead-lettered.
pub const REASON_HEADER: &str = "x-drawbridge-reason";

pub fn header_name(name: &str) -> ShortString {
    ShortString::from(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_steps_follow_the_configured_delays() {
        let topology = Topology::new(
            &AmqpSettings {
                prefix: "t".into(),
                ..Default::default()
            },
            &[1, 5],
        );
        assert_eq!(
            topology.retry_after(1),
            Some(RetryStep {
                exchange: "t.delay.1s".into(),
                delay_seconds: 1
            })
        );
        assert_eq!(topology.retry_after(2).unwrap().exchange, "t.delay.5s");
        assert_eq!(topology.retry_after(3), None);
        assert_eq!(topology.queues().len(), Notification::KINDS.len() + 1 + 2);
        assert!(topology.queues().contains(&"t.offer".to_owned()));
    }

    #[test]
    fn a_wait_takes_the_longest_delay_that_fits_or_the_shortest() {
        let topology = Topology::new(
            &AmqpSettings {
                prefix: "t".into(),
                ..Default::default()
            },
            &[1, 5, 30, 120, 600],
        );
        let delay = |seconds: f64| {
            topology
                .wait_step(Duration::from_secs_f64(seconds))
                .unwrap()
                .delay_seconds
        };
        assert_eq!((delay(40.0), delay(10.0), delay(5.0), delay(0.3)), (30, 5, 5, 1));
    }
}
