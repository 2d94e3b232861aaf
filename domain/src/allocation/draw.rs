//! The allocation draw: random serial dictatorship with weights and strict priority tiers.
//!
//! Every waiting, eligible registrant (a [`Candidate`], known only by a [`Pseudonym`]) gets a
//! lottery key computed from the draw's [`Seed`] and their pseudonym alone, so the key cannot
//! depend on the order rows come out of a database. Weights (priority group, waiting time,
//! declines) enter as Efraimidis–Spirakis keys `u^(1/w)`, kept as `ln(u)/w` so that tiny
//! numbers do not underflow; lower tiers are drawn strictly first. In key order each candidate
//! takes the best free pair they may have: earliest first appointment, then nearest centre.
//!
//! [`draw`] is a pure function of the policy, the seed and the [`DrawInput`]: the same inputs
//! give the same [`DrawOutcome`] on any machine, which is what makes published draws checkable
//! (see [`Manifest::replay`]).

use std::fmt;
use std::io::Write;

use chrono::{DateTime, Duration, Utc};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::allocation::policy::{DrawSettings, Policy};
use crate::mac::keyed_hash;

/// The 32 random bytes that decide one draw. Its SHA-256 ([`Seed::commitment`]) is recorded
/// before the draw's inputs are read; the seed itself is published only afterwards.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Seed([u8; 32]);

impl Seed {
    /// A fresh seed from the operating system's CSPRNG.
    pub fn generate() -> Seed {
        let mut bytes = [0; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Seed(bytes)
    }

    /// A seed from a public randomness beacon value fixed before the draw (e.g. a drand round),
    /// so that nobody, operators included, could have chosen it.
    pub fn from_beacon(randomness: &[u8]) -> Seed {
        Seed(
            Sha256::new()
                .chain_update(b"drawbridge/beacon/v1")
                .chain_update(randomness)
                .finalize()
                .into(),
        )
    }

    /// The seed's raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Seed {
        Seed(bytes)
    }

    /// The seed's raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// SHA-256 of the seed: published first, it binds the draw to a seed nobody can change later.
    pub fn commitment(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seed({})", hex(&self.0))
    }
}

/// A registrant as published draws know them: a keyed hash of their id, fixed at
/// registration (before any seed exists), that only the registrant and Drawbridge can link to
/// the person.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pseudonym([u8; 16]);

impl Pseudonym {
    /// The pseudonym of the registrant with this id under the deployment's hash key.
    pub fn of(key: &[u8], registrant_id: &[u8; 16]) -> Pseudonym {
        let hash = keyed_hash(key, &[b"drawbridge/pseudonym/v1", registrant_id]);
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&hash[..16]);
        Pseudonym(bytes)
    }

    /// The pseudonym's raw bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Pseudonym {
        Pseudonym(bytes)
    }

    /// The pseudonym's raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pseudonym({self})")
    }
}

/// A free slot pair as the draw sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreePair {
    /// The pair's id.
    pub id: Uuid,
    /// The centre's id.
    pub centre: String,
    /// The vaccine's code.
    pub vaccine: String,
    /// Start of the first-dose appointment.
    pub first_at: DateTime<Utc>,
    /// Start of the second-dose appointment; `None` for one-dose vaccines.
    pub second_at: Option<DateTime<Utc>>,
}

/// A waiting registrant as the draw sees them, in pseudonymised form: everything the draw
/// needs and nothing that names the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Who, pseudonymously.
    pub pseudonym: Pseudonym,
    /// The priority group they registered in.
    pub group: u8,
    /// Their age by decade, e.g. `60-69`, for analysts; the draw itself uses `vaccines`.
    pub age_band: String,
    /// Full weeks since they were verified, which the policy may turn into extra weight.
    pub waited_weeks: u32,
    /// Offers they declined, which the policy may turn into less weight.
    pub declines: u32,
    /// The vaccines they may be offered today (allowed by the policy and accepted by them).
    pub vaccines: Vec<String>,
    /// The centres within the distance they will travel, nearest first.
    pub centres: Vec<String>,
    /// A centre withdrew their booked or offered pair: they are served before every tier.
    #[serde(default)]
    pub ahead: bool,
}

/// Everything a draw depends on besides the policy and the seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrawInput {
    /// When the draw ran; offers expire relative to it.
    pub drawn_at: DateTime<Utc>,
    /// The free pairs, in any order.
    pub pairs: Vec<FreePair>,
    /// The waiting pool, in any order.
    pub candidates: Vec<Candidate>,
}

/// One pair offered to one candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    /// Who gets the offer.
    pub pseudonym: Pseudonym,
    /// The pair offered.
    pub pair: Uuid,
    /// Until when the offer can be accepted.
    pub expires_at: DateTime<Utc>,
    /// Index into the policy's `draw.reserves` when the pair came from a reserve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve: Option<usize>,
}

/// Why a free pair was not offered to anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedReason {
    /// The first appointment starts too soon for anyone to answer an offer in time.
    TooSoon,
    /// Nobody in the pool may have (or accepts) the pair's vaccine.
    NoOneEligible,
    /// Those who may have the vaccine all live too far from the centre.
    OutOfReach,
    /// Everyone who could have taken it got another, better pair in this draw.
    PoolServed,
}

impl UnmatchedReason {
    /// The reason's name as serialized, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            UnmatchedReason::TooSoon => "too_soon",
            UnmatchedReason::NoOneEligible => "no_one_eligible",
            UnmatchedReason::OutOfReach => "out_of_reach",
            UnmatchedReason::PoolServed => "pool_served",
        }
    }
}

/// A pair left over, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmatched {
    /// The pair.
    pub pair: Uuid,
    /// Why nobody was offered it.
    pub reason: UnmatchedReason,
}

/// What a draw decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrawOutcome {
    /// The offers, in the order the draw made them.
    pub matches: Vec<Match>,
    /// The pairs nobody was offered, by pair id.
    pub unmatched: Vec<Unmatched>,
}

impl DrawOutcome {
    /// SHA-256 of the outcome's canonical JSON, recorded with the draw.
    pub fn digest(&self) -> [u8; 32] {
        json_digest(self)
    }
}

/// Inputs a draw refuses, because they would make its result ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrawError {
    /// The same pseudonym appears twice in the pool.
    #[error("pseudonym {0} appears more than once in the pool")]
    DuplicateCandidate(Pseudonym),
    /// The same pair appears twice.
    #[error("slot pair {0} appears more than once")]
    DuplicatePair(Uuid),
    /// A candidate is in a group the policy does not define.
    #[error("candidate {pseudonym} is in priority group {group}, which the policy does not define")]
    UnknownGroup {
        /// The candidate.
        pseudonym: Pseudonym,
        /// Their group.
        group: u8,
    },
}

/// Until when an offer made at `offered_at` for a pair starting at `first_at` may be accepted,
/// or `None` if the pair starts too soon to offer: short-notice pairs get the policy's short
/// window, and no offer outlives the start of its appointment.
pub fn offer_expiry(
    settings: &DrawSettings,
    offered_at: DateTime<Utc>,
    first_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let short_notice = first_at - offered_at <= Duration::hours(settings.short_notice_hours.into());
    let window = if short_notice {
        settings.short_notice_window_minutes
    } else {
        settings.offer_window_minutes
    };
    let expires_at = (offered_at + Duration::minutes(window.into())).min(first_at);
    (expires_at - offered_at >= Duration::minutes(MIN_ANSWER_MINUTES)).then_some(expires_at)
}

/// Nobody can be expected to read, decide and answer in less time than this.
const MIN_ANSWER_MINUTES: i64 = 5;

/// A candidate's lottery weight: their group's weight, raised by waiting time and lowered by
/// declines as the policy says. `None` if the policy does not define their group.
pub fn weight(policy: &Policy, candidate: &Candidate) -> Option<f64> {
    let group = policy.group(candidate.group)?;
    let waited = 1.0 + policy.draw.waiting_time_weight_per_week * f64::from(candidate.waited_weeks);
    let declined = policy
        .draw
        .weight_after_decline
        .powi(candidate.declines.min(64) as i32);
    Some(group.weight * waited * declined)
}

/// The candidate's Efraimidis–Spirakis key `ln(u)/w` (higher draws first), where `u` in (0, 1]
/// comes from ChaCha20 keyed with the seed, on a stream chosen by the pseudonym alone.
pub fn lottery_key(seed: &Seed, pseudonym: &Pseudonym, weight: f64) -> f64 {
    let mut rng = ChaCha20Rng::from_seed(seed.0);
    // Pseudonyms are keyed hashes nobody can choose, so 64 of their bits pick the stream; two
    // candidates sharing a stream (odds ~1e-8 in a pool of a million) would merely tie.
    let stream: [u8; 8] = pseudonym.0[..8].try_into().expect("16 > 8");
    rng.set_stream(u64::from_le_bytes(stream));
    key_of(rng.next_u64(), weight)
}

