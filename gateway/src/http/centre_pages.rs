//! The vaccination centre's console, `/staff/centres/{centre}`: the day's schedule per slot
//! (capacity, offered, booked, checked in), the centre's batches of capacity with a form to
//! withdraw one and what that did, a form to publish capacity that shows the vaccine's dose
//! interval and checks it as one types, and the door: a pass scanned (or its text typed), or the
//! booking reference or code with the birth year, answered in large green or red. Centre staff
//! run their own centre, region admins any centre of their region; the use cases and audit
//! entries are those of `/v1/centres`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{Duration, NaiveDate, NaiveTime, Utc};
use drawbridge_domain::language::when;
use drawbridge_domain::{BookingCode, CapacityRequest, Dose, Label};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::console::{Console, TIMEZONE};
use super::refusal::{problem, Problem};
use crate::error::{ApiError, ErrorCode};
use crate::use_cases::check_in::{self, Presented};
use crate::use_cases::{capacity, rules};
use crate::AppState;

/// `?date=`: the day to show, today in the service's time zone by default.
#[derive(Deserialize)]
pub struct DayQuery {
    date: Option<NaiveDate>,
    done: Option<String>,
}

fn today() -> NaiveDate {
    let zone: chrono_tz::Tz = TIMEZONE.parse().expect("the service's time zone is known");
    Utc::now().with_timezone(&zone).date_naive()
}

#[derive(Serialize)]
struct DayView {
    centre: String,
    date: NaiveDate,
    day: String,
    previous: NaiveDate,
    next: NaiveDate,
    done: Option<String>,
    slots: Vec<SlotView>,
    totals: Totals,
    batches: Vec<BatchView>,
}

#[derive(Serialize, Default)]
struct Totals {
    capacity: u32,
    offered: u32,
    booked: u32,
    checked_in: u32,
}

#[derive(Serialize)]
struct SlotView {
    time: String,
    vaccine: Label,
    dose: String,
    capacity: u32,
    open: u32,
    offered: u32,
    booked: u32,
    checked_in: u32,
    cancelled: u32,
}

/// A batch of capacity, from the day shown on.
#[derive(Serialize)]
struct BatchView {
    id: Uuid,
    day: String,
    hours: String,
    vaccine: Label,
    pairs: i32,
    open: i64,
    offered: i64,
    booked: i64,
    cancelled: Option<String>,
}

/// `GET /staff/centres/{centre}`: the day's schedule and the centre's batches from that day.
pub async fn day(
    state: web::Data<AppState>,
    centre: web::Path<String>,
    query: web::Query<DayQuery>,
    console: Console,
) -> HttpResponse {
    let date = query.date.unwrap_or_else(today);
    let member = &console.member;
    let found = async {
        let schedule = capacity::schedule(&state, member, &centre, date).await?;
        let batches = capacity::batches(&state, member, &centre, date).await?;
        let published = rules::policy(&state, &member.region).await?;
        Ok::<_, ApiError>((schedule, batches, published))
    }
    .await;
    let (schedule, batches, published) = match found {
        Ok(found) => found,
        Err(refused) => return console.refused(&state, "/staff", &refused),
    };
    let policy = &published.policy;
    let mut totals = Totals::default();
    let slots = schedule
        .slots
        .into_iter()
        .map(|slot| {
            let checked_in = slot.bookings.iter().filter(|b| b.checked_in_at.is_some()).count() as u32;
            totals.capacity += slot.capacity;
            totals.offered += slot.offered;
            totals.booked += slot.booked;
            totals.checked_in += checked_in;
            SlotView {
                time: slot.at.format("%H:%M").to_string(),
                vaccine: policy.vaccine_name(&slot.vaccine),
                dose: slot.dose,
                capacity: slot.capacity,
                open: slot.open,
                offered: slot.offered,
                booked: slot.booked,
                checked_in,
                cancelled: slot.cancelled,
            }
        })
        .collect();
    let view = DayView {
        day: date.format("%d.%m.%Y").to_string(),
        previous: date - Duration::days(1),
        next: date + Duration::days(1),
        done: query
            .done
            .as_deref()
            .and_then(|key| state.templates.text(console.language, "centre_done", key)),
        slots,
        totals,
        batches: batches
            .into_iter()
            .map(|batch| BatchView {
                id: batch.id,
                day: batch.day.format("%d.%m.%Y").to_string(),
                hours: format!(
                    "{}–{}",
                    short_time(&batch.from_time),
                    short_time(&batch.until_time)
                ),
                vaccine: policy.vaccine_name(&batch.vaccine),
                pairs: batch.pairs,
                open: batch.open,
                offered: batch.offered,
                booked: batch.booked,
                cancelled: batch.cancelled_at.map(|at| {
                    format!(
                        "{} ({})",
                        when(at, TIMEZONE, console.language),
                        batch.cancel_reason.unwrap_or_default()
                    )
                }),
            })
            .collect(),
        centre: schedule.centre,
        date,
    };
    console.page(&state, "centre_day.html", StatusCode::OK, view)
}

