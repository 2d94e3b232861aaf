//! `/staff`: the consoles' door. Signed out, a sign-in form; signed in, the role's home page
//! with who is signed in, where, and when the session ends, and a sign-out button. The session
//! and its rights are those of the staff API (`/v1/staff/...`): the same login with its
//! guessing limits, the same audit log of every start and end.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError as _};
use chrono::Utc;
use drawbridge_domain::Language;
use drawbridge_platform::staff::MIN_PASSWORD_LEN;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::console::{self, is_expected, see_other, sign_in_token, Console, DoneQuery, NotSignedIn};
use super::extract::{client_address, cookie, LanguageQuery};
use super::refusal::problem;
use crate::error::{ApiError, ErrorCode};
use crate::use_cases::staff::{self, PasswordChoice};
use crate::AppState;

#[derive(Serialize, Default)]
struct SignInView {
    csrf: String,
    username: String,
    problem: Option<String>,
}

/// `GET /staff`: the role's home page, or the sign-in form.
pub async fn home(
    state: web::Data<AppState>,
    done: web::Query<DoneQuery>,
    console: Result<Console, NotSignedIn>,
) -> Result<HttpResponse, ApiError> {
    match console {
        Ok(console) => {
            let done = console.confirmation(&state, &done);
            Ok(console.page(&state, "staff_home.html", StatusCode::OK, context! { done }))
        }
        Err(NotSignedIn::SignedOut(language)) => Ok(sign_in_page(
            &state,
            language,
            StatusCode::OK,
            SignInView::default(),
        )),
        Err(elsewhere @ NotSignedIn::MustChoosePassword(_)) => Ok(elsewhere.error_response()),
        Err(NotSignedIn::Failed(error)) => Err(error),
    }
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
        .console_page_with_status("staff_sign_in.html", language, status, view);
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
    let language = console::language(&query);
    let SignInForm {
        username,
        password,
        csrf,
    } = form.into_inner();
    let expected = cookie(&request, console::SIGN_IN_CSRF).unwrap_or_default();
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
            let _ = response.add_cookie(&console::session_cookie(&state, &session.token, seconds));
            let _ = response.add_removal_cookie(&console::sign_in_token_used(&state));
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
    form: web::Form<SignOutForm>,
    console: Result<Console, NotSignedIn>,
) -> Result<HttpResponse, ApiError> {
    let console = match console {
        Ok(console) => console,
        Err(NotSignedIn::SignedOut(language) | NotSignedIn::MustChoosePassword(language)) => {
            return Ok(to_home(language))
        }
        Err(NotSignedIn::Failed(error)) => return Err(error),
    };
    console.check_form(&form.csrf)?;
    staff::log_out(&state, &console.member, &console.token).await?;
    let mut response = to_home(console.language);
    let _ = response.add_removal_cookie(&console::session_cookie(&state, "", 0));
    Ok(response)
}

#[derive(Serialize)]
struct PasswordView {
    min: usize,
    problem: Option<String>,
    field: Option<String>,
}

fn password_page(state: &AppState, console: &Console, refused: Option<&ApiError>) -> HttpResponse {
    let problem = refused.map(|error| problem(state, console.language, "staff_errors", error));
    let status = refused.map_or(StatusCode::OK, actix_web::ResponseError::status_code);
    let view = PasswordView {
        min: MIN_PASSWORD_LEN,
        field: problem.as_ref().and_then(|problem| problem.field.clone()),
        problem: problem.map(|problem| problem.message),
    };
    console.page(state, "staff_password.html", status, view)
}

/// `GET /staff/password`: the form to choose one's own password; the only page (with signing
/// out) of an account whose password an administrator was shown.
pub async fn password_form(state: web::Data<AppState>, console: Console) -> HttpResponse {
    password_page(&state, &console, None)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
    repeated_password: String,
}

/// `POST /staff/password`: checks the current password (within the sign-in's guessing limits),
/// stores the new one and ends the account's other sessions; 303 to the home page.
pub async fn choose_password(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<PasswordForm>,
    console: Console,
) -> HttpResponse {
    let form = form.into_inner();
    let chosen = async {
        console.check_form(&form.csrf)?;
        let choice = PasswordChoice {
            current: form.current_password,
            new: form.new_password,
            repeated: form.repeated_password,
        };
        staff::choose_password(
            &state,
            &console.member,
            &console.token,
            choice,
            &client_address(&request),
        )
        .await
    }
    .await;
    match chosen {
        Ok(()) => console.see_other("/staff?done=password"),
        Err(error) if error.code() == ErrorCode::Internal => actix_web::ResponseError::error_response(&error),
        Err(error) => password_page(&state, &console, Some(&error)),
    }
}

fn to_home(language: Language) -> HttpResponse {
    see_other(&format!("/staff?lang={}", language.as_str()))
}
