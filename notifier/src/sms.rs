//! SMS through any provider that speaks Twilio's Messages API: a form-encoded
//! `POST {base}/2010-04-01/Accounts/{sid}/Messages.json` with HTTP basic auth, answered with
//! JSON. Point `base_url` at another host and nothing else changes.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use drawbridge_platform::config::{ExposeSecret, SecretString, SmsSettings};

use crate::{Lookup, SendError};

pub struct TwilioClient {
    http: reqwest::Client,
    messages_url: String,
    account_sid: String,
    auth_token: SecretString,
    from: String,
    messaging_service_sid: String,
    pacer: Pacer,
    /// The least time a request is given: a send whose turn at the rate would leave it less
    /// before its attempt's deadline waits for the next attempt instead.
    least_time: Duration,
}

/// Twilio's reply to a created message (only what we use).
#[derive(Deserialize)]
struct Created {
    sid: String,
}

/// One page of Twilio's message list (only what we use).
#[derive(Deserialize)]
struct MessagePage {
    messages: Vec<ListedMessage>,
}

#[derive(Deserialize)]
struct ListedMessage {
    sid: String,
    body: Option<String>,
}

/// Twilio's error body: `{"code": 21211, "message": "...", "more_info": "...", "status": 400}`.
#[derive(Deserialize)]
struct ProviderError {
    code: Option<i64>,
    message: Option<String>,
}

impl TwilioClient {
    pub fn new(settings: &SmsSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_seconds))
            .build()?;
        Ok(TwilioClient {
            http,
            messages_url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                settings.base_url.trim_end_matches('/'),
                settings.account_sid
            ),
            account_sid: settings.account_sid.clone(),
            auth_token: settings.auth_token.clone(),
            from: settings.from.clone(),
            messaging_service_sid: settings.messaging_service_sid.clone(),
            pacer: Pacer::new(settings.messages_per_second),
            least_time: Duration::from_secs(settings.timeout_seconds) / 2,
        })
    }

    /// Sends one SMS and returns the provider's message id. A failure says whether the
    /// provider may have taken the message: a 429 or a refused connection means it did not; a
    /// timeout or a 5xx (the request was written, the answer lost or unhelpful) means it may.
    ///
    /// The request ends by `deadline`, however long it waited for its turn at the send rate:
    /// the attempt's intent says it is settled at the provider from then on (plus the grace),
    /// and a lookup after that must not miss a request still on its way. A turn that would
    /// leave it less than half the timeout is not taken: not sent, try again.
    pub async fn send(&self, to: &str, body: &str, deadline: Instant) -> Result<String, SendError> {
        let Some(time_left) = self.pacer.wait_turn_before(deadline, self.least_time).await else {
            return Err(SendError::NotSent(
                "no turn at the send rate (messages_per_second) left time for the request in this attempt"
                    .into(),
            ));
        };
        let mut form = vec![("To", to), ("Body", body)];
        if self.messaging_service_sid.is_empty() {
            form.push(("From", &self.from));
        } else {
            form.push(("MessagingServiceSid", &self.messaging_service_sid));
        }
        let response = self
            .http
            .post(&self.messages_url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .timeout(time_left)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                let detail = format!("SMS provider unreachable: {e}");
                if e.is_connect() {
                    SendError::NotSent(detail)
                } else {
                    SendError::InDoubt(detail)
                }
            })?;
        let status = response.status();
        if status.is_success() {
            let created: Created = response
                .json()
                .await
                .map_err(|e| SendError::InDoubt(format!("SMS provider sent an unreadable reply: {e}")))?;
            return Ok(created.sid);
        }
        let detail = match response.json::<ProviderError>().await {
            Ok(ProviderError { code, message }) => format!(
                "SMS provider answered {status}: {} (code {})",
                message.unwrap_or_default(),
                code.map(|c| c.to_string()).unwrap_or_else(|| "none".into())
            ),
            Err(_) => format!("SMS provider answered {status}"),
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            Err(SendError::NotSent(detail))
        } else if status.is_server_error() {
            Err(SendError::InDoubt(detail))
        } else {
            Err(SendError::Permanent(detail))
        }
    }
}

impl TwilioClient {
    /// Whether the provider already holds this exact message for `to` (newest first, one
    /// page): asked before sending again a message whose earlier attempt may have reached it.
    /// The list is optional among Twilio-compatible APIs: one that answers 404, 405 or 501 (or
    /// 403: credentials that may send but not read) cannot be asked. `Err` is a
    /// failure worth asking again later.
    pub async fn find_sent(&self, to: &str, body: &str) -> Result<Lookup, String> {
        let response = self
            .http
            .get(&self.messages_url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .query(&[("To", to), ("PageSize", "50")])
            .send()
            .await
            .map_err(|e| format!("SMS provider unreachable for a message lookup: {e}"))?;
        let status = response.status();
        if NO_MESSAGE_LIST.contains(&status) {
            return Ok(Lookup::Unavailable(format!(
                "the SMS provider answered {status} to a message lookup"
            )));
        }
        if !status.is_success() {
            return Err(format!("SMS provider answered {status} to a message lookup"));
        }
        let page: MessagePage = response
            .json()
            .await
            .map_err(|e| format!("SMS provider sent an unreadable list: {e}"))?;
        Ok(page
            .messages
            .into_iter()
            .find(|m| m.body.as_deref() == Some(body))
            .map_or(Lookup::NotFound, |m| Lookup::Found(m.sid)))
    }
}

/// Answers to the message list that mean the provider has none to offer.
const NO_MESSAGE_LIST: [StatusCode; 4] = [
    StatusCode::FORBIDDEN,
    StatusCode::NOT_FOUND,
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::NOT_IMPLEMENTED,
];

/// Spaces sends evenly at the configured rate across all tasks of this process, so a burst
/// does not get the account throttled.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(per_second: u32) -> Self {
        Pacer {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next turn if it leaves at least `least` before `deadline`, and returns
    /// the time left then; otherwise takes no turn and returns `None` at once.
    async fn wait_turn_before(&self, deadline: Instant, least: Duration) -> Option<Duration> {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            if slot + least > deadline {
                return None;
            }
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
        Some(deadline.saturating_duration_since(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_not_sent() {
        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let client = TwilioClient::new(&SmsSettings {
            base_url: format!("http://127.0.0.1:{port}"),
            account_sid: "AC1".into(),
            auth_token: "token".into(),
            ..SmsSettings::default()
        })
        .expect("a client");
        let deadline = Instant::now() + Duration::from_secs(10);
        match client.send("+4915100000001", "hello", deadline).await {
            Err(SendError::NotSent(detail)) => assert!(detail.contains("unreachable"), "{detail}"),
            other => panic!("expected NotSent, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_sends_at_the_rate() {
        let pacer = Pacer::new(10);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        for _ in 0..21 {
            pacer.wait_turn_before(deadline, Duration::ZERO).await.unwrap();
        }
        // 21 sends at 10/s: the first is immediate, the last 2 s later.
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_takes_no_turn_that_leaves_too_little_time() {
        let pacer = Pacer::new(1);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(2);
        let least = Duration::from_secs(1);
        assert_eq!(
            pacer.wait_turn_before(deadline, least).await,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            pacer.wait_turn_before(deadline, least).await,
            Some(Duration::from_secs(1))
        );
        // The third turn would come 2 s in, with nothing left: refused at once, and not taken.
        assert_eq!(pacer.wait_turn_before(deadline, least).await, None);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        let later = deadline + Duration::from_secs(2);
        assert_eq!(
            pacer.wait_turn_before(later, least).await,
            Some(Duration::from_secs(2))
        );
    }
}
