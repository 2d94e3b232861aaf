//! Registration, step one: a person leaves their phone number and choices once, and we text
//! them a code to prove the phone is theirs. Registrant, verification and the SMS are written in
//! one statement, so a registration never exists without its code being on its way; under load,
//! the registrations waiting at that moment share the statement (see `batch`).

use std::sync::LazyLock;

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use drawbridge_domain::{evaluate, Language, Person, PhoneNumber, Policy, VerificationCode};
use drawbridge_platform::outbox::{self, Notification};
use prometheus::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::{PgArguments, PgQueryResult};
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

use crate::batch::{self, Batcher};
use crate::error::ApiError;
use crate::regions::{check_birth_year, check_postcode};
use crate::rooms::guard::Admitted;
use crate::AppState;

/// Wrong SMS codes allowed before a code is dead.
pub const VERIFICATION_ATTEMPTS: i16 = 5;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {
    pub phone: String,
    #[serde(default)]
    pub email: Option<String>,
    pub birth_year: i32,
    pub priority_group: u8,
    pub postcode: String,
    pub accepted_vaccines: Vec<String>,
    pub max_distance_km: u32,
    #[serde(default)]
    pub language: Language,
}

/// A registration request that passed every check.
pub struct Validated {
    pub phone: PhoneNumber,
    pub email: Option<String>,
    pub person: Person,
    pub max_distance_km: i32,
    pub language: Language,
}

impl RegistrationRequest {
    /// Checks every field against the region's policy, naming the first one at fault.
    pub fn validate(self, state: &AppState, policy: &Policy) -> Result<Validated, ApiError> {
        let phone = PhoneNumber::parse(&self.phone, &state.settings.default_country_code)
            .map_err(|e| ApiError::invalid("phone", e.to_string()))?;
        let email = self.email.as_deref().map(check_email).transpose()?;
        let person = Person {
            birth_year: check_birth_year(self.birth_year)?,
            priority_group: self.priority_group,
            postcode: check_postcode(&self.postcode)?,
            accepted_vaccines: self.accepted_vaccines,
        };
        if policy.group(person.priority_group).is_none() {
            let known: Vec<String> = policy
                .groups
                .iter()
                .map(|g| format!("{} ({})", g.id, g.name))
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
                    person.postcode, policy.name
                ),
            ));
        }
        check_vaccines(policy, &person.accepted_vaccines)?;
        Ok(Validated {
            phone,
            email,
            person,
            max_distance_km: check_distance(self.max_distance_km)?,
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

pub fn check_distance(km: u32) -> Result<i32, ApiError> {
    if (1..=1000).contains(&km) {
        Ok(km as i32)
    } else {
        Err(ApiError::invalid(
            "max_distance_km",
            "Please give a distance between 1 and 1000 km.",
        ))
    }
}

/// A registrant whose phone a call-centre agent attests: active at once, with its booking code.
/// Parameters `$1` to `$11` (see [`bind_registrant`]).
const INSERT_ACTIVE_REGISTRANT: &str =
    "INSERT INTO registrants (id, region_id, status, channel, phone, email, language, birth_year,
                              priority_group, postcode, accepted_vaccines, max_distance_km,
                              booking_code_hash, verified_at)
     VALUES ($1, $2, 'active', 'callcentre', $3, $4, $5, $6, $7, $8, $9, $10, $11, now())";

/// A web registration with its first code: one row of [`REGISTER_MANY`].
#[derive(Clone, Serialize)]
pub struct NewRegistration {
    id: Uuid,
    region_id: String,
    phone: String,
    email: Option<String>,
    language: &'static str,
    birth_year: i32,
    priority_group: i16,
    postcode: String,
    accepted_vaccines: Vec<String>,
    max_distance_km: i32,
    code_id: Uuid,
    /// Base64, as JSON has no bytes.
    code_hash: String,
    expires_at: DateTime<Utc>,
    notification: Notification,
}

/// Web registrations, each with its first code and SMS, in one statement (see `batch`); `$1` is
/// a JSON array of [`NewRegistration`]s. A phone number that already has a live registration is
/// skipped, and only the registrations made are returned: registrant, code and SMS are written
/// together or not at all. The batcher never puts one phone number twice in a batch.
static REGISTER_MANY: LazyLock<String> = LazyLock::new(|| {
    let sms = outbox::enqueue_sql(
        "(SELECT code.id AS subject, i.phone, NULL::text AS email, i.language, i.notification
          FROM code JOIN input i ON i.id = code.registrant_id)",
        "'verification_code'",
        "s.notification",
    );
    format!(
        "WITH input AS (
            SELECT i.* FROM batch_rows($1) b, jsonb_to_record(b) AS i(
                id uuid, region_id text, phone text, email text, language text,
                birth_year integer, priority_group smallint, postcode text,
                accepted_vaccines text[], max_distance_km integer,
                code_id uuid, code_hash text, expires_at timestamptz, notification jsonb)
        ), registrant AS (
            INSERT INTO registrants (id, region_id, status, channel, phone, email, language,
                                     birth_year, priority_group, postcode, accepted_vaccines,
                                     max_distance_km)
            SELECT id, region_id, 'pending_verification', 'web', phone, email, language,
                   birth_year, priority_group, postcode, accepted_vaccines, max_distance_km
            FROM input
            ON CONFLICT (phone) WHERE status <> 'withdrawn' DO NOTHING
            RETURNING id
        ), code AS (
            INSERT INTO phone_verifications (id, registrant_id, code_hash, attempts_left, expires_at)
            SELECT i.code_id, i.id, decode(i.code_hash, 'base64'), {VERIFICATION_ATTEMPTS}, i.expires_at
            FROM input i JOIN registrant USING (id)
            RETURNING id, registrant_id
        ), sms AS ({sms})
        SELECT id FROM registrant"
    )
});

