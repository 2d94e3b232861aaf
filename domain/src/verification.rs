//! The six-digit code sent by SMS to prove that a registrant owns their phone number.

use std::fmt;

use rand::{CryptoRng, Rng, RngCore};
use subtle::ConstantTimeEq;

use crate::mac;

/// Number of digits in a verification code.
const DIGITS: usize = 6;

/// A six-digit SMS verification code such as `048213`.
///
/// `Debug` masks the digits so codes never end up in logs; equality is checked in constant
/// time.
#[derive(Clone)]
pub struct VerificationCode(String);

/// Why a typed verification code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerificationCodeError {
    /// Too many or too few digits.
    #[error("the code from the SMS has {expected} digits, but you entered {got}")]
    WrongLength {
        /// Digits a code has.
        expected: usize,
        /// Characters that were entered, not counting spaces.
        got: usize,
    },
    /// Something other than a digit.
    #[error("the code from the SMS consists only of digits; {character:?} is not one")]
    NotADigit {
        /// The offending character.
        character: char,
    },
}

impl VerificationCode {
    /// A uniformly random code from `000000` to `999999`. `gen_range` samples by rejection,
    /// so no code is more likely than another (no modulo bias).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> VerificationCode {
        let value: u32 = rng.gen_range(0..1_000_000);
        VerificationCode(format!("{value:06}"))
    }

    /// Reads a code as typed, ignoring spaces anywhere (phones often show `048 213`).
    pub fn parse(input: &str) -> Result<VerificationCode, VerificationCodeError> {
        let mut code = String::with_capacity(DIGITS);
        let mut got = 0usize;
        for character in input.chars().filter(|c| !c.is_whitespace()) {
            if !character.is_ascii_digit() {
                return Err(VerificationCodeError::NotADigit { character });
            }
            if got < DIGITS {
                code.push(character);
            }
            got += 1;
        }
        if got == DIGITS {
            Ok(VerificationCode(code))
        } else {
            Err(VerificationCodeError::WrongLength {
                expected: DIGITS,
                got,
            })
        }
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// HMAC-SHA256 under `key` of the registration id followed by the code, so that two people
    /// who happen to receive the same code store different hashes. The code's fixed length
    /// makes the concatenation unambiguous.
    pub fn keyed_hash(&self, key: &[u8], registration_id: &[u8]) -> [u8; 32] {
        mac::keyed_hash(key, &[registration_id, self.0.as_bytes()])
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationCode(******)")
    }
}

impl PartialEq for VerificationCode {
    fn eq(&self, other: &VerificationCode) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for VerificationCode {}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    fn code(text: &str) -> VerificationCode {
        VerificationCode::parse(text).expect("valid test code")
    }

    #[test]
    fn parses_six_digits_ignoring_spaces() {
        assert_eq!(code("048213").as_str(), "048213");
        assert_eq!(code(" 048 213\n").as_str(), "048213");
        assert_eq!(code("000000").as_str(), "000000");
    }

    #[test]
    fn rejects_wrong_lengths_and_non_digits_with_a_plain_message() {
        assert_eq!(
            VerificationCode::parse("04821"),
            Err(VerificationCodeError::WrongLength { expected: 6, got: 5 })
        );
        assert_eq!(
            VerificationCode::parse("0482131").map_err(|e| e.to_string()),
            Err("the code from the SMS has 6 digits, but you entered 7".to_owned())
        );
        assert_eq!(
            VerificationCode::parse(""),
            Err(VerificationCodeError::WrongLength { expected: 6, got: 0 })
        );
        assert_eq!(
            VerificationCode::parse("048-213").map_err(|e| e.to_string()),
            Err("the code from the SMS consists only of digits; '-' is not one".to_owned())
        );
        assert_eq!(
            VerificationCode::parse("０４８２１３"),
            Err(VerificationCodeError::NotADigit { character: '０' })
        );
    }

    #[test]
    fn debug_masks_the_code() {
        assert_eq!(format!("{:?}", code("048213")), "VerificationCode(******)");
    }

    #[test]
    fn keyed_hash_binds_the_registration() {
        let c = code("048213");
        let key = b"server key";
        assert_eq!(c.keyed_hash(key, b"reg-1"), c.keyed_hash(key, b"reg-1"));
        assert_ne!(c.keyed_hash(key, b"reg-1"), c.keyed_hash(key, b"reg-2"));
        assert_ne!(c.keyed_hash(key, b"reg-1"), c.keyed_hash(b"other key", b"reg-1"));
        assert_ne!(
            c.keyed_hash(key, b"reg-1"),
            code("048214").keyed_hash(key, b"reg-1")
        );
    }

    #[test]
    fn generated_codes_cover_the_whole_range() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let codes: Vec<VerificationCode> = (0..2000).map(|_| VerificationCode::generate(&mut rng)).collect();
        assert!(codes.iter().all(|c| c.as_str().len() == 6));
        // With 2000 uniform draws, about 200 start with each digit (10 % each).
        for first in '0'..='9' {
            let n = codes.iter().filter(|c| c.as_str().starts_with(first)).count();
            assert!((120..=280).contains(&n), "{n} codes start with {first}");
        }
    }

    proptest! {
        #[test]
        fn generated_codes_parse_back(seed in any::<u64>()) {
            let generated = VerificationCode::generate(&mut ChaCha20Rng::seed_from_u64(seed));
            prop_assert_eq!(VerificationCode::parse(generated.as_str()), Ok(generated));
        }

        #[test]
        fn parse_accepts_exactly_six_digits(input in "\\PC{0,12}") {
            let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
            let valid = digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit());
            prop_assert_eq!(VerificationCode::parse(&input).is_ok(), valid);
        }
    }
}
