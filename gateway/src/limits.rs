//! Failure counters shared by all gateways through Redis: booking-code guesses, staff logins and
//! admin tokens. A counter of one target (an account, a code) counts a try, atomically, the
//! moment it arrives, before it is judged, and takes it back if it succeeds: tries sent at once
//! cannot all pass a check made before any of them was counted, and only failures stay counted.
//! A counter many people share (a client address) counts a try once it is judged wrong, so
//! people behind one address are never refused for each other's tries in flight. Windows start
//! at the first count and later ones do not extend them.
//!
//! A target's counter that fills up with failures waits out its window, and each time it fills
//! again within a day it waits twice as long (15 minutes, 30, 60, ... up to a day): a guesser
//! who keeps trying slows down exponentially, while one right try clears the record.
//!
//! While Redis cannot be reached, each gateway counts in its own memory instead, the same way,
//! against a quarter of each limit ([`LOCAL_SHARE`]): the gateways cannot see each other's
//! counts then, and four of them together still stay within the shared limit. Counts made here
//! keep refusing until their window ends, also once Redis is back. So an outage neither lifts a
//! limit nor fails a request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use prometheus::{IntCounter, IntCounterVec};

use crate::error::ApiError;

/// Each gateway's share of a limit while Redis is away: a quarter, so that four gateways
/// together (deploy/docker-compose.yml runs three) stay within it; never less than one try.
const LOCAL_SHARE: i64 = 4;
/// Counters one gateway keeps while Redis is away (about 100 bytes each). When they are all
/// in use and Redis is still away, requests whose counters are not among them are refused until
/// windows end: flooding the table with addresses must not buy unlimited guesses.
const LOCAL_COUNTERS: usize = 100_000;
/// How long a limit waits for Redis's answer before counting here: a Redis that does not
/// answer must not hold every booking-code request, and one that is busy is not away.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// `Retry-After` while the local counters are all in use.
const FULL_RETRY_SECONDS: u64 = 60;

/// The longest wait of a target's counter that keeps filling up, and how long the number of
/// times it filled is remembered.
const LONGEST_WAIT_SECONDS: i64 = 24 * 60 * 60;

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
    /// Failed tries by credential, on every gateway: the guessing alarm. Limits work per
    /// target and address, so a guesser spread over many addresses shows here first.
    failed: IntCounterVec,
}

/// A counter kept here.
struct Window {
    tries: i64,
    ends: Instant,
}

/// What is being guessed, for the alarm metric of failed tries.
#[derive(Debug, Clone, Copy)]
pub enum Credential {
    BookingCode,
    StaffPassword,
    AdminToken,
}

impl Credential {
    fn label(self) -> &'static str {
        match self {
            Credential::BookingCode => "booking_code",
            Credential::StaffPassword => "staff_password",
            Credential::AdminToken => "admin_token",
        }
    }
}

/// Whose tries a counter counts, and so when it counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// One target, which one person tries: from the moment a try arrives.
    Target,
    /// Many people (a client address): once a try is judged wrong. Tries sent at once can pass
    /// such a counter together; the target's counter beside it holds.
    Shared,
}

impl Limits {
    pub fn new(
        redis: deadpool_redis::Pool,
        prefix: String,
        counted_here: IntCounter,
        failed: IntCounterVec,
    ) -> Self {
        Limits {
            redis,
            prefix,
            local: Mutex::default(),
            redis_away: AtomicBool::new(false),
            counted_here,
            failed,
        }
    }

    /// Counters checked and counted together, e.g. per client address and per code:
    /// `counters` are `(name, limit, counting)`; `refusal` is the message of the 429 once a
    /// limit is reached.
    pub fn failures(
        &self,
        credential: Credential,
        counters: &[(String, i64, Counting)],
        window_seconds: i64,
        refusal: &'static str,
    ) -> FailureLimit<'_> {
        let mut keys: Vec<(String, i64, Counting)> = counters
            .iter()
            .map(|(name, limit, counting)| (format!("{}:{name}", self.prefix), *limit, *counting))
            .collect();
        // The scripts take the targets' counters first.
        keys.sort_by_key(|(_, _, counting)| *counting != Counting::Target);
        FailureLimit {
            limits: self,
            credential: Some(credential),
            keys,
            window_seconds,
            refusal,
        }
    }

    /// A rate, not a guess: counts one use of each counter the moment it arrives, or answers
    /// 429 `refusal` if one is at its limit. Uses are never taken back.
    pub async fn rate(
        &self,
        counters: &[(String, i64)],
        window_seconds: i64,
        refusal: &'static str,
    ) -> Result<(), ApiError> {
        let keys = counters
            .iter()
            .map(|(name, limit)| (format!("{}:{name}", self.prefix), *limit, Counting::Target))
            .collect();
        FailureLimit {
            limits: self,
            credential: None,
            keys,
            window_seconds,
            refusal,
        }
        .attempt()
        .await
    }

    /// Runs `command` on Redis, waiting at most [`REDIS_TIMEOUT`] for its answer; `None` if
    /// Redis could not answer. Waiting for a pooled connection is not timed: in a burst that is
    /// queueing, not an outage, and a Redis that is down refuses new connections at once.
    async fn shared<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Option<T> {
        let answer: Result<T, Unreachable> = match self.redis.get().await {
            Err(error) => Err(error.into()),
            Ok(mut connection) => {
                match tokio::time::timeout(REDIS_TIMEOUT, command.query_async::<T>(&mut *connection)).await {
                    Ok(answer) => answer.map_err(Unreachable::from),
                    Err(_) => Err(Unreachable::Timeout(REDIS_TIMEOUT)),
                }
            }
        };
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
    /// What is being guessed; `None` for a rate.
    credential: Option<Credential>,
    /// The targets' counters first.
    keys: Vec<(String, i64, Counting)>,
    window_seconds: i64,
    refusal: &'static str,
}

