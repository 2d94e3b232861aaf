//! Staff sessions and the audit log. `POST /v1/staff/sessions` trades a username and password
//! for a bearer token (kept only as its SHA-256) that expires; the [`Staff`] extractor turns
//! the token back into the staff member on every request. Every action staff take for someone
//! else is written to `staff_actions` in the same transaction as the action itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use drawbridge_domain::{Role, StaffMember, StaffRefusal};
use drawbridge_platform::staff::{hash_password, verify_password};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiError;
use crate::limits::FailureLimit;
use crate::AppState;

/// How long a staff login lasts: one working shift.
const SESSION_HOURS: i64 = 10;
/// Failed logins allowed per username and per client address within the window.
const LOGINS_PER_USERNAME: i64 = 10;
const LOGINS_PER_ADDRESS: i64 = 50;
const LOGIN_WINDOW_SECONDS: i64 = 15 * 60;
/// Prefix of session tokens, so a leaked one is recognisable in logs and scanners.
const TOKEN_PREFIX: &str = "dbs_";

/// Who is doing something: the person themselves (booking code or offer link) or staff.
pub enum Acting<'a> {
    Registrant,
    Staff(&'a StaffMember),
}

impl Acting<'_> {
    pub fn is_staff(&self) -> bool {
        matches!(self, Acting::Staff(_))
    }

    /// Staff act for callers of their own region only.
    pub fn check_region(&self, region: &str) -> Result<(), ApiError> {
        match self {
            Acting::Registrant => Ok(()),
            Acting::Staff(member) => member.may_act_for_callers(region).map_err(forbidden),
        }
    }
}

/// 403 with the refusal's reason.
pub fn forbidden(refusal: StaffRefusal) -> ApiError {
    ApiError::Forbidden {
        code: "not_allowed",
        message: format!("Not allowed: {refusal}."),
    }
}

/// Writes an audit entry when staff act; nothing for the person acting for themselves.
pub async fn audit(
    tx: &mut PgConnection,
    acting: &Acting<'_>,
    action: &str,
    subject: Option<Uuid>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    if let Acting::Staff(member) = acting {
        record(tx, member, action, None, subject, detail).await?;
    }
    Ok(())
}

/// Writes one audit entry.
pub async fn record(
    tx: &mut PgConnection,
    member: &StaffMember,
    action: &str,
    centre: Option<&str>,
    subject: Option<Uuid>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO staff_actions (staff_id, action, region_id, centre_id, subject_id, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(member.id)
    .bind(action)
    .bind(&member.region)
    .bind(centre)
    .bind(subject)
    .bind(detail)
    .execute(tx)
    .await?;
    Ok(())
}

/// A logged-in staff member, from `Authorization: Bearer <session token>`.
pub struct Staff(pub StaffMember);

impl FromRequest for Staff {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Staff, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request
            .app_data::<web::Data<AppState>>()
            .expect("the application state is registered")
            .clone();
        let token = request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::to_owned);
        Box::pin(async move {
            let token = token.ok_or_else(|| ApiError::Unauthorized {
                code: "staff_login_required",
                message: "Log in with POST /v1/staff/sessions and send the token as `Authorization: Bearer <token>`."
                    .into(),
            })?;
            session(&state, &token).await.map(Staff)
        })
    }
}

#[derive(sqlx::FromRow)]
struct StaffRow {
    id: Uuid,
    username: String,
    role: String,
    region_id: String,
    centre_id: Option<String>,
}

/// A staff row with its password hash, for logging in.
#[derive(sqlx::FromRow)]
struct Account {
    #[sqlx(flatten)]
    row: StaffRow,
    password_hash: String,
}

