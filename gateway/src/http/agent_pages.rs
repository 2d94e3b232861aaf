//! The call-centre console, `/staff/callers`: an agent registers callers (several people on one
//! phone, the booking code read back from the page with a spelling aid), finds a caller by
//! booking code or by booking reference and birth year, sees their status with the reasons in
//! the caller's language as well, answers their offer, cancels, withdraws, sends a new booking
//! code or the pass again, and reads the region's open capacity. Keyboard first: each page puts
//! the cursor where the agent types next, and each action is one form. The use cases and their
//! audit entries are those of `/v1/callcentre`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use drawbridge_domain::language::when;
use drawbridge_domain::{BookingReference, Label, Language};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::console::Console;
use super::refusal::{problem, Problem};
use super::registration_form::{
    groups, read_form, registration_form, vaccines, Choice, Entered, DISTANCE_KM,
};
use super::status_view::{reasons, StatusView};
use crate::error::{ApiError, ErrorCode};
use crate::use_cases::call_centre::{self, Caller};
use crate::use_cases::register;
use crate::use_cases::{act, rules, Acting, Request};
use crate::AppState;

/// Where agents find callers: the console's own page.
const DESK: &str = "/staff/callers";

#[derive(Serialize, Default)]
struct DeskView {
    /// What the agent typed, kept when it found nobody.
    query: String,
    birth_year: String,
    problems: Vec<Problem>,
    /// What was just done, said once.
    done: Option<String>,
}

/// `?done=...`: what an action just did, said on the page it leads to.
#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

impl Done {
    /// The sentence for it, if it is one the console says.
    fn said(&self, state: &AppState, console: &Console) -> Option<String> {
        done_text(state, console, self.done.as_deref()?)
    }
}

/// `GET /staff/callers`: find a caller, or register one.
pub async fn desk(state: web::Data<AppState>, done: web::Query<Done>, console: Console) -> HttpResponse {
    let view = DeskView {
        done: done.said(&state, &console),
        ..DeskView::default()
    };
    console.page(&state, "agent_desk.html", StatusCode::OK, view)
}

#[derive(Deserialize)]
pub struct FindForm {
    csrf: String,
    /// A booking code, or a booking reference (`B-1A2B-3C4D`).
    query: String,
    #[serde(default)]
    birth_year: String,
}

/// `POST /staff/callers/find`: the caller with this booking code, or this booking reference and
/// birth year.
pub async fn find(state: web::Data<AppState>, form: web::Form<FindForm>, console: Console) -> HttpResponse {
    let form = form.into_inner();
    let found = match console.check_form(&form.csrf) {
        Err(refused) => Err(refused),
        Ok(()) => {
            let caller = if BookingReference::id_range(&form.query).is_some() {
                match form.birth_year.trim().parse() {
                    Ok(birth_year) => Ok(Caller::Reference {
                        reference: &form.query,
                        birth_year,
                    }),
                    Err(_) => Err(ApiError::invalid(
                        "birth_year",
                        "With a booking reference, please ask for the birth year too.",
                    )),
                }
            } else {
                Ok(Caller::BookingCode(&form.query))
            };
            match caller {
                Ok(caller) => call_centre::find(&state, &console.member, caller).await,
                Err(refused) => Err(refused),
            }
        }
    };
    match found {
        Ok(id) => console.see_other(&format!("{DESK}/{id}")),
        Err(refused) if refused.code() == ErrorCode::FormExpired => console.refused(&state, DESK, &refused),
        Err(refused) => {
            let view = DeskView {
                problems: vec![problem(&state, console.language, "agent_errors", &refused)],
                query: form.query,
                birth_year: form.birth_year,
                done: None,
            };
            console.page(
                &state,
                "agent_desk.html",
                actix_web::ResponseError::status_code(&refused),
                view,
            )
        }
    }
}

#[derive(Serialize)]
struct RegisterView<'a> {
    groups: Vec<Choice<'a>>,
    vaccines: Vec<Choice<'a>>,
    caller_languages: Vec<CallerLanguage>,
    entered: Entered,
    problems: Vec<Problem>,
    /// Registering another person on a phone just used: the cursor starts at the birth year.
    same_phone: bool,
}

/// A language the caller's messages can be in.
#[derive(Serialize)]
struct CallerLanguage {
    code: &'static str,
    name: &'static str,
    chosen: bool,
}

