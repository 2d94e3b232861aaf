//! Failure counters shared by all gateways through Redis: booking-code guesses and staff
//! logins. Only failures count, so a person who gets it right is never slowed down; the window
//! starts at the first failure and later failures do not extend it.
//!
//! While Redis cannot be reached, each gateway counts failures in its own memory instead,
//! against a quarter of each limit ([`LOCAL_SHARE`]): the gateways cannot see each other's
//! counts then, and four of them together still stay within the shared limit. Counts made here
//! keep refusing until their window ends, also once Redis is back. So an outage neither lifts a
//! limit nor fails a request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use prometheus::IntCounter;

use crate::error::ApiError;

/// Each gateway's share of a limit while Redis is away: a quarter, so that four gateways
/// together (deploy/docker-compose.yml runs three) stay within it; never less than one failure.
const LOCAL_SHARE: i64 = 4;
/// Counters one gateway keeps while Redis is away (about 100 bytes each). When they are all
/// in use and Redis is still away, requests whose counters are not among them are refused until
/// windows end: flooding the table with addresses must not buy unlimited guesses.
const LOCAL_COUNTERS: usize = 100_000;
/// How long a limit waits for Redis before counting here: a Redis that does not answer must
/// not hold every booking-code request.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// `Retry-After` while the local counters are all in use.
const FULL_RETRY_SECONDS: u64 = 60;

/// Why Redis did not answer a limit.
#[derive(Debug, thiserror::Error)]
enum Unreachable {
    #[error("no connection: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The counters of this deployment (names scoped by its key prefix): in Redis, or here while
/// Redis is away.
pub struct Limits {
    redis: deadpool_redis::Pool,
    prefix: String,
    /// Counters kept here while Redis is away, by name.
    local: Mutex<HashMap<String, Window>>,
    /// Whether the last call to Redis failed; logged when it changes, not per request.
    redis_away: AtomicBool,
    /// Checks and counts made here because Redis could not be reached.
    counted_here: IntCounter,
}

/// A counter kept here.
struct Window {
    failures: i64,
    ends: Instant,
}

impl Limits {
    pub fn new(redis: deadpool_redis::Pool, prefix: String, counted_here: IntCounter) -> Self {
        Limits {
            redis,
            prefix,
            local: Mutex::default(),
            redis_away: AtomicBool::new(false),
            counted_here,
        }
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
            limits: self,
            keys: counters
                .iter()
                .map(|(name, limit)| (format!("{}:{name}", self.prefix), *limit))
                .collect(),
            window_seconds,
            refusal,
        }
    }

    /// Runs `call` on Redis within [`REDIS_TIMEOUT`]; `None` if Redis could not answer.
    async fn shared<T>(&self, call: impl Future<Output = Result<T, Unreachable>>) -> Option<T> {
        let answer = tokio::time::timeout(REDIS_TIMEOUT, call)
            .await
            .unwrap_or(Err(Unreachable::Timeout(REDIS_TIMEOUT)));
        match answer {
            Ok(value) => {
                if self.redis_away.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: failure limits are shared again");
                }
                Some(value)
            }
            Err(error) => {
                if !self.redis_away.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "Redis cannot be reached: failure limits are counted in this gateway, at a quarter of each limit");
                }
                self.counted_here.inc();
                None
            }
        }
    }

    fn local(&self) -> MutexGuard<'_, HashMap<String, Window>> {
        // A panic while the lock was held leaves whole counters behind: keep using them.
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A set of counters checked and counted together.
pub struct FailureLimit<'a> {
    limits: &'a Limits,
    keys: Vec<(String, i64)>,
    window_seconds: i64,
    refusal: &'static str,
}

