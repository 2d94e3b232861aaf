//! The booking code: the citizen's only credential (there are no accounts).
//!
//! It has to be read aloud on the phone, typed from a letter and copied from an SMS, so it uses
//! Crockford's base32 (no I/L/O/U confusion), is shown in groups of four, and ends in a check
//! character that catches every single-character typo and every swap of two neighbouring
//! characters before the code ever reaches the database. 75 random bits make guessing futile;
//! only a keyed hash of the code is ever stored.

use std::fmt;
use std::str::FromStr;

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

use crate::mac;

/// Crockford's base32 alphabet: digits and letters without I, L, O and U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Random characters; 15 × 5 = 75 bits of entropy.
const DATA_LEN: usize = 15;
/// Random characters plus the check character.
const LEN: usize = DATA_LEN + 1;
/// Characters per displayed group.
const GROUP_LEN: usize = 4;

/// A booking code such as `7K3Q-M2XD-9AHP-T4WE`: 15 random base32 characters and a check
/// character.
///
/// `Debug` shows only the first group, so codes never end up in logs by accident; equality is
/// checked in constant time.
#[derive(Clone)]
pub struct BookingCode([u8; LEN]);

/// Why a typed booking code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingCodeError {
    /// Too many or too few characters.
    #[error(
        "a booking code has {expected} characters (not counting dashes and spaces), \
         but you entered {got}"
    )]
    WrongLength {
        /// Characters a booking code has.
        expected: usize,
        /// Characters that were entered, not counting separators.
        got: usize,
    },
    /// A character that cannot occur in a booking code.
    #[error(
        "{character:?} does not occur in booking codes; they consist of the digits 0-9 and \
         the letters A-Z except U"
    )]
    InvalidCharacter {
        /// The offending character.
        character: char,
    },
    /// The check character does not match: a character was mistyped or two were swapped.
    #[error("this code has a typo; please check it")]
    CheckMismatch,
}

impl BookingCode {
    /// A fresh code with 75 bits from a cryptographically secure generator.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> BookingCode {
        let mut bytes = [0u8; DATA_LEN];
        rng.fill_bytes(&mut bytes);
        // 32 divides 256, so keeping the low five bits of each byte keeps them uniform.
        BookingCode::from_data(bytes.map(|b| b & 0x1f))
    }

    /// Reads a code as people type it: any case, with or without spaces, dashes, dots or
    /// underscores, reading O as 0 and I or L as 1.
    pub fn parse(input: &str) -> Result<BookingCode, BookingCodeError> {
        let mut symbols = [0u8; LEN];
        let mut got = 0usize;
        for character in input.chars().filter(|c| !is_separator(*c)) {
            let value = symbol_value(character).ok_or(BookingCodeError::InvalidCharacter { character })?;
            if let Some(slot) = symbols.get_mut(got) {
                *slot = value;
            }
            got += 1;
        }
        if got != LEN {
            return Err(BookingCodeError::WrongLength { expected: LEN, got });
        }
        if damm_fold(&symbols) != 0 {
            return Err(BookingCodeError::CheckMismatch);
        }
        Ok(BookingCode(symbols))
    }

    /// The first group of whatever was typed as a code, read as a code is read (separators
    /// skipped, O as 0, I and L as 1, any case), so that every spelling of one prefix is one
    /// prefix; characters that are no code's are kept, in capitals.
    pub fn typed_prefix(typed: &str) -> String {
        typed
            .chars()
            .filter(|c| !is_separator(*c))
            .take(GROUP_LEN)
            .map(|c| symbol_value(c).map_or(c.to_ascii_uppercase(), |v| char::from(ALPHABET[usize::from(v)])))
            .collect()
    }

    /// The first group of four characters. It carries no secret worth speaking of (20 of 75
    /// bits) and lets the gateway rate-limit guesses per prefix.
    pub fn prefix(&self) -> String {
        self.characters().take(GROUP_LEN).collect()
    }

    /// HMAC-SHA256 under `key` of the 16 characters without separators. The code itself is
    /// never stored; a stolen database without the key does not reveal any codes.
    pub fn keyed_hash(&self, key: &[u8]) -> [u8; 32] {
        let canonical: String = self.characters().collect();
        mac::keyed_hash(key, &[canonical.as_bytes()])
    }

    /// Appends the check character to 15 data symbols (each below 32).
    fn from_data(data: [u8; DATA_LEN]) -> BookingCode {
        let mut symbols = [0u8; LEN];
        symbols[..DATA_LEN].copy_from_slice(&data);
        // Folding c after interim i gives α·i ⊕ c, which is 0 exactly for c = α·i.
        symbols[DATA_LEN] = times_alpha(damm_fold(&data));
        BookingCode(symbols)
    }

    fn characters(&self) -> impl Iterator<Item = char> + '_ {
        self.0
            .iter()
            .map(|&s| char::from(ALPHABET[usize::from(s & 0x1f)]))
    }
}

