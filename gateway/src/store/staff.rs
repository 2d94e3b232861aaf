//! Staff: accounts, sessions (kept as the token's hash), and the audit log of what staff do.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::statements;

statements! {
    RECORD_ACTION =
        "INSERT INTO staff_actions (staff_id, action, region_id, centre_id, subject_id, detail)
         VALUES ($1, $2, $3, $4, $5, $6)";
    /// The staff member a live session token (by its hash) belongs to.
    SESSION_HOLDER =
        "SELECT s.id, s.username, s.role, s.region_id, s.centre_id, s.must_change_password, t.expires_at
         FROM staff_sessions t JOIN staff s ON s.id = t.staff_id
         WHERE t.token_hash = $1 AND t.ended_at IS NULL AND t.expires_at > now() AND s.disabled_at IS NULL";
    ACCOUNT =
        "SELECT id, username, role, region_id, centre_id, password_hash, must_change_password FROM staff
         WHERE username = $1 AND disabled_at IS NULL";
    /// Only for an account still enabled; the share lock makes a disable that runs meanwhile
    /// wait for this session, and end it (or this wait for the disable, and start none).
    START_SESSION =
        "INSERT INTO staff_sessions (token_hash, staff_id, expires_at)
         SELECT $1, id, $3 FROM staff WHERE id = $2 AND disabled_at IS NULL FOR SHARE";
    END_SESSION = "UPDATE staff_sessions SET ended_at = now() WHERE token_hash = $1";
    PASSWORD_HASH = "SELECT password_hash FROM staff WHERE id = $1 AND disabled_at IS NULL";
    CHOOSE_PASSWORD =
        "UPDATE staff SET password_hash = $2, must_change_password = false WHERE id = $1 AND disabled_at IS NULL";
    /// Every session of the account but the one choosing the password.
    END_OTHER_SESSIONS =
        "UPDATE staff_sessions SET ended_at = now() WHERE staff_id = $1 AND token_hash <> $2 AND ended_at IS NULL";
    /// A region's audit log, newest first, optionally about one subject, by one staff member,
    /// of actions starting with a prefix, and from and until an instant.
    ACTIONS =
        "SELECT a.at, s.username AS staff, s.role, a.action, a.centre_id AS centre, a.subject_id AS subject,
                a.detail
         FROM staff_actions a JOIN staff s ON s.id = a.staff_id
         WHERE a.region_id = $1 AND ($2::uuid IS NULL OR a.subject_id = $2)
           AND ($4::text IS NULL OR s.username = $4) AND ($5::text IS NULL OR starts_with(a.action, $5))
           AND ($6::timestamptz IS NULL OR a.at >= $6) AND ($7::timestamptz IS NULL OR a.at < $7)
         ORDER BY a.id DESC LIMIT $3";
    /// The kinds of action in a region's audit log.
    ACTION_KINDS = "SELECT DISTINCT action FROM staff_actions WHERE region_id = $1 ORDER BY action";
}

/// One entry of the audit log, as written.
pub struct Action<'a> {
    pub staff: Uuid,
    pub action: &'a str,
    pub region: &'a str,
    pub centre: Option<&'a str>,
    pub subject: Option<Uuid>,
    pub detail: serde_json::Value,
}

/// Writes an audit entry in the caller's transaction, so an action and its record are one.
pub async fn record(tx: &mut PgConnection, action: Action<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(RECORD_ACTION)
        .bind(action.staff)
        .bind(action.action)
        .bind(action.region)
        .bind(action.centre)
        .bind(action.subject)
        .bind(action.detail)
        .execute(tx)
        .await?;
    Ok(())
}

/// A staff member as stored.
#[derive(sqlx::FromRow)]
pub struct StaffRow {
    pub id: Uuid,
    pub username: String,
    pub role: String,
    pub region_id: String,
    pub centre_id: Option<String>,
}

/// A live session's holder and when the session ends.
#[derive(sqlx::FromRow)]
pub struct SessionRow {
    #[sqlx(flatten)]
    pub staff: StaffRow,
    pub must_change_password: bool,
    pub expires_at: DateTime<Utc>,
}

/// A staff row with its password hash, for logging in.
#[derive(sqlx::FromRow)]
pub struct Account {
    #[sqlx(flatten)]
    pub row: StaffRow,
    pub password_hash: String,
    pub must_change_password: bool,
}

pub async fn session_holder(pool: &PgPool, token_hash: &[u8]) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as(SESSION_HOLDER)
        .bind(token_hash)
        .fetch_optional(pool)
        .await
}

/// The enabled account with this username.
pub async fn account(pool: &PgPool, username: &str) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(ACCOUNT).bind(username).fetch_optional(pool).await
}

/// Starts a session; false if the account was disabled since it was read.
pub async fn start_session(
    tx: &mut PgConnection,
    token_hash: &[u8],
    staff: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let started = sqlx::query(START_SESSION)
        .bind(token_hash)
        .bind(staff)
        .bind(expires_at)
        .execute(tx)
        .await?;
    Ok(started.rows_affected() == 1)
}

pub async fn end_session(tx: &mut PgConnection, token_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query(END_SESSION).bind(token_hash).execute(tx).await?;
    Ok(())
}

/// The password hash of the enabled account `staff`.
pub async fn password_hash(pool: &PgPool, staff: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(PASSWORD_HASH)
        .bind(staff)
        .fetch_optional(pool)
        .await
}

/// Stores the password its person chose and ends their other sessions (any started with a
/// password someone else knew); false if the account was disabled meanwhile.
pub async fn choose_password(
    tx: &mut PgConnection,
    staff: Uuid,
    password_hash: &str,
    session_hash: &[u8],
) -> Result<bool, sqlx::Error> {
    let chosen = sqlx::query(CHOOSE_PASSWORD)
        .bind(staff)
        .bind(password_hash)
        .execute(&mut *tx)
        .await?;
    sqlx::query(END_OTHER_SESSIONS)
        .bind(staff)
        .bind(session_hash)
        .execute(tx)
        .await?;
    Ok(chosen.rows_affected() == 1)
}

/// One entry of the audit log, as read.
#[derive(serde::Serialize, sqlx::FromRow)]
pub struct LoggedAction {
    pub at: DateTime<Utc>,
    pub staff: String,
    pub role: String,
    pub action: String,
    pub centre: Option<String>,
    pub subject: Option<Uuid>,
    pub detail: serde_json::Value,
}

/// Which entries of a region's audit log to read; `None` matches everything.
#[derive(Debug, Default)]
pub struct ActionFilter {
    pub subject: Option<Uuid>,
    pub staff: Option<String>,
    /// The action or its first part, e.g. `staff.` or `centre.close`.
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

pub async fn actions(
    pool: &PgPool,
    region: &str,
    filter: &ActionFilter,
    limit: i64,
) -> Result<Vec<LoggedAction>, sqlx::Error> {
    sqlx::query_as(ACTIONS)
        .bind(region)
        .bind(filter.subject)
        .bind(limit)
        .bind(&filter.staff)
        .bind(&filter.action)
        .bind(filter.from)
        .bind(filter.until)
        .fetch_all(pool)
        .await
}

pub async fn action_kinds(pool: &PgPool, region: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(ACTION_KINDS)
        .bind(region)
        .fetch_all(pool)
        .await
}
