//! Server-rendered pages: plain, accessible HTML that works without JavaScript, in the
//! language `extract::LanguageQuery` finds (the link's, the one chosen before, the browser's). The policy page publishes the rules in full, so nothing
//! that decides who gets an appointment is hidden in code. Each handler fills a view struct
//! that a template in `gateway/templates/` shows (see `templates`).

use actix_web::{web, HttpResponse};
use drawbridge_domain::allocation::policy::Vaccine;
use drawbridge_domain::{Evaluation, Label, Language, Policy, RoomMode};
use drawbridge_platform::policies::PublishedPolicy;
use serde::Serialize;

use super::extract::LanguageQuery;
use crate::error::{ApiError, ErrorCode};
use crate::templates::Templates;
use crate::use_cases::rules::{self, EligibilityQuestion, RegionSummary};
use crate::AppState;

#[derive(Serialize)]
struct IndexView {
    regions: Vec<RegionSummary>,
}

pub async fn index(state: web::Data<AppState>, query: LanguageQuery) -> Result<HttpResponse, ApiError> {
    let regions = rules::regions(&state).await?;
    state
        .templates
        .page("index.html", query.language(), IndexView { regions })
}

pub async fn policy(
    state: web::Data<AppState>,
    region: web::Path<String>,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    let published = rules::policy(&state, &region).await?;
    state
        .templates
        .page("policy.html", query.language(), PolicyView::of(&published))
}

#[derive(Serialize)]
struct PolicyView<'a> {
    region: &'a str,
    /// Labels in every language: the template shows the page's.
    name: &'a Label,
    version: u32,
    published_at: String,
    digest: &'a str,
    groups: Vec<GroupView<'a>>,
    vaccines: &'a [Vaccine],
    draw: DrawView,
}

#[derive(Serialize)]
struct GroupView<'a> {
    id: u8,
    name: &'a Label,
    released_on: String,
    tier: u32,
    /// Numbers as Rust writes them (`1`, not `1.0`).
    weight: String,
}

#[derive(Serialize)]
struct DrawView {
    waiting_time_weight_per_week: String,
    offer_window_minutes: u32,
    short_notice_hours: u32,
    short_notice_window_minutes: u32,
}

impl<'a> PolicyView<'a> {
    fn of(published: &'a PublishedPolicy) -> Self {
        let policy: &Policy = &published.policy;
        let draw = &policy.draw;
        PolicyView {
            region: &published.region,
            name: &policy.name,
            version: published.version,
            published_at: published.published_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            digest: &published.digest,
            groups: policy
                .groups
                .iter()
                .map(|g| GroupView {
                    id: g.id,
                    name: &g.name,
                    released_on: g.released_on.to_string(),
                    tier: g.tier,
                    weight: g.weight.to_string(),
                })
                .collect(),
            vaccines: &policy.vaccines,
            draw: DrawView {
                waiting_time_weight_per_week: draw.waiting_time_weight_per_week.to_string(),
                offer_window_minutes: draw.offer_window_minutes,
                short_notice_hours: draw.short_notice_hours,
                short_notice_window_minutes: draw.short_notice_window_minutes,
            },
        }
    }
}

/// The check form's fields; read by hand because a form repeats `vaccine` once per checkbox.
/// A number left empty is not answered yet.
struct CheckQuery {
    lang: Option<String>,
    birth_year: Option<i32>,
    priority_group: Option<u8>,
    postcode: Option<String>,
    vaccine: Vec<String>,
    /// What to say about an answer that is not a number, which the page shows.
    unreadable: Option<&'static str>,
}

#[derive(Serialize)]
struct CheckView<'a> {
    birth_year: Option<i32>,
    postcode: &'a str,
    groups: Vec<GroupChoice<'a>>,
    vaccines: Vec<VaccineChoice<'a>>,
    /// Why the answers cannot be checked.
    error: Option<String>,
    /// The result, once every answer is given.
    decisions: Vec<DecisionView<'a>>,
}

#[derive(Serialize)]
struct GroupChoice<'a> {
    id: u8,
    name: &'a Label,
    selected: bool,
}

#[derive(Serialize)]
struct VaccineChoice<'a> {
    code: &'a str,
    name: &'a Label,
    checked: bool,
}

#[derive(Serialize)]
struct DecisionView<'a> {
    vaccine: &'a str,
    eligible: bool,
    reasons: Vec<ReasonView<'a>>,
}

#[derive(Serialize)]
struct ReasonView<'a> {
    passed: bool,
    text: &'a str,
}

