//! A registrant's own view, opened with their booking code: status, the reasons for their
//! eligibility, the current offer, the booking, and their pseudonym and lottery key in every
//! recent draw, so they can check each draw themselves against its published manifest; and
//! changing their choices.
//!
//! Booking codes carry 75 random bits, but guessing is still rate-limited in Redis (shared by
//! all gateways): per code prefix, counting each try before it is judged and taking back those
//! that succeed, and per client address, counting failures. A wrong code gets the same answer
//! whether or not such a registration exists.

use chrono::{DateTime, Utc};
use drawbridge_domain::allocation::draw::{LotteryKey, Pseudonym};
use drawbridge_domain::{
    evaluate, BookingCode, CheckinPass, DistanceKm, Email, Evaluation, Field, Language, Person,
};
use drawbridge_platform::states::RegistrantStatus;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::answer_offer::{pass_url, reference};
use super::open_field;
use super::register::check_vaccines;
use crate::error::{ApiError, ErrorCode};
use crate::limits::{Counting, Credential};
use crate::store::registrants::{self, BookingShown, Choices, OfferShown, Registrant};
use crate::AppState;

/// Failed booking codes allowed per code prefix from one client address within the window.
/// Per pair, so guesses at a person's prefix from elsewhere never lock the person out, and
/// people behind one address (a proxy) are never refused for a stranger's guesses at other
/// prefixes. docs/security.md has the arithmetic of why guessing stays infeasible.
const GUESSES_PER_PREFIX_AND_ADDRESS: i64 = 10;
const GUESS_WINDOW_SECONDS: i64 = 15 * 60;

/// How many recent draws of the region the status reports on.
const DRAWS_SHOWN: i64 = 10;

/// The registrant whose booking code is `presented`, within the guessing limits of `address`.
pub async fn sign_in(state: &AppState, presented: &str, address: &str) -> Result<Registrant, ApiError> {
    let prefix = BookingCode::typed_prefix(presented);
    let limits = state.limits.failures(
        Credential::BookingCode,
        &[(
            format!("guesses:prefix:{prefix}:address:{address}"),
            GUESSES_PER_PREFIX_AND_ADDRESS,
            Counting::Target,
        )],
        GUESS_WINDOW_SECONDS,
        "Too many wrong booking codes like this one from here. Please wait and check the code in your SMS.",
    );
    // Counted on the prefix before the code is looked up, so guesses sent at once cannot all
    // be judged.
    limits.attempt().await?;
    let found = match BookingCode::parse(presented) {
        Ok(code) => by_booking_code(state, &code).await?,
        Err(_) => None,
    };
    let Some(registrant) = found else {
        limits.failed().await;
        return Err(ApiError::new(ErrorCode::WrongBookingCode));
    };
    limits.succeeded().await;
    Ok(registrant)
}

/// An active registrant by id (for call-centre agents, who look people up by booking code).
pub async fn load(state: &AppState, id: Uuid) -> Result<Registrant, ApiError> {
    registrants::active_by_id(state.store.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("There is no active registration with this id."))
}

/// The active registrant a booking code opens. No guessing limits here: citizens come through
/// [`sign_in`], staff lookups are audited.
pub async fn by_booking_code(state: &AppState, code: &BookingCode) -> Result<Option<Registrant>, ApiError> {
    let hash = code.keyed_hash(&state.hash_key);
    Ok(registrants::active_by_booking_code(state.store.pool(), hash.as_slice()).await?)
}

/// Everything a registrant (or an agent on the phone with them) needs to know.
#[derive(Serialize)]
pub struct MyStatus {
    pub registration_id: Uuid,
    pub region: String,
    pub status: RegistrantStatus,
    pub language: String,
    pub verified_at: Option<DateTime<Utc>>,
    pub choices: MyChoices,
    pub eligibility: Evaluation,
    pub offer: Option<OfferShown>,
    pub booking: Option<MyBooking>,
    pub pseudonym: String,
    pub draws: Vec<MyDraw>,
    /// What happens next, in a sentence of the person's language.
    pub next: String,
    /// What happens next, for pages in another language.
    pub next_step: NextStep,
}

/// What happens next for a registrant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NextStep {
    ComeWithYourPass,
    AnswerTheOffer,
    WaitForADraw,
    NotYetEligible,
}

impl NextStep {
    /// Its key among the texts' `[next]`.
    pub fn key(self) -> &'static str {
        match self {
            NextStep::ComeWithYourPass => "come_with_your_pass",
            NextStep::AnswerTheOffer => "answer_the_offer",
            NextStep::WaitForADraw => "wait_for_a_draw",
            NextStep::NotYetEligible => "not_yet_eligible",
        }
    }
}

#[derive(Serialize)]
pub struct MyChoices {
    pub birth_year: i32,
    /// Tells this person apart from others registered on the same phone; empty if not given.
    pub initials: String,
    pub priority_group: i16,
    pub postcode: String,
    pub accepted_vaccines: Vec<String>,
    pub max_distance_km: i32,
    pub email: Option<String>,
}

