//! Offers, bookings and check-in, as far as they are rules rather than storage: the signed
//! offer link, the check-in pass in the confirmation's QR code, and what a scan at the centre
//! means for a booking.
//!
//! The pass is verifiable offline: it is signed with Ed25519 ([`pass_keys`](super::pass_keys)),
//! so a centre's scanner that holds only the published public keys can tell a genuine pass
//! (which booking, where, when) from a forged or altered one without a network; the server
//! then records the dose, once.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::allocation::pass_keys::{PassKeyring, PublicPassKeys};
use crate::token::{Keyring, TokenError};

/// Token purpose of the link in an offer message.
pub const OFFER_LINK: &str = "offer";

/// What the link in an offer message proves: that we sent it, for this one offer. It expires
/// with the offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferLink {
    /// The offer it answers.
    pub offer: Uuid,
}

impl OfferLink {
    /// The token for the link, valid until the offer expires.
    pub fn sign(&self, keyring: &Keyring, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> String {
        keyring.sign(OFFER_LINK, self, now.timestamp(), expires_at.timestamp())
    }

    /// The offer a link token is for, if it is genuine and the offer has not expired.
    pub fn verify(keyring: &Keyring, token: &str, now: DateTime<Utc>) -> Result<OfferLink, TokenError> {
        keyring
            .verify(OFFER_LINK, token, now.timestamp())
            .map(|verified| verified.claims)
    }
}

/// The check-in pass: a booking, its centre and both appointments, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinPass {
    /// The booking.
    #[serde(rename = "b")]
    pub booking: Uuid,
    /// The centre where it is valid.
    #[serde(rename = "c")]
    pub centre: String,
    /// First (or only) appointment.
    #[serde(rename = "f")]
    pub first_at: DateTime<Utc>,
    /// Second appointment, `None` for one-dose vaccines.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub second_at: Option<DateTime<Utc>>,
}

/// The short reference of a booking people read out at the door or on the phone,
/// `B-1A2B-3C4D`: the first 32 bits of the booking's id, so not a secret and not unique on its
/// own; the door pairs it with the holder's birth year and the centre.
pub struct BookingReference;

impl BookingReference {
    /// The reference of `booking`.
    pub fn of(booking: Uuid) -> String {
        let hex = booking.simple().to_string().to_ascii_uppercase();
        format!("B-{}-{}", &hex[..4], &hex[4..8])
    }

    /// The lowest and highest booking id with reference `text` (case, spaces and dashes
    /// forgiven), or `None` if it is not a reference.
    pub fn id_range(text: &str) -> Option<(Uuid, Uuid)> {
        let hex: String = text
            .trim()
            .trim_start_matches(['B', 'b'])
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .collect();
        if hex.len() != 8 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let prefix = u128::from(u32::from_str_radix(&hex, 16).ok()?) << 96;
        Some((
            Uuid::from_u128(prefix),
            Uuid::from_u128(prefix | (u128::MAX >> 32)),
        ))
    }
}

/// The path of a booking's pass page, `/pass/{booking}/{key}`, for messages and pages that
/// cannot carry a QR code (SMS). The key is a keyed hash of the booking (80 bits), so the
/// path opens that one booking's pass, needs no stored secret, and cannot be made up from a
/// booking reference.
pub fn pass_path(hash_key: &[u8], booking: Uuid) -> String {
    format!("/pass/{}/{}", booking.simple(), pass_key(hash_key, booking))
}

/// Whether `key` is the key of `booking`'s pass path (compared in constant time).
pub fn is_pass_key(hash_key: &[u8], booking: Uuid, key: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(pass_key(hash_key, booking).as_bytes(), key.as_bytes()).into()
}

fn pass_key(hash_key: &[u8], booking: Uuid) -> String {
    let mac = crate::mac::keyed_hash(hash_key, &[b"pass-path:", booking.as_bytes()]);
    mac[..10].iter().map(|byte| format!("{byte:02x}")).collect()
}

/// How long after its last appointment a pass still scans (a late arrival on the day).
pub const PASS_GRACE: Duration = Duration::days(1);

impl CheckinPass {
    /// The pass's token, valid until a day after the last appointment.
    pub fn sign(&self, keys: &PassKeyring, now: DateTime<Utc>) -> String {
        let last = self.second_at.unwrap_or(self.first_at);
        keys.sign(self, now.timestamp(), (last + PASS_GRACE).timestamp())
    }

