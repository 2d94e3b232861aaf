//! Staff sessions and the audit log. Logging in trades a username and password for a bearer
//! token (kept only as its SHA-256) that expires; every request turns the token back into the
//! staff member. Every action staff take for someone else is written to the audit log in the
//! same transaction as the action itself.

use std::sync::LazyLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use drawbridge_domain::{Role, StaffMember, StaffRefusal};
use drawbridge_platform::staff::{hash_password, verify_password, MIN_PASSWORD_LEN};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{audit, forbidden};
use crate::error::{ApiError, ErrorCode};
use crate::limits::{Counting, Credential, FailureLimit};
use crate::store::staff::{self, Account, ActionFilter, LoggedAction, StaffRow};
use crate::AppState;

/// How long a staff login lasts: one working shift.
const SESSION_HOURS: i64 = 10;
/// Failed logins allowed per username from one client address within the window: per pair, so
/// guesses from elsewhere never lock the account's owner out, nor colleagues behind one proxy.
const LOGINS_PER_USERNAME_AND_ADDRESS: i64 = 10;
const LOGIN_WINDOW_SECONDS: i64 = 15 * 60;
/// Prefix of session tokens, so a leaked one is recognisable in logs and scanners.
const TOKEN_PREFIX: &str = "dbs_";
/// Most audit entries one read answers.
const MAX_ACTIONS: i64 = 1000;

fn member(row: StaffRow) -> Result<StaffMember, ApiError> {
    Ok(StaffMember {
        role: Role::parse(&row.role)
            .ok_or_else(|| ApiError::internal(format!("unknown staff role {:?}", row.role)))?,
        id: row.id,
        username: row.username,
        region: row.region_id,
        centre: row.centre_id,
    })
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The live session `token`: whose it is and when it ends.
pub async fn session_holder(state: &AppState, token: &str) -> Result<LiveSession, ApiError> {
    let row = staff::session_holder(state.store.pool(), &token_hash(token))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::StaffSessionInvalid))?;
    Ok(LiveSession {
        staff: member(row.staff)?,
        must_change_password: row.must_change_password,
        expires_at: row.expires_at,
    })
}

/// A session in use.
pub struct LiveSession {
    pub staff: StaffMember,
    /// The account's password was generated and shown to an administrator: until its person
    /// chooses their own, the session may do nothing else.
    pub must_change_password: bool,
    pub expires_at: DateTime<Utc>,
}

/// A session just started.
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub staff: StaffMember,
    /// The session may do nothing but choose a password (see [`LiveSession`]).
    pub must_change_password: bool,
}

/// The hash of a random password, checked against when the username is unknown.
static UNKNOWN_USER_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut password = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut password);
    hash_password(&URL_SAFE_NO_PAD.encode(password)).expect("argon2 hashes a random password")
});

/// The limit on wrong passwords for `username` from `address`, at sign-in and when choosing a
/// new password (which asks for the current one).
fn password_guesses<'a>(state: &'a AppState, username: &str, address: &str) -> FailureLimit<'a> {
    state.limits.failures(
        Credential::StaffPassword,
        &[(
            format!("logins:user:{username}:address:{address}"),
            LOGINS_PER_USERNAME_AND_ADDRESS,
            Counting::Target,
        )],
        LOGIN_WINDOW_SECONDS,
        "Too many failed logins for this account from here. Please wait, or ask an administrator.",
    )
}

