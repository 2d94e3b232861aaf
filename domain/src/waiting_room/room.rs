//! Waiting rooms: their configuration, the claims of the tokens they hand out, and the
//! arithmetic of a queue (positions, estimated waits, admission pace). No I/O: the gateway
//! keeps the state in Redis and uses these rules.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::json;
use crate::token::{Keyring, TokenError, Verified};
use crate::waiting_room::lineup::Order;

/// Token purpose of a queue ticket (from join).
pub const TICKET_PURPOSE: &str = "room-ticket";
/// Token purpose of an admission token (from status, once admitted).
pub const ADMISSION_PURPOSE: &str = "room-admission";
/// Token purpose of a proof-of-work challenge.
pub const CHALLENGE_PURPOSE: &str = "room-challenge";

/// How a room treats its visitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RoomMode {
    /// Pre-queue lottery at opening, then first come, first served.
    #[default]
    Fifo,
    /// A lottery for the whole queue: each draw covers everyone who joined since the last one.
    Random,
    /// No queue: everyone is admitted and the guarded APIs let everything through.
    Passthrough,
    /// Nobody may join; tickets and admissions already handed out stay valid.
    Closed,
}

impl RoomMode {
    /// The queue order of a metered room; `None` for rooms that do not queue.
    pub fn order(self) -> Option<Order> {
        match self {
            RoomMode::Fifo => Some(Order::Fifo),
            RoomMode::Random => Some(Order::Random),
            RoomMode::Passthrough | RoomMode::Closed => None,
        }
    }
}

/// A room's configuration, set at run time by an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomConfig {
    /// See [`RoomMode`].
    pub mode: RoomMode,
    /// Everyone who joins before this is in the pre-queue and drawn at this time.
    pub opens_at: DateTime<Utc>,
    /// Admissions per minute at most.
    pub admit_per_minute: u32,
    /// Admitted people whose session has not ended, at most.
    pub max_active: u32,
    /// How long an admission lasts.
    pub session_seconds: u32,
    /// A queued client that does not poll for this long loses its place.
    pub idle_seconds: u32,
    /// Leading zero bits of SHA-256 a join must show (0: no proof of work).
    pub pow_difficulty: u8,
    /// Regions whose registration APIs need an admission token of this room.
    pub guards: Vec<String>,
    /// Where the waiting page sends admitted people (a path on this site).
    pub target_path: String,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            mode: RoomMode::Fifo,
            opens_at: DateTime::UNIX_EPOCH,
            admit_per_minute: 600,
            max_active: 1000,
            session_seconds: 900,
            idle_seconds: 60,
            pow_difficulty: 0,
            guards: Vec::new(),
            target_path: "/".into(),
        }
    }
}

/// Hardest proof of work a room may ask for: about 2^24 hashes, seconds in a browser.
pub const MAX_POW_DIFFICULTY: u8 = 24;

/// A configuration value that cannot be used; `field` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RoomConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong, as a sentence.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> RoomConfigError {
    RoomConfigError {
        field,
        message: message.into(),
    }
}

fn check_range(field: &'static str, value: u32, min: u32, max: u32) -> Result<(), RoomConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ))
    }
}

/// Room names and guarded region ids: 1 to 40 of `a-z`, `0-9` and `-`, so they are safe in
/// Redis keys, paths and cookie names.
pub fn is_valid_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl RoomConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), RoomConfigError> {
        check_range("admit_per_minute", self.admit_per_minute, 1, 1_000_000)?;
        check_range("max_active", self.max_active, 1, 10_000_000)?;
        check_range("session_seconds", self.session_seconds, 1, 86_400)?;
        // Clients poll at least every second, so three missed polls is the least idleness.
        check_range("idle_seconds", self.idle_seconds, 3, 3_600)?;
        if self.pow_difficulty > MAX_POW_DIFFICULTY {
            return Err(invalid(
                "pow_difficulty",
                format!(
                    "must be at most {MAX_POW_DIFFICULTY}, got {}",
                    self.pow_difficulty
                ),
            ));
        }
        if let Some(bad) = self.guards.iter().find(|g| !is_valid_name(g)) {
            return Err(invalid(
                "guards",
                format!("{bad:?} is not a region id (1 to 40 of a-z, 0-9, -)"),
            ));
        }
        // A path on this site only, so the waiting page cannot be turned into an open redirect.
        let path = &self.target_path;
        let safe = path.starts_with('/')
            && !path.starts_with("//")
            && path.len() <= 200
            && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
        if !safe {
            return Err(invalid(
                "target_path",
                format!("must be a path on this site such as /regions/bw/check, got {path:?}"),
            ));
        }
        Ok(())
    }
}