/// `GET /staff/callers/new`: an empty registration, every vaccine accepted and the usual
/// distance, as most callers answer.
pub async fn new_caller(state: web::Data<AppState>, console: Console) -> HttpResponse {
    let policy = match rules::policy(&state, &console.member.region).await {
        Ok(published) => published,
        Err(error) => return console.refused(&state, DESK, &error),
    };
    let entered = Entered {
        vaccines: policy.policy.vaccines.iter().map(|v| v.code.clone()).collect(),
        max_distance_km: DISTANCE_KM.to_string(),
        language: Language::De.as_str().to_owned(),
        ..Entered::default()
    };
    register_form(&state, &console, entered, Vec::new(), false).await
}

/// `POST /staff/callers/new`: another person on the phone just registered, with what a
/// household shares (phone, postcode, language, vaccines, distance) filled in.
pub async fn another_on_the_phone(
    state: web::Data<AppState>,
    fields: web::Form<Vec<(String, String)>>,
    console: Console,
) -> HttpResponse {
    match entered(&console, fields) {
        Ok(entered) => register_form(&state, &console, entered.household(), Vec::new(), true).await,
        Err(refused) => console.refused(&state, DESK, &refused),
    }
}

/// The registration form's fields, once its CSRF token is the session's.
fn entered(console: &Console, fields: web::Form<Vec<(String, String)>>) -> Result<Entered, ApiError> {
    let fields = fields.into_inner();
    let csrf = fields
        .iter()
        .find(|(key, _)| key == "csrf")
        .map_or("", |(_, value)| value.as_str());
    console.check_form(csrf)?;
    Ok(read_form(fields))
}

async fn register_form(
    state: &AppState,
    console: &Console,
    entered: Entered,
    problems: Vec<Problem>,
    same_phone: bool,
) -> HttpResponse {
    let published = match rules::policy(state, &console.member.region).await {
        Ok(published) => published,
        Err(error) => return console.refused(state, DESK, &error),
    };
    let policy = &published.policy;
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let view = RegisterView {
        groups: groups(policy, &entered),
        vaccines: vaccines(policy, &entered),
        caller_languages: Language::ALL
            .into_iter()
            .map(|language| CallerLanguage {
                code: language.as_str(),
                name: language.own_name(),
                chosen: entered.language == language.as_str(),
            })
            .collect(),
        entered,
        problems,
        same_phone,
    };
    console.page(state, "agent_register.html", status, view)
}

#[derive(Serialize)]
struct RegisteredView {
    registration: Uuid,
    /// The booking code in its groups, each character with its spelling word.
    booking_code: String,
    spelled: Vec<Vec<Spelled>>,
    eligible: bool,
    reasons: Vec<String>,
    /// What another person on the same phone shares.
    household: Entered,
}

/// A character of a code as read out: a letter with its word in the spelling alphabet.
#[derive(Serialize)]
struct Spelled {
    character: char,
    word: Option<String>,
}

/// `code` split into its groups, each letter with its word of the console language's spelling
/// alphabet (`A wie Anton`, `A as in Alfa`), so the agent reads it out the way callers expect.
fn spell(state: &AppState, language: Language, code: &str) -> Vec<Vec<Spelled>> {
    code.split('-')
        .map(|group| {
            group
                .chars()
                .map(|character| Spelled {
                    character,
                    word: character
                        .is_ascii_alphabetic()
                        .then(|| state.templates.text(language, "spelling", &character.to_string()))
                        .flatten(),
                })
                .collect()
        })
        .collect()
}

/// `POST /staff/callers/register`: registers the caller and shows the booking code to read out.
pub async fn register(
    state: web::Data<AppState>,
    fields: web::Form<Vec<(String, String)>>,
    console: Console,
) -> HttpResponse {
    let entered = match entered(&console, fields) {
        Ok(entered) => entered,
        Err(refused) => return console.refused(&state, DESK, &refused),
    };
    let registered = match Language::parse(&entered.language) {
        None => Err(vec![ApiError::invalid(
            "language",
            "Please choose the language of the caller's messages.",
        )]),
        Some(language) => match registration_form(&entered, language) {
            Err(problems) => Err(problems),
            Ok(form) => register::by_phone(&state, &console.member, form)
                .await
                .map_err(|refused| vec![refused]),
        },
    };
    match registered {
        Ok(registered) => {
            let booking_code = registered.booking_code.to_string();
            let view = RegisteredView {
                registration: registered.registration_id,
                spelled: spell(&state, console.language, &booking_code),
                booking_code,
                eligible: registered.eligibility.eligible,
                reasons: reasons(&registered.eligibility, console.language),
                household: entered.household(),
            };
            console.page(&state, "agent_registered.html", StatusCode::CREATED, view)
        }
        Err(refused) => {
            if let Some(internal) = refused.iter().find(|r| r.code() == ErrorCode::Internal) {
                return console.refused(&state, DESK, internal);
            }
            let problems = refused
                .iter()
                .map(|refused| problem(&state, console.language, "agent_errors", refused))
                .collect();
            register_form(&state, &console, entered, problems, false).await
        }
    }
}

