//! `drawbridge keys rotate`: seals again, under the current personal data key, every phone
//! number, email address and message recipient sealed under an older key or stored before
//! sealing existed, and writes the phone's blind index on the way.
//!
//! It runs beside the gateways and notifiers: each batch is one short transaction over rows
//! taken in id order with `FOR UPDATE SKIP LOCKED`, so a request never waits for it, and a row
//! a request holds is left for the next pass. Every process must know the new key (as the
//! current one) before the rotation starts, or it would go on sealing under the old one.
//! Running it again finds nothing left to do.

use std::time::Duration;

use drawbridge_domain::{Field, OpenError, PersonalDataKeys};
use serde::Serialize;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use drawbridge_platform::statements;

statements! {
    /// Up to `$4` registrants after id `$3` with a phone or email not under the key whose
    /// values start with `$1` (`$2` bytes long), locked unless a request holds them.
    REGISTRANTS_TO_SEAL =
        "SELECT id, phone, email FROM registrants
         WHERE id > $3
           AND (substring(phone FOR $2) <> $1 OR substring(email FOR $2) <> $1)
         ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED";
    RESEAL_REGISTRANTS =
        "UPDATE registrants r SET phone = s.phone, phone_index = s.phone_index, email = s.email
         FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bytea[]) AS s(id, phone, phone_index, email)
         WHERE r.id = s.id";
    REGISTRANTS_LEFT =
        "SELECT count(*) FROM registrants WHERE substring(phone FOR $2) <> $1 OR substring(email FOR $2) <> $1";
    /// As `REGISTRANTS_TO_SEAL`, for messages' recipients (an erased one is empty).
    MESSAGES_TO_SEAL =
        "SELECT id, channel, recipient, recipient_of FROM outbox
         WHERE id > $3 AND recipient <> '' AND substring(recipient FOR $2) <> $1
         ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED";
    RESEAL_MESSAGES =
        "UPDATE outbox o SET recipient = s.recipient
         FROM unnest($1::uuid[], $2::bytea[]) AS s(id, recipient)
         WHERE o.id = s.id";
    MESSAGES_LEFT =
        "SELECT count(*) FROM outbox WHERE recipient <> '' AND substring(recipient FOR $2) <> $1";
}

/// Passes that find only rows held by requests, 100 ms apart, before the rotation gives up
/// on them and reports them left.
const IDLE_PASSES: u32 = 50;

/// What a rotation did, or (dry run) would do, per table.
#[derive(Debug, Default, Serialize)]
pub struct Rotation {
    pub current_key: String,
    /// Registrants sealed again (or, dry run, to be).
    pub registrants: u64,
    /// Messages whose recipient was sealed again (or, dry run, to be).
    pub messages: u64,
    /// Rows still not under the current key at the end: held by requests throughout, or not
    /// to be opened with the configured keys.
    pub registrants_left: i64,
    pub messages_left: i64,
    /// Rows that did not open: their key is not configured, or they are damaged. The first
    /// few ids, to look at.
    pub unreadable: Vec<Uuid>,
}

/// Counts the rows not under the current key (a dry run).
pub async fn count(pool: &PgPool, keys: &PersonalDataKeys) -> Result<Rotation, sqlx::Error> {
    let (registrants, messages) = left(pool, keys).await?;
    Ok(Rotation {
        current_key: keys.current_id().to_owned(),
        registrants: registrants as u64,
        messages: messages as u64,
        ..Rotation::default()
    })
}

async fn left(pool: &PgPool, keys: &PersonalDataKeys) -> Result<(i64, i64), sqlx::Error> {
    let prefix = keys.current_prefix();
    let registrants = sqlx::query_scalar(REGISTRANTS_LEFT)
        .bind(prefix)
        .bind(prefix.len() as i32)
        .fetch_one(pool)
        .await?;
    let messages = sqlx::query_scalar(MESSAGES_LEFT)
        .bind(prefix)
        .bind(prefix.len() as i32)
        .fetch_one(pool)
        .await?;
    Ok((registrants, messages))
}

/// Seals again everything not under the current key, `batch` rows per transaction, calling
/// `progress` after each batch.
pub async fn rotate(
    pool: &PgPool,
    keys: &PersonalDataKeys,
    batch: i64,
    mut progress: impl FnMut(&Rotation),
) -> Result<Rotation, sqlx::Error> {
    let mut rotation = Rotation {
        current_key: keys.current_id().to_owned(),
        ..Rotation::default()
    };
    let mut idle = 0;
    loop {
        let before = (rotation.registrants, rotation.messages);
        let mut unreadable = Vec::new();
        let mut batches = Batches {
            pool,
            keys,
            batch,
            unreadable: &mut unreadable,
        };
        batches
            .pass(REGISTRANTS_TO_SEAL, reseal_registrants, |sealed| {
                rotation.registrants += sealed;
                progress(&rotation);
            })
            .await?;
        batches
            .pass(MESSAGES_TO_SEAL, reseal_messages, |sealed| {
                rotation.messages += sealed;
                progress(&rotation);
            })
            .await?;
        let (registrants_left, messages_left) = left(pool, keys).await?;
        rotation.registrants_left = registrants_left;
        rotation.messages_left = messages_left;
        let stuck = usize::try_from(registrants_left + messages_left).unwrap_or(usize::MAX);
        // Rows held by requests during this pass are taken by the next one; rows that did not
        // open stay as they are.
        if before == (rotation.registrants, rotation.messages) && stuck > unreadable.len() {
            idle += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            idle = 0;
        }
        if stuck <= unreadable.len() || idle == IDLE_PASSES {
            unreadable.truncate(10);
            rotation.unreadable = unreadable;
            return Ok(rotation);
        }
    }
}

