//! The web pages' templates, texts and static files: compiled into the binary and loaded once
//! at start-up. Pages are `templates/*.html` (minijinja, HTML-escaped, all extending
//! `layout.html`); their words come from `templates/lang/<language>.toml`, given to every
//! template as `t`. Stylesheets and scripts in `static/` are served under a name that carries
//! a hash of their content, so browsers may keep them for a year; templates link them with
//! `static_url('name.ext')`.

use std::collections::HashMap;
use std::fmt::Write as _;

use actix_web::http::header;
use actix_web::HttpResponse;
use drawbridge_domain::{Label, Language};
use drawbridge_platform::table_file::{self, LineError};
use minijinja::value::Kwargs;
use minijinja::{context, AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The page templates, by the name pages render them by.
const TEMPLATES: [(&str, &str); 44] = [
    ("layout.html", include_str!("../templates/layout.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("policy.html", include_str!("../templates/policy.html")),
    ("check.html", include_str!("../templates/check.html")),
    ("room.html", include_str!("../templates/room.html")),
    ("offer.html", include_str!("../templates/offer.html")),
    ("pass.html", include_str!("../templates/pass.html")),
    ("me.html", include_str!("../templates/me.html")),
    ("offer_table.html", include_str!("../templates/offer_table.html")),
    (
        "booking_table.html",
        include_str!("../templates/booking_table.html"),
    ),
    ("register.html", include_str!("../templates/register.html")),
    ("code.html", include_str!("../templates/code.html")),
    ("me_choices.html", include_str!("../templates/me_choices.html")),
    ("me_confirm.html", include_str!("../templates/me_confirm.html")),
    (
        "offer_answered.html",
        include_str!("../templates/offer_answered.html"),
    ),
    (
        "staff_sign_in.html",
        include_str!("../templates/staff_sign_in.html"),
    ),
    ("staff_home.html", include_str!("../templates/staff_home.html")),
    (
        "staff_password.html",
        include_str!("../templates/staff_password.html"),
    ),
    ("console.html", include_str!("../templates/console.html")),
    (
        "staff_refused.html",
        include_str!("../templates/staff_refused.html"),
    ),
    ("read_back.html", include_str!("../templates/read_back.html")),
    ("agent_desk.html", include_str!("../templates/agent_desk.html")),
    (
        "agent_register.html",
        include_str!("../templates/agent_register.html"),
    ),
    (
        "agent_registered.html",
        include_str!("../templates/agent_registered.html"),
    ),
    (
        "agent_caller.html",
        include_str!("../templates/agent_caller.html"),
    ),
    (
        "agent_capacity.html",
        include_str!("../templates/agent_capacity.html"),
    ),
    ("centre_list.html", include_str!("../templates/centre_list.html")),
    ("centre_day.html", include_str!("../templates/centre_day.html")),
    (
        "centre_publish.html",
        include_str!("../templates/centre_publish.html"),
    ),
    (
        "centre_withdrawn.html",
        include_str!("../templates/centre_withdrawn.html"),
    ),
    ("centre_door.html", include_str!("../templates/centre_door.html")),
    (
        "admin_centres.html",
        include_str!("../templates/admin_centres.html"),
    ),
    (
        "admin_centre.html",
        include_str!("../templates/admin_centre.html"),
    ),
    (
        "admin_imported.html",
        include_str!("../templates/admin_imported.html"),
    ),
    ("admin_staff.html", include_str!("../templates/admin_staff.html")),
    (
        "admin_password.html",
        include_str!("../templates/admin_password.html"),
    ),
    ("admin_rooms.html", include_str!("../templates/admin_rooms.html")),
    ("admin_room.html", include_str!("../templates/admin_room.html")),
    (
        "admin_policy.html",
        include_str!("../templates/admin_policy.html"),
    ),
    ("admin_audit.html", include_str!("../templates/admin_audit.html")),
    ("import_form.html", include_str!("../templates/import_form.html")),
    (
        "analyst_draws.html",
        include_str!("../templates/analyst_draws.html"),
    ),
    (
        "analyst_draw.html",
        include_str!("../templates/analyst_draw.html"),
    ),
    (
        "analyst_simulations.html",
        include_str!("../templates/analyst_simulations.html"),
    ),
];

/// The pages' words, one file per language with the same keys.
const TEXTS: [(Language, &str); 4] = [
    (Language::De, include_str!("../templates/lang/de.toml")),
    (Language::En, include_str!("../templates/lang/en.toml")),
    (Language::Tr, include_str!("../templates/lang/tr.toml")),
    (Language::Ar, include_str!("../templates/lang/ar.toml")),
];

/// The staff consoles' words, in the two languages they are offered in.
const CONSOLE_TEXTS: [(Language, &str); 2] = [
    (Language::De, include_str!("../templates/lang/console/de.toml")),
    (Language::En, include_str!("../templates/lang/console/en.toml")),
];

/// The languages of the staff consoles.
pub const CONSOLE_LANGUAGES: [Language; 2] = [Language::De, Language::En];

/// The files served under `/static/`. `jsqr.js` is jsQR 1.4.0 from npm (Apache-2.0, its
/// licence beside it), the door's QR decoder where the browser has no BarcodeDetector.
const STATIC: [(&str, &str); 6] = [
    ("site.css", include_str!("../static/site.css")),
    ("waiting-room.js", include_str!("../static/waiting-room.js")),
    ("capacity-form.js", include_str!("../static/capacity-form.js")),
    ("door.js", include_str!("../static/door.js")),
    ("live-counters.js", include_str!("../static/live-counters.js")),
    ("jsqr.js", include_str!("../static/vendor/jsQR.js")),
];

/// Static files never change under one name: a new content gets a new name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A static file as served.
pub struct Asset {
    pub body: &'static str,
    pub content_type: &'static str,
}

pub struct Templates {
    environment: Environment<'static>,
    /// Each language's words, by language.
    texts: HashMap<Language, Value>,
    /// By the hashed file name they are served under.
    assets: HashMap<String, Asset>,
}

impl Templates {
    /// Compiles every template and hashes every static file; a broken template stops the
    /// gateway at start-up rather than on the first visit.
    pub fn load() -> Self {
        let mut urls = HashMap::new();
        let mut assets = HashMap::new();
        for (name, body) in STATIC {
            let file = hashed_name(name, body);
            urls.insert(name, format!("/static/{file}"));
            assets.insert(
                file,
                Asset {
                    body,
                    content_type: content_type(name),
                },
            );
        }
        let mut environment = Environment::new();
        environment.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        // A misspelt value or text key fails the page (and its tests) instead of showing nothing.
        environment.set_undefined_behavior(UndefinedBehavior::Strict);
        // The URLs are ours and hold nothing to escape.
        environment.add_function("static_url", move |name: &str| {
            urls.get(name)
                .cloned()
                .map(Value::from_safe_string)
                .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, format!("no static file {name}")))
        });
        environment.add_filter("fill", fill);
        environment.add_filter("label", label);
        for (name, source) in TEMPLATES {
            environment
                .add_template(name, source)
                .unwrap_or_else(|error| panic!("template {name}: {error:#}"));
        }
        let parse = |language: Language, source: &str| -> toml::Table {
            toml::from_str(source).unwrap_or_else(|error| panic!("texts {}: {error}", language.as_str()))
        };
        let texts = TEXTS
            .into_iter()
            .map(|(language, source)| {
                let mut table = parse(language, source);
                if let Some((_, console)) = CONSOLE_TEXTS.iter().find(|(l, _)| *l == language) {
                    for (section, texts) in parse(language, console) {
                        assert!(
                            table.insert(section.clone(), texts).is_none(),
                            "texts {}: [{section}] is both a page's and a console's",
                            language.as_str()
                        );
                    }
                }
                (language, Value::from_serialize(table))
            })
            .collect();
        Templates {
            texts,
            environment,
            assets,
        }
    }

    fn texts(&self, language: Language) -> &Value {
        self.texts.get(&language).expect("a text file per language")
    }

    /// The text `key` of `section` of the texts in `language`, for answers that are not pages.
    pub fn text(&self, language: Language, section: &str, key: &str) -> Option<String> {
        let text = self.texts(language).get_attr(section).ok()?.get_attr(key).ok()?;
        text.as_str().map(str::to_owned)
    }

    /// What is wrong on a line of a set-up file, in a console's `language`.
    pub fn line_problem(&self, language: Language, error: &LineError) -> String {
        self.text(language, "admin_lines", error.code).map_or_else(
            || error.message.clone(),
            |text| table_file::fill(&text, &error.values),
        )
    }

    /// The page `template` shows `view` in `language`, linking to the others of `offered`.
    fn render(
        &self,
        template: &str,
        language: Language,
        offered: &[Language],
        view: impl Serialize,
    ) -> Result<String, Error> {
        let languages: Vec<Value> = offered
            .iter()
            .map(|other| {
                context! {
                    code => other.as_str(),
                    name => other.own_name(),
                    dir => other.direction().as_str(),
                }
            })
            .collect();
        self.environment.get_template(template)?.render(context! {
            lang => language.as_str(),
            dir => language.direction().as_str(),
            languages,
            t => self.texts(language),
            ..Value::from_serialize(view)
        })
    }

    /// A `200 OK` with the page `template` showing `view`.
    pub fn page(
        &self,
        template: &str,
        language: Language,
        view: impl Serialize,
    ) -> Result<HttpResponse, ApiError> {
        self.page_in(template, language, &Language::ALL, view)
    }

    /// A `200 OK` with the staff console's page `template` showing `view` in `language`, which
    /// [`console_language`] chose.
    pub fn console_page(
        &self,
        template: &str,
        language: Language,
        view: impl Serialize,
    ) -> Result<HttpResponse, ApiError> {
        self.page_in(template, language, &CONSOLE_LANGUAGES, view)
    }

    fn page_in(
        &self,
        template: &str,
        language: Language,
        offered: &[Language],
        view: impl Serialize,
    ) -> Result<HttpResponse, ApiError> {
        let html = self
            .render(template, language, offered, view)
            .map_err(|error| ApiError::internal(format!("page {template}: {error:#}")))?;
        Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .body(html))
    }

    /// The page `template` showing `view` with `status`: a refused form comes back with the
    /// refusal's status. A page that cannot be rendered answers as the API's internal error.
    pub fn page_with_status(
        &self,
        template: &str,
        language: Language,
        status: actix_web::http::StatusCode,
        view: impl Serialize,
    ) -> HttpResponse {
        with_status(self.page(template, language, view), status)
    }

    /// The console's page `template` showing `view` with `status`, as [`Self::page_with_status`].
    pub fn console_page_with_status(
        &self,
        template: &str,
        language: Language,
        status: actix_web::http::StatusCode,
        view: impl Serialize,
    ) -> HttpResponse {
        with_status(self.console_page(template, language, view), status)
    }

    /// The static file served as `file` (`name.hash.ext`).
    pub fn asset(&self, file: &str) -> Option<&Asset> {
        self.assets.get(file)
    }

    /// A static file's response, with the headers that let browsers keep it.
    pub fn asset_response(asset: &Asset) -> HttpResponse {
        HttpResponse::Ok()
            .content_type(asset.content_type)
            .insert_header((header::CACHE_CONTROL, IMMUTABLE))
            .body(asset.body)
    }
}