/// What ticket and admission tokens assert. Short field names: they travel in every poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomClaims {
    /// The room.
    #[serde(rename = "r")]
    pub room: String,
    /// The ticket number (0 in a passthrough room).
    #[serde(rename = "t")]
    pub ticket: u64,
    /// The client binding: see [`ClientSecret::binding`].
    #[serde(rename = "c")]
    pub client: String,
    /// A unique id, so every token can be told apart in logs and revoked.
    #[serde(rename = "j")]
    pub id: String,
}

impl RoomClaims {
    /// The claims from their JSON: by hand as serde writes them (every status poll reads
    /// one), or else with serde.
    pub fn read(json: &[u8]) -> Option<RoomClaims> {
        Self::read_as_written(json).or_else(|| serde_json::from_slice(json).ok())
    }

    /// `{"r":"<room>","t":<ticket>,"c":"<binding>","j":"<id>"}`, exactly.
    fn read_as_written(json: &[u8]) -> Option<RoomClaims> {
        let (room, rest) = json::plain_string(json.strip_prefix(b"{\"r\":\"")?)?;
        let (ticket, rest) = json::integer(rest.strip_prefix(b",\"t\":")?)?;
        let (client, rest) = json::plain_string(rest.strip_prefix(b",\"c\":\"")?)?;
        let (id, rest) = json::plain_string(rest.strip_prefix(b",\"j\":\"")?)?;
        if rest != b"}" {
            return None;
        }
        Some(RoomClaims {
            room: room.to_owned(),
            ticket: u64::try_from(ticket).ok()?,
            client: client.to_owned(),
            id: id.to_owned(),
        })
    }
}

/// Verifies a room token (ticket, admission or challenge) of `purpose`.
pub fn verify(
    keyring: &Keyring,
    purpose: &str,
    token: &str,
    now: i64,
) -> Result<Verified<RoomClaims>, TokenError> {
    keyring.verify_with(purpose, token, now, RoomClaims::read)
}

/// 96 random bits, base64url: unique ids for tokens.
pub fn random_id(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; 12];
    rng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What a spent admission keeps of the phone number it registered: 128 bits of its keyed hash,
/// base64url. The same registration sent again (its answer lost) matches, any other phone
/// number does not, and the rooms' store holds no phone number.
pub fn admitted_phone(key: &[u8], phone: &str) -> String {
    let hash = crate::mac::keyed_hash(key, &[b"admitted-phone:", phone.as_bytes()]);
    URL_SAFE_NO_PAD.encode(&hash[..16])
}

/// A client's secret, kept in an HttpOnly cookie; tokens carry only its hash, so a copied
/// token without the cookie is useless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// 128 fresh random bits.
    pub fn generate(rng: &mut impl RngCore) -> ClientSecret {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        ClientSecret(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Reads a secret back from its cookie; `None` unless it has the generated shape.
    pub fn parse(text: &str) -> Option<ClientSecret> {
        let mut bytes = [0u8; 16];
        let len = URL_SAFE_NO_PAD.decode_slice(text, &mut bytes).ok()?;
        (len == 16).then(|| ClientSecret(text.to_owned()))
    }

    /// The cookie value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What tokens carry: 128 bits of SHA-256 of the secret, base64url.
    pub fn binding(&self) -> String {
        String::from_utf8_lossy(&self.binding_bytes()).into_owned()
    }

    /// Whether a token's `binding` is this secret's, without building a string (every status
    /// poll asks).
    pub fn binds(&self, binding: &str) -> bool {
        self.binding_bytes() == binding.as_bytes()
    }

    fn binding_bytes(&self) -> [u8; 22] {
        let mut binding = [0u8; 22];
        URL_SAFE_NO_PAD
            .encode_slice(&Sha256::digest(self.0.as_bytes())[..16], &mut binding)
            .expect("16 bytes are 22 base64 characters");
        binding
    }
}

/// Why a genuine-looking room token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoomTokenError {
    /// No token was sent.
    #[error("this request needs a waiting-room token; please join the waiting room first")]
    Missing,
    /// The token itself failed verification.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A genuine token of another room.
    #[error("this token belongs to another waiting room")]
    ForeignRoom,
    /// The token was issued to another client (or the client cookie is missing).
    #[error("this token was issued to another browser; please join from this one")]
    WrongClient,
    /// The ticket gave up its place (left, or stopped polling).
    #[error("this place in the queue was given up; please join again")]
    Dropped,
}

