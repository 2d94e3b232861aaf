//! What the staff consoles' pages share: the session token kept in an HttpOnly,
//! SameSite=Strict cookie scoped to `/staff`, the CSRF token on every form, the signed-in member
//! as an extractor, and refusals shown as a page. Signed in, a form's token is derived from the
//! session (an HMAC under the hash key), so only pages the session was shown can post for it;
//! before sign-in, the sign-in form's token must match a random cookie set with the form
//! (double submit), so no other site can sign a browser in to an account of its choosing.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use drawbridge_domain::language::when;
use drawbridge_domain::{Language, StaffMember};
use hmac::{Hmac, Mac};
use minijinja::{context, Value};
use rand::RngCore;
use serde::Serialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::extract::{cookie, state, LanguageQuery};
use super::refusal::problem;
use crate::error::{ApiError, ErrorCode};
use crate::templates::console_language;
use crate::use_cases::staff;
use crate::AppState;

/// The cookie that keeps the staff session's token.
pub const SESSION: &str = "drawbridge_staff";
/// The cookie the sign-in form's CSRF token is checked against.
pub const SIGN_IN_CSRF: &str = "drawbridge_staff_csrf";
/// Where both cookies are sent.
const PATH: &str = "/staff";
/// Session times are shown in the service's home time zone: staff work in the region.
pub const TIMEZONE: &str = "Europe/Berlin";

fn build(state: &AppState, name: &'static str, value: String, seconds: i64) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(PATH)
        .http_only(true)
        .secure(state.settings.public_url.starts_with("https:"))
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(seconds))
        .finish()
}

/// The cookie that holds `token` for `seconds` (0 signs out).
pub fn session_cookie(state: &AppState, token: &str, seconds: i64) -> Cookie<'static> {
    build(state, SESSION, token.to_owned(), seconds)
}

/// The session token the request's cookie holds, if any.
pub fn session_token(request: &HttpRequest) -> Option<&str> {
    cookie(request, SESSION)
}

/// The CSRF token of forms shown to the session `token`.
pub fn form_token(state: &AppState, token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.hash_key).expect("HMAC takes any key length");
    mac.update(b"staff-form:");
    mac.update(token.as_bytes());
    URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..18])
}

/// A fresh sign-in CSRF token and the cookie to set with the form that carries it.
pub fn sign_in_token(state: &AppState) -> (String, Cookie<'static>) {
    let mut random = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let token = URL_SAFE_NO_PAD.encode(random);
    (token.clone(), build(state, SIGN_IN_CSRF, token, 60 * 60))
}

/// The cookie that removes the sign-in CSRF cookie once the form did its work.
pub fn sign_in_token_used(state: &AppState) -> Cookie<'static> {
    build(state, SIGN_IN_CSRF, String::new(), 0)
}