impl FailureLimit<'_> {
    /// 429 with `Retry-After` if any counter is at its limit: in Redis, or here for the
    /// failures counted while Redis was away.
    pub async fn check(&self) -> Result<(), ApiError> {
        self.check_here()?;
        let Some(answers) = self.limits.shared(self.read_shared()).await else {
            return Ok(());
        };
        for ((_, limit), (count, ttl)) in self.keys.iter().zip(answers) {
            if count.unwrap_or(0) >= *limit {
                return Err(ApiError::too_many(self.refusal, ttl.max(1) as u64));
            }
        }
        Ok(())
    }

    /// Counts one failure on every counter, here if Redis cannot be reached.
    pub async fn count_failure(&self) {
        if self.limits.shared(self.count_shared()).await.is_none() {
            self.count_here();
        }
    }

    async fn read_shared(&self) -> Result<Vec<(Option<i64>, i64)>, Unreachable> {
        let mut connection = self.limits.redis.get().await?;
        let mut pipe = redis::pipe();
        for (key, _) in &self.keys {
            pipe.get(key).ttl(key);
        }
        Ok(pipe
            .query_async::<Vec<Option<i64>>>(&mut *connection)
            .await?
            .chunks(2)
            .map(|pair| (pair[0], pair[1].unwrap_or(-1)))
            .collect())
    }

    async fn count_shared(&self) -> Result<(), Unreachable> {
        let mut connection = self.limits.redis.get().await?;
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
        Ok(pipe.query_async::<()>(&mut *connection).await?)
    }

    /// The counters kept here, against this gateway's share of each limit.
    fn check_here(&self) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut local = self.limits.local();
        if local.is_empty() {
            return Ok(());
        }
        for (key, limit) in &self.keys {
            let live = local.get(key).filter(|window| window.ends > now);
            if let Some(window) = live.filter(|window| window.failures >= (limit / LOCAL_SHARE).max(1)) {
                let wait = window.ends.saturating_duration_since(now).as_secs().max(1);
                return Err(ApiError::too_many(self.refusal, wait));
            }
        }
        let away = self.limits.redis_away.load(Ordering::Relaxed);
        if away && local.len() >= LOCAL_COUNTERS && self.keys.iter().any(|(key, _)| !local.contains_key(key))
        {
            local.retain(|_, window| window.ends > now);
            if local.len() >= LOCAL_COUNTERS {
                return Err(ApiError::too_many(self.refusal, FULL_RETRY_SECONDS));
            }
        }
        Ok(())
    }

    fn count_here(&self) {
        let now = Instant::now();
        let window = Duration::from_secs(self.window_seconds.unsigned_abs());
        let mut local = self.limits.local();
        if local.len() >= LOCAL_COUNTERS {
            local.retain(|_, counter| counter.ends > now);
        }
        for (key, _) in &self.keys {
            let full = local.len() >= LOCAL_COUNTERS;
            match local.get_mut(key) {
                Some(counter) if counter.ends > now => counter.failures += 1,
                // Beyond the bound, `check_here` refuses whoever has no counter.
                None if full => {}
                _ => {
                    local.insert(
                        key.clone(),
                        Window {
                            failures: 1,
                            ends: now + window,
                        },
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Limits whose Redis never answers: nothing listens on port 1.
    fn without_redis() -> Limits {
        let pool = deadpool_redis::Config::from_url("redis://127.0.0.1:1")
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap();
        let counted_here = IntCounter::new("counted_here", "counted here").unwrap();
        Limits::new(pool, "test".into(), counted_here)
    }

    #[tokio::test]
    async fn without_redis_a_quarter_of_each_limit_is_counted_here() {
        let limits = without_redis();
        let guesses = limits.failures(&[("address".into(), 20), ("prefix".into(), 10)], 900, "wait");
        for _ in 0..2 {
            guesses.check().await.unwrap();
            guesses.count_failure().await;
        }
        // The prefix's share, 10 / 4, is used up; the address's, 5, is not.
        let refused = guesses.check().await.unwrap_err();
        assert_eq!(refused.code(), crate::error::ErrorCode::TooManyRequests);
        let other_prefix = limits.failures(&[("address".into(), 20), ("other".into(), 10)], 900, "wait");
        other_prefix.check().await.unwrap();
        assert_eq!(limits.counted_here.get(), 5);
    }

    #[tokio::test]
    async fn without_redis_and_with_every_counter_in_use_a_stranger_is_refused() {
        let limits = without_redis();
        let ends = Instant::now() + Duration::from_secs(900);
        limits.local().extend((0..LOCAL_COUNTERS).map(|n| {
            let window = Window { failures: 1, ends };
            (format!("test:address:{n}"), window)
        }));
        let known = limits.failures(&[("address:7".into(), 20)], 900, "wait");
        known.count_failure().await;
        known.check().await.unwrap();
        let stranger = limits.failures(&[("address:new".into(), 20)], 900, "wait");
        stranger.count_failure().await;
        assert_eq!(
            stranger.check().await.unwrap_err().code(),
            crate::error::ErrorCode::TooManyRequests,
            "a counter that could not be kept must not mean unlimited tries"
        );
    }
}