impl RoomTokenError {
    /// A stable code for programs.
    pub fn code(&self) -> &'static str {
        match self {
            RoomTokenError::Missing => "token_missing",
            RoomTokenError::Token(TokenError::Malformed) => "token_malformed",
            RoomTokenError::Token(TokenError::UnknownKey) => "token_unknown_key",
            RoomTokenError::Token(TokenError::BadSignature) => "token_bad_signature",
            RoomTokenError::Token(TokenError::WrongPurpose) => "token_wrong_purpose",
            RoomTokenError::Token(TokenError::Expired) => "token_expired",
            RoomTokenError::Token(TokenError::NotYetValid) => "token_not_yet_valid",
            RoomTokenError::Token(TokenError::BadClaims) => "token_bad_claims",
            RoomTokenError::ForeignRoom => "token_foreign_room",
            RoomTokenError::WrongClient => "token_wrong_client",
            RoomTokenError::Dropped => "ticket_dropped",
        }
    }
}

/// Checks that a verified token belongs to `room` and to the client holding `secret`.
pub fn check_claims(
    verified: Result<Verified<RoomClaims>, TokenError>,
    room: &str,
    secret: Option<&ClientSecret>,
) -> Result<Verified<RoomClaims>, RoomTokenError> {
    let verified = verified?;
    if verified.claims.room != room {
        return Err(RoomTokenError::ForeignRoom);
    }
    match secret {
        Some(secret) if secret.binds(&verified.claims.client) => Ok(verified),
        _ => Err(RoomTokenError::WrongClient),
    }
}

/// Estimated seconds until a client `ahead` places from the front is admitted: at the measured
/// pace, or the configured one while there is no measurement yet, plus the time until opening.
pub fn estimate_wait_seconds(
    ahead: u64,
    measured_per_minute: f64,
    configured_per_minute: u32,
    seconds_until_open: i64,
) -> u64 {
    let per_minute = if measured_per_minute > 0.0 {
        measured_per_minute
    } else {
        f64::from(configured_per_minute.max(1))
    };
    let queue = (ahead as f64 * 60.0 / per_minute).ceil() as u64;
    queue + seconds_until_open.max(0) as u64
}

/// When a client should poll next: rarely when the wait is long, every second near the front,
/// and always well within `idle_seconds` so that polling clients never count as idle.
pub fn poll_after_seconds(eta_seconds: u64, idle_seconds: u32) -> u32 {
    let longest = (idle_seconds / 3).clamp(1, 30);
    ((eta_seconds / 10) as u32).clamp(1, longest)
}

/// A point in the record of admissions: every place up to `through` was reached at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advance {
    /// The serving counter after this advance.
    pub through: u64,
    /// When (unix seconds).
    pub at: i64,
}

/// Places the queue advanced per minute over the last `window_seconds` before `now`, from the
/// record of advances (oldest first) and the serving counter before it (`trimmed_through`, 0 if
/// the record is complete).
pub fn measured_rate_per_minute(
    advances: &[Advance],
    trimmed_through: u64,
    now: i64,
    window_seconds: i64,
) -> f64 {
    let since = now - window_seconds;
    let start = advances.partition_point(|a| a.at < since);
    let (Some(last), Some(first_in_window)) = (advances.last(), advances.get(start)) else {
        return 0.0;
    };
    let before = start
        .checked_sub(1)
        .map_or(trimmed_through, |i| advances[i].through);
    // A room whose whole record lies in the window is measured since its first advance.
    let elapsed = if start == 0 && trimmed_through == 0 {
        (now - first_in_window.at).max(1)
    } else {
        window_seconds
    };
    (last.through - before) as f64 * 60.0 / elapsed as f64
}

