//! Retention: every kind of data is removed once its time under `[retention]` is up, by
//! `drawbridge purge` and by every gateway's purge sweep. A person whose course is complete is
//! erased as on withdrawal; what is left of withdrawn and expired registrations (their messages
//! and code records) goes after its own time. Draw records and the pseudonymous rows they
//! refer to stay, so every published draw still replays.

use std::time::Duration;

use chrono::{DateTime, Utc};
use drawbridge_platform::config::RetentionSettings;
use drawbridge_platform::states::RegistrantStatus;
use prometheus::IntCounterVec;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::store::{registrants, retention};

/// A kind of data with a retention period of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    UnverifiedRegistrations,
    WithdrawnPeople,
    CompletedCourses,
    CancelledBookings,
    DeliveredMessages,
    StaffSessions,
    AuditEntries,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::UnverifiedRegistrations,
        Kind::WithdrawnPeople,
        Kind::CompletedCourses,
        Kind::CancelledBookings,
        Kind::DeliveredMessages,
        Kind::StaffSessions,
        Kind::AuditEntries,
    ];

    /// Its name in `[retention]` (without `_days`), in `drawbridge purge`'s output and in the
    /// `kind` label of the purged rows' counter.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UnverifiedRegistrations => "unverified_registrations",
            Kind::WithdrawnPeople => "withdrawn_people",
            Kind::CompletedCourses => "completed_courses",
            Kind::CancelledBookings => "cancelled_bookings",
            Kind::DeliveredMessages => "delivered_messages",
            Kind::StaffSessions => "staff_sessions",
            Kind::AuditEntries => "audit_entries",
        }
    }

    fn days(self, retention: &RetentionSettings) -> u32 {
        match self {
            Kind::UnverifiedRegistrations => retention.unverified_registrations_days,
            Kind::WithdrawnPeople => retention.withdrawn_people_days,
            Kind::CompletedCourses => retention.completed_courses_days,
            Kind::CancelledBookings => retention.cancelled_bookings_days,
            Kind::DeliveredMessages => retention.delivered_messages_days,
            Kind::StaffSessions => retention.staff_sessions_days,
            Kind::AuditEntries => retention.audit_entries_days,
        }
    }
}

/// Removes, as of `now`, everything whose retention is up; how many rows of each kind (people
/// for completed courses). A dry run does the same in a transaction it rolls back, so its
/// counts are exactly what a purge would remove.
pub async fn purge(
    pool: &PgPool,
    retention: &RetentionSettings,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<Vec<(Kind, u64)>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut purged = Vec::with_capacity(Kind::ALL.len());
    for kind in Kind::ALL {
        let before = now - chrono::Duration::days(kind.days(retention).into());
        let count = match kind {
            Kind::UnverifiedRegistrations => {
                retention::ended_registrations(&mut tx, RegistrantStatus::Expired, before).await?
            }
            Kind::WithdrawnPeople => {
                retention::ended_registrations(&mut tx, RegistrantStatus::Withdrawn, before).await?
            }
            Kind::CompletedCourses => {
                let people = retention::courses_completed(&mut tx, before).await?;
                for person in &people {
                    registrants::erase(&mut tx, *person).await?;
                }
                people.len() as u64
            }
            Kind::CancelledBookings => retention::cancelled_bookings(&mut tx, before).await?,
            Kind::DeliveredMessages => retention::delivered_messages(&mut tx, before).await?,
            Kind::StaffSessions => retention::staff_sessions(&mut tx, before).await?,
            Kind::AuditEntries => retention::audit_entries(&mut tx, before).await?,
        };
        purged.push((kind, count));
    }
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(purged)
}

/// Purges every `retention.purge_every_seconds` until `shutdown`, counting the rows by kind.
pub fn spawn(pool: PgPool, retention: RetentionSettings, purged: IntCounterVec, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(retention.purge_every_seconds));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match purge(&pool, &retention, Utc::now(), false).await {
                Ok(counts) => {
                    for (kind, count) in counts.into_iter().filter(|(_, count)| *count > 0) {
                        purged.with_label_values(&[kind.as_str()]).inc_by(count);
                        tracing::info!(kind = kind.as_str(), count, "purged: retention is up");
                    }
                }
                Err(error) => tracing::warn!(%error, "the purge failed; trying again at the next sweep"),
            }
        }
    });
}
