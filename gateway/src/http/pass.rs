//! `GET /pass/{booking}/{key}`: the page behind the link in a confirmation, showing the
//! check-in pass as a QR code with the booking reference, printable, without JavaScript; and
//! `GET /.well-known/jwks.json`, the public keys every pass is checked with.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use base64::Engine;
use drawbridge_domain::language::when;
use qrcode::render::svg;
use qrcode::QrCode;
use serde::Serialize;
use uuid::Uuid;

use super::extract::LanguageQuery;
use crate::error::ApiError;
use crate::use_cases::pass;
use crate::AppState;

#[derive(Serialize)]
struct PassView {
    reference: String,
    vaccine: String,
    centre: String,
    address: String,
    first: String,
    second: Option<String>,
    /// `data:` URL of the QR code as SVG; `None` when the booking has no pass any more.
    qr: Option<String>,
    state: &'static str,
}

pub async fn page(
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    let (booking, key) = path.into_inner();
    let language = query.language();
    let pass = pass::show(&state, booking, &key).await?;
    let place = &pass.booking.place;
    let view = PassView {
        qr: pass.checkin_pass.as_deref().map(qr_data_url).transpose()?,
        reference: pass.reference,
        vaccine: pass.vaccine_name.get(language).to_owned(),
        centre: place.centre.clone(),
        address: place.address.clone(),
        first: when(place.first_at, &place.timezone, language),
        second: place.second_at.map(|at| when(at, &place.timezone, language)),
        state: pass.booking.state.as_str(),
    };
    state.templates.page("pass.html", language, view)
}

/// The pass keys as a JWK set. Doors fetch it now and then and check passes offline, so it may
/// be cached for an hour; a new key is listed well before it signs (deploy/README.md).
pub async fn keys(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(pass::public_keys(&state))
}

/// The QR code of `content` as an SVG `data:` URL, which the page's content policy allows.
fn qr_data_url(content: &str) -> Result<String, ApiError> {
    let code = QrCode::new(content.as_bytes()).map_err(ApiError::internal)?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    let encoded = base64::engine::general_purpose::STANDARD.encode(image);
    Ok(format!("data:image/svg+xml;base64,{encoded}"))
}
