//! Every way a request can fail: one table of error codes, each with its HTTP status and the
//! message a person reads, mapped to HTTP in this one place. The body is always
//! `{"error": {"code", "message", "field"?, "attempts_left"?, "request_id"?}}`: `code` is stable
//! for programs (and for pages, which word it in the reader's language), `message` is a sentence
//! a person can act on. An internal error keeps its cause and where it arose for the log, and
//! answers only a request id that leads the operator to that log line.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;

use actix_web::dev::ServiceResponse;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use uuid::Uuid;

/// The table: `Name => STATUS, "wire_code", "default message";`. A message given where the
/// error arises (naming the region, the field, the wait) replaces the default.
macro_rules! error_codes {
    ($($name:ident => $status:ident, $code:literal, $message:literal;)*) => {
        /// Every error code the API answers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($name,)*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The code as it appears in answers and in `openapi.json`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $code,)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$name => StatusCode::$status,)*
                }
            }

            /// The code answered as `code`, if the table has it.
            pub fn from_wire(code: &str) -> Option<ErrorCode> {
                match code {
                    $($code => Some(ErrorCode::$name),)*
                    _ => None,
                }
            }

            /// The message of the table, used when the error has none of its own.
            pub fn message(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $message,)*
                }
            }
        }
    };
}

