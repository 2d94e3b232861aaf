//! The allocator: seeded, recorded, replayable draws per region.
//!
//! Every `allocator.tick_seconds`, and sooner when at least `allocator.draw_when_freed` pairs
//! of a region became free, the allocator expires lapsed offers and runs one draw per region.
//! Only one process draws a region at a time (a Postgres advisory lock held for the draw's
//! transaction), so allocators can run on several machines: a second one finds the lock taken
//! and skips, and takes over as soon as the first dies and its connection (and lock) is gone.
//!
//! A tick that no draw could offer anything in (no open pairs, or nobody waiting who may take
//! one) is skipped and counted, and writes no draw.
//!
//! A draw: commit the seed's SHA-256 in its own transaction; read the pool and the free pairs;
//! run the pure draw of the domain library; write the record, the offers, the pairs' state and
//! the offer messages and reveal the seed, all in one transaction.

mod metrics;
mod pool;
mod record;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgListener;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use drawbridge_domain::allocation::draw::{self, DrawError, Seed};
use drawbridge_domain::{Keyring, Language};
use drawbridge_platform::ops::{self, Readiness};
use drawbridge_platform::outbox::{self, Appointment, Channel, Notification, Outgoing, Recipient};
use drawbridge_platform::{policies, postgres, Settings, StartupError};

use crate::metrics::Metrics;
pub use crate::pool::Skip;
use crate::record::{Notices, RecordError};

use drawbridge_platform::statements;

/// Every SQL statement of the allocator, for the schema check.
pub fn all_statements() -> Vec<(String, &'static str)> {
    drawbridge_platform::list_statements(&[
        ("allocator", STATEMENTS),
        ("pool", pool::STATEMENTS),
        ("record", record::STATEMENTS),
    ])
}

statements! {
    /// The region's free pairs, and whether anyone waits.
    DRAWABLE = concat!(
        "SELECT (SELECT count(*) FROM slot_pairs p JOIN centres c ON c.id = p.centre_id
                 WHERE c.region_id = $1 AND c.closed_at IS NULL AND p.state = 'open'
                   AND p.first_slot_at > now()),
                EXISTS (SELECT 1 FROM registrants r WHERE ",
        pool::waiting_registrants!(),
        ")"
    );
    REGIONS = "SELECT id, timezone FROM regions WHERE $1::text IS NULL OR id = $1 ORDER BY id";
    TRY_TICK_LOCK = "SELECT pg_try_advisory_xact_lock($1, hashtext($2))";
    FAIL_UNFINISHED_DRAWS = "UPDATE draws SET state = 'failed' WHERE region_id = $1 AND state = 'committed'";
    START_DRAW =
        "INSERT INTO draws (id, region_id, policy_version, state, seed_commitment, beacon_round, beacon_randomness)
         VALUES ($1, $2, $3, 'committed', $4, $5, $6)";
    COMPLETE_DRAW =
        "UPDATE draws SET state = 'completed', seed = $2, inputs_digest = $3, outputs_digest = $4,
                          manifest = $5, completed_at = clock_timestamp()
         WHERE id = $1";
    EXPIRE_OFFERS =
        "WITH lapsed AS (
             UPDATE offers o SET state = 'expired', answered_at = now()
             FROM slot_pairs p JOIN centres c ON c.id = p.centre_id
             WHERE o.slot_pair_id = p.id AND c.region_id = $1 AND o.state = 'pending' AND o.expires_at <= now()
             RETURNING o.id, o.slot_pair_id)
         UPDATE slot_pairs p SET state = 'open', offer_id = NULL
         FROM lapsed WHERE p.id = lapsed.slot_pair_id AND p.offer_id = lapsed.id";
    /// The region's pending offers with `$2` minutes or less left to answer, unless the whole
    /// window was that short: per channel their offer went out on and not yet reminded on, the
    /// registrant (`recipient_of`) with their current phone or email as stored (sealed) and the
    /// offer message's appointment.
    DUE_REMINDERS =
        "SELECT o.id, o.expires_at, m.channel, to_whom.recipient, r.id AS recipient_of, r.language,
                m.payload->'appointment' AS appointment
         FROM offers o
         JOIN slot_pairs p ON p.id = o.slot_pair_id
         JOIN centres c ON c.id = p.centre_id
         JOIN registrants r ON r.id = o.registrant_id
         JOIN outbox m ON m.kind = 'offer' AND m.subject_id = o.id
         CROSS JOIN LATERAL (SELECT CASE m.channel WHEN 'sms' THEN r.phone ELSE r.email END AS recipient) to_whom
         WHERE c.region_id = $1 AND o.state = 'pending' AND to_whom.recipient IS NOT NULL
           AND o.expires_at > now() AND o.expires_at <= now() + make_interval(mins => $2)
           AND o.expires_at - o.offered_at > make_interval(mins => $2)
           AND m.payload->'appointment' IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM outbox x
                           WHERE x.kind = 'offer_expiring' AND x.subject_id = o.id AND x.channel = m.channel)";
}