    /// The pass a token carries, if genuine and not expired: checked with the public keys only.
    pub fn verify(keys: &PublicPassKeys, token: &str, now: DateTime<Utc>) -> Result<CheckinPass, TokenError> {
        keys.verify(token.trim(), now.timestamp())
    }
}

/// How early before an appointment a person may be checked in.
pub const EARLY_ARRIVAL: Duration = Duration::hours(2);

/// A booking as the centre's scanner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingAtDoor {
    /// Where it is booked.
    pub centre: String,
    /// `booked`, `first_dose_given`, `completed` or `cancelled`.
    pub state: String,
    /// First appointment.
    pub first_at: DateTime<Utc>,
    /// Second appointment, `None` for one-dose vaccines.
    pub second_at: Option<DateTime<Utc>>,
}

/// Which dose a scan records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dose {
    /// The first dose; for a one-dose vaccine, the only one.
    First,
    /// The second dose.
    Second,
}

/// Why a genuine pass is refused at the door; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckinRefusal {
    /// The pass is for another centre.
    #[error("this booking is for another centre ({0}); please send the person there")]
    WrongCentre(String),
    /// The booking was cancelled.
    #[error("this booking was cancelled; the person may register again")]
    Cancelled,
    /// Every dose of the booking was given already.
    #[error("this pass was already used for every dose of the booking")]
    AlreadyUsed,
    /// Too early for the next appointment.
    #[error("too early: the next appointment is at {0}; check-in opens two hours before")]
    TooEarly(DateTime<Utc>),
}

impl CheckinRefusal {
    /// Stable code for programs.
    pub fn code(&self) -> &'static str {
        match self {
            CheckinRefusal::WrongCentre(_) => "wrong_centre",
            CheckinRefusal::Cancelled => "booking_cancelled",
            CheckinRefusal::AlreadyUsed => "already_used",
            CheckinRefusal::TooEarly(_) => "too_early",
        }
    }
}

/// The dose a scan at `centre` at `now` records for `booking`, or why it is refused.
pub fn checkin(booking: &BookingAtDoor, centre: &str, now: DateTime<Utc>) -> Result<Dose, CheckinRefusal> {
    if booking.centre != centre {
        return Err(CheckinRefusal::WrongCentre(booking.centre.clone()));
    }
    let (dose, at) = match (booking.state.as_str(), booking.second_at) {
        ("cancelled", _) => return Err(CheckinRefusal::Cancelled),
        ("booked", _) => (Dose::First, booking.first_at),
        ("first_dose_given", Some(second)) => (Dose::Second, second),
        _ => return Err(CheckinRefusal::AlreadyUsed),
    };
    if now < at - EARLY_ARRIVAL {
        return Err(CheckinRefusal::TooEarly(at));
    }
    Ok(dose)
}

