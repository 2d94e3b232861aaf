//! The visitors' API: join, status, leave, and the proof-of-work challenge.
//!
//! Tokens travel as `Authorization: Bearer <token>` or in cookies; the client secret they are
//! bound to travels only in the HttpOnly cookie [`CLIENT_COOKIE`].

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use drawbridge_domain::waiting_room::pow;
use drawbridge_domain::waiting_room::room::{self, ADMISSION_PURPOSE, CHALLENGE_PURPOSE, TICKET_PURPOSE};
use drawbridge_domain::{ClientSecret, RoomClaims, RoomMode, RoomTokenError, Standing};
use serde::Deserialize;
use serde_json::json;

use super::extract::{
    client_secret, cookie, object_from_slice, presented_token, ADMISSION_COOKIE, CLIENT_COOKIE,
};
use crate::error::{ApiError, ErrorCode};
use crate::rooms::store::{JoinRequest, Joined};
use crate::rooms::{unix_now, RoomView, Rooms};
use crate::AppState;

/// A ticket outlives any realistic queue; idleness, not age, ends abandoned tickets.
const TICKET_SECONDS: i64 = 24 * 3600;
/// Time to solve a proof-of-work challenge.
const CHALLENGE_SECONDS: i64 = 300;

/// A `Set-Cookie` header for one of our cookies. Written directly: the values are base64url
/// and need no encoding, and the cookie crate's builder and formatter were 7 % of a join's
/// own instructions (two cookies per join).
fn set_cookie(rooms: &Rooms, name: &str, value: &str, max_age_seconds: i64) -> (HeaderName, String) {
    let secure = if rooms.secure_cookies { "; Secure" } else { "" };
    let cookie =
        format!("{name}={value}; Path=/; Max-Age={max_age_seconds}; HttpOnly; SameSite=Strict{secure}");
    (header::SET_COOKIE, cookie)
}

/// Claims with a fresh unique id.
fn claims(room: &str, ticket: u64, client: String) -> RoomClaims {
    RoomClaims {
        room: room.to_owned(),
        ticket,
        client,
        id: room::random_id(&mut rand::thread_rng()),
    }
}

/// The client's secret, or a new one with the response that sets its cookie.
fn client(rooms: &Rooms, request: &HttpRequest) -> (ClientSecret, HttpResponseBuilder) {
    let mut response = HttpResponse::Ok();
    let secret = client_secret(request).unwrap_or_else(|| {
        // The thread's CSPRNG (ChaCha, seeded from the system): no system call per join.
        let secret = ClientSecret::generate(&mut rand::thread_rng());
        response.append_header(set_cookie(rooms, CLIENT_COOKIE, secret.as_str(), TICKET_SECONDS));
        secret
    });
    (secret, response)
}

/// The answer to join and status: where the ticket stands, and an admission token once
/// admitted. The JSON (`RoomStanding` in openapi.json) is written directly, with strings
/// escaped only where they need it: it is most of what a status poll writes, and serde's
/// escaping of the token was a tenth of the poll's own CPU time.
fn answer(
    rooms: &Rooms,
    view: &RoomView,
    ticket: &RoomClaims,
    token: &str,
    response: &mut HttpResponseBuilder,
    now: i64,
) -> Result<HttpResponse, ApiError> {
    let config = &view.config;
    let standing = match config.mode {
        RoomMode::Passthrough => Standing::Admitted {
            session_ends_at: now + i64::from(config.session_seconds),
        },
        _ => view.queue.standing(ticket.ticket, config, now),
    };
    // Sized for the usual answer (about 370 bytes), so the body is written without regrowing.
    let mut body = JsonObject::with_capacity(512 + token.len());
    body.string("token", token);
    let poll_after = |eta| room::poll_after_seconds(eta, config.idle_seconds);
    match standing {
        Standing::Prequeue { eta_seconds } => {
            body.string("state", "prequeue");
            body.null("position");
            body.number("eta_seconds", eta_seconds);
            body.number("poll_after_seconds", poll_after(eta_seconds));
            body.string("opens_at", &view.opens_at);
        }
        Standing::Queued {
            position,
            eta_seconds,
        } => {
            body.string("state", "queued");
            body.number("position", position);
            body.number("eta_seconds", eta_seconds);
            body.number("poll_after_seconds", poll_after(eta_seconds));
            body.string("opens_at", &view.opens_at);
        }
        Standing::Admitted { session_ends_at } => {
            let admission = claims(&view.name, ticket.ticket, ticket.client.clone());
            let admission_token = rooms.sign(ADMISSION_PURPOSE, &admission, now, session_ends_at);
            response.append_header(set_cookie(
                rooms,
                ADMISSION_COOKIE,
                &admission_token,
                session_ends_at - now,
            ));
            body.string("state", "admitted");
            body.number("position", 0);
            body.number("eta_seconds", 0);
            body.string("opens_at", &view.opens_at);
            body.string("admission_token", &admission_token);
            body.number("session_ends_at", session_ends_at);
            body.string("target_path", &config.target_path);
        }
        Standing::SessionOver => return Err(ApiError::new(ErrorCode::SessionOver)),
        Standing::Dropped => return Err(RoomTokenError::Dropped.into()),
    }
    Ok(response
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(body.finish()))
}