/// Namespace of the allocator's advisory locks (the first of the two-key form).
pub const LOCK_CLASS: i32 = 0x0d8a_0001;

/// The channel the slot-pair triggers announce freed pairs on (`<region> <count>`).
const FREED_CHANNEL: &str = "drawbridge_pairs_freed";

/// A public randomness value to seed a draw with instead of the operating system's.
#[derive(Debug, Clone)]
pub struct BeaconValue {
    pub round: u64,
    pub randomness: Vec<u8>,
}

/// What one tick did in one region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionTick {
    pub region: String,
    /// False when another allocator process holds the region this tick.
    pub ticked: bool,
    /// Pending offers that lapsed and freed their pairs.
    pub expired: u64,
    /// Reminder messages queued for pending offers about to lapse.
    pub reminded: u64,
    /// Open slot pairs whose first appointment is still ahead.
    pub free_pairs: i64,
    /// Why no draw ran although the region was held and has a policy: a draw could not have
    /// offered anyone anything (an empty draw would only add records).
    pub skipped: Option<Skip>,
    /// The draw run: `None` when another process held the region, the region has no policy,
    /// or the draw was skipped.
    pub draw: Option<DrawFigures>,
}

/// A draw's figures, also stored with it and exported as metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrawFigures {
    pub id: Uuid,
    pub drawn_at: DateTime<Utc>,
    /// Waiting eligible registrants in the draw.
    pub pool: usize,
    /// Waiting registrants who may not be offered anything today.
    pub ineligible: usize,
    pub free_pairs: usize,
    pub offers: usize,
    /// Pairs not offered, by reason.
    pub unmatched: HashMap<&'static str, usize>,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Policy(#[from] policies::PublishError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("the draw refused its inputs: {0}")]
    Draw(#[from] DrawError),
    #[error("region {region} has an unknown time zone {timezone:?}")]
    TimeZone { region: String, timezone: String },
}

/// The draws: what the allocator service and a one-shot tick share.
pub struct Allocator {
    pool: PgPool,
    metrics: Metrics,
    /// Served by [`Service`]; a one-shot tick serves nothing.
    registry: prometheus::Registry,
    tick_every: Duration,
    draw_when_freed: u64,
    hash_key: Vec<u8>,
    keyring: Keyring,
    public_url: String,
    shutdown: CancellationToken,
}

/// The allocator as a service: ticks on its timer and serves `/healthz`, `/readyz` and
/// `/metrics` on `allocator.listen`.
pub struct Service {
    allocator: Allocator,
    ops: JoinHandle<std::io::Result<()>>,
    address: SocketAddr,
}

/// Connects to Postgres (running migrations) and listens on nothing, so a one-shot tick
/// (`drawbridge allocator --once`) runs beside an allocator service that holds its port.
pub async fn connect(settings: &Settings, shutdown: CancellationToken) -> Result<Allocator, StartupError> {
    let pool = postgres::connect_and_migrate(&settings.database).await?;
    let (metrics, registry) = Metrics::new();
    Ok(Allocator {
        pool,
        metrics,
        registry,
        tick_every: Duration::from_secs(settings.allocator.tick_seconds),
        draw_when_freed: settings.allocator.draw_when_freed,
        hash_key: settings.secrets.hash_key()?,
        keyring: settings.secrets.keyring()?,
        public_url: settings.gateway.public_url.clone(),
        shutdown,
    })
}