/// KEYS: the counters, those of targets first. ARGV: the window in seconds, the number of
/// target counters, then each counter's limit. Answers 0 once the try is counted on the target
/// counters, or the seconds until the window of a counter at its limit ends (nothing counted).
const ATTEMPT: &str = r"
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 2]) then
    return math.max(redis.call('TTL', key), 1)
  end
end
for i = 1, tonumber(ARGV[2]) do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[1], 'NX')
end
return 0
";

/// KEYS: the counters, those of targets first. ARGV: the window in seconds, the number of
/// target counters, the longest wait, then each target counter's limit. Counts one failure on
/// each shared counter (the targets' have it). A target counter this failure filled is marked
/// (one over its limit, so it is marked once) and waits `window * 2^(n-1)` seconds, at most the
/// longest wait, where n counts its fillings within the longest wait.
const FAILED: &str = r"
local window, targets, longest = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  if i > targets then
    redis.call('INCR', key)
    redis.call('EXPIRE', key, window, 'NX')
  elseif tonumber(redis.call('GET', key) or '0') == tonumber(ARGV[i + 3]) then
    local filled = redis.call('INCR', key .. ':filled')
    redis.call('EXPIRE', key .. ':filled', longest)
    redis.call('INCR', key)
    redis.call('EXPIRE', key, math.floor(math.min(window * 2 ^ (filled - 1), longest)))
  end
end
";

/// KEYS: the target counters. Takes one count back from each counter still running, and
/// forgets how often it filled: whoever got it right holds the credential.
const SUCCEEDED: &str = r"
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
  redis.call('DEL', key .. ':filled')
end
";

impl FailureLimit<'_> {
    /// Before a try is judged: 429 with `Retry-After` if any counter is at its limit (in Redis,
    /// or here for the tries counted while Redis was away), else the try counts on the target
    /// counters.
    pub async fn attempt(&self) -> Result<(), ApiError> {
        self.check_here(&mut self.limits.local())?;
        let targets = self.counting(Counting::Target).count();
        let limits: Vec<i64> = self.keys.iter().map(|(_, limit, _)| *limit).collect();
        let mut command = eval(ATTEMPT, self.keys.iter().map(|(key, _, _)| key));
        command.arg(self.window_seconds).arg(targets).arg(limits);
        match self.limits.shared::<u64>(command).await {
            Some(0) => Ok(()),
            Some(seconds) => Err(ApiError::too_many(self.refusal, seconds)),
            None => {
                // Checked again and counted under one lock: tries that all timed out at once
                // must not all pass a check made before any of them was counted.
                let mut local = self.limits.local();
                self.check_here(&mut local)?;
                self.count_here(&mut local, Counting::Target);
                Ok(())
            }
        }
    }

    /// The try was wrong: it counts on the shared counters too (the targets' have it).
    pub async fn failed(&self) {
        if let Some(credential) = self.credential {
            self.limits.failed.with_label_values(&[credential.label()]).inc();
        }
        let targets = self.counting(Counting::Target).count();
        let limits: Vec<i64> = self.keys[..targets].iter().map(|(_, limit, _)| *limit).collect();
        let mut command = eval(FAILED, self.keys.iter().map(|(key, _, _)| key));
        command
            .arg(self.window_seconds)
            .arg(targets)
            .arg(LONGEST_WAIT_SECONDS)
            .arg(limits);
        if self.limits.shared::<()>(command).await.is_none() {
            self.count_here(&mut self.limits.local(), Counting::Shared);
        }
    }

    /// The try succeeded: the target counters take it back.
    pub async fn succeeded(&self) {
        let command = eval(SUCCEEDED, self.counting(Counting::Target));
        if self.limits.shared::<()>(command).await.is_none() {
            let mut local = self.limits.local();
            for key in self.counting(Counting::Target) {
                if let Some(window) = local.get_mut(key) {
                    window.tries = (window.tries - 1).max(0);
                }
            }
        }
    }

    fn counting(&self, counting: Counting) -> impl Iterator<Item = &String> {
        self.keys
            .iter()
            .filter(move |(_, _, c)| *c == counting)
            .map(|(key, _, _)| key)
    }

    /// The counters kept here, against this gateway's share of each limit.
    fn check_here(&self, local: &mut HashMap<String, Window>) -> Result<(), ApiError> {
        let now = Instant::now();
        if local.is_empty() {
            return Ok(());
        }
        for (key, limit, _) in &self.keys {
            let live = local.get(key).filter(|window| window.ends > now);
            if let Some(window) = live.filter(|window| window.tries >= (limit / LOCAL_SHARE).max(1)) {
                let wait = window.ends.saturating_duration_since(now).as_secs().max(1);
                return Err(ApiError::too_many(self.refusal, wait));
            }
        }
        let away = self.limits.redis_away.load(Ordering::Relaxed);
        if away
            && local.len() >= LOCAL_COUNTERS
            && self.keys.iter().any(|(key, _, _)| !local.contains_key(key))
        {
            local.retain(|_, window| window.ends > now);
            if local.len() >= LOCAL_COUNTERS {
                return Err(ApiError::too_many(self.refusal, FULL_RETRY_SECONDS));
            }
        }
        Ok(())
    }

    /// Counts one try here on the counters of one kind.
    fn count_here(&self, local: &mut HashMap<String, Window>, counting: Counting) {
        let now = Instant::now();
        let window = Duration::from_secs(self.window_seconds.unsigned_abs());
        if local.len() >= LOCAL_COUNTERS {
            local.retain(|_, counter| counter.ends > now);
        }
        for key in self.counting(counting) {
            let full = local.len() >= LOCAL_COUNTERS;
            match local.get_mut(key) {
                Some(counter) if counter.ends > now => counter.tries += 1,
                // Beyond the bound, `check_here` refuses whoever has no counter.
                None if full => {}
                _ => {
                    local.insert(
                        key.clone(),
                        Window {
                            tries: 1,
                            ends: now + window,
                        },
                    );
                }
            }
        }
    }
}

