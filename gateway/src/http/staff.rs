//! `/v1/staff/...`: logging in and out, who is logged in, and the region's audit log.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use drawbridge_domain::StaffMember;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{authorization, client_address, Json, Staff, StaffSession};
use crate::error::ApiError;
use crate::store::staff::LoggedAction;
use crate::use_cases::staff;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct Session {
    token: String,
    expires_at: DateTime<Utc>,
    staff: StaffMember,
    must_change_password: bool,
}

/// `POST /v1/staff/sessions`: log in.
pub async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    login: Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let Login { username, password } = login.into_inner();
    let session = staff::log_in(&state, &username, password, &client_address(&request)).await?;
    Ok(HttpResponse::Created().json(Session {
        token: session.token,
        expires_at: session.expires_at,
        staff: session.staff,
        must_change_password: session.must_change_password,
    }))
}

/// `DELETE /v1/staff/sessions/current`: log out.
pub async fn logout(
    state: web::Data<AppState>,
    request: HttpRequest,
    staff: StaffSession,
) -> Result<HttpResponse, ApiError> {
    let token = authorization(&request, "Bearer").unwrap_or_default();
    staff::log_out(&state, &staff.0, token).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
struct Me {
    staff: StaffMember,
}

/// `GET /v1/staff/me`: who is logged in.
pub async fn me(staff: Staff) -> HttpResponse {
    HttpResponse::Ok().json(Me { staff: staff.0 })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    subject: Option<Uuid>,
}

#[derive(Serialize)]
struct Actions {
    actions: Vec<LoggedAction>,
}

/// `GET /v1/staff/actions`: the audit log of the admin's region, newest first.
pub async fn actions(
    state: web::Data<AppState>,
    staff: Staff,
    query: web::Query<ActionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let actions = staff::audit_log(&state, &staff.0, query.subject, query.limit).await?;
    Ok(HttpResponse::Ok().json(Actions { actions }))
}
