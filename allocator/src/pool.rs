//! Reading a region's draw inputs from Postgres: the free pairs and the waiting pool, turned
//! into the pseudonymised form the draw and its manifest use.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use drawbridge_domain::allocation::draw::{Candidate, DrawInput, FreePair, Openings, Pseudonym};
use drawbridge_domain::allocation::geo::Place;
use drawbridge_domain::allocation::waiting::{self, Waiting};
use drawbridge_domain::{eligible_vaccines, Person, Policy};
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use drawbridge_platform::statements;

/// A region's inputs for one draw, and what is needed to act on its outcome.
pub struct RegionPool {
    pub input: DrawInput,
    /// Who is behind each pseudonym; never leaves the allocator.
    pub registrants: HashMap<Pseudonym, Uuid>,
    /// Waiting registrants who may not be offered anything today (group not yet released,
    /// too young for every vaccine they accept, ...): not in the draw.
    pub ineligible: usize,
}

/// Who is waiting in region `$1`: registrants `r` who are active and hold neither a pending
/// offer nor a live booking. A macro, so that the statements using it stay whole literals.
macro_rules! waiting_registrants {
    () => {
        "r.region_id = $1 AND r.status = 'active'
         AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.registrant_id = r.id AND o.state = 'pending')
         AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.registrant_id = r.id AND b.state <> 'cancelled')"
    };
}
pub(crate) use waiting_registrants;

statements! {
    /// The waiting registrants of region `$1`, with what the draw needs of each. Declines count
    /// offers declined or left to expire: both leave a pair unused for a while.
    WAITING = concat!(
        "SELECT r.id, r.priority_group, r.birth_year, r.postcode, r.accepted_vaccines, r.max_distance_km,
                    r.verified_at, coalesce(d.declines, 0) AS declines, r.ahead_since IS NOT NULL AS ahead
             FROM registrants r
             LEFT JOIN (SELECT registrant_id, count(*) AS declines FROM offers
                        WHERE state IN ('declined', 'expired') GROUP BY registrant_id) d ON d.registrant_id = r.id
         WHERE ",
        waiting_registrants!()
    );
    FREE_PAIRS =
        "SELECT p.id, p.centre_id, p.vaccine, p.first_slot_at, p.second_slot_at
         FROM slot_pairs p JOIN centres c ON c.id = p.centre_id
         WHERE c.region_id = $1 AND c.closed_at IS NULL AND p.state = 'open' AND p.first_slot_at > $2";
    /// Closed centres are out of everyone's reach.
    CENTRES =
        "SELECT id, latitude, longitude FROM centres WHERE region_id = $1 AND closed_at IS NULL ORDER BY id";
    POSTCODE_AREAS = "SELECT postcode, latitude, longitude FROM postcode_areas";
}

#[derive(sqlx::FromRow)]
struct PairRow {
    id: Uuid,
    centre_id: String,
    vaccine: String,
    first_slot_at: DateTime<Utc>,
    second_slot_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct WaitingRow {
    id: Uuid,
    priority_group: i16,
    birth_year: i32,
    postcode: String,
    accepted_vaccines: Vec<String>,
    max_distance_km: i32,
    verified_at: DateTime<Utc>,
    declines: i64,
    ahead: bool,
}

/// Reads the region's free future pairs and its waiting pool: active registrants without a
/// pending offer or a live booking, entered as the domain's [`waiting::candidate`] says.
pub async fn load(
    connection: &mut PgConnection,
    region: &str,
    policy: &Policy,
    timezone: Tz,
    drawn_at: DateTime<Utc>,
    hash_key: &[u8],
) -> Result<RegionPool, sqlx::Error> {
    let pairs = free_pairs(connection, region, drawn_at).await?;
    let mut registrants = HashMap::new();
    let mut candidates = Vec::new();
    let waiting = Waiters {
        region,
        policy,
        timezone,
        drawn_at,
        hash_key,
    };
    let ineligible = waiting
        .each(connection, |id, candidate| {
            registrants.insert(candidate.pseudonym, id);
            candidates.push(candidate);
            true
        })
        .await?;
    Ok(RegionPool {
        input: DrawInput {
            drawn_at,
            pairs,
            candidates,
        },
        registrants,
        ineligible,
    })
}

/// Why a tick draws nothing: a draw then could not offer anyone anything, whatever its seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// No open pair starts late enough to be offered.
    NoOpenPairs,
    /// Open pairs, but nobody waiting may take any of them: nobody waits, or those who do are
    /// not eligible yet, accept none of their vaccines or live too far from their centres.
    NoPossibleMatch,
}

impl Skip {
    /// The reason's name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NoOpenPairs => "no_open_pairs",
            Skip::NoPossibleMatch => "no_possible_match",
        }
    }
}

