//! The HTTP adapters: every route, each handler thin (parse, authorise, call one use case,
//! render). Handlers never import each other; what several share (extractors, common answers,
//! refusals as pages say them) lives in `extract`, `answers` and `refusal`.

mod admin_audit;
mod admin_centres;
mod admin_policy;
mod admin_rooms;
mod admin_staff;
mod agent_pages;
mod analyst_pages;
pub(crate) mod answers;
mod callcentre;
mod centre_pages;
mod centres;
mod console;
mod draws;
pub mod extract;
mod imported;
mod me;
mod me_page;
mod my_session;
pub mod nul;
mod offer_links;
mod pages;
mod pass;
mod refusal;
mod regions;
mod register_page;
mod registration_form;
mod registrations;
mod room_admin;
mod rooms;
mod staff;
mod staff_pages;
mod status_view;
mod upload;
mod verification;

use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{self, DefaultHeaders, ErrorHandlers, Next};
use std::collections::HashMap;
use std::sync::LazyLock;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::error::{ApiError, ErrorCode};

/// The OpenAPI document, kept beside the code it describes.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub fn routes(config: &mut web::ServiceConfig) {
    // First, under a static prefix: status polls are the surge, and every dynamic route tried
    // before the right one costs a regex match. The rooms' answers set their own headers
    // (no-store on polls), so the default headers, a layer per request, stay off this path.
    config.service(
        web::scope("/v1/rooms")
            .wrap(documented_errors())
            .route("/{room}/status", web::get().to(rooms::status))
            .route("/{room}/join", web::post().to(rooms::join))
            .route("/{room}/leave", web::post().to(rooms::leave))
            .route("/{room}/challenge", web::post().to(rooms::challenge))
            .default_service(web::to(not_found)),
    );
    let everything_else = web::scope("")
        .wrap(middleware::from_fn(remember_language))
        .wrap(safe_defaults())
        .wrap(documented_errors())
        .route("/", web::get().to(pages::index))
        .route("/regions/{region}/policy", web::get().to(pages::policy))
        .route("/regions/{region}/check", web::get().to(pages::check))
        .route("/static/{file}", web::get().to(pages::static_file))
        .route("/openapi.json", web::get().to(openapi))
        .route("/v1/regions", web::get().to(regions::list))
        .route("/v1/regions/{region}/policy", web::get().to(regions::policy))
        .route(
            "/v1/regions/{region}/eligibility",
            web::post().to(regions::eligibility),
        )
        .route(
            "/v1/regions/{region}/registrations",
            web::post().to(registrations::create),
        )
        .route("/rooms/{room}", web::get().to(pages::waiting_room))
        .route("/v1/admin/rooms", web::get().to(room_admin::list))
        .route("/v1/admin/rooms/{room}", web::get().to(room_admin::show))
        .route("/v1/admin/rooms/{room}", web::put().to(room_admin::put))
        .route(
            "/v1/registrations/{id}/verify",
            web::post().to(verification::verify),
        )
        .route(
            "/v1/registrations/{id}/resend",
            web::post().to(verification::resend),
        )
        .route("/v1/me", web::get().to(me::show))
        .route("/v1/me/export", web::get().to(me::export))
        .route("/v1/me", web::patch().to(me::change))
        .route("/v1/me", web::delete().to(me::withdraw))
        .route("/v1/me/offer/accept", web::post().to(me::accept))
        .route("/v1/me/offer/decline", web::post().to(me::decline))
        .route("/v1/me/booking/cancel", web::post().to(me::cancel))
        .route("/regions/{region}/register", web::get().to(register_page::form))
        .route(
            "/regions/{region}/register",
            web::post().to(register_page::submit),
        )
        .route("/registrations/{id}/code", web::get().to(register_page::code))
        .route("/registrations/{id}/code", web::post().to(register_page::verify))
        .route(
            "/registrations/{id}/resend",
            web::post().to(register_page::resend),
        )
        .route("/me", web::get().to(me_page::page))
        .route("/me", web::post().to(me_page::sign_in))
        .route("/me/sign-out", web::post().to(me_page::sign_out))
        .route("/me/export", web::get().to(me_page::export))
        .route("/staff", web::get().to(staff_pages::home))
        .route("/staff/sign-in", web::post().to(staff_pages::sign_in))
        .route("/staff/sign-out", web::post().to(staff_pages::sign_out))
        .route("/staff/password", web::get().to(staff_pages::password_form))
        .route("/staff/password", web::post().to(staff_pages::choose_password))
        .route("/staff/callers", web::get().to(agent_pages::desk))
        .route("/staff/callers/find", web::post().to(agent_pages::find))
        .route("/staff/callers/new", web::get().to(agent_pages::new_caller))
        .route(
            "/staff/callers/new",
            web::post().to(agent_pages::another_on_the_phone),
        )
        .route("/staff/callers/register", web::post().to(agent_pages::register))
        // A caller's id is a UUID, so `find`, `new` and `register` never reach these.
        .route(
            "/staff/callers/{id:[0-9a-fA-F-]+}",
            web::get().to(agent_pages::caller),
        )
        .route(
            "/staff/callers/{id:[0-9a-fA-F-]+}/{action}",
            web::post().to(agent_pages::action),
        )
        .route("/staff/capacity", web::get().to(agent_pages::capacity))
        .route("/staff/centres", web::get().to(centre_pages::centres))
        .route("/staff/centres/{centre}", web::get().to(centre_pages::day))
        .route(
            "/staff/centres/{centre}/publish",
            web::get().to(centre_pages::publish_form),
        )
        .route(
            "/staff/centres/{centre}/publish",
            web::post().to(centre_pages::publish),
        )
        .route(
            "/staff/centres/{centre}/batches/{id}/withdraw",
            web::post().to(centre_pages::withdraw),
        )
        .route("/staff/centres/{centre}/door", web::get().to(centre_pages::door))
        .route(
            "/staff/centres/{centre}/door",
            web::post().to(centre_pages::check_in),
        )
        // A region admin's set-up. `new` and `import` are routed before the ids they look like.
        .route("/staff/admin/centres", web::get().to(admin_centres::list))
        .route(
            "/staff/admin/centres/new",
            web::get().to(admin_centres::new_centre),
        )
        .route("/staff/admin/centres/new", web::post().to(admin_centres::save))
        .route(
            "/staff/admin/centres/import",
            web::post().to(admin_centres::import_centres),
        )
        .route(
            "/staff/admin/centres/{centre}",
            web::get().to(admin_centres::centre),
        )
        .route(
            "/staff/admin/centres/{centre}",
            web::post().to(admin_centres::save),
        )
        .route(
            "/staff/admin/centres/{centre}/closed",
            web::post().to(admin_centres::set_closed),
        )
        .route(
            "/staff/admin/postcodes/import",
            web::post().to(admin_centres::import_postcodes),
        )
        .route("/staff/admin/staff", web::get().to(admin_staff::list))
        .route("/staff/admin/staff", web::post().to(admin_staff::create))
        .route("/staff/admin/staff/import", web::post().to(admin_staff::import))
        .route(
            "/staff/admin/staff/{username}/{change}",
            web::post().to(admin_staff::change),
        )
        .route("/staff/admin/rooms", web::get().to(admin_rooms::list))
        .route("/staff/admin/rooms/new", web::get().to(admin_rooms::new_room))
        .route("/staff/admin/rooms/{room}", web::get().to(admin_rooms::room))
        .route("/staff/admin/rooms/{room}", web::post().to(admin_rooms::save))
        .route("/staff/admin/policy", web::get().to(admin_policy::page))
        .route("/staff/admin/policy/check", web::post().to(admin_policy::check))
        .route(
            "/staff/admin/policy/publish",
            web::post().to(admin_policy::publish),
        )
        .route("/staff/admin/audit", web::get().to(admin_audit::page))
        .route("/staff/draws", web::get().to(analyst_pages::draws))
        .route("/staff/draws/export", web::get().to(analyst_pages::export))
        // A draw's id is a UUID, so `export` never reaches these.
        .route(
            "/staff/draws/{id:[0-9a-fA-F-]+}",
            web::get().to(analyst_pages::draw),
        )
        .route(
            "/staff/draws/{id:[0-9a-fA-F-]+}/manifest",
            web::get().to(analyst_pages::manifest),
        )
        .route(
            "/staff/draws/{id:[0-9a-fA-F-]+}/offer-rates",
            web::get().to(analyst_pages::offer_rates),
        )
        .route("/staff/simulations", web::get().to(analyst_pages::simulations))
        .route(
            "/staff/simulations/{report}/{file}",
            web::get().to(analyst_pages::simulation_file),
        )
        .route("/me/offer/accept", web::post().to(me_page::accept))
        .route("/me/offer/decline", web::post().to(me_page::decline))
        .route("/me/choices", web::get().to(me_page::choices))
        .route("/me/choices", web::post().to(me_page::change_choices))
        .route("/me/cancel", web::get().to(me_page::confirm_cancel))
        .route("/me/cancel", web::post().to(me_page::cancel))
        .route("/me/withdraw", web::get().to(me_page::confirm_withdraw))
        .route("/me/withdraw", web::post().to(me_page::withdraw))
        .route("/offers/{id}", web::get().to(offer_links::page))
        .route("/pass/{booking}/{key}", web::get().to(pass::page))
        .route("/.well-known/jwks.json", web::get().to(pass::keys))
        .route("/offers/{id}/accept", web::post().to(offer_links::accept_form))
        .route("/offers/{id}/decline", web::post().to(offer_links::decline_form))
        .route("/v1/offers/{id}/accept", web::post().to(offer_links::accept))
        .route("/v1/offers/{id}/decline", web::post().to(offer_links::decline))
        .route("/v1/staff/sessions", web::post().to(staff::login))
        .route("/v1/staff/sessions/current", web::delete().to(staff::logout))
        .route("/v1/staff/me", web::get().to(staff::me))
        .route("/v1/staff/actions", web::get().to(staff::actions))
        .route(
            "/v1/callcentre/registrations",
            web::post().to(callcentre::register),
        )
        .route("/v1/callcentre/lookup", web::post().to(callcentre::lookup))
        .route(
            "/v1/callcentre/registrants/{id}",
            web::get().to(callcentre::registrant),
        )
        .route(
            "/v1/callcentre/registrants/{id}/offer/accept",
            web::post().to(callcentre::accept),
        )
        .route(
            "/v1/callcentre/registrants/{id}/offer/decline",
            web::post().to(callcentre::decline),
        )
        .route(
            "/v1/callcentre/registrants/{id}/booking/cancel",
            web::post().to(callcentre::cancel),
        )
        .route(
            "/v1/callcentre/registrants/{id}/withdraw",
            web::post().to(callcentre::withdraw),
        )
        .route("/v1/centres/{centre}/capacity", web::post().to(centres::publish))
        .route(
            "/v1/centres/{centre}/capacity/{id}/cancel",
            web::post().to(centres::withdraw),
        )
        .route("/v1/centres/{centre}/schedule", web::get().to(centres::schedule))
        .route("/v1/centres/{centre}/checkins", web::post().to(centres::check_in))
        .route("/v1/draws", web::get().to(draws::list))
        .route("/v1/draws/{id}", web::get().to(draws::show))
        .route("/v1/draws/{id}/manifest", web::get().to(draws::manifest))
        .default_service(web::to(not_found));
    config.service(everything_else);
}

