//! Per-room Prometheus metrics on the gateway's registry. Counters of admissions and expiries
//! come from the process holding the controller lease; sum them over all gateways.

use prometheus::{GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct RoomMetrics {
    pub joined: IntCounterVec,
    pub queued: IntGaugeVec,
    pub admitted: IntCounterVec,
    pub active: IntGaugeVec,
    pub expired: IntCounterVec,
    pub rejected_tokens: IntCounterVec,
    pub admission_rate: GaugeVec,
    /// Joins sent to Redis in one call (see `RoomStore::join`).
    pub joins_per_call: Histogram,
}

impl RoomMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let room = &["room"];
        let metrics = RoomMetrics {
            joined: IntCounterVec::new(Opts::new("room_joined_total", "Tickets handed out"), room)?,
            queued: IntGaugeVec::new(
                Opts::new("room_queued", "Tickets handed out and not yet served"),
                room,
            )?,
            admitted: IntCounterVec::new(
                Opts::new("room_admitted_total", "Admissions (by the controller)"),
                room,
            )?,
            active: IntGaugeVec::new(
                Opts::new("room_active", "Admitted sessions that have not ended"),
                room,
            )?,
            expired: IntCounterVec::new(
                Opts::new(
                    "room_expired_total",
                    "Sessions that ended (reason=session) and places lost to idleness (reason=idle)",
                ),
                &["room", "reason"],
            )?,
            rejected_tokens: IntCounterVec::new(
                Opts::new("room_rejected_tokens_total", "Tokens refused, by error code"),
                &["room", "code"],
            )?,
            admission_rate: GaugeVec::new(
                Opts::new(
                    "room_admission_rate_per_minute",
                    "Places the queue advanced per minute, measured over the last minute",
                ),
                room,
            )?,
            joins_per_call: Histogram::with_opts(
                HistogramOpts::new("room_joins_per_call", "Joins sent to Redis in one call")
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
            )?,
        };
        registry.register(Box::new(metrics.joined.clone()))?;
        registry.register(Box::new(metrics.queued.clone()))?;
        registry.register(Box::new(metrics.admitted.clone()))?;
        registry.register(Box::new(metrics.active.clone()))?;
        registry.register(Box::new(metrics.expired.clone()))?;
        registry.register(Box::new(metrics.rejected_tokens.clone()))?;
        registry.register(Box::new(metrics.admission_rate.clone()))?;
        registry.register(Box::new(metrics.joins_per_call.clone()))?;
        Ok(metrics)
    }
}
