//! `drawbridge audit`: replays recorded draws and tests them for bias.
//!
//! For each completed draw: the manifest must replay exactly, and within each tier the early
//! half of the lottery order must be composed as the policy weights predict, whether people
//! are grouped by priority group, by registration time or by the order their rows sit in the
//! database (see `drawbridge_domain::allocation::fairness`). The registration-time and
//! row-order tests need the database and the hash key, because only they link pseudonyms to
//! registrants; from published manifests alone ([`manifests`]) the others run. Each test says
//! whether it passed, failed or could not run, and why not: a test that did not run is never
//! counted as passed.
//!
//! With each audit come the draw's offer rates by priority group and age band (from the
//! manifest) and, where the database links pseudonyms to registrants, by registration week and
//! channel: figures of cells, never of a person. `drawbridge audit` and the analysts' console
//! (`/staff/draws/{id}`) both call this module.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use drawbridge_domain::allocation::draw::{weight, Manifest, Pseudonym};
use drawbridge_domain::allocation::fairness::{
    age_band_order, early_half_test, offer_rates, quantile_cells, uniformity_test, Contender, OfferRate,
    TestResult, MIN_EXPECTED, UNIFORMITY_BINS,
};
use drawbridge_domain::Policy;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::draws::{self, ManifestError};
use crate::statements;
use crate::states::DrawState;

statements! {
    /// Each registrant of a region with their registration time, its ISO week in the region's
    /// time zone and their channel, in the order the rows sit in the table.
    REGISTRANTS_IN_STORAGE_ORDER =
        "SELECT r.id, r.created_at, to_char(r.created_at AT TIME ZONE g.timezone, 'IYYY-\"W\"IW') AS week,
                r.channel
         FROM registrants r JOIN regions g ON g.id = r.region_id
         WHERE r.region_id = $1 ORDER BY r.ctid";
}

/// Registration-time and row-order cells: quintiles.
const QUANTILES: usize = 5;

/// The bias tests, by name.
pub const GROUP_WEIGHTS: &str = "offer chances follow the group weights";
pub const REGISTRATION_TIME: &str = "registration time does not matter beyond the weights";
pub const ROW_ORDER: &str = "database row order does not matter";
pub const UNIFORM: &str = "lottery numbers are uniform";

/// The audit of one draw.
#[derive(Debug, Serialize)]
pub struct DrawAudit {
    pub draw: Uuid,
    pub region: String,
    pub pool: usize,
    /// Discrepancies found by replaying the manifest, or candidates the auditor could not
    /// link to registrants; empty when all is well.
    pub problems: Vec<String>,
    /// What the replay could check only in part.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Every bias test: its result, or why it did not run.
    pub tests: Vec<BiasTest>,
    /// Offer rates by priority group and age band, and with the database's links by
    /// registration week and channel.
    pub offer_rates: Vec<OfferRates>,
}

/// The draw's offer rates with its pool split one way.
#[derive(Debug, Serialize)]
pub struct OfferRates {
    /// `priority_group`, `age_band`, `registration_week` or `channel`.
    pub by: &'static str,
    pub cells: Vec<OfferRate>,
}

/// One bias test of one draw.
#[derive(Debug, Serialize)]
pub struct BiasTest {
    pub name: &'static str,
    pub verdict: Verdict,
    /// Why the test did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_tested_because: Option<String>,
    /// The test's figures, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<TestResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    NotTested,
}

impl BiasTest {
    /// `result`, or not tested for `reason` when there was none.
    fn of(name: &'static str, result: Option<TestResult>, reason: impl FnOnce() -> String) -> BiasTest {
        match result {
            Some(result) => BiasTest {
                name,
                verdict: if result.passed {
                    Verdict::Passed
                } else {
                    Verdict::Failed
                },
                not_tested_because: None,
                result: Some(result),
            },
            None => BiasTest::not_tested(name, reason()),
        }
    }

    fn not_tested(name: &'static str, reason: String) -> BiasTest {
        BiasTest {
            name,
            verdict: Verdict::NotTested,
            not_tested_because: Some(reason),
            result: None,
        }
    }
}