#[derive(Serialize)]
struct CallerView {
    id: Uuid,
    done: Option<String>,
    problem: Option<String>,
    /// A booking code just made, to read out.
    booking_code: Option<String>,
    spelled: Vec<Vec<Spelled>>,
    status: StatusView,
    caller: CallerLanguageView,
    pseudonym: String,
}

/// What the caller hears, in their own language when it is not the console's.
#[derive(Serialize)]
struct CallerLanguageView {
    code: String,
    name: &'static str,
    dir: &'static str,
    /// Set when the caller's language is not the console's.
    other: bool,
    next: String,
    reasons: Vec<String>,
}

/// `GET /staff/callers/{id}`.
pub async fn caller(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    done: web::Query<Done>,
    console: Console,
) -> HttpResponse {
    let done = done.said(&state, &console);
    caller_page(
        &state,
        &console,
        *id,
        StatusCode::OK,
        CallerNote {
            done,
            ..CallerNote::default()
        },
    )
    .await
}

/// What the caller's page says above the status.
#[derive(Default)]
struct CallerNote {
    done: Option<String>,
    problem: Option<String>,
    booking_code: Option<String>,
}

async fn caller_page(
    state: &AppState,
    console: &Console,
    id: Uuid,
    code: StatusCode,
    note: CallerNote,
) -> HttpResponse {
    let caller = match call_centre::view(state, &console.member, id).await {
        Ok(caller) => caller,
        Err(refused) => return console.refused(state, DESK, &refused),
    };
    let status = caller.status;
    let language = Language::parse(&status.language).unwrap_or_default();
    let view = CallerView {
        id,
        done: note.done,
        problem: note.problem,
        spelled: note
            .booking_code
            .as_deref()
            .map(|code| spell(state, console.language, code))
            .unwrap_or_default(),
        booking_code: note.booking_code,
        pseudonym: status.pseudonym.clone(),
        caller: CallerLanguageView {
            code: language.as_str().to_owned(),
            name: language.own_name(),
            dir: language.direction().as_str(),
            other: language != console.language,
            next: status.next.clone(),
            reasons: reasons(&status.eligibility, language),
        },
        status: StatusView::of(status, console.language, &caller.timezone),
    };
    console.page(state, "agent_caller.html", code, view)
}

#[derive(Deserialize)]
pub struct ActionForm {
    csrf: String,
    /// Ticked by the agent once the caller said yes to what cannot be undone.
    #[serde(default)]
    confirmed: Option<String>,
}

/// What an agent does for a caller, by its path.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Accept,
    Decline,
    Cancel,
    Withdraw,
    BookingCode,
    Pass,
}

/// `POST /staff/callers/{id}/{action}`: does it and shows the caller again, saying what was done.
pub async fn action(
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Action)>,
    form: web::Form<ActionForm>,
    console: Console,
) -> HttpResponse {
    let (id, action) = path.into_inner();
    let back = format!("{DESK}/{id}");
    if let Err(refused) = console.check_form(&form.csrf) {
        return console.refused(&state, &back, &refused);
    }
    let confirmed = form.confirmed.is_some();
    let member = &console.member;
    let done: Result<CallerNote, ApiError> = async {
        let request = match action {
            Action::Accept => Request::Accept,
            Action::Decline => Request::Decline,
            Action::Cancel | Action::Withdraw if !confirmed => {
                return Err(ApiError::invalid(
                    "confirmed",
                    "Please tick the box once the caller has confirmed; this cannot be undone.",
                ))
            }
            Action::Cancel => Request::Cancel,
            Action::Withdraw => Request::Withdraw,
            Action::BookingCode => {
                let code = call_centre::new_booking_code(&state, member, id).await?;
                return Ok(CallerNote {
                    done: done_text(&state, &console, "booking_code"),
                    booking_code: Some(code.to_string()),
                    ..CallerNote::default()
                });
            }
            Action::Pass => {
                call_centre::send_pass_again(&state, member, id).await?;
                return Ok(CallerNote {
                    done: done_text(&state, &console, "pass"),
                    ..CallerNote::default()
                });
            }
        };
        let caller = call_centre::caller(&state, member, id).await?;
        act(&state, &caller, &Acting::Staff(member), request).await?;
        Ok(CallerNote {
            done: done_text(&state, &console, request_key(request)),
            ..CallerNote::default()
        })
    }
    .await;
    match done {
        // Withdrawn: the caller is gone; back to the desk, saying so.
        Ok(_) if matches!(action, Action::Withdraw) => console.see_other(&format!("{DESK}?done=withdrawn")),
        Ok(note) if note.booking_code.is_some() => {
            caller_page(&state, &console, id, StatusCode::OK, note).await
        }
        Ok(_) => console.see_other(&format!("{back}?done={}", action_key(action))),
        Err(refused) if refused.code() == ErrorCode::Internal => console.refused(&state, &back, &refused),
        Err(refused) => {
            let note = CallerNote {
                problem: Some(problem(&state, console.language, "agent_errors", &refused).message),
                ..CallerNote::default()
            };
            caller_page(
                &state,
                &console,
                id,
                actix_web::ResponseError::status_code(&refused),
                note,
            )
            .await
        }
    }
}