// The check character: Damm's algorithm over a quasigroup of order 32.
//
// Symbols are elements of GF(2^5) = GF(2)[x] / (x^5 + x^2 + 1), and the quasigroup operation
// is a∘b = α·a ⊕ b with α = x. Folding the 16 symbols d₀…d₁₅ from interim 0 yields the linear
// form Σ α^(15-i)·dᵢ, and a valid code folds to 0.
//
// * Substituting d for d' at position i changes the result by α^(15-i)·(d ⊕ d'). Since α ≠ 0
//   is invertible in the field, this is 0 only if d = d': every single substitution is caught.
// * Swapping neighbours a, b at positions i, i+1 changes it by α^(14-i)·(α ⊕ 1)·(a ⊕ b).
//   Since α ≠ 1, α ⊕ 1 ≠ 0, and a field has no zero divisors, this is 0 only if a = b: every
//   adjacent transposition is caught. (This is the "totally anti-symmetric" property Damm
//   requires: (c∘a)∘b = (c∘b)∘a implies a = b.)
//
// Both arguments include the check character itself, as it is just the last symbol.

/// Multiplication by α = x in GF(2^5): shift, and reduce by x^5 + x^2 + 1 on overflow.
fn times_alpha(value: u8) -> u8 {
    const REDUCTION: u8 = 0b10_0101;
    let shifted = value << 1;
    if shifted & 0b10_0000 == 0 {
        shifted
    } else {
        shifted ^ REDUCTION
    }
}

/// Damm's interim digit after folding `symbols` into 0 with a∘b = α·a ⊕ b.
fn damm_fold(symbols: &[u8]) -> u8 {
    symbols
        .iter()
        .fold(0, |interim, &symbol| times_alpha(interim) ^ symbol)
}

/// Characters people put between groups, including the typographic dashes word processors
/// substitute for '-'.
fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '.' | '_' | '\u{2010}'..='\u{2015}' | '\u{2212}')
}

/// The value of a typed character, reading Crockford's look-alikes as the digit they resemble.
fn symbol_value(c: char) -> Option<u8> {
    match c.to_ascii_uppercase() {
        'O' => Some(0),
        'I' | 'L' => Some(1),
        upper => ALPHABET
            .iter()
            .position(|&a| char::from(a) == upper)
            .and_then(|p| u8::try_from(p).ok()),
    }
}

impl fmt::Display for BookingCode {
    /// `XXXX-XXXX-XXXX-XXXX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.characters().enumerate() {
            if i > 0 && i % GROUP_LEN == 0 {
                f.write_str("-")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BookingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BookingCode")
            .field(&format_args!("{}-****-****-****", self.prefix()))
            .finish()
    }
}

impl PartialEq for BookingCode {
    fn eq(&self, other: &BookingCode) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for BookingCode {}

impl FromStr for BookingCode {
    type Err = BookingCodeError;