impl DrawAudit {
    /// The draw replays and no test that ran failed.
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.tests.iter().all(|t| t.verdict != Verdict::Failed)
    }

    /// How many of its tests ran.
    pub fn tested(&self) -> usize {
        self.tests
            .iter()
            .filter(|t| t.verdict != Verdict::NotTested)
            .count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Where each registrant of a region stands in registration time and in row order, and their
/// registration week and channel.
struct Ranks {
    registration: HashMap<Pseudonym, usize>,
    row: HashMap<Pseudonym, usize>,
    /// Registration week (`2026-W49`) and channel (`web`, `callcentre`).
    cells: HashMap<Pseudonym, (String, String)>,
}

impl Ranks {
    async fn load(pool: &PgPool, hash_key: &[u8], region: &str) -> Result<Ranks, sqlx::Error> {
        let rows: Vec<(Uuid, DateTime<Utc>, String, String)> = sqlx::query_as(REGISTRANTS_IN_STORAGE_ORDER)
            .bind(region)
            .fetch_all(pool)
            .await?;
        let pseudonyms: Vec<Pseudonym> = rows
            .iter()
            .map(|(id, ..)| Pseudonym::of(hash_key, id.as_bytes()))
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
        let cells = pseudonyms
            .iter()
            .zip(rows)
            .map(|(p, (_, _, week, channel))| (*p, (week, channel)))
            .collect();
        Ok(Ranks {
            registration,
            row,
            cells,
        })
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
        if !ranks.contains_key(&manifest.region) {
            let loaded = Ranks::load(pool, hash_key, &manifest.region).await?;
            ranks.insert(manifest.region.clone(), loaded);
        }
        audits.push(audit(&manifest, ranks.get(&manifest.region)));
    }
    Ok(audits)
}

/// Audits the completed draw `id`, as [`run`] does; `None` for an unknown draw.
pub async fn draw(pool: &PgPool, hash_key: &[u8], id: Uuid) -> Result<Option<DrawAudit>, AuditError> {
    let Some(manifest) = draws::manifest(pool, id).await? else {
        return Ok(None);
    };
    let ranks = Ranks::load(pool, hash_key, &manifest.region).await?;
    Ok(Some(audit(&manifest, Some(&ranks))))
}

/// Audits published manifests alone, as anyone can: without the database and the hash key,
/// so the registration-time and row-order tests do not run.
pub fn manifests(manifests: &[Manifest]) -> Vec<DrawAudit> {
    manifests.iter().map(|m| audit(m, None)).collect()
}

/// Replays one manifest and runs the bias tests it allows; `ranks` links its pseudonyms to
/// registration times and rows.
fn audit(manifest: &Manifest, ranks: Option<&Ranks>) -> DrawAudit {
    let replay = manifest.replay();
    let mut audit = DrawAudit {
        draw: manifest.draw,
        region: manifest.region.clone(),
        pool: manifest.candidates.len(),
        problems: replay.problems,
        notes: replay.notes,
        tests: Vec::new(),
        offer_rates: rates(manifest, ranks),
    };
    let Ok(policy) = Policy::from_published(&manifest.policy) else {
        audit.tests = [GROUP_WEIGHTS, REGISTRATION_TIME, ROW_ORDER, UNIFORM]
            .into_iter()
            .map(|name| BiasTest::not_tested(name, "the policy document is invalid".into()))
            .collect();
        return audit;
    };
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
            Some((contender, c.candidate.pseudonym, c.candidate.group))
        })
        .collect();
    let contenders: Vec<Contender> = candidates.iter().map(|(c, _, _)| *c).collect();
    let tested = contenders.len();
    let too_few = |cells: &'static str| {
        move || {
            format!(
                "too few candidates: no tier of this pool of {tested} has two {cells} large enough \
                 to compare (each expecting {MIN_EXPECTED} or more in the tier's early half and in \
                 its late half)"
            )
        }
    };
    let groups: Vec<usize> = candidates.iter().map(|(_, _, g)| usize::from(*g)).collect();
    audit.tests.push(BiasTest::of(
        GROUP_WEIGHTS,
        early_half_test(GROUP_WEIGHTS, &contenders, &groups),
        too_few("priority groups"),
    ));
    let unlinked = ranks.map(|ranks| {
        candidates
            .iter()
            .filter(|(_, p, _)| !ranks.registration.contains_key(p))
            .count()
    });
    match (ranks, unlinked) {
        (Some(ranks), Some(0)) => {
            let rank_in = |ranks: &HashMap<Pseudonym, usize>| -> Vec<usize> {
                // Relative ranks among this draw's pool, so quintiles are of the pool.
                let mut order: Vec<usize> = (0..candidates.len()).collect();
                order.sort_by_key(|&i| ranks.get(&candidates[i].1).copied().unwrap_or(usize::MAX));
                let mut rank = vec![0; candidates.len()];
                for (r, &i) in order.iter().enumerate() {
                    rank[i] = r;
                }
                quantile_cells(&rank, QUANTILES)
            };
            for (name, ranks, cells) in [
                (
                    REGISTRATION_TIME,
                    &ranks.registration,
                    "registration-time quintiles",
                ),
                (ROW_ORDER, &ranks.row, "row-order quintiles"),
            ] {
                let result = early_half_test(name, &contenders, &rank_in(ranks));
                audit.tests.push(BiasTest::of(name, result, too_few(cells)));
            }
        }
        (_, Some(unlinked)) => {
            // Without the links the time and row-order tests would test nothing.
            let problem = format!(
                "{unlinked} candidates cannot be linked to a registrant: is secrets.hash_key the one \
                 the allocator used?"
            );
            for name in [REGISTRATION_TIME, ROW_ORDER] {
                audit.tests.push(BiasTest::not_tested(name, problem.clone()));
            }
            audit.problems.push(problem);
        }
        (_, None) => {
            for name in [REGISTRATION_TIME, ROW_ORDER] {
                audit.tests.push(BiasTest::not_tested(
                    name,
                    "needs each candidate's registration, which only the database and \
                     secrets.hash_key link to a pseudonym: a manifest alone cannot tell"
                        .into(),
                ));
            }
        }
    }
    audit
        .tests
        .push(BiasTest::of(UNIFORM, uniformity_test(&contenders), || {
            format!(
                "too few candidates: needs {} ({MIN_EXPECTED} per bin of {UNIFORMITY_BINS}), the pool has \
             {tested}",
                (MIN_EXPECTED * UNIFORMITY_BINS as f64) as usize,
            )
        }));
    audit
}