error_codes! {
    // Requests that cannot be read, and fields that cannot be accepted.
    MalformedRequest => BAD_REQUEST, "malformed_request",
        "The request could not be read. The API is described at /openapi.json.";
    InvalidField => UNPROCESSABLE_ENTITY, "invalid_field",
        "A field's value cannot be accepted.";
    MethodNotAllowed => METHOD_NOT_ALLOWED, "method_not_allowed",
        "This path does not take this method. The API is described at /openapi.json.";
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "payload_too_large",
        "The request body is larger than this route takes. The API is described at /openapi.json.";
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
        "This route does not take a body of this Content-Type (JSON routes take application/json, forms application/x-www-form-urlencoded).";
    // Things that are not there.
    NotFound => NOT_FOUND, "not_found",
        "There is nothing at this address. The API is described at /openapi.json.";
    // Registration and the SMS code.
    PhoneAlreadyRegistered => CONFLICT, "phone_already_registered",
        "This person (birth year and initials) already has a registration on this phone number. Use its booking code to see its status or change it; to start over, withdraw that registration first.";
    PhoneFull => CONFLICT, "phone_full",
        "This phone number holds as many people's registrations as one phone may. Please register this person with another phone number.";
    AlreadyVerified => CONFLICT, "already_verified",
        "This registration is already verified. Use your booking code to see its status.";
    WrongCode => UNPROCESSABLE_ENTITY, "wrong_code",
        "That code is not right.";
    CodeNoLongerValid => UNPROCESSABLE_ENTITY, "code_no_longer_valid",
        "This code can no longer be used. Please request a new one (POST /v1/registrations/{id}/resend).";
    // The booking code.
    BookingCodeRequired => UNAUTHORIZED, "booking_code_required",
        "Send your booking code as the header `Authorization: BookingCode XXXX-XXXX-XXXX-XXXX`.";
    WrongBookingCode => UNAUTHORIZED, "wrong_booking_code",
        "This booking code does not open a registration. Check it against the SMS we sent you; the last character is a check character that catches most typos.";
    // Offers and bookings.
    InvalidOfferLink => UNAUTHORIZED, "invalid_offer_link",
        "This link does not open an offer. Use the link from your SMS exactly, or your booking code.";
    OfferExpired => CONFLICT, "offer_expired",
        "This offer has expired and its appointment went back to the draw. You stay in the pool: the next draw gives you a new chance.";
    OfferAlreadyAccepted => CONFLICT, "offer_already_accepted",
        "This offer was accepted already; your booking is shown under GET /v1/me.";
    OfferAlreadyDeclined => CONFLICT, "offer_already_declined",
        "This offer was declined already and its appointment went to the next draw.";
    OfferWithdrawn => CONFLICT, "offer_withdrawn",
        "This offer was withdrawn (the centre cancelled the appointment). You stay in the pool, ahead of others.";
    AlreadyBooked => CONFLICT, "already_booked",
        "You already have a booking, shown under GET /v1/me. Cancel it first if you want another appointment instead.";
    AlreadyCheckedIn => CONFLICT, "already_checked_in",
        "The first dose was given already, so the booking can no longer be cancelled here. Please talk to the centre about your second appointment.";
    CourseInProgress => CONFLICT, "course_in_progress",
        "Your first dose was given and your second appointment is booked. Please settle the second appointment with the centre before withdrawing.";
    // Check-in at the door.
    WrongCentre => CONFLICT, "wrong_centre",
        "This pass is for another centre.";
    BookingCancelled => CONFLICT, "booking_cancelled",
        "This booking was cancelled.";
    AlreadyUsed => CONFLICT, "already_used",
        "This pass was used for every dose it books already.";
    TooEarly => CONFLICT, "too_early",
        "This appointment is not today.";
    // Requests with an Idempotency-Key (registrations, capacity).
    IdempotencyKeyReused => CONFLICT, "idempotency_key_reused",
        "This Idempotency-Key was used before for a different request. Use a new key for each new request.";
    // Centres' capacity.
    CapacityAlreadyCancelled => CONFLICT, "capacity_already_cancelled",
        "This capacity was cancelled already.";
    CentreClosed => CONFLICT, "centre_closed",
        "This centre is closed, so it publishes no capacity. A region admin can open it again.";
    // Published draws.
    DrawNotCompleted => CONFLICT, "draw_not_completed",
        "This draw has not completed (it is running, or failed and was rolled back), so it has no manifest.";
    // Staff.
    StaffLoginRequired => UNAUTHORIZED, "staff_login_required",
        "Log in with POST /v1/staff/sessions and send the token as `Authorization: Bearer <token>`.";
    StaffSessionInvalid => UNAUTHORIZED, "staff_session_invalid",
        "This session is not valid (expired, ended or unknown). Please log in again.";
    WrongCredentials => UNAUTHORIZED, "wrong_credentials",
        "Username or password is wrong.";
    NotAllowed => FORBIDDEN, "not_allowed",
        "Not allowed.";
    PasswordChangeRequired => FORBIDDEN, "password_change_required",
        "An administrator was shown this account's password: choose your own in the console (/staff) before anything else.";
    FormExpired => FORBIDDEN, "form_expired",
        "This form has expired or was not sent from this site. Please open the page again and send it from there.";
    // Operations. (`/metrics` answers this from the platform's endpoints, in the same shape.)
    MetricsTokenRequired => UNAUTHORIZED, "metrics_token_required",
        "Send the metrics token (telemetry.metrics_token) as `Authorization: Bearer <token>`.";
    // The rooms admin API.
    AdminDisabled => FORBIDDEN, "admin_disabled",
        "The rooms admin API is switched off: set rooms.admin_token to use it.";
    AdminCredentialsMissing => UNAUTHORIZED, "admin_credentials_missing",
        "Send the admin token as `Authorization: Bearer <token>`.";
    AdminCredentialsWrong => UNAUTHORIZED, "admin_credentials_wrong",
        "This admin token is not valid.";
    // Waiting rooms.
    RoomClosed => FORBIDDEN, "room_closed",
        "This waiting room is closed. Please check the announcement for when it opens again.";
    ProofOfWorkRequired => FORBIDDEN, "proof_of_work_required",
        "This waiting room asks for a proof of work: get a challenge from POST /v1/rooms/{room}/challenge and send it with its nonce.";
    ProofOfWorkInvalid => FORBIDDEN, "proof_of_work_invalid",
        "The proof of work does not solve a current challenge of this room for this browser. Please get a new challenge.";
    ProofOfWorkReused => FORBIDDEN, "proof_of_work_reused",
        "This proof of work was used already. Please get a new challenge.";
    SessionOver => UNAUTHORIZED, "session_over",
        "Your admission has ended. Please join the waiting room again.";
    TokenMissing => UNAUTHORIZED, "token_missing",
        "This page is guarded by a waiting room: please join it first.";
    TokenMalformed => UNAUTHORIZED, "token_malformed",
        "The waiting-room token could not be read. Please join the waiting room again.";
    TokenUnknownKey => UNAUTHORIZED, "token_unknown_key",
        "The waiting-room token was signed with a key we no longer use. Please join again.";
    TokenBadSignature => UNAUTHORIZED, "token_bad_signature",
        "The waiting-room token is not genuine. Please join the waiting room again.";
    TokenWrongPurpose => UNAUTHORIZED, "token_wrong_purpose",
        "This token is not meant for this use.";
    TokenExpired => UNAUTHORIZED, "token_expired",
        "The waiting-room token has expired. Please join the waiting room again.";
    TokenNotYetValid => UNAUTHORIZED, "token_not_yet_valid",
        "The waiting-room token is not valid yet. Please check your device's clock.";
    TokenBadClaims => UNAUTHORIZED, "token_bad_claims",
        "The waiting-room token's contents are not valid. Please join the waiting room again.";
    TokenForeignRoom => UNAUTHORIZED, "token_foreign_room",
        "This token belongs to another waiting room.";
    TokenWrongClient => UNAUTHORIZED, "token_wrong_client",
        "This token belongs to another browser. Please join the waiting room from this one.";
    TicketDropped => UNAUTHORIZED, "ticket_dropped",
        "Your place in the waiting room lapsed because your browser stopped asking. Please join again.";
    AdmissionSpent => UNAUTHORIZED, "admission_spent",
        "This admission has registered a phone number already. To register another one, please join the waiting room again.";
    AdmissionUnavailable => SERVICE_UNAVAILABLE, "admission_unavailable",
        "Your admission cannot be checked right now. Please try again in a minute; it stays valid until it ends.";
    // Limits and our own failures.
    TooManyRequests => TOO_MANY_REQUESTS, "too_many_requests",
        "Too many requests. Please wait a moment and try again.";
    Unavailable => SERVICE_UNAVAILABLE, "unavailable",
        "This part of the service is unavailable for a moment. Please try again in a few seconds.";
    Internal => INTERNAL_SERVER_ERROR, "internal",
        "Something went wrong on our side. Your data is safe; please try again in a minute.";
}

