//! Start-up retries: services come up in any order (compose, systemd), so a dependency that is
//! not answering yet is retried with exponential backoff and reported, never a panic.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::StartupError;

const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Runs `attempt` until it succeeds or `budget` has passed, doubling the pause between tries.
/// `target` must not contain credentials: it is logged.
pub async fn with_backoff<T, E, F, Fut>(
    service: &'static str,
    target: &str,
    budget: Duration,
    mut attempt: F,
) -> Result<T, StartupError>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut delay = FIRST_DELAY;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                let waited = started.elapsed();
                if waited + delay > budget {
                    return Err(StartupError::Unreachable {
                        service,
                        target: target.to_owned(),
                        waited_seconds: waited.as_secs(),
                        detail: error.to_string(),
                    });
                }
                tracing::warn!(%service, %target, %error, retry_in_ms = delay.as_millis() as u64,
                    "dependency not ready; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
}

/// Strips user and password from a URL so it can be logged or shown in an error.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_budget_with_the_last_error() {
        let mut tries = 0;
        let result: Result<(), _> = with_backoff("Postgres", "db:5432", Duration::from_secs(3), || {
            tries += 1;
            async { Err::<(), _>("connection refused") }
        })
        .await;
        let message = result.unwrap_err().to_string();
        assert!(
            message.contains("Postgres at db:5432 is not reachable"),
            "{message}"
        );
        assert!(message.contains("connection refused"), "{message}");
        assert!(tries >= 3, "retried only {tries} times");
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_once_the_dependency_answers() {
        let mut tries = 0;
        let value = with_backoff("Redis", "r", Duration::from_secs(30), || {
            tries += 1;
            let ready = tries >= 4;
            async move {
                if ready {
                    Ok(7)
                } else {
                    Err("not yet")
                }
            }
        })
        .await
        .unwrap();
        assert_eq!((value, tries), (7, 4));
    }

    #[test]
    fn redaction_removes_credentials() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
    }
}
