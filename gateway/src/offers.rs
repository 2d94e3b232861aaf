//! Answering an offer from the link in its message, without typing the booking code: the
//! link's signed token works for that one offer and only until it expires.
//!
//! `GET /offers/{id}?token=` shows the offer with an accept and a decline button; it never
//! answers by itself, because mail scanners and link previews open links too. The buttons post
//! plain forms (`/offers/{id}/accept`, `/offers/{id}/decline`), so it works without JavaScript.
//! Programs use `POST /v1/offers/{id}/accept` and `/decline` with `{"token": ...}`.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use drawbridge_domain::language::when;
use drawbridge_domain::{Language, OfferLink, TokenError};
use serde::Deserialize;
use uuid::Uuid;

use drawbridge_platform::states::OfferState;

use crate::error::{ApiError, ErrorCode};
use crate::http::answers::{booked_answer, declined_answer};
use crate::pages::{escape, page_keeping, t};
use crate::store::offers;
use crate::use_cases::answer_offer;
use crate::use_cases::Acting;
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

/// The offer a link token opens: it must be genuine, unexpired and for this offer.
fn check(state: &AppState, offer: Uuid, token: &str) -> Result<(), ApiError> {
    let link = OfferLink::verify(&state.keyring, token, Utc::now()).map_err(|error| match error {
        TokenError::Expired => ApiError::new(ErrorCode::OfferExpired),
        other => ApiError::new(ErrorCode::InvalidOfferLink).with_message(format!(
            "This link does not open an offer: {other}. Use the link from your SMS exactly, or your booking code."
        )),
    })?;
    if link.offer != offer {
        return Err(ApiError::new(ErrorCode::InvalidOfferLink)
            .with_message("This link belongs to another offer. Use the link from your SMS exactly."));
    }
    Ok(())
}

/// `POST /v1/offers/{id}/accept` with the link's token.
pub async fn accept(
    state: web::Data<AppState>,
    offer: web::Path<Uuid>,
    body: web::Json<LinkToken>,
) -> Result<HttpResponse, ApiError> {
    check(&state, *offer, &body.token)?;
    let booked = answer_offer::accept(&state, *offer, None, &Acting::Registrant).await?;
    Ok(booked_answer(booked))
}

/// `POST /v1/offers/{id}/decline` with the link's token.
pub async fn decline(
    state: web::Data<AppState>,
    offer: web::Path<Uuid>,
    body: web::Json<LinkToken>,
) -> Result<HttpResponse, ApiError> {
    check(&state, *offer, &body.token)?;
    answer_offer::decline(&state, *offer, None, &Acting::Registrant).await?;
    Ok(declined_answer(*offer))
}

