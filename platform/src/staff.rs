//! Staff accounts: created one by one or imported from a CSV file, disabled, enabled and given
//! a new password, by a region admin in the console or by an operator (`drawbridge staff ...`);
//! both call this code. Passwords are kept only as argon2id hashes (PHC strings, so parameters
//! can be raised later without a migration).

use std::collections::{HashMap, HashSet};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use drawbridge_domain::Role;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::statements;
use crate::table_file::{self, all_or_errors, Change, FileErrors, Imported, LineError, Row};

statements! {
    REGION_EXISTS = "SELECT EXISTS (SELECT 1 FROM regions WHERE id = $1)";
    CENTRES_OF_REGION = "SELECT id FROM centres WHERE region_id = $1";
    TAKEN_USERNAMES = "SELECT username FROM staff WHERE username = ANY($1)";
    INSERT_STAFF =
        "INSERT INTO staff (id, username, password_hash, role, region_id, centre_id, must_change_password)
         VALUES ($1, $2, $3, $4, $5, $6, $7)";
    /// A trigger ends the account's sessions in the same statement (see the migrations).
    DISABLE_STAFF =
        "UPDATE staff SET disabled_at = coalesce(disabled_at, now())
         WHERE username = $1 AND ($2::text IS NULL OR region_id = $2) RETURNING id";
    ENABLE_STAFF =
        "UPDATE staff SET disabled_at = NULL WHERE username = $1 AND ($2::text IS NULL OR region_id = $2) RETURNING id";
    SET_PASSWORD =
        "UPDATE staff SET password_hash = $3, must_change_password = true
         WHERE username = $1 AND ($2::text IS NULL OR region_id = $2) RETURNING id";
    END_SESSIONS = "UPDATE staff_sessions SET ended_at = now() WHERE staff_id = $1 AND ended_at IS NULL";
    ACCOUNTS_OF_REGION =
        "SELECT id, username, role, centre_id AS centre, created_at, disabled_at IS NOT NULL AS disabled
         FROM staff WHERE region_id = $1 ORDER BY username";
}

/// Shortest password accepted for a staff account.
pub const MIN_PASSWORD_LEN: usize = 12;

/// The columns of a staff file; `centre` is for centre staff and may be left out otherwise.
pub const STAFF_COLUMNS: [&str; 2] = ["username", "role"];

/// A staff account to create.
#[derive(Debug, Clone)]
pub struct NewStaff<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub role: Role,
    pub region: &'a str,
    /// Required for centre staff, refused for everyone else.
    pub centre: Option<&'a str>,
    /// The password was made for its person by someone else (generated and shown to an
    /// administrator): they choose their own at their first sign-in, before anything else.
    pub must_change_password: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("username {0:?} is invalid; use 3 to 64 characters from a-z, 0-9, '.', '_' and '-'")]
    Username(String),
    #[error("the password must have at least {MIN_PASSWORD_LEN} characters")]
    ShortPassword,
    #[error("centre staff need --centre; other roles are not bound to a centre")]
    Centre,
    #[error("{0:?} is not a role: use callcentre_agent, centre_staff, region_admin or analyst")]
    Role(String),
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
    /// Lines of an import that are not right; nothing was created.
    #[error(transparent)]
    Lines(#[from] FileErrors),
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

/// A fresh password to hand to a person: four groups of four letters and digits that cannot be
/// mistaken for each other when read aloud or copied by hand (about 79 bits).
pub fn new_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut password = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            password.push('-');
        }
        // Rejection sampling, so every letter is equally likely.
        let letter = loop {
            let byte = (OsRng.next_u32() & 0xff) as usize;
            if byte < 248 {
                break ALPHABET[byte % ALPHABET.len()];
            }
        };
        password.push(letter as char);
    }
    password
}

async fn hashed(password: &str) -> Result<String, StaffError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| StaffError::Hash(e.to_string()))?
}

