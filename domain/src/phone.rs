//! Phone numbers in E.164, the one form SMS gateways and databases agree on.
//!
//! People type numbers in many ways ("0151 / 123 45 67", "+49 (0)151-1234567", "0049151…").
//! Parsing accepts them all and stores one canonical form, so the same phone is the same
//! registrant however it was typed.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The country code assumed for national numbers (those starting with a single 0): Germany.
pub const DEFAULT_COUNTRY_CODE: &str = "49";

/// E.164 allows at most 15 digits including the country code.
const MAX_DIGITS: usize = 15;
/// Shorter numbers are service numbers, not phones that receive SMS.
const MIN_DIGITS: usize = 8;
/// What to tell a person who typed something we cannot read.
const EXAMPLE: &str = "Please enter a mobile number like 0151 12345678 or +49 151 12345678.";

/// A phone number in E.164 form, e.g. `+4915112345678`.
///
/// `Debug` masks all but the last three digits, so numbers never end up in logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

/// Why a typed phone number was not accepted; every message says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing was entered.
    #[error("No phone number was entered. {}", EXAMPLE)]
    Empty,
    /// A letter or symbol that has no place in a phone number.
    #[error("{character:?} cannot be part of a phone number. {}", EXAMPLE)]
    InvalidCharacter {
        /// The offending character.
        character: char,
    },
    /// The number starts with neither 0 nor an international prefix, so its country is unknown.
    #[error(
        "Please start the number with 0 (within Germany) or with + or 00 and the country \
         code. {}",
        EXAMPLE
    )]
    MissingPrefix,
    /// After the international prefix comes a 0, but no country code starts with 0.
    #[error(
        "A country code never starts with 0; please check the digits after + or 00. {}",
        EXAMPLE
    )]
    InvalidCountryCode,
    /// Too few or too many digits for a phone number.
    #[error(
        "A phone number has 8 to 15 digits including the country code, but this one has \
         {digits}. {}",
        EXAMPLE
    )]
    WrongLength {
        /// Digits including the country code.
        digits: usize,
    },
    /// The configured default country code is not 1 to 3 digits (a deployment error).
    #[error("the default country code {code:?} must be 1 to 3 digits not starting with 0, e.g. \"49\"")]
    InvalidDefaultCountryCode {
        /// The configured value.
        code: String,
    },
}

impl PhoneNumber {
    /// Reads a number as people type it.
    ///
    /// Spaces, `-`, `/`, `.`, `(` and `)` are ignored. `+` or `00` starts an international
    /// number; a single leading `0` is a national number in `default_country_code` (given
    /// with or without `+`). Two common habits are understood: the trunk zero written as
    /// `(0)` in international numbers ("+44 (0)20 …"), and a German number written with both
    /// the country code and its trunk zero ("+49 0151 …"), which no real German number has.
    pub fn parse(input: &str, default_country_code: &str) -> Result<PhoneNumber, PhoneError> {
        let country = default_country_code
            .strip_prefix('+')
            .unwrap_or(default_country_code);
        if !is_country_calling_code(country) {
            return Err(PhoneError::InvalidDefaultCountryCode {
                code: default_country_code.to_owned(),
            });
        }

        let trimmed = input.trim();
        let international_input = trimmed.starts_with('+') || trimmed.starts_with("00");
        let text = if international_input {
            trimmed.replace("(0)", "")
        } else {
            trimmed.to_owned()
        };
        let (has_plus, digits) = plus_and_digits(&text)?;
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }

        let international = if has_plus {
            digits
        } else if let Some(rest) = digits.strip_prefix("00") {
            rest.to_owned()
        } else if let Some(rest) = digits.strip_prefix('0') {
            format!("{country}{rest}")
        } else {
            return Err(PhoneError::MissingPrefix);
        };
        let international = match international.strip_prefix("490") {
            Some(rest) => format!("49{}", rest.trim_start_matches('0')),
            None => international,
        };

