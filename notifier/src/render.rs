//! The words of every message, in German and English.

use drawbridge_domain::Language;
use drawbridge_platform::outbox::Notification;

pub struct Rendered {
    pub subject: String,
    pub body: String,
}

pub fn render(notification: &Notification, language: Language) -> Rendered {
    match (notification, language) {
        (Notification::VerificationCode { code, valid_minutes }, Language::De) => Rendered {
            subject: "Ihr Bestätigungscode".into(),
            body: format!("Drawbridge: Ihr Code lautet {code}. Er gilt {valid_minutes} Minuten. Geben Sie ihn an niemanden weiter."),
        },
        (Notification::VerificationCode { code, valid_minutes }, Language::En) => Rendered {
            subject: "Your verification code".into(),
            body: format!("Drawbridge: your code is {code}. It is valid for {valid_minutes} minutes. Never share it with anyone."),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_code_fits_one_sms_in_both_languages() {
        let notification = Notification::VerificationCode {
            code: "123456".into(),
            valid_minutes: 10,
        };
        for language in [Language::De, Language::En] {
            let rendered = render(&notification, language);
            assert!(rendered.body.contains("123456"));
            assert!(rendered.body.contains("10"));
            // GSM-7 single segment: 160 characters.
            assert!(rendered.body.chars().count() <= 160, "{}", rendered.body);
        }
    }
}
