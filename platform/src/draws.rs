//! Reading recorded draws: summaries for listings and full manifests for anyone who wants to
//! replay one. The allocator writes these records; the gateway, the CLI and the tests read
//! them through here, so a manifest is assembled in exactly one way.

use chrono::{DateTime, Utc};
use drawbridge_domain::allocation::draw::{
    hex, Beacon, Candidate, FreePair, LotteryKey, Manifest, Match, Pseudonym, PublishedCandidate, Unmatched,
    UnmatchedReason,
};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::statements;
use crate::states::DrawState;

/// The columns of a [`DrawSummary`], for the statements that list draws.
macro_rules! summary {
    ($where:literal) => {
        concat!(
            "SELECT id, region_id AS region, policy_version, state,
                    encode(seed_commitment, 'hex') AS seed_commitment, encode(seed, 'hex') AS seed,
                    beacon_round, encode(inputs_digest, 'hex') AS inputs_digest,
                    encode(outputs_digest, 'hex') AS outputs_digest, manifest AS figures, started_at,
                    completed_at
             FROM draws ",
            $where
        )
    };
}

statements! {
    /// The newest draws first, optionally of one region (`$1`), at most `$2`.
    NEWEST = summary!("WHERE $1::text IS NULL OR region_id = $1 ORDER BY started_at DESC, id LIMIT $2");
    SUMMARY = summary!("WHERE id = $1");
    MANIFEST_HEADER =
        "SELECT d.region_id, d.policy_version, d.state, d.seed_commitment, d.seed, d.beacon_round,
                d.beacon_randomness, d.inputs_digest, d.outputs_digest, d.completed_at,
                d.manifest->>'drawn_at' AS drawn_at, p.document, p.digest
         FROM draws d JOIN policies p ON p.region_id = d.region_id AND p.version = d.policy_version
         WHERE d.id = $1";
    MANIFEST_PAIRS =
        "SELECT slot_pair_id, centre_id, vaccine, first_slot_at, second_slot_at, unmatched_reason
         FROM draw_pairs WHERE draw_id = $1 ORDER BY slot_pair_id";
    MANIFEST_CANDIDATES =
        "SELECT c.pseudonym, c.group_id, c.age_band, c.waited_weeks, c.declines, p.vaccines, p.centres,
                c.lottery_key, c.ahead
         FROM draw_candidates c JOIN draw_profiles p ON p.draw_id = c.draw_id AND p.profile = c.profile
         WHERE c.draw_id = $1 ORDER BY c.pseudonym";
    MANIFEST_MATCHES =
        "SELECT pseudonym, slot_pair_id, expires_at, reserve FROM draw_matches
         WHERE draw_id = $1 ORDER BY position";
}

/// One draw as listed: its commitments, and once completed its seed, digests and figures.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DrawSummary {
    pub id: Uuid,
    pub region: String,
    pub policy_version: i32,
    /// Committed while running (or if it died before completing), then completed or failed.
    pub state: DrawState,
    pub seed_commitment: String,
    pub seed: Option<String>,
    pub beacon_round: Option<i64>,
    pub inputs_digest: Option<String>,
    pub outputs_digest: Option<String>,
    /// Pool size, free pairs, offers, unmatched pairs by reason, duration.
    pub figures: Option<serde_json::Value>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// The newest draws first, optionally of one region, at most `limit`.
pub async fn list(pool: &PgPool, region: Option<&str>, limit: i64) -> Result<Vec<DrawSummary>, sqlx::Error> {
    sqlx::query_as(NEWEST)
        .bind(region)
        .bind(limit)
        .fetch_all(pool)
        .await
}

