//! A local server speaking Twilio's Messages API exactly as documented: form-encoded
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP basic auth with the account
//! sid and auth token, JSON replies (201 with the message resource, or an error object).
//! It records what it accepted and can be told to fail the next requests, to take a message
//! and still answer with an error (an answer lost on its way back), or to answer the optional
//! message list with an error, as Twilio-compatible providers without one do.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use serde_json::json;
use tokio::sync::oneshot;

pub const ACCOUNT_SID: &str = "ACtest00000000000000000000000000";
pub const AUTH_TOKEN: &str = "test-auth-token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub sid: String,
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    /// When the provider took it.
    pub accepted_at: Instant,
    /// Taken, but answered with a failure (see [`FakeTwilio::accept_then_fail_next`]): the
    /// sender cannot know it went out.
    pub answer_lost: bool,
}

#[derive(Default)]
struct State {
    accepted: Vec<Sms>,
    /// Statuses to answer the next requests with, before accepting again.
    failures: VecDeque<u16>,
    /// Statuses to answer the next requests with after accepting their messages.
    lost_answers: VecDeque<u16>,
    /// What the message list answers instead of the list (404, 405, 501).
    list_status: Option<u16>,
    lookups: usize,
    /// Requests to leave hanging (then drop unrecorded), like a provider that stalls.
    hangs: usize,
    requests: usize,
    /// Who waits for the next message to a number (see [`FakeTwilio::next_message_to`]).
    subscribers: HashMap<String, oneshot::Sender<Sms>>,
}

#[derive(Clone)]
pub struct FakeTwilio {
    pub base_url: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

impl FakeTwilio {
    pub fn start() -> FakeTwilio {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake Twilio");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            let messages = "/2010-04-01/Accounts/{sid}/Messages.json";
            App::new()
                .app_data(shared.clone())
                .route(messages, web::post().to(create_message))
                .route(messages, web::get().to(list_messages))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeTwilio {
            base_url,
            state,
            handle,
        }
    }

    /// Answer the next requests with these HTTP statuses (429, 500, 400, ...), in order.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state.lock().unwrap().failures.extend(statuses);
    }

    /// Accept the next messages but answer with these statuses (500, 502, ...), in order: the
    /// provider took them and its answer was lost.
    pub fn accept_then_fail_next(&self, statuses: &[u16]) {
        self.state.lock().unwrap().lost_answers.extend(statuses);
    }

    /// Answer every message list request with this status from now on (405: the list is
    /// optional among Twilio-compatible APIs).
    pub fn list_answers(&self, status: u16) {
        self.state.lock().unwrap().list_status = Some(status);
    }

    /// Message list requests so far: how often the notifier asked whether a message went out.
    pub fn lookups(&self) -> usize {
        self.state.lock().unwrap().lookups
    }

    /// Leave the next `count` sends hanging for 3 s, then fail them without recording.
    pub fn hang_next(&self, count: usize) {
        self.state.lock().unwrap().hangs += count;
    }

    /// The next message accepted for `to` from now on: ask before causing it. A phone, for
    /// tests and benchmarks that read a code the way a person would.
    pub fn next_message_to(&self, to: &str) -> impl std::future::Future<Output = Sms> {
        let (sender, receiver) = oneshot::channel();
        self.state
            .lock()
            .unwrap()
            .subscribers
            .insert(to.to_owned(), sender);
        async move { receiver.await.expect("the fake Twilio answers until it stops") }
    }

    pub fn accepted(&self) -> Vec<Sms> {
        self.state.lock().unwrap().accepted.clone()
    }

    pub fn accepted_count(&self) -> usize {
        self.state.lock().unwrap().accepted.len()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn error(status: u16, code: u32, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

/// `GET .../Messages.json?To=...`: the account's messages, newest first, as Twilio lists them.
async fn list_messages(
    request: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    if !authorised(&request) {
        return error(401, 20003, "Authenticate");
    }
    let mut state = state.lock().unwrap();
    state.lookups += 1;
    if let Some(status) = state.list_status {
        return match status {
            405 => error(405, 20004, "Method not allowed"),
            404 => error(404, 20404, "The requested resource was not found"),
            other => error(other, 20500, "Not Implemented"),
        };
    }
    let messages: Vec<_> = state
        .accepted
        .iter()
        .rev()
        .filter(|sms| query.get("To").is_none_or(|to| *to == sms.to))
        .map(|sms| json!({ "sid": sms.sid, "to": sms.to, "from": sms.from, "body": sms.body, "status": "sent" }))
        .collect();
    HttpResponse::Ok().json(json!({ "messages": messages, "page": 0, "next_page_uri": null }))
}

fn authorised(request: &HttpRequest) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
}

async fn create_message(
    request: HttpRequest,
    sid: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let hang = {
        let mut state = state.lock().unwrap();
        state.requests += 1;
        let hang = state.hangs > 0;
        state.hangs = state.hangs.saturating_sub(1);
        hang
    };
    if hang {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        return error(503, 20500, "Service Unavailable");
    }
    let mut state = state.lock().unwrap();
    if !authorised(&request) || sid.as_str() != ACCOUNT_SID {
        return error(401, 20003, "Authenticate");
    }
    if let Some(status) = state.failures.pop_front() {
        return match status {
            429 => error(429, 20429, "Too Many Requests"),
            400 => error(400, 21211, "The 'To' number is not a valid phone number."),
            other => error(other, 20500, "Internal Server Error"),
        };
    }
    let (Some(to), Some(body)) = (form.get("To"), form.get("Body")) else {
        return error(400, 21604, "A 'To' phone number and a 'Body' are required.");
    };
    let from = form.get("From").cloned();
    let messaging_service_sid = form.get("MessagingServiceSid").cloned();
    if from.is_none() && messaging_service_sid.is_none() {
        return error(
            400,
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
        );
    }
    let sid = format!("SM{:032x}", state.accepted.len() as u128 + 1);
    let lost_answer = state.lost_answers.pop_front();
    let sms = Sms {
        sid: sid.clone(),
        to: to.clone(),
        from: from.clone(),
        messaging_service_sid: messaging_service_sid.clone(),
        body: body.clone(),
        accepted_at: Instant::now(),
        answer_lost: lost_answer.is_some(),
    };
    if let Some(subscriber) = state.subscribers.remove(to) {
        let _ = subscriber.send(sms.clone());
    }
    state.accepted.push(sms);
    if let Some(status) = lost_answer {
        return error(status, 20500, "Internal Server Error");
    }
    HttpResponse::Created().json(json!({
        "sid": sid,
        "account_sid": ACCOUNT_SID,
        "to": to,
        "from": from,
        "messaging_service_sid": messaging_service_sid,
        "body": body,
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"),
    }))
}