impl StaffRow {
    fn member(self) -> Result<StaffMember, ApiError> {
        Ok(StaffMember {
            role: Role::parse(&self.role)
                .ok_or_else(|| ApiError::Internal(format!("unknown staff role {:?}", self.role)))?,
            id: self.id,
            username: self.username,
            region: self.region_id,
            centre: self.centre_id,
        })
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

async fn session(state: &AppState, token: &str) -> Result<StaffMember, ApiError> {
    let row: Option<StaffRow> = sqlx::query_as(
        "SELECT s.id, s.username, s.role, s.region_id, s.centre_id
         FROM staff_sessions t JOIN staff s ON s.id = t.staff_id
         WHERE t.token_hash = $1 AND t.ended_at IS NULL AND t.expires_at > now() AND s.disabled_at IS NULL",
    )
    .bind(token_hash(token).as_slice())
    .fetch_optional(&state.pool)
    .await?;
    row.ok_or_else(|| ApiError::Unauthorized {
        code: "staff_session_invalid",
        message: "This session is not valid (expired, ended or unknown). Please log in again.".into(),
    })?
    .member()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

/// `POST /v1/staff/sessions`: log in.
pub async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    login: web::Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let Login { username, password } = login.into_inner();
    let address = request
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    let limits = FailureLimit::new(
        &state,
        &[
            (format!("logins:user:{username}"), LOGINS_PER_USERNAME),
            (format!("logins:address:{address}"), LOGINS_PER_ADDRESS),
        ],
        LOGIN_WINDOW_SECONDS,
        "Too many failed logins for this account or from here. Please wait, or ask an administrator.",
    );
    limits.check().await?;
    let account: Option<Account> = sqlx::query_as(
        "SELECT id, username, role, region_id, centre_id, password_hash FROM staff
         WHERE username = $1 AND disabled_at IS NULL",
    )
    .bind(&username)
    .fetch_optional(&state.pool)
    .await?;
    // Unknown users cost a hash check too, so timing does not tell which usernames exist.
    let (row, hash) = match account {
        Some(Account { row, password_hash }) => (Some(row), password_hash),
        None => (None, UNKNOWN_USER_HASH.clone()),
    };
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(row) = row.filter(|_| matches) else {
        limits.count_failure().await?;
        return Err(ApiError::Unauthorized {
            code: "wrong_credentials",
            message: "Username or password is wrong.".into(),
        });
    };
    let member = row.member()?;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let expires_at: DateTime<Utc> = Utc::now() + Duration::hours(SESSION_HOURS);
    let mut tx = state.pool.begin().await?;
    sqlx::query("INSERT INTO staff_sessions (token_hash, staff_id, expires_at) VALUES ($1, $2, $3)")
        .bind(token_hash(&token).as_slice())
        .bind(member.id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        &member,
        "session.start",
        None,
        None,
        json!({ "address": address }),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(json!({
        "token": token,
        "expires_at": expires_at,
        "staff": member,
    })))
}

/// The hash of a random password, checked against when the username is unknown.
static UNKNOWN_USER_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut password = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut password);
    hash_password(&URL_SAFE_NO_PAD.encode(password)).expect("argon2 hashes a random password")
});

/// `DELETE /v1/staff/sessions/current`: log out.
pub async fn logout(
    state: web::Data<AppState>,
    request: HttpRequest,
    staff: Staff,
) -> Result<HttpResponse, ApiError> {
    let token = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    let mut tx = state.pool.begin().await?;
    sqlx::query("UPDATE staff_sessions SET ended_at = now() WHERE token_hash = $1")
        .bind(token_hash(token).as_slice())
        .execute(&mut *tx)
        .await?;
    record(&mut tx, &staff.0, "session.end", None, None, json!({})).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/staff/me`: who is logged in.
pub async fn me(staff: Staff) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "staff": staff.0 }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    subject: Option<Uuid>,
}

/// `GET /v1/staff/actions`: the audit log of the admin's region, newest first.
pub async fn actions(
    state: web::Data<AppState>,
    staff: Staff,
    query: web::Query<ActionsQuery>,
) -> Result<HttpResponse, ApiError> {
    if staff.0.role != Role::RegionAdmin {
        return Err(forbidden(StaffRefusal::Role {
            role: staff.0.role.as_str(),
            action: "read the audit log",
        }));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let actions: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT json_build_object('at', a.at, 'staff', s.username, 'role', s.role, 'action', a.action,
                                  'centre', a.centre_id, 'subject', a.subject_id, 'detail', a.detail)
         FROM staff_actions a JOIN staff s ON s.id = a.staff_id
         WHERE a.region_id = $1 AND ($2::uuid IS NULL OR a.subject_id = $2)
         ORDER BY a.id DESC LIMIT $3",
    )
    .bind(&staff.0.region)
    .bind(query.subject)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "actions": actions })))
}