pub async fn summary(pool: &PgPool, id: Uuid) -> Result<Option<DrawSummary>, sqlx::Error> {
    sqlx::query_as(SUMMARY).bind(id).fetch_optional(pool).await
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("draw {0} has not completed, so its seed and outcome are not published")]
    NotCompleted(Uuid),
    #[error("the record of draw {draw} is damaged: {detail}")]
    Damaged { draw: Uuid, detail: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct Header {
    region_id: String,
    policy_version: i32,
    state: DrawState,
    seed_commitment: Vec<u8>,
    seed: Option<Vec<u8>>,
    beacon_round: Option<i64>,
    beacon_randomness: Option<Vec<u8>>,
    inputs_digest: Option<Vec<u8>>,
    outputs_digest: Option<Vec<u8>>,
    completed_at: Option<DateTime<Utc>>,
    drawn_at: Option<String>,
    document: String,
    digest: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct PairRow {
    slot_pair_id: Uuid,
    centre_id: String,
    vaccine: String,
    first_slot_at: DateTime<Utc>,
    second_slot_at: Option<DateTime<Utc>>,
    unmatched_reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CandidateRow {
    pseudonym: Vec<u8>,
    group_id: i16,
    age_band: String,
    waited_weeks: i32,
    declines: i32,
    vaccines: Vec<String>,
    centres: Vec<String>,
    lottery_key: f64,
    ahead: bool,
}

#[derive(sqlx::FromRow)]
struct MatchRow {
    pseudonym: Vec<u8>,
    slot_pair_id: Uuid,
    expires_at: DateTime<Utc>,
    reserve: Option<i16>,
}

/// The full, pseudonymised manifest of a completed draw, or `None` for an unknown id.
pub async fn manifest(pool: &PgPool, id: Uuid) -> Result<Option<Manifest>, ManifestError> {
    let header: Option<Header> = sqlx::query_as(MANIFEST_HEADER)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    let Some(header) = header else {
        return Ok(None);
    };
    let damaged = |detail: &str| ManifestError::Damaged {
        draw: id,
        detail: detail.to_owned(),
    };
    let (Some(seed), Some(inputs_digest), Some(outputs_digest), Some(_)) = (
        &header.seed,
        &header.inputs_digest,
        &header.outputs_digest,
        header.completed_at,
    ) else {
        return Err(ManifestError::NotCompleted(id));
    };
    if header.state != DrawState::Completed {
        return Err(ManifestError::NotCompleted(id));
    }
    let drawn_at: DateTime<Utc> = header
        .drawn_at
        .as_deref()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| damaged("no drawing time"))?;
    let pair_rows: Vec<PairRow> = sqlx::query_as(MANIFEST_PAIRS).bind(id).fetch_all(pool).await?;
    let candidate_rows: Vec<CandidateRow> = sqlx::query_as(MANIFEST_CANDIDATES)
        .bind(id)
        .fetch_all(pool)
        .await?;
    let match_rows: Vec<MatchRow> = sqlx::query_as(MANIFEST_MATCHES).bind(id).fetch_all(pool).await?;
    let pseudonym = |bytes: Vec<u8>| -> Result<Pseudonym, ManifestError> {
        Ok(Pseudonym::from_bytes(
            bytes
                .try_into()
                .map_err(|_| damaged("a pseudonym is not 16 bytes"))?,
        ))
    };
    let mut unmatched = Vec::new();
    let mut pairs = Vec::with_capacity(pair_rows.len());
    for row in pair_rows {
        if let Some(reason) = &row.unmatched_reason {
            let reason: UnmatchedReason = serde_json::from_value(serde_json::Value::String(reason.clone()))
                .map_err(|_| damaged("unknown unmatched reason"))?;
            unmatched.push(Unmatched {
                pair: row.slot_pair_id,
                reason,
            });
        }
        pairs.push(FreePair {
            id: row.slot_pair_id,
            centre: row.centre_id,
            vaccine: row.vaccine,
            first_at: row.first_slot_at,
            second_at: row.second_slot_at,
        });
    }
    let candidates = candidate_rows
        .into_iter()
        .map(|row| {
            Ok(PublishedCandidate {
                candidate: Candidate {
                    pseudonym: pseudonym(row.pseudonym)?,
                    group: u8::try_from(row.group_id).map_err(|_| damaged("group out of range"))?,
                    age_band: row.age_band,
                    waited_weeks: row.waited_weeks as u32,
                    declines: row.declines as u32,
                    vaccines: row.vaccines,
                    centres: row.centres,
                    ahead: row.ahead,
                },
                lottery_key: LotteryKey::exact(row.lottery_key),
            })
        })
        .collect::<Result<Vec<_>, ManifestError>>()?;
    let matches = match_rows
        .into_iter()
        .map(|row| {
            Ok(Match {
                pseudonym: pseudonym(row.pseudonym)?,
                pair: row.slot_pair_id,
                expires_at: row.expires_at,
                reserve: row.reserve.map(|r| r as usize),
            })
        })
        .collect::<Result<Vec<_>, ManifestError>>()?;
    Ok(Some(Manifest {
        draw: id,
        region: header.region_id,
        policy_version: header.policy_version as u32,
        policy_digest: hex(&header.digest),
        policy: header.document,
        seed_commitment: hex(&header.seed_commitment),
        seed: hex(seed),
        beacon: header
            .beacon_round
            .zip(header.beacon_randomness.as_deref())
            .map(|(round, randomness)| Beacon {
                round: round as u64,
                randomness: hex(randomness),
            }),
        drawn_at,
        inputs_digest: hex(inputs_digest),
        outputs_digest: hex(outputs_digest),
        pairs,
        candidates,
        matches,
        unmatched,
    }))
}
