//! Registration: a person leaves their phone number and choices once. On the web we text them
//! a code to prove the phone is theirs (registrant, code and SMS in one statement, shared with
//! the registrations waiting at that moment); an agent on the phone attests the number, so the
//! caller is active at once and gets their booking code.

use chrono::{DateTime, Datelike, Duration, SubsecRound, Utc};
use drawbridge_domain::{
    evaluate, BirthYear, BookingCode, DistanceKm, Email, Evaluation, Field, Initials, Language, Person,
    PhoneNumber, Policy, Postcode, StaffMember, VerificationCode,
};
use drawbridge_platform::outbox::Notification;
use drawbridge_platform::policies::PublishedPolicy;
use drawbridge_platform::states::RegistrantStatus;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use uuid::Uuid;

use super::verify::{send_code, too_many_codes};
use super::{audit, forbidden};
use crate::error::{ApiError, ErrorCode};
use crate::store::messages::tell;
use crate::store::registrants::{
    self, Details, Inserted, NewCaller, NewRegistration, Outcome, VERIFICATION_ATTEMPTS,
};
use crate::AppState;

/// What a person (or an agent for them) submits to register.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationForm {
    pub phone: String,
    #[serde(default)]
    pub email: Option<String>,
    pub birth_year: i32,
    /// Tells apart the people registered on one phone; optional for the first.
    #[serde(default)]
    pub initials: Option<String>,
    pub priority_group: u8,
    pub postcode: String,
    pub accepted_vaccines: Vec<String>,
    pub max_distance_km: u32,
    #[serde(default)]
    pub language: Language,
}

/// A registration that passed every check.
pub struct Registration {
    pub phone: PhoneNumber,
    pub email: Option<Email>,
    pub initials: Initials,
    pub person: Person,
    pub max_distance_km: DistanceKm,
    pub language: Language,
}

/// The current year, for birth years.
pub fn this_year() -> i32 {
    Utc::now().year()
}

impl RegistrationForm {
    /// Checks every field against the region's policy, naming the first one at fault.
    pub fn validate(self, policy: &Policy, default_country: &str) -> Result<Registration, ApiError> {
        let phone = PhoneNumber::parse(&self.phone, default_country)
            .map_err(|e| ApiError::invalid("phone", e.to_string()))?;
        let email = self.email.as_deref().map(Email::parse).transpose()?;
        let initials = Initials::parse(self.initials.as_deref().unwrap_or_default())?;
        let person = Person {
            birth_year: BirthYear::parse(self.birth_year, this_year())?.get(),
            priority_group: self.priority_group,
            postcode: Postcode::parse(&self.postcode)?.into_string(),
            accepted_vaccines: self.accepted_vaccines,
        };
        if policy.group(person.priority_group).is_none() {
            let known: Vec<String> = policy
                .groups
                .iter()
                .map(|g| format!("{} ({})", g.id, g.name.en))
                .collect();
            return Err(ApiError::invalid(
                "priority_group",
                format!(
                    "There is no priority group {} in this region. The groups are: {}.",
                    person.priority_group,
                    known.join(", ")
                ),
            ));
        }
        if !policy.covers_postcode(&person.postcode) {
            return Err(ApiError::invalid(
                "postcode",
                format!(
                    "Postcode {} is not in {}. Please register in the region where you live.",
                    person.postcode, policy.name.en
                ),
            ));
        }
        check_vaccines(policy, &person.accepted_vaccines)?;
        Ok(Registration {
            phone,
            email,
            initials,
            person,
            max_distance_km: DistanceKm::parse(self.max_distance_km)?,
            language: self.language,
        })
    }
}

