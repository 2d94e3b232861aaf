//! Failure counters shared by all gateways through Redis: booking-code guesses, staff logins and
//! admin tokens. A counter of one target (an account, a code) counts a try, atomically, the
//! moment it arrives, before it is judged, and takes it back if it succeeds: tries sent at once
//! cannot all pass a check made before any of them was counted, and only failures stay counted.
//! A counter many people share (a client address) counts a try once it is judged wrong, so
//! people behind one address are never refused for each other's tries in flight. Windows start
//! at the first count and later ones do not extend them.

use deadpool_redis::redis;

use crate::error::ApiError;

/// The Redis counters of this deployment (names scoped by its key prefix).
pub struct Limits {
    redis: deadpool_redis::Pool,
    prefix: String,
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
    pub fn new(redis: deadpool_redis::Pool, prefix: String) -> Self {
        Limits { redis, prefix }
    }

    /// Counters checked and counted together, e.g. per client address and per code:
    /// `counters` are `(name, limit, counting)`; `refusal` is the message of the 429 once a
    /// limit is reached.
    pub fn failures(
        &self,
        counters: &[(String, i64, Counting)],
        window_seconds: i64,
        refusal: &'static str,
    ) -> FailureLimit<'_> {
        FailureLimit {
            redis: &self.redis,
            keys: counters
                .iter()
                .map(|(name, limit, counting)| (format!("{}:{name}", self.prefix), *limit, *counting))
                .collect(),
            window_seconds,
            refusal,
        }
    }
}

/// A set of counters checked and counted together.
pub struct FailureLimit<'a> {
    redis: &'a deadpool_redis::Pool,
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

/// KEYS: the counters. ARGV: the window in seconds. Counts one failure on each.
const FAILED: &str = r"
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[1], 'NX')
end
";

/// KEYS: the counters. Takes one count back from each counter still running.
const SUCCEEDED: &str = r"
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
";

impl FailureLimit<'_> {
    /// Before a try is judged: 429 with `Retry-After` if any counter is at its limit, else the
    /// try counts on the target counters.
    pub async fn attempt(&self) -> Result<(), ApiError> {
        let mut keys: Vec<&(String, i64, Counting)> = self.keys.iter().collect();
        keys.sort_by_key(|(_, _, counting)| *counting != Counting::Target);
        let targets = keys.iter().filter(|(_, _, c)| *c == Counting::Target).count();
        let mut connection = self.connection().await?;
        let retry_after: u64 = eval(ATTEMPT, keys.iter().map(|(key, _, _)| key))
            .arg(self.window_seconds)
            .arg(targets)
            .arg(keys.iter().map(|(_, limit, _)| limit).collect::<Vec<_>>())
            .query_async(&mut *connection)
            .await
            .map_err(redis_error)?;
        match retry_after {
            0 => Ok(()),
            seconds => Err(ApiError::too_many(self.refusal, seconds)),
        }
    }

    /// The try was wrong: it counts on the shared counters too (the targets' have it).
    pub async fn failed(&self) -> Result<(), ApiError> {
        let mut connection = self.connection().await?;
        eval(FAILED, self.counting(Counting::Shared))
            .arg(self.window_seconds)
            .query_async::<()>(&mut *connection)
            .await
            .map_err(redis_error)
    }

    /// The try succeeded: the target counters take it back. A failure here only leaves one
    /// failure too many counted, so it is logged, not answered.
    pub async fn succeeded(&self) {
        let taken_back = match self.connection().await {
            Ok(mut connection) => eval(SUCCEEDED, self.counting(Counting::Target))
                .query_async::<()>(&mut *connection)
                .await
                .map_err(redis_error),
            Err(error) => Err(error),
        };
        if let Err(error) = taken_back {
            tracing::warn!(%error, "a successful try stays counted as a failure");
        }
    }

    fn counting(&self, counting: Counting) -> impl Iterator<Item = &String> {
        self.keys
            .iter()
            .filter(move |(_, _, c)| *c == counting)
            .map(|(key, _, _)| key)
    }

    async fn connection(&self) -> Result<deadpool_redis::Connection, ApiError> {
        self.redis.get().await.map_err(ApiError::internal)
    }
}

/// `EVAL script` on `keys`. (Redis caches the compiled script by its text.)
fn eval<'k>(script: &str, keys: impl Iterator<Item = &'k String>) -> redis::Cmd {
    let keys: Vec<&String> = keys.collect();
    let mut command = redis::cmd("EVAL");
    command.arg(script).arg(keys.len()).arg(keys);
    command
}

fn redis_error(error: redis::RedisError) -> ApiError {
    ApiError::internal(error)
}
