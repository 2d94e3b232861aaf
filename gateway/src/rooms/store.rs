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
//! | `room:<r>:polls` | hash | waiting ticket → last poll (unix seconds) |
//! | `room:<r>:active` | sorted set | admitted ticket → end of its session |
//! | `room:<r>:challenge:<id>` | string | a proof-of-work challenge already used |
//! | `room:<r>:admission:<ticket>` | string | how a ticket's admission ended: spent on a registration (its phone's keyed hash), or `left` |
//! | `ratelimit:join:<ip>` | string | joins from one address in the current minute |
//! | `rooms:controller` | string | the admission controller's lease (holder id) |
//!
//! Lists only grow during an event, so gateways read them incrementally from where they were.
//! Everything a controller writes goes through scripts that first check its lease, so a
//! controller that lost its lease cannot write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::ThreadId;

use deadpool::managed::Manager as _;
use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::{self, Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};
use deadpool_redis::Pool;
use drawbridge_domain::{Advance, RoomConfig, Shuffle};
use prometheus::Histogram;
use tokio::sync::oneshot;

/// Why the room store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A call for several joins failed; each of them gets this.
    #[error("Redis: {message}")]
    Batch { message: String, unavailable: bool },
    /// The gateway stopped before the call came back.
    #[error("the join was not answered: the gateway is stopping")]
    Unanswered,
    #[error("room {room}: stored {what} cannot be read: {value:?}")]
    Corrupt {
        room: String,
        what: &'static str,
        value: String,
    },
}

impl StoreError {
    /// Whether Redis could not be reached (down, restarting, cut off), rather than answering
    /// something wrong: the request may succeed in a few seconds.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Redis(error) => {
                error.is_io_error()
                    || error.is_connection_refusal()
                    || error.is_connection_dropped()
                    || error.is_timeout()
            }
            StoreError::Batch { unavailable, .. } => *unavailable,
            StoreError::Unanswered | StoreError::Corrupt { .. } => false,
        }
    }
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

/// What spending an admission found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// Spent now on this registration, or earlier on the same one.
    OnThis,
    /// Spent earlier on another registration.
    OnAnother,
    /// The visitor left the room: the admission ended.
    Left,
}

/// An admission's record once the visitor left.
const LEFT: &str = "left";

/// Joins in one call to Redis, at most.
const MAX_JOINS_PER_CALL: usize = 128;

/// A join's inputs beyond the room.
pub struct JoinRequest<'a> {
    pub ip: &'a str,
    pub limit_per_minute: u32,
    /// The highest ticket the caller saw issued. If Redis lost recent writes (a restart without
    /// them on disk), the counter is moved past it and past every ticket this store handed out,
    /// so no ticket is issued twice.
    pub floor: u64,
    pub challenge_id: Option<&'a str>,
    pub now: i64,
}

/// Joins on one thread waiting for the next call (see [`RoomStore::join`]).
#[derive(Default)]
struct JoinQueue {
    waiting: Vec<QueuedJoin>,
    /// A task is sending; it takes whatever is waiting when its last call returns.
    sending: bool,
}

struct QueuedJoin {
    room: String,
    ip: String,
    limit_per_minute: u32,
    floor: u64,
    challenge_id: Option<String>,
    now: i64,
    answer: oneshot::Sender<Result<Joined, StoreError>>,
}

