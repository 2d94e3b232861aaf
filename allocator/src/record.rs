//! Writing a draw's outcome: the published record (candidates, pairs, matches), the offers,
//! the pairs' new state and the offer messages, all in the draw's one transaction, so a crash
//! leaves either the whole draw or none of it.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use drawbridge_domain::allocation::draw::{Candidate, DrawOutcome, FreePair, Pseudonym};
use drawbridge_domain::{Keyring, Language, OfferLink, Policy};
use drawbridge_platform::copy::CopyRows;
use drawbridge_platform::outbox::{self, Appointment, Channel, Notification, Outgoing, Recipient};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::pool::RegionPool;

use drawbridge_platform::statements;

statements! {
    INSERT_PROFILES =
        "INSERT INTO draw_profiles (draw_id, profile, vaccines, centres)
         SELECT $1, n, string_to_array(v, ','), string_to_array(c, ',')
         FROM UNNEST($2::int[], $3::text[], $4::text[]) AS p(n, v, c)";
    INSERT_PAIRS =
        "INSERT INTO draw_pairs (draw_id, slot_pair_id, centre_id, vaccine, first_slot_at, second_slot_at, unmatched_reason)
         SELECT $1, * FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[])";
    INSERT_MATCHES =
        "INSERT INTO draw_matches (draw_id, position, pseudonym, slot_pair_id, expires_at, reserve)
         SELECT $1, * FROM UNNEST($2::int[], $3::bytea[], $4::uuid[], $5::timestamptz[], $6::smallint[])";
    CONTACTS = "SELECT id, phone, email, language FROM registrants WHERE id = ANY($1) AND status = 'active'";
    INSERT_OFFERS =
        "INSERT INTO offers (id, draw_id, slot_pair_id, registrant_id, state, offered_at, expires_at)
         SELECT m.id, $1, m.pair, m.registrant, 'pending', $2, m.expires_at
         FROM UNNEST($3::uuid[], $4::uuid[], $5::uuid[], $6::timestamptz[]) AS m(id, pair, registrant, expires_at)";
    HOLD_PAIRS =
        "UPDATE slot_pairs p SET state = 'offered', offer_id = m.offer
         FROM UNNEST($1::uuid[], $2::uuid[]) AS m(pair, offer)
         WHERE p.id = m.pair AND p.state = 'open'";
    CLEAR_AHEAD = "UPDATE registrants SET ahead_since = NULL WHERE id = ANY($1)";
    CENTRE_PLACES =
        "SELECT id, name, address FROM centres WHERE region_id = (SELECT region_id FROM draws WHERE id = $1)";
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Something changed under the draw (a centre cancelled a pair, a registrant withdrew);
    /// the transaction is rolled back and the next tick draws again.
    #[error("the inputs changed while drawing: {0}")]
    Changed(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What the offer messages need besides the draw.
pub struct Notices<'a> {
    pub keyring: &'a Keyring,
    pub public_url: &'a str,
    pub timezone: &'a str,
}

impl Notices<'_> {
    /// The link that answers `offer` without a login: it proves it came from us and for which
    /// offer, and stops working when the offer does.
    pub fn accept_url(&self, offer: Uuid, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> String {
        let token = OfferLink { offer }.sign(self.keyring, now, expires_at);
        format!(
            "{}/offers/{offer}?token={token}",
            self.public_url.trim_end_matches('/')
        )
    }
}

/// A candidate's vaccines and centres.
type Profile<'a> = (&'a [String], &'a [String]);

