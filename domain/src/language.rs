//! The language a person is spoken to in. Every text we show or send exists in each of them.

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// German is the default: the service's home language. Turkish and Arabic are the languages
/// most spoken at home in Germany after German; Arabic is written right to left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Deutsch.
    #[default]
    De,
    /// English.
    En,
    /// Türkçe.
    Tr,
    /// العربية.
    Ar,
}

/// Which way a language's lines run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// German, English, Turkish.
    LeftToRight,
    /// Arabic.
    RightToLeft,
}

impl Direction {
    /// The value of HTML's `dir` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::LeftToRight => "ltr",
            Direction::RightToLeft => "rtl",
        }
    }
}

impl Language {
    /// Every language, in the order a language switch lists them.
    pub const ALL: [Language; 4] = [Language::De, Language::En, Language::Tr, Language::Ar];

    /// The ISO 639-1 code.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::De => "de",
            Language::En => "en",
            Language::Tr => "tr",
            Language::Ar => "ar",
        }
    }

    /// Reads an ISO 639-1 code; `None` for a language we do not speak.
    pub fn parse(code: &str) -> Option<Language> {
        Language::ALL
            .into_iter()
            .find(|language| language.as_str() == code)
    }

    /// The language's name in itself, as a language switch shows it.
    pub fn own_name(self) -> &'static str {
        match self {
            Language::De => "Deutsch",
            Language::En => "English",
            Language::Tr => "Türkçe",
            Language::Ar => "العربية",
        }
    }

    /// Which way its lines run.
    pub fn direction(self) -> Direction {
        match self {
            Language::Ar => Direction::RightToLeft,
            Language::De | Language::En | Language::Tr => Direction::LeftToRight,
        }
    }
}

const WEEKDAYS_DE: [&str; 7] = ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"];
const WEEKDAYS_TR: [&str; 7] = ["Pzt", "Sal", "Çar", "Per", "Cum", "Cmt", "Paz"];
const WEEKDAYS_AR: [&str; 7] = [
    "الاثنين",
    "الثلاثاء",
    "الأربعاء",
    "الخميس",
    "الجمعة",
    "السبت",
    "الأحد",
];

/// A time as people there read it, in the centre's time zone (UTC, said so, if the zone is
/// unknown): "Mo, 24.05.2021, 09:30 Uhr", "Mon 24 May 2021, 09:30", "Pzt 24.05.2021, 09:30",
/// "الاثنين 24.05.2021، 09:30". Arabic keeps the digits used on German phones and letters.
pub fn when(at: DateTime<Utc>, timezone: &str, language: Language) -> String {
    let Ok(tz) = timezone.parse::<Tz>() else {
        return format!("{} UTC", at.format("%Y-%m-%d %H:%M"));
    };
    let local = at.with_timezone(&tz);
    let weekday = local.weekday().num_days_from_monday() as usize;
    match language {
        Language::De => format!(
            "{}, {} Uhr",
            WEEKDAYS_DE[weekday],
            local.format("%d.%m.%Y, %H:%M")
        ),
        Language::En => local.format("%a %-d %b %Y, %H:%M").to_string(),
        Language::Tr => format!("{} {}", WEEKDAYS_TR[weekday], local.format("%d.%m.%Y, %H:%M")),
        Language::Ar => format!("{} {}", WEEKDAYS_AR[weekday], local.format("%d.%m.%Y، %H:%M")),
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
        assert_eq!(when(at, "Europe/Berlin", Language::Tr), "Pzt 24.05.2021, 09:30");
        assert_eq!(
            when(at, "Europe/Berlin", Language::Ar),
            "الاثنين 24.05.2021، 09:30"
        );
        assert_eq!(when(at, "Mars/Olympus", Language::En), "2021-05-24 07:30 UTC");
    }

    #[test]
    fn codes_roundtrip() {
        for language in Language::ALL {
            assert_eq!(Language::parse(language.as_str()), Some(language));
        }
        assert_eq!(Language::parse("fr"), None);
    }

    #[test]
    fn only_arabic_runs_right_to_left() {
        let rtl: Vec<_> = Language::ALL
            .into_iter()
            .filter(|l| l.direction() == Direction::RightToLeft)
            .collect();
        assert_eq!(rtl, [Language::Ar]);
    }
}