        if international.starts_with('0') {
            return Err(PhoneError::InvalidCountryCode);
        }
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&international.len()) {
            return Err(PhoneError::WrongLength {
                digits: international.len(),
            });
        }
        Ok(PhoneNumber(format!("+{international}")))
    }

    /// The E.164 form, e.g. `+4915112345678`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The country calling code, e.g. 49; `None` for a number no numbering plan knows.
    pub fn country_code(&self) -> Option<u16> {
        self.plan().map(|number| number.code().value())
    }

    /// Whether the number reaches a mobile phone by its country's numbering plan (or may, where
    /// the plan cannot tell, as in the USA): landlines, premium-rate and service numbers cannot
    /// take an SMS code at an ordinary price.
    pub fn is_mobile(&self) -> bool {
        self.plan().is_some_and(|number| {
            matches!(
                number.number_type(&phonenumber::metadata::DATABASE),
                phonenumber::Type::Mobile | phonenumber::Type::FixedLineOrMobile
            )
        })
    }

    /// The number as libphonenumber's metadata reads it.
    fn plan(&self) -> Option<phonenumber::PhoneNumber> {
        phonenumber::parse(None, &self.0).ok()
    }
}

/// Whether `code` is written as a country calling code: 1 to 3 digits, not starting with 0,
/// without `+` (e.g. `49`).
pub fn is_country_calling_code(code: &str) -> bool {
    (1..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0')
}

/// Whether the text had a leading `+`, and its digits, ignoring separators.
fn plus_and_digits(text: &str) -> Result<(bool, String), PhoneError> {
    let mut has_plus = false;
    let mut digits = String::new();
    for character in text.chars() {
        match character {
            c if c.is_whitespace() => {}
            '-' | '/' | '.' | '(' | ')' => {}
            '+' if !has_plus && digits.is_empty() => has_plus = true,
            c if c.is_ascii_digit() => digits.push(c),
            character => return Err(PhoneError::InvalidCharacter { character }),
        }
    }
    Ok((has_plus, digits))
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const VISIBLE: usize = 3;
        let digits = self.0.len().saturating_sub(1);
        let hidden = digits.saturating_sub(VISIBLE);
        let visible = self
            .0
            .get(self.0.len() - VISIBLE.min(digits)..)
            .unwrap_or_default();
        write!(f, "PhoneNumber(+{}{visible})", "*".repeat(hidden))
    }
}

