//! The allocator's Prometheus metrics: per region and draw.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::{DrawFigures, RegionTick};

pub struct Metrics {
    pub ticks: IntCounter,
    draws: IntCounterVec,
    skipped: IntCounterVec,
    pool: IntGaugeVec,
    ineligible: IntGaugeVec,
    free_pairs: IntGaugeVec,
    offers: IntCounterVec,
    expired: IntCounterVec,
    reminded: IntCounterVec,
    unmatched: IntCounterVec,
    duration: Histogram,
}

impl Metrics {
    pub fn new() -> (Metrics, Registry) {
        let registry = Registry::new_custom(Some("drawbridge_allocator".into()), None).expect("valid prefix");
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["region"]).expect("valid metric")
        };
        let metrics = Metrics {
            ticks: IntCounter::new("ticks_total", "Allocator ticks run").expect("valid metric"),
            draws: IntCounterVec::new(Opts::new("draws_total", "Draws completed"), &["region"])
                .expect("valid metric"),
            skipped: IntCounterVec::new(
                Opts::new(
                    "draws_skipped_total",
                    "Ticks that drew nothing because no draw could offer anything, by reason",
                ),
                &["region", "reason"],
            )
            .expect("valid metric"),
            pool: gauge("pool_size", "Waiting eligible registrants in the last draw"),
            ineligible: gauge(
                "ineligible_waiting",
                "Waiting registrants not eligible on the last draw's day",
            ),
            free_pairs: gauge("free_slot_pairs", "Free slot pairs in the last draw"),
            offers: IntCounterVec::new(Opts::new("offers_total", "Offers made by draws"), &["region"])
                .expect("valid metric"),
            expired: IntCounterVec::new(
                Opts::new("offers_expired_total", "Pending offers that lapsed unanswered"),
                &["region"],
            )
            .expect("valid metric"),
            reminded: IntCounterVec::new(
                Opts::new(
                    "offer_reminders_total",
                    "Reminders queued for offers about to lapse",
                ),
                &["region"],
            )
            .expect("valid metric"),
            unmatched: IntCounterVec::new(
                Opts::new(
                    "unmatched_pairs_total",
                    "Free pairs a draw could not offer, by reason",
                ),
                &["region", "reason"],
            )
            .expect("valid metric"),
            duration: Histogram::with_opts(
                HistogramOpts::new("draw_duration_seconds", "Time from lock to commit of a draw")
                    .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0]),
            )
            .expect("valid metric"),
        };
        registry
            .register(Box::new(metrics.ticks.clone()))
            .expect("registers once");
        registry
            .register(Box::new(metrics.draws.clone()))
            .expect("registers once");
        registry
            .register(Box::new(metrics.skipped.clone()))
            .expect("registers once");
        registry
            .register(Box::new(metrics.pool.clone()))
            .expect("registers once");
        registry
            .register(Box::new(metrics.ineligible.clone()))
            .expect("registers once");
        registry
            .register(Box::new(metrics.free_pairs.clone()))
            .expect("registers once");
        registry
            .register(Box::new(metrics.offers.clone()))
            .expect("registers once");
        registry
            .register(Box::new(metrics.expired.clone()))
            .expect("registers once");
        registry
            .register(Box::new(metrics.reminded.clone()))
            .expect("registers once");
        registry
            .register(Box::new(metrics.unmatched.clone()))
            .expect("registers once");
        registry
            .register(Box::new(metrics.duration.clone()))
            .expect("registers once");
        (metrics, registry)
    }

    /// What a tick did besides drawing.
    pub fn record_tick(&self, tick: &RegionTick) {
        let region = [tick.region.as_str()];
        self.expired.with_label_values(&region).inc_by(tick.expired);
        self.reminded.with_label_values(&region).inc_by(tick.reminded);
        if let Some(skip) = tick.skipped {
            self.skipped
                .with_label_values(&[tick.region.as_str(), skip.as_str()])
                .inc();
        }
    }

    pub fn record(&self, region: &str, figures: &DrawFigures, elapsed: Duration) {
        self.draws.with_label_values(&[region]).inc();
        self.pool.with_label_values(&[region]).set(figures.pool as i64);
        self.ineligible
            .with_label_values(&[region])
            .set(figures.ineligible as i64);
        self.free_pairs
            .with_label_values(&[region])
            .set(figures.free_pairs as i64);
        self.offers
            .with_label_values(&[region])
            .inc_by(figures.offers as u64);
        for (reason, count) in &figures.unmatched {
            self.unmatched
                .with_label_values(&[region, reason])
                .inc_by(*count as u64);
        }
        self.duration.observe(elapsed.as_secs_f64());
    }
}
