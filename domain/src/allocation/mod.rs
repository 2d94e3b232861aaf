//! Allocation: from the published rules to the vaccination door. A region's [`policy`] says who
//! may have which vaccine from when ([`eligibility`], with reasons); centres publish [`capacity`]
//! as slot pairs; the [`waiting`] pool is who may enter a draw and which centres they reach
//! ([`geo`]); the seeded [`draw`] decides the offers and [`fairness`] tests a draw's record;
//! [`booking`] covers offer links, check-in passes and the check at the door.

pub mod booking;
pub mod capacity;
pub mod draw;
pub mod eligibility;
pub mod fairness;
pub mod geo;
pub mod pass_keys;
pub mod policy;
pub mod waiting;