/// The pace of admissions: a token bucket refilled at `per_minute` that holds at most one
/// second's worth (at least one admission), so a pause never turns into a burst.
#[derive(Debug, Clone, Default)]
pub struct AdmissionPace {
    credit: f64,
}

impl AdmissionPace {
    /// Admissions allowed after `elapsed_seconds` more at `per_minute`.
    pub fn grant(&mut self, per_minute: u32, elapsed_seconds: f64) -> u64 {
        let per_second = f64::from(per_minute) / 60.0;
        let burst = per_second.max(1.0);
        self.credit = (self.credit + per_second * elapsed_seconds.max(0.0)).min(burst);
        let granted = self.credit.floor();
        self.credit -= granted;
        granted as u64
    }

    /// How many of `granted` may be admitted with `active` sessions running and at most
    /// `max_active` allowed.
    pub fn within_capacity(granted: u64, active: u64, max_active: u32) -> u64 {
        granted.min(u64::from(max_active).saturating_sub(active))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::token::{Keyring, SigningKey};

    #[test]
    fn an_admitted_phone_is_told_apart_only_with_the_key() {
        let one = admitted_phone(b"key", "+4915112345678");
        assert_eq!(one, admitted_phone(b"key", "+4915112345678"));
        assert_ne!(one, admitted_phone(b"key", "+4915112345679"));
        assert_ne!(one, admitted_phone(b"other key", "+4915112345678"));
        assert_eq!(one.len(), 22);
    }

    #[test]
    fn claims_read_back_as_serde_would_read_them() {
        let claims = RoomClaims {
            room: "bw-2021-05".into(),
            ticket: 4711,
            client: ClientSecret::generate(&mut rand::thread_rng()).binding(),
            id: random_id(&mut rand::thread_rng()),
        };
        let written = serde_json::to_vec(&claims).unwrap();
        assert_eq!(RoomClaims::read(&written), Some(claims.clone()));
        let reordered =
            serde_json::json!({ "j": claims.id, "c": claims.client, "t": 4711, "r": "bw-2021-05" });
        assert_eq!(RoomClaims::read(reordered.to_string().as_bytes()), Some(claims));
        for bad in [
            &br#"{"r":"a","t":-1,"c":"b","j":"c"}"#[..],
            br#"{"r":"a"}"#,
            b"",
            b"{}",
            b"null",
        ] {
            assert_eq!(RoomClaims::read(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    fn ring() -> Keyring {
        Keyring::new(vec![SigningKey {
            id: "k1".into(),
            secret: vec![3; 32],
        }])
        .unwrap()
    }

    fn claims(room: &str, secret: &ClientSecret, ticket: u64) -> RoomClaims {
        RoomClaims {
            room: room.into(),
            ticket,
            client: secret.binding(),
            id: random_id(&mut rand::thread_rng()),
        }
    }

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn defaults_are_valid_and_every_bad_field_is_named() {
        assert_eq!(RoomConfig::default().validate(), Ok(()));
        let cases: Vec<(&str, RoomConfig)> = vec![
            (
                "admit_per_minute",
                RoomConfig {
                    admit_per_minute: 0,
                    ..Default::default()
                },
            ),
            (
                "max_active",
                RoomConfig {
                    max_active: 0,
                    ..Default::default()
                },
            ),
            (
                "session_seconds",
                RoomConfig {
                    session_seconds: 0,
                    ..Default::default()
                },
            ),
            (
                "idle_seconds",
                RoomConfig {
                    idle_seconds: 2,
                    ..Default::default()
                },
            ),
            (
                "pow_difficulty",
                RoomConfig {
                    pow_difficulty: 25,
                    ..Default::default()
                },
            ),
            (
                "guards",
                RoomConfig {
                    guards: vec!["BW".into()],
                    ..Default::default()
                },
            ),
            (
                "target_path",
                RoomConfig {
                    target_path: "https://evil.example".into(),
                    ..Default::default()
                },
            ),
            (
                "target_path",
                RoomConfig {
                    target_path: "//evil.example".into(),
                    ..Default::default()
                },
            ),
            (
                "target_path",
                RoomConfig {
                    target_path: "/a b".into(),
                    ..Default::default()
                },
            ),
        ];
        for (field, config) in cases {
            assert_eq!(config.validate().unwrap_err().field, field, "{config:?}");
        }
    }

    #[test]
    fn config_reads_from_json_with_defaults_and_refuses_unknown_fields() {
        let config: RoomConfig =
            serde_json::from_str(r#"{"mode":"random","opens_at":"2026-12-01T08:00:00Z"}"#).unwrap();
        assert_eq!(config.mode, RoomMode::Random);
        assert_eq!(config.admit_per_minute, 600);
        assert!(serde_json::from_str::<RoomConfig>(r#"{"mode":"fifo","colour":1}"#).is_err());
        assert!(serde_json::from_str::<RoomConfig>(r#"{"mode":"lottery"}"#).is_err());
    }

    #[test]
    fn names_are_safe_for_keys_paths_and_cookies() {
        for good in ["bw", "bw-2021-05", "a", &"x".repeat(40)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "BW", "b w", "b:w", "b/w", "ü", &"x".repeat(41)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn client_secrets_round_trip_and_bind() {
        let mut rng = rand::thread_rng();
        let secret = ClientSecret::generate(&mut rng);
        assert_eq!(ClientSecret::parse(secret.as_str()), Some(secret.clone()));
        assert_ne!(secret.binding(), ClientSecret::generate(&mut rng).binding());
        for bad in ["", "short", "!!!!!!!!!!!!!!!!!!!!!!", &"A".repeat(4000)] {
            assert_eq!(ClientSecret::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn claims_are_checked_for_room_and_client() {
        let keyring = ring();
        let mut rng = rand::thread_rng();
        let secret = ClientSecret::generate(&mut rng);
        let token = keyring.sign(TICKET_PURPOSE, &claims("bw", &secret, 7), NOW, NOW + 60);
        let verify = || keyring.verify::<RoomClaims>(TICKET_PURPOSE, &token, NOW);
        assert_eq!(
            check_claims(verify(), "bw", Some(&secret)).unwrap().claims.ticket,
            7
        );
        assert_eq!(
            check_claims(verify(), "by", Some(&secret)).unwrap_err(),
            RoomTokenError::ForeignRoom
        );
        let other = ClientSecret::generate(&mut rng);
        assert_eq!(
            check_claims(verify(), "bw", Some(&other)).unwrap_err(),
            RoomTokenError::WrongClient
        );
        assert_eq!(
            check_claims(verify(), "bw", None).unwrap_err(),
            RoomTokenError::WrongClient
        );
        let admission = keyring.verify::<RoomClaims>(ADMISSION_PURPOSE, &token, NOW);
        assert_eq!(
            check_claims(admission, "bw", Some(&secret)).unwrap_err().code(),
            "token_wrong_purpose"
        );
    }

    #[test]
    fn waits_are_estimated_from_the_measured_pace() {
        assert_eq!(estimate_wait_seconds(600, 0.0, 600, 0), 60);
        assert_eq!(estimate_wait_seconds(600, 1200.0, 600, 0), 30);
        assert_eq!(estimate_wait_seconds(1, 0.0, 600, 100), 101);
        assert_eq!(estimate_wait_seconds(0, 0.0, 0, -5), 0);
    }

    #[test]
    fn polls_are_polite_and_never_idle() {
        assert_eq!(poll_after_seconds(0, 60), 1);
        assert_eq!(poll_after_seconds(100, 60), 10);
        assert_eq!(poll_after_seconds(10_000, 60), 20);
        assert_eq!(poll_after_seconds(10_000, 3_600), 30);
        assert_eq!(poll_after_seconds(10_000, 3), 1);
    }

    #[test]
    fn the_rate_is_measured_over_the_window() {
        let advances = [
            Advance {
                through: 10,
                at: NOW - 120,
            },
            Advance {
                through: 40,
                at: NOW - 50,
            },
            Advance {
                through: 70,
                at: NOW - 10,
            },
        ];
        // 60 places in the last minute.
        assert_eq!(measured_rate_per_minute(&advances, 0, NOW, 60), 60.0);
        // Opened 20 s ago: 30 places in 20 s.
        let fresh = [
            Advance {
                through: 10,
                at: NOW - 20,
            },
            Advance { through: 30, at: NOW },
        ];
        assert_eq!(measured_rate_per_minute(&fresh, 0, NOW, 60), 90.0);
        // The same record after trimming: measured over the whole window.
        assert_eq!(measured_rate_per_minute(&fresh, 5, NOW, 60), 25.0);
        assert_eq!(measured_rate_per_minute(&advances, 0, NOW + 1000, 60), 0.0);
        assert_eq!(measured_rate_per_minute(&[], 0, NOW, 60), 0.0);
    }

    /// The pace and the cap over ten simulated minutes of one-second ticks with sessions that
    /// end: never more than the rate (plus one second's burst), never more than `max_active`.
    #[test]
    fn admissions_respect_rate_and_max_active_over_time() {
        let (per_minute, max_active, session) = (120u32, 50u64, 30usize);
        let mut pace = AdmissionPace::default();
        let mut ends: Vec<usize> = Vec::new();
        let mut admitted_at = Vec::new();
        for second in 0..600 {
            ends.retain(|&end| end > second);
            let granted = pace.grant(per_minute, 1.0);
            let admit = AdmissionPace::within_capacity(granted, ends.len() as u64, max_active as u32);
            for _ in 0..admit {
                ends.push(second + session);
                admitted_at.push(second);
            }
            assert!(ends.len() as u64 <= max_active);
        }
        for window_start in 0..540 {
            let in_window = admitted_at
                .iter()
                .filter(|&&s| (window_start..window_start + 60).contains(&s))
                .count();
            assert!(in_window <= 122, "{in_window} admissions in one minute");
        }
        // The cap binds: 50 sessions of 30 s allow 100 per minute, not 120.
        assert!((950..=1010).contains(&admitted_at.len()), "{}", admitted_at.len());
    }

    proptest! {
        #[test]
        fn every_validly_signed_room_token_verifies(
            room in "[a-z0-9-]{1,40}",
            ticket in any::<u64>(),
            lifetime in 1i64..100_000,
            admission in any::<bool>(),
        ) {
            let keyring = ring();
            let secret = ClientSecret::generate(&mut rand::thread_rng());
            let purpose = if admission { ADMISSION_PURPOSE } else { TICKET_PURPOSE };
            let claims = claims(&room, &secret, ticket);
            let token = keyring.sign(purpose, &claims, NOW, NOW + lifetime);
            let verified = check_claims(keyring.verify(purpose, &token, NOW + lifetime - 1), &room, Some(&secret));
            prop_assert_eq!(verified.map(|v| v.claims), Ok(claims));
        }

        #[test]
        fn no_tampered_room_token_verifies(
            position in any::<prop::sample::Index>(),
            mask in 1u8..,
            admission in any::<bool>(),
        ) {
            let keyring = ring();
            let secret = ClientSecret::generate(&mut rand::thread_rng());
            let purpose = if admission { ADMISSION_PURPOSE } else { TICKET_PURPOSE };
            let mut bytes = keyring.sign(purpose, &claims("bw", &secret, 42), NOW, NOW + 60).into_bytes();
            let position = position.index(bytes.len());
            bytes[position] ^= mask;
            if let Ok(tampered) = String::from_utf8(bytes) {
                let verified = keyring.verify::<RoomClaims>(purpose, &tampered, NOW);
                prop_assert!(check_claims(verified, "bw", Some(&secret)).is_err());
            }
        }

        #[test]
        fn the_pace_never_exceeds_its_rate(
            per_minute in 1u32..100_000,
            ticks in prop::collection::vec(0.0f64..3.0, 1..200),
        ) {
            let mut pace = AdmissionPace::default();
            let granted: u64 = ticks.iter().map(|&dt| pace.grant(per_minute, dt)).sum();
            let elapsed: f64 = ticks.iter().sum();
            let allowed = f64::from(per_minute) / 60.0 * elapsed;
            prop_assert!(granted as f64 <= allowed + 1e-6, "{} > {}", granted, allowed);
        }
    }
}