/// [`connect`], then serves the operational endpoints on `allocator.listen`.
pub async fn build(settings: &Settings, shutdown: CancellationToken) -> Result<Service, StartupError> {
    let allocator = connect(settings, shutdown.clone()).await?;
    let listener = ops::bind(settings.allocator.listen)?;
    let address = listener.local_addr().map_err(|error| StartupError::Bind {
        address: settings.allocator.listen,
        error,
    })?;
    let ops = ops::serve(
        listener,
        Readiness::new().postgres(allocator.pool.clone()),
        allocator.registry.clone(),
        ops::MetricsAccess::internal(&settings.telemetry.metrics_token),
        shutdown,
    )
    .map_err(|error| StartupError::Bind { address, error })?;
    Ok(Service {
        allocator,
        ops,
        address,
    })
}

impl Service {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Ticks until shutdown, then waits for the operational endpoints to stop.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.allocator.tick_until_stopped().await;
        self.ops.await.map_err(std::io::Error::other)?
    }
}

impl Allocator {
    /// Ticks every `allocator.tick_seconds`, and draws a region early when enough of its pairs
    /// were freed, until shutdown. A failed tick is logged and the next one tries again: a
    /// database blip must not stop allocation for good.
    async fn tick_until_stopped(&self) {
        let mut interval = tokio::time::interval(self.tick_every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut freed = self.listen_for_freed_pairs().await;
        let mut freed_since_draw: HashMap<String, u64> = HashMap::new();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = interval.tick() => {
                    freed_since_draw.clear();
                    if let Err(error) = self.tick().await {
                        tracing::warn!(%error, "tick failed; retrying next tick");
                    }
                }
                notification = next_freed(&mut freed) => match notification {
                    Some((region, count)) => {
                        let total = freed_since_draw.entry(region.clone()).or_default();
                        *total += count;
                        if *total >= self.draw_when_freed {
                            freed_since_draw.remove(&region);
                            if let Err(error) = self.tick_regions(Some(&region), None).await {
                                tracing::warn!(%error, region, "early draw failed");
                            }
                        }
                    }
                    // The listener broke; ticks go on and the next loop listens afresh.
                    None => freed = self.listen_for_freed_pairs().await,
                },
            }
        }
    }

    async fn listen_for_freed_pairs(&self) -> Option<PgListener> {
        let listener = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(FREED_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listener.await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for freed pairs; drawing on the timer only");
                None
            }
        }
    }

    /// One tick over every region.
    pub async fn tick(&self) -> Result<Vec<RegionTick>, TickError> {
        self.tick_regions(None, None).await
    }

    /// One tick over every region, or only `only`; `beacon` seeds the draws instead of the
    /// operating system's randomness.
    pub async fn tick_regions(
        &self,
        only: Option<&str>,
        beacon: Option<&BeaconValue>,
    ) -> Result<Vec<RegionTick>, TickError> {
        let regions: Vec<(String, String)> = sqlx::query_as(REGIONS).bind(only).fetch_all(&self.pool).await?;
        let mut ticks = Vec::with_capacity(regions.len());
        for (region, timezone) in regions {
            let timezone: Tz = timezone.parse().map_err(|_| TickError::TimeZone {
                region: region.clone(),
                timezone,
            })?;
            let tick = self.tick_region(&region, timezone, beacon).await?;
            self.metrics.record_tick(&tick);
            ticks.push(tick);
        }
        self.metrics.ticks.inc();
        Ok(ticks)
    }

    #[tracing::instrument(skip(self, timezone, beacon))]
    async fn tick_region(
        &self,
        region: &str,
        timezone: Tz,
        beacon: Option<&BeaconValue>,
    ) -> Result<RegionTick, TickError> {
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
        let (ticked,): (bool,) = sqlx::query_as(TRY_TICK_LOCK)
            .bind(LOCK_CLASS)
            .bind(region)
            .fetch_one(&mut *tx)
            .await?;
        let mut tick = RegionTick {
            region: region.to_owned(),
            ticked,
            expired: 0,
            reminded: 0,
            free_pairs: 0,
            skipped: None,
            draw: None,
        };
        if !ticked {
            tracing::debug!("another allocator holds this region");
            return Ok(tick);
        }
        tick.expired = expire_offers(&mut tx, region).await?;
        // A draw left `committed` died before completing; under the lock nobody else is drawing.
        sqlx::query(FAIL_UNFINISHED_DRAWS)
            .bind(region)
            .execute(&mut *tx)
            .await?;
        // Whether anyone could be offered anything says nothing about who would be, so it may
        // be looked at before the seed is committed; the draw's inputs are read afresh after.
        let (free_pairs, anyone_waiting): (i64, bool) =
            sqlx::query_as(DRAWABLE).bind(region).fetch_one(&mut *tx).await?;
        tick.free_pairs = free_pairs;
        let policy = policies::current(&mut tx, region).await?;
        let notices = Notices {
            keyring: &self.keyring,
            public_url: &self.public_url,
            timezone: timezone.name(),
        };
        if let Some(policy) = &policy {
            let minutes = policy.policy.draw.remind_before_minutes;
            tick.reminded = remind_expiring(&mut tx, region, minutes, &notices).await?;
        }
        let Some(policy) = policy else {
            tx.commit().await?;
            tracing::debug!("the region has no policy");
            return Ok(tick);
        };
        tick.skipped = match (free_pairs, anyone_waiting) {
            (0, _) => Some(Skip::NoOpenPairs),
            (_, false) => Some(Skip::NoPossibleMatch),
            _ => {
                pool::skip(
                    &mut tx,
                    region,
                    &policy.policy,
                    timezone,
                    Utc::now(),
                    &self.hash_key,
                )
                .await?
            }
        };
        if let Some(skip) = tick.skipped {
            // Fair: a draw now would offer nobody anything whatever its seed, so not drawing
            // changes no one's chances, and the draw tables (which refuse DELETE) stay lean.
            tx.commit().await?;
            tracing::debug!(free_pairs, reason = skip.as_str(), "nothing to draw");
            return Ok(tick);
        }
        let seed = beacon.map_or_else(Seed::generate, |b| Seed::from_beacon(&b.randomness));
        let draw_id = Uuid::new_v4();
        // The commitment is committed on its own before any input is read.
        sqlx::query(START_DRAW)
            .bind(draw_id)
            .bind(region)
            .bind(policy.version as i32)
            .bind(seed.commitment().as_slice())
            .bind(beacon.map(|b| b.round as i64))
            .bind(beacon.map(|b| b.randomness.as_slice()))
            .execute(&self.pool)
            .await?;
        // Postgres keeps microseconds; the draw must see the time exactly as it is stored.
        let now = Utc::now();
        let drawn_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let pool = pool::load(
            &mut tx,
            region,
            &policy.policy,
            timezone,
            drawn_at,
            &self.hash_key,
        )
        .await?;
        let mut phases = Phases::start();
        phases.mark("load", started);
        let policy_digest: [u8; 32] = Sha256::digest(policy.document.as_bytes()).into();
        // The draw is CPU-bound (a second for a million people): off the async threads, with
        // the inputs digest hashed on a second core meanwhile.
        let (pool, outcome, keys, inputs_digest) = {
            let rules = policy.policy.clone();
            tokio::task::spawn_blocking(move || {
                let (drawn, inputs_digest) = std::thread::scope(|scope| {
                    let digest = scope.spawn(|| pool.input.digest(&policy_digest));
                    let drawn = draw::draw_with_keys(&rules, &seed, &pool.input);
                    (drawn, digest.join().expect("hashing does not panic"))
                });
                let (outcome, keys) = drawn?;
                Ok::<_, DrawError>((pool, outcome, keys, inputs_digest))
            })
            .await
            .expect("the draw does not panic")?
        };
        phases.mark_now("draw");
        record::candidates(&mut tx, draw_id, &pool, &keys).await?;
        phases.mark_now("record_candidates");
        record::decisions(&mut tx, draw_id, &pool, &outcome).await?;
        phases.mark_now("record_decisions");
        let offers = record::offers(&mut tx, draw_id, &policy.policy, &pool, &outcome, &notices).await?;
        phases.mark_now("offers");
        let mut unmatched = HashMap::new();
        for u in &outcome.unmatched {
            *unmatched.entry(u.reason.as_str()).or_default() += 1;
        }
        let figures = DrawFigures {
            id: draw_id,
            drawn_at,
            pool: pool.input.candidates.len(),
            ineligible: pool.ineligible,
            free_pairs: pool.input.pairs.len(),
            offers,
            unmatched,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        sqlx::query(COMPLETE_DRAW)
            .bind(draw_id)
            .bind(seed.as_bytes().as_slice())
            .bind(inputs_digest.as_slice())
            .bind(outcome.digest().as_slice())
            .bind(sqlx::types::Json(&figures))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        phases.mark_now("commit");
        self.metrics.record(region, &figures, started.elapsed());
        tracing::info!(
            draw = %draw_id,
            pool = figures.pool,
            free_pairs = figures.free_pairs,
            offers,
            ineligible = figures.ineligible,
            unmatched = ?figures.unmatched,
            duration_ms = figures.duration_ms,
            phases_ms = ?phases.0,
            "draw completed"
        );
        tick.draw = Some(figures);
        Ok(tick)
    }
}

