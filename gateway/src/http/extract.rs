//! What handlers read from a request besides its body: the staff member behind a session
//! token, the registrant behind a booking code, the client's address.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use drawbridge_domain::StaffMember;

use crate::error::{ApiError, ErrorCode};
use crate::store::registrants::Registrant;
use crate::use_cases::{my_status, staff};
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

fn state(request: &HttpRequest) -> web::Data<AppState> {
    request
        .app_data::<web::Data<AppState>>()
        .expect("the application state is registered")
        .clone()
}

/// A logged-in staff member, from `Authorization: Bearer <session token>`.
pub struct Staff(pub StaffMember);

impl FromRequest for Staff {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Staff, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state(request);
        let token = authorization(request, "Bearer").map(str::to_owned);
        Box::pin(async move {
            let token = token.ok_or_else(|| ApiError::new(ErrorCode::StaffLoginRequired))?;
            staff::session_holder(&state, &token).await.map(Staff)
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