/// `09:00:00` → `09:00`.
fn short_time(time: &str) -> &str {
    time.get(..5).unwrap_or(time)
}

/// What was typed into the publish form, shown again when refused.
#[derive(Serialize, Deserialize, Default)]
pub struct CapacityForm {
    csrf: String,
    /// Makes a form sent twice publish once.
    #[serde(default)]
    key: String,
    #[serde(default)]
    vaccine: String,
    #[serde(default)]
    day: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    slot_minutes: String,
    #[serde(default)]
    people_per_slot: String,
    #[serde(default)]
    second_dose_after_days: String,
}

#[derive(Serialize)]
struct PublishView<'a> {
    centre: &'a str,
    entered: CapacityForm,
    vaccines: Vec<VaccineRule<'a>>,
    problems: Vec<Problem>,
}

/// A vaccine with the dose interval its capacity must keep.
#[derive(Serialize)]
struct VaccineRule<'a> {
    code: &'a str,
    name: &'a Label,
    doses: u8,
    min_days: Option<u32>,
    max_days: Option<u32>,
}

/// `GET /staff/centres/{centre}/publish`.
pub async fn publish_form(
    state: web::Data<AppState>,
    centre: web::Path<String>,
    console: Console,
) -> HttpResponse {
    let entered = CapacityForm {
        key: Uuid::new_v4().to_string(),
        day: (today() + Duration::days(1)).to_string(),
        from: "09:00".to_owned(),
        until: "17:00".to_owned(),
        slot_minutes: "10".to_owned(),
        people_per_slot: "4".to_owned(),
        ..CapacityForm::default()
    };
    show_publish_form(&state, &console, &centre, entered, Vec::new()).await
}

async fn show_publish_form(
    state: &AppState,
    console: &Console,
    centre: &str,
    entered: CapacityForm,
    problems: Vec<Problem>,
) -> HttpResponse {
    let given = match capacity::centre(state, &console.member, centre).await {
        Ok(given) => given,
        Err(refused) => return console.refused(state, "/staff", &refused),
    };
    let published = match rules::policy(state, &console.member.region).await {
        Ok(published) => published,
        Err(refused) => return console.refused(state, "/staff", &refused),
    };
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let view = PublishView {
        centre,
        entered,
        vaccines: published
            .policy
            .vaccines
            .iter()
            .filter(|vaccine| given.gives(&vaccine.code))
            .map(|vaccine| VaccineRule {
                code: &vaccine.code,
                name: &vaccine.name,
                doses: vaccine.doses,
                min_days: vaccine.interval_days.map(|window| u32::from(window.min)),
                max_days: vaccine.interval_days.map(|window| u32::from(window.max)),
            })
            .collect(),
        problems,
    };
    console.page(state, "centre_publish.html", status, view)
}

