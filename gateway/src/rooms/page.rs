//! The waiting page `GET /rooms/{room}`: plain, accessible HTML in German and English. Its
//! script (`static/waiting-room.js`) joins, solves the proof of work when the room asks for
//! one, shows position and estimated wait, polls when the server says, and moves on once
//! admitted; it reads the room, the difficulty and its texts from the page.

use actix_web::{web, HttpResponse};
use drawbridge_domain::RoomMode;
use serde::Serialize;

use crate::error::ApiError;
use crate::pages::LanguageQuery;
use crate::AppState;

#[derive(Serialize)]
struct WaitingPage<'a> {
    room: &'a str,
    /// Places are drawn by lot in every draw, rather than by arrival after opening.
    random: bool,
    difficulty: u8,
}

pub async fn waiting_room(
    state: web::Data<AppState>,
    room: web::Path<String>,
    query: web::Query<LanguageQuery>,
) -> Result<HttpResponse, ApiError> {
    let view = state.rooms.room(&room)?;
    let page = WaitingPage {
        room: &view.name,
        random: matches!(view.config.mode, RoomMode::Random),
        difficulty: view.config.pow_difficulty,
    };
    state.templates.page("room.html", query.language(), page)
}
