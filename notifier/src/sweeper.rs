//! The sweeper: a backstop for messages the broker loses. A delivery in flight (`sending` or
//! `waiting`) is due back in a consumer's hands at `next_attempt_at`; one still in flight
//! `stranded_after_seconds` later was lost (a broker restart, a purged queue, a queue that
//! dropped it). The sweeper marks its outbox row unpublished, so the relay publishes it again
//! with confirms, and the consumer treats the copy like any other: the delivery record
//! decides whether it is sent, looked up first, or recognised as done. Every notifier sweeps:
//! rows are claimed with `SKIP LOCKED` and the condition is checked again under the lock, so
//! each stranded message is published again once, and a second copy would still be sent once.

use std::time::Duration;

use sqlx::PgPool;

use drawbridge_platform::statements;

statements! {
    REQUEUE = "
    WITH stranded AS (
        SELECT outbox_id FROM deliveries
        WHERE finished_at IS NULL AND next_attempt_at < now() - make_interval(secs => $1)
        ORDER BY next_attempt_at LIMIT $2
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE deliveries d SET next_attempt_at = now()
        FROM stranded s WHERE d.outbox_id = s.outbox_id
        RETURNING d.outbox_id
    )
    UPDATE outbox o SET published_at = NULL FROM claimed c WHERE o.id = c.outbox_id";
}

/// The most rows one round publishes again; a larger loss takes a few rounds.
const SWEEP_BATCH: i64 = 1000;

/// Publishes again the messages stranded in flight; returns how many. Their next attempt is
/// due now, so a copy lost again is found again after another `stranded_after`.
pub async fn requeue_stranded(pool: &PgPool, stranded_after: Duration) -> Result<u64, sqlx::Error> {
    let requeued = sqlx::query(REQUEUE)
        .bind(stranded_after.as_secs_f64())
        .bind(SWEEP_BATCH)
        .execute(pool)
        .await?;
    Ok(requeued.rows_affected())
}