/// Writes the pool with each candidate's lottery key: the distinct choices once, then one
/// narrow row per candidate in Postgres' COPY text format.
pub async fn candidates(
    connection: &mut PgConnection,
    draw: Uuid,
    pool: &RegionPool,
    keys: &[f64],
) -> Result<(), sqlx::Error> {
    let mut profiles: HashMap<Profile<'_>, i32> = HashMap::new();
    let mut rows: Vec<(&Candidate, f64, i32)> = Vec::with_capacity(keys.len());
    for (candidate, key) in pool.input.candidates.iter().zip(keys) {
        let next = profiles.len() as i32;
        let profile = *profiles
            .entry((&candidate.vaccines, &candidate.centres))
            .or_insert(next);
        rows.push((candidate, *key, profile));
    }
    let mut by_number: Vec<(&Profile<'_>, &i32)> = profiles.iter().collect();
    by_number.sort_unstable_by_key(|(_, n)| **n);
    sqlx::query(INSERT_PROFILES)
        .bind(draw)
        .bind(by_number.iter().map(|(_, n)| **n).collect::<Vec<_>>())
        .bind(
            by_number
                .iter()
                .map(|((v, _), _)| v.join(","))
                .collect::<Vec<_>>(),
        )
        .bind(
            by_number
                .iter()
                .map(|((_, c), _)| c.join(","))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *connection)
        .await?;
    let mut copy = CopyRows::start(
        connection,
        "COPY draw_candidates (draw_id, pseudonym, group_id, age_band, waited_weeks, declines, profile,
                               lottery_key, ahead) FROM STDIN",
    )
    .await?;
    // In key order the primary key index grows at its right edge instead of at random pages.
    rows.sort_unstable_by_key(|(candidate, _, _)| candidate.pseudonym);
    // Age bands are `[0-9-]`: nothing to escape.
    for (candidate, key, profile) in rows {
        let _ = write!(
            copy.row(),
            "{draw}\t\\\\x{pseudonym}\t{group}\t{band}\t{weeks}\t{declines}\t{profile}\t{key:?}\t{ahead}",
            pseudonym = candidate.pseudonym,
            group = candidate.group,
            band = candidate.age_band,
            weeks = candidate.waited_weeks,
            declines = candidate.declines,
            ahead = candidate.ahead,
        );
        copy.end_row().await?;
    }
    copy.finish().await?;
    Ok(())
}