/// The cause of an internal error, kept for the log.
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request's failure: a code of the table, and what the person (or the log) needs beyond it.
pub struct ApiError {
    code: ErrorCode,
    /// Replaces the table's message when the error knows more (the region, the wait, ...).
    message: Option<Cow<'static, str>>,
    field: Option<Cow<'static, str>>,
    attempts_left: Option<i16>,
    retry_after_seconds: Option<u64>,
    cause: Option<Cause>,
    location: &'static Location<'static>,
}

impl ApiError {
    /// An error with the table's message.
    #[track_caller]
    pub fn new(code: ErrorCode) -> Self {
        ApiError {
            code,
            message: None,
            field: None,
            attempts_left: None,
            retry_after_seconds: None,
            cause: None,
            location: Location::caller(),
        }
    }

    /// The same error with a message that says more than the table's.
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// A field was read but its value is not acceptable.
    #[track_caller]
    pub fn invalid(field: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(ErrorCode::InvalidField).with_message(message)
        }
    }

    /// The request could not be read at all (malformed JSON, wrong types, unknown fields).
    #[track_caller]
    pub fn malformed(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::MalformedRequest).with_message(message)
    }

    /// Something that is not there, said precisely.
    #[track_caller]
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::NotFound).with_message(message)
    }

    /// A wrong SMS code; the person may try again while attempts are left.
    #[track_caller]
    pub fn wrong_code(attempts_left: i16) -> Self {
        ApiError {
            attempts_left: Some(attempts_left),
            ..ApiError::new(ErrorCode::WrongCode).with_message(format!(
                "That code is not right. You have {attempts_left} more tries."
            ))
        }
    }

    /// A limit reached: 429 with `Retry-After`.
    #[track_caller]
    pub fn too_many(message: impl Into<Cow<'static, str>>, retry_after_seconds: u64) -> Self {
        ApiError {
            retry_after_seconds: Some(retry_after_seconds),
            ..ApiError::new(ErrorCode::TooManyRequests).with_message(message)
        }
    }

    /// A dependency that cannot be reached for a moment: 503 with `Retry-After`.
    #[track_caller]
    pub fn unavailable(retry_after_seconds: u64) -> Self {
        ApiError::new(ErrorCode::Unavailable).with_retry_after(retry_after_seconds)
    }

    /// The same error with `Retry-After`: when trying again makes sense.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// Our own failure; `cause` goes to the log, never to the person.
    #[track_caller]
    pub fn internal(cause: impl Into<Cause>) -> Self {
        ApiError {
            cause: Some(cause.into()),
            ..ApiError::new(ErrorCode::Internal)
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The field at fault, for pages that show the error beside it.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The tries left after a wrong SMS code.
    pub fn attempts_left(&self) -> Option<i16> {
        self.attempts_left
    }

    /// What the person is told. An internal error is logged here with a fresh request id, which
    /// the answer carries instead of any detail.
    pub fn public_message(&self) -> String {
        match self.code {
            ErrorCode::Internal => {
                let request_id = self.log();
                format!("{} (Request id {request_id}.)", self.code.message())
            }
            _ => self.message().to_owned(),
        }
    }

    fn message(&self) -> &str {
        self.message.as_deref().unwrap_or(self.code.message())
    }

    /// Logs an internal error with its cause chain and location; returns the request id.
    fn log(&self) -> Uuid {
        let request_id = Uuid::new_v4();
        let cause = self
            .cause
            .as_deref()
            .map(|cause| chain(cause))
            .unwrap_or_default();
        tracing::error!(%request_id, location = %self.location, %cause, "request failed");
        request_id
    }
}

/// An error and its sources, outermost first.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.code.as_str())
            .field("message", &self.message())
            .field("field", &self.field)
            .field("cause", &self.cause)
            .field("location", &self.location)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "{}: {}", self.code.as_str(), chain(cause.as_ref())),
            None => write!(f, "{}: {}", self.code.as_str(), self.message()),
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

