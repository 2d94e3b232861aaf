//! The words of every message, from the template files in `notifier/templates/` (one per kind
//! and language, with `sms`, `subject`, `text` and `html` blocks), compiled into the binary.
//! Times are shown in the centre's time zone, formatted for the person's language.

use chrono::{TimeZone, Utc};
use minijinja::{context, AutoEscape, Captured, Environment, Value};

use drawbridge_domain::language::when;
use drawbridge_domain::{Label, Language};
use drawbridge_platform::outbox::{Appointment, Notification};

/// The HTML layout every email body is placed in.
const LAYOUT: &str = "_layout.html";

/// Registers each kind's template in every language as `<kind>.<language>`.
macro_rules! in_every_language {
    ($($kind:literal),* $(,)?) => {
        [$(
            (concat!($kind, ".de"), include_str!(concat!("../templates/", $kind, ".de.j2"))),
            (concat!($kind, ".en"), include_str!(concat!("../templates/", $kind, ".en.j2"))),
            (concat!($kind, ".tr"), include_str!(concat!("../templates/", $kind, ".tr.j2"))),
            (concat!($kind, ".ar"), include_str!(concat!("../templates/", $kind, ".ar.j2"))),
        )*]
    };
}

/// The template sources, compiled in so a deployment cannot lose them.
const TEMPLATES: [(&str, &str); 36] = in_every_language!(
    "verification_code",
    "booking_code",
    "offer",
    "offer_expiring",
    "confirmation",
    "cancelled_by_centre",
    "booking_cancelled",
    "already_registered",
    "phone_full",
);

/// Content id of the QR code image inside a confirmation email.
pub const QR_CONTENT_ID: &str = "checkin-qr";

/// One message in every form a channel may need.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub sms: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// PNG of the check-in QR code, for confirmations.
    pub qr_png: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template error: {0}")]
    Template(#[from] minijinja::Error),
    #[error("cannot draw the QR code: {0}")]
    Qr(String),
}

pub struct Templates {
    environment: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    /// Each source is registered as `<name>.txt` and `<name>.html`, so the same file is
    /// rendered unescaped for SMS and plain text and HTML-escaped for the email body.
    pub fn new() -> Self {
        let mut environment = Environment::new();
        environment.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        for (name, source) in TEMPLATES {
            for form in ["txt", "html"] {
                environment
                    .add_template_owned(format!("{name}.{form}"), source)
                    .expect("templates compile (checked by tests)");
            }
        }
        environment
            .add_template(LAYOUT, include_str!("../templates/_layout.html.j2"))
            .expect("layout compiles");
        Templates { environment }
    }

    pub fn render(&self, notification: &Notification, language: Language) -> Result<Rendered, RenderError> {
        let name = format!("{}.{}", notification.kind(), language.as_str());
        let values = values(notification, language);
        let mut text = self
            .environment
            .get_template(&format!("{name}.txt"))?
            .render_captured(&values)?;
        let mut html = self
            .environment
            .get_template(&format!("{name}.html"))?
            .render_captured(&values)?;
        let subject = block(&mut text, "subject")?;
        let body = block(&mut html, "html")?;
        let html = self.environment.get_template(LAYOUT)?.render(context! {
            lang => language.as_str(),
            dir => language.direction().as_str(),
            subject => &subject,
            body => Value::from_safe_string(body),
        })?;
        let qr_png = match notification {
            Notification::Confirmation { qr_token, .. } => Some(qr_png(qr_token)?),
            _ => None,
        };
        Ok(Rendered {
            sms: block(&mut text, "sms")?,
            subject,
            text: block(&mut text, "text")?,
            html,
            qr_png,
        })
    }
}

fn block(captured: &mut Captured<'_>, name: &str) -> Result<String, minijinja::Error> {
    captured
        .with_state_mut(|state| state.render_block(name))
        .map(|text| text.trim().to_owned())
}

