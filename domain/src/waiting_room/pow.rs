//! The optional proof of work on join, switched on per room under attack: the gateway hands
//! out a signed, short-lived challenge, and a join must bring a nonce such that
//! SHA-256(`<challenge>.<nonce>`) starts with `difficulty` zero bits. Each extra bit doubles the
//! expected work (2^difficulty hashes on average) for the client and costs the server one hash.

use sha2::{Digest, Sha256};

/// Longest nonce accepted; solvers count upwards, so real nonces are short.
pub const MAX_NONCE_LEN: usize = 32;

/// Number of leading zero bits of `hash`.
pub fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in hash {
        bits += byte.leading_zeros();
        if *byte != 0 {
            break;
        }
    }
    bits
}

fn hash(challenge: &str, nonce: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(challenge.as_bytes())
        .chain_update(b".")
        .chain_update(nonce.as_bytes())
        .finalize()
        .into()
}

/// Whether `nonce` solves `challenge` at `difficulty`.
pub fn is_solved(challenge: &str, nonce: &str, difficulty: u8) -> bool {
    nonce.len() <= MAX_NONCE_LEN && leading_zero_bits(&hash(challenge, nonce)) >= u32::from(difficulty)
}

/// Finds a nonce by counting from 0, as the waiting page does in JavaScript.
pub fn solve(challenge: &str, difficulty: u8) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|nonce| is_solved(challenge, nonce, difficulty))
        .expect("some counter value solves every difficulty up to 256 bits")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn zero_bits_are_counted_across_bytes() {
        assert_eq!(leading_zero_bits(&[0xff]), 0);
        assert_eq!(leading_zero_bits(&[0x00, 0x01]), 15);
        assert_eq!(leading_zero_bits(&[0x00, 0x00, 0x80]), 16);
        assert_eq!(leading_zero_bits(&[0x00; 4]), 32);
    }

    #[test]
    fn the_scheme_matches_the_documented_hash() {
        // SHA-256("abc.0"), checked with `printf abc.0 | sha256sum`.
        let digest = hash("abc", "0");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "20b699b1e4c420684784d2a7650362a18fc7172ddaabdddee15ee6f2b413cc5a"
        );
    }

    #[test]
    fn long_nonces_are_refused() {
        assert!(!is_solved("abc", &"0".repeat(MAX_NONCE_LEN + 1), 0));
        assert!(is_solved("abc", &"0".repeat(MAX_NONCE_LEN), 0));
    }

    proptest! {
        #[test]
        fn solutions_verify(challenge in "[A-Za-z0-9._-]{1,80}", difficulty in 0u8..12) {
            let nonce = solve(&challenge, difficulty);
            prop_assert!(is_solved(&challenge, &nonce, difficulty));
            prop_assert!(leading_zero_bits(&hash(&challenge, &nonce)) >= u32::from(difficulty));
        }
    }
}