/// `EVAL script` on `keys`. (Redis caches the compiled script by its text.)
fn eval<'k>(script: &str, keys: impl Iterator<Item = &'k String>) -> redis::Cmd {
    let keys: Vec<&String> = keys.collect();
    let mut command = redis::cmd("EVAL");
    command.arg(script).arg(keys.len()).arg(keys);
    command
}

#[cfg(test)]
mod tests {
    use prometheus::Opts;

    use super::*;

    /// Limits whose Redis never answers: nothing listens on port 1.
    fn without_redis() -> Limits {
        let pool = deadpool_redis::Config::from_url("redis://127.0.0.1:1")
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap();
        let counted_here = IntCounter::new("counted_here", "counted here").unwrap();
        let failed = IntCounterVec::new(Opts::new("failed", "failed"), &["credential"]).unwrap();
        Limits::new(pool, "test".into(), counted_here, failed)
    }

    #[tokio::test]
    async fn without_redis_a_quarter_of_each_limit_is_counted_here() {
        let limits = without_redis();
        let counters = [
            ("address".into(), 20, Counting::Shared),
            ("prefix".into(), 10, Counting::Target),
        ];
        let guesses = limits.failures(Credential::BookingCode, &counters, 900, "wait");
        for _ in 0..2 {
            guesses.attempt().await.unwrap();
            guesses.failed().await;
        }
        // The prefix's share, 10 / 4, is used up; the address's, 5, is not.
        let refused = guesses.attempt().await.unwrap_err();
        assert_eq!(refused.code(), crate::error::ErrorCode::TooManyRequests);
        let other = [
            ("address".into(), 20, Counting::Shared),
            ("other".into(), 10, Counting::Target),
        ];
        limits
            .failures(Credential::BookingCode, &other, 900, "wait")
            .attempt()
            .await
            .unwrap();
        assert_eq!(limits.counted_here.get(), 5);
    }

    #[tokio::test]
    async fn without_redis_a_right_try_is_taken_back() {
        let limits = without_redis();
        let login = limits.failures(
            Credential::BookingCode,
            &[("user".into(), 8, Counting::Target)],
            900,
            "wait",
        );
        for _ in 0..5 {
            login.attempt().await.unwrap();
            login.succeeded().await;
        }
        login.attempt().await.unwrap();
    }

    #[tokio::test]
    async fn without_redis_and_with_every_counter_in_use_a_stranger_is_refused() {
        let limits = without_redis();
        let ends = Instant::now() + Duration::from_secs(900);
        limits.local().extend((0..LOCAL_COUNTERS).map(|n| {
            let window = Window { tries: 1, ends };
            (format!("test:address:{n}"), window)
        }));
        let known = limits.failures(
            Credential::BookingCode,
            &[("address:7".into(), 20, Counting::Shared)],
            900,
            "wait",
        );
        known.failed().await;
        known.attempt().await.unwrap();
        let stranger = limits.failures(
            Credential::BookingCode,
            &[("address:new".into(), 20, Counting::Shared)],
            900,
            "wait",
        );
        stranger.failed().await;
        assert_eq!(
            stranger.attempt().await.unwrap_err().code(),
            crate::error::ErrorCode::TooManyRequests,
            "a counter that could not be kept must not mean unlimited tries"
        );
    }
}
