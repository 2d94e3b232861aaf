//! Phone numbers and email addresses at rest: sealed with XChaCha20-Poly1305 under named keys,
//! and found by a keyed hash (a blind index) instead of by their text.
//!
//! A sealed value is `1 | key id length | key id | 24-byte nonce | ciphertext and tag`. Its
//! associated data is its header, its field and the id of the registration it belongs to, so a
//! value altered, or copied into another person's row or another field, fails to open. Keys
//! rotate as signing keys do: the last listed key seals, every listed key opens, and a value
//! sealed under an older key is sealed again by `drawbridge keys rotate`.
//!
//! A value stored before sealing existed is its UTF-8 text, which never starts with the byte 1:
//! it still reads if it looks like its field (a phone number or an email address, nothing a
//! damaged ciphertext would pass for), and is never under the current key, so the rotation
//! seals it.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::Mac as _;
use rand::RngCore as _;
use uuid::Uuid;

use crate::mac;
use crate::token::{check_key_ids, KeyringError};

/// The layout of sealed values this module writes.
const SEALED: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The personal fields sealed at rest. Each is its own associated data, so a phone number
/// cannot be passed off as an email address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A phone number, E.164.
    Phone,
    /// An email address.
    Email,
}

impl Field {
    fn label(self) -> &'static [u8] {
        match self {
            Field::Phone => b"phone",
            Field::Email => b"email",
        }
    }

    /// Whether `text`, stored before sealing, is what this field holds: E.164, or an address
    /// with an `@` and no control characters.
    fn holds(self, text: &str) -> bool {
        match self {
            Field::Phone => text.strip_prefix('+').is_some_and(|digits| {
                (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
            }),
            Field::Email => text.contains('@') && !text.chars().any(char::is_control),
        }
    }
}

/// A named 256-bit key for sealing personal data. `Debug` never prints the key.
#[derive(Clone)]
pub struct SealingKey {
    /// The key's name, written into every value it seals.
    pub id: String,
    /// 32 random bytes.
    pub key: [u8; 32],
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .field("key", &format_args!("<redacted>"))
            .finish()
    }
}

/// Why a stored value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Sealed under a key this process does not hold (retired too early, or another system's).
    #[error("sealed under key {0:?}, which is not among the configured personal data keys")]
    UnknownKey(String),
    /// Altered, truncated, or moved from another row or field.
    #[error("a sealed value is damaged, or belongs to another row or field")]
    Damaged,
}

/// The keys that seal personal data and the key of its blind index. The last sealing key is
/// the current one and seals; all of them open.
#[derive(Clone)]
pub struct PersonalDataKeys {
    keys: Vec<(String, XChaCha20Poly1305)>,
    index: mac::HmacSha256,
    current_header: Vec<u8>,
}

impl fmt::Debug for PersonalDataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("PersonalDataKeys").field("ids", &ids).finish()
    }
}

impl PersonalDataKeys {
    /// `keys` oldest first: the last one seals. `index_secret` is the secret the blind index
    /// key is derived from (its own key, never a sealing key, so rotating those keeps every
    /// index valid).
    pub fn new(keys: Vec<SealingKey>, index_secret: &[u8]) -> Result<Self, KeyringError> {
        check_key_ids(keys.iter().map(|k| k.id.as_str()))?;
        let Some(current) = keys.last() else {
            return Err(KeyringError::Empty);
        };
        let current_header = header(&current.id);
        let index_key = mac::keyed_hash(index_secret, &[b"drawbridge personal data index v1".as_slice()]);
        Ok(PersonalDataKeys {
            current_header,
            index: mac::hmac_sha256(&index_key),
            keys: keys
                .into_iter()
                .map(|k| (k.id, XChaCha20Poly1305::new(&k.key.into())))
                .collect(),
        })
    }