/// Whether a draw at `now` could offer anything, by the draw's own rules ([`Openings`]): `None`
/// when someone waiting may take one of the open pairs. Reads the pool only up to the first
/// such person, and writes nothing.
pub async fn skip(
    connection: &mut PgConnection,
    region: &str,
    policy: &Policy,
    timezone: Tz,
    now: DateTime<Utc>,
    hash_key: &[u8],
) -> Result<Option<Skip>, sqlx::Error> {
    let input = DrawInput {
        drawn_at: now,
        pairs: free_pairs(connection, region, now).await?,
        candidates: Vec::new(),
    };
    // Inputs the draw refuses are for the draw to report.
    let Ok(mut openings) = Openings::of(&policy.draw, &input) else {
        return Ok(None);
    };
    if openings.pairs() == 0 {
        return Ok(Some(Skip::NoOpenPairs));
    }
    let mut possible = false;
    let waiting = Waiters {
        region,
        policy,
        timezone,
        drawn_at: now,
        hash_key,
    };
    waiting
        .each(connection, |_, candidate| {
            possible = openings.open_to(&candidate);
            !possible
        })
        .await?;
    Ok((!possible).then_some(Skip::NoPossibleMatch))
}

async fn free_pairs(
    connection: &mut PgConnection,
    region: &str,
    drawn_at: DateTime<Utc>,
) -> Result<Vec<FreePair>, sqlx::Error> {
    let rows = sqlx::query_as::<_, PairRow>(FREE_PAIRS)
        .bind(region)
        .bind(drawn_at)
        .fetch_all(&mut *connection)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| FreePair {
            id: row.id,
            centre: row.centre_id,
            vaccine: row.vaccine,
            first_at: row.first_slot_at,
            second_at: row.second_slot_at,
        })
        .collect())
}

/// The waiting pool of a region as the draw at `drawn_at` sees it.
struct Waiters<'a> {
    region: &'a str,
    policy: &'a Policy,
    timezone: Tz,
    drawn_at: DateTime<Utc>,
    hash_key: &'a [u8],
}

impl Waiters<'_> {
    /// Calls `each` with every waiting registrant who may be offered a vaccine today, as a
    /// candidate, until it returns false. Returns how many waiting registrants may not.
    async fn each(
        &self,
        connection: &mut PgConnection,
        mut each: impl FnMut(Uuid, Candidate) -> bool,
    ) -> Result<usize, sqlx::Error> {
        let map = Map::load(connection, self.region).await?;
        let today = self.drawn_at.with_timezone(&self.timezone).date_naive();
        let mut reach = HashMap::new();
        let mut ineligible = 0;
        let mut rows = sqlx::query_as::<_, WaitingRow>(WAITING)
            .bind(self.region)
            .fetch(&mut *connection);
        while let Some(row) = rows.try_next().await? {
            let person = Person {
                birth_year: row.birth_year,
                priority_group: u8::try_from(row.priority_group).unwrap_or(0),
                postcode: row.postcode,
                accepted_vaccines: row.accepted_vaccines,
            };
            if eligible_vaccines(self.policy, &person, today).next().is_none() {
                ineligible += 1;
                continue;
            }
            let centres = reach
                .entry((person.postcode.clone(), row.max_distance_km))
                .or_insert_with(|| map.reachable(&person.postcode, f64::from(row.max_distance_km)))
                .clone();
            let waiting = Waiting {
                pseudonym: Pseudonym::of(self.hash_key, row.id.as_bytes()),
                verified_at: row.verified_at,
                declines: row.declines as u32,
                ahead: row.ahead,
                centres,
            };
            let candidate = waiting::candidate(self.policy, &person, waiting, self.drawn_at, today)
                .expect("eligible for a vaccine, checked above");
            if !each(row.id, candidate) {
                break;
            }
        }
        Ok(ineligible)
    }
}

/// Where the region's centres and the known postcode areas are.
struct Map {
    centres: Vec<(String, Place)>,
    areas: HashMap<String, Place>,
}

impl Map {
    async fn load(connection: &mut PgConnection, region: &str) -> Result<Map, sqlx::Error> {
        let centres: Vec<(String, f64, f64)> = sqlx::query_as(CENTRES)
            .bind(region)
            .fetch_all(&mut *connection)
            .await?;
        let areas: Vec<(String, f64, f64)> =
            sqlx::query_as(POSTCODE_AREAS).fetch_all(&mut *connection).await?;
        let place = |latitude, longitude| Place { latitude, longitude };
        Ok(Map {
            centres: centres
                .into_iter()
                .map(|(id, lat, lon)| (id, place(lat, lon)))
                .collect(),
            areas: areas
                .into_iter()
                .map(|(postcode, lat, lon)| (postcode, place(lat, lon)))
                .collect(),
        })
    }

    /// The centres within `max_km` of the postcode, nearest first. A postcode without a known
    /// centroid is placed at the known area sharing its longest prefix (German postcodes are
    /// hierarchical by place), so nobody is silently left out for a gap in the area table.
    fn reachable(&self, postcode: &str, max_km: f64) -> Vec<String> {
        let home = self.areas.get(postcode).copied().or_else(|| {
            self.areas
                .iter()
                .map(|(code, place)| {
                    let shared = code
                        .bytes()
                        .zip(postcode.bytes())
                        .take_while(|(a, b)| a == b)
                        .count();
                    (shared, std::cmp::Reverse(code.as_str()), *place)
                })
                .filter(|(shared, _, _)| *shared > 0)
                .max_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)))
                .map(|(_, _, place)| place)
        });
        let Some(home) = home else {
            return Vec::new();
        };
        waiting::reachable(
            home,
            self.centres.iter().map(|(id, place)| (id.as_str(), *place)),
            max_km,
        )
    }
}
