#![allow(clippy::unwrap_used)]
//! End-to-end notifier throughput: outbox rows -> relay (publisher confirms) -> RabbitMQ ->
//! consumer -> the local Twilio-compatible server, against a bare lapin baseline (persistent
//! publish with confirms, consume with manual acks) on the same broker in the same run.
//!
//!     cargo bench --bench notifier_throughput            # 20,000 messages, 3 rounds
//!     BENCH_MESSAGES=100000 BENCH_ROUNDS=5 cargo bench --bench notifier_throughput
//!     BENCH_CONCURRENCY=64 cargo bench --bench notifier_throughput   # sends in flight

use std::time::{Duration, Instant};

use drawbridge_domain::Field;
use drawbridge_test_support::cpu::{CpuCost, CpuTime};
use drawbridge_test_support::{spawn_with, Components};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use uuid::Uuid;

fn main() {
    let setting = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let messages = setting("BENCH_MESSAGES", 20_000);
    let rounds = setting("BENCH_ROUNDS", 3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Baseline and Drawbridge alternate, and the medians are compared: the broker alone
        // swings by a fifth from one run to the next on the shared cores.
        let (mut baselines, mut ours) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let (baseline, drawbridge) = (bare_lapin(messages).await, drawbridge(messages).await);
            println!("round {round}: bare lapin {baseline}; drawbridge {drawbridge}");
            baselines.push(baseline);
            ours.push(drawbridge);
        }
        let (baseline, drawbridge) = (Round::median(&mut baselines), Round::median(&mut ours));
        println!("messages: {messages}, rounds: {rounds} (medians)");
        println!("bare lapin publish(confirm) + consume(ack): {baseline}");
        println!("drawbridge outbox -> SMS provider:          {drawbridge}");
        println!("ratio: {:.2}", drawbridge.per_second / baseline.per_second);
    });
}

/// One timed run: messages per second, and the CPU each message cost the machine.
#[derive(Clone, Copy)]
struct Round {
    per_second: f64,
    cpu: Option<CpuCost>,
}

impl Round {
    /// Times from `started`, when `cpu` was also read.
    fn since(count: usize, started: Instant, cpu: Option<CpuTime>) -> Round {
        let elapsed = started.elapsed();
        Round {
            per_second: count as f64 / elapsed.as_secs_f64(),
            cpu: cpu.and_then(|cpu| cpu.cost_since(count, elapsed)),
        }
    }

    /// The round with the median rate.
    fn median(rounds: &mut [Round]) -> Round {
        rounds.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
        rounds[rounds.len() / 2]
    }
}

impl std::fmt::Display for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>6.0} msg/s", self.per_second)?;
        match self.cpu {
            Some(cpu) => write!(f, " ({cpu})"),
            None => Ok(()),
        }
    }
}

/// Publishes `count` persistent messages in confirmed batches of 256 (as the relay does) while
/// a consumer with the notifier's prefetch acknowledges each one.
async fn bare_lapin(count: usize) -> Round {
    let settings = drawbridge_platform::config::AmqpSettings::default();
    let connection = drawbridge_platform::amqp::connect_once(&settings)
        .await
        .expect("RabbitMQ");
    let queue = format!("bench-{}", Uuid::new_v4().simple());
    let publisher = connection.create_channel().await.unwrap();
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    publisher
        .queue_declare(&queue, durable, FieldTable::default())
        .await
        .unwrap();
    let consumer_channel = connection.create_channel().await.unwrap();
    consumer_channel
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consumer_channel
        .basic_consume(
            &queue,
            "bench",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let body = br#"{"id":"00000000-0000-0000-0000-000000000000","channel":"sms","kind":"verification_code"}"#;
    let (cpu, started) = (CpuTime::now(), Instant::now());
    let consuming = tokio::spawn(async move {
        for _ in 0..count {
            let delivery = consumer.next().await.unwrap().unwrap();
            delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
    });
    for batch in (0..count).collect::<Vec<_>>().chunks(256) {
        let mut confirms = Vec::with_capacity(batch.len());
        for _ in batch {
            let properties = BasicProperties::default().with_delivery_mode(2);
            confirms.push(
                publisher
                    .basic_publish("", &queue, BasicPublishOptions::default(), body, properties)
                    .await
                    .unwrap(),
            );
        }
        for confirm in confirms {
            assert!(confirm.await.unwrap().is_ack());
        }
    }
    consuming.await.unwrap();
    let round = Round::since(count, started, cpu);
    publisher
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = connection.close(200, "bench done").await;
    round
}

/// Inserts `count` outbox rows in one transaction and times until every one is recorded as
/// sent by the notifier, i.e. accepted by the Twilio-compatible server.
async fn drawbridge(count: usize) -> Round {
    let app = spawn_with(
        Components {
            notifier: true,
            allocator: false,
        },
        |s| {
            s.notifier.sms.messages_per_second = 1_000_000;
            s.telemetry.log_filter = "warn".into();
            if let Ok(c) = std::env::var("BENCH_CONCURRENCY") {
                s.notifier.concurrency = c.parse().unwrap();
                s.amqp.prefetch = s.amqp.prefetch.max(2 * s.notifier.concurrency as u16);
                s.database.max_connections = s.notifier.send_batches().in_flight as u32 + 8;
            }
        },
    )
    .await;
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    // Sealed as the gateway seals them; the relay opens each as it publishes.
    let keys = app.personal_data_keys();
    let recipients: Vec<Vec<u8>> = (0..count)
        .zip(&ids)
        .map(|(n, id)| keys.seal(Field::Phone, *id, &format!("+49171{n:08}")))
        .collect();
    let (cpu, started) = (CpuTime::now(), Instant::now());
    sqlx::query(
        "INSERT INTO outbox (id, kind, subject_id, channel, recipient, recipient_of, language, payload)
         SELECT id, 'verification_code', id, 'sms', recipient, id, 'de',
                jsonb_build_object('kind', 'verification_code', 'code', '123456', 'valid_minutes', 10)
         FROM UNNEST($1::uuid[], $2::bytea[]) AS t(id, recipient)",
    )
    .bind(&ids)
    .bind(&recipients)
    .execute(&app.pool)
    .await
    .unwrap();
    // The provider's own count first (in memory), so the clock is not slowed by counting
    // delivery records in the database every few milliseconds; then the records themselves.
    loop {
        if app.twilio.accepted_count() >= count && app.sent_count().await as usize == count {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not all delivered within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let round = Round::since(count, started, cpu);
    assert_eq!(
        app.twilio.accepted().len(),
        count,
        "each message sent exactly once"
    );
    app.stop().await;
    round
}
