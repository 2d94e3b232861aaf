//! The staff consoles' sign-in: the session token kept in an HttpOnly, SameSite=Strict cookie
//! scoped to `/staff`, and a CSRF token on every form. Signed in, a form's token is derived
//! from the session (an HMAC under the hash key), so only pages the session was shown can post
//! for it; before sign-in, the sign-in form's token must match a random cookie set with the
//! form (double submit), so no other site can sign a browser in to an account of its choosing.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::extract::cookie;
use crate::AppState;

/// The cookie that keeps the staff session's token.
pub const SESSION: &str = "drawbridge_staff";
/// The cookie the sign-in form's CSRF token is checked against.
pub const SIGN_IN_CSRF: &str = "drawbridge_staff_csrf";
/// Where both cookies are sent.
const PATH: &str = "/staff";

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