fn check_username(username: &str) -> Result<(), StaffError> {
    let valid = (3..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(StaffError::Username(username.to_owned()))
    }
}

fn check_centre(role: Role, centre: Option<&str>) -> Result<(), StaffError> {
    if (role == Role::CentreStaff) == centre.is_some() {
        Ok(())
    } else {
        Err(StaffError::Centre)
    }
}

/// Creates a staff account; returns its id.
pub async fn add(connection: &mut PgConnection, new: &NewStaff<'_>) -> Result<Uuid, StaffError> {
    check_username(new.username)?;
    if new.password.chars().count() < MIN_PASSWORD_LEN {
        return Err(StaffError::ShortPassword);
    }
    check_centre(new.role, new.centre)?;
    let region: bool = sqlx::query_scalar(REGION_EXISTS)
        .bind(new.region)
        .fetch_one(&mut *connection)
        .await?;
    if !region {
        return Err(StaffError::UnknownRegion(new.region.to_owned()));
    }
    if let Some(centre) = new.centre {
        if !centres_of(&mut *connection, new.region).await?.contains(centre) {
            return Err(StaffError::UnknownCentre {
                centre: centre.to_owned(),
                region: new.region.to_owned(),
            });
        }
    }
    let hash = hashed(new.password).await?;
    insert(connection, new, &hash).await
}

async fn centres_of(connection: &mut PgConnection, region: &str) -> Result<HashSet<String>, sqlx::Error> {
    Ok(sqlx::query_scalar(CENTRES_OF_REGION)
        .bind(region)
        .fetch_all(connection)
        .await?
        .into_iter()
        .collect())
}

async fn insert(connection: &mut PgConnection, new: &NewStaff<'_>, hash: &str) -> Result<Uuid, StaffError> {
    let id = Uuid::new_v4();
    let inserted = sqlx::query(INSERT_STAFF)
        .bind(id)
        .bind(new.username)
        .bind(hash)
        .bind(new.role.as_str())
        .bind(new.region)
        .bind(new.centre)
        .bind(new.must_change_password)
        .execute(connection)
        .await;
    match inserted {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StaffError::Taken(new.username.to_owned()))
        }
        other => other.map(|_| id).map_err(Into::into),
    }
}

/// An account an import creates, with its first password (none on a dry run): shown once, to
/// be handed to its person, who should change it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedAccount {
    pub username: String,
    pub role: Role,
    pub centre: Option<String>,
    pub password: Option<String>,
}

/// Creates the accounts of a staff file (see [`STAFF_COLUMNS`]) in `region`, each with a fresh
/// password, unless a line is wrong: a username that is invalid, taken or named twice, an
/// unknown role, a centre missing, not needed or not of the region. With `dry_run`, only says
/// what it would create.
pub async fn import(
    connection: &mut PgConnection,
    region: &str,
    text: &str,
    dry_run: bool,
) -> Result<Imported<ImportedAccount>, StaffError> {
    let lines = table_file::read(text, &STAFF_COLUMNS)?;
    let usernames: Vec<&str> = lines.iter().map(|line| line.get("username")).collect();
    let taken: HashSet<String> = sqlx::query_scalar(TAKEN_USERNAMES)
        .bind(&usernames)
        .fetch_all(&mut *connection)
        .await?
        .into_iter()
        .collect();
    let centres = centres_of(&mut *connection, region).await?;
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    let checked = lines
        .iter()
        .map(|line| {
            let wrong =
                |code, values: &[(&str, &dyn std::fmt::Display)]| LineError::new(line.number, code, values);
            let username = line.get("username");
            if check_username(username).is_err() {
                return Err(wrong("username", &[("username", &username)]));
            }
            if taken.contains(username) {
                return Err(wrong("username_taken", &[("username", &username)]));
            }
            if let Some(earlier) = first_line.insert(username, line.number) {
                return Err(wrong(
                    "username_twice",
                    &[("username", &username), ("line", &earlier)],
                ));
            }
            let role = line.get("role");
            let role = Role::parse(role).ok_or_else(|| wrong("role", &[("role", &role)]))?;
            let centre = Some(line.get("centre")).filter(|centre| !centre.is_empty());
            if check_centre(role, centre).is_err() {
                return Err(wrong("centre_needed", &[]));
            }
            if let Some(centre) = centre.filter(|centre| !centres.contains(*centre)) {
                return Err(wrong(
                    "unknown_centre",
                    &[("centre", &centre), ("region", &region)],
                ));
            }
            Ok(Row {
                line: line.number,
                row: ImportedAccount {
                    username: username.to_owned(),
                    role,
                    centre: centre.map(str::to_owned),
                    password: None,
                },
                change: Change::Created,
            })
        })
        .collect();
    let mut rows = all_or_errors(checked)?;
    if !dry_run {
        for row in &mut rows {
            let account = &mut row.row;
            let password = new_password();
            let new = NewStaff {
                username: &account.username,
                password: &password,
                role: account.role,
                region,
                centre: account.centre.as_deref(),
                must_change_password: true,
            };
            insert(&mut *connection, &new, &hashed(&password).await?).await?;
            account.password = Some(password);
        }
    }
    Ok(Imported { dry_run, rows })
}