/// Errors raised around the handlers, answered in the documented shape (see
/// [`crate::error::in_documented_shape`]).
fn documented_errors<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(crate::error::in_documented_shape)
}

/// Headers every answer carries unless its handler set them: nothing is stored by browsers or
/// proxies (answers carry booking codes, offers and personal data; static files and the waiting
/// room's polls say otherwise themselves), no content is sniffed into another type, and no
/// address (offer links carry their token) leaks to another site as a referrer.
fn safe_defaults() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
}

/// A page asked for with `?lang=` remembers the language in a cookie, so the pages a person
/// reaches later without it (a link from an SMS) speak their language too.
async fn remember_language(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let chosen = extract::linked_language(request.query_string());
    let mut response = next.call(request).await?;
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if let Some(language) = chosen.filter(|_| is_page) {
        let remembered = Cookie::build(extract::LANGUAGE_COOKIE, language.as_str())
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .max_age(actix_web::cookie::time::Duration::days(365))
            .finish();
        let _ = response.response_mut().add_cookie(&remembered);
    }
    Ok(response)
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

/// The methods `openapi.json` documents for each path pattern, for the `Allow` of a 405.
static DOCUMENTED_METHODS: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    let document: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
    let paths = document["paths"].as_object().cloned().unwrap_or_default();
    paths
        .into_iter()
        .map(|(path, operations)| {
            let methods: Vec<String> = operations
                .as_object()
                .map(|o| o.keys().map(|method| method.to_ascii_uppercase()).collect())
                .unwrap_or_default();
            (path, methods.join(", "))
        })
        .collect()
});