/// The language a staff console is shown in for `asked`: German, else English.
pub fn console_language(asked: Language) -> Language {
    if CONSOLE_LANGUAGES.contains(&asked) {
        asked
    } else {
        Language::En
    }
}

fn with_status(page: Result<HttpResponse, ApiError>, status: actix_web::http::StatusCode) -> HttpResponse {
    match page {
        Ok(mut response) => {
            *response.status_mut() = status;
            response
        }
        Err(error) => actix_web::ResponseError::error_response(&error),
    }
}

/// What a page may load and who may frame it: its own scripts, styles and images, nothing
/// inline, no other site, no frames (so no clickjacking of the offer and sign-in forms).
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `site.css` → `site.0123456789ab.css`, from the SHA-256 of the content.
fn hashed_name(name: &str, body: &str) -> String {
    let (stem, extension) = name.rsplit_once('.').expect("static files have an extension");
    let digest = Sha256::digest(body.as_bytes());
    let mut hash = String::with_capacity(12);
    for byte in &digest[..6] {
        write!(hash, "{byte:02x}").expect("writing to a string");
    }
    format!("{stem}.{hash}.{extension}")
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => panic!("no content type known for static file {name}"),
    }
}

/// `{{ t.index.rules | fill(version=3) }}`: puts each value in the text's `{name}`. The result
/// is plain text, escaped where it is printed like any other value.
fn fill(text: String, values: Kwargs) -> Result<String, Error> {
    let mut filled = text;
    for name in values.args() {
        let value: Value = values.get(name)?;
        filled = filled.replace(&format!("{{{name}}}"), &value.to_string());
    }
    values.assert_all_used()?;
    Ok(filled)
}