    fn from_str(s: &str) -> Result<BookingCode, BookingCodeError> {
        BookingCode::parse(s)
    }
}

/// Serialized as the displayed form, so it can be handed to the citizen in an API response.
impl Serialize for BookingCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BookingCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BookingCode, D::Error> {
        let text = String::deserialize(deserializer)?;
        BookingCode::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn look_alike_spellings_of_a_prefix_are_one_prefix() {
        let prefix = super::BookingCode::typed_prefix;
        assert_eq!(prefix("O1L0-AAAA"), "0110");
        assert_eq!(prefix("o i l o"), "0110");
        assert_eq!(prefix("0110-ZZZZ-0000-0000"), "0110");
        assert_eq!(prefix("!!"), "!!");
    }

    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    fn sample_codes() -> Vec<BookingCode> {
        let mut rng = ChaCha20Rng::seed_from_u64(2021);
        let mut codes: Vec<BookingCode> = (0..24).map(|_| BookingCode::generate(&mut rng)).collect();
        codes.push(BookingCode::from_data([0; DATA_LEN]));
        codes.push(BookingCode::from_data([31; DATA_LEN]));
        codes.push(BookingCode::from_data(std::array::from_fn(|i| (i % 2) as u8)));
        codes
    }

    fn text_of(symbols: &[u8; LEN]) -> String {
        symbols
            .iter()
            .map(|&s| char::from(ALPHABET[usize::from(s)]))
            .collect()
    }