/// The draw's offer rates by priority group and age band, and with `ranks` by registration week
/// and channel (candidates the database does not link are left out of those two).
fn rates(manifest: &Manifest, ranks: Option<&Ranks>) -> Vec<OfferRates> {
    let offered: std::collections::HashSet<Pseudonym> =
        manifest.matches.iter().map(|m| m.pseudonym).collect();
    let candidates = || {
        manifest
            .candidates
            .iter()
            .map(|c| (&c.candidate, offered.contains(&c.candidate.pseudonym)))
    };
    let mut rates = vec![
        OfferRates {
            by: "priority_group",
            cells: offer_rates(candidates().map(|(c, o)| (c.group, o)), u8::to_string),
        },
        OfferRates {
            by: "age_band",
            cells: offer_rates(
                candidates().map(|(c, o)| (age_band_order(&c.age_band), o)),
                |(_, band)| band.clone(),
            ),
        },
    ];
    if let Some(ranks) = ranks {
        let linked = || candidates().filter_map(|(c, o)| Some((ranks.cells.get(&c.pseudonym)?, o)));
        rates.push(OfferRates {
            by: "registration_week",
            cells: offer_rates(linked().map(|((week, _), o)| (week, o)), |week| (*week).clone()),
        });
        rates.push(OfferRates {
            by: "channel",
            cells: offer_rates(linked().map(|((_, channel), o)| (channel, o)), |channel| {
                (*channel).clone()
            }),
        });
    }
    rates
}