    /// `value` sealed under the current key for `field` of registration `owner`.
    pub fn seal(&self, field: Field, owner: Uuid, value: &str) -> Vec<u8> {
        let (_, cipher) = self.keys.last().expect("a keyring holds at least one key");
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = associated_data(&self.current_header, field, owner);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals messages of any length a phone or email has");
        let mut out = Vec::with_capacity(self.current_header.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(&self.current_header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The text of `sealed`, stored as `field` of registration `owner`.
    pub fn open(&self, field: Field, owner: Uuid, sealed: &[u8]) -> Result<String, OpenError> {
        let Some((&SEALED, rest)) = sealed.split_first() else {
            return std::str::from_utf8(sealed)
                .ok()
                .filter(|text| field.holds(text))
                .map(str::to_owned)
                .ok_or(OpenError::Damaged);
        };
        let (&id_len, rest) = rest.split_first().ok_or(OpenError::Damaged)?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + NONCE_LEN + TAG_LEN {
            return Err(OpenError::Damaged);
        }
        let (id, rest) = rest.split_at(id_len);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let id = std::str::from_utf8(id).map_err(|_| OpenError::Damaged)?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(known, _)| known == id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
        let aad = associated_data(&sealed[..2 + id_len], field, owner);
        let text = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Damaged)?;
        String::from_utf8(text).map_err(|_| OpenError::Damaged)
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys.last().expect("a keyring holds at least one key").0
    }

    /// The first bytes of every value sealed under the current key: a value that does not start
    /// with them is sealed again by a rotation.
    pub fn current_prefix(&self) -> &[u8] {
        &self.current_header
    }

    /// Whether `sealed` is under the current key.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.starts_with(&self.current_header)
    }

    /// The blind index of `value` (already in its one normal form: E.164 for a phone number):
    /// equal values of a field have equal indexes, and without the key an index says nothing.
    pub fn index(&self, field: Field, value: &str) -> [u8; 32] {
        let mut mac = self.index.clone();
        mac.update(field.label());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// `1 | id length | id`: key ids are checked to be 1 to 32 bytes.
fn header(id: &str) -> Vec<u8> {
    let mut header = vec![
        SEALED,
        u8::try_from(id.len()).expect("key ids are at most 32 bytes"),
    ];
    header.extend_from_slice(id.as_bytes());
    header
}

/// The header (layout and key), the field and the owning registration: whatever moves a
/// sealed value elsewhere changes one of them.
fn associated_data(header: &[u8], field: Field, owner: Uuid) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + 6 + 16);
    aad.extend_from_slice(header);
    aad.extend_from_slice(field.label());
    aad.push(0);
    aad.extend_from_slice(owner.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> SealingKey {
        SealingKey {
            id: id.to_owned(),
            key: [byte; 32],
        }
    }

    fn keys(ids: &[(&str, u8)]) -> PersonalDataKeys {
        PersonalDataKeys::new(ids.iter().map(|(id, b)| key(id, *b)).collect(), b"index secret").unwrap()
    }

    const PHONE: &str = "+491701234567";

    #[test]
    fn a_sealed_value_opens_and_holds_no_plaintext() {
        let keys = keys(&[("k1", 1)]);
        let owner = Uuid::new_v4();
        let sealed = keys.seal(Field::Phone, owner, PHONE);
        assert!(!sealed.windows(PHONE.len()).any(|w| w == PHONE.as_bytes()));
        assert!(!sealed.windows(8).any(|w| w == &PHONE.as_bytes()[3..11]));
        assert_eq!(keys.open(Field::Phone, owner, &sealed).unwrap(), PHONE);
        assert!(keys.is_current(&sealed));
    }

    #[test]
    fn sealing_twice_gives_different_values() {
        let keys = keys(&[("k1", 1)]);
        let owner = Uuid::new_v4();
        assert_ne!(
            keys.seal(Field::Phone, owner, PHONE),
            keys.seal(Field::Phone, owner, PHONE)
        );
    }

    #[test]
    fn every_altered_byte_fails_to_open() {
        let keys = keys(&[("k1", 1)]);
        let owner = Uuid::new_v4();
        let sealed = keys.seal(Field::Email, owner, "anna@example.de");
        for at in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[at] ^= 0x01;
            assert!(
                keys.open(Field::Email, owner, &altered).is_err(),
                "byte {at} altered"
            );
        }
        assert_eq!(
            keys.open(Field::Email, owner, &sealed[..sealed.len() - 1]),
            Err(OpenError::Damaged)
        );
        assert_eq!(keys.open(Field::Email, owner, &[]), Err(OpenError::Damaged));
    }

    #[test]
    fn a_value_moved_to_another_row_or_field_fails_to_open() {
        let keys = keys(&[("k1", 1)]);
        let owner = Uuid::new_v4();
        let sealed = keys.seal(Field::Phone, owner, PHONE);
        assert_eq!(
            keys.open(Field::Phone, Uuid::new_v4(), &sealed),
            Err(OpenError::Damaged)
        );
        assert_eq!(keys.open(Field::Email, owner, &sealed), Err(OpenError::Damaged));
    }

    #[test]
    fn old_keys_open_and_the_last_one_seals() {
        let old = keys(&[("2026-11", 1)]);
        let rotated = keys(&[("2026-11", 1), ("2026-12", 2)]);
        let owner = Uuid::new_v4();
        let under_old = old.seal(Field::Phone, owner, PHONE);
        assert_eq!(rotated.open(Field::Phone, owner, &under_old).unwrap(), PHONE);
        assert!(!rotated.is_current(&under_old));
        let under_new = rotated.seal(Field::Phone, owner, PHONE);
        assert!(rotated.is_current(&under_new));
        assert!(under_new.starts_with(rotated.current_prefix()));
        assert_eq!(
            old.open(Field::Phone, owner, &under_new),
            Err(OpenError::UnknownKey("2026-12".into()))
        );
    }

    #[test]
    fn a_key_under_another_listed_id_fails_to_open() {
        let owner = Uuid::new_v4();
        let sealed = keys(&[("k1", 1)]).seal(Field::Phone, owner, PHONE);
        assert_eq!(
            keys(&[("k1", 9)]).open(Field::Phone, owner, &sealed),
            Err(OpenError::Damaged)
        );
    }

    #[test]
    fn a_value_from_before_sealing_reads_and_is_never_current() {
        let keys = keys(&[("k1", 1)]);
        let owner = Uuid::new_v4();
        assert_eq!(keys.open(Field::Phone, owner, PHONE.as_bytes()).unwrap(), PHONE);
        assert!(!keys.is_current(PHONE.as_bytes()));
        assert_eq!(
            keys.open(Field::Email, owner, b"anna@example.de").unwrap(),
            "anna@example.de"
        );
        // Only what the field holds: not an email address as a phone, not random bytes.
        assert_eq!(
            keys.open(Field::Phone, owner, b"anna@example.de"),
            Err(OpenError::Damaged)
        );
        assert_eq!(
            keys.open(Field::Email, owner, &[0, 0xff, b'@']),
            Err(OpenError::Damaged)
        );
    }

    #[test]
    fn the_index_is_keyed_per_field_and_independent_of_the_sealing_keys() {
        let one = keys(&[("k1", 1)]);
        let rotated = keys(&[("k1", 1), ("k2", 2)]);
        assert_eq!(one.index(Field::Phone, PHONE), rotated.index(Field::Phone, PHONE));
        assert_ne!(
            one.index(Field::Phone, PHONE),
            one.index(Field::Phone, "+491701234568")
        );
        assert_ne!(one.index(Field::Phone, PHONE), one.index(Field::Email, PHONE));
        let other_secret = PersonalDataKeys::new(vec![key("k1", 1)], b"another secret").unwrap();
        assert_ne!(
            one.index(Field::Phone, PHONE),
            other_secret.index(Field::Phone, PHONE)
        );
    }

    #[test]
    fn key_ids_are_checked_and_one_key_is_needed() {
        assert!(matches!(
            PersonalDataKeys::new(vec![], b"x"),
            Err(KeyringError::Empty)
        ));
        assert!(PersonalDataKeys::new(vec![key("a b", 1)], b"x").is_err());
        assert!(PersonalDataKeys::new(vec![key("k", 1), key("k", 2)], b"x").is_err());
        assert!(!format!("{:?}", key("k", 7)).contains("7, 7"));
    }
}