    #[test]
    fn alpha_times_is_a_permutation_and_the_quasigroup_is_totally_anti_symmetric() {
        let mut images: Vec<u8> = (0..32).map(times_alpha).collect();
        images.sort_unstable();
        assert_eq!(images, (0..32).collect::<Vec<u8>>());
        let op = |a: u8, b: u8| times_alpha(a) ^ b;
        for c in 0..32 {
            for a in 0..32 {
                for b in 0..32 {
                    if op(op(c, a), b) == op(op(c, b), a) {
                        assert_eq!(a, b, "c={c} a={a} b={b}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_single_substitution_is_rejected() {
        for code in sample_codes() {
            for position in 0..LEN {
                for replacement in (0..32u8).filter(|&r| r != code.0[position]) {
                    let mut symbols = code.0;
                    symbols[position] = replacement;
                    assert_eq!(
                        BookingCode::parse(&text_of(&symbols)),
                        Err(BookingCodeError::CheckMismatch),
                        "{code} with position {position} changed"
                    );
                }
            }
        }
    }

    #[test]
    fn every_adjacent_transposition_is_rejected() {
        let mut checked = 0;
        for code in sample_codes() {
            for position in 0..LEN - 1 {
                let mut symbols = code.0;
                if symbols[position] == symbols[position + 1] {
                    continue;
                }
                symbols.swap(position, position + 1);
                assert_eq!(
                    BookingCode::parse(&text_of(&symbols)),
                    Err(BookingCodeError::CheckMismatch),
                    "{code} with positions {position} and {} swapped",
                    position + 1
                );
                checked += 1;
            }
        }
        assert!(checked > 300, "only {checked} transpositions checked");
    }

    #[test]
    fn displays_in_four_groups_of_four() {
        let code = BookingCode::from_data([0; DATA_LEN]);
        assert_eq!(code.to_string(), "0000-0000-0000-0000");
        let code = BookingCode::from_data(std::array::from_fn(|i| i as u8 + 10));
        let shown = code.to_string();
        assert_eq!(&shown[..18], "ABCD-EFGH-JKMN-PQR");
        assert_eq!(shown.len(), 19);
        assert_eq!(code.prefix(), "ABCD");
    }

    #[test]
    fn parsing_is_tolerant_of_case_separators_and_look_alikes() {
        let code = BookingCode::from_data(std::array::from_fn(|i| [0, 1, 17, 31][i % 4]));
        let canonical = code.to_string();
        assert!(canonical.starts_with("01HZ-01HZ"), "{canonical}");
        let variants = [
            canonical.to_lowercase(),
            canonical.replace('-', " "),
            canonical.replace('-', ""),
            canonical.replace('-', "."),
            canonical.replace('-', "_"),
            canonical.replace('-', " \u{2013} "),
            format!("  {}\n", canonical.to_lowercase().replace('-', "  ")),
            canonical.replace('0', "O").replace('1', "I"),
            canonical.replace('0', "o").replace('1', "l"),
        ];
        for variant in variants {
            assert_eq!(BookingCode::parse(&variant), Ok(code.clone()), "{variant:?}");
            assert_eq!(variant.parse::<BookingCode>(), Ok(code.clone()));
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            BookingCode::parse("ABCD-EFGH-JKMN"),
            Err(BookingCodeError::WrongLength {
                expected: 16,
                got: 12
            })
        );
        assert_eq!(
            BookingCode::parse("").map_err(|e| e.to_string()),
            Err(
                "a booking code has 16 characters (not counting dashes and spaces), \
                 but you entered 0"
                    .to_owned()
            )
        );
        assert_eq!(
            BookingCode::parse("ABCD-EFGH-JKMN-PQRU"),
            Err(BookingCodeError::InvalidCharacter { character: 'U' })
        );
        assert_eq!(
            BookingCode::parse("ABCD-EFGH-JKMN-PQR#").map_err(|e| e.to_string()),
            Err(
                "'#' does not occur in booking codes; they consist of the digits 0-9 and the \
                 letters A-Z except U"
                    .to_owned()
            )
        );
        assert_eq!(
            BookingCode::parse("ÄBCD-EFGH-JKMN-PQRS"),
            Err(BookingCodeError::InvalidCharacter { character: 'Ä' })
        );
        assert_eq!(
            BookingCodeError::CheckMismatch.to_string(),
            "this code has a typo; please check it"
        );
    }

    #[test]
    fn debug_shows_only_the_prefix() {
        let code = BookingCode::from_data(std::array::from_fn(|i| i as u8 + 10));
        let debug = format!("{code:?}");
        assert_eq!(debug, "BookingCode(ABCD-****-****-****)");
        assert!(!debug.contains("EFGH"));
    }

    #[test]
    fn keyed_hash_is_stable_and_depends_on_the_key_and_code() {
        let codes = sample_codes();
        let (a, b) = (&codes[0], &codes[1]);
        assert_eq!(a.keyed_hash(b"key one"), a.keyed_hash(b"key one"));
        let reparsed = BookingCode::parse(&a.to_string().to_lowercase()).expect("valid");
        assert_eq!(reparsed.keyed_hash(b"key one"), a.keyed_hash(b"key one"));
        assert_ne!(a.keyed_hash(b"key one"), a.keyed_hash(b"key two"));
        assert_ne!(a.keyed_hash(b"key one"), b.keyed_hash(b"key one"));
        let canonical = a.to_string().replace('-', "");
        assert_eq!(
            a.keyed_hash(b"key one"),
            mac::keyed_hash(b"key one", &[canonical.as_bytes()])
        );
    }

    #[test]
    fn serializes_as_the_displayed_form() {
        let code = BookingCode::from_data([7; DATA_LEN]);
        let json = serde_json::to_string(&code).expect("serializes");
        assert_eq!(json, format!("\"{code}\""));
        assert_eq!(serde_json::from_str::<BookingCode>(&json).ok(), Some(code));
        assert!(serde_json::from_str::<BookingCode>("\"0000\"").is_err());
    }

    proptest! {
        #[test]
        fn display_then_parse_roundtrips(seed in any::<u64>()) {
            let code = BookingCode::generate(&mut ChaCha20Rng::seed_from_u64(seed));
            let shown = code.to_string();
            prop_assert_eq!(shown.len(), 19);
            prop_assert_eq!(BookingCode::parse(&shown), Ok(code.clone()));
            prop_assert_eq!(BookingCode::parse(&shown.to_lowercase().replace('-', " ")), Ok(code));
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,40}") {
            let _ = BookingCode::parse(&input);
        }

        #[test]
        fn every_data_pattern_gets_a_valid_check_character(data in prop::array::uniform15(0u8..32)) {
            let code = BookingCode::from_data(data);
            prop_assert_eq!(damm_fold(&code.0), 0);
            prop_assert_eq!(BookingCode::parse(&code.to_string()), Ok(code));
        }
    }
}
