//! The allocator: periodic ticks per region. Only one process ticks a region at a time (a
//! Postgres advisory lock held for the tick's transaction), so allocators can run on several
//! machines for availability. This walking skeleton measures each region's waiting pool and
//! free slot pairs every tick; the seeded, recorded draw plugs into `tick_region`.

use std::net::SocketAddr;
use std::time::Duration;

use prometheus::{IntCounter, IntGaugeVec, Opts, Registry};
use serde::Serialize;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use drawbridge_platform::ops::{self, Readiness};
use drawbridge_platform::{postgres, Settings, StartupError};

/// Namespace of the allocator's advisory locks (the first of the two-key form).
const LOCK_CLASS: i32 = 0x0d8a_0001;

/// What one tick saw in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionTick {
    pub region: String,
    /// False when another allocator process holds the region this tick.
    pub ticked: bool,
    /// Verified registrants without a pending offer or live booking.
    pub waiting: i64,
    /// Open slot pairs whose first appointment is still ahead.
    pub free_pairs: i64,
}

struct Metrics {
    ticks: IntCounter,
    waiting: IntGaugeVec,
    free_pairs: IntGaugeVec,
}

pub struct Allocator {
    pool: PgPool,
    metrics: Metrics,
    tick_every: Duration,
    shutdown: CancellationToken,
    ops: JoinHandle<std::io::Result<()>>,
    address: SocketAddr,
}

pub async fn build(settings: &Settings, shutdown: CancellationToken) -> Result<Allocator, StartupError> {
    let pool = postgres::connect_and_migrate(&settings.database).await?;
    let registry = Registry::new_custom(Some("drawbridge_allocator".into()), None).expect("valid prefix");
    let metrics = Metrics {
        ticks: IntCounter::new("ticks_total", "Allocator ticks run").expect("valid metric"),
        waiting: IntGaugeVec::new(
            Opts::new("waiting_registrants", "Waiting pool per region"),
            &["region"],
        )
        .expect("valid metric"),
        free_pairs: IntGaugeVec::new(
            Opts::new("free_slot_pairs", "Open future slot pairs per region"),
            &["region"],
        )
        .expect("valid metric"),
    };
    registry
        .register(Box::new(metrics.ticks.clone()))
        .expect("registers once");
    registry
        .register(Box::new(metrics.waiting.clone()))
        .expect("registers once");
    registry
        .register(Box::new(metrics.free_pairs.clone()))
        .expect("registers once");
    let listener = ops::bind(settings.allocator.listen)?;
    let address = listener.local_addr().map_err(|error| StartupError::Bind {
        address: settings.allocator.listen,
        error,
    })?;
    let ops_server = ops::serve(
        listener,
        Readiness::new().postgres(pool.clone()),
        registry,
        shutdown.clone(),
    )
    .map_err(|error| StartupError::Bind { address, error })?;
    Ok(Allocator {
        pool,
        metrics,
        tick_every: Duration::from_secs(settings.allocator.tick_seconds),
        shutdown,
        ops: ops_server,
        address,
    })
}

impl Allocator {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Ticks every `allocator.tick_seconds` until shutdown. A failed tick is logged and the
    /// next one tries again: a database blip must not stop allocation for good.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let mut interval = tokio::time::interval(self.tick_every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = interval.tick() => {
                    if let Err(error) = self.tick().await {
                        tracing::warn!(%error, "tick failed; retrying next tick");
                    }
                }
            }
        }
        self.ops.await.map_err(std::io::Error::other)?
    }

    /// One tick over every region (or only `region`).
    pub async fn tick(&self) -> Result<Vec<RegionTick>, sqlx::Error> {
        self.tick_regions(None).await
    }

    pub async fn tick_regions(&self, only: Option<&str>) -> Result<Vec<RegionTick>, sqlx::Error> {
        let regions: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM regions WHERE $1::text IS NULL OR id = $1 ORDER BY id")
                .bind(only)
                .fetch_all(&self.pool)
                .await?;
        let mut ticks = Vec::with_capacity(regions.len());
        for (region,) in regions {
            ticks.push(self.tick_region(&region).await?);
        }
        self.metrics.ticks.inc();
        Ok(ticks)
    }

    #[tracing::instrument(skip(self))]
    async fn tick_region(&self, region: &str) -> Result<RegionTick, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let (ticked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(region)
            .fetch_one(&mut *tx)
            .await?;
        if !ticked {
            tracing::debug!("another allocator holds this region");
            return Ok(RegionTick {
                region: region.to_owned(),
                ticked,
                waiting: 0,
                free_pairs: 0,
            });
        }
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM registrants r
             WHERE r.region_id = $1 AND r.status = 'active'
               AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.registrant_id = r.id AND o.state = 'pending')
               AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.registrant_id = r.id AND b.state <> 'cancelled')",
        )
        .bind(region)
        .fetch_one(&mut *tx)
        .await?;
        let (free_pairs,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM slot_pairs p JOIN centres c ON c.id = p.centre_id
             WHERE c.region_id = $1 AND p.state = 'open' AND p.first_slot_at > now()",
        )
        .bind(region)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.metrics.waiting.with_label_values(&[region]).set(waiting);
        self.metrics
            .free_pairs
            .with_label_values(&[region])
            .set(free_pairs);
        tracing::info!(waiting, free_pairs, "tick");
        Ok(RegionTick {
            region: region.to_owned(),
            ticked,
            waiting,
            free_pairs,
        })
    }
}
