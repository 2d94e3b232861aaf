//! One format for every signed token the system hands out (waiting-room tickets, admission
//! tokens, links in messages): `<key id>.<payload>.<mac>`, base64url without padding.
//!
//! The payload is JSON `{"p":purpose,"iat":…,"nbf":…,"exp":…,"c":claims}` and the MAC is
//! HMAC-SHA256 over `<key id>.<payload>` with the key's secret. Gateways verify tokens without
//! any shared state, and keys rotate by listing the new key last: it signs from then on, while
//! tokens signed by older listed keys keep verifying until they expire.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::Mac as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{json, mac};

/// Longest token `verify` looks at; anything longer is rejected before any work is done, so
/// garbage is cheap to turn away.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Shortest secret accepted: 256 bits, the HMAC-SHA256 output size.
pub const MIN_SECRET_LEN: usize = 32;
/// Decoded payloads up to this size are decoded on the stack.
const STACK_PAYLOAD: usize = 512;
/// Longest key id accepted; ids travel in every token.
const MAX_KEY_ID_LEN: usize = 32;

/// A named HMAC key. `Debug` never prints the secret.
#[derive(Clone)]
pub struct SigningKey {
    /// Public name of the key, written into every token it signs.
    pub id: String,
    /// The secret; at least [`MIN_SECRET_LEN`] random bytes.
    pub secret: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("secret", &format_args!("<{} bytes redacted>", self.secret.len()))
            .finish()
    }
}

/// The keys a process signs and verifies with. The last listed key is the newest and signs;
/// all listed keys verify.
#[derive(Debug, Clone)]
pub struct Keyring {
    newest: KeyedMac,
    older: Vec<KeyedMac>,
}

/// A key's HMAC with the secret already absorbed, cloned for each token: two SHA-256 blocks
/// fewer per token than keying it again, on every status poll of a surge.
#[derive(Clone)]
struct KeyedMac {
    id: String,
    mac: mac::HmacSha256,
}

impl KeyedMac {
    fn new(key: SigningKey) -> KeyedMac {
        KeyedMac {
            mac: mac::hmac_sha256(&key.secret),
            id: key.id,
        }
    }
}

impl fmt::Debug for KeyedMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedMac")
            .field("id", &self.id)
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

/// Why a set of signing keys cannot be used (a configuration error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No key was configured.
    #[error(
        "no signing keys are configured; configure at least one key with a random secret of \
         at least 32 bytes"
    )]
    Empty,
    /// A key id with characters that cannot appear in tokens, or of the wrong length.
    #[error("signing key id {id:?} is invalid; use 1 to 32 characters from A-Z, a-z, 0-9, '_' and '-'")]
    InvalidId {
        /// The offending id.
        id: String,
    },
    /// Two keys with the same id; tokens could not say which one signed them.
    #[error("signing key id {id:?} is listed twice; give every key its own id")]
    DuplicateId {
        /// The repeated id.
        id: String,
    },
    /// A secret too short to resist brute force.
    #[error("signing key {id:?} has a secret of {len} bytes; secrets must be at least 32 random bytes")]
    SecretTooShort {
        /// The key's id.
        id: String,
        /// The secret's length in bytes.
        len: usize,
    },
}

/// Why a token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of ours at all: wrong shape or too long.
    #[error("this is not a valid token")]
    Malformed,
    /// Signed with a key this process does not have, e.g. one retired since.
    #[error("this token was signed with a key that is no longer in use; please start again")]
    UnknownKey,
    /// The signature does not match: the token was altered or forged.
    #[error("this token's signature is not valid; it was altered or forged")]
    BadSignature,
    /// A genuine token issued for something else.
    #[error("this token was issued for a different purpose and cannot be used here")]
    WrongPurpose,
    /// The token's validity has ended.
    #[error("this token has expired; please start again")]
    Expired,
    /// The token's validity has not begun yet.
    #[error("this token is not valid yet; please try again later")]
    NotYetValid,
    /// A genuine token whose claims are not what the caller expects.
    #[error("this token is genuine but does not contain what this request needs")]
    BadClaims,
}

