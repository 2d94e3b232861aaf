//! The notifier: relays the outbox to RabbitMQ and delivers messages by SMS and email,
//! retrying temporary failures and dead-lettering the rest. A message goes to the provider once
//! where the provider can be asked whether it already has it (Twilio's message list); where it
//! cannot (SMTP, a provider without the list), a message whose answer was lost is sent again
//! or dead-lettered, as `in_doubt` says. Both loops reconnect by themselves when the broker or
//! the database goes away, and a sweeper publishes again any message the broker lost.

mod consumer;
pub use consumer::RESENT_IN_DOUBT;
mod email;
mod relay;
pub mod render;
mod sink;
mod sms;
mod sweeper;
pub mod topology;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};
use sqlx::PgPool;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use drawbridge_domain::PersonalDataKeys;
use drawbridge_platform::config::{EmailProvider, ExposeSecret, InDoubt, NotifierSettings, SmsProvider};
use drawbridge_platform::ops::{self, Readiness};
use drawbridge_platform::outbox::Channel;
use drawbridge_platform::{amqp, postgres, Settings, StartupError};

use crate::consumer::Consumer;
use crate::email::SmtpMailer;
use crate::relay::Relay;
use crate::render::{Rendered, Templates};
use crate::sink::FileSink;
use crate::sms::TwilioClient;
use crate::topology::Topology;

/// Every SQL statement of the notifier, for the schema check.
pub fn all_statements() -> Vec<(String, &'static str)> {
    drawbridge_platform::list_statements(&[
        ("consumer", consumer::STATEMENTS),
        ("relay", relay::STATEMENTS),
        ("sweeper", sweeper::STATEMENTS),
    ])
}

/// Why one send did not go through. What matters for the next attempt is whether the provider
/// may have taken the message: only then must it be asked before the message goes out again.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The provider certainly did not take it (a 429, a refused connection, a 4xx reply from
    /// the mail server): send again later, no questions asked.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The provider may have taken it and its answer was lost (a timeout after the request was
    /// written, a 5xx, a connection cut mid-answer): ask it, if it can be asked, before sending
    /// again.
    #[error("in doubt: {0}")]
    InDoubt(String),
    /// Trying again cannot help: a rejected number, bad credentials.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// What a provider says when asked whether it already has a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// It has: the provider's id of the message.
    Found(String),
    NotFound,
    /// It cannot be asked (no message list, or a transport without one, like SMTP): why.
    Unavailable(String),
}

/// Why a relay or consumer loop stopped; the supervisor reconnects after any of them.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("broker: {0}")]
    Broker(String),
    #[error("unroutable: {0}")]
    Unroutable(String),
}

/// Where each channel's messages go, and how its messages in flight are treated.
pub struct Transports {
    sms: SmsTransport,
    email: EmailTransport,
    sms_in_flight: InFlight,
    email_in_flight: InFlight,
}

/// How one channel's messages in flight are treated.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// What to do with a message in doubt that cannot be looked up.
    in_doubt: InDoubt,
    /// How long one attempt's request may take (SMTP: each step of the conversation).
    timeout: Duration,
}

enum SmsTransport {
    Twilio(TwilioClient),
    Sink(Arc<FileSink>),
}

enum EmailTransport {
    Smtp(SmtpMailer),
    Sink(Arc<FileSink>),
}

impl Transports {
    fn from_settings(settings: &NotifierSettings) -> Result<Self, String> {
        let sink = FileSink::open(&settings.sink_file).map_err(|e| format!("notifier.sink_file: {e}"))?;
        let sink = Arc::new(sink);
        let sms = match settings.sms.provider {
            SmsProvider::File => SmsTransport::Sink(sink.clone()),
            SmsProvider::Twilio => SmsTransport::Twilio(
                TwilioClient::new(&settings.sms).map_err(|e| format!("notifier.sms: {e}"))?,
            ),
        };
        let email = match settings.email.provider {
            EmailProvider::File => EmailTransport::Sink(sink),
            EmailProvider::Smtp => {
                EmailTransport::Smtp(SmtpMailer::new(&settings.email, settings.concurrency)?)
            }
        };
        Ok(Transports {
            sms,
            email,
            sms_in_flight: InFlight {
                in_doubt: settings.sms.in_doubt,
                timeout: Duration::from_secs(settings.sms.timeout_seconds),
            },
            email_in_flight: InFlight {
                in_doubt: settings.email.in_doubt,
                timeout: Duration::from_secs(settings.email.timeout_seconds),
            },
        })
    }