impl From<sqlx::Error> for ApiError {
    #[track_caller]
    fn from(error: sqlx::Error) -> Self {
        match error {
            // Every connection of the pool is busy: the request may be sent again in a moment.
            sqlx::Error::PoolTimedOut => ApiError::unavailable(1),
            error => ApiError::internal(error),
        }
    }
}

impl From<drawbridge_domain::FieldError> for ApiError {
    #[track_caller]
    fn from(error: drawbridge_domain::FieldError) -> Self {
        ApiError::invalid(error.field, error.message)
    }
}

impl From<drawbridge_platform::policies::PublishError> for ApiError {
    #[track_caller]
    fn from(error: drawbridge_platform::policies::PublishError) -> Self {
        ApiError::internal(error)
    }
}

/// A library's error message (lower case, no full stop) as a sentence.
fn sentence(error: &dyn fmt::Display) -> String {
    let text = error.to_string();
    let mut letters = text.chars();
    letters.next().map_or_else(String::new, |first| {
        format!("{}{}.", first.to_uppercase(), letters.as_str())
    })
}

impl From<drawbridge_platform::staff::StaffError> for ApiError {
    #[track_caller]
    fn from(error: drawbridge_platform::staff::StaffError) -> Self {
        use drawbridge_platform::staff::StaffError as E;
        let message = sentence(&error);
        match error {
            E::Username(_) | E::Taken(_) => ApiError::invalid("username", message),
            E::ShortPassword => ApiError::invalid("password", message),
            E::Role(_) => ApiError::invalid("role", message),
            E::Centre | E::UnknownCentre { .. } => ApiError::invalid("centre", message),
            E::UnknownRegion(_) | E::Unknown(_) => ApiError::not_found(message),
            E::Lines(_) => ApiError::invalid("file", message),
            E::Hash(_) => ApiError::internal(error),
            E::Database(error) => error.into(),
        }
    }
}

impl From<drawbridge_platform::centres::SetupError> for ApiError {
    #[track_caller]
    fn from(error: drawbridge_platform::centres::SetupError) -> Self {
        use drawbridge_platform::centres::SetupError as E;
        match error {
            E::UnknownCentre(_) | E::NoPolicy(_) => ApiError::not_found(sentence(&error)),
            E::Lines(lines) => ApiError::invalid("file", lines.to_string()),
            E::Policy(error) => error.into(),
            E::Database(error) => error.into(),
        }
    }
}

impl ApiError {
    /// A refusal of the domain that names its own code: the table's code with the domain's
    /// words. A code missing from the table is our bug, answered as internal (a test lists every
    /// refusal the domain has).
    #[track_caller]
    fn refusal(code: &'static str, message: String) -> Self {
        match ErrorCode::from_wire(code) {
            Some(code) => ApiError::new(code).with_message(message),
            None => ApiError::internal(format!("error code {code:?} is not in the table")),
        }
    }
}

impl From<drawbridge_domain::RoomTokenError> for ApiError {
    #[track_caller]
    fn from(error: drawbridge_domain::RoomTokenError) -> Self {
        ApiError::refusal(error.code(), error.to_string())
    }
}

impl From<drawbridge_domain::allocation::booking::CheckinRefusal> for ApiError {
    #[track_caller]
    fn from(refusal: drawbridge_domain::allocation::booking::CheckinRefusal) -> Self {
        ApiError::refusal(refusal.code(), format!("{refusal}."))
    }
}

