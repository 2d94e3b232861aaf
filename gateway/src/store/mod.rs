//! Every SQL statement of the gateway, with its row types, the batching of busy writes and the
//! outbox step. Nothing above this module writes SQL. Each statement is whole, static text
//! (short ones beside their function, the batched ones in `sql/`), declared with
//! [`statements!`] so that a test prepares every one against the migrated schema: a renamed
//! column fails CI, not production.
//!
//! Functions take a `&mut PgConnection` when they belong in a caller's transaction (the use
//! cases decide what is one transaction) and the pool when they stand alone.

mod batch;
pub mod bookings;
pub mod callers;
pub mod capacity;
pub mod messages;
pub mod offers;
pub mod personal_data;
pub mod registrants;
pub mod retention;
pub mod staff;
pub mod verifications;

use prometheus::HistogramVec;
use sqlx::{PgPool, Postgres, Transaction};

use batch::Batcher;

use drawbridge_platform::statements;

/// The gateway's access to Postgres: the pool, and the batchers that turn concurrent
/// registrations, verifications and acceptances into shared statements.
pub struct Store {
    pool: PgPool,
    registrations: Batcher<registrants::NewRegistration, registrants::Registered>,
    verifications: Batcher<verifications::Guess, verifications::Verification>,
    acceptances: Batcher<offers::Acceptance, bool>,
}

impl Store {
    /// Starts the batchers; `batch_sizes` observes their batches, labelled by statement.
    pub fn new(pool: PgPool, batch_sizes: &HistogramVec, phones: registrants::PhoneLimits) -> Self {
        Store {
            registrations: registrants::batcher(
                pool.clone(),
                batch_sizes.with_label_values(&["register"]),
                phones,
            ),
            verifications: verifications::batcher(pool.clone(), batch_sizes.with_label_values(&["verify"])),
            acceptances: offers::batcher(pool.clone(), batch_sizes.with_label_values(&["accept"])),
            pool,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Opens a transaction.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}

/// Every statement of the gateway, `module::NAME` and its text, for the schema check.
pub fn all_statements() -> Vec<(String, &'static str)> {
    drawbridge_platform::list_statements(&[
        ("bookings", bookings::STATEMENTS),
        ("callers", callers::STATEMENTS),
        ("capacity", capacity::STATEMENTS),
        ("messages", messages::STATEMENTS),
        ("offers", offers::STATEMENTS),
        ("personal_data", personal_data::STATEMENTS),
        ("registrants", registrants::STATEMENTS),
        ("retention", retention::STATEMENTS),
        ("staff", staff::STATEMENTS),
        ("verifications", verifications::STATEMENTS),
    ])
}