/// Whether a form's CSRF token is the one expected (in constant time).
pub fn is_expected(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// The language of a console page the request asks for: German or English.
pub fn language(query: &LanguageQuery) -> Language {
    console_language(query.language())
}

/// A staff member signed in to a console page, with what its forms carry. A request without a
/// live session is sent to the sign-in page.
pub struct Console {
    pub member: StaffMember,
    pub language: Language,
    /// The CSRF token every form of the page carries.
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
    /// The session's token.
    pub token: String,
    /// The account's password was shown to an administrator: the console shows nothing but the
    /// form to choose one's own (and signing out) until it is chosen.
    pub must_change_password: bool,
}

/// The pages a session whose password an administrator was shown may open.
const WHILE_CHOOSING_PASSWORD: [&str; 2] = ["/staff/password", "/staff/sign-out"];

impl Console {
    /// Refuses a form whose CSRF token is not this session's: posted from another site, or
    /// from a page of an earlier session.
    pub fn check_form(&self, sent: &str) -> Result<(), ApiError> {
        if is_expected(sent, &self.csrf) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::FormExpired))
        }
    }

    /// `path` (with or without a query) in this console's language.
    pub fn link(&self, path: &str) -> String {
        let joint = if path.contains('?') { '&' } else { '?' };
        format!("{path}{joint}lang={}", self.language.as_str())
    }

    /// A `303 See Other` to `path` in this console's language.
    pub fn see_other(&self, path: &str) -> HttpResponse {
        see_other(&self.link(path))
    }

    /// The console page `template` showing `view`, with `status`. Every console page also
    /// gets who is signed in (`staff`), until when (`ends`) and the forms' token (`csrf`).
    pub fn page(
        &self,
        state: &AppState,
        template: &str,
        status: StatusCode,
        view: impl Serialize,
    ) -> HttpResponse {
        let view = context! {
            staff => &self.member,
            role => self.member.role.as_str(),
            ends => when(self.expires_at, TIMEZONE, self.language),
            csrf => &self.csrf,
            must_choose => self.must_change_password,
            ..Value::from_serialize(view)
        };
        state
            .templates
            .console_page_with_status(template, self.language, status, view)
    }

    /// What a console page confirms after a change (`?done=` names it), in the console's
    /// language.
    pub fn confirmation(&self, state: &AppState, done: &DoneQuery) -> Option<String> {
        let key = done.done.as_deref()?;
        state.templates.text(self.language, "done", key)
    }

    /// `refused` as a page: what went wrong in the console's words, and the way back.
    pub fn refused(&self, state: &AppState, back: &str, refused: &ApiError) -> HttpResponse {
        #[derive(Serialize)]
        struct Refused {
            message: String,
            back: String,
        }
        let view = Refused {
            message: problem(state, self.language, "console_errors", refused).message,
            back: self.link(back),
        };
        self.page(state, "staff_refused.html", refused.status_code(), view)
    }
}

/// `?done=`: what the page confirms, after a change that sent the browser to it.
#[derive(serde::Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

/// A `303 See Other` to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}

/// Why a console page was not shown: signed out (to the sign-in page), a password to choose
/// first (to its form), or a failure.
#[derive(Debug)]
pub enum NotSignedIn {
    SignedOut(Language),
    MustChoosePassword(Language),
    Failed(ApiError),
}

impl std::fmt::Display for NotSignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotSignedIn::SignedOut(_) => f.write_str("not signed in to a console"),
            NotSignedIn::MustChoosePassword(_) => {
                f.write_str("the account's password is still an administrator's")
            }
            NotSignedIn::Failed(error) => error.fmt(f),
        }
    }
}

impl ResponseError for NotSignedIn {
    fn status_code(&self) -> StatusCode {
        match self {
            NotSignedIn::SignedOut(_) | NotSignedIn::MustChoosePassword(_) => StatusCode::SEE_OTHER,
            NotSignedIn::Failed(error) => error.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            NotSignedIn::SignedOut(language) => see_other(&format!("/staff?lang={}", language.as_str())),
            NotSignedIn::MustChoosePassword(language) => {
                see_other(&format!("/staff/password?lang={}", language.as_str()))
            }
            NotSignedIn::Failed(error) => error.error_response(),
        }
    }
}

impl FromRequest for Console {
    type Error = NotSignedIn;
    type Future = Pin<Box<dyn Future<Output = Result<Console, NotSignedIn>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = state(request);
        let token = session_token(request).map(str::to_owned);
        let choosing_password = WHILE_CHOOSING_PASSWORD.contains(&request.path());
        let language = LanguageQuery::from_request(request, payload)
            .into_inner()
            .map(|query| language(&query))
            .unwrap_or(Language::De);
        Box::pin(async move {
            let token = token.ok_or(NotSignedIn::SignedOut(language))?;
            match staff::session_holder(&state, &token).await {
                Ok(session) if session.must_change_password && !choosing_password => {
                    Err(NotSignedIn::MustChoosePassword(language))
                }
                Ok(session) => Ok(Console {
                    csrf: form_token(&state, &token),
                    member: session.staff,
                    language,
                    expires_at: session.expires_at,
                    token,
                    must_change_password: session.must_change_password,
                }),
                Err(error) if error.code() == ErrorCode::StaffSessionInvalid => {
                    Err(NotSignedIn::SignedOut(language))
                }
                Err(error) => Err(NotSignedIn::Failed(error)),
            }
        })
    }
}
