//! A registrant's status as the pages show it, in the page's language: `/me` to the person,
//! the call-centre console to an agent on the phone with them.

use drawbridge_domain::allocation::draw::LotteryKey;
use drawbridge_domain::language::when;
use drawbridge_domain::{Evaluation, Language};
use serde::Serialize;

use crate::use_cases::my_status::{self, MyStatus};

/// The reasons `evaluation` did not pass, in `language`.
pub fn reasons(evaluation: &Evaluation, language: Language) -> Vec<String> {
    evaluation
        .vaccines
        .iter()
        .flat_map(|decision| decision.reasons.iter())
        .filter(|reason| !reason.passed)
        .map(|reason| reason.text(language).to_owned())
        .collect()
}

#[derive(Serialize)]
pub struct StatusView {
    next_step: &'static str,
    eligible: bool,
    reasons: Vec<String>,
    offer: Option<OfferView>,
    booking: Option<BookingView>,
    draws: Vec<DrawView>,
    choices: my_status::MyChoices,
}

#[derive(Serialize)]
struct OfferView {
    vaccine: String,
    centre: String,
    address: String,
    first: String,
    second: Option<String>,
    expires: String,
    /// Minutes left to answer.
    minutes_left: i64,
}

#[derive(Serialize)]
struct BookingView {
    reference: String,
    state: &'static str,
    centre: String,
    first: String,
    second: Option<String>,
    pass_url: String,
}

#[derive(Serialize)]
struct DrawView {
    completed: String,
    pool: Option<i64>,
    lottery_key: Option<LotteryKey>,
    offered: bool,
    manifest: String,
}

impl StatusView {
    pub fn of(status: MyStatus, language: Language, timezone: &str) -> Self {
        let at = |t| when(t, timezone, language);
        let reasons = reasons(&status.eligibility, language);
        StatusView {
            next_step: status.next_step.key(),
            eligible: status.eligibility.eligible,
            reasons,
            offer: status.offer.map(|o| OfferView {
                first: at(o.first_at),
                second: o.second_at.map(at),
                expires: at(o.expires_at),
                minutes_left: (o.expires_at - chrono::Utc::now()).num_minutes().max(0),
                vaccine: o.vaccine,
                centre: o.centre,
                address: o.address,
            }),
            booking: status.booking.map(|b| BookingView {
                first: at(b.booking.first_at),
                second: b.booking.second_at.map(at),
                state: b.booking.state.as_str(),
                centre: b.booking.centre,
                reference: b.reference,
                pass_url: b.pass_url,
            }),
            draws: status
                .draws
                .into_iter()
                .map(|d| DrawView {
                    completed: d.completed_at.map(at).unwrap_or_default(),
                    pool: d.pool,
                    lottery_key: d.lottery_key,
                    offered: d.offered,
                    manifest: d.manifest,
                })
                .collect(),
            choices: status.choices,
        }
    }
}
