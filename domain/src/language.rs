//! The language a person is spoken to in. Every text we show or send exists in both.

use serde::{Deserialize, Serialize};

/// German is the default: the service's home language.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Deutsch.
    #[default]
    De,
    /// English.
    En,
}

impl Language {
    /// The ISO 639-1 code.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::De => "de",
            Language::En => "en",
        }
    }

    /// Reads an ISO 639-1 code; `None` for a language we do not speak.
    pub fn parse(code: &str) -> Option<Language> {
        match code {
            "de" => Some(Language::De),
            "en" => Some(Language::En),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_roundtrip() {
        for language in [Language::De, Language::En] {
            assert_eq!(Language::parse(language.as_str()), Some(language));
        }
        assert_eq!(Language::parse("fr"), None);
    }
}