/// Serialized as the E.164 string.
impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Only the canonical E.164 form is accepted: stored data must not need interpretation.
impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PhoneNumber, D::Error> {
        let text = String::deserialize(deserializer)?;
        match PhoneNumber::parse(&text, DEFAULT_COUNTRY_CODE) {
            Ok(phone) if phone.0 == text => Ok(phone),
            _ => Err(serde::de::Error::custom(format!(
                "expected a phone number in E.164 form like +4915112345678, got {text:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn de(input: &str) -> Result<String, PhoneError> {
        PhoneNumber::parse(input, DEFAULT_COUNTRY_CODE).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn accepts_the_ways_people_write_numbers() {
        let expected = Ok("+491511234567".to_owned());
        for input in [
            "0151 1234567",
            "0151/1234567",
            "0151-123 45 67",
            "(0151) 123.45.67",
            "+49 151 1234567",
            "+49 (0)151 1234567",
            "+49 0151 1234567",
            "0049 151 1234567",
            "  +491511234567\t",
            "+49\u{a0}151\u{a0}1234567",
        ] {
            assert_eq!(de(input), expected, "{input:?}");
        }
    }

    #[test]
    fn uses_the_default_country_only_for_national_numbers() {
        let at = |input: &str, country: &str| PhoneNumber::parse(input, country).map(|p| p.to_string());
        assert_eq!(at("0664 1234567", "43"), Ok("+436641234567".to_owned()));
        assert_eq!(at("0664 1234567", "+43"), Ok("+436641234567".to_owned()));
        assert_eq!(at("+44 (0)20 7946 0958", "43"), Ok("+442079460958".to_owned()));
        assert_eq!(at("+39 06 1234 5678", "49"), Ok("+390612345678".to_owned()));
        for bad in ["", "0", "049", "1234", "4a", "+"] {
            assert_eq!(
                at("0151 1234567", bad),
                Err(PhoneError::InvalidDefaultCountryCode { code: bad.to_owned() })
            );
        }
    }

    #[test]
    fn rejects_with_messages_that_say_what_to_type() {
        assert_eq!(de("   "), Err(PhoneError::Empty));
        assert_eq!(de("+"), Err(PhoneError::Empty));
        assert_eq!(
            de("0151 12345x7"),
            Err(PhoneError::InvalidCharacter { character: 'x' })
        );
        assert_eq!(
            de("0151+1234567"),
            Err(PhoneError::InvalidCharacter { character: '+' })
        );
        assert_eq!(
            de("++49151"),
            Err(PhoneError::InvalidCharacter { character: '+' })
        );
        assert_eq!(de("151 1234567"), Err(PhoneError::MissingPrefix));
        assert_eq!(de("000 151 1234567"), Err(PhoneError::InvalidCountryCode));
        assert_eq!(de("+0151 1234567"), Err(PhoneError::InvalidCountryCode));
        assert_eq!(de("0151 12"), Err(PhoneError::WrongLength { digits: 7 }));
        assert_eq!(de("01511"), Err(PhoneError::WrongLength { digits: 6 }));
        assert_eq!(
            de("+49 151 1234567890123"),
            Err(PhoneError::WrongLength { digits: 18 })
        );
        assert_eq!(
            de("0151 1234567 ext. 5"),
            Err(PhoneError::InvalidCharacter { character: 'e' })
        );
        assert_eq!(
            PhoneError::InvalidCharacter { character: 'x' }.to_string(),
            "'x' cannot be part of a phone number. Please enter a mobile number like \
             0151 12345678 or +49 151 12345678."
        );
        assert_eq!(
            PhoneError::WrongLength { digits: 7 }.to_string(),
            "A phone number has 8 to 15 digits including the country code, but this one has 7. \
             Please enter a mobile number like 0151 12345678 or +49 151 12345678."
        );
    }

    #[test]
    fn accepts_the_length_limits_of_e164() {
        assert_eq!(de("+49 123456"), Ok("+49123456".to_owned()));
        assert_eq!(de("+49 1234567890123"), Ok("+491234567890123".to_owned()));
        assert_eq!(de("+49 12345"), Err(PhoneError::WrongLength { digits: 7 }));
    }

    #[test]
    fn debug_masks_all_but_the_last_three_digits() {
        let phone = PhoneNumber::parse("0151 1234567", "49").expect("valid");
        assert_eq!(format!("{phone:?}"), "PhoneNumber(+*********567)");
        assert_eq!(phone.to_string(), "+491511234567");
    }

    #[test]
    fn serde_uses_e164_and_accepts_only_it() {
        let phone = PhoneNumber::parse("0151 1234567", "49").expect("valid");
        let json = serde_json::to_string(&phone).expect("serializes");
        assert_eq!(json, "\"+491511234567\"");
        assert_eq!(serde_json::from_str::<PhoneNumber>(&json).ok(), Some(phone));
        assert!(serde_json::from_str::<PhoneNumber>("\"0151 1234567\"").is_err());
        assert!(serde_json::from_str::<PhoneNumber>("\"+49 151 1234567\"").is_err());
    }

    proptest! {
        #[test]
        fn parsing_the_display_form_is_idempotent(
            input in "(\\+|00|0)?[0-9 ()/.-]{0,24}",
            country in "[1-9][0-9]{0,2}",
        ) {
            if let Ok(phone) = PhoneNumber::parse(&input, &country) {
                let shown = phone.to_string();
                prop_assert_eq!(PhoneNumber::parse(&shown, &country), Ok(phone.clone()));
                prop_assert_eq!(PhoneNumber::parse(&shown, DEFAULT_COUNTRY_CODE), Ok(phone.clone()));
                prop_assert!(shown.starts_with('+'));
                prop_assert!((9..=16).contains(&shown.len()));
                prop_assert!(!shown.starts_with("+0"));
                prop_assert!(shown[1..].bytes().all(|b| b.is_ascii_digit()));
            }
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,30}", country in "\\PC{0,4}") {
            let _ = PhoneNumber::parse(&input, &country);
        }
    }

    #[test]
    fn mobile_numbers_are_told_from_landlines_and_premium_ranges() {
        let number = |text: &str| PhoneNumber::parse(text, DEFAULT_COUNTRY_CODE).unwrap();
        for mobile in [
            "0151 12345678",
            "0171 1234567",
            "+43 664 1234567",
            "+1 202 555 0101",
        ] {
            assert!(number(mobile).is_mobile(), "{mobile}");
        }
        for other in ["0711 1234567", "030 12345678", "0900 1234567", "0800 1234567"] {
            assert!(!number(other).is_mobile(), "{other}");
        }
        assert_eq!(number("0151 12345678").country_code(), Some(49));
        assert_eq!(number("+881 2 1234 5678").country_code(), Some(881));
        assert_eq!(number("+43 664 1234567").country_code(), Some(43));
    }
}