/// The batcher of web registrations: each answers whether it was made (`false`: the phone number
/// already has a live registration).
pub fn batcher(pool: PgPool, sizes: Histogram) -> Batcher<NewRegistration, bool> {
    batch::made(
        pool,
        sizes,
        |r: &NewRegistration| r.phone.clone(),
        &REGISTER_MANY,
        |r| r.id,
    )
}

/// A further code for an existing registrant (`$1`) and its SMS, parameters `$2` to `$8` (see
/// [`bind_code`]). The code is stored only as a keyed hash; the verification row is the
/// message's subject, so every code (first or resent) is one SMS.
static ANOTHER_CODE: LazyLock<String> = LazyLock::new(|| {
    let sms = outbox::enqueue_sql(
        "(SELECT code.id AS subject, $6::text AS phone, NULL::text AS email, $7::text AS language FROM code)",
        "'verification_code'",
        "$8",
    );
    format!(
        "WITH code AS (INSERT INTO phone_verifications (id, registrant_id, code_hash, attempts_left, expires_at)
                       VALUES ($2, $1, $3, $4, $5) RETURNING id)
         {sms}"
    )
});

fn bind_registrant<'q>(
    query: Query<'q, Postgres, PgArguments>,
    id: Uuid,
    region: &'q str,
    registration: &'q Validated,
    booking_code: &'q [u8],
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(id)
        .bind(region)
        .bind(registration.phone.as_str())
        .bind(&registration.email)
        .bind(registration.language.as_str())
        .bind(registration.person.birth_year)
        .bind(i16::from(registration.person.priority_group))
        .bind(&registration.person.postcode)
        .bind(&registration.person.accepted_vaccines)
        .bind(registration.max_distance_km)
        .bind(booking_code)
}

/// A fresh SMS code for a registrant, not yet stored.
struct NewCode {
    id: Uuid,
    hash: Vec<u8>,
    expires_at: DateTime<Utc>,
    notification: Notification,
}

fn new_code(state: &AppState, registrant_id: Uuid) -> NewCode {
    let code = VerificationCode::generate(&mut rand::rngs::OsRng);
    let valid_minutes = state.settings.verification_code_minutes;
    NewCode {
        id: Uuid::new_v4(),
        hash: code
            .keyed_hash(&state.hash_key, registrant_id.as_bytes())
            .to_vec(),
        expires_at: Utc::now() + Duration::minutes(valid_minutes.into()),
        notification: Notification::VerificationCode {
            code: code.as_str().to_owned(),
            valid_minutes,
        },
    }
}

fn bind_code<'q>(
    query: Query<'q, Postgres, PgArguments>,
    code: &'q NewCode,
    phone: &'q PhoneNumber,
    language: Language,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(code.id)
        .bind(code.hash.as_slice())
        .bind(VERIFICATION_ATTEMPTS)
        .bind(code.expires_at)
        .bind(phone.as_str())
        .bind(language.as_str())
        .bind(sqlx::types::Json(&code.notification))
}