/// Runs the draw. The output depends only on the policy, the seed and the contents of `input`,
/// never on the order of its lists.
pub fn draw(policy: &Policy, seed: &Seed, input: &DrawInput) -> Result<DrawOutcome, DrawError> {
    run(policy, seed, input, false).map(|(outcome, _)| outcome)
}

/// [`draw`], also returning each candidate's lottery key (in input order) for the record.
pub fn draw_with_keys(
    policy: &Policy,
    seed: &Seed,
    input: &DrawInput,
) -> Result<(DrawOutcome, Vec<f64>), DrawError> {
    run(policy, seed, input, true)
}

/// The draw; every key is computed only when `all_keys` is asked for, otherwise only as far as
/// the order is needed (the keys of tiers nobody reaches decide nothing).
fn run(
    policy: &Policy,
    seed: &Seed,
    input: &DrawInput,
    all_keys: bool,
) -> Result<(DrawOutcome, Vec<f64>), DrawError> {
    let mut order = Order::new(policy, seed, &input.candidates, all_keys)?;
    let mut round = Round {
        shelves: Shelves::stock(&policy.draw, input)?,
        settings: &policy.draw,
        input,
        served: vec![false; input.candidates.len()],
        matches: Vec::new(),
    };
    let stocked = round.shelves.remaining;
    for (r, reserve) in policy.draw.reserves.iter().enumerate() {
        // Shares are of the pairs on offer; flooring keeps the reserves' sum within them.
        let quota = (reserve.share * stocked as f64).floor() as usize;
        let mut given = 0;
        let mut position = 0;
        while given < quota && round.shelves.remaining > 0 {
            let Some(candidate) = order.at(position, round.shelves.remaining) else {
                break;
            };
            position += 1;
            if reserve.groups.contains(&input.candidates[candidate].group) && round.offer(candidate, Some(r))
            {
                given += 1;
            }
        }
    }
    let mut position = 0;
    while round.shelves.remaining > 0 {
        let Some(candidate) = order.at(position, round.shelves.remaining) else {
            break;
        };
        position += 1;
        round.offer(candidate, None);
    }
    let keys = if all_keys { order.all_keys() } else { Vec::new() };
    let mut unmatched = round.shelves.leftovers();
    unmatched.extend(round.shelves.too_soon);
    unmatched.sort_unstable_by_key(|u| u.pair);
    let outcome = DrawOutcome {
        matches: round.matches,
        unmatched,
    };
    Ok((outcome, keys))
}

/// The state of a draw in progress.
struct Round<'a> {
    shelves: Shelves<'a>,
    settings: &'a DrawSettings,
    input: &'a DrawInput,
    served: Vec<bool>,
    matches: Vec<Match>,
}

impl Round<'_> {
    /// Offers the candidate their best pair, unless they already have one or none is left.
    fn offer(&mut self, candidate: usize, reserve: Option<usize>) -> bool {
        if self.served[candidate] {
            return false;
        }
        let Some(pair) = self.shelves.take_best(&self.input.candidates[candidate]) else {
            return false;
        };
        self.served[candidate] = true;
        let pair = &self.input.pairs[pair];
        self.matches.push(Match {
            pseudonym: self.input.candidates[candidate].pseudonym,
            pair: pair.id,
            expires_at: offer_expiry(self.settings, self.input.drawn_at, pair.first_at)
                .expect("only pairs that can be offered are stocked"),
            reserve,
        });
        true
    }
}

/// The candidates in draw order: those `ahead` first, then tier ascending, then lottery key
/// descending; the pseudonym breaks exact ties so the order is total.
///
/// The order is worked out only as far as the draw reads it: a tier's keys are computed when
/// the draw reaches the tier, and within a tier the best keys are selected a chunk at a time
/// (a partial selection, then a sort of the chunk) instead of sorting the whole tier. With a
/// few thousand pairs for a million candidates, most keys of the last tier reached are never
/// sorted and tiers beyond it never keyed. The order read is exactly the fully sorted one.
struct Order<'a> {
    policy: &'a Policy,
    seed: &'a Seed,
    candidates: &'a [Candidate],
    /// Candidate indices per rank, in rank order; the ones not reached yet.
    buckets: Vec<Vec<u32>>,
    next_bucket: usize,
    /// The reached bucket's candidates with their keys; those from `rest_start` on are not
    /// placed yet.
    rest: Vec<(f64, u32)>,
    rest_start: usize,
    /// The order so far.
    placed: Vec<u32>,
    /// Keys computed so far, by candidate, when they are to be recorded (else empty).
    keys: Vec<f64>,
}

impl<'a> Order<'a> {
    fn new(
        policy: &'a Policy,
        seed: &'a Seed,
        candidates: &'a [Candidate],
        record_keys: bool,
    ) -> Result<Order<'a>, DrawError> {
        // One pass over the pool, which is larger than the caches: each candidate's hash for
        // the duplicate check and their rank.
        let mut hashes = Vec::with_capacity(candidates.len());
        let mut ranks: Vec<(bool, u32)> = Vec::new();
        let mut rank_of = Vec::with_capacity(candidates.len());
        let mut unknown = None;
        for candidate in candidates {
            hashes.push(hash_of(&candidate.pseudonym));
            let Some(group) = policy.group(candidate.group) else {
                unknown = unknown.or(Some(DrawError::UnknownGroup {
                    pseudonym: candidate.pseudonym,
                    group: candidate.group,
                }));
                rank_of.push(0);
                continue;
            };
            // `false` sorts first: those sent back by a centre go before every tier.
            let rank = (!candidate.ahead, group.tier);
            let r = match ranks.iter().position(|&known| known == rank) {
                Some(r) => r,
                None => {
                    ranks.push(rank);
                    ranks.len() - 1
                }
            };
            rank_of.push(r as u32);
        }
        if let Some(twice) = repeated(candidates, hashes) {
            return Err(DrawError::DuplicateCandidate(twice));
        }
        if let Some(unknown) = unknown {
            return Err(unknown);
        }
        let mut by_rank: Vec<usize> = (0..ranks.len()).collect();
        by_rank.sort_unstable_by_key(|&r| ranks[r]);
        let mut position = vec![0; ranks.len()];
        for (p, &r) in by_rank.iter().enumerate() {
            position[r] = p;
        }
        let mut buckets = vec![Vec::new(); ranks.len()];
        for (i, &r) in rank_of.iter().enumerate() {
            buckets[position[r as usize]].push(i as u32);
        }
        Ok(Order {
            policy,
            seed,
            candidates,
            buckets,
            next_bucket: 0,
            rest: Vec::new(),
            rest_start: 0,
            placed: Vec::new(),
            keys: if record_keys {
                vec![f64::NAN; candidates.len()]
            } else {
                Vec::new()
            },
        })
    }

    /// The candidate at `position` of the order, if the pool is that large; `wanted` (the pairs
    /// left) sizes the next chunk to place.
    fn at(&mut self, position: usize, wanted: usize) -> Option<usize> {
        while self.placed.len() <= position {
            if self.rest_start == self.rest.len() {
                let bucket = std::mem::take(self.buckets.get_mut(self.next_bucket)?);
                self.next_bucket += 1;
                self.rest = self.keyed(&bucket);
                self.rest_start = 0;
                continue;
            }
            let chunk = (2 * wanted).max(self.placed.len() / 2).max(256);
            let descending = |a: &(f64, u32), b: &(f64, u32)| {
                b.0.total_cmp(&a.0).then_with(|| {
                    self.candidates[a.1 as usize]
                        .pseudonym
                        .cmp(&self.candidates[b.1 as usize].pseudonym)
                })
            };
            let rest = &mut self.rest[self.rest_start..];
            let chunk = chunk.min(rest.len());
            if chunk < rest.len() {
                rest.select_nth_unstable_by(chunk - 1, descending);
            }
            let best = &mut rest[..chunk];
            best.sort_unstable_by(descending);
            self.placed.extend(best.iter().map(|&(_, i)| i));
            self.rest_start += chunk;
        }
        Some(self.placed[position] as usize)
    }

    /// The candidates' keys, computed eight streams at a time.
    fn keyed(&mut self, bucket: &[u32]) -> Vec<(f64, u32)> {
        let mut keyed = Vec::with_capacity(bucket.len());
        for chunk in bucket.chunks(LANES) {
            let mut streams = [0u64; LANES];
            for (stream, &i) in streams.iter_mut().zip(chunk) {
                *stream = stream_of(&self.candidates[i as usize].pseudonym);
            }
            let words = first_words(self.seed, &streams);
            for (&word, &i) in words.iter().zip(chunk) {
                let candidate = &self.candidates[i as usize];
                let weight = weight(self.policy, candidate).expect("groups checked in Order::new");
                let key = key_of(word, weight);
                if let Some(slot) = self.keys.get_mut(i as usize) {
                    *slot = key;
                }
                keyed.push((key, i));
            }
        }
        keyed
    }

    /// Every candidate's key, in input order.
    fn all_keys(mut self) -> Vec<f64> {
        let unreached: Vec<u32> = self.buckets[self.next_bucket..].concat();
        self.keyed(&unreached);
        self.keys
    }
}

