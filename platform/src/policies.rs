//! Published policies in Postgres. A version, once published, never changes: a new rule set is
//! a new version, so every draw and every decision can name the exact rules it followed.

use chrono::{DateTime, Utc};
use drawbridge_domain::allocation::draw::hex;
use drawbridge_domain::{Language, Policy, PolicyError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::statements;

statements! {
    CREATE_REGION = "INSERT INTO regions (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";
    LOCK_REGION = "SELECT id FROM regions WHERE id = $1 FOR UPDATE";
    LATEST_VERSION =
        "SELECT version, digest FROM policies WHERE region_id = $1 ORDER BY version DESC LIMIT 1";
    INSERT_POLICY = "INSERT INTO policies (region_id, version, document, digest) VALUES ($1, $2, $3, $4)";
    CURRENT_POLICY =
        "SELECT region_id, version, document, digest, published_at FROM policies
         WHERE region_id = $1 ORDER BY version DESC LIMIT 1";
    POLICY_VERSION =
        "SELECT region_id, version, document, digest, published_at FROM policies
         WHERE region_id = $1 AND version = $2";
    POLICY_VERSIONS =
        "SELECT version, encode(digest, 'hex') AS digest, published_at FROM policies
         WHERE region_id = $1 ORDER BY version DESC";
    ALL_CURRENT_POLICIES =
        "SELECT DISTINCT ON (region_id) region_id, version, document, digest, published_at
         FROM policies ORDER BY region_id, version DESC";
}

/// A policy as published: the parsed rules plus the exact document and its digest.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedPolicy {
    pub region: String,
    pub version: u32,
    pub published_at: DateTime<Utc>,
    /// SHA-256 of `document`, hex: lets anyone check they read the rules we applied.
    pub digest: String,
    #[serde(skip)]
    pub document: String,
    pub policy: Policy,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("invalid policy: {0}")]
    Invalid(PolicyError),
    #[error("region {region} already has version {latest}; a new document needs a higher version")]
    VersionNotIncreased { region: String, latest: u32 },
    #[error("a stored policy of region {region} no longer parses: {error}")]
    Corrupt { region: String, error: PolicyError },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Publishes `document` as its region's newest version, creating the region on first use.
/// Publishing the same document again is a no-op, so deploy scripts can run repeatedly.
pub async fn publish(connection: &mut PgConnection, document: &str) -> Result<PublishedPolicy, PublishError> {
    let policy = Policy::from_toml(document).map_err(PublishError::Invalid)?;
    let digest = Sha256::digest(document.as_bytes()).to_vec();
    sqlx::query(CREATE_REGION)
        .bind(&policy.region)
        // The region's own name, in the service's home language.
        .bind(policy.name.get(Language::default()))
        .execute(&mut *connection)
        .await?;
    // Serialise publications per region so two versions cannot race.
    sqlx::query(LOCK_REGION)
        .bind(&policy.region)
        .execute(&mut *connection)
        .await?;
    let latest: Option<(i32, Vec<u8>)> = sqlx::query_as(LATEST_VERSION)
        .bind(&policy.region)
        .fetch_optional(&mut *connection)
        .await?;
    match latest {
        Some((version, stored)) if version as u32 == policy.version && stored == digest => {}
        Some((version, _)) if version as u32 >= policy.version => {
            return Err(PublishError::VersionNotIncreased {
                region: policy.region.clone(),
                latest: version as u32,
            })
        }
        _ => {
            sqlx::query(INSERT_POLICY)
                .bind(&policy.region)
                .bind(policy.version as i32)
                .bind(document)
                .bind(&digest)
                .execute(&mut *connection)
                .await?;
        }
    }
    Ok(current(&mut *connection, &policy.region)
        .await?
        .expect("the policy was stored in this transaction"))
}

/// The region's newest policy, or `None` for an unknown region.
pub async fn current(
    connection: &mut PgConnection,
    region: &str,
) -> Result<Option<PublishedPolicy>, PublishError> {
    let row: Option<PolicyRow> = sqlx::query_as(CURRENT_POLICY)
        .bind(region)
        .fetch_optional(connection)
        .await?;
    row.map(PolicyRow::published).transpose()
}

/// One published version of the region's policy, or `None`.
pub async fn version(
    connection: &mut PgConnection,
    region: &str,
    version: u32,
) -> Result<Option<PublishedPolicy>, PublishError> {
    let row: Option<PolicyRow> = sqlx::query_as(POLICY_VERSION)
        .bind(region)
        .bind(i32::try_from(version).unwrap_or(i32::MAX))
        .fetch_optional(connection)
        .await?;
    row.map(PolicyRow::published).transpose()
}

/// A published version as the list of a region's versions shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PolicyVersion {
    pub version: i32,
    pub digest: String,
    pub published_at: DateTime<Utc>,
}

/// Every published version of the region's policy, newest first.
pub async fn versions(
    connection: &mut PgConnection,
    region: &str,
) -> Result<Vec<PolicyVersion>, PublishError> {
    Ok(sqlx::query_as(POLICY_VERSIONS)
        .bind(region)
        .fetch_all(connection)
        .await?)
}

/// Every region with its newest policy, for listings, in one query.
pub async fn all_current(pool: &PgPool) -> Result<Vec<PublishedPolicy>, PublishError> {
    let rows: Vec<PolicyRow> = sqlx::query_as(ALL_CURRENT_POLICIES).fetch_all(pool).await?;
    rows.into_iter().map(PolicyRow::published).collect()
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    region_id: String,
    version: i32,
    document: String,
    digest: Vec<u8>,
    published_at: DateTime<Utc>,
}

impl PolicyRow {
    fn published(self) -> Result<PublishedPolicy, PublishError> {
        let policy = Policy::from_published(&self.document).map_err(|error| PublishError::Corrupt {
            region: self.region_id.clone(),
            error,
        })?;
        Ok(PublishedPolicy {
            region: self.region_id,
            version: self.version as u32,
            published_at: self.published_at,
            digest: hex(&self.digest),
            document: self.document,
            policy,
        })
    }
}