/// The state a booking moves to after `dose` was given.
pub fn after_dose(dose: Dose, two_doses: bool) -> &'static str {
    match (dose, two_doses) {
        (Dose::First, true) => "first_dose_given",
        _ => "completed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::pass_keys::PassSigningKey;
    use crate::token::SigningKey;
    use chrono::TimeZone;

    #[test]
    fn a_reference_names_the_ids_it_may_be() {
        let booking = Uuid::parse_str("1a2b3c4d-5e6f-4a8b-9c0d-112233445566").unwrap();
        let reference = BookingReference::of(booking);
        assert_eq!(reference, "B-1A2B-3C4D");
        for written in [reference.as_str(), "b-1a2b-3c4d", " B 1A2B 3C4D "] {
            let (low, high) = BookingReference::id_range(written).unwrap();
            assert!(low <= booking && booking <= high, "{written}");
            assert_eq!(BookingReference::of(low), reference);
            assert_eq!(BookingReference::of(high), reference);
        }
        for bad in ["", "B-1A2B", "B-1A2B-3C4G", "B-1A2B-3C4D5"] {
            assert!(BookingReference::id_range(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_pass_path_opens_its_booking_only() {
        let (key, booking, other) = (b"hash key".as_slice(), Uuid::new_v4(), Uuid::new_v4());
        let path = pass_path(key, booking);
        let (id, pass_key) = path.trim_start_matches("/pass/").split_once('/').unwrap();
        assert_eq!((id, pass_key.len()), (booking.simple().to_string().as_str(), 20));
        assert!(is_pass_key(key, booking, pass_key));
        assert!(!is_pass_key(key, other, pass_key));
        assert!(!is_pass_key(b"another key", booking, pass_key));
        assert!(!is_pass_key(key, booking, &pass_key[..19]));
    }

    fn keyring() -> Keyring {
        Keyring::new(vec![SigningKey {
            id: "k1".into(),
            secret: vec![7; 32],
        }])
        .unwrap()
    }

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2021, 5, day, hour, 0, 0).unwrap()
    }

    fn booking(state: &str) -> BookingAtDoor {
        BookingAtDoor {
            centre: "stuttgart".into(),
            state: state.into(),
            first_at: at(3, 9),
            second_at: Some(at(31, 9)),
        }
    }

    #[test]
    fn a_pass_verifies_until_a_day_after_the_last_appointment_and_not_when_altered() {
        let keys = PassKeyring::new(vec![PassSigningKey {
            id: "p1".into(),
            seed: [3; 32],
        }])
        .unwrap();
        let pass = CheckinPass {
            booking: Uuid::from_u128(7),
            centre: "stuttgart".into(),
            first_at: at(3, 9),
            second_at: Some(at(31, 9)),
        };
        let token = pass.sign(&keys, at(1, 8));
        let door = keys.public();
        assert_eq!(CheckinPass::verify(door, &token, at(31, 10)).unwrap(), pass);
        assert_eq!(
            CheckinPass::verify(door, &token, at(31, 9) + PASS_GRACE),
            Err(TokenError::Expired)
        );
        let mut altered = token.clone().into_bytes();
        let middle = altered.len() / 2;
        altered[middle] = if altered[middle] == b'A' { b'B' } else { b'A' };
        assert!(CheckinPass::verify(door, std::str::from_utf8(&altered).unwrap(), at(3, 9)).is_err());
        // An offer link is not a pass.
        let link = OfferLink {
            offer: Uuid::from_u128(7),
        }
        .sign(&keyring(), at(1, 8), at(2, 8));
        assert_eq!(
            CheckinPass::verify(door, &link, at(1, 9)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn an_offer_link_verifies_until_its_offer_expires() {
        let link = OfferLink {
            offer: Uuid::from_u128(7),
        }
        .sign(&keyring(), at(1, 8), at(2, 8));
        assert_eq!(
            OfferLink::verify(&keyring(), &link, at(1, 9)).unwrap().offer,
            Uuid::from_u128(7)
        );
        assert_eq!(
            OfferLink::verify(&keyring(), &link, at(2, 8)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn scans_give_each_dose_once_at_the_right_centre_and_time() {
        assert_eq!(
            checkin(&booking("booked"), "stuttgart", at(3, 8)),
            Ok(Dose::First)
        );
        assert_eq!(
            checkin(&booking("booked"), "ulm", at(3, 9)),
            Err(CheckinRefusal::WrongCentre("stuttgart".into()))
        );
        assert_eq!(
            checkin(&booking("booked"), "stuttgart", at(3, 6)),
            Err(CheckinRefusal::TooEarly(at(3, 9)))
        );
        assert_eq!(
            checkin(&booking("first_dose_given"), "stuttgart", at(3, 10)),
            Err(CheckinRefusal::TooEarly(at(31, 9)))
        );
        assert_eq!(
            checkin(&booking("first_dose_given"), "stuttgart", at(31, 9)),
            Ok(Dose::Second)
        );
        assert_eq!(
            checkin(&booking("completed"), "stuttgart", at(31, 9)),
            Err(CheckinRefusal::AlreadyUsed)
        );
        assert_eq!(
            checkin(&booking("cancelled"), "stuttgart", at(3, 9)),
            Err(CheckinRefusal::Cancelled)
        );
        let one_dose = BookingAtDoor {
            second_at: None,
            ..booking("first_dose_given")
        };
        assert_eq!(
            checkin(&one_dose, "stuttgart", at(3, 9)),
            Err(CheckinRefusal::AlreadyUsed)
        );
        assert_eq!(after_dose(Dose::First, true), "first_dose_given");
        assert_eq!(after_dose(Dose::First, false), "completed");
        assert_eq!(after_dose(Dose::Second, true), "completed");
    }
}