impl From<drawbridge_platform::capacity::CapacityStoreError> for ApiError {
    #[track_caller]
    fn from(error: drawbridge_platform::capacity::CapacityStoreError) -> Self {
        use drawbridge_platform::capacity::CapacityStoreError;
        match error {
            CapacityStoreError::SkippedLocalTime(_) => ApiError::invalid("from", error.to_string()),
            other => ApiError::internal(other),
        }
    }
}

/// `Retry-After` of a request that found Redis away: outages seen so far lasted seconds.
const REDIS_RETRY_SECONDS: u64 = 5;

impl From<crate::rooms::store::StoreError> for ApiError {
    #[track_caller]
    fn from(error: crate::rooms::store::StoreError) -> Self {
        if error.is_unavailable() {
            tracing::warn!(%error, "waiting rooms: Redis cannot be reached");
            return ApiError::unavailable(REDIS_RETRY_SECONDS);
        }
        ApiError::internal(error)
    }
}

/// The JSON body of every error.
#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_left: Option<i16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<Uuid>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let request_id = (self.code == ErrorCode::Internal).then(|| self.log());
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after_seconds {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        if self.code.status() == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(Body {
            error: Detail {
                code: self.code.as_str(),
                message: self.message(),
                field: self.field.as_deref(),
                attempts_left: self.attempts_left,
                request_id,
            },
        })
    }
}

/// Answers the errors raised before or around our handlers (by actix's body extractors and
/// routing: a body too large, a content type a route does not take), which come as plain text
/// or empty, in the documented JSON shape too. Pages' errors
/// (HTML) and our own (JSON) pass unchanged, as does a status the table has no code for.
pub fn in_documented_shape<B>(response: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let shaped = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json") || value.starts_with("text/html"));
    let code = match response.status() {
        _ if shaped => None,
        StatusCode::BAD_REQUEST => Some(ErrorCode::MalformedRequest),
        StatusCode::NOT_FOUND => Some(ErrorCode::NotFound),
        StatusCode::PAYLOAD_TOO_LARGE => Some(ErrorCode::PayloadTooLarge),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Some(ErrorCode::UnsupportedMediaType),
        _ => None,
    };
    let Some(code) = code else {
        return Ok(ErrorHandlerResponse::Response(response.map_into_left_body()));
    };
    let (request, _) = response.into_parts();
    let answer = ApiError::new(code).error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, answer).map_into_right_body(),
    ))
}

/// Turns actix's extractor failures (bad JSON, bad query, bad path) into our error shape.
pub fn malformed(error: impl fmt::Display) -> actix_web::Error {
    ApiError::malformed(format!("The request could not be read: {error}")).into()
}

