//! Failure counters shared by all gateways through Redis: booking-code guesses and staff
//! logins. Only failures count, so a person who gets it right is never slowed down; the window
//! starts at the first failure and later failures do not extend it.

use deadpool_redis::redis;

use crate::error::ApiError;

/// The Redis counters of this deployment (names scoped by its key prefix).
pub struct Limits {
    redis: deadpool_redis::Pool,
    prefix: String,
}

impl Limits {
    pub fn new(redis: deadpool_redis::Pool, prefix: String) -> Self {
        Limits { redis, prefix }
    }

    /// Counters checked and counted together, e.g. per client address and per code:
    /// `counters` are `(name, limit)`; `refusal` is the message of the 429 once a limit is
    /// reached.
    pub fn failures(
        &self,
        counters: &[(String, i64)],
        window_seconds: i64,
        refusal: &'static str,
    ) -> FailureLimit<'_> {
        FailureLimit {
            redis: &self.redis,
            keys: counters
                .iter()
                .map(|(name, limit)| (format!("{}:{name}", self.prefix), *limit))
                .collect(),
            window_seconds,
            refusal,
        }
    }
}

/// A set of counters checked and counted together.
pub struct FailureLimit<'a> {
    redis: &'a deadpool_redis::Pool,
    keys: Vec<(String, i64)>,
    window_seconds: i64,
    refusal: &'static str,
}

impl FailureLimit<'_> {
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
                return Err(ApiError::too_many(self.refusal, ttl.max(1) as u64));
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
        self.redis.get().await.map_err(ApiError::internal)
    }
}

fn redis_error(error: redis::RedisError) -> ApiError {
    ApiError::internal(error)
}
