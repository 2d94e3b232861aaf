//! What the call centre's console reads and changes besides the registrant's own rows: callers
//! found by a booking reference, a booking code replaced, and the region's open capacity and
//! queue that answer "when will I get something?".

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::statements;

statements! {
    /// Active registrants of the region with a live booking whose id is in a reference's range,
    /// born in a year.
    CALLERS_BY_REFERENCE =
        "SELECT r.id FROM bookings b JOIN registrants r ON r.id = b.registrant_id
         WHERE b.id BETWEEN $1 AND $2 AND r.birth_year = $3 AND r.region_id = $4
           AND r.status = 'active' AND b.state <> 'cancelled'";
    /// A new booking code's hash for an active registrant; the old code stops opening anything.
    REPLACE_BOOKING_CODE =
        "UPDATE registrants SET booking_code_hash = $2 WHERE id = $1 AND status = 'active'";
    /// The region's slot pairs from now on, per centre, vaccine and week of the first dose (in
    /// the region's time zone), by state.
    OPEN_CAPACITY =
        "SELECT c.id AS centre_id, c.name AS centre, p.vaccine,
                date_trunc('week', p.first_slot_at AT TIME ZONE g.timezone)::date AS week,
                count(*) FILTER (WHERE p.state = 'open') AS open,
                count(*) FILTER (WHERE p.state = 'offered') AS offered,
                count(*) FILTER (WHERE p.state IN ('booked', 'used')) AS booked
         FROM slot_pairs p JOIN centres c ON c.id = p.centre_id JOIN regions g ON g.id = c.region_id
         WHERE c.region_id = $1 AND p.first_slot_at >= $2 AND p.state <> 'cancelled'
         GROUP BY c.id, c.name, p.vaccine, week
         ORDER BY week, c.name, p.vaccine";
    /// Active registrants of the region without a live booking, per priority group, and how
    /// many of them hold an offer now.
    WAITING =
        "SELECT r.priority_group, count(*) AS waiting,
                count(*) FILTER (WHERE EXISTS (SELECT 1 FROM offers o
                                               WHERE o.registrant_id = r.id AND o.state = 'pending')) AS offered
         FROM registrants r
         WHERE r.region_id = $1 AND r.status = 'active'
           AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.registrant_id = r.id AND b.state <> 'cancelled')
         GROUP BY r.priority_group ORDER BY r.priority_group";
    /// The region's last completed draw.
    LAST_DRAW =
        "SELECT d.completed_at, (d.manifest->>'pool')::bigint AS pool,
                (SELECT count(*) FROM draw_matches m WHERE m.draw_id = d.id) AS offered, g.timezone
         FROM draws d JOIN regions g ON g.id = d.region_id
         WHERE d.region_id = $1 AND d.state = 'completed' ORDER BY d.completed_at DESC LIMIT 1";
}

/// The active registrants of `region` born in `birth_year` with a live booking in `ids` (a
/// reference's range).
pub async fn by_reference(
    pool: &PgPool,
    ids: (Uuid, Uuid),
    birth_year: i32,
    region: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(CALLERS_BY_REFERENCE)
        .bind(ids.0)
        .bind(ids.1)
        .bind(birth_year)
        .bind(region)
        .fetch_all(pool)
        .await
}

/// Gives the active registrant `id` the booking code with hash `hash`; `false` if they are not
/// active.
pub async fn replace_booking_code(tx: &mut PgConnection, id: Uuid, hash: &[u8]) -> Result<bool, sqlx::Error> {
    let replaced = sqlx::query(REPLACE_BOOKING_CODE)
        .bind(id)
        .bind(hash)
        .execute(tx)
        .await?;
    Ok(replaced.rows_affected() == 1)
}

/// Slot pairs of one centre, vaccine and week.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct WeekOfPairs {
    pub centre_id: String,
    pub centre: String,
    pub vaccine: String,
    /// The Monday of the week.
    pub week: NaiveDate,
    pub open: i64,
    pub offered: i64,
    pub booked: i64,
}

pub async fn open_capacity(
    pool: &PgPool,
    region: &str,
    from: DateTime<Utc>,
) -> Result<Vec<WeekOfPairs>, sqlx::Error> {
    sqlx::query_as(OPEN_CAPACITY)
        .bind(region)
        .bind(from)
        .fetch_all(pool)
        .await
}

/// People of one priority group waiting for a booking.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct Waiting {
    pub priority_group: i16,
    pub waiting: i64,
    pub offered: i64,
}

pub async fn waiting(pool: &PgPool, region: &str) -> Result<Vec<Waiting>, sqlx::Error> {
    sqlx::query_as(WAITING).bind(region).fetch_all(pool).await
}

/// The region's last completed draw.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct LastDraw {
    pub completed_at: DateTime<Utc>,
    /// People in the draw's pool.
    pub pool: Option<i64>,
    /// Offers it made.
    pub offered: i64,
    /// The region's time zone, to tell the time in.
    pub timezone: String,
}

pub async fn last_draw(pool: &PgPool, region: &str) -> Result<Option<LastDraw>, sqlx::Error> {
    sqlx::query_as(LAST_DRAW).bind(region).fetch_optional(pool).await
}