/// A route's pattern as `openapi.json` writes it: `/a/{id:[0-9a-f-]+}` is `/a/{id}`.
fn as_documented(pattern: &str) -> String {
    pattern
        .split('/')
        .map(
            |segment| match (segment.starts_with('{'), segment.split_once(':')) {
                (true, Some((name, _))) => format!("{name}}}"),
                _ => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Nothing here: 405 with `Allow` for a path that exists with other methods, else 404.
async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let Some(pattern) = request.resource_map().match_pattern(request.path()) else {
        return Err(ApiError::new(ErrorCode::NotFound));
    };
    let pattern = as_documented(&pattern);
    let mut response = ApiError::new(ErrorCode::MethodNotAllowed).error_response();
    if let Some(allowed) = DOCUMENTED_METHODS
        .get(&pattern)
        .and_then(|methods| header::HeaderValue::from_str(methods).ok())
    {
        response.headers_mut().insert(header::ALLOW, allowed);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pattern_is_written_as_documented() {
        assert_eq!(
            super::as_documented("/staff/callers/{id:[0-9a-fA-F-]+}/{action}"),
            "/staff/callers/{id}/{action}"
        );
        assert_eq!(
            super::as_documented("/v1/rooms/{room}/status"),
            "/v1/rooms/{room}/status"
        );
    }
}
