//! The sign-in of `/me`: the booking code kept in an HttpOnly, SameSite=Strict cookie scoped to
//! `/me`, never in a URL. Set by signing in there, or by verifying a registration's phone.

use actix_web::cookie::{Cookie, SameSite};

use crate::AppState;

/// The cookie that keeps the booking code between the pages of `/me`.
pub const COOKIE: &str = "drawbridge_me";
/// How long a sign-in lasts.
pub const SECONDS: i64 = 60 * 60;

/// The cookie that signs in with `booking_code` for `seconds` (0 signs out).
pub fn cookie(state: &AppState, booking_code: &str, seconds: i64) -> Cookie<'static> {
    Cookie::build(COOKIE, booking_code.to_owned())
        .path("/me")
        .http_only(true)
        .secure(state.settings.public_url.starts_with("https:"))
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(seconds))
        .finish()
}
