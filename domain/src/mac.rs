//! The one place that builds HMAC-SHA256 instances, shared by booking codes, SMS codes and
//! signed tokens so that all keyed hashes in the crate are computed the same way.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC with SHA-256, the only MAC this crate uses.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// A fresh HMAC-SHA256 keyed with `key`.
///
/// HMAC accepts keys of any length (long keys are hashed, short ones padded), so the
/// `InvalidLength` error of the generic `KeyInit` interface can never occur here.
pub(crate) fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of every length")
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
///
/// Callers must make the concatenation unambiguous (e.g. by fixing the length of all but one
/// part); this helper only saves repeating the update/finalize dance.
pub(crate) fn keyed_hash(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = hmac_sha256(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The keyed digest a delivery keeps of the words it sent, once the words are erased: it
/// shows whether a given text is what went out, and, keyed, cannot be searched for a 6-digit
/// code by hashing every candidate.
pub fn message_digest(key: &[u8], words: &str) -> [u8; 32] {
    keyed_hash(key, &[b"message:", words.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2: guards against wiring the wrong hash or key handling.
    #[test]
    fn matches_rfc_4231_test_vector() {
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let hash = keyed_hash(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn accepts_empty_and_very_long_keys() {
        assert_ne!(keyed_hash(&[], &[b"x"]), keyed_hash(&[0u8; 1000], &[b"x"]));
    }
}
