//! Protection of the APIs behind a waiting room: the [`Admitted`] extractor requires a valid
//! admission token on routes with a `{region}` that a room guards. A region no room guards, or
//! one guarded by a room in `passthrough`, lets everything through.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use drawbridge_domain::room::ADMISSION_PURPOSE;
use drawbridge_domain::{RoomMode, RoomTokenError};

use super::api::{presented_token, ADMISSION_COOKIE};
use crate::error::ApiError;
use crate::AppState;

/// Proof that the request may pass: no room guards its region, or it carries an admission
/// token (bearer or cookie) of a room guarding it, bound to this client.
pub struct Admitted;

impl FromRequest for Admitted {
    type Error = ApiError;
    type Future = Ready<Result<Admitted, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(admit(request))
    }
}

fn admit(request: &HttpRequest) -> Result<Admitted, ApiError> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .expect("the application state is registered");
    let Some(region) = request.match_info().get("region") else {
        return Ok(Admitted);
    };
    let guarding = state.rooms.cache.guarding(region);
    if guarding
        .iter()
        .all(|view| view.config.mode == RoomMode::Passthrough)
    {
        return Ok(Admitted);
    }
    // With several rooms on one region (e.g. one per release event), any of them admits.
    let token = presented_token(request, ADMISSION_COOKIE);
    let mut refusal = RoomTokenError::Missing;
    let now = super::unix_now();
    for view in &guarding {
        match state.rooms.verify(request, view, ADMISSION_PURPOSE, token, now) {
            Ok(_) => return Ok(Admitted),
            Err(RoomTokenError::ForeignRoom) => refusal = RoomTokenError::ForeignRoom,
            Err(error) => return Err(error.into()),
        }
    }
    Err(refusal.into())
}
