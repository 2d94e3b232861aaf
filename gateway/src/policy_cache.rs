//! Policies are read on almost every request but change a few times a year, so each gateway
//! keeps them in memory for a few seconds instead of asking Postgres every time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use drawbridge_platform::policies::{self, PublishedPolicy};
use sqlx::PgPool;

use crate::error::ApiError;

/// A newly published version reaches every gateway within this time.
const FRESHNESS: Duration = Duration::from_secs(5);

pub struct PolicyCache {
    pool: PgPool,
    entries: RwLock<HashMap<String, (Instant, Arc<PublishedPolicy>)>>,
}

impl PolicyCache {
    pub fn new(pool: PgPool) -> Self {
        PolicyCache {
            pool,
            entries: RwLock::default(),
        }
    }

    /// Forgets the region's policy, so the next request reads the version just published.
    pub fn forget(&self, region: &str) {
        self.entries.write().expect("poisoned").remove(region);
    }

    /// The region's current policy; 404 for a region that does not exist.
    pub async fn current(&self, region: &str) -> Result<Arc<PublishedPolicy>, ApiError> {
        if let Some((fetched, policy)) = self.entries.read().expect("poisoned").get(region) {
            if fetched.elapsed() < FRESHNESS {
                return Ok(policy.clone());
            }
        }
        let mut connection = self.pool.acquire().await?;
        let policy = policies::current(&mut connection, region)
            .await?
            .map(Arc::new)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "There is no region {region:?}. See GET /v1/regions for the list."
                ))
            })?;
        self.entries
            .write()
            .expect("poisoned")
            .insert(region.to_owned(), (Instant::now(), policy.clone()));
        Ok(policy)
    }
}