/// Disables an account (of `region`, when given): it can no longer log in, and its sessions end
/// at once, so enabling it again revives none of them. Disabling it again changes nothing.
pub async fn disable(
    connection: &mut PgConnection,
    region: Option<&str>,
    username: &str,
) -> Result<Uuid, StaffError> {
    one_account(connection, DISABLE_STAFF, region, username).await
}

/// Lets a disabled account log in again (with a new session: its old ones stay ended).
pub async fn enable(
    connection: &mut PgConnection,
    region: Option<&str>,
    username: &str,
) -> Result<Uuid, StaffError> {
    one_account(connection, ENABLE_STAFF, region, username).await
}

/// Gives an account (of `region`, when given) a fresh password and ends its sessions; answers
/// the account and the password, to be handed to its person, who chooses their own at their
/// next sign-in.
pub async fn reset_password(
    connection: &mut PgConnection,
    region: Option<&str>,
    username: &str,
) -> Result<(Uuid, String), StaffError> {
    let password = new_password();
    let id: Uuid = sqlx::query_scalar(SET_PASSWORD)
        .bind(username)
        .bind(region)
        .bind(hashed(&password).await?)
        .fetch_optional(&mut *connection)
        .await?
        .ok_or_else(|| StaffError::Unknown(username.to_owned()))?;
    sqlx::query(END_SESSIONS).bind(id).execute(connection).await?;
    Ok((id, password))
}

async fn one_account(
    connection: &mut PgConnection,
    statement: &'static str,
    region: Option<&str>,
    username: &str,
) -> Result<Uuid, StaffError> {
    sqlx::query_scalar(statement)
        .bind(username)
        .bind(region)
        .fetch_optional(connection)
        .await?
        .ok_or_else(|| StaffError::Unknown(username.to_owned()))
}

/// A staff account as the region's list shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Account {
    pub id: Uuid,
    pub username: String,
    pub role: String,
    pub centre: Option<String>,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
}

/// The region's staff accounts, by username.
pub async fn accounts(connection: &mut PgConnection, region: &str) -> Result<Vec<Account>, sqlx::Error> {
    sqlx::query_as(ACCOUNTS_OF_REGION)
        .bind(region)
        .fetch_all(connection)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_are_long_readable_and_different() {
        let password = new_password();
        assert_eq!(password.len(), 19);
        assert!(password
            .chars()
            .all(|c| c == '-' || "abcdefghjkmnpqrstuvwxyz23456789".contains(c)));
        assert_ne!(password, new_password());
    }

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
