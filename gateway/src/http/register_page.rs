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
use crate::error::ApiError;
use crate::use_cases::register::RegistrationForm;
use crate::use_cases::{admission, rules, verify};
use crate::AppState;

/// The distance people are asked for first.
const DISTANCE_KM: u32 = 30;

/// What the person entered, shown again when a field is refused.
#[derive(Serialize, Default)]
struct Entered {
    phone: String,
    email: String,
    birth_year: String,
    initials: String,
    priority_group: Option<u8>,
    postcode: String,
    vaccines: Vec<String>,
    max_distance_km: String,
}

#[derive(Serialize)]
struct FormView<'a> {
    region: &'a str,
    region_name: &'a Label,
    groups: Vec<Choice<'a>>,
    vaccines: Vec<Choice<'a>>,
    entered: Entered,
    problems: Vec<Problem>,
}

/// A priority group or vaccine to choose.
#[derive(Serialize)]
struct Choice<'a> {
    value: String,
    name: &'a Label,
    chosen: bool,
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
        groups: policy
            .groups
            .iter()
            .map(|group| Choice {
                value: group.id.to_string(),
                name: &group.name,
                chosen: entered.priority_group == Some(group.id),
            })
            .collect(),
        vaccines: policy
            .vaccines
            .iter()
            .map(|vaccine| Choice {
                value: vaccine.code.clone(),
                name: &vaccine.name,
                chosen: entered.vaccines.contains(&vaccine.code),
            })
            .collect(),
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

/// The form's fields; read by hand because a form repeats `vaccine` once per checkbox.
fn read_form(fields: Vec<(String, String)>) -> Entered {
    let mut entered = Entered::default();
    for (key, value) in fields {
        match key.as_str() {
            "phone" => entered.phone = value,
            "email" => entered.email = value,
            "birth_year" => entered.birth_year = value,
            "initials" => entered.initials = value,
            "priority_group" => entered.priority_group = value.trim().parse().ok(),
            "postcode" => entered.postcode = value,
            "vaccine" => entered.vaccines.push(value),
            "max_distance_km" => entered.max_distance_km = value,
            _ => {}
        }
    }
    entered
}

/// The registration the form asks for. Fields left empty or numbers that are not numbers are
/// all named at once; everything else is checked by the use case, which names the first
/// problem it finds.
fn registration_form(entered: &Entered, language: Language) -> Result<RegistrationForm, Vec<ApiError>> {
    let mut problems = Vec::new();
    let mut required = |field: &'static str, text: &str| {
        if text.trim().is_empty() {
            problems.push(ApiError::invalid(field, "Please fill in this field."));
        }
    };
    required("phone", &entered.phone);
    required("postcode", &entered.postcode);
    let birth_year = entered.birth_year.trim().parse();
    let max_distance_km = entered.max_distance_km.trim().parse();
    for (field, wrong) in [
        ("birth_year", birth_year.is_err()),
        ("priority_group", entered.priority_group.is_none()),
        ("accepted_vaccines", entered.vaccines.is_empty()),
        ("max_distance_km", max_distance_km.is_err()),
    ] {
        if wrong {
            problems.push(ApiError::invalid(field, "Please fill in this field."));
        }
    }
    let (Ok(birth_year), Some(priority_group), Ok(max_distance_km), true) = (
        birth_year,
        entered.priority_group,
        max_distance_km,
        problems.is_empty(),
    ) else {
        // Shown in the order of the form.
        let order = [
            "phone",
            "birth_year",
            "priority_group",
            "postcode",
            "accepted_vaccines",
            "max_distance_km",
        ];
        problems.sort_by_key(|problem| order.iter().position(|field| Some(*field) == problem.field()));
        return Err(problems);
    };
    let text = |text: &str| Some(text.trim().to_owned()).filter(|text| !text.is_empty());
    Ok(RegistrationForm {
        phone: entered.phone.clone(),
        email: text(&entered.email),
        birth_year,
        initials: text(&entered.initials),
        priority_group,
        postcode: entered.postcode.clone(),
        accepted_vaccines: entered.vaccines.clone(),
        max_distance_km,
        language,
    })
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
