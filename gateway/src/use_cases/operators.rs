//! Operators of the rooms admin API: one shared bearer token, `rooms.admin_token`. Wrong
//! tokens are limited per client address like booking codes and passwords, so the token cannot
//! be guessed, and a guesser shuts out only their own address.

use drawbridge_platform::config::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ErrorCode};
use crate::limits::{Counting, Credential};
use crate::AppState;

/// Wrong admin tokens allowed per client address within the window.
const GUESSES_PER_ADDRESS: i64 = 10;
const GUESS_WINDOW_SECONDS: i64 = 15 * 60;

/// Lets the holder of the admin token in, within the guessing limit of `address`.
pub async fn authorize(state: &AppState, presented: Option<&str>, address: &str) -> Result<(), ApiError> {
    let expected = state.rooms.settings.admin_token.expose_secret();
    if expected.is_empty() {
        return Err(ApiError::new(ErrorCode::AdminDisabled));
    }
    let presented = presented.ok_or_else(|| ApiError::new(ErrorCode::AdminCredentialsMissing))?;
    let limit = state.limits.failures(
        Credential::AdminToken,
        // The one token is the target, counted per address so a guesser shuts out only their
        // own; operators do not send many requests at once.
        &[(
            format!("admin:address:{address}"),
            GUESSES_PER_ADDRESS,
            Counting::Target,
        )],
        GUESS_WINDOW_SECONDS,
        "Too many wrong admin tokens from here. Please wait, or use `drawbridge rooms` on the command line.",
    );
    limit.attempt().await?;
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        limit.succeeded().await;
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::AdminCredentialsWrong))
    }
}
