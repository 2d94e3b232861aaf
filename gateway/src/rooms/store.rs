//! The waiting rooms' state in Redis. Every key starts with `<redis.key_prefix>:`:
//!
//! | key | type | what |
//! |---|---|---|
//! | `rooms` | set | room names |
//! | `room:<r>:config` | string | the room's [`RoomConfig`] as JSON |
//! | `room:<r>:tickets` | string | the last ticket handed out (`INCR`) |
//! | `room:<r>:draws` | list | `first:count:seed:drawn_at` per draw |
//! | `room:<r>:advances` | list | `through:at` per advance of the serving counter |
//! | `room:<r>:dropped` | list | tickets that left or lost their place |
//! | `room:<r>:seen` | sorted set | waiting ticket → last poll (unix seconds) |
//! | `room:<r>:active` | sorted set | admitted ticket → end of its session |
//! | `room:<r>:challenge:<id>` | string | a proof-of-work challenge already used |
//! | `ratelimit:join:<ip>` | string | joins from one address in the current minute |
//! | `rooms:controller` | string | the admission controller's lease (holder id) |
//!
//! Lists only grow during an event, so gateways read them incrementally from where they were.
//! Everything a controller writes goes through scripts that first check its lease, so a
//! controller that lost its lease cannot write.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::thread::ThreadId;

use deadpool::managed::Manager as _;
use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::{self, Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};
use deadpool_redis::Pool;
use drawbridge_domain::{Advance, Draw, RoomConfig};

/// Why the room store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("room {room}: stored {what} cannot be read: {value:?}")]
    Corrupt {
        room: String,
        what: &'static str,
        value: String,
    },
}

/// What a join got from Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    Ticket(u64),
    /// Too many joins from this address; the window ends in this many seconds.
    RateLimited {
        retry_after_seconds: u64,
    },
    /// The proof-of-work challenge was used before.
    ChallengeReused,
}

/// A join's inputs beyond the room.
pub struct JoinRequest<'a> {
    pub ip: &'a str,
    pub limit_per_minute: u32,
    /// The highest ticket this gateway knows was handed out: if Redis lost recent writes (a
    /// restart without them on disk), the counter is moved past it so no ticket is reissued.
    pub floor: u64,
    pub challenge_id: Option<&'a str>,
    pub now: i64,
}

/// What changed in a room since a [`Cursor`].
#[derive(Debug, Default)]
pub struct Snapshot {
    pub config: Option<RoomConfig>,
    pub issued: u64,
    pub draws: Vec<Draw>,
    pub advances: Vec<Advance>,
    pub dropped: Vec<u64>,
    pub active: u64,
}

/// A room as operators see it: configuration, counters and every draw with its seed.
#[derive(Debug, serde::Serialize)]
pub struct Description {
    pub room: String,
    pub config: RoomConfig,
    pub tickets_issued: u64,
    pub serving: u64,
    pub active: u64,
    pub dropped: u64,
    pub draws: Vec<Draw>,
}

/// How far a gateway has read a room's lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub draws: usize,
    pub advances: usize,
    pub dropped: usize,
}

/// One controller step for a room, written atomically if the lease is still held and the
/// serving counter is still where the controller saw it.
pub struct Advancement<'a> {
    pub from: u64,
    pub through: u64,
    pub admitted: &'a [u64],
    pub dropped: &'a [u64],
    pub session_ends_at: i64,
    pub now: i64,
}

static JOIN: Script = Script::new(
    r"
local joins = redis.call('INCR', KEYS[3])
if joins == 1 then redis.call('EXPIRE', KEYS[3], 60) end
if joins > tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[3])
  if ttl < 0 then redis.call('EXPIRE', KEYS[3], 60); ttl = 60 end
  return {-1, ttl}
end
if ARGV[4] == '1' then
  if not redis.call('SET', KEYS[4], '1', 'NX', 'EX', 600) then return {-2, 0} end
end
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last < tonumber(ARGV[2]) then redis.call('SET', KEYS[1], ARGV[2]) end
local ticket = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], ARGV[3], ticket)
return {ticket, 0}
",
);

static LEASE: Script = Script::new(
    r"
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
);

/// KEYS: lease, tickets, draws. ARGV: holder, expected number of draws, first, seed, now.
static DRAW: Script = Script::new(
    r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('LLEN', KEYS[3]) ~= tonumber(ARGV[2]) then return -1 end
local issued = tonumber(redis.call('GET', KEYS[2]) or '0')
local count = math.max(issued - tonumber(ARGV[3]) + 1, 0)
redis.call('RPUSH', KEYS[3], ARGV[3] .. ':' .. count .. ':' .. ARGV[4] .. ':' .. ARGV[5])
return count
",
);

