//! The operators' API for rooms: `Authorization: Bearer <rooms.admin_token>` (see
//! `extract::Operator`). Rooms are run-time data in Redis; every gateway picks up a change
//! within `rooms.refresh_millis`.

use actix_web::{web, HttpResponse};
use drawbridge_domain::waiting_room::room::is_valid_name;
use drawbridge_domain::RoomConfig;
use serde_json::json;

use super::extract::{object_from_slice, Operator};
use crate::error::ApiError;
use crate::AppState;

fn check_name(room: &str) -> Result<(), ApiError> {
    if is_valid_name(room) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "room",
            format!("{room:?} is not a room name: use 1 to 40 of a-z, 0-9 and -."),
        ))
    }
}

pub async fn list(_operator: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut rooms = Vec::new();
    for name in state.rooms.store.rooms().await? {
        if let Some(room) = state.rooms.store.describe(&name).await? {
            rooms.push(room);
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "rooms": rooms })))
}

pub async fn show(
    _operator: Operator,
    state: web::Data<AppState>,
    room: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let described = state.rooms.store.describe(&room).await?;
    let described = described.ok_or_else(|| ApiError::not_found(format!("There is no room {room:?}.")))?;
    Ok(HttpResponse::Ok().json(described))
}

/// Creates or replaces a room's configuration (201 when new).
/// The operator is extracted first: an unauthenticated caller learns nothing about the body.
pub async fn put(
    _operator: Operator,
    state: web::Data<AppState>,
    room: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    check_name(&room)?;
    let config: RoomConfig = object_from_slice(&body)?;
    config
        .validate()
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    let created = state.rooms.store.put_config(&room, &config).await?;
    tracing::info!(room = %room, created, ?config, "room configured");
    let mut response = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(json!({ "room": room.as_str(), "config": config })))
}
