//! Staff accounts: created, disabled and enabled by an operator (`drawbridge staff ...`),
//! passwords kept only as argon2id hashes (PHC strings, so parameters can be raised later
//! without a migration).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use drawbridge_domain::Role;
use sqlx::PgPool;
use uuid::Uuid;

use crate::statements;

statements! {
    REGION_EXISTS = "SELECT EXISTS (SELECT 1 FROM regions WHERE id = $1)";
    CENTRE_IN_REGION = "SELECT EXISTS (SELECT 1 FROM centres WHERE id = $1 AND region_id = $2)";
    INSERT_STAFF =
        "INSERT INTO staff (id, username, password_hash, role, region_id, centre_id) VALUES ($1, $2, $3, $4, $5, $6)";
    /// A trigger ends the account's sessions in the same statement (see the migrations).
    DISABLE_STAFF =
        "UPDATE staff SET disabled_at = coalesce(disabled_at, now()) WHERE username = $1 RETURNING id";
    ENABLE_STAFF = "UPDATE staff SET disabled_at = NULL WHERE username = $1 RETURNING id";
}

/// Shortest password accepted for a staff account.
pub const MIN_PASSWORD_LEN: usize = 12;

/// A staff account to create.
#[derive(Debug, Clone)]
pub struct NewStaff<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub role: Role,
    pub region: &'a str,
    /// Required for centre staff, refused for everyone else.
    pub centre: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("username {0:?} is invalid; use 3 to 64 characters from a-z, 0-9, '.', '_' and '-'")]
    Username(String),
    #[error("the password must have at least {MIN_PASSWORD_LEN} characters")]
    ShortPassword,
    #[error("centre staff need --centre; other roles are not bound to a centre")]
    Centre,
    #[error("there is no region {0:?}")]
    UnknownRegion(String),
    #[error("there is no centre {centre:?} in region {region:?}")]
    UnknownCentre { centre: String, region: String },
    #[error("username {0:?} is taken")]
    Taken(String),
    #[error("there is no staff account {0:?}")]
    Unknown(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The PHC string of `password` under argon2id with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, StaffError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| StaffError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string; a damaged hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Creates a staff account; returns its id.
pub async fn add(pool: &PgPool, new: &NewStaff<'_>) -> Result<Uuid, StaffError> {
    let valid_name = (3..=64).contains(&new.username.len())
        && new
            .username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !valid_name {
        return Err(StaffError::Username(new.username.to_owned()));
    }
    if new.password.chars().count() < MIN_PASSWORD_LEN {
        return Err(StaffError::ShortPassword);
    }
    if (new.role == Role::CentreStaff) != new.centre.is_some() {
        return Err(StaffError::Centre);
    }
    let region: bool = sqlx::query_scalar(REGION_EXISTS)
        .bind(new.region)
        .fetch_one(pool)
        .await?;
    if !region {
        return Err(StaffError::UnknownRegion(new.region.to_owned()));
    }
    if let Some(centre) = new.centre {
        let known: bool = sqlx::query_scalar(CENTRE_IN_REGION)
            .bind(centre)
            .bind(new.region)
            .fetch_one(pool)
            .await?;
        if !known {
            return Err(StaffError::UnknownCentre {
                centre: centre.to_owned(),
                region: new.region.to_owned(),
            });
        }
    }
    let password = new.password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| StaffError::Hash(e.to_string()))??;
    let id = Uuid::new_v4();
    let inserted = sqlx::query(INSERT_STAFF)
        .bind(id)
        .bind(new.username)
        .bind(hash)
        .bind(new.role.as_str())
        .bind(new.region)
        .bind(new.centre)
        .execute(pool)
        .await;
    match inserted {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StaffError::Taken(new.username.to_owned()))
        }
        other => other.map(|_| id).map_err(Into::into),
    }
}

/// Disables an account: it can no longer log in, and its sessions end at once, so enabling it
/// again revives none of them. Disabling it again changes nothing.
pub async fn disable(pool: &PgPool, username: &str) -> Result<Uuid, StaffError> {
    set_disabled(pool, DISABLE_STAFF, username).await
}

/// Lets a disabled account log in again (with a new session: its old ones stay ended).
pub async fn enable(pool: &PgPool, username: &str) -> Result<Uuid, StaffError> {
    set_disabled(pool, ENABLE_STAFF, username).await
}

async fn set_disabled(pool: &PgPool, statement: &'static str, username: &str) -> Result<Uuid, StaffError> {
    sqlx::query_scalar(statement)
        .bind(username)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StaffError::Unknown(username.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery!", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert_ne!(hash, hash_password("correct horse battery").unwrap(), "salted");
    }
}
