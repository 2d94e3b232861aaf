//! Failure counters shared by all gateways through Redis: booking-code guesses and staff
//! logins. Only failures count, so a person who gets it right is never slowed down; the window
//! starts at the first failure and later failures do not extend it.

use deadpool_redis::redis;

use crate::error::ApiError;
use crate::AppState;

/// A set of counters checked and counted together, e.g. per client address and per code.
pub struct FailureLimit<'a> {
    state: &'a AppState,
    keys: Vec<(String, i64)>,
    window_seconds: i64,
    refusal: &'static str,
}

impl<'a> FailureLimit<'a> {
    /// `counters` are `(name, limit)`; names are scoped by the deployment's key prefix.
    /// `refusal` is the message of the 429 once a limit is reached.
    pub fn new(
        state: &'a AppState,
        counters: &[(String, i64)],
        window_seconds: i64,
        refusal: &'static str,
    ) -> FailureLimit<'a> {
        let base = &state.redis_prefix;
        FailureLimit {
            state,
            keys: counters
                .iter()
                .map(|(name, limit)| (format!("{base}:{name}"), *limit))
                .collect(),
            window_seconds,
            refusal,
        }
    }

    /// 429 with `Retry-After` if any counter is at its limit.
    pub async fn check(&self) -> Result<(), ApiError> {
        let mut connection = self.connection().await?;
        let mut pipe = redis::pipe();
        for (key, _) in &self.keys {
            pipe.get(key).ttl(key);
        }
        let answers: Vec<(Option<i64>, i64)> = pipe
            .query_async::<Vec<Option<i64>>>(&mut *connection)
            .await
            .map_err(redis_error)?
            .chunks(2)
            .map(|pair| (pair[0], pair[1].unwrap_or(-1)))
            .collect();
        for ((_, limit), (count, ttl)) in self.keys.iter().zip(answers) {
            if count.unwrap_or(0) >= *limit {
                return Err(ApiError::TooManyRequests {
                    message: self.refusal.into(),
                    retry_after_seconds: ttl.max(1) as u64,
                });
            }
        }
        Ok(())
    }

    /// Counts one failure on every counter.
    pub async fn count_failure(&self) -> Result<(), ApiError> {
        let mut connection = self.connection().await?;
        let mut pipe = redis::pipe();
        for (key, _) in &self.keys {
            pipe.incr(key, 1)
                .ignore()
                .cmd("EXPIRE")
                .arg(key)
                .arg(self.window_seconds)
                .arg("NX")
                .ignore();
        }
        pipe.query_async::<()>(&mut *connection)
            .await
            .map_err(redis_error)
    }

    async fn connection(&self) -> Result<deadpool_redis::Connection, ApiError> {
        self.state
            .redis
            .get()
            .await
            .map_err(|e| ApiError::Internal(format!("Redis: {e}")))
    }
}

fn redis_error(error: redis::RedisError) -> ApiError {
    ApiError::Internal(format!("Redis: {error}"))
}