/// `{{ group.name | label }}`: a policy's name in the page's language, as [`Label::get`] reads it.
fn label(state: &State<'_, '_>, name: Value) -> Result<String, Error> {
    let language = state
        .lookup("lang")
        .and_then(|lang| lang.as_str().and_then(Language::parse))
        .unwrap_or_default();
    let label = Label::deserialize(name)
        .map_err(|error| Error::new(ErrorKind::InvalidOperation, format!("not a name: {error}")))?;
    Ok(label.get(language).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `{name}`s a text fills in, sorted.
    fn names(text: &str) -> Vec<String> {
        let mut names: Vec<String> = text
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
            .collect();
        names.sort();
        names
    }

    /// Every text's key, with the `{name}`s it fills in.
    fn keys(table: &toml::Table, prefix: &str, into: &mut Vec<(String, Vec<String>)>) {
        for (key, value) in table {
            let path = format!("{prefix}{key}");
            match value {
                toml::Value::Table(inner) => keys(inner, &format!("{path}."), into),
                toml::Value::String(text) => into.push((path, names(text))),
                other => panic!("{path}: a text is a string, not {other}"),
            }
        }
    }

    #[test]
    fn every_language_has_every_text_with_the_same_values_filled_in() {
        let texts = TEXTS.map(|(language, source)| {
            let mut found = Vec::new();
            keys(&toml::from_str(source).unwrap(), "", &mut found);
            found.sort();
            (language, found)
        });
        let (_, german) = &texts[0];
        assert!(german.len() > 100, "{german:?}");
        for (language, found) in &texts[1..] {
            assert_eq!(found, german, "{language:?} against German");
        }
        assert_eq!(
            texts.map(|(language, _)| language),
            Language::ALL,
            "a text file per language"
        );
    }

    #[test]
    fn each_console_language_has_every_console_text_with_the_same_values_filled_in() {
        let texts = CONSOLE_TEXTS.map(|(language, source)| {
            let mut found = Vec::new();
            keys(&toml::from_str(source).unwrap(), "", &mut found);
            found.sort();
            (language, found)
        });
        assert!(texts[0].1.len() > 20, "{:?}", texts[0].1);
        assert_eq!(texts[1].1, texts[0].1, "English against German");
        assert_eq!(texts.map(|(language, _)| language), CONSOLE_LANGUAGES);
        // Loading merges them into the pages' texts, refusing a section both have.
        let templates = Templates::load();
        assert!(templates.text(Language::En, "staff", "sign_in").is_some());
        assert!(templates.text(Language::Tr, "staff", "sign_in").is_none());
    }

    #[test]
    fn the_consoles_word_every_problem_of_a_set_up_file_with_its_values() {
        let templates = Templates::load();
        for (code, english) in table_file::PROBLEMS {
            for language in CONSOLE_LANGUAGES {
                let text = templates
                    .text(language, "admin_lines", code)
                    .unwrap_or_else(|| panic!("admin_lines.{code} in {language:?}"));
                assert_eq!(names(&text), names(english), "{code} in {language:?}");
            }
        }
    }

    #[test]
    fn values_are_escaped_once() {
        let templates = Templates::load();
        let html = templates
            .render(
                "offer_answered.html",
                Language::En,
                &Language::ALL,
                context! { refusal => "<b>&</b>" },
            )
            .unwrap();
        assert!(html.contains("&lt;b&gt;&amp;&lt;&#x2f;b&gt;"), "{html}");
        assert!(!html.contains("<b>") && !html.contains("&amp;lt;"), "{html}");
    }

    #[test]
    fn fill_escapes_what_it_fills_in() {
        let templates = Templates::load();
        let booked = context! { reference => "<A&B>", first => "Mo" };
        let html = templates
            .render(
                "offer_answered.html",
                Language::De,
                &Language::ALL,
                context! { refusal => Value::from(()), booked },
            )
            .unwrap();
        assert!(html.contains("Buchung &lt;A&amp;B&gt; (Mo)."), "{html}");
    }

    #[test]
    fn static_files_are_named_by_their_content() {
        assert_eq!(hashed_name("site.css", ""), "site.e3b0c44298fc.css");
        let templates = Templates::load();
        let html = templates
            .render(
                "offer_answered.html",
                Language::En,
                &Language::ALL,
                context! { refusal => "x" },
            )
            .unwrap();
        let css = hashed_name("site.css", STATIC[0].1);
        assert!(html.contains(&format!("href=\"/static/{css}\"")), "{html}");
        assert_eq!(
            templates.asset(&css).unwrap().content_type,
            "text/css; charset=utf-8"
        );
        assert!(templates.asset("site.css").is_none());
    }
}