/// Key ids travel in every token: 1 to 32 characters of `A-Z a-z 0-9 _ -`, each id once.
pub(crate) fn check_key_ids<'a>(ids: impl Iterator<Item = &'a str>) -> Result<(), KeyringError> {
    let mut seen = HashSet::new();
    for id in ids {
        let valid = (1..=MAX_KEY_ID_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(KeyringError::InvalidId { id: id.to_owned() });
        }
        if !seen.insert(id) {
            return Err(KeyringError::DuplicateId { id: id.to_owned() });
        }
    }
    Ok(())
}

/// A token that passed every check, with its claims and validity.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified<T> {
    /// What the token asserts.
    pub claims: T,
    /// The key that signed it.
    pub key_id: String,
    /// When it was issued (unix seconds).
    pub issued_at: i64,
    /// First second in which it is valid.
    pub not_before: i64,
    /// First second in which it is no longer valid.
    pub expires_at: i64,
}

/// The signed payload as written.
#[derive(Serialize)]
struct Envelope<'a, T> {
    p: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    c: &'a T,
}

/// The signed payload as read back; the claims are left as their JSON, for the caller's type.
#[derive(Deserialize)]
struct OpenedEnvelope<'a> {
    #[serde(borrow)]
    p: Cow<'a, str>,
    iat: i64,
    nbf: i64,
    exp: i64,
    #[serde(borrow)]
    c: &'a RawValue,
}

/// A payload's envelope, opened.
struct Opened<'a> {
    purpose: Cow<'a, str>,
    iat: i64,
    nbf: i64,
    exp: i64,
    claims: &'a [u8],
}

