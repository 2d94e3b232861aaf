//! Call-centre agents act for callers who cannot or will not use the web: they look callers up
//! by the booking code they read out, and see what the caller would see. Agents see only their
//! own region, and every look is written to the audit log. They send a caller a new booking
//! code or their pass again, and read the region's open capacity and queue to answer "when
//! will I get something?". (Registering a caller is in `register`, answering for them in
//! `answer_offer`, `cancel` and `withdraw`.)

use chrono::{DateTime, Utc};
use drawbridge_domain::{BookingCode, BookingReference, CheckinPass, StaffMember};
use drawbridge_platform::outbox::Notification;
use serde::Serialize;
use uuid::Uuid;

use super::answer_offer::{appointment, pass_url, reference};
use super::my_status::{self, MyStatus};
use super::register::{booking_code_message, spend_sms_budget};
use super::{audit, forbidden};
use crate::error::ApiError;
use crate::store::messages::tell;
use crate::store::registrants::{self, Registrant};
use crate::store::{bookings, callers};
use crate::AppState;

/// How an agent finds a caller: the booking code they read out, or the reference of their
/// booking with their birth year (a reference alone is short enough to be guessed).
pub enum Caller<'a> {
    BookingCode(&'a str),
    Reference { reference: &'a str, birth_year: i32 },
}

/// The id of the caller the agent asked for, within the agent's region.
pub async fn find(state: &AppState, agent: &StaffMember, caller: Caller<'_>) -> Result<Uuid, ApiError> {
    agent.may_act_for_callers(&agent.region).map_err(forbidden)?;
    let registrant = match caller {
        Caller::BookingCode(code) => {
            let code =
                BookingCode::parse(code).map_err(|e| ApiError::invalid("booking_code", e.to_string()))?;
            my_status::by_booking_code(state, &code).await?.ok_or_else(|| {
                ApiError::invalid(
                    "booking_code",
                    "No active registration has this booking code. Ask the caller to read it again.",
                )
            })?
        }
        Caller::Reference {
            reference,
            birth_year,
        } => {
            let ids = BookingReference::id_range(reference).ok_or_else(|| {
                ApiError::invalid("reference", "A booking reference looks like B-1A2B-3C4D.")
            })?;
            let found = callers::by_reference(state.store.pool(), ids, birth_year, &agent.region).await?;
            let [id] = found[..] else {
                return Err(ApiError::invalid(
                    "reference",
                    if found.is_empty() {
                        "No live booking in your region has this reference with this birth year. Check both with the caller."
                    } else {
                        "Several bookings have this reference and birth year. Please ask for the booking code."
                    },
                ));
            };
            my_status::load(state, id).await?
        }
    };
    agent
        .may_act_for_callers(&registrant.region_id)
        .map_err(forbidden)?;
    audit(
        &mut *state.store.pool().acquire().await?,
        agent,
        "registrant.lookup",
        None,
        Some(registrant.id),
        serde_json::json!({}),
    )
    .await?;
    Ok(registrant.id)
}

/// The caller whose booking code the agent typed.
pub async fn look_up(
    state: &AppState,
    agent: &StaffMember,
    booking_code: &str,
) -> Result<MyStatus, ApiError> {
    let code =
        BookingCode::parse(booking_code).map_err(|e| ApiError::invalid("booking_code", e.to_string()))?;
    let registrant = my_status::by_booking_code(state, &code).await?.ok_or_else(|| {
        ApiError::not_found("No active registration has this booking code. Ask the caller to read it again.")
    })?;
    show(state, agent, registrant, "registrant.lookup").await
}

/// A caller by their registration id.
pub async fn open(state: &AppState, agent: &StaffMember, id: Uuid) -> Result<MyStatus, ApiError> {
    Ok(view(state, agent, id).await?.status)
}

/// A caller's status, with the time zone their times are told in.
pub struct CallerStatus {
    pub status: MyStatus,
    pub timezone: String,
}

/// A caller by their registration id, for the console, which tells times in their region's zone.
pub async fn view(state: &AppState, agent: &StaffMember, id: Uuid) -> Result<CallerStatus, ApiError> {
    let registrant = my_status::load(state, id).await?;
    let timezone = registrant.timezone.clone();
    let status = show(state, agent, registrant, "registrant.view").await?;
    Ok(CallerStatus { status, timezone })
}

/// The active registrant `id`, if the agent may act for them.
pub async fn caller(state: &AppState, agent: &StaffMember, id: Uuid) -> Result<Registrant, ApiError> {
    let caller = my_status::load(state, id).await?;
    agent.may_act_for_callers(&caller.region_id).map_err(forbidden)?;
    Ok(caller)
}

async fn show(
    state: &AppState,
    agent: &StaffMember,
    registrant: Registrant,
    action: &str,
) -> Result<MyStatus, ApiError> {
    agent
        .may_act_for_callers(&registrant.region_id)
        .map_err(forbidden)?;
    // The connection goes back to the pool before the status takes its own.
    audit(
        &mut *state.store.pool().acquire().await?,
        agent,
        action,
        None,
        Some(registrant.id),
        serde_json::json!({}),
    )
    .await?;
    my_status::status(state, registrant).await
}

/// Sends the caller `id` a new booking code by SMS (and email): the old one stops working, so a
/// code that was lost or overheard opens nothing. Answers the new code, for the agent to read
/// out. Counted against the region's SMS budget.
pub async fn new_booking_code(
    state: &AppState,
    agent: &StaffMember,
    id: Uuid,
) -> Result<BookingCode, ApiError> {
    let caller = caller(state, agent, id).await?;
    spend_sms_budget(state, &caller.region_id).await?;
    let code = BookingCode::generate(&mut rand::rngs::OsRng);
    let mut tx = state.store.begin().await?;
    if !callers::replace_booking_code(&mut tx, id, code.keyed_hash(&state.hash_key).as_slice()).await? {
        return Err(ApiError::not_found(
            "There is no active registration with this id.",
        ));
    }
    // A message of its own (not the registration's), so it is sent however often it is asked for.
    tell(&mut tx, id, Uuid::new_v4(), &booking_code_message(state, &code)).await?;
    audit(
        &mut tx,
        agent,
        "registrant.new_booking_code",
        None,
        Some(id),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(code)
}

/// Sends the caller `id` the confirmation of their live booking again, with its pass.
pub async fn send_pass_again(state: &AppState, agent: &StaffMember, id: Uuid) -> Result<String, ApiError> {
    let caller = caller(state, agent, id).await?;
    let shown = registrants::booking_shown(state.store.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("This caller has no booking, so there is no pass to send."))?;
    let booking = bookings::booking(state.store.pool(), shown.id)
        .await?
        .ok_or_else(|| ApiError::not_found("This caller has no booking, so there is no pass to send."))?;
    spend_sms_budget(state, &caller.region_id).await?;
    let published = state.policies.current(&caller.region_id).await?;
    let place = &booking.place;
    let notification = Notification::Confirmation {
        booking_reference: reference(booking.id),
        appointment: appointment(place, &published.policy),
        qr_token: CheckinPass {
            booking: booking.id,
            centre: place.centre_id.clone(),
            first_at: place.first_at,
            second_at: place.second_at,
        }
        .sign(&state.pass_keys, Utc::now()),
        pass_url: pass_url(state, booking.id),
    };
    let mut tx = state.store.begin().await?;
    tell(&mut tx, id, Uuid::new_v4(), &notification).await?;
    audit(
        &mut tx,
        agent,
        "booking.pass_sent_again",
        Some(&place.centre_id),
        Some(booking.id),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(reference(booking.id))
}

/// The region's capacity from now on and who waits for it.
#[derive(Serialize)]
pub struct RegionCapacity {
    pub region: String,
    pub weeks: Vec<callers::WeekOfPairs>,
    pub waiting: Vec<callers::Waiting>,
    pub last_draw: Option<callers::LastDraw>,
}

/// What the agent's region has to offer from `now` on, and how many wait for it.
pub async fn region_capacity(
    state: &AppState,
    agent: &StaffMember,
    now: DateTime<Utc>,
) -> Result<RegionCapacity, ApiError> {
    agent.may_act_for_callers(&agent.region).map_err(forbidden)?;
    let pool = state.store.pool();
    Ok(RegionCapacity {
        region: agent.region.clone(),
        weeks: callers::open_capacity(pool, &agent.region, now).await?,
        waiting: callers::waiting(pool, &agent.region).await?,
        last_draw: callers::last_draw(pool, &agent.region).await?,
    })
}
