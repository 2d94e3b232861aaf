//! What a registrant tells us besides their phone number, each field checked once, here, so
//! every channel (web, call centre, change of choices, eligibility check) applies the same rule
//! and names the same field when it refuses.

use std::fmt;

/// A field's value that cannot be accepted, with a sentence the person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The request field at fault, as the API names it.
    pub field: &'static str,
    /// What to give instead.
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// A birth year a living person can have. Ages themselves are the policy's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthYear(i32);

impl BirthYear {
    /// Oldest birth year accepted.
    pub const EARLIEST: i32 = 1900;

    /// `year`, if a living person can be born then (`this_year` is the current year).
    pub fn parse(year: i32, this_year: i32) -> Result<Self, FieldError> {
        if (Self::EARLIEST..=this_year).contains(&year) {
            Ok(BirthYear(year))
        } else {
            Err(FieldError::new(
                "birth_year",
                format!("Please give a birth year between 1900 and {this_year}, like 1956."),
            ))
        }
    }

    /// The year.
    pub fn get(self) -> i32 {
        self.0
    }
}

/// The initials of a person's names, which tell apart the people one phone registers (a
/// household shares a phone): up to three letters, kept in capitals. None is fine for the
/// only person on a phone; two people of the same birth year on one phone need different ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Initials(String);

impl Initials {
    /// Longest initials accepted.
    pub const MAX_LETTERS: usize = 3;

    /// The letters of `text`, in capitals; dots and spaces between them are forgiven ("a. b.").
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let letters: String = text
            .chars()
            .filter(|c| !matches!(c, '.' | ' ' | '-'))
            .flat_map(char::to_uppercase)
            .collect();
        if letters.chars().count() <= Self::MAX_LETTERS && letters.chars().all(char::is_alphabetic) {
            Ok(Initials(letters))
        } else {
            Err(FieldError::new(
                "initials",
                "Please give the first letters of your first and last name (at most three), like AB.",
            ))
        }
    }

    /// The capital letters; empty if none were given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The capital letters, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A German postcode: exactly five digits (spaces around it are forgiven).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postcode(String);

impl Postcode {
    /// The postcode in `text`, trimmed.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let postcode = text.trim();
        if postcode.len() == 5 && postcode.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Postcode(postcode.to_owned()))
        } else {
            Err(FieldError::new(
                "postcode",
                "Please give your five-digit postcode, like 70173.",
            ))
        }
    }

    /// The five digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The five digits, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Postcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address plausible enough to catch typos; the mail server is the real judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Longest address SMTP carries.
    const MAX_LEN: usize = 254;

    /// The address in `text`, trimmed.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let email = text.trim();
        let plausible = email.len() <= Self::MAX_LEN
            && !email.chars().any(char::is_whitespace)
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'));
        if plausible {
            Ok(Email(email.to_owned()))
        } else {
            Err(FieldError::new(
                "email",
                "Please give an email address like name@example.de, or leave it out.",
            ))
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// How far a person will travel to a centre, in whole kilometres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistanceKm(i32);

impl DistanceKm {
    /// Farthest distance accepted: no German state is wider.
    pub const MAX: u32 = 1000;

    /// `km`, if between 1 and [`Self::MAX`].
    pub fn parse(km: u32) -> Result<Self, FieldError> {
        if (1..=Self::MAX).contains(&km) {
            Ok(DistanceKm(km as i32))
        } else {
            Err(FieldError::new(
                "max_distance_km",
                "Please give a distance between 1 and 1000 km.",
            ))
        }
    }

    /// The kilometres.
    pub fn get(self) -> i32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_are_capital_letters_with_dots_and_spaces_forgiven() {
        assert_eq!(Initials::parse("a. b.").unwrap().as_str(), "AB");
        assert_eq!(Initials::parse("ÖzK").unwrap().as_str(), "ÖZK");
        assert_eq!(Initials::parse("").unwrap().as_str(), "");
        for bad in ["ABCD", "A1", "A_B"] {
            assert_eq!(Initials::parse(bad).unwrap_err().field, "initials", "{bad}");
        }
    }

    #[test]
    fn email_check_catches_typos() {
        assert_eq!(
            Email::parse(" anna@example.de ").map(Email::into_string),
            Ok("anna@example.de".into())
        );
        for bad in [
            "",
            "anna",
            "anna@",
            "@example.de",
            "anna@example",
            "an na@example.de",
            "anna@example.",
        ] {
            assert_eq!(
                Email::parse(bad).map_err(|e| e.field),
                Err("email"),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn birth_years_run_from_1900_to_this_year() {
        assert!(BirthYear::parse(1900, 2026).is_ok());
        assert!(BirthYear::parse(2026, 2026).is_ok());
        assert_eq!(
            BirthYear::parse(1899, 2026).map_err(|e| e.field),
            Err("birth_year")
        );
        assert_eq!(
            BirthYear::parse(2027, 2026).map_err(|e| e.field),
            Err("birth_year")
        );
    }

    #[test]
    fn postcodes_are_five_digits_with_spaces_forgiven() {
        assert_eq!(
            Postcode::parse(" 70173 ").map(Postcode::into_string),
            Ok("70173".into())
        );
        for bad in ["7017", "701733", "7017a", "", "70 173"] {
            assert_eq!(
                Postcode::parse(bad).map_err(|e| e.field),
                Err("postcode"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn distances_run_from_one_to_a_thousand_km() {
        assert_eq!(DistanceKm::parse(1).map(DistanceKm::get), Ok(1));
        assert_eq!(DistanceKm::parse(1000).map(DistanceKm::get), Ok(1000));
        assert!(DistanceKm::parse(0).is_err());
        assert!(DistanceKm::parse(1001).is_err());
    }
}
