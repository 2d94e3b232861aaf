//! `drawbridge audit`: replays recorded draws and tests them for bias.
//!
//! For each completed draw: the manifest must replay exactly, and within each tier the early
//! half of the lottery order must be composed as the policy weights predict, whether people
//! are grouped by priority group, by registration time or by the order their rows sit in the
//! database (see `drawbridge_domain::allocation::fairness`). The auditor needs the hash key, because only
//! it links pseudonyms to registration times; what it publishes stays pseudonymous.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use drawbridge_domain::allocation::draw::{weight, Pseudonym};
use drawbridge_domain::allocation::fairness::{
    early_half_test, quantile_cells, uniformity_test, Contender, TestResult,
};
use drawbridge_domain::Policy;
use drawbridge_platform::draws::{self, ManifestError};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use drawbridge_platform::statements;
use drawbridge_platform::states::DrawState;

statements! {
    REGISTRANTS_IN_STORAGE_ORDER =
        "SELECT id, created_at FROM registrants WHERE region_id = $1 ORDER BY ctid";
}

/// Registration-time and row-order cells: quintiles.
const QUANTILES: usize = 5;

/// The audit of one draw.
#[derive(Debug, Serialize)]
pub struct DrawAudit {
    pub draw: Uuid,
    pub region: String,
    pub pool: usize,
    /// Discrepancies found by replaying the manifest, or candidates the auditor could not
    /// link to registrants; empty when all is well.
    pub problems: Vec<String>,
    /// The bias tests that had enough candidates to run.
    pub tests: Vec<TestResult>,
}

impl DrawAudit {
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.tests.iter().all(|t| t.passed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Where each registrant of a region stands in registration time and in row order.
struct Ranks {
    registration: HashMap<Pseudonym, usize>,
    row: HashMap<Pseudonym, usize>,
}

impl Ranks {
    async fn load(pool: &PgPool, hash_key: &[u8], region: &str) -> Result<Ranks, sqlx::Error> {
        let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(REGISTRANTS_IN_STORAGE_ORDER)
            .bind(region)
            .fetch_all(pool)
            .await?;
        let pseudonyms: Vec<Pseudonym> = rows
            .iter()
            .map(|(id, _)| Pseudonym::of(hash_key, id.as_bytes()))
            .collect();
        let row = pseudonyms
            .iter()
            .enumerate()
            .map(|(rank, p)| (*p, rank))
            .collect();
        let mut by_time: Vec<usize> = (0..rows.len()).collect();
        by_time.sort_by_key(|&i| (rows[i].1, rows[i].0));
        let registration = by_time
            .iter()
            .enumerate()
            .map(|(rank, &i)| (pseudonyms[i], rank))
            .collect();
        Ok(Ranks { registration, row })
    }
}

/// Audits the `last` newest completed draws (of `region`, or of every region).
pub async fn run(
    pool: &PgPool,
    hash_key: &[u8],
    region: Option<&str>,
    last: i64,
) -> Result<Vec<DrawAudit>, AuditError> {
    let mut ranks: HashMap<String, Ranks> = HashMap::new();
    let mut audits = Vec::new();
    for summary in draws::list(pool, region, i64::MAX).await? {
        if summary.state != DrawState::Completed {
            continue;
        }
        if audits.len() as i64 >= last {
            break;
        }
        let Some(manifest) = draws::manifest(pool, summary.id).await? else {
            continue;
        };
        let mut problems = manifest.replay().problems;
        let mut tests = Vec::new();
        if let Ok(policy) = Policy::from_toml(&manifest.policy) {
            if !ranks.contains_key(&manifest.region) {
                let loaded = Ranks::load(pool, hash_key, &manifest.region).await?;
                ranks.insert(manifest.region.clone(), loaded);
            }
            let ranks = &ranks[&manifest.region];
            let candidates: Vec<_> = manifest
                .candidates
                .iter()
                .filter_map(|c| {
                    let tier = policy.group(c.candidate.group)?.tier;
                    let contender = Contender {
                        tier,
                        weight: weight(&policy, &c.candidate)?,
                        key: c.lottery_key.value(),
                    };
                    Some((contender, &c.candidate))
                })
                .collect();
            let unlinked = candidates
                .iter()
                .filter(|(_, c)| !ranks.registration.contains_key(&c.pseudonym))
                .count();
            if unlinked > 0 {
                // Without the links the time and row-order tests would test nothing.
                problems.push(format!(
                    "{unlinked} candidates cannot be linked to a registrant: is secrets.hash_key the one \
                     the allocator used?"
                ));
            }
            let contenders: Vec<Contender> = candidates.iter().map(|(c, _)| *c).collect();
            let groups: Vec<usize> = candidates.iter().map(|(_, c)| usize::from(c.group)).collect();
            let rank_in = |ranks: &HashMap<Pseudonym, usize>| -> Vec<usize> {
                // Relative ranks among this draw's pool, so quintiles are of the pool.
                let mut order: Vec<usize> = (0..candidates.len()).collect();
                order.sort_by_key(|&i| {
                    ranks
                        .get(&candidates[i].1.pseudonym)
                        .copied()
                        .unwrap_or(usize::MAX)
                });
                let mut rank = vec![0; candidates.len()];
                for (r, &i) in order.iter().enumerate() {
                    rank[i] = r;
                }
                quantile_cells(&rank, QUANTILES)
            };
            tests.extend(early_half_test(
                "offer chances follow the group weights",
                &contenders,
                &groups,
            ));
            tests.extend(early_half_test(
                "registration time does not matter beyond the weights",
                &contenders,
                &rank_in(&ranks.registration),
            ));
            tests.extend(early_half_test(
                "database row order does not matter",
                &contenders,
                &rank_in(&ranks.row),
            ));
            tests.extend(uniformity_test(&contenders));
        }
        audits.push(DrawAudit {
            draw: manifest.draw,
            region: manifest.region,
            pool: manifest.candidates.len(),
            problems,
            tests,
        });
    }
    Ok(audits)
}
