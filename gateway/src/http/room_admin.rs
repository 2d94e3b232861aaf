//! The operators' API for rooms: `Authorization: Bearer <rooms.admin_token>`. Rooms are
//! run-time data in Redis; every gateway picks up a change within `rooms.refresh_millis`.

use actix_web::{web, HttpRequest, HttpResponse};
use drawbridge_domain::waiting_room::room::is_valid_name;
use drawbridge_domain::RoomConfig;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::extract::bearer;
use crate::error::{ApiError, ErrorCode};
use crate::AppState;

fn authorize(state: &AppState, request: &HttpRequest) -> Result<(), ApiError> {
    let expected =
        drawbridge_platform::config::ExposeSecret::expose_secret(&state.rooms.settings.admin_token);
    if expected.is_empty() {
        return Err(ApiError::new(ErrorCode::AdminDisabled));
    }
    let presented = bearer(request).ok_or_else(|| ApiError::new(ErrorCode::AdminCredentialsMissing))?;
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::AdminCredentialsWrong))
    }
}

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

pub async fn list(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request)?;
    let mut rooms = Vec::new();
    for name in state.rooms.store.rooms().await? {
        if let Some(room) = state.rooms.store.describe(&name).await? {
            rooms.push(room);
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "rooms": rooms })))
}

pub async fn show(
    state: web::Data<AppState>,
    room: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request)?;
    let described = state.rooms.store.describe(&room).await?;
    let described = described.ok_or_else(|| ApiError::not_found(format!("There is no room {room:?}.")))?;
    Ok(HttpResponse::Ok().json(described))
}

/// Creates or replaces a room's configuration (201 when new).
pub async fn put(
    state: web::Data<AppState>,
    room: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // Credentials first: an unauthenticated caller learns nothing about the expected body.
    authorize(&state, &request)?;
    check_name(&room)?;
    let config: RoomConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::malformed(format!("The room configuration could not be read: {e}")))?;
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