/// The capacity the form asks for; each field that is not what it should be is named.
fn capacity_request(form: &CapacityForm) -> Result<CapacityRequest, Vec<ApiError>> {
    let mut problems = Vec::new();
    let mut wrong =
        |field: &'static str, message: &'static str| problems.push(ApiError::invalid(field, message));
    let day = form.day.trim().parse::<NaiveDate>();
    let time = |text: &str| NaiveTime::parse_from_str(text.trim(), "%H:%M");
    let (from, until) = (time(&form.from), time(&form.until));
    let number = |text: &str| text.trim().parse::<u32>();
    let (slot_minutes, people) = (number(&form.slot_minutes), number(&form.people_per_slot));
    let second = match form.second_dose_after_days.trim() {
        "" => Ok(None),
        days => days.parse::<u32>().map(Some),
    };
    if form.vaccine.is_empty() {
        wrong("vaccine", "Please choose the vaccine.");
    }
    if day.is_err() {
        wrong("day", "Please enter the day as a date, like 2021-05-24.");
    }
    if from.is_err() {
        wrong("from", "Please enter a time like 09:00.");
    }
    if until.is_err() {
        wrong("until", "Please enter a time like 17:00.");
    }
    if slot_minutes.is_err() {
        wrong("slot_minutes", "Please enter the minutes of one slot, like 10.");
    }
    if people.is_err() {
        wrong(
            "people_per_slot",
            "Please enter how many people one slot takes, like 4.",
        );
    }
    if second.is_err() {
        wrong(
            "second_dose_after_days",
            "Please enter the days to the second dose as a number, or leave it empty.",
        );
    }
    match (day, from, until, slot_minutes, people, second) {
        (Ok(day), Ok(from), Ok(until), Ok(slot_minutes), Ok(people_per_slot), Ok(second_dose_after_days))
            if problems.is_empty() =>
        {
            Ok(CapacityRequest {
                vaccine: form.vaccine.clone(),
                day,
                from,
                until,
                slot_minutes,
                people_per_slot,
                second_dose_after_days,
            })
        }
        _ => Err(problems),
    }
}

/// `POST /staff/centres/{centre}/publish`: publishes and shows the day, saying so. A form sent
/// twice (its key) publishes once.
pub async fn publish(
    state: web::Data<AppState>,
    centre: web::Path<String>,
    form: web::Form<CapacityForm>,
    console: Console,
) -> HttpResponse {
    let form = form.into_inner();
    if let Err(refused) = console.check_form(&form.csrf) {
        return console.refused(&state, "/staff", &refused);
    }
    let published = match capacity_request(&form) {
        Err(problems) => Err(problems),
        Ok(request) => {
            let day = request.day;
            capacity::publish(&state, &console.member, &centre, Some(&form.key), request)
                .await
                .map(|_| day)
                .map_err(|refused| vec![refused])
        }
    };
    match published {
        Ok(day) => console.see_other(&format!("/staff/centres/{centre}?date={day}&done=published")),
        Err(refused) => {
            if let Some(stop) = refused.iter().find(|r| {
                matches!(
                    r.code(),
                    ErrorCode::Internal | ErrorCode::NotAllowed | ErrorCode::NotFound
                )
            }) {
                return console.refused(&state, "/staff", stop);
            }
            let problems = refused
                .iter()
                .map(|refused| problem(&state, console.language, "centre_errors", refused))
                .collect();
            show_publish_form(&state, &console, &centre, form, problems).await
        }
    }
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    csrf: String,
    reason: String,
}

#[derive(Serialize)]
struct WithdrawnView {
    centre: String,
    withdrawn: capacity::Withdrawn,
}

/// `POST /staff/centres/{centre}/batches/{id}/withdraw`: withdraws a batch and shows what it
/// did: the offers withdrawn, the bookings cancelled by reference, the courses kept.
pub async fn withdraw(
    state: web::Data<AppState>,
    path: web::Path<(String, Uuid)>,
    form: web::Form<WithdrawForm>,
    console: Console,
) -> HttpResponse {
    let (centre, batch) = path.into_inner();
    let back = format!("/staff/centres/{centre}");
    if let Err(refused) = console.check_form(&form.csrf) {
        return console.refused(&state, &back, &refused);
    }
    match capacity::withdraw(&state, &console.member, &centre, batch, &form.reason).await {
        Ok(withdrawn) => console.page(
            &state,
            "centre_withdrawn.html",
            StatusCode::OK,
            WithdrawnView { centre, withdrawn },
        ),
        Err(refused) => console.refused(&state, &back, &refused),
    }
}

#[derive(Serialize, Deserialize, Default)]
pub struct DoorForm {
    csrf: String,
    /// The QR code's content, from the camera or typed.
    #[serde(default)]
    pass: String,
    /// A booking reference or a booking code, with the birth year.
    #[serde(default)]
    reference: String,
    #[serde(default)]
    birth_year: String,
}