/// The values a template sees: the message's fields, with times already formatted.
fn values(notification: &Notification, language: Language) -> Value {
    let appointment = |a: &Appointment| {
        context! {
            centre => &a.centre_name,
            address => &a.centre_address,
            vaccine => a.vaccine_name.get(language),
            first => when(a.first_at, &a.timezone, language),
            second => a.second_at.map(|at| when(at, &a.timezone, language)),
        }
    };
    match notification {
        Notification::VerificationCode { code, valid_minutes } => context! { code, valid_minutes },
        Notification::BookingCode {
            booking_code,
            status_url,
        } => context! { booking_code, status_url },
        Notification::Offer {
            appointment: a,
            expires_at,
            accept_url,
        }
        | Notification::OfferExpiring {
            appointment: a,
            expires_at,
            accept_url,
        } => context! {
            accept_url,
            expires => when(*expires_at, &a.timezone, language),
            ..appointment(a)
        },
        Notification::Confirmation {
            booking_reference,
            appointment: a,
            pass_url,
            ..
        } => context! {
            reference => booking_reference,
            pass_url,
            qr_cid => QR_CONTENT_ID,
            ..appointment(a)
        },
        Notification::CancelledByCentre {
            appointment: a,
            reason,
        } => context! { reason, ..appointment(a) },
        Notification::BookingCancelled { appointment: a } => appointment(a),
        Notification::AlreadyRegistered {
            birth_year,
            initials,
            registered_at,
            timezone,
            status_url,
        } => context! {
            birth_year,
            initials,
            status_url,
            registered => when(*registered_at, timezone, language),
        },
        Notification::PhoneFull { registrations } => context! { registrations },
    }
}

/// A black-on-white PNG of `payload` with the quiet zone scanners need.
fn qr_png(payload: &str) -> Result<Vec<u8>, RenderError> {
    const SCALE: usize = 6;
    const QUIET: usize = 4;
    let code = qrcode::QrCode::new(payload.as_bytes()).map_err(|e| RenderError::Qr(e.to_string()))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (index, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (x, y) = (
                (index % modules + QUIET) * SCALE,
                (index / modules + QUIET) * SCALE,
            );
            for row in y..y + SCALE {
                pixels[row * side + x..row * side + x + SCALE].fill(0);
            }
        }
    }
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| RenderError::Qr(e.to_string()))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| RenderError::Qr(e.to_string()))?;
    writer.finish().map_err(|e| RenderError::Qr(e.to_string()))?;
    Ok(png)
}

