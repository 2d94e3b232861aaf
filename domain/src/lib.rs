//! Drawbridge's pure domain: region policies, eligibility with reasons, booking codes, signed
//! tokens, phone numbers and SMS codes, and the rules of the waiting rooms.
//!
//! No I/O and no async, so every rule can be tested in isolation and every decision replayed
//! on any machine from published inputs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod booking;
pub mod booking_code;
pub mod capacity;
pub mod draw;
pub mod eligibility;
pub mod fairness;
pub mod geo;
mod json;
pub mod language;
pub mod lineup;
mod mac;
pub mod phone;
pub mod policy;
pub mod pow;
pub mod queue;
pub mod registrant;
pub mod room;
pub mod staff;
pub mod tickets;
pub mod token;
pub mod verification;
pub mod waiting;

pub use booking::{checkin, BookingAtDoor, CheckinPass, CheckinRefusal, Dose, OfferLink};
pub use booking_code::{BookingCode, BookingCodeError};
pub use capacity::{plan, CapacityError, CapacityRequest, PlannedPair};
pub use draw::{
    draw, Candidate, DrawError, DrawInput, DrawOutcome, FreePair, Manifest, Match, Pseudonym, Seed,
};
pub use eligibility::{eligible_vaccines, evaluate, Evaluation, Person, Reason, Rule, VaccineDecision};
pub use language::Language;
pub use lineup::{Lineup, Order, Shuffle};
pub use phone::{PhoneError, PhoneNumber, DEFAULT_COUNTRY_CODE};
pub use policy::{DrawSettings, IntervalWindow, Policy, PolicyError, PriorityGroup, Reserve, Vaccine};
pub use queue::{Queue, Standing};
pub use registrant::{BirthYear, DistanceKm, Email, FieldError, Postcode};
pub use room::{
    AdmissionPace, Advance, ClientSecret, RoomClaims, RoomConfig, RoomConfigError, RoomMode, RoomTokenError,
};
pub use staff::{Role, StaffMember, StaffRefusal};
pub use token::{Keyring, KeyringError, SigningKey, TokenError, Verified};
pub use verification::{VerificationCode, VerificationCodeError};
