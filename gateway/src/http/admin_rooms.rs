//! The region admin's waiting rooms, `/staff/admin/rooms`: the rooms in front of the region's
//! registration with their live counters (the page refreshes them), and a room's settings: its
//! mode, when it opens (the pre-queue is drawn then), its pace and limits. Every gateway follows
//! a change within `rooms.refresh_millis`. The work is `use_cases::region_setup`'s.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{NaiveDateTime, TimeZone, Utc};
use drawbridge_domain::language::when;
use drawbridge_domain::{RoomConfig, RoomMode};
use serde::{Deserialize, Serialize};

use super::console::{Console, DoneQuery, TIMEZONE};
use super::refusal;
use crate::error::ApiError;
use crate::rooms::store::Description;
use crate::use_cases::region_setup;
use crate::AppState;

const ROOMS: &str = "/staff/admin/rooms";
const MODES: [&str; 4] = ["fifo", "random", "passthrough", "closed"];

/// A room's counters, as the list and the room's page show them.
#[derive(Serialize)]
struct Counters {
    room: String,
    mode: RoomMode,
    opens: String,
    admit_per_minute: u32,
    tickets_issued: u64,
    serving: u64,
    waiting: u64,
    active: u64,
    dropped: u64,
    draws: usize,
}

fn counters(room: &Description, console: &Console) -> Counters {
    Counters {
        room: room.room.clone(),
        mode: room.config.mode,
        opens: when(room.config.opens_at, TIMEZONE, console.language),
        admit_per_minute: room.config.admit_per_minute,
        tickets_issued: room.tickets_issued,
        serving: room.serving,
        waiting: room.tickets_issued.saturating_sub(room.serving),
        active: room.active,
        dropped: room.dropped,
        draws: room.draws.len(),
    }
}

#[derive(Serialize)]
struct RoomsView {
    rooms: Vec<Counters>,
    done: Option<String>,
}

/// `GET /staff/admin/rooms`.
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<DoneQuery>,
    console: Console,
) -> HttpResponse {
    match region_setup::rooms(&state, &console.member).await {
        Ok(rooms) => {
            let view = RoomsView {
                rooms: rooms.iter().map(|room| counters(room, &console)).collect(),
                done: console.confirmation(&state, &query),
            };
            console.page(&state, "admin_rooms.html", StatusCode::OK, view)
        }
        Err(refused) => console.refused(&state, "/staff", &refused),
    }
}

/// The room form's fields, as typed.
#[derive(Serialize, Deserialize, Default)]
pub struct RoomForm {
    #[serde(skip_serializing)]
    csrf: String,
    #[serde(default)]
    mode: String,
    /// Local time in the service's time zone, as `<input type=datetime-local>` sends it.
    #[serde(default)]
    opens_at: String,
    #[serde(default)]
    admit_per_minute: String,
    #[serde(default)]
    max_active: String,
    #[serde(default)]
    session_seconds: String,
    #[serde(default)]
    idle_seconds: String,
    #[serde(default)]
    pow_difficulty: String,
    #[serde(default)]
    target_path: String,
}

impl RoomForm {
    fn from_config(config: &RoomConfig) -> RoomForm {
        let zone: chrono_tz::Tz = TIMEZONE.parse().expect("the service's time zone is known");
        RoomForm {
            csrf: String::new(),
            mode: serde_json::to_value(config.mode)
                .ok()
                .and_then(|mode| mode.as_str().map(str::to_owned))
                .unwrap_or_default(),
            opens_at: config
                .opens_at
                .with_timezone(&zone)
                .format("%Y-%m-%dT%H:%M")
                .to_string(),
            admit_per_minute: config.admit_per_minute.to_string(),
            max_active: config.max_active.to_string(),
            session_seconds: config.session_seconds.to_string(),
            idle_seconds: config.idle_seconds.to_string(),
            pow_difficulty: config.pow_difficulty.to_string(),
            target_path: config.target_path.clone(),
        }
    }