/// A pseudonym's 64-bit hash for [`repeated`]. Pseudonyms are keyed hashes, but tests build
/// them by hand: both halves are mixed anyway.
fn hash_of(pseudonym: &Pseudonym) -> u64 {
    let low = u64::from_le_bytes(pseudonym.0[..8].try_into().expect("16 > 8"));
    let high = u64::from_le_bytes(pseudonym.0[8..].try_into().expect("16 > 8"));
    let h =
        (low ^ high.rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ h >> 32
}

/// The smallest pseudonym that appears more than once in the pool, if any, given each
/// candidate's [`hash_of`].
///
/// Cache-friendly rather than one hash set: the hashes are split into parts of about a
/// thousand by their top bits, and each part is sorted where it fits in the cache, so that a
/// million candidates cost no cache miss per candidate (the set did, a third of a draw's time).
/// Equal hashes are only suspects; the pseudonyms behind them decide.
fn repeated(candidates: &[Candidate], hashes: Vec<u64>) -> Option<Pseudonym> {
    let parts = (candidates.len() / 1024).max(1);
    // Multiply-shift maps a hash to its part, keeping the parts in hash order.
    let part_of = |h: u64| ((u128::from(h) * parts as u128) >> 64) as usize;
    let mut starts = vec![0usize; parts + 1];
    for &h in &hashes {
        starts[part_of(h) + 1] += 1;
    }
    for p in 0..parts {
        starts[p + 1] += starts[p];
    }
    let mut sorted = vec![0u64; hashes.len()];
    let mut next = starts.clone();
    for &h in &hashes {
        let at = &mut next[part_of(h)];
        sorted[*at] = h;
        *at += 1;
    }
    drop(hashes);
    let mut suspects = FxHashSet::default();
    for part in starts.windows(2) {
        let part = &mut sorted[part[0]..part[1]];
        part.sort_unstable();
        suspects.extend(part.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]));
    }
    if suspects.is_empty() {
        return None;
    }
    let mut behind: Vec<Pseudonym> = candidates
        .iter()
        .map(|c| c.pseudonym)
        .filter(|p| suspects.contains(&hash_of(p)))
        .collect();
    behind.sort_unstable();
    behind.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// ChaCha20 streams computed side by side, so the compiler can use vector instructions.
const LANES: usize = 8;

/// The stream a pseudonym's lottery number is drawn from: 64 of its bits.
fn stream_of(pseudonym: &Pseudonym) -> u64 {
    u64::from_le_bytes(pseudonym.0[..8].try_into().expect("16 > 8"))
}

/// The key `ln(u)/w` from the first 64 bits of the candidate's stream.
fn key_of(word: u64, weight: f64) -> f64 {
    // 53 random bits, shifted into (0, 1] so that ln never sees zero.
    let u = ((word >> 11) + 1) as f64 / (1u64 << 53) as f64;
    u.ln() / weight
}

/// The first 64 bits of ChaCha20 keyed with the seed, block 0, on each of the `streams`:
/// exactly what `ChaCha20Rng::from_seed(seed)`, `set_stream(stream)`, `next_u64()` return
/// ([`lottery_key`]), one block per stream instead of the four that the generator fills.
fn first_words(seed: &Seed, streams: &[u64; LANES]) -> [u64; LANES] {
    let mut initial = [[0u32; LANES]; 16];
    let constants = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
    for lane in 0..LANES {
        for (w, c) in constants.iter().enumerate() {
            initial[w][lane] = *c;
        }
        for k in 0..8 {
            initial[4 + k][lane] = u32::from_le_bytes(seed.0[4 * k..4 * k + 4].try_into().expect("4 bytes"));
        }
        // Words 12 and 13: block counter 0; 14 and 15: the stream.
        initial[14][lane] = streams[lane] as u32;
        initial[15][lane] = (streams[lane] >> 32) as u32;
    }
    let mut x = initial;
    // Lane `l` of four different rows per step: an index loop is the clear form here.
    #[allow(clippy::needless_range_loop)]
    fn quarter(x: &mut [[u32; LANES]; 16], a: usize, b: usize, c: usize, d: usize) {
        for l in 0..LANES {
            x[a][l] = x[a][l].wrapping_add(x[b][l]);
            x[d][l] = (x[d][l] ^ x[a][l]).rotate_left(16);
            x[c][l] = x[c][l].wrapping_add(x[d][l]);
            x[b][l] = (x[b][l] ^ x[c][l]).rotate_left(12);
            x[a][l] = x[a][l].wrapping_add(x[b][l]);
            x[d][l] = (x[d][l] ^ x[a][l]).rotate_left(8);
            x[c][l] = x[c][l].wrapping_add(x[d][l]);
            x[b][l] = (x[b][l] ^ x[c][l]).rotate_left(7);
        }
    }
    for _ in 0..10 {
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 1, 5, 9, 13);
        quarter(&mut x, 2, 6, 10, 14);
        quarter(&mut x, 3, 7, 11, 15);
        quarter(&mut x, 0, 5, 10, 15);
        quarter(&mut x, 1, 6, 11, 12);
        quarter(&mut x, 2, 7, 8, 13);
        quarter(&mut x, 3, 4, 9, 14);
    }
    let mut words = [0u64; LANES];
    for (lane, word) in words.iter_mut().enumerate() {
        let low = x[0][lane].wrapping_add(initial[0][lane]);
        let high = x[1][lane].wrapping_add(initial[1][lane]);
        *word = u64::from(low) | u64::from(high) << 32;
    }
    words
}

/// The free pairs, one shelf per (centre, vaccine), each sorted earliest first, so that the
/// best pair of a shelf is always at its front.
///
/// Only the candidates the draw reaches are looked at: names are interned up front, and a
/// candidate's usable shelves are found when their turn comes, in preference order (nearest
/// centre first, then vaccines in policy order). Who could have used the leftovers is worked
/// out at the end, and only if there are any.
struct Shelves<'a> {
    input: &'a DrawInput,
    /// Per shelf: pair indices sorted by appointment, and how many are gone from the front.
    shelves: Vec<(Vec<usize>, usize)>,
    /// Per shelf: the first appointment of its front pair, `None` once it is empty.
    fronts: Vec<Option<DateTime<Utc>>>,
    centres: FxHashMap<&'a str, usize>,
    vaccines: FxHashMap<&'a str, usize>,
    /// The shelf of (centre, vaccine), at `centre * vaccines + vaccine`.
    grid: Vec<Option<usize>>,
    vaccine_of: Vec<usize>,
    /// A candidate's interned vaccines (reused).
    own: Vec<usize>,
    remaining: usize,
    too_soon: Vec<Unmatched>,
}