/// `GET /offers/{id}?token=`: the offer, with buttons to answer it.
pub async fn page(
    state: web::Data<AppState>,
    offer: web::Path<Uuid>,
    query: web::Query<LinkToken>,
) -> Result<HttpResponse, ApiError> {
    let offer = offer.into_inner();
    let shown = offers::offer(state.store.pool(), offer).await?;
    let fallback = shown
        .as_ref()
        .and_then(|s| Language::parse(&s.contact.language))
        .unwrap_or_default();
    let language = query.language(fallback);
    let keep = format!("token={}&", urlencode(&query.token));
    let title = t(language, "Ihr Terminangebot", "Your appointment offer");
    let refusal = match (check(&state, offer, &query.token), &shown) {
        (Err(error), _) => Some(error.public_message()),
        (Ok(()), None) => Some(
            t(
                language,
                "Dieses Angebot gibt es nicht.",
                "There is no such offer.",
            )
            .to_owned(),
        ),
        (Ok(()), Some(shown)) if shown.state != OfferState::Pending => Some(format!(
            "{} ({})",
            t(
                language,
                "Dieses Angebot ist bereits beantwortet oder abgelaufen",
                "This offer was answered already or has expired"
            ),
            shown.state
        )),
        _ => None,
    };
    if let Some(refusal) = refusal {
        let body = format!(
            "<p role=\"alert\">{}</p><p>{}</p>",
            escape(&refusal),
            t(
                language,
                "Mit Ihrem Buchungscode sehen Sie jederzeit Ihren Stand.",
                "Your booking code always shows where you stand."
            )
        );
        return Ok(page_keeping(language, title, &body, &keep));
    }
    let shown = shown.expect("checked above");
    let place = &shown.place;
    let zone = &place.timezone;
    let policy = state.policies.current(&place.region_id).await?;
    let vaccine = policy
        .policy
        .vaccine(&place.vaccine)
        .map_or_else(|| place.vaccine.clone(), |v| v.name.clone());
    let second = place.second_at.map_or_else(String::new, |at| {
        format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            t(language, "2. Termin", "2nd appointment"),
            when(at, zone, language)
        )
    });
    let token = escape(&query.token);
    let lang = language.as_str();
    let body = format!(
        r#"<table>
<tr><th>{vaccine_label}</th><td>{vaccine}</td></tr>
<tr><th>{first_label}</th><td>{first}</td></tr>{second}
<tr><th>{where_label}</th><td>{centre}<br>{address}</td></tr>
<tr><th>{until_label}</th><td><strong>{expires}</strong></td></tr>
</table>
<p>{explain}</p>
<form method="post" action="/offers/{offer}/accept?lang={lang}"><input type="hidden" name="token" value="{token}"><button type="submit">{accept}</button></form>
<form method="post" action="/offers/{offer}/decline?lang={lang}"><input type="hidden" name="token" value="{token}"><button type="submit">{decline}</button></form>"#,
        vaccine_label = t(language, "Impfstoff", "Vaccine"),
        vaccine = escape(&vaccine),
        first_label = t(language, "1. Termin", "1st appointment"),
        first = when(place.first_at, zone, language),
        where_label = t(language, "Ort", "Where"),
        centre = escape(&place.centre),
        address = escape(&place.address),
        until_label = t(language, "Antworten bis", "Answer by"),
        expires = when(shown.expires_at, zone, language),
        explain = t(
            language,
            "Mit „Annehmen“ buchen Sie beide Termine zugleich. Wenn Sie ablehnen, bleiben Sie in der Auslosung.",
            "Accepting books both appointments at once. If you decline, you stay in the draw."
        ),
        accept = t(language, "Annehmen", "Accept"),
        decline = t(language, "Ablehnen", "Decline"),
    );
    Ok(page_keeping(language, title, &body, &keep))
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
    let outcome = match check(state, offer, &form.token) {
        Err(error) => Err(error),
        Ok(()) if accept => answer_offer::accept(state, offer, None, &Acting::Registrant)
            .await
            .map(|booked| {
                format!(
                    "<p role=\"status\">{} {} ({}).</p>",
                    t(
                        language,
                        "Gebucht! Die Bestätigung mit Ihrem QR-Code kommt per SMS und E-Mail. Buchung",
                        "Booked! The confirmation with your QR code comes by SMS and email. Booking"
                    ),
                    escape(&booked.reference),
                    when(booked.place.first_at, &booked.place.timezone, language)
                )
            }),
        Ok(()) => answer_offer::decline(state, offer, None, &Acting::Registrant)
            .await
            .map(|()| {
                format!(
                    "<p role=\"status\">{}</p>",
                    t(
                        language,
                        "Abgelehnt. Sie bleiben in der Auslosung und bekommen bei einer der nächsten Ziehungen eine neue Chance.",
                        "Declined. You stay in the draw and get a new chance in the next draws."
                    )
                )
            }),
    };
    result_page(language, outcome)
}

fn result_page(language: Language, outcome: Result<String, ApiError>) -> HttpResponse {
    let title = t(language, "Ihr Terminangebot", "Your appointment offer");
    match outcome {
        Ok(body) => crate::pages::page(language, title, &body),
        Err(error) => {
            let status = actix_web::ResponseError::status_code(&error);
            let mut response = crate::pages::page(
                language,
                title,
                &format!("<p role=\"alert\">{}</p>", escape(&error.public_message())),
            );
            *response.status_mut() = status;
            response
        }
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