/// Logs in from `address`, within the failure limits per username and per address.
pub async fn log_in(
    state: &AppState,
    username: &str,
    password: String,
    address: &str,
) -> Result<Session, ApiError> {
    let limits = password_guesses(state, username, address);
    // Counted on the username before the password is checked, so logins sent at once cannot
    // all be judged.
    limits.attempt().await?;
    let account = staff::account(state.store.pool(), username).await?;
    // Unknown users cost a hash check too, so timing does not tell which usernames exist.
    let (row, hash, must_change_password) = match account {
        Some(Account {
            row,
            password_hash,
            must_change_password,
        }) => (Some(row), password_hash, must_change_password),
        None => (None, UNKNOWN_USER_HASH.clone(), false),
    };
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let Some(row) = row.filter(|_| matches) else {
        limits.failed().await;
        return Err(ApiError::new(ErrorCode::WrongCredentials));
    };
    limits.succeeded().await;
    let member = member(row)?;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let expires_at = Utc::now() + Duration::hours(SESSION_HOURS);
    let mut tx = state.store.begin().await?;
    if !staff::start_session(&mut tx, &token_hash(&token), member.id, expires_at).await? {
        return Err(ApiError::new(ErrorCode::WrongCredentials));
    }
    audit(
        &mut tx,
        &member,
        "session.start",
        None,
        None,
        serde_json::json!({ "address": address }),
    )
    .await?;
    tx.commit().await?;
    Ok(Session {
        token,
        expires_at,
        staff: member,
        must_change_password,
    })
}

/// What a staff member sends to choose their own password.
pub struct PasswordChoice {
    pub current: String,
    pub new: String,
    pub repeated: String,
}

/// Replaces the password of `member` (signed in with `token`) by one they chose, after checking
/// the current one within the sign-in's guessing limits, and ends their other sessions.
pub async fn choose_password(
    state: &AppState,
    member: &StaffMember,
    token: &str,
    choice: PasswordChoice,
    address: &str,
) -> Result<(), ApiError> {
    let PasswordChoice {
        current,
        new,
        repeated,
    } = choice;
    if new.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::invalid(
            "new_password",
            format!("The new password needs at least {MIN_PASSWORD_LEN} characters."),
        ));
    }
    if new == current {
        return Err(ApiError::invalid(
            "new_password",
            "The new password must differ from the current one.",
        ));
    }
    if repeated != new {
        return Err(ApiError::invalid(
            "repeated_password",
            "The repeated password is not the same as the new one.",
        ));
    }
    let limits = password_guesses(state, &member.username, address);
    limits.attempt().await?;
    let hash = staff::password_hash(state.store.pool(), member.id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::StaffSessionInvalid))?;
    let matches = tokio::task::spawn_blocking(move || verify_password(&current, &hash))
        .await
        .map_err(ApiError::internal)?;
    if !matches {
        limits.failed().await;
        return Err(ApiError::new(ErrorCode::WrongCredentials));
    }
    limits.succeeded().await;
    let hash = tokio::task::spawn_blocking(move || hash_password(&new))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let mut tx = state.store.begin().await?;
    if !staff::choose_password(&mut tx, member.id, &hash, &token_hash(token)).await? {
        return Err(ApiError::new(ErrorCode::StaffSessionInvalid));
    }
    audit(
        &mut tx,
        member,
        "staff.choose_password",
        member.centre.as_deref(),
        Some(member.id),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Ends the session `token` of `member`.
pub async fn log_out(state: &AppState, member: &StaffMember, token: &str) -> Result<(), ApiError> {
    let mut tx = state.store.begin().await?;
    staff::end_session(&mut tx, &token_hash(token)).await?;
    audit(&mut tx, member, "session.end", None, None, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// The audit log of the admin's region, newest first, optionally about one subject.
pub async fn audit_log(
    state: &AppState,
    member: &StaffMember,
    subject: Option<Uuid>,
    limit: Option<i64>,
) -> Result<Vec<LoggedAction>, ApiError> {
    if member.role != Role::RegionAdmin {
        return Err(forbidden(StaffRefusal::Role {
            role: member.role.as_str(),
            action: "read the audit log",
        }));
    }
    let limit = limit.unwrap_or(100).clamp(1, MAX_ACTIONS);
    let filter = ActionFilter {
        subject,
        ..ActionFilter::default()
    };
    Ok(staff::actions(state.store.pool(), &member.region, &filter, limit).await?)
}