/// A second registration for a live phone number is refused with what to do instead.
fn phone_already_registered() -> ApiError {
    ApiError::Conflict {
        code: "phone_already_registered",
        message: "This phone number already has a registration. Use its booking code to see its status or change it; to start over, withdraw that registration first.".into(),
    }
}

fn refuse_known_phone(result: Result<PgQueryResult, sqlx::Error>) -> Result<(), ApiError> {
    if let Err(sqlx::Error::Database(error)) = &result {
        if error.constraint() == Some("registrants_one_live_per_phone") {
            return Err(phone_already_registered());
        }
    }
    result?;
    Ok(())
}

/// Inserts an already verified registrant with its booking code in the caller's transaction
/// (a call-centre agent attests the phone).
pub async fn insert_active(
    tx: &mut PgConnection,
    id: Uuid,
    region: &str,
    registration: &Validated,
    booking_code: &[u8],
) -> Result<(), ApiError> {
    let query = bind_registrant(
        sqlx::query(INSERT_ACTIVE_REGISTRANT),
        id,
        region,
        registration,
        booking_code,
    );
    refuse_known_phone(query.execute(&mut *tx).await)
}

/// Guarded by the waiting rooms of the region, if any (see `rooms::guard`).
pub async fn create(
    _admitted: Admitted,
    state: web::Data<AppState>,
    region: web::Path<String>,
    request: web::Json<RegistrationRequest>,
) -> Result<HttpResponse, ApiError> {
    let published = state.policies.current(&region).await?;
    let registration = request.into_inner().validate(&state, &published.policy)?;
    let registration_id = Uuid::new_v4();
    let code = new_code(&state, registration_id);
    let expires_at = code.expires_at;
    let made = state
        .registrations
        .submit(NewRegistration {
            id: registration_id,
            region_id: published.region.clone(),
            phone: registration.phone.as_str().to_owned(),
            email: registration.email.clone(),
            language: registration.language.as_str(),
            birth_year: registration.person.birth_year,
            priority_group: i16::from(registration.person.priority_group),
            postcode: registration.person.postcode.clone(),
            accepted_vaccines: registration.person.accepted_vaccines.clone(),
            max_distance_km: registration.max_distance_km,
            code_id: code.id,
            code_hash: BASE64.encode(&code.hash),
            expires_at,
            notification: code.notification,
        })
        .await?;
    if !made {
        return Err(phone_already_registered());
    }

    tracing::info!(%registration_id, region = %published.region, "registration started");
    let eligibility = evaluate(&published.policy, &registration.person, Utc::now().date_naive());
    Ok(HttpResponse::Accepted().json(json!({
        "registration_id": registration_id,
        "status": "pending_verification",
        "verification": {
            "channel": "sms",
            "expires_at": expires_at,
            "attempts_left": VERIFICATION_ATTEMPTS,
        },
        "eligibility": eligibility,
    })))
}

/// A verification code just issued.
pub struct IssuedCode {
    pub expires_at: DateTime<Utc>,
}

/// Creates a fresh SMS code for an existing registrant and queues the SMS, inside the
/// caller's transaction.
pub async fn issue_code(
    tx: &mut PgConnection,
    state: &AppState,
    registrant_id: Uuid,
    phone: &PhoneNumber,
    language: Language,
) -> Result<IssuedCode, ApiError> {
    let code = new_code(state, registrant_id);
    let query = sqlx::query(&ANOTHER_CODE).bind(registrant_id);
    bind_code(query, &code, phone, language).execute(&mut *tx).await?;
    Ok(IssuedCode {
        expires_at: code.expires_at,
    })
}

/// Enough to catch typos; the mail server is the real judge.
pub fn check_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let plausible = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'));
    if plausible {
        Ok(email.to_owned())
    } else {
        Err(ApiError::invalid(
            "email",
            "Please give an email address like name@example.de, or leave it out.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::check_email;

    #[test]
    fn email_check_catches_typos() {
        assert!(check_email(" anna@example.de ").is_ok());
        for bad in [
            "",
            "anna",
            "anna@",
            "@example.de",
            "anna@example",
            "an na@example.de",
            "anna@example.",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?} accepted");
        }
    }
}