impl<'a> Shelves<'a> {
    fn stock(settings: &DrawSettings, input: &'a DrawInput) -> Result<Shelves<'a>, DrawError> {
        let mut seen = FxHashSet::default();
        let mut index: FxHashMap<(&str, &str), usize> = FxHashMap::default();
        let mut shelves: Vec<(Vec<usize>, usize)> = Vec::new();
        let mut too_soon = Vec::new();
        for (i, pair) in input.pairs.iter().enumerate() {
            if !seen.insert(pair.id) {
                return Err(DrawError::DuplicatePair(pair.id));
            }
            if offer_expiry(settings, input.drawn_at, pair.first_at).is_none() {
                too_soon.push(Unmatched {
                    pair: pair.id,
                    reason: UnmatchedReason::TooSoon,
                });
                continue;
            }
            let next = shelves.len();
            let shelf = *index
                .entry((pair.centre.as_str(), pair.vaccine.as_str()))
                .or_insert(next);
            if shelf == next {
                shelves.push((Vec::new(), 0));
            }
            shelves[shelf].0.push(i);
        }
        let pairs = &input.pairs;
        for (shelf, _) in &mut shelves {
            shelf.sort_unstable_by_key(|&i| (pairs[i].first_at, pairs[i].second_at, pairs[i].id));
        }
        // Interned names, so a candidate costs one lookup per centre and per vaccine.
        let mut centres: FxHashMap<&str, usize> = FxHashMap::default();
        let mut vaccines: FxHashMap<&str, usize> = FxHashMap::default();
        for &(centre, vaccine) in index.keys() {
            let next = centres.len();
            centres.entry(centre).or_insert(next);
            let next = vaccines.len();
            vaccines.entry(vaccine).or_insert(next);
        }
        let mut grid = vec![None; centres.len() * vaccines.len()];
        let mut vaccine_of = vec![0; shelves.len()];
        for (&(centre, vaccine), &shelf) in &index {
            grid[centres[centre] * vaccines.len() + vaccines[vaccine]] = Some(shelf);
            vaccine_of[shelf] = vaccines[vaccine];
        }
        let fronts = shelves
            .iter()
            .map(|(s, _)| s.first().map(|&i| pairs[i].first_at))
            .collect();
        let remaining = shelves.iter().map(|(s, _)| s.len()).sum();
        Ok(Shelves {
            input,
            shelves,
            fronts,
            centres,
            vaccines,
            grid,
            vaccine_of,
            own: Vec::new(),
            remaining,
            too_soon,
        })
    }

    /// Calls `usable` with each shelf the candidate may use, in preference order.
    fn each_usable(&mut self, candidate: &Candidate, mut usable: impl FnMut(&Self, usize)) {
        let mut own = std::mem::take(&mut self.own);
        own.clear();
        own.extend(
            candidate
                .vaccines
                .iter()
                .filter_map(|v| self.vaccines.get(v.as_str()).copied()),
        );
        if !own.is_empty() {
            for centre in &candidate.centres {
                let Some(&c) = self.centres.get(centre.as_str()) else {
                    continue;
                };
                for &v in &own {
                    if let Some(shelf) = self.grid[c * self.vaccines.len() + v] {
                        usable(self, shelf);
                    }
                }
            }
        }
        self.own = own;
    }

    /// Takes the candidate's best pair (earliest first appointment; on a tie the nearer
    /// centre, then the vaccine first in policy order), if any is left.
    fn take_best(&mut self, candidate: &Candidate) -> Option<usize> {
        let mut best: Option<(DateTime<Utc>, usize)> = None;
        self.each_usable(candidate, |shelves, shelf| {
            if let Some(first_at) = shelves.fronts[shelf] {
                if best.is_none_or(|(at, _)| first_at < at) {
                    best = Some((first_at, shelf));
                }
            }
        });
        let (_, shelf) = best?;
        let (pairs, taken) = &mut self.shelves[shelf];
        let pair = pairs[*taken];
        *taken += 1;
        self.fronts[shelf] = pairs.get(*taken).map(|&i| self.input.pairs[i].first_at);
        self.remaining -= 1;
        Some(pair)
    }

    /// The pairs nobody took, each with the reason.
    fn leftovers(&mut self) -> Vec<Unmatched> {
        if self.remaining == 0 {
            return Vec::new();
        }
        // Per vaccine: someone in the pool may have it; per shelf: someone can also reach it.
        let mut wanted_vaccine = vec![false; self.vaccines.len()];
        let mut reachable = vec![false; self.shelves.len()];
        let input = self.input;
        for candidate in &input.candidates {
            for v in &candidate.vaccines {
                if let Some(&v) = self.vaccines.get(v.as_str()) {
                    wanted_vaccine[v] = true;
                }
            }
            self.each_usable(candidate, |_, shelf| reachable[shelf] = true);
        }
        self.shelves
            .iter()
            .enumerate()
            .flat_map(|(shelf, (pairs, taken))| pairs[*taken..].iter().map(move |&i| (shelf, i)))
            .map(|(shelf, i)| {
                let reason = if !wanted_vaccine[self.vaccine_of[shelf]] {
                    UnmatchedReason::NoOneEligible
                } else if !reachable[shelf] {
                    UnmatchedReason::OutOfReach
                } else {
                    UnmatchedReason::PoolServed
                };
                Unmatched {
                    pair: self.input.pairs[i].id,
                    reason,
                }
            })
            .collect()
    }
}

/// Whether a draw could offer anything at all, found without a seed by the draw's own rules:
/// which pairs can still be offered at the draw's time and which of them a candidate may take
/// (their vaccines at a centre they reach). A draw none of whose candidates may take any pair
/// makes no offer, whatever its seed.
pub struct Openings<'a> {
    shelves: Shelves<'a>,
}

impl<'a> Openings<'a> {
    /// The pairs of `input` as a draw at its `drawn_at` would stock them; its candidates are
    /// not looked at.
    pub fn of(settings: &DrawSettings, input: &'a DrawInput) -> Result<Openings<'a>, DrawError> {
        Ok(Openings {
            shelves: Shelves::stock(settings, input)?,
        })
    }

    /// How many pairs can still be offered (the others start too soon).
    pub fn pairs(&self) -> usize {
        self.shelves.remaining
    }

    /// Whether the draw could offer `candidate` at least one of the pairs.
    pub fn open_to(&mut self, candidate: &Candidate) -> bool {
        let mut any = false;
        self.shelves.each_usable(candidate, |shelves, shelf| {
            any |= shelves.fronts[shelf].is_some();
        });
        any
    }
}

impl DrawInput {
    /// SHA-256 over the inputs in a canonical order (pairs by id, candidates by pseudonym), so
    /// the digest, like the draw, does not depend on the order rows were read in. The encoding
    /// is binary (fixed-width numbers, length-prefixed text) because a million candidates must
    /// be hashed in well under a second.
    pub fn digest(&self, policy_digest: &[u8; 32]) -> [u8; 32] {
        let mut pairs: Vec<&FreePair> = self.pairs.iter().collect();
        pairs.sort_unstable_by_key(|p| p.id);
        let mut candidates: Vec<&Candidate> = self.candidates.iter().collect();
        candidates.sort_unstable_by_key(|c| c.pseudonym);
        let mut hash = Canonical(Sha256::new());
        hash.bytes(b"drawbridge/draw-inputs/v1");
        hash.bytes(policy_digest);
        hash.time(self.drawn_at);
        hash.count(pairs.len());
        for pair in pairs {
            hash.bytes(pair.id.as_bytes());
            hash.text(&pair.centre);
            hash.text(&pair.vaccine);
            hash.time(pair.first_at);
            match pair.second_at {
                Some(at) => {
                    hash.bytes(&[1]);
                    hash.time(at);
                }
                None => hash.bytes(&[0]),
            }
        }
        hash.count(candidates.len());
        for candidate in candidates {
            hash.bytes(&candidate.pseudonym.0);
            hash.bytes(&[candidate.group]);
            hash.text(&candidate.age_band);
            hash.bytes(&candidate.waited_weeks.to_le_bytes());
            hash.bytes(&candidate.declines.to_le_bytes());
            hash.bytes(&[u8::from(candidate.ahead)]);
            for list in [&candidate.vaccines, &candidate.centres] {
                hash.count(list.len());
                for item in list {
                    hash.text(item);
                }
            }
        }
        hash.0.finalize().into()
    }
}

/// An unambiguous byte encoding fed straight into SHA-256.
struct Canonical(Sha256);

impl Canonical {
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn count(&mut self, n: usize) {
        self.0.update((n as u64).to_le_bytes());
    }

    fn text(&mut self, text: &str) {
        self.count(text.len());
        self.0.update(text.as_bytes());
    }

    fn time(&mut self, at: DateTime<Utc>) {
        self.0.update(at.timestamp_micros().to_le_bytes());
    }
}

/// SHA-256 of a value's JSON, streamed into the hash rather than built in memory.
fn json_digest<T: Serialize>(value: &T) -> [u8; 32] {
    struct HashWriter(Sha256);
    impl Write for HashWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut writer = HashWriter(Sha256::new());
    serde_json::to_writer(&mut writer, value).expect("draw values serialize");
    writer.0.finalize().into()
}

/// A candidate as published in a manifest: the inputs plus the key the seed gave them, so
/// each registrant can find their place in the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedCandidate {
    /// The candidate's inputs.
    #[serde(flatten)]
    pub candidate: Candidate,
    /// Their lottery key (see [`lottery_key`]).
    pub lottery_key: LotteryKey,
}

/// A lottery key as published: as text, the shortest decimal that reads back as exactly the
/// key's double (what Rust's `{:?}` writes, e.g. `"-0.6931471805599453"`), so that a replay
/// compares it character by character. A number would be read back as the nearest double, and
/// a changed last digit would go unnoticed.
///
/// Manifests published before keys were text have them as JSON numbers; those are still read,
/// and checked only as the nearest double ([`Replay::notes`] says so).
#[derive(Debug, Clone, PartialEq)]
pub struct LotteryKey {
    value: f64,
    /// As published; `None` for a key published as a JSON number.
    text: Option<String>,
}

