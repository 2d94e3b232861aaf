//! A registrant's own view, opened with their booking code (`Authorization: BookingCode ...`):
//! status, the reasons for their eligibility, the current offer, the booking, and their
//! pseudonym and lottery key in every recent draw, so they can check each draw themselves
//! against its published manifest.
//!
//! Booking codes carry 75 random bits, but guessing is still rate-limited in Redis (shared by
//! all gateways): per client address and per code prefix, counting only failures. A wrong
//! code gets the same answer whether or not such a registration exists.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use drawbridge_domain::draw::Pseudonym;
use drawbridge_domain::{evaluate, BookingCode, Language, Person};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::bookings::{self, Request};
use crate::error::ApiError;
use crate::limits::FailureLimit;
use crate::registrations::{check_distance, check_email, check_vaccines};
use crate::staff::Acting;
use crate::AppState;

/// Failed booking codes allowed per client address, and per code prefix, within the window.
const GUESSES_PER_ADDRESS: i64 = 20;
const GUESSES_PER_PREFIX: i64 = 10;
const GUESS_WINDOW_SECONDS: i64 = 15 * 60;

/// How many recent draws of the region `/v1/me` reports on.
const DRAWS_SHOWN: i64 = 10;

/// Columns of [`Registrant`]: the registrant's own, with their pending offer and whether they
/// hold a booking, so an answer needs no second lookup.
const REGISTRANT: &str = "id, region_id, status, language, email, birth_year, priority_group, postcode,
                          accepted_vaccines, max_distance_km, verified_at,
                          (SELECT o.id FROM offers o WHERE o.registrant_id = registrants.id AND o.state = 'pending')
                              AS pending_offer,
                          EXISTS (SELECT 1 FROM bookings b WHERE b.registrant_id = registrants.id
                                  AND b.state <> 'cancelled') AS booked";

#[derive(sqlx::FromRow)]
pub struct Registrant {
    pub id: Uuid,
    pub region_id: String,
    status: String,
    language: String,
    email: Option<String>,
    birth_year: i32,
    priority_group: i16,
    postcode: String,
    accepted_vaccines: Vec<String>,
    max_distance_km: i32,
    verified_at: Option<DateTime<Utc>>,
    pub pending_offer: Option<Uuid>,
    pub booked: bool,
}

/// The registrant's part in one draw.
#[derive(sqlx::FromRow)]
struct DrawEntry {
    id: Uuid,
    completed_at: Option<DateTime<Utc>>,
    pool: Option<i64>,
    /// `None` when they were not in that draw's pool.
    lottery_key: Option<f64>,
    offered: bool,
}

pub async fn show(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let me = authenticate(&state, &request).await?;
    Ok(HttpResponse::Ok().json(view(&state, &me).await?))
}

