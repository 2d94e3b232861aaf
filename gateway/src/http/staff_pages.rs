//! `/staff`: the consoles' door. Signed out, a sign-in form; signed in, the role's home page
//! with who is signed in, where, and when the session ends, and a sign-out button. The session
//! and its rights are those of the staff API (`/v1/staff/...`): the same login with its
//! guessing limits, the same audit log of every start and end.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use drawbridge_domain::language::when;
use drawbridge_domain::{Language, StaffMember};
use serde::{Deserialize, Serialize};

use super::extract::{client_address, cookie, LanguageQuery};
use super::refusal::problem;
use super::staff_session::{self, form_token, is_expected, session_token, sign_in_token};
use crate::error::{ApiError, ErrorCode};
use crate::use_cases::staff::{self, LiveSession};
use crate::AppState;

/// Session times are shown in the service's home time zone: staff work in the region.
const TIMEZONE: &str = "Europe/Berlin";

#[derive(Serialize, Default)]
struct SignInView {
    csrf: String,
    username: String,
    problem: Option<String>,
}

#[derive(Serialize)]
struct HomeView {
    csrf: String,
    staff: StaffMember,
    role: &'static str,
    ends: String,
}

/// The live session the request's cookie holds, with its token; `None` without one or once it
/// ended or expired. Other failures (the database away) are errors, not a signed-out page.
async fn live_session<'r>(
    state: &AppState,
    request: &'r HttpRequest,
) -> Result<Option<(&'r str, LiveSession)>, ApiError> {
    let Some(token) = session_token(request) else {
        return Ok(None);
    };
    match staff::session_holder(state, token).await {
        Ok(session) => Ok(Some((token, session))),
        Err(error) if error.code() == ErrorCode::StaffSessionInvalid => Ok(None),
        Err(error) => Err(error),
    }
}

/// `GET /staff`.
pub async fn home(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    let language = query.language();
    let Some((token, session)) = live_session(&state, &request).await? else {
        return Ok(sign_in_page(
            &state,
            language,
            StatusCode::OK,
            SignInView::default(),
        ));
    };
    let view = HomeView {
        csrf: form_token(&state, token),
        role: session.staff.role.as_str(),
        ends: when(session.expires_at, TIMEZONE, language),
        staff: session.staff,
    };
    state.templates.page("staff_home.html", language, view)
}

/// The sign-in form with a fresh CSRF token and its cookie.
fn sign_in_page(
    state: &AppState,
    language: Language,
    status: StatusCode,
    mut view: SignInView,
) -> HttpResponse {
    let (csrf, csrf_cookie) = sign_in_token(state);
    view.csrf = csrf;
    let mut response = state
        .templates
        .page_with_status("staff_sign_in.html", language, status, view);
    let _ = response.add_cookie(&csrf_cookie);
    response
}

#[derive(Deserialize)]
pub struct SignInForm {
    username: String,
    password: String,
    csrf: String,
}

/// `POST /staff/sign-in`.
pub async fn sign_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: LanguageQuery,
    form: web::Form<SignInForm>,
) -> HttpResponse {
    let language = query.language();
    let SignInForm {
        username,
        password,
        csrf,
    } = form.into_inner();
    let expected = cookie(&request, staff_session::SIGN_IN_CSRF).unwrap_or_default();
    let refused = |error: ApiError| {
        let view = SignInView {
            problem: Some(problem(&state, language, "staff_errors", &error).message),
            username: username.clone(),
            ..SignInView::default()
        };
        sign_in_page(
            &state,
            language,
            actix_web::ResponseError::status_code(&error),
            view,
        )
    };
    if !is_expected(&csrf, expected) {
        return refused(ApiError::new(ErrorCode::FormExpired));
    }
    match staff::log_in(&state, &username, password, &client_address(&request)).await {
        Ok(session) => {
            let seconds = (session.expires_at - Utc::now()).num_seconds().max(0);
            let mut response = to_home(language);
            let _ = response.add_cookie(&staff_session::session_cookie(&state, &session.token, seconds));
            let _ = response.add_removal_cookie(&staff_session::sign_in_token_used(&state));
            response
        }
        Err(error) if error.code() == ErrorCode::Internal => actix_web::ResponseError::error_response(&error),
        Err(error) => refused(error),
    }
}

#[derive(Deserialize)]
pub struct SignOutForm {
    csrf: String,
}

/// `POST /staff/sign-out`: ends the session, as `DELETE /v1/staff/sessions/current` does.
pub async fn sign_out(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: LanguageQuery,
    form: web::Form<SignOutForm>,
) -> Result<HttpResponse, ApiError> {
    let language = query.language();
    let Some((token, session)) = live_session(&state, &request).await? else {
        return Ok(to_home(language));
    };
    if !is_expected(&form.csrf, &form_token(&state, token)) {
        return Err(ApiError::new(ErrorCode::FormExpired));
    }
    staff::log_out(&state, &session.staff, token).await?;
    let mut response = to_home(language);
    let _ = response.add_removal_cookie(&staff_session::session_cookie(&state, "", 0));
    Ok(response)
}

fn to_home(language: Language) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/staff?lang={}", language.as_str()),
        ))
        .finish()
}
