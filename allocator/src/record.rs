//! Writing a draw's outcome: the published record (candidates, pairs, matches), the offers,
//! the pairs' new state and the offer messages, all in the draw's one transaction, so a crash
//! leaves either the whole draw or none of it.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use drawbridge_domain::draw::{DrawOutcome, Pseudonym};
use drawbridge_domain::{Keyring, Language, Policy};
use drawbridge_platform::outbox::{self, Appointment, Channel, Notification, Outgoing};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::pool::RegionPool;

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

/// Rows per COPY message: large enough to amortise, small enough to bound memory.
const COPY_CHUNK_ROWS: usize = 10_000;

/// Writes the pool with each candidate's lottery key, in Postgres' COPY text format.
pub async fn candidates(
    connection: &mut PgConnection,
    draw: Uuid,
    pool: &RegionPool,
    keys: &[f64],
) -> Result<(), sqlx::Error> {
    let mut copy = connection
        .copy_in_raw(
            "COPY draw_candidates (draw_id, pseudonym, group_id, age_band, waited_weeks, declines,
                                   vaccines, centres, lottery_key) FROM STDIN",
        )
        .await?;
    // Centre ids, vaccine codes and age bands are `[a-z0-9-]` by constraint: nothing to escape.
    let mut buffer = String::with_capacity(COPY_CHUNK_ROWS * 128);
    for (i, (candidate, key)) in pool.input.candidates.iter().zip(keys).enumerate() {
        let _ = writeln!(
            buffer,
            "{draw}\t\\\\x{pseudonym}\t{group}\t{band}\t{weeks}\t{declines}\t{{{vaccines}}}\t{{{centres}}}\t{key:?}",
            pseudonym = candidate.pseudonym,
            group = candidate.group,
            band = candidate.age_band,
            weeks = candidate.waited_weeks,
            declines = candidate.declines,
            vaccines = candidate.vaccines.join(","),
            centres = candidate.centres.join(","),
        );
        if (i + 1) % COPY_CHUNK_ROWS == 0 {
            copy.send(std::mem::take(&mut buffer).into_bytes()).await?;
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.into_bytes()).await?;
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
    sqlx::query(
        "INSERT INTO draw_pairs (draw_id, slot_pair_id, centre_id, vaccine, first_slot_at, second_slot_at, unmatched_reason)
         SELECT $1, * FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[])",
    )
    .bind(draw)
    .bind(pairs.iter().map(|p| p.id).collect::<Vec<_>>())
    .bind(pairs.iter().map(|p| p.centre.as_str()).collect::<Vec<_>>())
    .bind(pairs.iter().map(|p| p.vaccine.as_str()).collect::<Vec<_>>())
    .bind(pairs.iter().map(|p| p.first_at).collect::<Vec<_>>())
    .bind(pairs.iter().map(|p| p.second_at).collect::<Vec<_>>())
    .bind(pairs.iter().map(|p| reasons.get(&p.id).copied()).collect::<Vec<_>>())
    .execute(&mut *connection)
    .await?;
    let matches = &outcome.matches;
    sqlx::query(
        "INSERT INTO draw_matches (draw_id, position, pseudonym, slot_pair_id, expires_at, reserve)
         SELECT $1, * FROM UNNEST($2::int[], $3::bytea[], $4::uuid[], $5::timestamptz[], $6::smallint[])",
    )
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

#[derive(sqlx::FromRow)]
struct Offered {
    offer_id: Uuid,
    phone: String,
    email: Option<String>,
    language: String,
    centre_name: String,
    centre_address: String,
    vaccine: String,
    first_slot_at: DateTime<Utc>,
    second_slot_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
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
    let registrant = |p: &Pseudonym| pool.registrants[p];
    let offer_ids: Vec<Uuid> = matches.iter().map(|_| Uuid::new_v4()).collect();
    // Only registrants still active get an offer; anyone who withdrew meanwhile makes the
    // counts differ and the draw is retried.
    let offered: Vec<Offered> = sqlx::query_as(
        "WITH made AS (
             INSERT INTO offers (id, draw_id, slot_pair_id, registrant_id, state, offered_at, expires_at)
             SELECT m.id, $1, m.pair, m.registrant, 'pending', $2, m.expires_at
             FROM UNNEST($3::uuid[], $4::uuid[], $5::uuid[], $6::timestamptz[]) AS m(id, pair, registrant, expires_at)
             JOIN registrants r ON r.id = m.registrant AND r.status = 'active'
             RETURNING id, slot_pair_id, registrant_id, expires_at)
         SELECT made.id AS offer_id, r.phone, r.email, r.language, c.name AS centre_name,
                c.address AS centre_address, p.vaccine, p.first_slot_at, p.second_slot_at, made.expires_at
         FROM made
         JOIN registrants r ON r.id = made.registrant_id
         JOIN slot_pairs p ON p.id = made.slot_pair_id
         JOIN centres c ON c.id = p.centre_id",
    )
    .bind(draw)
    .bind(pool.input.drawn_at)
    .bind(&offer_ids)
    .bind(matches.iter().map(|m| m.pair).collect::<Vec<_>>())
    .bind(matches.iter().map(|m| registrant(&m.pseudonym)).collect::<Vec<_>>())
    .bind(matches.iter().map(|m| m.expires_at).collect::<Vec<_>>())
    .fetch_all(&mut *connection)
    .await?;
    if offered.len() != matches.len() {
        return Err(RecordError::Changed(format!(
            "{} of {} matched registrants are no longer active",
            matches.len() - offered.len(),
            matches.len()
        )));
    }
    let held = sqlx::query(
        "UPDATE slot_pairs p SET state = 'offered', offer_id = m.offer
         FROM UNNEST($1::uuid[], $2::uuid[]) AS m(pair, offer)
         WHERE p.id = m.pair AND p.state = 'open'",
    )
    .bind(matches.iter().map(|m| m.pair).collect::<Vec<_>>())
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
    let base = notices.public_url.trim_end_matches('/');
    let now = pool.input.drawn_at.timestamp();
    let mut messages = Vec::with_capacity(offered.len() * 2);
    for o in &offered {
        // The link itself proves it came from us and for which offer, so answering needs no
        // login; it stops working when the offer does.
        let token = notices.keyring.sign(
            "offer",
            &serde_json::json!({ "offer": o.offer_id }),
            now,
            o.expires_at.timestamp(),
        );
        let notification = Notification::Offer {
            appointment: Appointment {
                centre_name: o.centre_name.clone(),
                centre_address: o.centre_address.clone(),
                vaccine_name: policy
                    .vaccine(&o.vaccine)
                    .map_or_else(|| o.vaccine.clone(), |v| v.name.clone()),
                first_at: o.first_slot_at,
                second_at: o.second_slot_at,
                timezone: notices.timezone.to_owned(),
            },
            expires_at: o.expires_at,
            accept_url: format!("{base}/offers/{}?token={token}", o.offer_id),
        };
        let language = Language::parse(&o.language).unwrap_or_default();
        if let Some(email) = &o.email {
            messages.push(Outgoing {
                subject_id: o.offer_id,
                channel: Channel::Email,
                recipient: email,
                language,
                notification: notification.clone(),
            });
        }
        messages.push(Outgoing {
            subject_id: o.offer_id,
            channel: Channel::Sms,
            recipient: &o.phone,
            language,
            notification,
        });
    }
    outbox::enqueue_many(connection, &messages).await?;
    Ok(offered.len())
}