/// The rows a statement finds not under the current key, walked in id order.
struct Batches<'a> {
    pool: &'a PgPool,
    keys: &'a PersonalDataKeys,
    batch: i64,
    /// Rows that did not open.
    unreadable: &'a mut Vec<Uuid>,
}

/// A row to seal again: its id, for walking the table in order.
trait Keyed {
    fn id(&self) -> Uuid;
}

/// What sealing a batch again writes: the statement with its values, and how many rows.
type Resealed = (sqlx::query::Query<'static, Postgres, PgArguments>, u64);

impl Batches<'_> {
    /// One pass over the rows `select` finds, `batch` per transaction: `reseal` seals each
    /// batch again (noting the rows that do not open) into the update it commits with;
    /// `sealed` hears how many rows each batch sealed.
    async fn pass<R>(
        &mut self,
        select: &'static str,
        reseal: fn(&PersonalDataKeys, Vec<R>, &mut Vec<Uuid>) -> Resealed,
        mut sealed: impl FnMut(u64),
    ) -> Result<(), sqlx::Error>
    where
        R: for<'r> sqlx::FromRow<'r, PgRow> + Keyed + Send + Unpin,
    {
        let prefix = self.keys.current_prefix();
        let mut after = Uuid::nil();
        loop {
            let mut tx = self.pool.begin().await?;
            let rows: Vec<R> = sqlx::query_as(select)
                .bind(prefix)
                .bind(prefix.len() as i32)
                .bind(after)
                .bind(self.batch)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = rows.last() else { return Ok(()) };
            after = last.id();
            let (update, count) = reseal(self.keys, rows, self.unreadable);
            update.execute(&mut *tx).await?;
            tx.commit().await?;
            sealed(count);
        }
    }
}

#[derive(sqlx::FromRow)]
struct RegistrantRow {
    id: Uuid,
    phone: Option<Vec<u8>>,
    email: Option<Vec<u8>>,
}

impl Keyed for RegistrantRow {
    fn id(&self) -> Uuid {
        self.id
    }
}

/// Phone and email sealed again, and the phone's index written (new for a value stored before
/// sealing).
fn reseal_registrants(
    keys: &PersonalDataKeys,
    rows: Vec<RegistrantRow>,
    unreadable: &mut Vec<Uuid>,
) -> Resealed {
    let (mut ids, mut phones, mut indexes, mut emails) = (vec![], vec![], vec![], vec![]);
    for row in rows {
        let reseal = |field, sealed: &Option<Vec<u8>>| -> Result<Option<(Vec<u8>, String)>, OpenError> {
            sealed
                .as_deref()
                .map(|sealed| {
                    let text = keys.open(field, row.id, sealed)?;
                    Ok((keys.seal(field, row.id, &text), text))
                })
                .transpose()
        };
        match (reseal(Field::Phone, &row.phone), reseal(Field::Email, &row.email)) {
            (Ok(phone), Ok(email)) => {
                ids.push(row.id);
                indexes.push(
                    phone
                        .as_ref()
                        .map(|(_, text)| keys.index(Field::Phone, text).to_vec()),
                );
                phones.push(phone.map(|(sealed, _)| sealed));
                emails.push(email.map(|(sealed, _)| sealed));
            }
            _ => unreadable.push(row.id),
        }
    }
    let count = ids.len() as u64;
    let update = sqlx::query(RESEAL_REGISTRANTS)
        .bind(ids)
        .bind(phones)
        .bind(indexes)
        .bind(emails);
    (update, count)
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    channel: String,
    recipient: Vec<u8>,
    recipient_of: Uuid,
}

impl Keyed for MessageRow {
    fn id(&self) -> Uuid {
        self.id
    }
}

fn reseal_messages(keys: &PersonalDataKeys, rows: Vec<MessageRow>, unreadable: &mut Vec<Uuid>) -> Resealed {
    let (mut ids, mut recipients) = (vec![], vec![]);
    for row in rows {
        let field = if row.channel == "email" {
            Field::Email
        } else {
            Field::Phone
        };
        match keys.open(field, row.recipient_of, &row.recipient) {
            Ok(text) => {
                ids.push(row.id);
                recipients.push(keys.seal(field, row.recipient_of, &text));
            }
            Err(_) => unreadable.push(row.id),
        }
    }
    let count = ids.len() as u64;
    (sqlx::query(RESEAL_MESSAGES).bind(ids).bind(recipients), count)
}