/// What changed in a room since a [`Cursor`].
#[derive(Debug, Default)]
pub struct Snapshot {
    pub config: Option<RoomConfig>,
    pub issued: u64,
    pub draws: Vec<Shuffle>,
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
    pub draws: Vec<Shuffle>,
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

/// Every join waiting on one thread for one room, as one call. KEYS: tickets, polls, then the
/// rate-limit keys of the joins' addresses and the keys of their proof-of-work challenges.
/// ARGV: limit per minute, floor, now, then for each join the index in KEYS of its rate-limit
/// key and of its challenge key (0: none). Answers one number per join, in order: its ticket
/// (above 0), 0 if its challenge was used before, or minus the seconds until its address's
/// rate-limit window ends (a flat array: the reply's size is most of a call). Joins from
/// one address are counted as if they came one by one, with one `INCRBY` per address, and the
/// tickets with one `SET` and one `HSET`: most of what Redis spends on a join is per call and
/// per command, not per ticket. (`polls` is a hash, not a sorted set: nothing reads it by
/// time, and a ticket's place in a sorted set of millions costs a dozen cache misses.)
static JOIN_MANY: Script = Script::new(
    r"
local limit = tonumber(ARGV[1])
local last = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(ARGV[2]))
local counted, added, answers, limited, polls = {}, {}, {}, {}, {}
for i = 1, (#ARGV - 3) / 2 do
  local key = KEYS[tonumber(ARGV[2 + 2 * i])]
  local challenge = tonumber(ARGV[3 + 2 * i])
  if counted[key] == nil then
    counted[key] = tonumber(redis.call('GET', key) or '0')
    added[key] = 0
  end
  counted[key] = counted[key] + 1
  added[key] = added[key] + 1
  if counted[key] > limit then
    answers[i] = -1
    limited[i] = key
  elseif challenge > 0 and not redis.call('SET', KEYS[challenge], '1', 'NX', 'EX', 600) then
    answers[i] = 0
  else
    last = last + 1
    answers[i] = last
    polls[#polls + 1] = last
    polls[#polls + 1] = ARGV[3]
  end
end
local windows = {}
for key, n in pairs(added) do
  redis.call('INCRBY', key, n)
  local ttl = redis.call('TTL', key)
  if ttl < 0 then redis.call('EXPIRE', key, 60); ttl = 60 end
  windows[key] = ttl
end
for i, key in pairs(limited) do answers[i] = -math.max(windows[key], 1) end
if #polls > 0 then
  redis.call('SET', KEYS[1], last)
  redis.call('HSET', KEYS[2], unpack(polls))
end
return answers
",
);

/// KEYS: polls. ARGV: now, tickets...: the last poll of each ticket still in `polls`.
static TOUCH: Script = Script::new(
    r"
for i = 2, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then redis.call('HSET', KEYS[1], ARGV[i], ARGV[1]) end
end
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

/// KEYS: lease, advances, active, polls, dropped. ARGV: holder, from, through, session end,
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
  redis.call('HDEL', KEYS[4], ARGV[i])
end
for i = 7 + admitted, #ARGV do
  redis.call('RPUSH', KEYS[5], ARGV[i])
  redis.call('HDEL', KEYS[4], ARGV[i])
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
    /// Each thread's joins waiting for their call (see [`RoomStore::join`]).
    join_queues: Arc<Mutex<HashMap<ThreadId, Arc<Mutex<JoinQueue>>>>>,
    /// The highest ticket handed out here, per room (see [`JoinRequest::floor`]).
    issued_here: Arc<Mutex<HashMap<String, u64>>>,
    /// Observes the joins sent in each call, if set.
    joins_per_call: Option<Histogram>,
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
            join_queues: Arc::default(),
            issued_here: Arc::default(),
            joins_per_call: None,
        }
    }

    /// Observes how many joins go to Redis in each call.
    pub fn observing_joins(mut self, joins_per_call: Histogram) -> Self {
        self.joins_per_call = Some(joins_per_call);
        self
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

    /// Takes a ticket. Joins arriving on one thread while its last call to Redis is out wait
    /// for the next, and go together ([`JOIN_MANY`]): a lone join goes at once, and under a
    /// surge Redis and this gateway do one call for many joins. The first to arrive is first in
    /// its batch, so tickets keep the order in which this gateway got the joins.
    pub async fn join(&self, room: &str, request: JoinRequest<'_>) -> Result<Joined, StoreError> {
        let (answer, answered) = oneshot::channel();
        let queue = self.join_queue();
        let start = {
            let mut queue = queue.lock().expect("poisoned");
            queue.waiting.push(QueuedJoin {
                room: room.to_owned(),
                ip: request.ip.to_owned(),
                limit_per_minute: request.limit_per_minute,
                floor: request.floor,
                challenge_id: request.challenge_id.map(str::to_owned),
                now: request.now,
                answer,
            });
            !std::mem::replace(&mut queue.sending, true)
        };
        if start {
            // On this thread's runtime, so the answers wake nobody on another thread.
            tokio::spawn(self.clone().send_joins(queue));
        }
        answered.await.map_err(|_| StoreError::Unanswered)?
    }

    /// This thread's queue of joins.
    fn join_queue(&self) -> Arc<Mutex<JoinQueue>> {
        let thread = std::thread::current().id();
        let mut queues = self.join_queues.lock().expect("poisoned");
        queues.entry(thread).or_default().clone()
    }

    /// Sends what is waiting, again and again, until nothing is.
    async fn send_joins(self, queue: Arc<Mutex<JoinQueue>>) {
        loop {
            let mut waiting = {
                let mut queue = queue.lock().expect("poisoned");
                if queue.waiting.is_empty() {
                    queue.sending = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            // One call per room (and per `MAX_JOINS_PER_CALL`), all on the wire at once.
            let mut calls = Vec::new();
            while let Some(first) = waiting.first() {
                let room = first.room.clone();
                let (mut same, rest): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|j| j.room == room);
                waiting = rest;
                while !same.is_empty() {
                    let tail = same.split_off(same.len().min(MAX_JOINS_PER_CALL));
                    calls.push(self.join_many(room.clone(), std::mem::replace(&mut same, tail)));
                }
            }
            futures_util::future::join_all(calls).await;
        }
    }

    /// One [`JOIN_MANY`] call for joins of `room`; answers each.
    async fn join_many(&self, room: String, joins: Vec<QueuedJoin>) {
        let room = room.as_str();
        if let Some(sizes) = &self.joins_per_call {
            sizes.observe(joins.len() as f64);
        }
        let mut keys = vec![self.key(room, "tickets"), self.key(room, "polls")];
        // Lua's KEYS count from 1; each address's key once.
        let mut places: Vec<(usize, usize)> = Vec::with_capacity(joins.len());
        let mut addresses: HashMap<&str, usize> = HashMap::new();
        for join in &joins {
            let limited = *addresses.entry(&join.ip).or_insert_with(|| {
                keys.push(format!("{}:ratelimit:join:{}", self.prefix, join.ip));
                keys.len()
            });
            let challenge = join.challenge_id.as_deref().map_or(0, |id| {
                keys.push(self.key(room, &format!("challenge:{id}")));
                keys.len()
            });
            places.push((limited, challenge));
        }
        // Joins that waited together share one limit (a gateway setting), the highest floor and
        // the latest time.
        let limit = joins.iter().map(|j| j.limit_per_minute).min().unwrap_or_default();
        let here = self.issued_here.lock().expect("poisoned").get(room).copied();
        let floor = joins
            .iter()
            .map(|j| j.floor)
            .chain(here)
            .max()
            .unwrap_or_default();
        let now = joins.iter().map(|j| j.now).max().unwrap_or_default();
        let answered: Result<Vec<i64>, StoreError> = self
            .run(&JOIN_MANY, &keys, |command| {
                command.arg(limit).arg(floor).arg(now);
                for &(limited, challenge) in &places {
                    command.arg(limited).arg(challenge);
                }
            })
            .await;
        match answered {
            Ok(answers) if answers.len() == joins.len() => {
                if let Some(&highest) = answers.iter().max().filter(|&&ticket| ticket > 0) {
                    let mut issued = self.issued_here.lock().expect("poisoned");
                    let entry = issued.entry(room.to_owned()).or_default();
                    *entry = (*entry).max(highest as u64);
                }
                for (join, answer) in joins.into_iter().zip(answers) {
                    let joined = match answer {
                        0 => Joined::ChallengeReused,
                        ticket @ 1.. => Joined::Ticket(ticket as u64),
                        seconds => Joined::RateLimited {
                            retry_after_seconds: seconds.unsigned_abs(),
                        },
                    };
                    // The visitor may have gone; the ticket stays issued.
                    let _ = join.answer.send(Ok(joined));
                }
            }
            answered => {
                let (message, unavailable) = match answered {
                    Err(error) => (error.to_string(), error.is_unavailable()),
                    Ok(answers) => (
                        format!("{} answers to {} joins", answers.len(), joins.len()),
                        false,
                    ),
                };
                for join in joins {
                    let _ = join.answer.send(Err(StoreError::Batch {
                        message: message.clone(),
                        unavailable,
                    }));
                }
            }
        }
    }

    /// Marks waiting tickets as still polling (only those still waiting: tickets that were
    /// admitted or dropped stay out).
    pub async fn touch(&self, room: &str, tickets: &[u64], now: i64) -> Result<(), StoreError> {
        if tickets.is_empty() {
            return Ok(());
        }
        self.run::<()>(&TOUCH, &[self.key(room, "polls")], |command| {
            command.arg(now).arg(tickets);
        })
        .await
    }

    /// A client gives up its place or ends its session, freeing capacity. Its admission ends
    /// at once for [`RoomStore::spend`]; the gateways' copies learn of the dropped ticket at
    /// their next refresh. `admission_seconds` is the longest an admission of the room lasts.
    pub async fn leave(&self, room: &str, ticket: u64, admission_seconds: u32) -> Result<(), StoreError> {
        redis::pipe()
            .atomic()
            .zrem(self.key(room, "active"), ticket)
            .hdel(self.key(room, "polls"), ticket)
            .rpush(self.key(room, "dropped"), ticket)
            .set_ex(
                self.admission_key(room, ticket),
                LEFT,
                admission_seconds.max(1).into(),
            )
            .query_async::<()>(&mut self.connection().await?)
            .await?;
        Ok(())
    }

    /// Spends the admission of `ticket` on the registration `spent_on` (kept for `seconds`,
    /// until the admission ends), unless it was spent on another or the visitor left: one
    /// `SET NX GET`, so of two registrations sent at once only one spends it.
    pub async fn spend(
        &self,
        room: &str,
        ticket: u64,
        spent_on: &str,
        seconds: u64,
    ) -> Result<Spent, StoreError> {
        let before: Option<String> = redis::cmd("SET")
            .arg(self.admission_key(room, ticket))
            .arg(spent_on)
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(seconds.max(1))
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(match before.as_deref() {
            None => Spent::OnThis,
            Some(LEFT) => Spent::Left,
            Some(earlier) if earlier == spent_on => Spent::OnThis,
            Some(_) => Spent::OnAnother,
        })
    }

    fn admission_key(&self, room: &str, ticket: u64) -> String {
        self.key(room, &format!("admission:{ticket}"))
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
        let seen: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(self.key(room, "polls"))
            .arg(tickets)
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(seen)
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
            self.key(room, "polls"),
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

fn parse_draw(raw: &str) -> Option<Shuffle> {
    let mut parts = raw.split(':');
    let draw = Shuffle {
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
            Some(Shuffle {
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
