//! Call-centre agents act for callers who cannot or will not use the web: they register them
//! (the agent attests the phone, so no SMS code), read out the booking code, look callers up
//! by booking code, and answer offers or cancel for them. Agents see only their own region,
//! and every action is written to the audit log in the same transaction.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use drawbridge_domain::{evaluate, BookingCode};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::bookings::{self, Request};
use crate::error::ApiError;
use crate::me::{self, Registrant};
use crate::registrations::{self, RegistrationRequest};
use crate::staff::{forbidden, record, Acting, Staff};
use crate::verification::send_booking_code;
use crate::AppState;

/// `POST /v1/callcentre/registrations`: registers a caller in the agent's region.
pub async fn register(
    state: web::Data<AppState>,
    staff: Staff,
    request: web::Json<RegistrationRequest>,
) -> Result<HttpResponse, ApiError> {
    let agent = &staff.0;
    agent.may_act_for_callers(&agent.region).map_err(forbidden)?;
    let published = state.policies.current(&agent.region).await?;
    let registration = request.into_inner().validate(&state, &published.policy)?;
    let id = Uuid::new_v4();
    let code = BookingCode::generate(&mut rand::rngs::OsRng);
    let mut tx = state.pool.begin().await?;
    registrations::insert_active(
        &mut tx,
        id,
        &published.region,
        &registration,
        code.keyed_hash(&state.hash_key).as_slice(),
    )
    .await?;
    send_booking_code(&mut tx, &state, id, &code).await?;
    record(
        &mut tx,
        agent,
        "registration.create",
        None,
        Some(id),
        json!({ "channel": "callcentre" }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(registration_id = %id, agent = %agent.username, "caller registered");
    let eligibility = evaluate(&published.policy, &registration.person, Utc::now().date_naive());
    Ok(HttpResponse::Created().json(json!({
        "registration_id": id,
        "status": "active",
        "booking_code": code.to_string(),
        "eligibility": eligibility,
        "message": "Registered. Please read the booking code out to the caller; it is also on its way by SMS.",
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    booking_code: String,
}

/// `POST /v1/callcentre/lookup`: the caller's registration, by the booking code they read
/// out (in the body, so codes never land in URLs or access logs).
pub async fn lookup(
    state: web::Data<AppState>,
    staff: Staff,
    body: web::Json<Lookup>,
) -> Result<HttpResponse, ApiError> {
    let agent = &staff.0;
    let code = BookingCode::parse(&body.booking_code)
        .map_err(|e| ApiError::invalid("booking_code", e.to_string()))?;
    let registrant = me::by_booking_code(&state, &code).await?.ok_or_else(|| {
        ApiError::NotFound(
            "No active registration has this booking code. Ask the caller to read it again.".into(),
        )
    })?;
    show(&state, agent, registrant, "registrant.lookup").await
}

/// `GET /v1/callcentre/registrants/{id}`.
pub async fn registrant(
    state: web::Data<AppState>,
    staff: Staff,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let registrant = me::load(&state, *id).await?;
    show(&state, &staff.0, registrant, "registrant.view").await
}

async fn show(
    state: &AppState,
    agent: &drawbridge_domain::StaffMember,
    registrant: Registrant,
    action: &str,
) -> Result<HttpResponse, ApiError> {
    agent
        .may_act_for_callers(&registrant.region_id)
        .map_err(forbidden)?;
    // The connection goes back to the pool before the view takes its own.
    record(
        &mut *state.pool.acquire().await?,
        agent,
        action,
        None,
        Some(registrant.id),
        json!({}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(me::view(state, &registrant).await?))
}

/// `POST /v1/callcentre/registrants/{id}/offer/accept`.
pub async fn accept(
    state: web::Data<AppState>,
    staff: Staff,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &staff, *id, Request::Accept).await
}

/// `POST /v1/callcentre/registrants/{id}/offer/decline`.
pub async fn decline(
    state: web::Data<AppState>,
    staff: Staff,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &staff, *id, Request::Decline).await
}

/// `POST /v1/callcentre/registrants/{id}/booking/cancel`.
pub async fn cancel(
    state: web::Data<AppState>,
    staff: Staff,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &staff, *id, Request::Cancel).await
}

/// `POST /v1/callcentre/registrants/{id}/withdraw`: withdraws and erases, at the caller's request.
pub async fn withdraw(
    state: web::Data<AppState>,
    staff: Staff,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &staff, *id, Request::Withdraw).await
}

/// Acts for the registrant `id`, if the agent may act for them.
async fn answer(state: &AppState, staff: &Staff, id: Uuid, what: Request) -> Result<HttpResponse, ApiError> {
    let caller = me::load(state, id).await?;
    staff
        .0
        .may_act_for_callers(&caller.region_id)
        .map_err(forbidden)?;
    bookings::act(state, &caller, &Acting::Staff(&staff.0), what).await
}
