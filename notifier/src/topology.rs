//! The RabbitMQ topology, declared idempotently at start-up by every notifier:
//!
//! ```text
//! outbox relay --(sms.<kind> / email.<kind>)--> <p>.notifications (topic)
//!     sms.#   -> <p>.sms      email.# -> <p>.email          (consumed, manual ack)
//!     a temporary failure -> <p>.<channel>.retry.<n>s (TTL n s, dead-letters back to <p>.<channel>)
//!     a permanent failure or the last retry -> <p>.dead     (kept for an operator)
//! ```
//! Retry queues have one fixed TTL each, so no message waits behind a longer-delayed one.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel as AmqpChannel, ExchangeKind};

use drawbridge_platform::config::AmqpSettings;
use drawbridge_platform::outbox::Channel;

/// Names of everything the notifier declares, derived from the configured prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    quorum: bool,
    retry_delays_seconds: Vec<u32>,
}

pub const CHANNELS: [Channel; 2] = [Channel::Sms, Channel::Email];

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

    pub fn queue(&self, channel: Channel) -> String {
        format!("{}.{}", self.prefix, channel.as_str())
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// The retry queue for the given attempt (1-based), or `None` when retries are used up.
    pub fn retry_queue(&self, channel: Channel, failed_attempt: u32) -> Option<String> {
        let delay = self.retry_delays_seconds.get(failed_attempt as usize - 1)?;
        Some(self.retry_queue_for_delay(channel, *delay))
    }

    fn retry_queue_for_delay(&self, channel: Channel, delay_seconds: u32) -> String {
        format!("{}.{}.retry.{delay_seconds}s", self.prefix, channel.as_str())
    }

    /// Every queue name, for operators and for tests that clean up after themselves.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = vec![self.dead_letter_queue()];
        for channel in CHANNELS {
            queues.push(self.queue(channel));
            for delay in &self.retry_delays_seconds {
                queues.push(self.retry_queue_for_delay(channel, *delay));
            }
        }
        queues.dedup();
        queues
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
        for channel in CHANNELS {
            let queue = self.queue(channel);
            self.declare_queue(amqp, &queue, self.durable_arguments()).await?;
            amqp.queue_bind(
                &queue,
                &self.exchange(),
                &format!("{}.#", channel.as_str()),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
            for delay in &self.retry_delays_seconds {
                let mut arguments = FieldTable::default();
                arguments.insert(
                    "x-message-ttl".into(),
                    AMQPValue::LongLongInt(i64::from(*delay) * 1000),
                );
                arguments.insert("x-dead-letter-exchange".into(), long_string(""));
                arguments.insert("x-dead-letter-routing-key".into(), long_string(&queue));
                self.declare_queue(amqp, &self.retry_queue_for_delay(channel, *delay), arguments)
                    .await?;
            }
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
    fn retry_queues_follow_the_configured_delays() {
        let topology = Topology::new(
            &AmqpSettings {
                prefix: "t".into(),
                ..Default::default()
            },
            &[1, 5],
        );
        assert_eq!(
            topology.retry_queue(Channel::Sms, 1).as_deref(),
            Some("t.sms.retry.1s")
        );
        assert_eq!(
            topology.retry_queue(Channel::Email, 2).as_deref(),
            Some("t.email.retry.5s")
        );
        assert_eq!(topology.retry_queue(Channel::Sms, 3), None);
        assert_eq!(topology.queues().len(), 1 + 2 * 3);
    }
}