fn request_key(request: Request) -> &'static str {
    match request {
        Request::Accept => "accept",
        Request::Decline => "decline",
        Request::Cancel => "cancel",
        Request::Withdraw => "withdrawn",
    }
}

fn action_key(action: Action) -> &'static str {
    match action {
        Action::Accept => "accept",
        Action::Decline => "decline",
        Action::Cancel => "cancel",
        Action::Withdraw => "withdrawn",
        Action::BookingCode => "booking_code",
        Action::Pass => "pass",
    }
}

fn done_text(state: &AppState, console: &Console, key: &str) -> Option<String> {
    state.templates.text(console.language, "agent_done", key)
}

#[derive(Serialize)]
struct CapacityView {
    region: String,
    weeks: Vec<WeekView>,
    waiting: Vec<WaitingView>,
    last_draw: Option<LastDrawView>,
}

#[derive(Serialize)]
struct WeekView {
    week: String,
    centre: String,
    vaccine: Label,
    open: i64,
    offered: i64,
    booked: i64,
}

#[derive(Serialize)]
struct WaitingView {
    group: i16,
    name: Option<Label>,
    waiting: i64,
    offered: i64,
}

#[derive(Serialize)]
struct LastDrawView {
    completed: String,
    pool: Option<i64>,
    offered: i64,
}

/// `GET /staff/capacity`: the region's appointments from now on by week, centre and vaccine,
/// and the people waiting per priority group, to answer "when will I get something?".
pub async fn capacity(state: web::Data<AppState>, console: Console) -> HttpResponse {
    let capacity = match call_centre::region_capacity(&state, &console.member, Utc::now()).await {
        Ok(capacity) => capacity,
        Err(refused) => return console.refused(&state, "/staff", &refused),
    };
    // Names come from the region's rules; a region without published rules shows codes.
    let published = match rules::policy(&state, &capacity.region).await {
        Ok(published) => Some(published),
        Err(refused) if refused.code() == ErrorCode::NotFound => None,
        Err(refused) => return console.refused(&state, "/staff", &refused),
    };
    let policy = published.as_ref().map(|published| &published.policy);
    let view = CapacityView {
        weeks: capacity
            .weeks
            .into_iter()
            .map(|week| WeekView {
                week: week.week.format("%d.%m.%Y").to_string(),
                centre: week.centre,
                vaccine: policy.map_or_else(
                    || Label::same(&week.vaccine),
                    |policy| policy.vaccine_name(&week.vaccine),
                ),
                open: week.open,
                offered: week.offered,
                booked: week.booked,
            })
            .collect(),
        waiting: capacity
            .waiting
            .into_iter()
            .map(|waiting| WaitingView {
                name: u8::try_from(waiting.priority_group)
                    .ok()
                    .zip(policy)
                    .and_then(|(group, policy)| policy.group(group))
                    .map(|group| group.name.clone()),
                group: waiting.priority_group,
                waiting: waiting.waiting,
                offered: waiting.offered,
            })
            .collect(),
        last_draw: capacity.last_draw.map(|draw| LastDrawView {
            completed: when(draw.completed_at, &draw.timezone, console.language),
            pool: draw.pool,
            offered: draw.offered,
        }),
        region: capacity.region,
    };
    console.page(&state, "agent_capacity.html", StatusCode::OK, view)
}
