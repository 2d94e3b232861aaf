//! What handlers read from a request besides its body: the staff member behind a session
//! token, the registrant behind a booking code, the rooms' operator, the client's address, the
//! waiting rooms' tokens and cookies, and the admission a room's guard requires.

use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{ACCEPT_LANGUAGE, AUTHORIZATION, COOKIE};
use actix_web::{web, FromRequest, HttpRequest};
use drawbridge_domain::waiting_room::room::ADMISSION_PURPOSE;
use drawbridge_domain::{ClientSecret, Language, RoomMode, RoomTokenError, StaffMember};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};
use crate::rooms::{self, Admission};
use crate::store::registrants::Registrant;
use crate::use_cases::{my_status, operators, staff};
use crate::AppState;

/// The credential after `scheme ` in the `Authorization` header.
pub fn authorization<'r>(request: &'r HttpRequest, scheme: &str) -> Option<&'r str> {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix(scheme))
        .and_then(|value| value.strip_prefix(' '))
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(request: &HttpRequest) -> Option<&str> {
    authorization(request, "Bearer").map(str::trim)
}

/// The waiting rooms' client secret's cookie.
pub const CLIENT_COOKIE: &str = "drawbridge_client";
/// A room's admission token's cookie, read by [`Admitted`].
pub const ADMISSION_COOKIE: &str = "drawbridge_admission";

/// The value of the cookie `name` as sent. Our cookies hold base64url tokens and secrets,
/// which need no percent-decoding; `HttpRequest::cookie` decodes and stores every cookie of the
/// request, which was the largest item of a status poll's own CPU time after the signature.
pub fn cookie<'r>(request: &'r HttpRequest, name: &str) -> Option<&'r str> {
    request.headers().get_all(COOKIE).find_map(|header| {
        let header = header.as_bytes();
        // Each place the name occurs, if it starts a pair and is followed by '='.
        memchr::memmem::find_iter(header, name.as_bytes()).find_map(|at| {
            let starts_pair = header[..at].trim_ascii_end().last().is_none_or(|&b| b == b';');
            let value = header[at + name.len()..]
                .trim_ascii_start()
                .strip_prefix(b"=")
                .filter(|_| starts_pair)?;
            let value = &value[..memchr::memchr(b';', value).unwrap_or(value.len())];
            std::str::from_utf8(value.trim_ascii()).ok()
        })
    })
}

/// The token a request carries: the bearer token, else the named cookie.
pub fn presented_token<'r>(request: &'r HttpRequest, cookie_name: &str) -> Option<&'r str> {
    bearer(request).or_else(|| cookie(request, cookie_name))
}

/// The waiting rooms' client secret the request's cookie carries.
pub fn client_secret(request: &HttpRequest) -> Option<ClientSecret> {
    ClientSecret::parse(cookie(request, CLIENT_COOKIE)?)
}

/// The client's address, as the connection shows it.
pub fn client_address(request: &HttpRequest) -> String {
    request
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
}

/// The `Idempotency-Key` header, if sent: 1 to 128 characters (e.g. a UUID) naming one request,
/// so that the request sent again is answered as the first time instead of done twice.
pub fn idempotency_key(request: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = request.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| (1..=128).contains(&key.len()))
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "An Idempotency-Key has 1 to 128 visible ASCII characters, e.g. a UUID.",
            )
        })
}

pub fn state(request: &HttpRequest) -> web::Data<AppState> {
    request
        .app_data::<web::Data<AppState>>()
        .expect("the application state is registered")
        .clone()
}

/// A logged-in staff member, from `Authorization: Bearer <session token>`, with a password of
/// their own: one an administrator was shown is refused until its person chooses theirs.
pub struct Staff(pub StaffMember);

impl FromRequest for Staff {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Staff, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = live_session(request);
        Box::pin(async move {
            let session = session.await?;
            if session.must_change_password {
                return Err(ApiError::new(ErrorCode::PasswordChangeRequired));
            }
            Ok(Staff(session.staff))
        })
    }
}