#[derive(Serialize)]
struct DoorView<'a> {
    centre: &'a str,
    /// The answer to the last person, in large green or red.
    answer: Option<DoorAnswer>,
    /// The public keys passes are checked with offline.
    keys_url: &'static str,
}

#[derive(Serialize)]
struct DoorAnswer {
    admitted: bool,
    headline: String,
    detail: String,
}

/// `GET /staff/centres/{centre}/door`.
pub async fn door(state: web::Data<AppState>, centre: web::Path<String>, console: Console) -> HttpResponse {
    if let Err(refused) = capacity::centre(&state, &console.member, &centre).await {
        return console.refused(&state, "/staff", &refused);
    }
    door_page(&state, &console, &centre, StatusCode::OK, None)
}

fn door_page(
    state: &AppState,
    console: &Console,
    centre: &str,
    status: StatusCode,
    answer: Option<DoorAnswer>,
) -> HttpResponse {
    let view = DoorView {
        centre,
        answer,
        keys_url: "/.well-known/jwks.json",
    };
    console.page(state, "centre_door.html", status, view)
}

/// `POST /staff/centres/{centre}/door`: checks the person in and answers green, or red with
/// the reason.
pub async fn check_in(
    state: web::Data<AppState>,
    centre: web::Path<String>,
    form: web::Form<DoorForm>,
    console: Console,
) -> HttpResponse {
    if let Err(refused) = console.check_form(&form.csrf) {
        return console.refused(&state, &format!("/staff/centres/{centre}/door"), &refused);
    }
    let checked = match presented(&form) {
        Ok(presented) => check_in::check_in(&state, &console.member, &centre, &presented).await,
        Err(refused) => Err(refused),
    };
    let language = console.language;
    let text = |key: &str| state.templates.text(language, "door", key).unwrap_or_default();
    let (status, answer) = match checked {
        Ok(checked) => (
            StatusCode::OK,
            DoorAnswer {
                admitted: true,
                headline: text(match checked.dose {
                    Dose::First => "dose_first",
                    Dose::Second => "dose_second",
                }),
                detail: match checked.second_at {
                    Some(at) => {
                        text("come_back").replace("{when}", &when(at, TIMEZONE, language))
                            + " "
                            + &text("booking").replace("{reference}", &checked.booking)
                    }
                    None => text("booking").replace("{reference}", &checked.booking),
                },
            },
        ),
        Err(refused) if refused.code() == ErrorCode::Internal => {
            return console.refused(&state, &format!("/staff/centres/{centre}/door"), &refused)
        }
        Err(refused) => (
            actix_web::ResponseError::status_code(&refused),
            DoorAnswer {
                admitted: false,
                headline: text("refused"),
                detail: problem(&state, language, "door_errors", &refused).message,
            },
        ),
    };
    door_page(&state, &console, &centre, status, Some(answer))
}

/// What the door form presents: the pass, else a booking code or reference with the birth year.
fn presented(form: &DoorForm) -> Result<Presented<'_>, ApiError> {
    let pass = form.pass.trim();
    if !pass.is_empty() {
        return Ok(Presented::Pass(pass));
    }
    let typed = form.reference.trim();
    if typed.is_empty() {
        return Err(ApiError::invalid(
            "reference",
            "Scan the pass, or type the booking reference or booking code with the birth year.",
        ));
    }
    let birth_year =
        form.birth_year.trim().parse().map_err(|_| {
            ApiError::invalid("birth_year", "Ask for the birth year: four digits, like 1956.")
        })?;
    Ok(if BookingCode::parse(typed).is_ok() {
        Presented::BookingCode {
            code: typed,
            birth_year,
        }
    } else {
        Presented::Reference {
            reference: typed,
            birth_year,
        }
    })
}

/// The region's centres, for a region admin to choose one (centre staff go to their own).
pub async fn centres(state: web::Data<AppState>, console: Console) -> HttpResponse {
    if let Some(own) = &console.member.centre {
        return console.see_other(&format!("/staff/centres/{own}"));
    }
    match capacity::centres(&state, &console.member).await {
        Ok(centres) => {
            #[derive(Serialize)]
            struct CentresView {
                centres: Vec<capacity::CentreListed>,
            }
            console.page(
                &state,
                "centre_list.html",
                StatusCode::OK,
                CentresView { centres },
            )
        }
        Err(refused) => console.refused(&state, "/staff", &refused),
    }
}