/// A JSON object written field by field.
struct JsonObject(Vec<u8>);

impl JsonObject {
    fn with_capacity(capacity: usize) -> JsonObject {
        let mut json = Vec::with_capacity(capacity);
        json.push(b'{');
        JsonObject(json)
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        self.0.push(b'"');
        self.0.extend_from_slice(key.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    /// Tokens, states and times need no escaping, so they are copied after one quick look (a
    /// fold without early exit, which the compiler turns into vector instructions).
    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        let plain = value
            .bytes()
            .fold(true, |plain, b| plain & (b >= 0x20) & (b != b'"') & (b != b'\\'));
        if plain {
            self.0.push(b'"');
            self.0.extend_from_slice(value.as_bytes());
            self.0.push(b'"');
        } else {
            serde_json::to_writer(&mut self.0, value).expect("a string is JSON");
        }
    }

    fn number(&mut self, key: &str, value: impl itoa::Integer) {
        self.key(key);
        self.0
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn null(&mut self, key: &str) {
        self.key(key);
        self.0.extend_from_slice(b"null");
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.push(b'}');
        self.0
    }
}

/// The optional body of a join: the solved proof-of-work challenge.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    challenge: Option<String>,
    nonce: Option<String>,
}

#[tracing::instrument(skip_all, fields(room = %room))]
pub async fn join(
    state: web::Data<AppState>,
    room: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let rooms = &state.rooms;
    let view = rooms.room(&room)?;
    let body: JoinBody = if body.iter().all(u8::is_ascii_whitespace) {
        JoinBody::default()
    } else {
        object_from_slice(&body)?
    };
    if view.config.mode == RoomMode::Closed {
        return Err(ApiError::new(ErrorCode::RoomClosed));
    }
    let now = unix_now();
    let ticket_cookie = &view.ticket_cookie;
    // Joining again from the same browser keeps the place instead of taking a new ticket.
    if let Some(token) = cookie(&request, ticket_cookie) {
        if let Ok(held) = rooms.verify(
            client_secret(&request).as_ref(),
            &view,
            TICKET_PURPOSE,
            Some(token),
            now,
        ) {
            let answered = answer(rooms, &view, &held.claims, token, &mut HttpResponse::Ok(), now);
            if answered.is_ok() {
                return answered;
            }
        }
    }
    let (secret, mut response) = client(rooms, &request);
    let ticket = match view.config.mode {
        RoomMode::Passthrough => 0,
        _ => take_ticket(rooms, &view, &request, &secret, &body, now).await?,
    };
    let claims = claims(&view.name, ticket, secret.binding());
    let token = rooms.sign(TICKET_PURPOSE, &claims, now, now + TICKET_SECONDS);
    response.append_header(set_cookie(rooms, ticket_cookie, &token, TICKET_SECONDS));
    tracing::debug!(ticket, "joined");
    answer(rooms, &view, &claims, &token, &mut response, now)
}

/// Checks the proof of work if the room asks for one, then takes a ticket from Redis.
async fn take_ticket(
    rooms: &Rooms,
    view: &RoomView,
    request: &HttpRequest,
    secret: &ClientSecret,
    body: &JoinBody,
    now: i64,
) -> Result<u64, ApiError> {
    let difficulty = view.config.pow_difficulty;
    let challenge_id = if difficulty == 0 {
        None
    } else {
        let (Some(challenge), Some(nonce)) = (&body.challenge, &body.nonce) else {
            return Err(ApiError::new(ErrorCode::ProofOfWorkRequired).with_message(format!(
                    "This waiting room asks for a proof of work of {difficulty} bits: get a challenge from POST /v1/rooms/{}/challenge and send it with its nonce.",
                view.name
            )));
        };
        let verified = room::verify(&rooms.keyring, CHALLENGE_PURPOSE, challenge, now);
        let checked = room::check_claims(verified, &view.name, Some(secret));
        match checked {
            Ok(verified) if pow::is_solved(challenge, nonce, difficulty) => Some(verified.claims.id),
            _ => return Err(ApiError::new(ErrorCode::ProofOfWorkInvalid)),
        }
    };
    let joined = rooms
        .store
        .join(
            &view.name,
            JoinRequest {
                ip: &client_ip(request, rooms.settings.trust_forwarded_for),
                limit_per_minute: rooms.settings.joins_per_ip_per_minute,
                floor: view.queue.issued,
                challenge_id: challenge_id.as_deref(),
                now,
            },
        )
        .await?;
    match joined {
        Joined::Ticket(ticket) => {
            view.joined.inc();
            Ok(ticket)
        }
        Joined::RateLimited { retry_after_seconds } => Err(ApiError::too_many(
            "Too many joins from your network. Please wait a moment and try again.",
            retry_after_seconds,
        )),
        Joined::ChallengeReused => Err(ApiError::new(ErrorCode::ProofOfWorkReused)),
    }
}

/// The client's address: the peer, or the first `X-Forwarded-For` entry behind a trusted proxy.
fn client_ip(request: &HttpRequest, trust_forwarded_for: bool) -> String {
    let forwarded = trust_forwarded_for
        .then(|| request.headers().get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|list| list.split(',').next())
        .map(|ip| ip.trim().to_owned())
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    forwarded
        .or_else(|| request.peer_addr().map(|a| a.ip().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// The surge's request, so it borrows what it needs from the request instead of extracting
/// copies (the state's `Arc`, the room's name as a `String`).
pub async fn status(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .expect("the application state is registered");
    let room = request.match_info().get("room").unwrap_or_default();
    let _span = tracing::info_span!("status", room).entered();
    let rooms = &state.rooms;
    let view = rooms.room(room)?;
    let token = presented_token(&request, &view.ticket_cookie);
    let now = unix_now();
    let verified = rooms.verify(
        client_secret(&request).as_ref(),
        &view,
        TICKET_PURPOSE,
        token,
        now,
    )?;
    rooms.cache.note_poll(&view.name, verified.claims.ticket);
    answer(
        rooms,
        &view,
        &verified.claims,
        token.unwrap_or_default(),
        &mut HttpResponse::Ok(),
        now,
    )
}

#[tracing::instrument(skip_all, fields(room = %room))]
pub async fn leave(
    state: web::Data<AppState>,
    room: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let rooms = &state.rooms;
    let view = rooms.room(&room)?;
    let verified = rooms.verify(
        client_secret(&request).as_ref(),
        &view,
        TICKET_PURPOSE,
        presented_token(&request, &view.ticket_cookie),
        unix_now(),
    )?;
    if view.config.mode != RoomMode::Passthrough {
        rooms
            .store
            .leave(&view.name, verified.claims.ticket, view.config.session_seconds)
            .await?;
    }
    let mut response = HttpResponse::Ok();
    for name in [view.ticket_cookie.as_str(), ADMISSION_COOKIE] {
        response.append_header(set_cookie(rooms, name, "", 0));
    }
    Ok(response.json(json!({ "state": "left" })))
}

pub async fn challenge(
    state: web::Data<AppState>,
    room: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let rooms = &state.rooms;
    let view = rooms.room(&room)?;
    let (secret, mut response) = client(rooms, &request);
    let now = unix_now();
    let claims = claims(&view.name, 0, secret.binding());
    let challenge = rooms.sign(CHALLENGE_PURPOSE, &claims, now, now + CHALLENGE_SECONDS);
    Ok(response.json(json!({
        "challenge": challenge,
        "difficulty": view.config.pow_difficulty,
        "algorithm": "sha256-leading-zero-bits",
        "expires_in_seconds": CHALLENGE_SECONDS,
    })))
}

#[cfg(test)]
mod tests {
    use super::JsonObject;

    #[test]
    fn answers_are_the_json_serde_would_write() {
        let mut ours = JsonObject::with_capacity(0);
        ours.string("token", "k1.abc_-.x");
        ours.null("position");
        ours.number("eta_seconds", 60u64);
        ours.number("session_ends_at", -5i64);
        ours.string("target_path", "/a\"b\\c\u{1}ü");
        let expected = serde_json::json!({
            "token": "k1.abc_-.x", "position": null, "eta_seconds": 60,
            "session_ends_at": -5, "target_path": "/a\"b\\c\u{1}ü",
        });
        let ours: serde_json::Value = serde_json::from_slice(&ours.finish()).unwrap();
        assert_eq!(ours, expected);
        assert_eq!(JsonObject::with_capacity(0).finish(), b"{}");
    }
}