/// The live booking, with its pass: everyone can get in, with or without email.
#[derive(Serialize)]
pub struct MyBooking {
    #[serde(flatten)]
    pub booking: BookingShown,
    /// Short reference people read out at the centre or on the phone.
    pub reference: String,
    /// The check-in pass: the QR code's content.
    pub checkin_pass: String,
    /// The page that shows the pass, printable.
    pub pass_url: String,
}

impl MyBooking {
    fn of(state: &AppState, booking: BookingShown) -> Self {
        let checkin_pass = CheckinPass {
            booking: booking.id,
            centre: booking.centre_id.clone(),
            first_at: booking.first_at,
            second_at: booking.second_at,
        }
        .sign(&state.pass_keys, Utc::now());
        MyBooking {
            reference: reference(booking.id),
            pass_url: pass_url(state, booking.id),
            checkin_pass,
            booking,
        }
    }
}

/// The person's part in one recent draw.
#[derive(Serialize)]
pub struct MyDraw {
    pub draw: Uuid,
    pub completed_at: Option<DateTime<Utc>>,
    pub pool: Option<i64>,
    pub in_pool: bool,
    /// As the draw's manifest publishes it.
    pub lottery_key: Option<LotteryKey>,
    pub offered: bool,
    /// Where to check the draw.
    pub manifest: String,
}

/// The registrant's status: reasons, offer, booking, and their part in recent draws.
pub async fn status(state: &AppState, me: Registrant) -> Result<MyStatus, ApiError> {
    let published = state.policies.current(&me.region_id).await?;
    let person = Person {
        birth_year: me.birth_year,
        priority_group: u8::try_from(me.priority_group).unwrap_or(0),
        postcode: me.postcode.clone(),
        accepted_vaccines: me.accepted_vaccines.clone(),
    };
    let evaluation = evaluate(&published.policy, &person, Utc::now().date_naive());
    let pool = state.store.pool();
    let offer = registrants::offer_shown(pool, me.id).await?;
    let booking = registrants::booking_shown(pool, me.id)
        .await?
        .map(|booking| MyBooking::of(state, booking));
    let pseudonym = Pseudonym::of(&state.hash_key, me.id.as_bytes());
    let draws = registrants::draws_taken_part_in(pool, &me.region_id, pseudonym.as_bytes(), DRAWS_SHOWN)
        .await?
        .into_iter()
        .map(|entry| MyDraw {
            draw: entry.id,
            completed_at: entry.completed_at,
            pool: entry.pool,
            in_pool: entry.lottery_key.is_some(),
            lottery_key: entry.lottery_key.map(LotteryKey::exact),
            offered: entry.offered,
            manifest: format!("/v1/draws/{}/manifest", entry.id),
        })
        .collect();
    let next_step = match (&offer, &booking) {
        (_, Some(_)) => NextStep::ComeWithYourPass,
        (Some(_), None) => NextStep::AnswerTheOffer,
        (None, None) if evaluation.eligible => NextStep::WaitForADraw,
        (None, None) => NextStep::NotYetEligible,
    };
    let language = Language::parse(&me.language).unwrap_or_default();
    let next = state
        .templates
        .text(language, "next", next_step.key())
        .ok_or_else(|| ApiError::internal(format!("no text next.{}", next_step.key())))?;
    Ok(MyStatus {
        registration_id: me.id,
        region: me.region_id,
        status: me.status,
        language: me.language,
        verified_at: me.verified_at,
        choices: MyChoices {
            birth_year: me.birth_year,
            initials: me.initials,
            priority_group: me.priority_group,
            postcode: me.postcode,
            accepted_vaccines: me.accepted_vaccines,
            max_distance_km: me.max_distance_km,
            email: me
                .email
                .as_deref()
                .map(|sealed| open_field(state, Field::Email, me.id, sealed))
                .transpose()?,
        },
        eligibility: evaluation,
        offer,
        booking,
        pseudonym: pseudonym.to_string(),
        draws,
        next,
        next_step,
    })
}

/// What a registrant may change; absent fields stay as they are, `email: null` removes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    #[serde(default)]
    pub accepted_vaccines: Option<Vec<String>>,
    #[serde(default)]
    pub max_distance_km: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<String>>,
    #[serde(default)]
    pub language: Option<Language>,
}

/// Tells `"email": null` (remove it) from no `email` at all (keep it).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Changes the registrant's choices; they count from the next draw on. Answers the new status.
pub async fn change(state: &AppState, me: Registrant, changes: Changes) -> Result<MyStatus, ApiError> {
    let published = state.policies.current(&me.region_id).await?;
    if let Some(vaccines) = &changes.accepted_vaccines {
        check_vaccines(&published.policy, vaccines)?;
    }
    let distance = changes.max_distance_km.map(DistanceKm::parse).transpose()?;
    let email = changes
        .email
        .map(|email| email.as_deref().map(Email::parse).transpose())
        .transpose()?
        .map(|email| email.map(|email| state.personal_data.seal(Field::Email, me.id, email.as_str())));
    registrants::change_choices(
        state.store.pool(),
        me.id,
        &Choices {
            accepted_vaccines: changes.accepted_vaccines.as_deref(),
            max_distance_km: distance.map(DistanceKm::get),
            email: email.as_ref().map(|email| email.as_deref()),
            language: changes.language.map(Language::as_str),
        },
    )
    .await?;
    let me = load(state, me.id).await?;
    status(state, me).await
}