    fn in_flight(&self, channel: Channel) -> InFlight {
        match channel {
            Channel::Sms => self.sms_in_flight,
            Channel::Email => self.email_in_flight,
        }
    }

    /// Whether the provider already has a message in doubt. Only the SMS API can be asked;
    /// SMTP and the file sink cannot.
    async fn find_sent(&self, channel: Channel, to: &str, message: &Rendered) -> Result<Lookup, String> {
        match (channel, &self.sms) {
            (Channel::Sms, SmsTransport::Twilio(client)) => client.find_sent(to, &message.sms).await,
            (Channel::Sms, SmsTransport::Sink(_)) => {
                Ok(Lookup::Unavailable("the file sink keeps no list to ask".into()))
            }
            (Channel::Email, _) => Ok(Lookup::Unavailable(
                "email cannot be looked up: SMTP has no way to ask".into(),
            )),
        }
    }

    /// Sends one message; an SMS request ends by `deadline` (see [`TwilioClient::send`]).
    async fn send(
        &self,
        channel: Channel,
        to: &str,
        message: &Rendered,
        deadline: tokio::time::Instant,
    ) -> Result<String, SendError> {
        match channel {
            Channel::Sms => match &self.sms {
                SmsTransport::Twilio(client) => client.send(to, &message.sms, deadline).await,
                SmsTransport::Sink(sink) => sink.deliver("sms", to, None, &message.sms),
            },
            Channel::Email => match &self.email {
                EmailTransport::Smtp(mailer) => mailer.send(to, message).await,
                EmailTransport::Sink(sink) => {
                    sink.deliver("email", to, Some(&message.subject), &message.text)
                }
            },
        }
    }
}

pub struct Metrics {
    published: IntCounter,
    requeued: IntCounter,
    queue_messages: IntGaugeVec,
    reconciled: IntCounterVec,
    resent_in_doubt: IntCounterVec,
    waited: IntCounterVec,
    sent: IntCounterVec,
    duplicates: IntCounterVec,
    retried: IntCounterVec,
    dead: IntCounterVec,
    send_seconds: HistogramVec,
    send_batch_messages: Histogram,
    relay_seconds: Histogram,
}

impl Metrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let by_kind =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["channel", "kind"]);
        let metrics = Metrics {
            published: IntCounter::new("outbox_published_total", "Outbox rows published to RabbitMQ")?,
            requeued: IntCounter::new(
                "messages_requeued_total",
                "Messages found stranded in flight and published again",
            )?,
            queue_messages: IntGaugeVec::new(
                Opts::new("queue_messages", "Messages waiting in each RabbitMQ queue"),
                &["queue"],
            )?,
            sent: by_kind("messages_sent_total", "Messages handed to a provider or sink")?,
            duplicates: by_kind(
                "messages_duplicate_total",
                "Redelivered messages recognised as already sent",
            )?,
            retried: by_kind(
                "messages_retried_total",
                "Temporary send failures scheduled for retry",
            )?,
            dead: by_kind("messages_dead_total", "Messages given up on and dead-lettered")?,
            reconciled: by_kind(
                "messages_reconciled_total",
                "In-doubt messages found at the provider, so not sent again",
            )?,
            resent_in_doubt: by_kind(
                "messages_resent_in_doubt_total",
                "In-doubt messages sent again because the provider cannot be asked: possible duplicates",
            )?,
            waited: by_kind(
                "messages_waited_total",
                "Redelivered messages put back until an earlier attempt is settled at the provider",
            )?,
            send_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "send_duration_seconds",
                    "Time a provider takes to accept a message",
                ),
                &["channel"],
            )?,
            send_batch_messages: Histogram::with_opts(
                HistogramOpts::new(
                    "send_batch_messages",
                    "Messages one consumer batch carried (claimed, sent and recorded together)",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            )?,
            relay_seconds: Histogram::with_opts(HistogramOpts::new(
                "relay_batch_duration_seconds",
                "Time to publish one outbox batch with confirms",
            ))?,
        };
        registry.register(Box::new(metrics.published.clone()))?;
        registry.register(Box::new(metrics.requeued.clone()))?;
        registry.register(Box::new(metrics.queue_messages.clone()))?;
        registry.register(Box::new(metrics.sent.clone()))?;
        registry.register(Box::new(metrics.duplicates.clone()))?;
        registry.register(Box::new(metrics.reconciled.clone()))?;
        registry.register(Box::new(metrics.resent_in_doubt.clone()))?;
        registry.register(Box::new(metrics.waited.clone()))?;
        registry.register(Box::new(metrics.retried.clone()))?;
        registry.register(Box::new(metrics.dead.clone()))?;
        registry.register(Box::new(metrics.send_seconds.clone()))?;
        registry.register(Box::new(metrics.send_batch_messages.clone()))?;
        registry.register(Box::new(metrics.relay_seconds.clone()))?;
        Ok(metrics)
    }
}