/// Milliseconds per phase of a draw, for the log: where a slow draw spends its time.
struct Phases(Vec<(&'static str, u128)>, Instant);

impl Phases {
    fn start() -> Phases {
        Phases(Vec::new(), Instant::now())
    }

    fn mark(&mut self, phase: &'static str, since: Instant) {
        self.0.push((phase, since.elapsed().as_millis()));
        self.1 = Instant::now();
    }

    fn mark_now(&mut self, phase: &'static str) {
        self.mark(phase, self.1);
    }
}

/// Lapses the region's pending offers whose time is up and frees their pairs; the registrants
/// are back in the pool for this very draw.
async fn expire_offers(connection: &mut PgConnection, region: &str) -> Result<u64, sqlx::Error> {
    let expired = sqlx::query(EXPIRE_OFFERS)
        .bind(region)
        .execute(connection)
        .await?
        .rows_affected();
    Ok(expired)
}

/// A reminder due, as [`DUE_REMINDERS`] reads it.
#[derive(sqlx::FromRow)]
struct DueReminder {
    id: Uuid,
    expires_at: DateTime<Utc>,
    channel: Channel,
    recipient: Vec<u8>,
    recipient_of: Uuid,
    language: String,
    appointment: Json<Appointment>,
}

/// Queues one reminder per channel for the region's pending offers with `minutes` or less left
/// to answer, unless the whole window was that short. The reminder repeats the offer's
/// appointment with a link of its own (the offer message's link is erased once it is sent) to
/// the registrant's current phone and email; once per offer and channel, under the region's
/// tick lock.
async fn remind_expiring(
    connection: &mut PgConnection,
    region: &str,
    minutes: u32,
    notices: &Notices<'_>,
) -> Result<u64, sqlx::Error> {
    if minutes == 0 {
        return Ok(0);
    }
    let due: Vec<DueReminder> = sqlx::query_as(DUE_REMINDERS)
        .bind(region)
        .bind(minutes as i32)
        .fetch_all(&mut *connection)
        .await?;
    let now = Utc::now();
    let reminders: Vec<Outgoing<'_>> = due
        .iter()
        .map(|offer| Outgoing {
            subject_id: offer.id,
            channel: offer.channel,
            recipient: Recipient {
                sealed: &offer.recipient,
                of: offer.recipient_of,
            },
            language: Language::parse(&offer.language).unwrap_or_default(),
            notification: Notification::OfferExpiring {
                appointment: offer.appointment.0.clone(),
                expires_at: offer.expires_at,
                accept_url: notices.accept_url(offer.id, now, offer.expires_at),
            },
        })
        .collect();
    outbox::copy_many(connection, &reminders).await?;
    Ok(reminders.len() as u64)
}

/// The next `<region> <count>` notification, or `None` when there is no working listener.
async fn next_freed(listener: &mut Option<PgListener>) -> Option<(String, u64)> {
    let Some(active) = listener else {
        return std::future::pending().await;
    };
    loop {
        match active.recv().await {
            Ok(notification) => {
                let payload = notification.payload();
                if let Some((region, count)) = payload.rsplit_once(' ') {
                    if let Ok(count) = count.parse() {
                        return Some((region.to_owned(), count));
                    }
                }
                tracing::warn!(payload, "ignoring a malformed freed-pairs notification");
            }
            Err(error) => {
                tracing::warn!(%error, "freed-pairs listener failed");
                *listener = None;
                return None;
            }
        }
    }
}