/// Any live staff session, also one whose password is still an administrator's: enough to end it.
pub struct StaffSession(pub StaffMember);

impl FromRequest for StaffSession {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<StaffSession, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = live_session(request);
        Box::pin(async move { Ok(StaffSession(session.await?.staff)) })
    }
}

/// The live session of the request's bearer token.
fn live_session(request: &HttpRequest) -> impl Future<Output = Result<staff::LiveSession, ApiError>> {
    let state = state(request);
    let token = authorization(request, "Bearer").map(str::to_owned);
    async move {
        let token = token.ok_or_else(|| ApiError::new(ErrorCode::StaffLoginRequired))?;
        staff::session_holder(&state, &token).await
    }
}

/// An operator of the rooms admin API: `Authorization: Bearer <rooms.admin_token>`, within the
/// guessing limit of the client's address.
pub struct Operator;

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Operator, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state(request);
        let token = bearer(request).map(str::to_owned);
        let address = client_address(request);
        Box::pin(async move {
            operators::authorize(&state, token.as_deref(), &address)
                .await
                .map(|()| Operator)
        })
    }
}

/// The registrant whose booking code the request carries (`Authorization: BookingCode ...`),
/// within the guessing limits.
pub struct BookingCodeHolder(pub Registrant);

impl FromRequest for BookingCodeHolder {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<BookingCodeHolder, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state(request);
        let code = authorization(request, "BookingCode").map(str::to_owned);
        let address = client_address(request);
        Box::pin(async move {
            let code = code.ok_or_else(|| ApiError::new(ErrorCode::BookingCodeRequired))?;
            my_status::sign_in(&state, &code, &address)
                .await
                .map(BookingCodeHolder)
        })
    }
}

/// Proof that the request may pass: no room guards its region, or it carries an admission
/// token (bearer or cookie) of a room guarding it, bound to this client. Checked in process,
/// without Redis; the admission it carries (none when the region is open) is still to be
/// spent by the registration it admits.
pub struct Admitted(pub Option<Admission>);

impl FromRequest for Admitted {
    type Error = ApiError;
    type Future = Ready<Result<Admitted, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(admit(request))
    }
}

/// The waiting room a visitor of `region` without an admission is sent to: the first that
/// guards it and queues (a passthrough room admits everyone).
pub fn waiting_room_of(state: &AppState, region: &str) -> Option<String> {
    state
        .rooms
        .cache
        .guarding(region)
        .iter()
        .find(|view| view.config.mode != RoomMode::Passthrough)
        .map(|view| view.name.clone())
}

fn admit(request: &HttpRequest) -> Result<Admitted, ApiError> {
    let state = state(request);
    let Some(region) = request.match_info().get("region") else {
        return Ok(Admitted(None));
    };
    let guarding = state.rooms.cache.guarding(region);
    if guarding
        .iter()
        .all(|view| view.config.mode == RoomMode::Passthrough)
    {
        return Ok(Admitted(None));
    }
    // With several rooms on one region (e.g. one per release event), any of them admits.
    let token = presented_token(request, ADMISSION_COOKIE);
    let mut refusal = RoomTokenError::Missing;
    let now = rooms::unix_now();
    let client = client_secret(request);
    for view in &guarding {
        match state
            .rooms
            .verify(client.as_ref(), view, ADMISSION_PURPOSE, token, now)
        {
            // A passthrough room admits everyone who asks: nothing to spend.
            Ok(_) if view.config.mode == RoomMode::Passthrough => return Ok(Admitted(None)),
            Ok(verified) => {
                return Ok(Admitted(Some(Admission {
                    room: view.name.clone(),
                    ticket: verified.claims.ticket,
                    ends_at: verified.expires_at,
                })))
            }
            Err(RoomTokenError::ForeignRoom) => refusal = RoomTokenError::ForeignRoom,
            Err(error) => return Err(error.into()),
        }
    }
    Err(refusal.into())
}