pub struct Notifier {
    ops: JoinHandle<std::io::Result<()>>,
    address: SocketAddr,
    tasks: JoinSet<()>,
}

impl Notifier {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Runs until the shutdown token given to `build` is cancelled and in-flight sends finish.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        while self.tasks.join_next().await.is_some() {}
        self.ops.await.map_err(std::io::Error::other)?
    }
}

/// How often the relay reads the queues' depths for `/metrics`.
const QUEUE_DEPTH_EVERY: Duration = Duration::from_secs(5);

/// Pause before reconnecting after the broker or database dropped us.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

pub async fn build(settings: &Settings, shutdown: CancellationToken) -> Result<Notifier, StartupError> {
    let pool = postgres::connect_and_migrate(&settings.database).await?;
    let topology = Topology::new(&settings.amqp, &settings.notifier.retry_delays_seconds);
    // Declaring at start-up means a misconfigured broker fails loudly here, not later.
    let connection = amqp::connect(&settings.amqp).await?;
    let declared = async {
        let channel = connection.create_channel().await?;
        topology.declare(&channel).await?;
        connection.close(200, "topology declared").await
    };
    declared.await.map_err(|e| StartupError::Unreachable {
        service: "RabbitMQ",
        target: drawbridge_platform::retry::redact_url(settings.amqp.url.expose_secret()),
        waited_seconds: 0,
        detail: format!("declaring the topology failed: {e}"),
    })?;
    let keys = settings.secrets.personal_data_keys()?;
    let transports = Transports::from_settings(&settings.notifier)
        .map_err(|message| StartupError::Config(drawbridge_platform::ConfigError::Invalid(message)))?;

    let registry = Registry::new_custom(Some("drawbridge_notifier".into()), None).expect("valid prefix");
    let metrics = Arc::new(Metrics::register(&registry).expect("metrics register once"));
    let broker_up = Arc::new(AtomicBool::new(false));
    let readiness = {
        let broker_up = broker_up.clone();
        Readiness::new()
            .postgres(pool.clone())
            .probe("rabbitmq", move || {
                let up = broker_up.load(Ordering::Relaxed);
                async move {
                    if up {
                        Ok(())
                    } else {
                        Err("not connected".to_owned())
                    }
                }
            })
    };
    let listener = ops::bind(settings.notifier.listen)?;
    let address = listener.local_addr().map_err(|error| StartupError::Bind {
        address: settings.notifier.listen,
        error,
    })?;
    let metrics_access = ops::MetricsAccess::internal(&settings.telemetry.metrics_token);
    let ops_server = ops::serve(listener, readiness, registry, metrics_access, shutdown.clone())
        .map_err(|error| StartupError::Bind { address, error })?;

    let consumer = Arc::new(Consumer {
        pool: pool.clone(),
        topology: topology.clone(),
        transports: Arc::new(transports),
        templates: Templates::new(),
        metrics: metrics.clone(),
        concurrency: settings.notifier.concurrency,
        batches: settings.notifier.send_batches(),
        prefetch: settings.amqp.prefetch,
        grace: Duration::from_secs(settings.notifier.in_doubt_grace_seconds),
        hash_key: settings.secrets.hash_key().map_err(StartupError::Config)?,
        keys: keys.clone(),
    });
    let mut tasks = JoinSet::new();
    // Several relay workers overlap one batch's wait for confirms and commit with the next
    // batch; `FOR UPDATE SKIP LOCKED` keeps them on different rows.
    for _ in 0..settings.notifier.relay_workers {
        tasks.spawn(run_relay(
            settings.clone(),
            keys.clone(),
            pool.clone(),
            topology.clone(),
            metrics.clone(),
            broker_up.clone(),
            shutdown.clone(),
        ));
    }
    tasks.spawn(run_consumer(settings.clone(), consumer, shutdown.clone()));
    tasks.spawn(run_sweeper(
        settings.notifier.clone(),
        pool,
        metrics,
        shutdown.clone(),
    ));
    tracing::info!(%address, "notifier running");
    Ok(Notifier {
        ops: ops_server,
        address,
        tasks,
    })
}

