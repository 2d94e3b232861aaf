//! The language a person is spoken to in. Every text we show or send exists in both.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
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

const WEEKDAYS_DE: [&str; 7] = ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"];

/// A time as people there read it: "Mo, 24.05.2021, 09:30 Uhr" or "Mon 24 May 2021, 09:30",
/// in the centre's time zone (UTC, said so, if the zone is unknown).
pub fn when(at: DateTime<Utc>, timezone: &str, language: Language) -> String {
    let Ok(tz) = timezone.parse::<Tz>() else {
        return format!("{} UTC", at.format("%Y-%m-%d %H:%M"));
    };
    let local = at.with_timezone(&tz);
    match language {
        Language::De => {
            let weekday = WEEKDAYS_DE[chrono::Datelike::weekday(&local).num_days_from_monday() as usize];
            format!("{weekday}, {} Uhr", local.format("%d.%m.%Y, %H:%M"))
        }
        Language::En => local.format("%a %-d %b %Y, %H:%M").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_are_local_and_in_the_persons_language() {
        let at = Utc.with_ymd_and_hms(2021, 5, 24, 7, 30, 0).unwrap();
        assert_eq!(
            when(at, "Europe/Berlin", Language::De),
            "Mo, 24.05.2021, 09:30 Uhr"
        );
        assert_eq!(when(at, "Europe/Berlin", Language::En), "Mon 24 May 2021, 09:30");
        assert_eq!(when(at, "Mars/Olympus", Language::En), "2021-05-24 07:30 UTC");
    }

    #[test]
    fn codes_roundtrip() {
        for language in [Language::De, Language::En] {
            assert_eq!(Language::parse(language.as_str()), Some(language));
        }
        assert_eq!(Language::parse("fr"), None);
    }
}