/// A JSON body, read as openapi.json describes it: an object (serde would also take a struct's
/// fields as an array), where a number with a zero fraction is an integer (`3.0` is 3, as JSON
/// Schema counts it, and as clients that write every number as a float send it).
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Json<T>, actix_web::Error>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Json::<Value>::from_request(request, payload);
        Box::pin(async move { Ok(Json(object(body.await?.into_inner())?)) })
    }
}

/// `value` as `T`, if it is an object of `T`'s fields (see [`Json`]).
pub fn object<T: DeserializeOwned>(mut value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::malformed(
            "The request could not be read: the body is not a JSON object.",
        ));
    }
    whole_numbers(&mut value);
    serde_json::from_value(value)
        .map_err(|e| ApiError::malformed(format!("The request could not be read: {e}")))
}

/// A JSON text read as [`object`] does.
pub fn object_from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value = serde_json::from_slice(body)
        .map_err(|e| ApiError::malformed(format!("The request could not be read: {e}")))?;
    object(value)
}

fn whole_numbers(value: &mut Value) {
    match value {
        Value::Number(number) => {
            // Within 2^53 every integer is exact as a float, so nothing is rounded here.
            let whole = number
                .as_f64()
                .filter(|f| number.is_f64() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0);
            if let Some(whole) = whole {
                *number = serde_json::Number::from(whole as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// The cookie that remembers the language a person chose with a page's language switch.
pub const LANGUAGE_COOKIE: &str = "drawbridge_lang";

/// The language of a page: the first `?lang=` of its link; else the one the person chose before
/// (the language cookie); else the first of the browser's `Accept-Language` we speak; else
/// German. Pages are for people following links, so a repeated `lang`, one we do not have or
/// another parameter still shows the page rather than an error.
pub struct LanguageQuery {
    language: Language,
}

impl LanguageQuery {
    pub fn language(&self) -> Language {
        self.language
    }
}

impl FromRequest for LanguageQuery {
    type Error = ApiError;
    type Future = Ready<Result<LanguageQuery, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let language = linked_language(request.query_string())
            .or_else(|| cookie(request, LANGUAGE_COOKIE).and_then(Language::parse))
            .or_else(|| {
                let accepted = request.headers().get(ACCEPT_LANGUAGE)?.to_str().ok()?;
                // Browsers list the languages in the order the person prefers them.
                accepted
                    .split(',')
                    .filter_map(|tag| tag.split([';', '-']).next())
                    .find_map(|code| Language::parse(code.trim().to_ascii_lowercase().as_str()))
            })
            .unwrap_or_default();
        ready(Ok(LanguageQuery { language }))
    }
}

/// The first `lang` of a query string, if it is a language we speak.
pub fn linked_language(query: &str) -> Option<Language> {
    // Most requests carry no `lang`: they are not parsed.
    if !query.contains("lang=") {
        return None;
    }
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query).ok()?;
    let (_, value) = pairs.iter().find(|(key, _)| key == "lang")?;
    Language::parse(value)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::cookie;

    #[test]
    fn finds_a_cookie_by_its_whole_name_in_any_cookie_header() {
        let request = TestRequest::default()
            .insert_header(("cookie", "drawbridge_room_ab=long; drawbridge_room_a=short"))
            .append_header((
                "cookie",
                "other=drawbridge_client=forged; drawbridge_client = secret ;x=y",
            ))
            .to_http_request();
        assert_eq!(cookie(&request, "drawbridge_room_a"), Some("short"));
        assert_eq!(cookie(&request, "drawbridge_room_ab"), Some("long"));
        assert_eq!(cookie(&request, "drawbridge_client"), Some("secret"));
        assert_eq!(cookie(&request, "drawbridge_room"), None);
        assert_eq!(cookie(&TestRequest::default().to_http_request(), "other"), None);
    }
}
