//! `/me`: the status page the booking-code message links to. The person signs in with their
//! booking code, which is then kept in an HttpOnly, SameSite=Strict cookie scoped to `/me`
//! (never in a URL); the page shows their status, offer (with accept and decline buttons),
//! booking with its pass, and their part in recent draws. Plain forms: no JavaScript needed.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use drawbridge_domain::{Label, Language};
use serde::{Deserialize, Serialize};

use super::extract::{client_address, cookie, LanguageQuery};
use super::my_session;
use super::refusal::problem;
use super::status_view::StatusView;
use crate::error::{ApiError, ErrorCode};
use crate::store::registrants::Registrant;
use crate::use_cases::my_data;
use crate::use_cases::my_status::{self, Changes};
use crate::use_cases::rules;
use crate::use_cases::{act, Acting, Request};
use crate::AppState;

#[derive(Serialize, Default)]
struct MeView {
    /// Why the sign-in failed, tied to the field.
    error: Option<String>,
    /// Why an answer, a cancellation or a withdrawal was refused, above the status.
    problem: Option<String>,
    status: Option<StatusView>,
}

/// The registrant whose booking code the session cookie carries, within the guessing limits.
async fn signed_in(state: &AppState, request: &HttpRequest) -> Option<Result<Registrant, ApiError>> {
    let code = cookie(request, my_session::COOKIE)?;
    Some(my_status::sign_in(state, code, &client_address(request)).await)
}

fn render(state: &AppState, language: Language, status: StatusCode, view: MeView) -> HttpResponse {
    state
        .templates
        .page_with_status("me.html", language, status, view)
}

/// The sign-in form again, saying why the booking code did not open a registration.
fn refused(state: &AppState, language: Language, error: &ApiError) -> HttpResponse {
    let view = MeView {
        error: Some(error.public_message()),
        problem: None,
        status: None,
    };
    render(
        state,
        language,
        actix_web::ResponseError::status_code(error),
        view,
    )
}

fn back_to_me(language: Language) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/me?lang={}", language.as_str())))
        .finish()
}

/// `GET /me`: the status, or the sign-in form.
pub async fn page(state: web::Data<AppState>, request: HttpRequest, query: LanguageQuery) -> HttpResponse {
    let language = query.language();
    match signed_in(&state, &request).await {
        None => render(&state, language, StatusCode::OK, MeView::default()),
        Some(Err(error)) => {
            let mut response = refused(&state, language, &error);
            let _ = response.add_removal_cookie(&my_session::cookie(&state, "", 0));
            response
        }
        Some(Ok(me)) => status_page(&state, me, language, StatusCode::OK, None).await,
    }
}

/// The signed-in person's status, with `problem` above it.
async fn status_page(
    state: &AppState,
    me: Registrant,
    language: Language,
    code: StatusCode,
    problem: Option<String>,
) -> HttpResponse {
    let timezone = me.timezone.clone();
    match my_status::status(state, me).await {
        Ok(status) => render(
            state,
            language,
            code,
            MeView {
                error: None,
                problem,
                status: Some(StatusView::of(status, language, &timezone)),
            },
        ),
        Err(error) => actix_web::ResponseError::error_response(&error),
    }
}

/// `GET /me/export`: everything held about the signed-in person, as a JSON file to keep.
pub async fn export(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    let Some(me) = signed_in(&state, &request).await else {
        return Ok(back_to_me(query.language()));
    };
    let data = my_data::export(&state, me?).await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"drawbridge-my-data.json\"",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(data))
}

#[derive(Deserialize)]
pub struct SignInForm {
    booking_code: String,
}

/// `POST /me`: signs in with the booking code.
pub async fn sign_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: LanguageQuery,
    form: web::Form<SignInForm>,
) -> HttpResponse {
    let language = query.language();
    match my_status::sign_in(&state, &form.booking_code, &client_address(&request)).await {
        Ok(_) => {
            let mut response = back_to_me(language);
            let _ = response.add_cookie(&my_session::cookie(
                &state,
                form.booking_code.trim(),
                my_session::SECONDS,
            ));
            response
        }
        Err(error) => refused(&state, language, &error),
    }
}

/// `POST /me/sign-out`.
pub async fn sign_out(state: web::Data<AppState>, query: LanguageQuery) -> HttpResponse {
    let mut response = back_to_me(query.language());
    let _ = response.add_removal_cookie(&my_session::cookie(&state, "", 0));
    response
}

/// `POST /me/offer/accept`.
pub async fn accept(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &request, &query, Request::Accept).await
}

/// `POST /me/offer/decline`.
pub async fn decline(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &request, &query, Request::Decline).await
}

/// Answers the signed-in person's offer, then shows the status again.
async fn answer(
    state: &AppState,
    request: &HttpRequest,
    query: &LanguageQuery,
    request_kind: Request,
) -> Result<HttpResponse, ApiError> {
    let language = query.language();
    let Some(me) = signed_in(state, request).await else {
        return Ok(back_to_me(language));
    };
    let me = me?;
    match act(state, &me, &Acting::Registrant, request_kind).await {
        Ok(_) => Ok(back_to_me(language)),
        // Said on the status page, in its language, with the status as it now stands.
        Err(refused) if refused.code() != ErrorCode::Internal => {
            let code = actix_web::ResponseError::status_code(&refused);
            let problem = problem(state, language, "me_errors", &refused).message;
            Ok(status_page(state, me, language, code, Some(problem)).await)
        }
        Err(internal) => Err(internal),
    }
}