/// Keeps a relay connected and publishing until shutdown.
async fn run_relay(
    settings: Settings,
    keys: PersonalDataKeys,
    pool: PgPool,
    topology: Topology,
    metrics: Arc<Metrics>,
    broker_up: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let idle = Duration::from_millis(settings.notifier.relay_idle_millis);
    while !shutdown.is_cancelled() {
        let session = async {
            let connection = amqp::connect_once(&settings.amqp).await?;
            let channel = connection.create_channel().await?;
            Relay::enable_confirms(&channel).await?;
            broker_up.store(true, Ordering::Relaxed);
            let relay = Relay {
                pool: &pool,
                keys: &keys,
                amqp: &channel,
                topology: &topology,
                metrics: &metrics,
                batch: settings.notifier.relay_batch,
            };
            let mut depths_read: Option<std::time::Instant> = None;
            loop {
                if depths_read.is_none_or(|at| at.elapsed() >= QUEUE_DEPTH_EVERY) {
                    for (queue, depth) in topology.depths(&channel).await? {
                        metrics
                            .queue_messages
                            .with_label_values(&[&queue])
                            .set(depth.into());
                    }
                    depths_read = Some(std::time::Instant::now());
                }
                let timer = metrics.relay_seconds.start_timer();
                let published = relay.publish_batch().await?;
                if published == 0 {
                    timer.stop_and_discard();
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(idle) => {}
                    }
                } else {
                    timer.observe_duration();
                }
                if shutdown.is_cancelled() {
                    break;
                }
            }
            let _ = connection.close(200, "shutdown").await;
            Ok::<(), NotifierError>(())
        };
        if let Err(error) = session.await {
            broker_up.store(false, Ordering::Relaxed);
            tracing::warn!(%error, "outbox relay interrupted; reconnecting");
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(RECONNECT_DELAY) => {}
            }
        }
    }
}

/// Publishes stranded messages again every `sweep_every_seconds` until shutdown.
async fn run_sweeper(
    settings: NotifierSettings,
    pool: PgPool,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let every = Duration::from_secs(settings.sweep_every_seconds);
    let stranded_after = Duration::from_secs(settings.stranded_after_seconds);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        match sweeper::requeue_stranded(&pool, stranded_after).await {
            Ok(0) => {}
            Ok(requeued) => {
                tracing::warn!(requeued, "messages stranded in flight published again");
                metrics.requeued.inc_by(requeued);
            }
            Err(error) => tracing::warn!(%error, "sweeping stranded messages failed; trying again later"),
        }
    }
}

/// Keeps the consumer connected until shutdown.
async fn run_consumer(settings: Settings, consumer: Arc<Consumer>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let session = async {
            let connection = amqp::connect_once(&settings.amqp).await?;
            let amqp_channel = connection.create_channel().await?;
            amqp_channel.confirm_select(Default::default()).await?;
            consumer.clone().run(amqp_channel, shutdown.clone()).await?;
            let _ = connection.close(200, "shutdown").await;
            Ok::<(), NotifierError>(())
        };
        if let Err(error) = session.await {
            tracing::warn!(%error, "consumer interrupted; reconnecting");
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(RECONNECT_DELAY) => {}
            }
        }
    }
}
