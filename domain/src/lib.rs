//! Drawbridge's pure domain, in two areas over shared foundations:
//!
//! - [`allocation`]: who may have which appointment and who gets it: region policies,
//!   eligibility with reasons, capacity as slot pairs, the waiting pool, the seeded draw and its
//!   fairness tests, offers and check-in;
//! - [`waiting_room`]: metering a surge into the APIs: room configuration and tokens, tickets,
//!   queues, the pre-queue shuffle and proof of work;
//! - at the top: what both use and what registering needs: signed tokens, booking and SMS
//!   codes, phone numbers, a registrant's fields and their sealing at rest, staff roles,
//!   languages.
//!
//! No I/O and no async, so every rule can be tested in isolation and every decision replayed
//! on any machine from published inputs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod allocation;
pub mod booking_code;
mod json;
pub mod language;
mod mac;
pub mod personal_data;
pub mod phone;
pub mod registrant;
pub mod staff;
pub mod token;
pub mod verification;
pub mod waiting_room;

pub use allocation::booking::{
    checkin, is_pass_key, pass_path, BookingAtDoor, BookingReference, CheckinPass, CheckinRefusal, Dose,
    OfferLink,
};
pub use allocation::capacity::{plan, CapacityError, CapacityRequest, PlannedPair};
pub use allocation::draw::{
    draw, Candidate, DrawError, DrawInput, DrawOutcome, FreePair, Manifest, Match, Pseudonym, Seed,
};
pub use allocation::eligibility::{
    eligible_vaccines, evaluate, Evaluation, Person, Reason, Rule, VaccineDecision,
};
pub use allocation::pass_keys::{JwkSet, JwkSetError, PassKeyring, PassSigningKey, PublicPassKeys};
pub use allocation::policy::{
    DrawSettings, IntervalWindow, Label, Policy, PolicyError, PriorityGroup, Reserve, Vaccine,
};
pub use booking_code::{BookingCode, BookingCodeError};
pub use language::Language;
pub use mac::message_digest;
pub use personal_data::{Field, OpenError, PersonalDataKeys, SealingKey};
pub use phone::{PhoneError, PhoneNumber, DEFAULT_COUNTRY_CODE};
pub use registrant::{BirthYear, DistanceKm, Email, FieldError, Initials, Postcode};
pub use staff::{Role, StaffMember, StaffRefusal};
pub use token::{Keyring, KeyringError, SigningKey, TokenError, Verified};
pub use verification::{VerificationCode, VerificationCodeError};
pub use waiting_room::lineup::{Lineup, Order, Shuffle};
pub use waiting_room::queue::{Queue, Standing};
pub use waiting_room::room::{
    AdmissionPace, Advance, ClientSecret, RoomClaims, RoomConfig, RoomConfigError, RoomMode, RoomTokenError,
};