/// Everything a registrant (or an agent on the phone with them) needs to know: status,
/// reasons, offer, booking, and their part in recent draws.
pub async fn view(state: &AppState, me: &Registrant) -> Result<serde_json::Value, ApiError> {
    let published = state.policies.current(&me.region_id).await?;
    let person = Person {
        birth_year: me.birth_year,
        priority_group: u8::try_from(me.priority_group).unwrap_or(0),
        postcode: me.postcode.clone(),
        accepted_vaccines: me.accepted_vaccines.clone(),
    };
    let evaluation = evaluate(&published.policy, &person, Utc::now().date_naive());
    let offer: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT json_build_object('id', o.id, 'expires_at', o.expires_at, 'vaccine', p.vaccine,
                'centre', c.name, 'address', c.address, 'first_at', p.first_slot_at, 'second_at', p.second_slot_at)
         FROM offers o JOIN slot_pairs p ON p.id = o.slot_pair_id JOIN centres c ON c.id = p.centre_id
         WHERE o.registrant_id = $1 AND o.state = 'pending'",
    )
    .bind(me.id)
    .fetch_optional(&state.pool)
    .await?;
    let booking: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT json_build_object('id', b.id, 'state', b.state, 'vaccine', p.vaccine, 'centre', c.name,
                'address', c.address, 'first_at', p.first_slot_at, 'second_at', p.second_slot_at)
         FROM bookings b JOIN slot_pairs p ON p.id = b.slot_pair_id JOIN centres c ON c.id = p.centre_id
         WHERE b.registrant_id = $1 AND b.state <> 'cancelled'",
    )
    .bind(me.id)
    .fetch_optional(&state.pool)
    .await?;
    let pseudonym = Pseudonym::of(&state.hash_key, me.id.as_bytes());
    let draws: Vec<DrawEntry> = sqlx::query_as(
        "SELECT d.id, d.completed_at, (d.manifest->>'pool')::bigint AS pool, c.lottery_key,
                EXISTS (SELECT 1 FROM draw_matches m WHERE m.draw_id = d.id AND m.pseudonym = $2) AS offered
         FROM draws d LEFT JOIN draw_candidates c ON c.draw_id = d.id AND c.pseudonym = $2
         WHERE d.region_id = $1 AND d.state = 'completed'
         ORDER BY d.started_at DESC LIMIT $3",
    )
    .bind(&me.region_id)
    .bind(pseudonym.as_bytes().as_slice())
    .bind(DRAWS_SHOWN)
    .fetch_all(&state.pool)
    .await?;
    let draws: Vec<serde_json::Value> = draws
        .into_iter()
        .map(
            |DrawEntry {
                 id,
                 completed_at,
                 pool,
                 lottery_key,
                 offered,
             }| {
                json!({
                    "draw": id,
                    "completed_at": completed_at,
                    "pool": pool,
                    "in_pool": lottery_key.is_some(),
                    "lottery_key": lottery_key,
                    "offered": offered,
                    "manifest": format!("/v1/draws/{id}/manifest"),
                })
            },
        )
        .collect();
    let next = match (&offer, &booking) {
        (_, Some(_)) => "You have a booking. Please come to both appointments with your QR code.",
        (Some(_), None) => "You have an offer: accept or decline it before it expires.",
        (None, None) if evaluation.eligible => {
            "You are in the pool: every draw gives you a new chance, and we text you when you are offered an appointment."
        }
        (None, None) => "You cannot be offered an appointment yet; the reasons below say why and what would change it.",
    };
    Ok(json!({
        "registration_id": me.id,
        "region": me.region_id,
        "status": me.status,
        "language": me.language,
        "verified_at": me.verified_at,
        "choices": {
            "birth_year": me.birth_year,
            "priority_group": me.priority_group,
            "postcode": me.postcode,
            "accepted_vaccines": me.accepted_vaccines,
            "max_distance_km": me.max_distance_km,
            "email": me.email,
        },
        "eligibility": evaluation,
        "offer": offer,
        "booking": booking,
        "pseudonym": pseudonym.to_string(),
        "draws": draws,
        "next": next,
    }))
}

/// The registrant whose booking code the request carries, within the guessing limits.
async fn authenticate(state: &AppState, request: &HttpRequest) -> Result<Registrant, ApiError> {
    let header = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("BookingCode "))
        .ok_or_else(|| ApiError::Unauthorized {
            code: "booking_code_required",
            message: "Send your booking code as the header `Authorization: BookingCode XXXX-XXXX-XXXX-XXXX`."
                .into(),
        })?;
    let address = request
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    let prefix: String = header
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(4)
        .collect::<String>()
        .to_ascii_uppercase();
    let limits = FailureLimit::new(
        state,
        &[
            (format!("guesses:address:{address}"), GUESSES_PER_ADDRESS),
            (format!("guesses:prefix:{prefix}"), GUESSES_PER_PREFIX),
        ],
        GUESS_WINDOW_SECONDS,
        "Too many wrong booking codes from here or for this code. Please wait and check the code in your SMS.",
    );
    limits.check().await?;
    let found = match BookingCode::parse(header) {
        Ok(code) => by_booking_code(state, &code).await?,
        Err(_) => None,
    };
    match found {
        Some(registrant) => Ok(registrant),
        None => {
            limits.count_failure().await?;
            Err(ApiError::Unauthorized {
                code: "wrong_booking_code",
                message: "This booking code does not open a registration. Check it against the SMS we sent \
                          you; the last character is a check character that catches most typos."
                    .into(),
            })
        }
    }
}