/// The eligibility check as a form: the same evaluation as the API, rendered with every reason.
pub async fn check(
    state: web::Data<AppState>,
    region: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let query = parse_check_query(query.into_inner());
    let language = query
        .lang
        .as_deref()
        .and_then(Language::parse)
        .unwrap_or_default();
    let published = rules::policy(&state, &region).await?;
    let policy = &published.policy;
    let mut error = query.unreadable.map(str::to_owned);
    let mut evaluation = None;
    if let (None, Some(birth_year), Some(priority_group), Some(postcode)) = (
        query.unreadable,
        query.birth_year,
        query.priority_group,
        &query.postcode,
    ) {
        let question = EligibilityQuestion {
            birth_year,
            priority_group,
            postcode: postcode.clone(),
            accepted_vaccines: query.vaccine.clone(),
            on: None,
        };
        match rules::eligibility(&state, &region, question).await {
            Ok(answer) => evaluation = Some(answer),
            Err(refused) if refused.code() == ErrorCode::InvalidField => {
                error = Some(refused.public_message())
            }
            Err(other) => return Err(other),
        }
    }
    let view = CheckView {
        birth_year: query.birth_year,
        postcode: query.postcode.as_deref().unwrap_or(""),
        groups: policy
            .groups
            .iter()
            .map(|g| GroupChoice {
                id: g.id,
                name: &g.name,
                selected: query.priority_group == Some(g.id),
            })
            .collect(),
        vaccines: policy
            .vaccines
            .iter()
            .map(|v| VaccineChoice {
                code: &v.code,
                name: &v.name,
                checked: query.vaccine.is_empty() || query.vaccine.contains(&v.code),
            })
            .collect(),
        error,
        decisions: evaluation
            .as_ref()
            .map(|evaluation| decisions(language, policy, evaluation))
            .unwrap_or_default(),
    };
    state.templates.page("check.html", language, view)
}

fn parse_check_query(pairs: Vec<(String, String)>) -> CheckQuery {
    let mut query = CheckQuery {
        lang: None,
        birth_year: None,
        priority_group: None,
        postcode: None,
        vaccine: Vec::new(),
        unreadable: None,
    };
    for (key, value) in pairs {
        match key.as_str() {
            "lang" => query.lang = Some(value),
            "birth_year" => {
                query.birth_year = number(
                    &value,
                    &mut query.unreadable,
                    "Please give your birth year as a number, like 1956.",
                )
            }
            "priority_group" => {
                query.priority_group = number(
                    &value,
                    &mut query.unreadable,
                    "Please choose your priority group from the list.",
                )
            }
            "postcode" => query.postcode = Some(value),
            "vaccine" => query.vaccine.push(value),
            _ => {}
        }
    }
    query
}

/// The number in a form's answer; empty is no answer, anything else notes `complaint`.
fn number<T: std::str::FromStr>(
    value: &str,
    unreadable: &mut Option<&'static str>,
    complaint: &'static str,
) -> Option<T> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let number = value.parse().ok();
    if number.is_none() {
        unreadable.get_or_insert(complaint);
    }
    number
}

fn decisions<'a>(
    language: Language,
    policy: &'a Policy,
    evaluation: &'a Evaluation,
) -> Vec<DecisionView<'a>> {
    evaluation
        .vaccines
        .iter()
        .map(|decision| DecisionView {
            vaccine: policy
                .vaccine(&decision.vaccine)
                .map_or(decision.vaccine.as_str(), |v| v.name.get(language)),
            eligible: decision.eligible,
            reasons: decision
                .reasons
                .iter()
                .map(|r| ReasonView {
                    passed: r.passed,
                    text: r.text(language),
                })
                .collect(),
        })
        .collect()
}

#[derive(Serialize)]
struct WaitingPage<'a> {
    room: &'a str,
    /// Places are drawn by lot in every draw, rather than by arrival after opening.
    random: bool,
    difficulty: u8,
}

/// The waiting page `GET /rooms/{room}`. Its script (`static/waiting-room.js`) joins, solves
/// the proof of work when the room asks for one, shows position and estimated wait, polls when
/// the server says, and moves on once admitted; it reads the room, the difficulty and its texts
/// from the page.
pub async fn waiting_room(
    state: web::Data<AppState>,
    room: web::Path<String>,
    query: LanguageQuery,
) -> Result<HttpResponse, ApiError> {
    let view = state.rooms.room(&room)?;
    let page = WaitingPage {
        room: &view.name,
        random: matches!(view.config.mode, RoomMode::Random),
        difficulty: view.config.pow_difficulty,
    };
    state.templates.page("room.html", query.language(), page)
}

/// `GET /static/{file}`: a stylesheet or script, by the hashed name the pages link.
pub async fn static_file(
    state: web::Data<AppState>,
    file: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .templates
        .asset(&file)
        .map(Templates::asset_response)
        .ok_or_else(|| ApiError::not_found(format!("There is no static file {file}.")))
}