/// How many SMS a body takes: GSM-7 (extension characters count twice) fits 160 characters
/// in one segment and 153 per segment after; anything else is UCS-2 with 70 and 67.
pub fn sms_segments(body: &str) -> usize {
    const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const GSM_EXTENDED: &str = "^{}\\[~]|€\u{c}";
    let septets: Option<usize> = body
        .chars()
        .map(|c| {
            if GSM_BASIC.contains(c) {
                Some(1)
            } else if GSM_EXTENDED.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (length, single, multi) = match septets {
        Some(septets) => (septets, 160, 153),
        None => (body.encode_utf16().count(), 70, 67),
    };
    if length <= single {
        1
    } else {
        length.div_ceil(multi)
    }
}

/// A two-dose (or, with `second` false, one-dose) appointment in Mannheim in May 2021.
pub fn example_appointment(second: bool) -> Appointment {
    Appointment {
        centre_name: "Impfzentrum Mannheim Maimarkthalle".into(),
        centre_address: "Xaver-Fuhr-Straße 101, 68163 Mannheim".into(),
        vaccine_name: Label::same("Comirnaty (BioNTech/Pfizer)"),
        first_at: Utc.with_ymd_and_hms(2021, 5, 24, 7, 30, 0).unwrap(),
        second_at: second.then(|| Utc.with_ymd_and_hms(2021, 6, 14, 7, 30, 0).unwrap()),
        timezone: "Europe/Berlin".into(),
    }
}

/// One realistic example of every kind, with URLs as long as the gateway makes them: for
/// previews of the templates and for tests.
pub fn examples() -> Vec<Notification> {
    let url = "https://termine.example.de/o/k1.eyJwIjoib2ZmZXIiLCJjIjoiMmQ3ZjRiIn0.Zm9vYmFyYmF6cXV4";
    vec![
        Notification::VerificationCode {
            code: "048213".into(),
            valid_minutes: 10,
        },
        Notification::BookingCode {
            booking_code: "K7Q2-M9XD-4HTB-R8WN".into(),
            status_url: "https://termine.example.de/me".into(),
        },
        Notification::Offer {
            appointment: example_appointment(true),
            expires_at: Utc.with_ymd_and_hms(2021, 5, 21, 18, 0, 0).unwrap(),
            accept_url: url.into(),
        },
        Notification::OfferExpiring {
            appointment: example_appointment(true),
            expires_at: Utc.with_ymd_and_hms(2021, 5, 21, 18, 0, 0).unwrap(),
            accept_url: url.into(),
        },
        Notification::Confirmation {
            booking_reference: "B-2021-000123".into(),
            appointment: example_appointment(true),
            qr_token:
                "k1.eyJwIjoicXIiLCJpYXQiOjE2MjE1MDAwMDAsImMiOnsiYiI6IjEyMyJ9fQ.c2lnbmF0dXJlc2lnbmF0dXJl"
                    .into(),
            pass_url: "https://termine.example.de/pass/0f1e2d3c4b5a69788796a5b4c3d2e1f0/9a8b7c6d5e4f3a2b1c0d"
                .into(),
        },
        Notification::CancelledByCentre {
            appointment: example_appointment(false),
            reason: "Impfstofflieferung ausgefallen".into(),
        },
        Notification::BookingCancelled {
            appointment: example_appointment(true),
        },
        Notification::AlreadyRegistered {
            birth_year: 1941,
            initials: "EM".into(),
            registered_at: Utc.with_ymd_and_hms(2021, 4, 19, 8, 12, 0).unwrap(),
            timezone: "Europe/Berlin".into(),
            status_url: "https://termine.example.de/me".into(),
        },
        Notification::PhoneFull { registrations: 4 },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_renders_in_every_language_with_its_facts() {
        let templates = Templates::new();
        let examples = examples();
        assert_eq!(examples.len(), Notification::KINDS.len(), "an example per kind");
        for notification in &examples {
            for language in Language::ALL {
                let r = templates.render(notification, language).unwrap();
                for part in [&r.sms, &r.subject, &r.text, &r.html] {
                    assert!(
                        !part.trim().is_empty(),
                        "{} {language:?}: empty part",
                        notification.kind()
                    );
                    assert!(!part.contains("{{") && !part.contains("{%"), "unrendered: {part}");
                }
                assert!(r.html.contains(&format!(
                    "lang=\"{}\" dir=\"{}\"",
                    language.as_str(),
                    language.direction().as_str()
                )));
                if let Notification::Offer { .. } | Notification::Confirmation { .. } = notification {
                    let first = when(example_appointment(true).first_at, "Europe/Berlin", language);
                    let second = when(
                        example_appointment(true).second_at.unwrap(),
                        "Europe/Berlin",
                        language,
                    );
                    for part in [&r.sms, &r.text, &r.html] {
                        assert!(
                            part.contains(&first) && part.contains(&second),
                            "both dates in {part}"
                        );
                    }
                    assert!(r.text.contains("Xaver-Fuhr-Straße 101"), "the centre's address");
                }
            }
        }
    }

    /// Two segments of the GSM alphabet, as German and English are sent; Turkish and Arabic
    /// letters need UCS-2, whose segments hold 67 characters instead of 153.
    #[test]
    fn sms_bodies_fit_two_segments_or_four_in_ucs2() {
        let templates = Templates::new();
        for notification in examples() {
            for language in Language::ALL {
                let sms = templates.render(&notification, language).unwrap().sms;
                let most = match language {
                    Language::De | Language::En => 2,
                    Language::Tr | Language::Ar => 4,
                };
                assert!(
                    sms_segments(&sms) <= most,
                    "{} {language:?} takes {} segments: {sms}",
                    notification.kind(),
                    sms_segments(&sms)
                );
            }
        }
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let mut notification = examples().remove(5);
        if let Notification::CancelledByCentre { reason, .. } = &mut notification {
            *reason = "<script>alert(1)</script> & more".into();
        }
        let r = Templates::new().render(&notification, Language::En).unwrap();
        assert!(r.html.contains("&lt;script&gt;") && !r.html.contains("<script>"));
        assert!(r.text.contains("<script>alert(1)</script> & more"));
    }

    #[test]
    fn confirmations_carry_a_qr_code_png_referenced_by_the_html() {
        let r = Templates::new().render(&examples()[4], Language::De).unwrap();
        let png = r.qr_png.expect("a QR code");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(r.html.contains(&format!("cid:{QR_CONTENT_ID}")));
        assert!(Templates::new()
            .render(&examples()[2], Language::De)
            .unwrap()
            .qr_png
            .is_none());
    }

    #[test]
    fn segments_count_like_a_phone() {
        assert_eq!(sms_segments(&"a".repeat(160)), 1);
        assert_eq!(sms_segments(&"a".repeat(161)), 2);
        assert_eq!(sms_segments(&"a".repeat(306)), 2);
        assert_eq!(sms_segments(&"€".repeat(80)), 1); // 160 septets
        assert_eq!(sms_segments(&"ł".repeat(70)), 1); // not GSM: UCS-2
        assert_eq!(sms_segments(&"ł".repeat(71)), 2);
    }
}