/// At least one vaccine, and only vaccines the region has.
pub fn check_vaccines(policy: &Policy, accepted: &[String]) -> Result<(), ApiError> {
    if accepted.is_empty() {
        return Err(ApiError::invalid(
            "accepted_vaccines",
            "Please accept at least one vaccine.",
        ));
    }
    if let Some(unknown) = accepted.iter().find(|code| policy.vaccine(code).is_none()) {
        let known: Vec<&str> = policy.vaccines.iter().map(|v| v.code.as_str()).collect();
        return Err(ApiError::invalid(
            "accepted_vaccines",
            format!(
                "There is no vaccine {unknown:?} in this region. The vaccines are: {}.",
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

/// A fresh SMS code for a registrant, not yet stored.
pub(super) struct SmsCode {
    pub id: Uuid,
    pub hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub notification: Notification,
}

impl SmsCode {
    pub(super) fn generate(state: &AppState, registrant: Uuid) -> Self {
        let code = VerificationCode::generate(&mut rand::rngs::OsRng);
        let valid_minutes = state.settings.verification_code_minutes;
        SmsCode {
            id: Uuid::new_v4(),
            hash: code.keyed_hash(&state.hash_key, registrant.as_bytes()).to_vec(),
            // To the microsecond, as Postgres keeps it, so a replayed answer names the same instant.
            expires_at: (Utc::now() + Duration::minutes(valid_minutes.into())).trunc_subsecs(6),
            notification: Notification::VerificationCode {
                code: code.as_str().to_owned(),
                valid_minutes,
            },
        }
    }
}

/// The message that carries a booking code, with the address of the status page.
pub(super) fn booking_code_message(state: &AppState, code: &BookingCode) -> Notification {
    Notification::BookingCode {
        booking_code: code.to_string(),
        status_url: status_url(state),
    }
}

/// The address of the status page.
pub(super) fn status_url(state: &AppState) -> String {
    state.public_link("/me")
}

/// A web registration waiting for its SMS code.
pub struct Started {
    pub registration_id: Uuid,
    pub code_expires_at: DateTime<Utc>,
    pub attempts_left: i16,
    pub eligibility: Evaluation,
}

/// Refuses a web registration before any SMS goes out when its number is not a mobile number
/// of a country the region serves, or when its client address, its number's block (the number
/// without its last three digits) or its region's daily SMS budget is used up. Each is counted
/// in Redis across all gateways, whether or not a waiting room stands in front.
async fn within_the_bill(
    state: &AppState,
    published: &PublishedPolicy,
    phone: &PhoneNumber,
    address: &str,
) -> Result<(), ApiError> {
    let settings = &state.settings;
    let served = published.policy.phone_countries(&settings.default_country_code);
    let country = phone.country_code().map(|code| code.to_string());
    if !country.is_some_and(|country| served.contains(&country.as_str())) {
        let codes: Vec<String> = served.iter().map(|code| format!("+{code}")).collect();
        return Err(ApiError::invalid(
            "phone",
            format!(
                "Only phone numbers from {} can register here. Please give such a number, or call the hotline.",
                codes.join(", ")
            ),
        ));
    }
    if !phone.is_mobile() {
        return Err(ApiError::invalid(
            "phone",
            "This is not a mobile number, so it cannot receive the SMS code. Please give a mobile number, or call the hotline to register by phone.",
        ));
    }
    let number = phone.as_str().trim_start_matches('+');
    state
        .limits
        .rate(
            &[(
                format!("registrations:address:{address}"),
                i64::from(settings.registrations_per_address_per_hour),
            )],
            3_600,
            "Too many registrations from here in the last hour. Please try again later, or call the hotline.",
        )
        .await?;
    let block = &number[..number.len().saturating_sub(3)];
    state
        .limits
        .rate(
            &[(
                format!("registrations:block:{block}"),
                i64::from(settings.registrations_per_number_block_per_hour),
            )],
            3_600,
            "Too many registrations for phone numbers like this one in the last hour. Please try again later, or call the hotline.",
        )
        .await?;
    spend_sms_budget(state, &published.region).await
}

/// Counts one SMS code or notice against the region's daily budget, or refuses it once the
/// budget is spent.
pub(super) async fn spend_sms_budget(state: &AppState, region: &str) -> Result<(), ApiError> {
    let spent = state
        .limits
        .rate(
            &[(
                format!("sms:region:{region}"),
                i64::from(state.settings.sms_codes_per_region_per_day),
            )],
            86_400,
            "Today's SMS codes for this region are used up, so no code can be sent now. Please try again tomorrow, or call the hotline to register by phone.",
        )
        .await;
    if spent.is_err() {
        state.sms_budget_spent.with_label_values(&[region]).inc();
    }
    spent
}

/// Runs of a registration that met another request for the same phone or key, written at the
/// same moment; the next run sees it.
const RUNS: usize = 3;

/// Registers on the web and texts the first code. A person whose registration on this phone
/// still waits for its code gets that registration again, with the details entered now and a
/// new code (within the limits of a resend), so a client whose answer was lost can ask again
/// and nobody can hold a phone with an unverified registration. A person registered on the
/// phone already, or a phone holding as many people as it may, gets the same answer as anyone
/// (so the answer tells a stranger nothing), and the phone a notice instead of a code. With an
/// Idempotency-Key, the same request again gets the first answer and sends nothing; the key
/// with another request is refused.
pub async fn on_the_web(
    state: &AppState,
    region: &str,
    form: RegistrationForm,
    idempotency_key: Option<&str>,
    address: &str,
) -> Result<Started, ApiError> {
    let published = state.policies.current(region).await?;
    let registration = form.validate(&published.policy, &state.settings.default_country_code)?;
    within_the_bill(state, &published, &registration.phone, address).await?;
    let details = Details {
        region_id: published.region.clone(),
        phone: registration.phone.as_str().to_owned(),
        email: registration.email.map(Email::into_string),
        language: registration.language.as_str(),
        birth_year: registration.person.birth_year,
        initials: registration.initials.into_string(),
        priority_group: i16::from(registration.person.priority_group),
        postcode: registration.person.postcode.clone(),
        accepted_vaccines: registration.person.accepted_vaccines.clone(),
        max_distance_km: registration.max_distance_km.get(),
    };
    let digest = idempotency_key
        .map(|_| request_digest(state, &details))
        .transpose()?;
    let request = idempotency_key.zip(digest.as_ref().map(|d| d.as_slice()));
    let phone_index = base64_of(&state.personal_data.index(Field::Phone, &details.phone));
    for _ in 0..RUNS {
        if let Some((registration_id, code_expires_at)) =
            start(state, &details, &phone_index, request).await?
        {
            tracing::info!(%registration_id, region = %published.region, "registration started");
            return Ok(Started {
                registration_id,
                code_expires_at,
                attempts_left: VERIFICATION_ATTEMPTS,
                eligibility: evaluate(&published.policy, &registration.person, Utc::now().date_naive()),
            });
        }
    }
    Err(ApiError::internal(
        "a registration kept meeting other requests for its phone or key",
    ))
}

/// One run of a web registration: its id and code expiry, or `None` if it met another request
/// for the same phone or key and must run again. The phone number and email address go to the
/// database sealed for the new registration, the phone found by `phone_index`.
async fn start(
    state: &AppState,
    details: &Details,
    phone_index: &str,
    request: Option<(&str, &[u8])>,
) -> Result<Option<(Uuid, DateTime<Utc>)>, ApiError> {
    let id = Uuid::new_v4();
    let code = SmsCode::generate(state, id);
    let registered = state
        .store
        .register(NewRegistration {
            id,
            details: details.clone(),
            phone: base64_of(&state.personal_data.seal(Field::Phone, id, &details.phone)),
            phone_index: phone_index.to_owned(),
            email: details
                .email
                .as_deref()
                .map(|email| base64_of(&state.personal_data.seal(Field::Email, id, email))),
            code_id: code.id,
            code_hash: base64_of(&code.hash),
            attempts_left: VERIFICATION_ATTEMPTS,
            expires_at: code.expires_at,
            notification: code.notification,
            idempotency_key: request.map(|(key, _)| key.to_owned()),
            request_digest: request.map(|(_, digest)| base64_of(digest)),
        })
        .await?;
    let found = registered
        .registrant_id
        .ok_or_else(|| ApiError::internal("a registration's answer names no registration"));
    match registered.outcome {
        Outcome::Made => Ok(Some((id, code.expires_at))),
        Outcome::Replayed => {
            let expires_at = registered
                .code_expires_at
                .ok_or_else(|| ApiError::internal("a replayed registration has no code expiry"))?;
            Ok(Some((found?, expires_at)))
        }
        Outcome::KeyReused => Err(ApiError::new(ErrorCode::IdempotencyKeyReused)),
        Outcome::Busy => Err(too_many_codes(state)),
        Outcome::Unverified | Outcome::Verified | Outcome::Full => {
            again(state, found?, details, request).await
        }
        Outcome::Raced => Ok(None),
    }
}

/// Registration `id`, waiting for its code on the phone of `details` (found, or just made
/// without one), registered again: it takes the details entered now and gets a new code (or
/// the phone a notice), within the limits of a resend.
async fn again(
    state: &AppState,
    id: Uuid,
    details: &Details,
    request: Option<(&str, &[u8])>,
) -> Result<Option<(Uuid, DateTime<Utc>)>, ApiError> {
    let mut tx = state.store.begin().await?;
    match registrants::lock_for_code(&mut tx, id).await?.map(|r| r.status) {
        Some(RegistrantStatus::PendingVerification) => {}
        // Verified, withdrawn or expired meanwhile: register anew, which sees what it became.
        Some(RegistrantStatus::Active | RegistrantStatus::Withdrawn | RegistrantStatus::Expired) | None => {
            return Ok(None)
        }
    }
    let email = details
        .email
        .as_deref()
        .map(|email| state.personal_data.seal(Field::Email, id, email));
    registrants::update_unverified(&mut tx, id, details, email.as_deref()).await?;
    let sent = send_code(state, &mut tx, id, details.language, request).await?;
    let Some(sent) = sent else { return Ok(None) };
    tx.commit().await?;
    tracing::info!(registration_id = %id, "registration repeated; a new code sent");
    Ok(Some((id, sent.expires_at)))
}

/// The keyed digest of a registration request, which tells a retry (the same digest) from
/// another request reusing its Idempotency-Key. Keyed, as the details are personal data.
fn request_digest(state: &AppState, details: &Details) -> Result<[u8; 32], ApiError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.hash_key).map_err(ApiError::internal)?;
    let contact = (&details.phone, &details.email);
    mac.update(&serde_json::to_vec(&(details, contact)).map_err(ApiError::internal)?);
    Ok(mac.finalize().into_bytes().into())
}

/// A caller registered by an agent.
pub struct CallerRegistered {
    pub registration_id: Uuid,
    /// To read out to the caller; it is also on its way by SMS.
    pub booking_code: BookingCode,
    pub eligibility: Evaluation,
}

/// Registers a caller in the agent's region: active at once, the booking code queued by SMS
/// (and email) and the action audited, in one transaction. The agent attests the phone, so a
/// registration of the same person on it that waits for its code is given up; a person
/// registered on the phone already, or a full phone, is refused with the reason (agents are
/// staff, who may know it).
pub async fn by_phone(
    state: &AppState,
    agent: &StaffMember,
    form: RegistrationForm,
) -> Result<CallerRegistered, ApiError> {
    agent.may_act_for_callers(&agent.region).map_err(forbidden)?;
    let published = state.policies.current(&agent.region).await?;
    let registration = form.validate(&published.policy, &state.settings.default_country_code)?;
    let id = Uuid::new_v4();
    let booking_code = BookingCode::generate(&mut rand::rngs::OsRng);
    let booking_code_hash = booking_code.keyed_hash(&state.hash_key);
    let phone_index = state
        .personal_data
        .index(Field::Phone, registration.phone.as_str());
    let phone = state
        .personal_data
        .seal(Field::Phone, id, registration.phone.as_str());
    let email = registration
        .email
        .as_ref()
        .map(|email| state.personal_data.seal(Field::Email, id, email.as_str()));
    let mut tx = state.store.begin().await?;
    if let Some(unverified) = registrants::pending_of_person(
        &mut tx,
        &phone_index,
        registration.person.birth_year,
        registration.initials.as_str(),
    )
    .await?
    {
        registrants::expire(&mut tx, &[unverified]).await?;
    }
    let caller = NewCaller {
        id,
        region: &published.region,
        phone: &phone,
        phone_index: &phone_index,
        email: email.as_deref(),
        language: registration.language.as_str(),
        birth_year: registration.person.birth_year,
        initials: registration.initials.as_str(),
        priority_group: i16::from(registration.person.priority_group),
        postcode: &registration.person.postcode,
        accepted_vaccines: &registration.person.accepted_vaccines,
        max_distance_km: registration.max_distance_km.get(),
        booking_code_hash: booking_code_hash.as_slice(),
    };
    if let Inserted::PersonTaken = registrants::insert_active(&mut tx, &caller).await? {
        return Err(ApiError::new(ErrorCode::PhoneAlreadyRegistered));
    }
    // Counted with the caller, after the insert, so the person's own registration is told first.
    if registrants::people_on_phone(&mut tx, &phone_index).await?
        > i64::from(state.settings.registrations_per_phone)
    {
        return Err(ApiError::new(ErrorCode::PhoneFull));
    }
    // The registrant is the message's subject, so each registration gets its code once.
    tell(&mut tx, id, id, &booking_code_message(state, &booking_code)).await?;
    audit(
        &mut tx,
        agent,
        "registration.create",
        None,
        Some(id),
        serde_json::json!({ "channel": "callcentre" }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(registration_id = %id, agent = %agent.username, "caller registered");
    Ok(CallerRegistered {
        registration_id: id,
        booking_code,
        eligibility: evaluate(&published.policy, &registration.person, Utc::now().date_naive()),
    })
}

/// Hashes travel in batched statements' JSON as base64, as JSON has no bytes.
pub(super) fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