/// An active registrant by id (for call-centre agents, who look people up by booking code).
pub async fn load(state: &AppState, id: Uuid) -> Result<Registrant, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {REGISTRANT} FROM registrants WHERE id = $1 AND status = 'active'"
    ))
    .bind(id)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::NotFound("There is no active registration with this id.".into()))
}

/// The active registrant a booking code opens. No guessing limits here: citizens come through
/// `authenticate`, staff lookups are audited.
pub async fn by_booking_code(state: &AppState, code: &BookingCode) -> Result<Option<Registrant>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {REGISTRANT} FROM registrants WHERE booking_code_hash = $1 AND status = 'active'"
    ))
    .bind(code.keyed_hash(&state.hash_key).as_slice())
    .fetch_optional(&state.pool)
    .await?)
}

/// `POST /v1/me/offer/accept`: books both appointments of the current offer.
pub async fn accept(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    answer(&state, &request, Request::Accept).await
}

/// `POST /v1/me/offer/decline`.
pub async fn decline(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    answer(&state, &request, Request::Decline).await
}

/// `POST /v1/me/booking/cancel`.
pub async fn cancel(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    answer(&state, &request, Request::Cancel).await
}

/// `DELETE /v1/me`: withdraw and erase personal data.
pub async fn withdraw(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    answer(&state, &request, Request::Withdraw).await
}

async fn answer(state: &AppState, request: &HttpRequest, what: Request) -> Result<HttpResponse, ApiError> {
    let me = authenticate(state, request).await?;
    bookings::act(state, &me, &Acting::Registrant, what).await
}

/// What `PATCH /v1/me` may change; absent fields stay as they are, `email: null` removes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    #[serde(default)]
    accepted_vaccines: Option<Vec<String>>,
    #[serde(default)]
    max_distance_km: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
    #[serde(default)]
    language: Option<Language>,
}

/// Tells `"email": null` (remove it) from no `email` at all (keep it).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// `PATCH /v1/me`: change choices; they count from the next draw on.
pub async fn change(
    state: web::Data<AppState>,
    request: HttpRequest,
    changes: web::Json<Changes>,
) -> Result<HttpResponse, ApiError> {
    let me = authenticate(&state, &request).await?;
    let published = state.policies.current(&me.region_id).await?;
    let changes = changes.into_inner();
    if let Some(vaccines) = &changes.accepted_vaccines {
        check_vaccines(&published.policy, vaccines)?;
    }
    let distance = changes.max_distance_km.map(check_distance).transpose()?;
    let email = changes
        .email
        .map(|email| email.as_deref().map(check_email).transpose())
        .transpose()?;
    sqlx::query(
        "UPDATE registrants SET accepted_vaccines = coalesce($2, accepted_vaccines),
                max_distance_km = coalesce($3, max_distance_km),
                email = CASE WHEN $4 THEN $5 ELSE email END,
                language = coalesce($6, language)
         WHERE id = $1 AND status = 'active'",
    )
    .bind(me.id)
    .bind(&changes.accepted_vaccines)
    .bind(distance)
    .bind(email.is_some())
    .bind(email.flatten())
    .bind(changes.language.map(Language::as_str))
    .execute(&state.pool)
    .await?;
    let me = load(&state, me.id).await?;
    Ok(HttpResponse::Ok().json(view(&state, &me).await?))
}