impl LotteryKey {
    /// The key in its published form.
    pub fn exact(key: f64) -> LotteryKey {
        LotteryKey {
            value: key,
            text: Some(format!("{key:?}")),
        }
    }

    /// The key's value, for arithmetic (the bias tests).
    pub fn value(&self) -> f64 {
        self.value
    }

    /// Whether this is exactly `key`: the same text (for a number: the same double).
    pub fn is(&self, key: f64) -> bool {
        match &self.text {
            Some(text) => *text == format!("{key:?}"),
            None => self.value.to_bits() == key.to_bits(),
        }
    }

    /// True when published as a JSON number, which cannot be compared exactly.
    pub fn is_number(&self) -> bool {
        self.text.is_none()
    }
}

impl Serialize for LotteryKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.text {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_f64(self.value),
        }
    }
}

impl<'de> Deserialize<'de> for LotteryKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LotteryKey, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = LotteryKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a lottery key: a decimal number as text")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<LotteryKey, E> {
                let value = text
                    .parse()
                    .map_err(|_| E::custom(format!("lottery key {text:?} is not a decimal number")))?;
                Ok(LotteryKey {
                    value,
                    text: Some(text.to_owned()),
                })
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<LotteryKey, E> {
                Ok(LotteryKey { value, text: None })
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<LotteryKey, E> {
                self.visit_f64(value as f64)
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<LotteryKey, E> {
                self.visit_f64(value as f64)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A public randomness beacon value the seed was derived from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beacon {
    /// The beacon round, announced before the draw.
    pub round: u64,
    /// The round's randomness, hex-encoded.
    pub randomness: String,
}

/// Everything needed to check a draw: published after it, pseudonymised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The draw's id.
    pub draw: Uuid,
    /// The region drawn.
    pub region: String,
    /// The policy version the draw ran under.
    pub policy_version: u32,
    /// SHA-256 of the policy document, hex.
    pub policy_digest: String,
    /// The policy document itself (TOML), so the manifest stands alone.
    pub policy: String,
    /// SHA-256 of the seed, hex, recorded before the inputs were read.
    pub seed_commitment: String,
    /// The seed, hex, revealed after the draw.
    pub seed: String,
    /// The beacon the seed came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beacon: Option<Beacon>,
    /// When the draw ran.
    pub drawn_at: DateTime<Utc>,
    /// SHA-256 of the inputs (see [`DrawInput::digest`]), hex.
    pub inputs_digest: String,
    /// SHA-256 of the outcome (see [`DrawOutcome::digest`]), hex.
    pub outputs_digest: String,
    /// The free pairs.
    pub pairs: Vec<FreePair>,
    /// The waiting pool with their keys.
    pub candidates: Vec<PublishedCandidate>,
    /// The offers made, in draw order.
    pub matches: Vec<Match>,
    /// The pairs left over, with reasons.
    pub unmatched: Vec<Unmatched>,
}

/// The result of replaying a manifest: every discrepancy found, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// What did not check out; empty when the draw is reproduced exactly.
    pub problems: Vec<String>,
    /// What could be checked only in part, though nothing found was wrong.
    pub notes: Vec<String>,
}

impl Replay {
    /// True when every check passed.
    pub fn reproduced(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Manifest {
    /// The draw's inputs as recorded.
    pub fn input(&self) -> DrawInput {
        DrawInput {
            drawn_at: self.drawn_at,
            pairs: self.pairs.clone(),
            candidates: self.candidates.iter().map(|c| c.candidate.clone()).collect(),
        }
    }

    /// Re-runs the draw from the manifest alone and checks everything it claims: the seed
    /// against its commitment (and beacon), the policy against its digest and version, the
    /// inputs digest, every lottery key, the outcome and its digest.
    pub fn replay(&self) -> Replay {
        let mut problems = Vec::new();
        let mut check = |ok: bool, problem: &dyn Fn() -> String| {
            if !ok {
                problems.push(problem());
            }
        };
        let seed = match unhex_array::<32>(&self.seed) {
            Some(bytes) => Seed(bytes),
            None => {
                return Replay {
                    problems: vec!["the seed is not 64 hex digits".into()],
                    notes: Vec::new(),
                }
            }
        };
        check(hex(&seed.commitment()) == self.seed_commitment, &|| {
            "the seed does not match its commitment".into()
        });
        if let Some(beacon) = &self.beacon {
            let derived = unhex(&beacon.randomness).map(|r| Seed::from_beacon(&r));
            check(derived == Some(seed), &|| {
                format!(
                    "the seed is not the one derived from beacon round {}",
                    beacon.round
                )
            });
        }
        let policy_digest: [u8; 32] = Sha256::digest(self.policy.as_bytes()).into();
        check(hex(&policy_digest) == self.policy_digest, &|| {
            "the policy document does not match its digest".into()
        });
        let policy = match Policy::from_published(&self.policy) {
            Ok(policy) => policy,
            Err(error) => {
                problems.push(format!("the policy document is invalid: {error}"));
                return Replay {
                    problems,
                    notes: Vec::new(),
                };
            }
        };
        let mut check = |ok: bool, problem: &dyn Fn() -> String| {
            if !ok {
                problems.push(problem());
            }
        };
        check(policy.version == self.policy_version, &|| {
            format!(
                "the policy document is version {}, the draw claims {}",
                policy.version, self.policy_version
            )
        });
        let input = self.input();
        check(hex(&input.digest(&policy_digest)) == self.inputs_digest, &|| {
            "the inputs do not match the inputs digest".into()
        });
        let wrong_keys = self
            .candidates
            .iter()
            .filter(|c| {
                weight(&policy, &c.candidate)
                    .map(|w| lottery_key(&seed, &c.candidate.pseudonym, w))
                    .is_none_or(|key| !c.lottery_key.is(key))
            })
            .count();
        check(wrong_keys == 0, &|| {
            format!("{wrong_keys} published lottery keys differ from the ones the seed gives")
        });
        let mut notes = Vec::new();
        let numbers = self
            .candidates
            .iter()
            .filter(|c| c.lottery_key.is_number())
            .count();
        if numbers > 0 {
            notes.push(format!(
                "{numbers} lottery keys are published as numbers (an older manifest), so they were \
                 checked only as the nearest double, not digit for digit"
            ));
        }
        match draw(&policy, &seed, &input) {
            Ok(outcome) => {
                let recorded = DrawOutcome {
                    matches: self.matches.clone(),
                    unmatched: self.unmatched.clone(),
                };
                check(hex(&recorded.digest()) == self.outputs_digest, &|| {
                    "the recorded outcome does not match the outputs digest".into()
                });
                check(outcome.matches == recorded.matches, &|| {
                    let differing = outcome
                        .matches
                        .iter()
                        .zip(&recorded.matches)
                        .position(|(a, b)| a != b)
                        .unwrap_or(outcome.matches.len().min(recorded.matches.len()));
                    format!(
                        "the replay makes {} offers, the record {}; they first differ at offer {}",
                        outcome.matches.len(),
                        recorded.matches.len(),
                        differing + 1
                    )
                });
                check(outcome.unmatched == recorded.unmatched, &|| {
                    "the pairs left over differ from the record".into()
                });
            }
            Err(error) => problems.push(format!("the recorded inputs cannot be drawn: {error}")),
        }
        Replay { problems, notes }
    }
}

/// Lowercase hex, the form digests and seeds are published in.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lowercase or uppercase hex, or `None` if it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn unhex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    unhex(text)?.try_into().ok()
}

impl Serialize for Pseudonym {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for Pseudonym {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Pseudonym, D::Error> {
        let text = String::deserialize(deserializer)?;
        unhex_array::<16>(&text)
            .map(Pseudonym)
            .ok_or_else(|| serde::de::Error::custom("a pseudonym is 32 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    const POLICY: &str = r#"
region = "test"
version = 1
name = { de = "Testland", en = "Testland" }

[[groups]]
id = 1
name = { de = "First", en = "First" }
released_on = 2021-01-01
tier = 1
weight = 1.0

[[groups]]
id = 2
name = { de = "Second", en = "Second" }
released_on = 2021-01-01
tier = 2
weight = 1.0

[[groups]]
id = 3
name = { de = "Second, heavier", en = "Second, heavier" }
released_on = 2021-01-01
tier = 2
weight = 3.0

[[vaccines]]
code = "a"
name = { de = "A", en = "A" }
doses = 1
min_age = 18

[[vaccines]]
code = "b"
name = { de = "B", en = "B" }
doses = 2
interval_days = { min = 21, max = 42 }
min_age = 18

[draw]
offer_window_minutes = 1440
short_notice_window_minutes = 30
short_notice_hours = 24
waiting_time_weight_per_week = 0.0
"#;

    fn policy() -> Policy {
        Policy::from_toml(POLICY).expect("valid test policy")
    }

    fn policy_with(extra: &str) -> Policy {
        Policy::from_toml(&format!("{POLICY}{extra}\n")).expect("valid test policy")
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2021, 5, 3, 8, 0, 0).unwrap()
    }

    fn pseudonym(n: u64) -> Pseudonym {
        Pseudonym::of(b"test key", &u128::from(n).to_le_bytes())
    }

    fn candidate(n: u64, group: u8, vaccines: &[&str], centres: &[&str]) -> Candidate {
        Candidate {
            pseudonym: pseudonym(n),
            group,
            age_band: "60-69".into(),
            waited_weeks: 0,
            declines: 0,
            vaccines: vaccines.iter().map(|v| v.to_string()).collect(),
            centres: centres.iter().map(|c| c.to_string()).collect(),
            ahead: false,
        }
    }

    fn pair(n: u128, centre: &str, vaccine: &str, days_ahead: i64) -> FreePair {
        FreePair {
            id: Uuid::from_u128(n),
            centre: centre.into(),
            vaccine: vaccine.into(),
            first_at: now() + Duration::days(days_ahead) + Duration::minutes(n as i64 % 600),
            second_at: (vaccine == "b").then(|| now() + Duration::days(days_ahead + 28)),
        }
    }

    fn seed(n: u8) -> Seed {
        Seed::from_bytes([n; 32])
    }

    /// Small random draws: up to 3 centres, both vaccines, all groups.
    fn any_input() -> impl Strategy<Value = DrawInput> {
        let centres = ["c0", "c1", "c2"];
        let candidates = (
            1u8..=3,
            prop::sample::subsequence(vec!["a", "b"], 1..=2),
            prop::sample::subsequence(centres.to_vec(), 0..=3),
            0u32..10,
            0u32..3,
        );
        let pairs = (
            prop::sample::select(centres.to_vec()),
            prop::sample::select(vec!["a", "b"]),
            0i64..20,
        );
        (
            prop::collection::vec(candidates, 0..40),
            prop::collection::vec(pairs, 0..30),
        )
            .prop_map(|(candidates, pairs)| DrawInput {
                drawn_at: now(),
                candidates: candidates
                    .into_iter()
                    .enumerate()
                    .map(
                        |(i, (group, vaccines, centres, waited_weeks, declines))| Candidate {
                            waited_weeks,
                            declines,
                            ..candidate(i as u64, group, &vaccines, &centres)
                        },
                    )
                    .collect(),
                pairs: pairs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (centre, vaccine, days))| pair(i as u128 + 1, centre, vaccine, days))
                    .collect(),
            })
    }

    fn may_take(candidate: &Candidate, pair: &FreePair) -> bool {
        candidate.vaccines.contains(&pair.vaccine) && candidate.centres.contains(&pair.centre)
    }

    fn by_pseudonym(input: &DrawInput) -> HashMap<Pseudonym, &Candidate> {
        input.candidates.iter().map(|c| (c.pseudonym, c)).collect()
    }

    fn by_id(input: &DrawInput) -> HashMap<Uuid, &FreePair> {
        input.pairs.iter().map(|p| (p.id, p)).collect()
    }

    proptest! {
        #[test]
        fn same_inputs_same_outcome_whatever_their_order(
            input in any_input(),
            seed_byte in any::<u8>(),
            rotation in 0usize..40,
        ) {
            let policy = policy();
            let outcome = draw(&policy, &seed(seed_byte), &input).unwrap();
            prop_assert_eq!(&draw(&policy, &seed(seed_byte), &input).unwrap(), &outcome);
            let mut shuffled = input.clone();
            shuffled.candidates.reverse();
            let by = rotation % shuffled.candidates.len().max(1);
            shuffled.candidates.rotate_left(by);
            shuffled.pairs.reverse();
            prop_assert_eq!(draw(&policy, &seed(seed_byte), &shuffled).unwrap(), outcome);
            prop_assert_eq!(input.digest(&[0; 32]), shuffled.digest(&[0; 32]));
        }

        #[test]
        fn nobody_gets_a_pair_they_may_not_have_and_nothing_is_used_twice(
            input in any_input(),
            seed_byte in any::<u8>(),
        ) {
            let outcome = draw(&policy(), &seed(seed_byte), &input).unwrap();
            let (people, pairs) = (by_pseudonym(&input), by_id(&input));
            let mut seen_people = HashSet::new();
            let mut seen_pairs = HashSet::new();
            for m in &outcome.matches {
                prop_assert!(may_take(people[&m.pseudonym], pairs[&m.pair]), "{:?}", m);
                prop_assert!(seen_people.insert(m.pseudonym));
                prop_assert!(seen_pairs.insert(m.pair));
                prop_assert!(m.expires_at > input.drawn_at && m.expires_at <= pairs[&m.pair].first_at);
            }
            for u in &outcome.unmatched {
                prop_assert!(seen_pairs.insert(u.pair), "pair both matched and unmatched");
            }
            prop_assert_eq!(seen_pairs.len(), input.pairs.len(), "every pair is accounted for");
        }

        #[test]
        fn leftovers_are_explained_and_nobody_unserved_could_have_had_one(
            input in any_input(),
            seed_byte in any::<u8>(),
        ) {
            let outcome = draw(&policy(), &seed(seed_byte), &input).unwrap();
            let served: HashSet<Pseudonym> = outcome.matches.iter().map(|m| m.pseudonym).collect();
            let pairs = by_id(&input);
            for u in &outcome.unmatched {
                let pair = pairs[&u.pair];
                let takers: Vec<&Candidate> = input.candidates.iter().filter(|c| may_take(c, pair)).collect();
                match u.reason {
                    UnmatchedReason::TooSoon => prop_assert!(pair.first_at - input.drawn_at < Duration::minutes(5)),
                    UnmatchedReason::NoOneEligible =>
                        prop_assert!(input.candidates.iter().all(|c| !c.vaccines.contains(&pair.vaccine))),
                    UnmatchedReason::OutOfReach => prop_assert!(takers.is_empty()),
                    UnmatchedReason::PoolServed => {
                        prop_assert!(!takers.is_empty());
                        prop_assert!(takers.iter().all(|c| served.contains(&c.pseudonym)));
                    }
                }
            }
        }

        /// Serial dictatorship: whoever chose earlier never preferred a pair someone later got.
        #[test]
        fn everyone_gets_the_best_pair_left_at_their_turn(
            input in any_input(),
            seed_byte in any::<u8>(),
        ) {
            let outcome = draw(&policy(), &seed(seed_byte), &input).unwrap();
            let (people, pairs) = (by_pseudonym(&input), by_id(&input));
            for (i, earlier) in outcome.matches.iter().enumerate() {
                for later in &outcome.matches[i + 1..] {
                    let (chooser, got, other) = (people[&earlier.pseudonym], pairs[&earlier.pair], pairs[&later.pair]);
                    if may_take(chooser, other) {
                        prop_assert!(got.first_at <= other.first_at, "{:?} passed over {:?}", got, other);
                    }
                }
            }
        }

        #[test]
        fn a_lower_tier_is_never_served_before_a_higher_one_could_be(
            input in any_input(),
            seed_byte in any::<u8>(),
        ) {
            let outcome = draw(&policy(), &seed(seed_byte), &input).unwrap();
            let (people, pairs) = (by_pseudonym(&input), by_id(&input));
            let served: HashSet<Pseudonym> = outcome.matches.iter().map(|m| m.pseudonym).collect();
            for m in &outcome.matches {
                if people[&m.pseudonym].group == 1 {
                    continue;
                }
                // A tier-2 candidate got this pair, so every tier-1 candidate who could take
                // it was already served.
                for c in input.candidates.iter().filter(|c| c.group == 1 && may_take(c, pairs[&m.pair])) {
                    prop_assert!(served.contains(&c.pseudonym));
                }
            }
        }

        #[test]
        fn a_draw_offers_something_exactly_when_its_openings_say_someone_could_take_a_pair(
            input in any_input(),
            seed_byte in any::<u8>(),
        ) {
            let drawn = draw(&policy(), &seed(seed_byte), &input).unwrap();
            let pairs_only = DrawInput { candidates: Vec::new(), ..input.clone() };
            let mut openings = Openings::of(&policy().draw, &pairs_only).unwrap();
            let possible = input.candidates.iter().any(|c| openings.open_to(c));
            prop_assert_eq!(!drawn.matches.is_empty(), possible);
            if openings.pairs() == 0 {
                prop_assert!(!possible);
            }
        }

        #[test]
        fn the_lottery_order_is_a_permutation_of_the_pool(input in any_input(), seed_byte in any::<u8>()) {
            let (order, keys) = lottery_order(&policy(), &seed(seed_byte), &input.candidates).unwrap();
            for (c, key) in input.candidates.iter().zip(&keys) {
                prop_assert_eq!(*key, lottery_key(&seed(seed_byte), &c.pseudonym, weight(&policy(), c).unwrap()));
            }
            let mut sorted = order.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..input.candidates.len()).collect::<Vec<_>>());
            let tiers: Vec<u8> = order.iter().map(|&i| u8::from(input.candidates[i].group != 1)).collect();
            prop_assert!(tiers.windows(2).all(|w| w[0] <= w[1]), "tiers are drawn in order");
            prop_assert_eq!(order, fully_sorted(&policy(), &seed(seed_byte), &input.candidates));
        }

        #[test]
        fn a_reserve_serves_its_group_first_up_to_its_share(
            input in any_input(),
            seed_byte in any::<u8>(),
        ) {
            let policy = policy_with("reserves = [{ groups = [3], share = 0.5 }]");
            let outcome = draw(&policy, &seed(seed_byte), &input).unwrap();
            let people = by_pseudonym(&input);
            let stocked = input.pairs.iter().filter(|p| p.first_at - input.drawn_at >= Duration::minutes(5)).count();
            let quota = stocked / 2;
            let reserved: Vec<&Match> = outcome.matches.iter().filter(|m| m.reserve == Some(0)).collect();
            prop_assert!(reserved.len() <= quota);
            prop_assert!(reserved.iter().all(|m| people[&m.pseudonym].group == 3));
            // Reserve offers come first, in draw order.
            prop_assert!(outcome.matches.iter().take(reserved.len()).all(|m| m.reserve == Some(0)));
            if reserved.len() < quota {
                // The reserve fell short only because no more group-3 candidate could be served.
                let pairs = by_id(&input);
                let served: HashSet<Pseudonym> = outcome.matches.iter().map(|m| m.pseudonym).collect();
                for u in outcome.unmatched.iter().filter(|u| u.reason != UnmatchedReason::TooSoon) {
                    for c in input.candidates.iter().filter(|c| c.group == 3 && may_take(c, pairs[&u.pair])) {
                        prop_assert!(served.contains(&c.pseudonym));
                    }
                }
            }
        }

        #[test]
        fn a_manifest_replays_and_any_tampering_is_caught(
            input in any_input(),
            seed_byte in any::<u8>(),
            tamper in 0usize..4,
        ) {
            let mut manifest = manifest_of(&policy_with(""), POLICY, seed(seed_byte), input);
            prop_assert!(manifest.replay().reproduced(), "{:?}", manifest.replay());
            let tampered = match tamper {
                0 => { manifest.seed = hex(&[seed_byte.wrapping_add(1); 32]); true }
                1 => manifest.matches.pop().is_some(),
                2 => manifest.candidates.first_mut().map(|c| c.candidate.group = if c.candidate.group == 1 { 2 } else { 1 }).is_some(),
                _ => manifest.pairs.first_mut().map(|p| p.first_at += Duration::minutes(1)).is_some(),
            };
            prop_assert_eq!(!manifest.replay().reproduced(), tampered);
        }
    }

    fn manifest_of(policy: &Policy, document: &str, seed: Seed, input: DrawInput) -> Manifest {
        let policy_digest: [u8; 32] = Sha256::digest(document.as_bytes()).into();
        let outcome = draw(policy, &seed, &input).unwrap();
        Manifest {
            draw: Uuid::from_u128(7),
            region: "test".into(),
            policy_version: 1,
            policy_digest: hex(&policy_digest),
            policy: document.into(),
            seed_commitment: hex(&seed.commitment()),
            seed: hex(seed.as_bytes()),
            beacon: None,
            drawn_at: input.drawn_at,
            inputs_digest: hex(&input.digest(&policy_digest)),
            outputs_digest: hex(&outcome.digest()),
            candidates: input
                .candidates
                .iter()
                .map(|c| PublishedCandidate {
                    lottery_key: LotteryKey::exact(lottery_key(
                        &seed,
                        &c.pseudonym,
                        weight(policy, c).unwrap(),
                    )),
                    candidate: c.clone(),
                })
                .collect(),
            pairs: input.pairs,
            matches: outcome.matches,
            unmatched: outcome.unmatched,
        }
    }

    /// The order as the draw reads it, a little at a time, and every key.
    fn lottery_order(
        policy: &Policy,
        seed: &Seed,
        candidates: &[Candidate],
    ) -> Result<(Vec<usize>, Vec<f64>), DrawError> {
        let mut order = Order::new(policy, seed, candidates, true)?;
        let mut placed = Vec::new();
        while let Some(i) = order.at(placed.len(), 1) {
            placed.push(i);
        }
        Ok((placed, order.all_keys()))
    }

    /// The order by sorting everyone: ahead first, tier, key descending, pseudonym.
    fn fully_sorted(policy: &Policy, seed: &Seed, candidates: &[Candidate]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        let rank = |c: &Candidate| {
            let key = lottery_key(seed, &c.pseudonym, weight(policy, c).unwrap());
            ((!c.ahead, policy.group(c.group).unwrap().tier), key)
        };
        order.sort_by(|&a, &b| {
            let (ra, ka) = rank(&candidates[a]);
            let (rb, kb) = rank(&candidates[b]);
            ra.cmp(&rb)
                .then(kb.total_cmp(&ka))
                .then(candidates[a].pseudonym.cmp(&candidates[b].pseudonym))
        });
        order
    }

    #[test]
    fn the_order_read_a_chunk_at_a_time_is_the_fully_sorted_order() {
        let policy = policy_with("weight_after_decline = 0.5");
        let candidates: Vec<Candidate> = (0..5_000u64)
            .map(|n| {
                let mut c = candidate(n, 1 + (n % 3) as u8, &["a"], &["x"]);
                c.declines = (n % 4) as u32;
                c.ahead = n % 97 == 0;
                c
            })
            .collect();
        for s in 0..3 {
            let (order, keys) = lottery_order(&policy, &seed(s), &candidates).unwrap();
            assert_eq!(order, fully_sorted(&policy, &seed(s), &candidates));
            for (c, key) in candidates.iter().zip(&keys) {
                assert_eq!(
                    key.to_bits(),
                    lottery_key(&seed(s), &c.pseudonym, weight(&policy, c).unwrap()).to_bits()
                );
            }
        }
    }

    #[test]
    fn the_batched_chacha_gives_the_generators_first_word_on_every_stream() {
        for n in 0..64u64 {
            let mut bytes = [0u8; 32];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = (n as u8).wrapping_mul(31).wrapping_add(i as u8 * 7);
            }
            let seed = Seed(bytes);
            let streams: [u64; LANES] =
                std::array::from_fn(|l| (n << 40) ^ (l as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let words = first_words(&seed, &streams);
            for (stream, word) in streams.iter().zip(words) {
                let mut rng = ChaCha20Rng::from_seed(seed.0);
                rng.set_stream(*stream);
                assert_eq!(
                    word,
                    rand::RngCore::next_u64(&mut rng),
                    "seed {n}, stream {stream:x}"
                );
            }
        }
    }

    #[test]
    fn those_sent_back_by_a_centre_go_before_every_tier_and_the_record_says_so() {
        // Group 3 is the last tier; one of its people lost a booking to a centre's cancellation.
        let mut returning = candidate(0, 3, &["a"], &["c0"]);
        returning.ahead = true;
        let mut candidates: Vec<Candidate> = (1..40).map(|n| candidate(n, 1, &["a"], &["c0"])).collect();
        candidates.push(returning.clone());
        let input = DrawInput {
            drawn_at: now(),
            pairs: vec![pair(1, "c0", "a", 2)],
            candidates,
        };
        for n in 0..20 {
            let outcome = draw(&policy(), &seed(n), &input).unwrap();
            assert_eq!(outcome.matches[0].pseudonym, returning.pseudonym, "seed {n}");
        }
        // The flag is an input like any other: changing it changes the digest.
        let mut flipped = input.clone();
        flipped.candidates.last_mut().unwrap().ahead = false;
        assert_ne!(input.digest(&[0; 32]), flipped.digest(&[0; 32]));
        let manifest = manifest_of(&policy(), POLICY, seed(1), input);
        let back: Manifest = serde_json::from_str(&serde_json::to_string(&manifest).unwrap()).unwrap();
        assert!(back.replay().reproduced(), "{:?}", back.replay());
    }

    #[test]
    fn a_manifest_survives_json_and_a_beacon_seed_is_checked() {
        let input = DrawInput {
            drawn_at: now(),
            pairs: vec![pair(1, "c0", "a", 2), pair(2, "c0", "b", 3)],
            candidates: vec![
                candidate(1, 1, &["a"], &["c0"]),
                candidate(2, 2, &["a", "b"], &["c0"]),
            ],
        };
        let beacon = Seed::from_beacon(&[0xab; 48]);
        let mut manifest = manifest_of(&policy(), POLICY, beacon, input);
        manifest.beacon = Some(Beacon {
            round: 1234,
            randomness: hex(&[0xab; 48]),
        });
        let json = serde_json::to_string(&manifest).unwrap();
        let back: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, manifest);
        assert!(back.replay().reproduced(), "{:?}", back.replay());
        assert_eq!(back.matches.len(), 2);

        manifest.beacon.as_mut().unwrap().round = 1235;
        manifest.beacon.as_mut().unwrap().randomness = hex(&[0xac; 48]);
        let problems = manifest.replay().problems;
        assert_eq!(
            problems,
            ["the seed is not the one derived from beacon round 1235"]
        );
    }

    /// The manifest's JSON with one lottery key's text replaced: the first key whose last
    /// mantissa digit can change while the text still reads back as the same double.
    fn with_a_key_retyped(json: &str) -> Option<String> {
        const FIELD: &str = "\"lottery_key\":";
        let mut from = 0;
        while let Some(at) = json[from..].find(FIELD) {
            let start = from + at + FIELD.len();
            let end = start + json[start..].find([',', '}'])?;
            let key = json[start..end].trim_matches('"');
            let digits = key.find('e').unwrap_or(key.len());
            let value: f64 = key.parse().ok()?;
            for digit in '0'..='9' {
                let retyped = format!("{}{digit}{}", &key[..digits - 1], &key[digits..]);
                if retyped != key && retyped.parse::<f64>().ok()?.to_bits() == value.to_bits() {
                    let token = json[start..end].replace(key, &retyped);
                    return Some(format!("{}{token}{}", &json[..start], &json[end..]));
                }
            }
            from = end;
        }
        None
    }

    /// A draw of one pair among `candidates` people, recorded.
    fn one_pair_manifest(candidates: u64) -> Manifest {
        let input = DrawInput {
            drawn_at: now(),
            pairs: vec![pair(1, "c0", "a", 2)],
            candidates: (0..candidates)
                .map(|n| candidate(n, 2, &["a"], &["c0"]))
                .collect(),
        };
        manifest_of(&policy(), POLICY, seed(3), input)
    }

    #[test]
    fn a_published_key_with_a_changed_last_digit_does_not_reproduce() {
        let manifest = one_pair_manifest(40);
        let json = serde_json::to_string(&manifest).unwrap();
        let back: Manifest = serde_json::from_str(&json).unwrap();
        assert!(back.replay().reproduced(), "{:?}", back.replay());
        // The same double, other digits: a key is what was published, not what it rounds to.
        let retyped = with_a_key_retyped(&json).expect("some key has 17 significant digits");
        let tampered: Manifest = serde_json::from_str(&retyped).unwrap();
        assert_eq!(
            tampered.replay().problems,
            ["1 published lottery keys differ from the ones the seed gives"]
        );
    }

    #[test]
    fn keys_of_older_manifests_published_as_numbers_are_read_and_said_to_be_checked_in_part() {
        let manifest = one_pair_manifest(3);
        let mut json: serde_json::Value = serde_json::to_value(&manifest).unwrap();
        for c in json["candidates"].as_array_mut().unwrap() {
            let key: f64 = c["lottery_key"].as_str().unwrap().parse().unwrap();
            c["lottery_key"] = key.into();
        }
        let old: Manifest = serde_json::from_value(json).unwrap();
        let replay = old.replay();
        assert!(replay.reproduced(), "{replay:?}");
        assert!(
            replay.notes[0].starts_with("3 lottery keys are published as numbers"),
            "{replay:?}"
        );
        assert!(manifest.replay().notes.is_empty());
    }

    #[test]
    fn bad_inputs_are_refused_by_name() {
        let twice = DrawInput {
            drawn_at: now(),
            pairs: vec![],
            candidates: vec![candidate(1, 1, &["a"], &["c0"]), candidate(1, 2, &["a"], &["c0"])],
        };
        assert_eq!(
            draw(&policy(), &seed(1), &twice),
            Err(DrawError::DuplicateCandidate(pseudonym(1)))
        );
        let unknown = DrawInput {
            drawn_at: now(),
            pairs: vec![],
            candidates: vec![candidate(1, 9, &["a"], &["c0"])],
        };
        assert!(matches!(
            draw(&policy(), &seed(1), &unknown),
            Err(DrawError::UnknownGroup { group: 9, .. })
        ));
        let pairs_twice = DrawInput {
            drawn_at: now(),
            pairs: vec![pair(1, "c0", "a", 1), pair(1, "c0", "a", 2)],
            candidates: vec![],
        };
        assert_eq!(
            draw(&policy(), &seed(1), &pairs_twice),
            Err(DrawError::DuplicatePair(Uuid::from_u128(1)))
        );
    }

    #[test]
    fn a_repeated_pseudonym_anywhere_in_a_large_pool_is_refused_by_the_smallest() {
        let mut candidates: Vec<Candidate> =
            (0..5_000u64).map(|n| candidate(n, 1, &["a"], &["c0"])).collect();
        assert_eq!(
            repeated(
                &candidates,
                candidates.iter().map(|c| hash_of(&c.pseudonym)).collect()
            ),
            None
        );
        candidates[4_999].pseudonym = pseudonym(17);
        candidates[3].pseudonym = pseudonym(4_000);
        candidates[2_500].group = 9;
        let smallest = pseudonym(17).min(pseudonym(4_000));
        let input = DrawInput {
            drawn_at: now(),
            pairs: vec![],
            candidates,
        };
        assert_eq!(
            draw(&policy(), &seed(1), &input),
            Err(DrawError::DuplicateCandidate(smallest))
        );
    }

    #[test]
    fn short_notice_pairs_get_short_windows_and_none_outlives_its_appointment() {
        let settings = policy().draw;
        let at = now();
        let in_days = at + Duration::days(3);
        assert_eq!(
            offer_expiry(&settings, at, in_days),
            Some(at + Duration::hours(24))
        );
        let in_hours = at + Duration::hours(5);
        assert_eq!(
            offer_expiry(&settings, at, in_hours),
            Some(at + Duration::minutes(30))
        );
        let in_ten_minutes = at + Duration::minutes(10);
        assert_eq!(offer_expiry(&settings, at, in_ten_minutes), Some(in_ten_minutes));
        assert_eq!(offer_expiry(&settings, at, at + Duration::minutes(4)), None);
        assert_eq!(offer_expiry(&settings, at, at - Duration::minutes(4)), None);
    }

    #[test]
    fn waiting_raises_and_declining_lowers_the_weight_as_the_policy_says() {
        let mut policy = policy_with("weight_after_decline = 0.5");
        policy.draw.waiting_time_weight_per_week = 0.1;
        let mut c = candidate(1, 3, &["a"], &["c0"]);
        assert_eq!(weight(&policy, &c), Some(3.0));
        c.waited_weeks = 10;
        assert!((weight(&policy, &c).unwrap() - 6.0).abs() < 1e-12);
        c.declines = 2;
        assert!((weight(&policy, &c).unwrap() - 1.5).abs() < 1e-12);
        c.group = 42;
        assert_eq!(weight(&policy, &c), None);
    }

    /// Offer rates follow the weights: in a tier of weight-1 and weight-3 candidates competing
    /// for one pair, the heavier win 3/4 of the time. A chi-square test with one degree of
    /// freedom at significance 0.001 (critical value 10.83) over 4,000 seeded draws catches a
    /// broken key (a plain shuffle gives 1/2, which is off by more than 30 standard errors).
    #[test]
    fn offer_rates_follow_the_policy_weights() {
        let policy = policy();
        let runs = 4_000u32;
        let mut heavy_wins = 0u32;
        for run in 0..runs {
            let mut bytes = [0; 32];
            bytes[..4].copy_from_slice(&run.to_le_bytes());
            let input = DrawInput {
                drawn_at: now(),
                pairs: vec![pair(1, "c0", "a", 2)],
                candidates: vec![candidate(1, 2, &["a"], &["c0"]), candidate(2, 3, &["a"], &["c0"])],
            };
            let outcome = draw(&policy, &Seed::from_bytes(bytes), &input).unwrap();
            heavy_wins += u32::from(outcome.matches[0].pseudonym == pseudonym(2));
        }
        let expected = f64::from(runs) * 0.75;
        let observed = f64::from(heavy_wins);
        let other_expected = f64::from(runs) - expected;
        let chi2 = (observed - expected).powi(2) / expected
            + ((f64::from(runs) - observed) - other_expected).powi(2) / other_expected;
        assert!(
            chi2 < 10.83,
            "heavier group won {heavy_wins} of {runs} (chi2 {chi2:.2})"
        );
    }
}