/// KEYS: lease, advances, active, seen, dropped. ARGV: holder, from, through, session end,
/// now, number admitted, admitted..., dropped...
static ADVANCE: Script = Script::new(
    r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local last = redis.call('LINDEX', KEYS[2], -1)
local serving = 0
if last then serving = tonumber(string.match(last, '^(%d+):')) end
if serving ~= tonumber(ARGV[2]) then return 0 end
local admitted = tonumber(ARGV[6])
for i = 7, 6 + admitted do
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[i])
  redis.call('ZREM', KEYS[4], ARGV[i])
end
for i = 7 + admitted, #ARGV do
  redis.call('RPUSH', KEYS[5], ARGV[i])
  redis.call('ZREM', KEYS[4], ARGV[i])
end
redis.call('RPUSH', KEYS[2], ARGV[3] .. ':' .. ARGV[5])
return 1
",
);

/// A Lua script: sent by its SHA-1 once Redis knows it, and by text again after a Redis
/// restart forgot it, so each call sends a few bytes instead of the whole script.
struct Script {
    text: &'static str,
    sha: OnceLock<String>,
}

impl Script {
    const fn new(text: &'static str) -> Script {
        Script {
            text,
            sha: OnceLock::new(),
        }
    }
}

/// The rooms' Redis adapter.
#[derive(Clone)]
pub struct RoomStore {
    pool: Pool,
    prefix: String,
    /// One multiplexed connection per thread, made by the pool's manager and shared by every
    /// request on that thread: concurrent joins are pipelined on it, there is no pool check (a
    /// `PING`) per call, and as each actix worker is a single-threaded runtime, the connection's
    /// driver runs beside the requests, so a call wakes no other thread.
    connections: Arc<RwLock<HashMap<ThreadId, MultiplexedConnection>>>,
}

/// A thread's connection as lent to one call: an error that breaks it makes the store forget
/// it, so the next call on that thread opens a fresh one (e.g. after a Redis restart).
struct Lent {
    connection: MultiplexedConnection,
    thread: ThreadId,
    connections: Arc<RwLock<HashMap<ThreadId, MultiplexedConnection>>>,
}

impl Lent {
    fn check<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(error) = &result {
            if error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error() {
                self.connections.write().expect("poisoned").remove(&self.thread);
            }
        }
        result
    }
}

impl ConnectionLike for Lent {
    fn req_packed_command<'a>(&'a mut self, command: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.connection.req_packed_command(command).await;
            self.check(result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self.connection.req_packed_commands(pipeline, offset, count).await;
            self.check(result)
        })
    }

    fn get_db(&self) -> i64 {
        self.connection.get_db()
    }
}

impl RoomStore {
    pub fn new(pool: Pool, prefix: &str) -> Self {
        RoomStore {
            pool,
            prefix: prefix.to_owned(),
            connections: Arc::default(),
        }
    }

    fn key(&self, room: &str, part: &str) -> String {
        format!("{}:room:{room}:{part}", self.prefix)
    }

    fn rooms_key(&self) -> String {
        format!("{}:rooms", self.prefix)
    }

    fn lease_key(&self) -> String {
        format!("{}:rooms:controller", self.prefix)
    }

    async fn connection(&self) -> Result<Lent, StoreError> {
        let thread = std::thread::current().id();
        let existing = self.connections.read().expect("poisoned").get(&thread).cloned();
        let connection = match existing {
            Some(connection) => connection,
            None => {
                let connection = self.pool.manager().create().await?;
                self.connections
                    .write()
                    .expect("poisoned")
                    .insert(thread, connection.clone());
                connection
            }
        };
        Ok(Lent {
            connection,
            thread,
            connections: self.connections.clone(),
        })
    }