#[derive(Serialize)]
struct ChoicesView<'a> {
    vaccines: Vec<VaccineChoice<'a>>,
    max_distance_km: String,
    email: String,
    problem: Option<String>,
}

#[derive(Serialize)]
struct VaccineChoice<'a> {
    code: &'a str,
    name: &'a Label,
    chosen: bool,
}

/// `GET /me/choices`: the choices a person may change, as a form.
pub async fn choices(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    let language = query.language();
    let Some(me) = signed_in(&state, &request).await else {
        return Ok(back_to_me(language));
    };
    let me = me?;
    let region = me.region_id.clone();
    let current = my_status::status(&state, me).await?.choices;
    let entered = Entered {
        vaccines: current.accepted_vaccines,
        max_distance_km: current.max_distance_km.to_string(),
        email: current.email.unwrap_or_default(),
    };
    show_choices(&state, &region, language, StatusCode::OK, entered, None).await
}

/// The choices form's fields; read by hand because a form repeats `vaccine` per checkbox.
struct Entered {
    vaccines: Vec<String>,
    max_distance_km: String,
    email: String,
}

async fn show_choices(
    state: &AppState,
    region: &str,
    language: Language,
    status: StatusCode,
    entered: Entered,
    problem: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let published = rules::policy(state, region).await?;
    let view = ChoicesView {
        vaccines: published
            .policy
            .vaccines
            .iter()
            .map(|vaccine| VaccineChoice {
                code: &vaccine.code,
                name: &vaccine.name,
                chosen: entered.vaccines.contains(&vaccine.code),
            })
            .collect(),
        max_distance_km: entered.max_distance_km,
        email: entered.email,
        problem,
    };
    let mut response = state.templates.page("me_choices.html", language, view)?;
    *response.status_mut() = status;
    Ok(response)
}

/// `POST /me/choices`: saves the choices, and the page's language for the person's messages;
/// they count from the next draw on.
pub async fn change_choices(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: LanguageQuery,
    fields: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let language = query.language();
    let Some(me) = signed_in(&state, &request).await else {
        return Ok(back_to_me(language));
    };
    let me = me?;
    let mut entered = Entered {
        vaccines: Vec::new(),
        max_distance_km: String::new(),
        email: String::new(),
    };
    for (key, value) in fields.into_inner() {
        match key.as_str() {
            "vaccine" => entered.vaccines.push(value),
            "max_distance_km" => entered.max_distance_km = value,
            "email" => entered.email = value,
            _ => {}
        }
    }
    let email = entered.email.trim();
    let changes = entered
        .max_distance_km
        .trim()
        .parse()
        .map_err(|_| ApiError::invalid("max_distance_km", "Please enter a number."))
        .map(|distance| Changes {
            accepted_vaccines: Some(entered.vaccines.clone()),
            max_distance_km: Some(distance),
            email: Some(Some(email.to_owned()).filter(|email| !email.is_empty())),
            language: Some(language),
        });
    let region = me.region_id.clone();
    let changed = match changes {
        Ok(changes) => my_status::change(&state, me, changes).await.map(|_| ()),
        Err(refused) => Err(refused),
    };
    match changed {
        Ok(()) => Ok(back_to_me(language)),
        Err(refused) if refused.code() == ErrorCode::InvalidField => {
            let status = actix_web::ResponseError::status_code(&refused);
            let problem = problem(&state, language, "register_errors", &refused).message;
            show_choices(&state, &region, language, status, entered, Some(problem)).await
        }
        Err(other) => Err(other),
    }
}

#[derive(Serialize)]
struct ConfirmView {
    /// `cancel` or `withdraw`: what is to be confirmed.
    what: &'static str,
}

/// `GET /me/cancel`: asks before a booking is cancelled.
pub async fn confirm_cancel(
    state: web::Data<AppState>,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    state.templates.page(
        "me_confirm.html",
        query.language(),
        ConfirmView { what: "cancel" },
    )
}

/// `GET /me/withdraw`: asks before a registration is withdrawn.
pub async fn confirm_withdraw(
    state: web::Data<AppState>,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    state.templates.page(
        "me_confirm.html",
        query.language(),
        ConfirmView { what: "withdraw" },
    )
}

/// `POST /me/cancel`: cancels the booking; both appointments go to someone else.
pub async fn cancel(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &request, &query, Request::Cancel).await
}

/// `POST /me/withdraw`: withdraws the registration, erasing its personal data, and signs out.
pub async fn withdraw(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    let language = query.language();
    let Some(me) = signed_in(&state, &request).await else {
        return Ok(back_to_me(language));
    };
    act(&state, &me?, &Acting::Registrant, Request::Withdraw).await?;
    let mut response =
        state
            .templates
            .page("me_confirm.html", language, ConfirmView { what: "withdrawn" })?;
    let _ = response.add_removal_cookie(&my_session::cookie(&state, "", 0));
    Ok(response)
}