impl<'a> Opened<'a> {
    /// Reads the envelope as [`Keyring::sign`] writes it, by hand (a quarter of the time serde
    /// takes, on every status poll), or else as any JSON object with those fields.
    fn read(payload: &'a [u8]) -> Option<Opened<'a>> {
        Self::read_as_written(payload).or_else(|| {
            let envelope: OpenedEnvelope<'_> = serde_json::from_slice(payload).ok()?;
            Some(Opened {
                purpose: envelope.p,
                iat: envelope.iat,
                nbf: envelope.nbf,
                exp: envelope.exp,
                claims: envelope.c.get().as_bytes(),
            })
        })
    }

    /// `{"p":"<purpose>","iat":<n>,"nbf":<n>,"exp":<n>,"c":<claims>}`, exactly.
    fn read_as_written(payload: &'a [u8]) -> Option<Opened<'a>> {
        let rest = payload.strip_prefix(b"{\"p\":\"")?;
        let (purpose, rest) = json::plain_string(rest)?;
        let (iat, rest) = json::integer(rest.strip_prefix(b",\"iat\":")?)?;
        let (nbf, rest) = json::integer(rest.strip_prefix(b",\"nbf\":")?)?;
        let (exp, rest) = json::integer(rest.strip_prefix(b",\"exp\":")?)?;
        let claims = rest.strip_prefix(b",\"c\":")?.strip_suffix(b"}")?;
        Some(Opened {
            purpose: Cow::Borrowed(purpose),
            iat,
            nbf,
            exp,
            claims,
        })
    }
}

impl Keyring {
    /// Checks the keys: at least one, unique ids of 1 to 32 characters from `[A-Za-z0-9_-]`,
    /// and secrets of at least [`MIN_SECRET_LEN`] bytes. The last key signs.
    pub fn new(keys: Vec<SigningKey>) -> Result<Keyring, KeyringError> {
        check_key_ids(keys.iter().map(|key| key.id.as_str()))?;
        for key in &keys {
            if key.secret.len() < MIN_SECRET_LEN {
                return Err(KeyringError::SecretTooShort {
                    id: key.id.clone(),
                    len: key.secret.len(),
                });
            }
        }
        let mut older: Vec<KeyedMac> = keys.into_iter().map(KeyedMac::new).collect();
        let newest = older.pop().ok_or(KeyringError::Empty)?;
        Ok(Keyring { newest, older })
    }

    /// Id of the key that signs new tokens.
    pub fn signing_key_id(&self) -> &str {
        &self.newest.id
    }

    /// Signs `claims` for `purpose`, valid from `issued_at` until just before `expires_at`
    /// (unix seconds).
    ///
    /// # Panics
    ///
    /// If `claims` cannot be represented as JSON (e.g. a map with non-string keys), which is a
    /// programming error in the claims type, not something input can cause.
    pub fn sign<T: Serialize>(&self, purpose: &str, claims: &T, issued_at: i64, expires_at: i64) -> String {
        self.sign_not_before(purpose, claims, issued_at, issued_at, expires_at)
    }

    /// Like [`Keyring::sign`], but valid only from `not_before`, e.g. for a ticket to be used
    /// once a waiting room opens.
    ///
    /// # Panics
    ///
    /// As [`Keyring::sign`].
    pub fn sign_not_before<T: Serialize>(
        &self,
        purpose: &str,
        claims: &T,
        issued_at: i64,
        not_before: i64,
        expires_at: i64,
    ) -> String {
        let envelope = Envelope {
            p: purpose,
            iat: issued_at,
            nbf: not_before,
            exp: expires_at,
            c: claims,
        };
        let payload = serde_json::to_vec(&envelope)
            .expect("token claims must be representable as JSON (maps need string keys)");
        // Written into one string of its final size: joins sign a token each.
        let mut token = String::with_capacity(self.newest.id.len() + payload.len() * 4 / 3 + 50);
        token.push_str(&self.newest.id);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let mac = self
            .newest
            .mac
            .clone()
            .chain_update(token.as_bytes())
            .finalize()
            .into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(mac, &mut token);
        token
    }

    /// Checks a token for `purpose` at time `now` (unix seconds) and returns its claims.
    ///
    /// The signature is checked, in constant time, before any of the payload is parsed, so
    /// forged input never reaches the JSON parser. Then the purpose (a waiting-room token can
    /// never be used as an admission token), then the validity period, then the claims.
    pub fn verify<T: DeserializeOwned>(
        &self,
        purpose: &str,
        token: &str,
        now: i64,
    ) -> Result<Verified<T>, TokenError> {
        self.verify_with(purpose, token, now, |claims| serde_json::from_slice(claims).ok())
    }

    /// [`Keyring::verify`] with the claims read from their JSON by `read` (`None`: not the
    /// claims expected), for claims on a hot path that read themselves faster than serde.
    pub fn verify_with<T>(
        &self,
        purpose: &str,
        token: &str,
        now: i64,
        read: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Result<Verified<T>, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (signed, mac) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (key_id, payload) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if payload.contains('.') {
            return Err(TokenError::Malformed);
        }
        let key = self.key(key_id).ok_or(TokenError::UnknownKey)?;
        let mut mac_bytes = [0u8; 32];
        let mac_len = URL_SAFE_NO_PAD
            .decode_slice(mac, &mut mac_bytes)
            .map_err(|_| TokenError::BadSignature)?;
        key.mac
            .clone()
            .chain_update(signed.as_bytes())
            .verify_slice(&mac_bytes[..mac_len])
            .map_err(|_| TokenError::BadSignature)?;

        // Only our own signed payloads get here; failing to read one means we wrote it wrong.
        // Decoded on the stack when it fits, as every token we sign does: status polls verify
        // a token each, by the hundred thousand per second in a surge.
        let decoded_len = payload.len() * 3 / 4;
        let mut stack = [0u8; STACK_PAYLOAD];
        let mut heap = Vec::new();
        let buffer = if decoded_len <= STACK_PAYLOAD {
            &mut stack[..]
        } else {
            heap.resize(decoded_len, 0);
            &mut heap[..]
        };
        let len = URL_SAFE_NO_PAD
            .decode_slice(payload, buffer)
            .map_err(|_| TokenError::Malformed)?;
        let envelope = Opened::read(&buffer[..len]).ok_or(TokenError::Malformed)?;
        if envelope.purpose != purpose {
            return Err(TokenError::WrongPurpose);
        }
        if envelope.nbf > now {
            return Err(TokenError::NotYetValid);
        }
        if now >= envelope.exp {
            return Err(TokenError::Expired);
        }
        Ok(Verified {
            claims: read(envelope.claims).ok_or(TokenError::BadClaims)?,
            key_id: key.id.clone(),
            issued_at: envelope.iat,
            not_before: envelope.nbf,
            expires_at: envelope.exp,
        })
    }

    fn key(&self, id: &str) -> Option<&KeyedMac> {
        std::iter::once(&self.newest)
            .chain(&self.older)
            .find(|key| key.id == id)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Ticket {
        room: String,
        ticket: u64,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Admission {
        session: String,
    }

    const ROOM: &str = "waiting-room";
    const NOW: i64 = 1_620_000_000;

    fn key(id: &str, fill: u8) -> SigningKey {
        SigningKey {
            id: id.to_owned(),
            secret: vec![fill; MIN_SECRET_LEN],
        }
    }

    fn ring(keys: &[(&str, u8)]) -> Keyring {
        Keyring::new(keys.iter().map(|(id, fill)| key(id, *fill)).collect()).expect("valid ring")
    }

    fn ticket() -> Ticket {
        Ticket {
            room: "bw-2021-05".to_owned(),
            ticket: 4711,
        }
    }

    fn signed(keyring: &Keyring) -> String {
        keyring.sign(ROOM, &ticket(), NOW, NOW + 600)
    }

    fn verify(keyring: &Keyring, token: &str) -> Result<Verified<Ticket>, TokenError> {
        keyring.verify(ROOM, token, NOW + 1)
    }

    #[test]
    fn roundtrip_returns_claims_and_validity() {
        let keyring = ring(&[("k1", 1)]);
        let token = signed(&keyring);
        assert_eq!(token.split('.').count(), 3);
        assert!(token.starts_with("k1."));
        assert_eq!(
            verify(&keyring, &token),
            Ok(Verified {
                claims: ticket(),
                key_id: "k1".to_owned(),
                issued_at: NOW,
                not_before: NOW,
                expires_at: NOW + 600,
            })
        );
    }

    #[test]
    fn payload_is_the_documented_json() {
        let token = signed(&ring(&[("k1", 1)]));
        let payload = token.split('.').nth(1).expect("payload");
        let json = URL_SAFE_NO_PAD.decode(payload).expect("base64url");
        assert_eq!(
            String::from_utf8(json).expect("utf-8"),
            format!(
                r#"{{"p":"waiting-room","iat":{NOW},"nbf":{NOW},"exp":{},"c":{{"room":"bw-2021-05","ticket":4711}}}}"#,
                NOW + 600
            )
        );
    }

    #[test]
    fn payloads_in_another_layout_are_read_too() {
        let keyring = ring(&[("k1", 1)]);
        let exp = NOW + 600;
        for payload in [
            format!(
                r#"{{"c":{{"room":"bw-2021-05","ticket":4711}},"exp":{exp},"nbf":{NOW},"iat":{NOW},"p":"waiting-room"}}"#
            ),
            format!(
                r#"{{ "p": "waiting\u002droom", "iat": {NOW}, "nbf": {NOW}, "exp": {exp}, "c": {{"ticket":4711,"room":"bw-2021-05"}} }}"#
            ),
        ] {
            let signed = format!("k1.{}", URL_SAFE_NO_PAD.encode(&payload));
            let mac = keyring
                .newest
                .mac
                .clone()
                .chain_update(signed.as_bytes())
                .finalize();
            let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.into_bytes()));
            assert_eq!(
                verify(&keyring, &token).map(|v| v.claims),
                Ok(ticket()),
                "{payload}"
            );
        }
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let keyring = ring(&[("k1", 1)]);
        let token = signed(&keyring);
        let alternatives: Vec<char> = ('A'..='Z')
            .chain('a'..='z')
            .chain('0'..='9')
            .chain(['-', '_', '.', '='])
            .collect();
        for (position, original) in token.char_indices() {
            for &replacement in alternatives.iter().filter(|&&c| c != original) {
                let mut tampered = token.clone();
                tampered.replace_range(position..=position, &replacement.to_string());
                assert!(
                    verify(&keyring, &tampered).is_err(),
                    "{original:?} -> {replacement:?} at {position} verified"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_rejected() {
        let keyring = ring(&[("k1", 1)]);
        let token = signed(&keyring);
        for len in 0..token.len() {
            assert!(
                verify(&keyring, &token[..len]).is_err(),
                "prefix of {len} verified"
            );
            assert!(
                verify(&keyring, &token[len + 1..]).is_err(),
                "suffix from {len} verified"
            );
        }
    }

    #[test]
    fn foreign_keys_and_secrets_are_rejected() {
        let token = signed(&ring(&[("other", 1)]));
        assert_eq!(verify(&ring(&[("k1", 1)]), &token), Err(TokenError::UnknownKey));

        let token = signed(&ring(&[("k1", 2)]));
        assert_eq!(verify(&ring(&[("k1", 1)]), &token), Err(TokenError::BadSignature));
    }

    #[test]
    fn tampered_payload_with_a_stale_mac_is_rejected_before_parsing() {
        let keyring = ring(&[("k1", 1)]);
        let token = signed(&keyring);
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(r#"{"p":"waiting-room","iat":0,"nbf":0,"exp":9999999999,"c":{"room":"x","ticket":1}}"#);
        parts[1] = &forged;
        assert_eq!(verify(&keyring, &parts.join(".")), Err(TokenError::BadSignature));
    }

    #[test]
    fn rotation_signs_with_the_newest_and_verifies_older_keys() {
        let old = ring(&[("old", 1)]);
        let rotated = ring(&[("old", 1), ("new", 2)]);
        assert_eq!(rotated.signing_key_id(), "new");

        let from_old = signed(&old);
        let from_rotated = signed(&rotated);
        assert!(from_rotated.starts_with("new."));
        assert_eq!(
            verify(&rotated, &from_old).map(|v| v.key_id),
            Ok("old".to_owned())
        );
        assert_eq!(
            verify(&rotated, &from_rotated).map(|v| v.key_id),
            Ok("new".to_owned())
        );
        // A process that has not picked up the new key yet rejects new tokens cleanly.
        assert_eq!(verify(&old, &from_rotated), Err(TokenError::UnknownKey));
    }

    #[test]
    fn validity_period_is_enforced_at_its_edges() {
        let keyring = ring(&[("k1", 1)]);
        let token = keyring.sign_not_before(ROOM, &ticket(), NOW, NOW + 10, NOW + 20);
        let at = |now| keyring.verify::<Ticket>(ROOM, &token, now).map(|v| v.not_before);
        assert_eq!(at(NOW), Err(TokenError::NotYetValid));
        assert_eq!(at(NOW + 9), Err(TokenError::NotYetValid));
        assert_eq!(at(NOW + 10), Ok(NOW + 10));
        assert_eq!(at(NOW + 19), Ok(NOW + 10));
        assert_eq!(at(NOW + 20), Err(TokenError::Expired));
        assert_eq!(at(i64::MAX), Err(TokenError::Expired));
    }

    #[test]
    fn purpose_is_checked_before_time_and_claims() {
        let keyring = ring(&[("k1", 1)]);
        let token = signed(&keyring);
        assert_eq!(
            keyring.verify::<Ticket>("admission", &token, NOW + 1),
            Err(TokenError::WrongPurpose)
        );
        assert_eq!(
            keyring.verify::<Admission>("admission", &token, NOW + 10_000),
            Err(TokenError::WrongPurpose)
        );
        assert_eq!(
            keyring.verify::<Admission>(ROOM, &token, NOW + 1),
            Err(TokenError::BadClaims)
        );
        assert_eq!(
            keyring.verify::<Admission>(ROOM, &token, NOW + 10_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn oversized_and_misshapen_tokens_are_malformed() {
        let keyring = ring(&[("k1", 1)]);
        let token = signed(&keyring);
        let padded = format!("{token}{}", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(verify(&keyring, &padded), Err(TokenError::Malformed));
        for bad in ["", ".", "k1", "k1.abc", "k1.a.b.c", "..."] {
            assert_eq!(verify(&keyring, bad), Err(TokenError::Malformed), "{bad:?}");
        }
        assert_eq!(verify(&keyring, "k2.abc.def"), Err(TokenError::UnknownKey));
        assert_eq!(verify(&keyring, "k1.abc.d"), Err(TokenError::BadSignature));
    }

    #[test]
    fn keyring_rejects_unusable_configuration() {
        assert_eq!(Keyring::new(vec![]).err(), Some(KeyringError::Empty));
        let too_long = "k".repeat(33);
        for id in ["", "a.b", "ä", "key id", too_long.as_str()] {
            assert_eq!(
                Keyring::new(vec![key(id, 1)]).err(),
                Some(KeyringError::InvalidId { id: id.to_owned() })
            );
        }
        assert!(Keyring::new(vec![key(&"k".repeat(32), 1)]).is_ok());
        assert_eq!(
            Keyring::new(vec![key("k1", 1), key("k1", 2)]).err(),
            Some(KeyringError::DuplicateId { id: "k1".to_owned() })
        );
        let short = SigningKey {
            id: "k1".to_owned(),
            secret: vec![1; 31],
        };
        let error = Keyring::new(vec![short]).expect_err("too short");
        assert_eq!(
            error.to_string(),
            "signing key \"k1\" has a secret of 31 bytes; secrets must be at least 32 random bytes"
        );
    }

    #[test]
    fn debug_output_never_contains_secrets() {
        let secret = b"correct horse battery staple, really long".to_vec();
        let keyring = Keyring::new(vec![SigningKey {
            id: "k1".to_owned(),
            secret: secret.clone(),
        }])
        .expect("valid");
        let debug = format!("{keyring:?}");
        assert!(debug.contains("k1") && debug.contains("redacted"), "{debug}");
        assert!(!debug.contains("horse") && !debug.contains("99, 111"), "{debug}");
    }

    #[test]
    fn errors_read_as_plain_sentences() {
        assert_eq!(
            TokenError::Expired.to_string(),
            "this token has expired; please start again"
        );
        assert_eq!(
            TokenError::WrongPurpose.to_string(),
            "this token was issued for a different purpose and cannot be used here"
        );
    }

    proptest! {
        #[test]
        fn flipping_any_bits_of_any_byte_is_rejected(position in any::<prop::sample::Index>(), mask in 1u8..) {
            let keyring = ring(&[("k1", 1)]);
            let mut bytes = signed(&keyring).into_bytes();
            let position = position.index(bytes.len());
            bytes[position] ^= mask;
            if let Ok(tampered) = String::from_utf8(bytes) {
                prop_assert!(verify(&keyring, &tampered).is_err());
            }
        }

        #[test]
        fn arbitrary_strings_never_verify(input in "\\PC{0,200}") {
            prop_assert!(verify(&ring(&[("k1", 1)]), &input).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_verify(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            prop_assert!(verify(&ring(&[("k1", 1)]), &String::from_utf8_lossy(&bytes)).is_err());
        }

        #[test]
        fn well_shaped_forgeries_never_verify(payload in "[A-Za-z0-9_-]{0,120}", mac in "[A-Za-z0-9_-]{0,60}") {
            let keyring = ring(&[("k1", 1)]);
            let result = verify(&keyring, &format!("k1.{payload}.{mac}"));
            prop_assert!(matches!(result, Err(TokenError::BadSignature)), "{:?}", result);
        }

        #[test]
        fn every_validly_signed_token_verifies(
            purpose in "\\PC{0,20}",
            room in "\\PC{0,40}",
            number in any::<u64>(),
            issued_at in -1_000_000_000i64..4_000_000_000,
            wait in 0i64..100_000,
            lifetime in 1i64..100_000,
            offset in 0.0f64..1.0,
            secret in prop::collection::vec(any::<u8>(), 32..64),
        ) {
            let keyring = Keyring::new(vec![SigningKey { id: "k_1-x".to_owned(), secret }])
                .expect("valid");
            let claims = Ticket { room, ticket: number };
            let not_before = issued_at + wait;
            let expires_at = not_before + lifetime;
            let now = not_before + (offset * lifetime as f64) as i64;
            let token = keyring.sign_not_before(&purpose, &claims, issued_at, not_before, expires_at);
            prop_assert!(token.len() <= MAX_TOKEN_LEN);
            let verified = keyring.verify::<Ticket>(&purpose, &token, now);
            prop_assert_eq!(
                verified,
                Ok(Verified { claims, key_id: "k_1-x".to_owned(), issued_at, not_before, expires_at })
            );
        }
    }
}