    /// Runs `script` on `keys` with the arguments `args` adds.
    async fn run<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: impl Fn(&mut Cmd),
    ) -> Result<T, StoreError> {
        let connection = &mut self.connection().await?;
        let sha = match script.sha.get() {
            Some(sha) => sha.clone(),
            None => {
                let sha: String = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(script.text)
                    .query_async(connection)
                    .await?;
                script.sha.get_or_init(|| sha).clone()
            }
        };
        let command = |name: &str, script: &str| {
            let mut command = redis::cmd(name);
            command.arg(script).arg(keys.len()).arg(keys);
            args(&mut command);
            command
        };
        match command("EVALSHA", &sha).query_async(connection).await {
            Err(error) if error.kind() == redis::ErrorKind::NoScriptError => {
                Ok(command("EVAL", script.text).query_async(connection).await?)
            }
            result => Ok(result?),
        }
    }

    /// Creates or replaces a room's configuration; true if the room is new.
    pub async fn put_config(&self, room: &str, config: &RoomConfig) -> Result<bool, StoreError> {
        let json = serde_json::to_string(config).expect("room configs serialise");
        let (added, ()): (u64, ()) = redis::pipe()
            .atomic()
            .sadd(self.rooms_key(), room)
            .set(self.key(room, "config"), json)
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(added == 1)
    }

    pub async fn rooms(&self) -> Result<Vec<String>, StoreError> {
        let mut rooms: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.rooms_key())
            .query_async(&mut self.connection().await?)
            .await?;
        rooms.sort();
        Ok(rooms)
    }

    /// The room for operators; `None` if it does not exist.
    pub async fn describe(&self, room: &str) -> Result<Option<Description>, StoreError> {
        let (last_advance, dropped): (Option<String>, u64) = redis::pipe()
            .lindex(self.key(room, "advances"), -1)
            .llen(self.key(room, "dropped"))
            .query_async(&mut self.connection().await?)
            .await?;
        // Only the small lists are read whole; advances and drops are summarised above.
        let cursor = Cursor {
            draws: 0,
            advances: usize::MAX / 2,
            dropped: usize::MAX / 2,
        };
        let snapshot = self.snapshot(room, cursor).await?;
        let Some(config) = snapshot.config else {
            return Ok(None);
        };
        let serving = last_advance
            .as_deref()
            .and_then(parse_advance)
            .map_or(0, |a| a.through);
        Ok(Some(Description {
            room: room.to_owned(),
            config,
            tickets_issued: snapshot.issued,
            serving,
            active: snapshot.active,
            dropped,
            draws: snapshot.draws,
        }))
    }

    /// Everything about a room that changed since `cursor`.
    pub async fn snapshot(&self, room: &str, cursor: Cursor) -> Result<Snapshot, StoreError> {
        type Raw = (
            Option<String>,
            Option<u64>,
            Vec<String>,
            Vec<String>,
            Vec<u64>,
            u64,
        );
        let (config, issued, draws, advances, dropped, active): Raw = redis::pipe()
            .get(self.key(room, "config"))
            .get(self.key(room, "tickets"))
            .lrange(self.key(room, "draws"), cursor.draws as isize, -1)
            .lrange(self.key(room, "advances"), cursor.advances as isize, -1)
            .lrange(self.key(room, "dropped"), cursor.dropped as isize, -1)
            .zcard(self.key(room, "active"))
            .query_async(&mut self.connection().await?)
            .await?;
        let corrupt = |what, value: &str| StoreError::Corrupt {
            room: room.to_owned(),
            what,
            value: value.to_owned(),
        };
        let config = config
            .map(|json| serde_json::from_str(&json).map_err(|_| corrupt("config", &json)))
            .transpose()?;
        let draws = draws
            .iter()
            .map(|raw| parse_draw(raw).ok_or_else(|| corrupt("draw", raw)))
            .collect::<Result<_, _>>()?;
        let advances = advances
            .iter()
            .map(|raw| parse_advance(raw).ok_or_else(|| corrupt("advance", raw)))
            .collect::<Result<_, _>>()?;
        Ok(Snapshot {
            config,
            issued: issued.unwrap_or(0),
            draws,
            advances,
            dropped,
            active,
        })
    }

    pub async fn join(&self, room: &str, request: JoinRequest<'_>) -> Result<Joined, StoreError> {
        let challenge = request.challenge_id.unwrap_or("none");
        let keys = [
            self.key(room, "tickets"),
            self.key(room, "seen"),
            format!("{}:ratelimit:join:{}", self.prefix, request.ip),
            self.key(room, &format!("challenge:{challenge}")),
        ];
        let (ticket, retry_after): (i64, u64) = self
            .run(&JOIN, &keys, |command| {
                command
                    .arg(request.limit_per_minute)
                    .arg(request.floor)
                    .arg(request.now)
                    .arg(if request.challenge_id.is_some() { "1" } else { "0" });
            })
            .await?;
        Ok(match ticket {
            -1 => Joined::RateLimited {
                retry_after_seconds: retry_after.max(1),
            },
            -2 => Joined::ChallengeReused,
            ticket => Joined::Ticket(ticket as u64),
        })
    }

    /// Marks waiting tickets as still polling (`XX`: tickets that were dropped stay dropped).
    pub async fn touch(&self, room: &str, tickets: &[u64], now: i64) -> Result<(), StoreError> {
        if tickets.is_empty() {
            return Ok(());
        }
        let mut command = redis::cmd("ZADD");
        command.arg(self.key(room, "seen")).arg("XX");
        for ticket in tickets {
            command.arg(now).arg(*ticket);
        }
        command.query_async::<()>(&mut self.connection().await?).await?;
        Ok(())
    }

    /// A client gives up its place or ends its session, freeing capacity.
    pub async fn leave(&self, room: &str, ticket: u64) -> Result<(), StoreError> {
        redis::pipe()
            .atomic()
            .zrem(self.key(room, "active"), ticket)
            .zrem(self.key(room, "seen"), ticket)
            .rpush(self.key(room, "dropped"), ticket)
            .query_async::<()>(&mut self.connection().await?)
            .await?;
        Ok(())
    }

    /// Takes or renews the controller lease; true while `holder` has it.
    pub async fn hold_lease(&self, holder: &str, millis: u64) -> Result<bool, StoreError> {
        let held: i64 = self
            .run(&LEASE, &[self.lease_key()], |command| {
                command.arg(holder).arg(millis);
            })
            .await?;
        Ok(held == 1)
    }

    /// Records a draw from `first` to the last ticket issued; `None` if the lease was lost
    /// or another draw came first.
    pub async fn draw(
        &self,
        room: &str,
        holder: &str,
        draws_so_far: usize,
        first: u64,
        seed: &str,
        now: i64,
    ) -> Result<Option<u64>, StoreError> {
        let keys = [
            self.lease_key(),
            self.key(room, "tickets"),
            self.key(room, "draws"),
        ];
        let count: i64 = self
            .run(&DRAW, &keys, |command| {
                command
                    .arg(holder)
                    .arg(draws_so_far)
                    .arg(first)
                    .arg(seed)
                    .arg(now);
            })
            .await?;
        Ok(u64::try_from(count).ok())
    }

    /// Ends sessions that are over; returns how many ended and how many still run.
    pub async fn expire_sessions(&self, room: &str, now: i64) -> Result<(u64, u64), StoreError> {
        let key = self.key(room, "active");
        let (expired, active): (u64, u64) = redis::pipe()
            .atomic()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now)
            .zcard(&key)
            .query_async(&mut self.connection().await?)
            .await?;
        Ok((expired, active))
    }

    /// Last poll of each ticket; `None` for tickets that never polled or are gone.
    pub async fn last_seen(&self, room: &str, tickets: &[u64]) -> Result<Vec<Option<i64>>, StoreError> {
        if tickets.is_empty() {
            return Ok(Vec::new());
        }
        let seen: Vec<Option<f64>> = redis::cmd("ZMSCORE")
            .arg(self.key(room, "seen"))
            .arg(tickets)
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(seen.into_iter().map(|s| s.map(|s| s as i64)).collect())
    }

    /// Writes one controller step; false if the lease was lost or the state moved meanwhile.
    pub async fn advance(
        &self,
        room: &str,
        holder: &str,
        step: &Advancement<'_>,
    ) -> Result<bool, StoreError> {
        let keys = [
            self.lease_key(),
            self.key(room, "advances"),
            self.key(room, "active"),
            self.key(room, "seen"),
            self.key(room, "dropped"),
        ];
        let done: i64 = self
            .run(&ADVANCE, &keys, |command| {
                command
                    .arg(holder)
                    .arg(step.from)
                    .arg(step.through)
                    .arg(step.session_ends_at)
                    .arg(step.now)
                    .arg(step.admitted.len())
                    .arg(step.admitted)
                    .arg(step.dropped);
            })
            .await?;
        Ok(done == 1)
    }
}

fn parse_draw(raw: &str) -> Option<Draw> {
    let mut parts = raw.split(':');
    let draw = Draw {
        first: parts.next()?.parse().ok()?,
        count: parts.next()?.parse().ok()?,
        seed: parts.next()?.to_owned(),
        drawn_at: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(draw)
}

fn parse_advance(raw: &str) -> Option<Advance> {
    let (through, at) = raw.split_once(':')?;
    Some(Advance {
        through: through.parse().ok()?,
        at: at.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_garbage_is_refused() {
        let seed = "ab".repeat(32);
        assert_eq!(
            parse_draw(&format!("1:20:{seed}:1700000000")),
            Some(Draw {
                first: 1,
                count: 20,
                seed,
                drawn_at: 1_700_000_000
            })
        );
        assert_eq!(
            parse_advance("42:1700000000"),
            Some(Advance {
                through: 42,
                at: 1_700_000_000
            })
        );
        for bad in ["", "1", "1:x", "1:2:3", "1:2:3:4:5"] {
            assert_eq!(parse_draw(bad), None, "{bad}");
        }
        assert_eq!(parse_advance("x:1"), None);
    }
}