/// Writes the free pairs (with the reason for each one left over) and the matches in order.
pub async fn decisions(
    connection: &mut PgConnection,
    draw: Uuid,
    pool: &RegionPool,
    outcome: &DrawOutcome,
) -> Result<(), sqlx::Error> {
    let reasons: HashMap<Uuid, &str> = outcome
        .unmatched
        .iter()
        .map(|u| (u.pair, u.reason.as_str()))
        .collect();
    let pairs = &pool.input.pairs;
    sqlx::query(INSERT_PAIRS)
        .bind(draw)
        .bind(pairs.iter().map(|p| p.id).collect::<Vec<_>>())
        .bind(pairs.iter().map(|p| p.centre.as_str()).collect::<Vec<_>>())
        .bind(pairs.iter().map(|p| p.vaccine.as_str()).collect::<Vec<_>>())
        .bind(pairs.iter().map(|p| p.first_at).collect::<Vec<_>>())
        .bind(pairs.iter().map(|p| p.second_at).collect::<Vec<_>>())
        .bind(
            pairs
                .iter()
                .map(|p| reasons.get(&p.id).copied())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *connection)
        .await?;
    let matches = &outcome.matches;
    sqlx::query(INSERT_MATCHES)
        .bind(draw)
        .bind((1..=matches.len() as i32).collect::<Vec<_>>())
        .bind(
            matches
                .iter()
                .map(|m| m.pseudonym.as_bytes().to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(matches.iter().map(|m| m.pair).collect::<Vec<_>>())
        .bind(matches.iter().map(|m| m.expires_at).collect::<Vec<_>>())
        .bind(
            matches
                .iter()
                .map(|m| m.reserve.map(|r| r as i16))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// A registrant's contact as stored, sealed for them: copied into their messages unopened.
#[derive(sqlx::FromRow)]
struct Contact {
    id: Uuid,
    phone: Vec<u8>,
    email: Option<Vec<u8>>,
    language: String,
}

/// Turns the matches into pending offers, marks their pairs offered and queues one offer
/// message per channel. Returns the number of offers.
pub async fn offers(
    connection: &mut PgConnection,
    draw: Uuid,
    policy: &Policy,
    pool: &RegionPool,
    outcome: &DrawOutcome,
    notices: &Notices<'_>,
) -> Result<usize, RecordError> {
    let matches = &outcome.matches;
    if matches.is_empty() {
        return Ok(0);
    }
    let registrants: Vec<Uuid> = matches.iter().map(|m| pool.registrants[&m.pseudonym]).collect();
    // Only registrants still active get an offer; anyone who withdrew since the pool was read
    // makes the counts differ and the draw is retried.
    let contacts: Vec<Contact> = sqlx::query_as(CONTACTS)
        .bind(&registrants)
        .fetch_all(&mut *connection)
        .await?;
    if contacts.len() != matches.len() {
        return Err(RecordError::Changed(format!(
            "{} of {} matched registrants are no longer active",
            matches.len() - contacts.len(),
            matches.len()
        )));
    }
    let offer_ids: Vec<Uuid> = matches.iter().map(|_| Uuid::new_v4()).collect();
    let pair_ids: Vec<Uuid> = matches.iter().map(|m| m.pair).collect();
    sqlx::query(INSERT_OFFERS)
        .bind(draw)
        .bind(pool.input.drawn_at)
        .bind(&offer_ids)
        .bind(&pair_ids)
        .bind(&registrants)
        .bind(matches.iter().map(|m| m.expires_at).collect::<Vec<_>>())
        .execute(&mut *connection)
        .await?;
    let held = sqlx::query(HOLD_PAIRS)
        .bind(&pair_ids)
        .bind(&offer_ids)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    if held as usize != matches.len() {
        return Err(RecordError::Changed(format!(
            "{} of {} drawn pairs are no longer open",
            matches.len() - held as usize,
            matches.len()
        )));
    }
    // Those served ahead after a centre's cancellation have had their turn: back to the lottery.
    let ahead: HashSet<Pseudonym> = pool
        .input
        .candidates
        .iter()
        .filter(|c| c.ahead)
        .map(|c| c.pseudonym)
        .collect();
    let served_ahead: Vec<Uuid> = matches
        .iter()
        .filter(|m| ahead.contains(&m.pseudonym))
        .map(|m| pool.registrants[&m.pseudonym])
        .collect();
    if !served_ahead.is_empty() {
        sqlx::query(CLEAR_AHEAD)
            .bind(&served_ahead)
            .execute(&mut *connection)
            .await?;
    }
    let centres: HashMap<String, (String, String)> =
        sqlx::query_as::<_, (String, String, String)>(CENTRE_PLACES)
            .bind(draw)
            .fetch_all(&mut *connection)
            .await?
            .into_iter()
            .map(|(id, name, address)| (id, (name, address)))
            .collect();
    let pairs: HashMap<Uuid, &FreePair> = pool.input.pairs.iter().map(|p| (p.id, p)).collect();
    let contacts: HashMap<Uuid, Contact> = contacts.into_iter().map(|c| (c.id, c)).collect();
    let mut messages = Vec::with_capacity(matches.len() * 2);
    for ((m, offer_id), registrant) in matches.iter().zip(&offer_ids).zip(&registrants) {
        let (pair, contact) = (pairs[&m.pair], &contacts[registrant]);
        let (centre_name, centre_address) = centres.get(&pair.centre).cloned().unwrap_or_default();
        let notification = Notification::Offer {
            appointment: Appointment {
                centre_name,
                centre_address,
                vaccine_name: policy.vaccine_name(&pair.vaccine),
                first_at: pair.first_at,
                second_at: pair.second_at,
                timezone: notices.timezone.to_owned(),
            },
            expires_at: m.expires_at,
            accept_url: notices.accept_url(*offer_id, pool.input.drawn_at, m.expires_at),
        };
        let language = Language::parse(&contact.language).unwrap_or_default();
        if let Some(email) = &contact.email {
            messages.push(Outgoing {
                subject_id: *offer_id,
                channel: Channel::Email,
                recipient: Recipient {
                    sealed: email,
                    of: contact.id,
                },
                language,
                notification: notification.clone(),
            });
        }
        messages.push(Outgoing {
            subject_id: *offer_id,
            channel: Channel::Sms,
            recipient: Recipient {
                sealed: &contact.phone,
                of: contact.id,
            },
            language,
            notification,
        });
    }
    outbox::copy_many(connection, &messages).await?;
    Ok(matches.len())
}
