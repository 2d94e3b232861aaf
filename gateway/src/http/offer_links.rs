//! Answering an offer from the link in its message, without typing the booking code: the
//! link's signed token works for that one offer and only until it expires.
//!
//! `GET /offers/{id}?token=` shows the offer with an accept and a decline button; it never
//! answers by itself, because mail scanners and link previews open links too. The buttons post
//! plain forms (`/offers/{id}/accept`, `/offers/{id}/decline`), so it works without JavaScript.
//! Programs use `POST /v1/offers/{id}/accept` and `/decline` with `{"token": ...}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use drawbridge_domain::language::when;
use drawbridge_domain::Language;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::answers::{booked_answer, declined_answer};
use super::extract::Json;
use crate::error::ApiError;
use crate::use_cases::offer_link::{self, Opened};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkToken {
    token: String,
    #[serde(default)]
    lang: Option<String>,
}

impl LinkToken {
    fn language(&self, fallback: Language) -> Language {
        self.lang.as_deref().and_then(Language::parse).unwrap_or(fallback)
    }
}

/// `POST /v1/offers/{id}/accept` with the link's token.
pub async fn accept(
    state: web::Data<AppState>,
    offer: web::Path<Uuid>,
    body: Json<LinkToken>,
) -> Result<HttpResponse, ApiError> {
    let booked = offer_link::accept(&state, *offer, &body.token).await?;
    Ok(booked_answer(booked))
}

/// `POST /v1/offers/{id}/decline` with the link's token.
pub async fn decline(
    state: web::Data<AppState>,
    offer: web::Path<Uuid>,
    body: Json<LinkToken>,
) -> Result<HttpResponse, ApiError> {
    offer_link::decline(&state, *offer, &body.token).await?;
    Ok(declined_answer(*offer))
}

/// The offer page: the offer with its buttons, or why it cannot be answered here.
#[derive(Serialize, Default)]
struct OfferView {
    /// The query the language switch keeps (`token=...&`), already encoded for a URL.
    keep: String,
    /// Why the link does not open the offer.
    refusal: Option<String>,
    missing: bool,
    /// The state of an offer answered already or expired.
    answered: Option<String>,
    offer: Option<Uuid>,
    token: Option<String>,
    vaccine: Option<String>,
    first: Option<String>,
    second: Option<String>,
    centre: Option<String>,
    address: Option<String>,
    expires: Option<String>,
    /// Minutes left to answer.
    minutes_left: i64,
}

/// `GET /offers/{id}?token=`: the offer, with buttons to answer it.
pub async fn page(
    state: web::Data<AppState>,
    offer: web::Path<Uuid>,
    query: web::Query<LinkToken>,
) -> Result<HttpResponse, ApiError> {
    let offer = offer.into_inner();
    let linked = offer_link::open(&state, offer, &query.token).await?;
    let language = query.language(linked.language.unwrap_or_default());
    let mut view = OfferView {
        keep: format!("token={}&", urlencode(&query.token)),
        ..OfferView::default()
    };
    match linked.opened {
        Opened::Refused(error) => view.refusal = Some(error.public_message()),
        Opened::Missing => view.missing = true,
        Opened::Ended(state) => view.answered = Some(state.as_str().to_owned()),
        Opened::Pending {
            place,
            vaccine,
            expires_at,
        } => {
            let zone = &place.timezone;
            view.offer = Some(offer);
            view.token = Some(query.token.clone());
            view.vaccine = Some(vaccine.get(language).to_owned());
            view.first = Some(when(place.first_at, zone, language));
            view.second = place.second_at.map(|at| when(at, zone, language));
            view.expires = Some(when(expires_at, zone, language));
            view.minutes_left = (expires_at - chrono::Utc::now()).num_minutes().max(0);
            view.centre = Some(place.centre);
            view.address = Some(place.address);
        }
    }
    state.templates.page("offer.html", language, view)
}

#[derive(Deserialize)]
pub struct LangQuery {
    #[serde(default)]
    lang: Option<String>,
}

#[derive(Deserialize)]
pub struct TokenForm {
    token: String,
}

/// `POST /offers/{id}/accept` (form): the page's accept button.
pub async fn accept_form(
    state: web::Data<AppState>,
    offer: web::Path<Uuid>,
    query: web::Query<LangQuery>,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    answer_form(&state, *offer, &query, &form, true).await
}

/// `POST /offers/{id}/decline` (form): the page's decline button.
pub async fn decline_form(
    state: web::Data<AppState>,
    offer: web::Path<Uuid>,
    query: web::Query<LangQuery>,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    answer_form(&state, *offer, &query, &form, false).await
}

/// The answer to an offer's form: booked, declined, or why not.
#[derive(Serialize)]
struct AnsweredView {
    refusal: Option<String>,
    booked: Option<BookedView>,
}

#[derive(Serialize)]
struct BookedView {
    reference: String,
    first: String,
}

async fn answer_form(
    state: &AppState,
    offer: Uuid,
    query: &LangQuery,
    form: &TokenForm,
    accept: bool,
) -> HttpResponse {
    let language = query
        .lang
        .as_deref()
        .and_then(Language::parse)
        .unwrap_or_default();
    let outcome = if accept {
        offer_link::accept(state, offer, &form.token).await.map(|booked| {
            Some(BookedView {
                first: when(booked.place.first_at, &booked.place.timezone, language),
                reference: booked.reference,
            })
        })
    } else {
        offer_link::decline(state, offer, &form.token)
            .await
            .map(|()| None)
    };
    let (status, view) = match outcome {
        Ok(booked) => (
            StatusCode::OK,
            AnsweredView {
                refusal: None,
                booked,
            },
        ),
        Err(error) => (
            actix_web::ResponseError::status_code(&error),
            AnsweredView {
                refusal: Some(error.public_message()),
                booked: None,
            },
        ),
    };
    match state.templates.page("offer_answered.html", language, view) {
        Ok(mut response) => {
            *response.status_mut() = status;
            response
        }
        Err(error) => actix_web::ResponseError::error_response(&error),
    }
}

/// Percent-encodes a token for a query string (tokens are base64url plus dots, so this only
/// guards against hand-edited links).
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
