//! Registering in a browser: the form, the SMS code, and the booking code shown once. Plain
//! forms that work without JavaScript; the page's language is the one the person's messages
//! will use. A refused answer comes back in the form with every entry kept, the problem
//! summarised at the top and tied to its field. The use cases are those of
//! `POST /v1/regions/{region}/registrations`, `/verify` and `/resend`, guarded by the region's
//! waiting rooms the same way.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use drawbridge_domain::{Label, Language};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{client_address, waiting_room_of, Admitted, LanguageQuery};
use super::my_session;
use super::refusal::{problem, Problem};
use super::registration_form::{
    groups, read_form, registration_form, vaccines, Choice, Entered, DISTANCE_KM,
};
use crate::error::ApiError;
use crate::use_cases::{admission, rules, verify};
use crate::AppState;

#[derive(Serialize)]
struct FormView<'a> {
    region: &'a str,
    region_name: &'a Label,
    groups: Vec<Choice<'a>>,
    vaccines: Vec<Choice<'a>>,
    entered: Entered,
    problems: Vec<Problem>,
}

/// `GET /regions/{region}/register`; a visitor of a guarded region without an admission goes
/// to its waiting room first, whose target this form is.
pub async fn form(
    admitted: Result<Admitted, ApiError>,
    state: web::Data<AppState>,
    region: web::Path<String>,
    query: LanguageQuery,
) -> HttpResponse {
    if let (Err(_), Some(room)) = (&admitted, waiting_room_of(&state, &region)) {
        return to_the_waiting_room(&room, query.language());
    }
    let entered = Entered {
        max_distance_km: DISTANCE_KM.to_string(),
        ..Entered::default()
    };
    show_form(&state, &region, query.language(), entered, Vec::new()).await
}

/// `POST /regions/{region}/register`: starts the registration and goes on to the code.
pub async fn submit(
    admitted: Result<Admitted, ApiError>,
    state: web::Data<AppState>,
    region: web::Path<String>,
    query: LanguageQuery,
    request: HttpRequest,
    fields: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let language = query.language();
    if let (Err(_), Some(room)) = (&admitted, waiting_room_of(&state, &region)) {
        // The admission ran out while the form was filled in: queue again, then fill it in.
        return to_the_waiting_room(&room, language);
    }
    let entered = read_form(fields.into_inner());
    let started = match (admitted, registration_form(&entered, language)) {
        (Err(refused), _) => Err(vec![refused]),
        (Ok(_), Err(problems)) => Err(problems),
        (Ok(admitted), Ok(form)) => {
            let address = client_address(&request);
            admission::register(&state, admitted.0.as_ref(), &region, form, None, &address)
                .await
                .map_err(|refused| vec![refused])
        }
    };
    match started {
        Ok(started) => see_other(&format!(
            "/registrations/{}/code?lang={}",
            started.registration_id,
            language.as_str()
        )),
        Err(refused) => {
            let problems = refused
                .iter()
                .map(|refused| problem(&state, language, "register_errors", refused))
                .collect();
            show_form(&state, &region, language, entered, problems).await
        }
    }
}

async fn show_form(
    state: &AppState,
    region: &str,
    language: Language,
    entered: Entered,
    problems: Vec<Problem>,
) -> HttpResponse {
    let published = match rules::policy(state, region).await {
        Ok(published) => published,
        Err(error) => return actix_web::ResponseError::error_response(&error),
    };
    let policy = &published.policy;
    let view = FormView {
        region,
        region_name: &policy.name,
        groups: groups(policy, &entered),
        vaccines: vaccines(policy, &entered),
        entered,
        problems,
    };
    let status = if view.problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    state
        .templates
        .page_with_status("register.html", language, status, view)
}

#[derive(Serialize, Default)]
struct CodeView {
    registration: Uuid,
    /// Set once the code was right: shown once, with what to do with it.
    booking_code: Option<String>,
    /// A new code was just sent.
    sent: bool,
    problems: Vec<Problem>,
}

/// `?sent=true`: a new code is on its way.
#[derive(Deserialize)]
pub struct SentQuery {
    #[serde(default)]
    sent: bool,
}

/// `GET /registrations/{id}/code`: where the SMS code is entered.
pub async fn code(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: LanguageQuery,
    sent: web::Query<SentQuery>,
) -> HttpResponse {
    let view = CodeView {
        registration: *id,
        sent: sent.sent,
        ..CodeView::default()
    };
    state
        .templates
        .page_with_status("code.html", query.language(), StatusCode::OK, view)
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

/// `POST /registrations/{id}/code`: the right code shows the booking code, once, and signs the
/// person in to `/me`.
pub async fn verify(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: LanguageQuery,
    form: web::Form<CodeForm>,
) -> HttpResponse {
    let language = query.language();
    match verify::verify(&state, *id, &form.code).await {
        Ok(booking_code) => {
            let booking_code = booking_code.to_string();
            let mut response = state.templates.page_with_status(
                "code.html",
                language,
                StatusCode::OK,
                CodeView {
                    registration: *id,
                    booking_code: Some(booking_code.clone()),
                    ..CodeView::default()
                },
            );
            let _ = response.add_cookie(&my_session::cookie(&state, &booking_code, my_session::SECONDS));
            response
        }
        Err(refused) => code_refused(&state, *id, language, &refused),
    }
}

/// `POST /registrations/{id}/resend`: a new code, within the limits of a resend.
pub async fn resend(state: web::Data<AppState>, id: web::Path<Uuid>, query: LanguageQuery) -> HttpResponse {
    let language = query.language();
    match verify::resend(&state, *id).await {
        Ok(_) => see_other(&format!(
            "/registrations/{id}/code?lang={}&sent=true",
            language.as_str()
        )),
        Err(refused) => code_refused(&state, *id, language, &refused),
    }
}

fn code_refused(
    state: &AppState,
    registration: Uuid,
    language: Language,
    refused: &ApiError,
) -> HttpResponse {
    let view = CodeView {
        registration,
        problems: vec![problem(state, language, "code_errors", refused)],
        ..CodeView::default()
    };
    let status = actix_web::ResponseError::status_code(refused);
    state
        .templates
        .page_with_status("code.html", language, status, view)
}

fn to_the_waiting_room(room: &str, language: Language) -> HttpResponse {
    see_other(&format!("/rooms/{room}?lang={}", language.as_str()))
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}