/// A JSON body refused by actix's extractor: a body of another (or no) content type and one
/// over the limit answer as they do on form routes (415, 413), anything else as unreadable.
pub fn json_refused(error: actix_web::error::JsonPayloadError) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    match error {
        JsonPayloadError::ContentType => ApiError::new(ErrorCode::UnsupportedMediaType).into(),
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge).into()
        }
        other => malformed(other),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use std::error::Error;

    use super::*;

    /// The codes `openapi.json` documents for the error body.
    fn documented_codes() -> BTreeSet<String> {
        let document: serde_json::Value =
            serde_json::from_str(crate::http::OPENAPI).expect("openapi.json is JSON");
        document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .expect("the error code is documented as an enum")
            .iter()
            .map(|code| code.as_str().expect("codes are strings").to_owned())
            .collect()
    }

    #[test]
    fn every_code_of_the_table_is_documented_and_every_documented_code_is_in_the_table() {
        let table: BTreeSet<String> = ErrorCode::ALL.iter().map(|c| c.as_str().to_owned()).collect();
        let documented = documented_codes();
        let undocumented: Vec<_> = table.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&table).collect();
        assert!(undocumented.is_empty(), "not in openapi.json: {undocumented:?}");
        assert!(
            unknown.is_empty(),
            "in openapi.json but not in the table: {unknown:?}"
        );
    }

    /// Every operation of `openapi.json` with its method and path.
    fn operations() -> Vec<(String, serde_json::Value)> {
        let document: serde_json::Value =
            serde_json::from_str(crate::http::OPENAPI).expect("openapi.json is JSON");
        let mut operations = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                operations.push((format!("{method} {path}"), operation.clone()));
            }
        }
        operations
    }

    #[test]
    fn every_operation_documents_the_errors_raised_before_it_runs() {
        for (name, operation) in operations() {
            let responses = &operation["responses"];
            let takes_text = operation.get("requestBody").is_some()
                || operation["parameters"].as_array().is_some_and(|p| !p.is_empty());
            if takes_text {
                assert!(responses.get("422").is_some(), "{name}: NUL in text answers 422");
            }
            if operation.get("requestBody").is_some() {
                assert!(
                    responses.get("413").is_some(),
                    "{name}: a body too large answers 413"
                );
            }
            for (status, response) in responses.as_object().expect("responses") {
                let json = &response["content"]["application/json"]["schema"];
                // `/readyz` answers its 503 with the readiness report, which names what is down.
                if status.starts_with(['4', '5']) && !json.is_null() && name != "get /readyz" {
                    assert_eq!(
                        json["$ref"], "#/components/schemas/Error",
                        "{name} {status}: errors have the documented shape"
                    );
                }
                let shared = response["$ref"].as_str().unwrap_or_default();
                if let Some(shared) = shared.strip_prefix("#/components/responses/") {
                    assert!(status.starts_with('4'), "{name} {status}");
                    let code = match shared {
                        "MalformedRequest" => ErrorCode::MalformedRequest,
                        "PayloadTooLarge" => ErrorCode::PayloadTooLarge,
                        "UnsupportedMediaType" => ErrorCode::UnsupportedMediaType,
                        "TextWithNul" => ErrorCode::InvalidField,
                        other => panic!("{name}: unknown shared response {other}"),
                    };
                    assert_eq!(code.status().as_str(), status, "{name}: {shared}");
                }
            }
        }
    }

    #[test]
    fn every_successful_json_answer_is_documented_with_its_fields() {
        for (name, operation) in operations() {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let schema = &response["content"]["application/json"]["schema"];
                if status.starts_with('2') && !schema.is_null() {
                    assert!(
                        schema.get("$ref").is_some() || schema.get("properties").is_some(),
                        "{name} {status}: a bare object says nothing"
                    );
                }
            }
        }
    }

    #[test]
    fn each_code_is_in_the_table_once_with_a_message_that_ends_a_sentence() {
        let mut seen = BTreeSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert!(code.message().ends_with('.'), "{}", code.as_str());
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn every_refusal_of_the_domain_has_its_code_in_the_table() {
        use drawbridge_domain::allocation::booking::CheckinRefusal;
        use drawbridge_domain::{RoomTokenError as R, TokenError as T};
        let room = [
            R::Missing,
            R::Token(T::Malformed),
            R::Token(T::UnknownKey),
            R::Token(T::BadSignature),
            R::Token(T::WrongPurpose),
            R::Token(T::Expired),
            R::Token(T::NotYetValid),
            R::Token(T::BadClaims),
            R::ForeignRoom,
            R::WrongClient,
            R::Dropped,
        ];
        let door = [
            CheckinRefusal::WrongCentre("elsewhere".into()),
            CheckinRefusal::Cancelled,
            CheckinRefusal::AlreadyUsed,
            CheckinRefusal::TooEarly(chrono::Utc::now()),
        ];
        let errors = room
            .into_iter()
            .map(ApiError::from)
            .chain(door.into_iter().map(ApiError::from));
        for error in errors {
            assert_ne!(error.code(), ErrorCode::Internal, "{error}");
        }
    }

    #[test]
    fn an_internal_error_answers_a_request_id_and_keeps_its_cause_for_the_log() {
        let error = ApiError::internal(std::io::Error::other("disk on fire"));
        assert!(error.to_string().contains("disk on fire"));
        assert!(error.source().is_some());
        let message = error.public_message();
        assert!(!message.contains("disk"), "{message}");
        assert!(message.contains("Request id"), "{message}");
        assert_eq!(error.error_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn a_database_pool_with_no_free_connection_answers_503_with_retry_after() {
        let error: ApiError = sqlx::Error::PoolTimedOut.into();
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get("retry-after").unwrap(), "1");
    }

    #[test]
    fn the_location_is_where_the_error_arose() {
        let error: ApiError = sqlx::Error::RowNotFound.into();
        assert!(error.location.file().ends_with("error.rs"));
        assert_eq!(error.location.line(), line!() - 2);
    }
}