    /// The configuration the form asks for, on top of `base` (what the form does not show).
    fn config(&self, base: RoomConfig) -> Result<RoomConfig, ApiError> {
        let zone: chrono_tz::Tz = TIMEZONE.parse().expect("the service's time zone is known");
        let mode = serde_json::from_value(serde_json::Value::from(self.mode.as_str())).map_err(|_| {
            ApiError::invalid(
                "mode",
                "Please choose the mode: fifo, random, passthrough or closed.",
            )
        })?;
        let opens_at = NaiveDateTime::parse_from_str(self.opens_at.trim(), "%Y-%m-%dT%H:%M")
            .ok()
            .and_then(|local| zone.from_local_datetime(&local).earliest())
            .ok_or_else(|| {
                ApiError::invalid(
                    "opens_at",
                    "Please enter when the room opens, like 2026-12-24T08:00.",
                )
            })?;
        let number = |field: &'static str, text: &str| {
            text.trim()
                .parse::<u32>()
                .map_err(|_| ApiError::invalid(field, "Please enter a whole number."))
        };
        Ok(RoomConfig {
            mode,
            opens_at: opens_at.with_timezone(&Utc),
            admit_per_minute: number("admit_per_minute", &self.admit_per_minute)?,
            max_active: number("max_active", &self.max_active)?,
            session_seconds: number("session_seconds", &self.session_seconds)?,
            idle_seconds: number("idle_seconds", &self.idle_seconds)?,
            pow_difficulty: u8::try_from(number("pow_difficulty", &self.pow_difficulty)?)
                .map_err(|_| ApiError::invalid("pow_difficulty", "Please enter a number from 0 to 24."))?,
            target_path: self.target_path.trim().to_owned(),
            ..base
        })
    }
}

#[derive(Serialize)]
struct RoomView {
    room: String,
    exists: bool,
    counters: Option<Counters>,
    entered: RoomForm,
    modes: [&'static str; 4],
    problem: Option<String>,
    problem_field: Option<String>,
}

fn room_page(
    state: &AppState,
    console: &Console,
    room: &str,
    found: Option<&Description>,
    entered: RoomForm,
    problem: Option<&ApiError>,
) -> HttpResponse {
    let view = RoomView {
        room: room.to_owned(),
        exists: found.is_some(),
        counters: found.map(|found| counters(found, console)),
        entered,
        modes: MODES,
        problem: problem
            .map(|refused| refusal::problem(state, console.language, "console_errors", refused).message),
        problem_field: problem.and_then(|problem| problem.field().map(str::to_owned)),
    };
    let status = problem.map_or(StatusCode::OK, |_| StatusCode::UNPROCESSABLE_ENTITY);
    console.page(state, "admin_room.html", status, view)
}

#[derive(Deserialize)]
pub struct NewRoomQuery {
    name: Option<String>,
}

/// `GET /staff/admin/rooms/new?name=`: the form of a new room, from the list's name field.
pub async fn new_room(query: web::Query<NewRoomQuery>, console: Console) -> HttpResponse {
    let name = query
        .name
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    console.see_other(&format!("{ROOMS}/{name}"))
}

/// `GET /staff/admin/rooms/{room}`: the room's settings and counters, or a new room's form.
pub async fn room(state: web::Data<AppState>, name: web::Path<String>, console: Console) -> HttpResponse {
    match region_setup::room(&state, &console.member, &name).await {
        Ok(found) => {
            let config = found.as_ref().map_or_else(
                || region_setup::new_room(&console.member),
                |found| found.config.clone(),
            );
            room_page(
                &state,
                &console,
                &name,
                found.as_ref(),
                RoomForm::from_config(&config),
                None,
            )
        }
        Err(refused) => console.refused(&state, ROOMS, &refused),
    }
}

/// `POST /staff/admin/rooms/{room}`: creates the room or changes its settings.
pub async fn save(
    state: web::Data<AppState>,
    name: web::Path<String>,
    form: web::Form<RoomForm>,
    console: Console,
) -> HttpResponse {
    let entered = form.into_inner();
    if let Err(refused) = console.check_form(&entered.csrf) {
        return console.refused(&state, ROOMS, &refused);
    }
    let found = match region_setup::room(&state, &console.member, &name).await {
        Ok(found) => found,
        Err(refused) => return console.refused(&state, ROOMS, &refused),
    };
    let base = found.as_ref().map_or_else(
        || region_setup::new_room(&console.member),
        |found| found.config.clone(),
    );
    let saved = match entered.config(base) {
        Ok(config) => region_setup::set_room(&state, &console.member, &name, config).await,
        Err(refused) => Err(refused),
    };
    match saved {
        Ok(created) => {
            let done = if created { "room_created" } else { "room_changed" };
            console.see_other(&format!("{ROOMS}?done={done}"))
        }
        Err(refused) if refused.field().is_some() => {
            room_page(&state, &console, &name, found.as_ref(), entered, Some(&refused))
        }
        Err(refused) => console.refused(&state, ROOMS, &refused),
    }
}
