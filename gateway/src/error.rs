//! Every way a request can fail, mapped to HTTP in this one place. The body is always
//! `{"error": {"code", "message", "field"?}}`: `code` is stable for programs, `message` is a
//! sentence a person can act on.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request could not be read at all (malformed JSON, wrong types, unknown fields).
    #[error("{0}")]
    Malformed(String),
    /// A field was read but its value is not acceptable.
    #[error("{field}: {message}")]
    InvalidField { field: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A wrong SMS code; the person may try again while attempts are left.
    #[error("That code is not right. You have {attempts_left} more tries.")]
    WrongCode { attempts_left: i16 },
    /// A code that can no longer be used (expired or out of tries).
    #[error("{0}")]
    DeadCode(String),
    /// A missing, bad, tampered, expired or foreign token, or missing credentials.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// Credentials that do not allow this, or a room that refuses (closed, proof of work).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_seconds: u64,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field,
            message: message.into(),
        }
    }

    /// What the person is told; internals stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                "Something went wrong on our side. Your data is safe; please try again in a minute."
                    .to_owned()
            }
            ApiError::InvalidField { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Malformed(_) => "malformed_request",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. } => code,
            ApiError::WrongCode { .. } => "wrong_code",
            ApiError::DeadCode(_) => "code_no_longer_valid",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Internal(error.to_string())
    }
}

impl From<drawbridge_platform::policies::PublishError> for ApiError {
    fn from(error: drawbridge_platform::policies::PublishError) -> Self {
        ApiError::Internal(error.to_string())
    }
}

impl From<drawbridge_domain::RoomTokenError> for ApiError {
    fn from(error: drawbridge_domain::RoomTokenError) -> Self {
        ApiError::Unauthorized {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl From<drawbridge_platform::capacity::CapacityStoreError> for ApiError {
    fn from(error: drawbridge_platform::capacity::CapacityStoreError) -> Self {
        use drawbridge_platform::capacity::CapacityStoreError;
        match error {
            CapacityStoreError::SkippedLocalTime(_) => ApiError::invalid("from", error.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::rooms::store::StoreError> for ApiError {
    fn from(error: crate::rooms::store::StoreError) -> Self {
        ApiError::Internal(error.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidField { .. } | ApiError::WrongCode { .. } | ApiError::DeadCode(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = self.public_message();
        let mut error = json!({ "code": self.code(), "message": message });
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::InvalidField { field, .. } => error["field"] = json!(field),
            ApiError::WrongCode { attempts_left } => error["attempts_left"] = json!(attempts_left),
            ApiError::TooManyRequests {
                retry_after_seconds, ..
            } => {
                response.insert_header(("Retry-After", retry_after_seconds.to_string()));
            }
            ApiError::Unauthorized { .. } => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            _ => {}
        }
        response.json(json!({ "error": error }))
    }
}

/// Turns actix's extractor failures (bad JSON, bad query, bad path) into our error shape.
pub fn malformed(error: impl std::fmt::Display) -> actix_web::Error {
    ApiError::Malformed(format!("The request could not be read: {error}")).into()
}
