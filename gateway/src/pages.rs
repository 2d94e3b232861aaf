//! Server-rendered pages: plain, accessible HTML that works without JavaScript. German by
//! default, English with `?lang=en`. The policy page publishes the rules in full, so nothing
//! that decides who gets an appointment is hidden in code.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use drawbridge_domain::{evaluate, Evaluation, Language, Person, Policy};
use drawbridge_platform::policies::{self, PublishedPolicy};
use serde::Deserialize;

use crate::error::ApiError;
use crate::use_cases::register::this_year;
use crate::AppState;

#[derive(Deserialize)]
pub struct LanguageQuery {
    #[serde(default)]
    lang: Option<String>,
}

impl LanguageQuery {
    pub(crate) fn language(&self) -> Language {
        self.lang.as_deref().and_then(Language::parse).unwrap_or_default()
    }
}

/// Picks the German or English text.
pub(crate) fn t(language: Language, de: &'static str, en: &'static str) -> &'static str {
    match language {
        Language::De => de,
        Language::En => en,
    }
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub(crate) fn page(language: Language, title: &str, body: &str) -> HttpResponse {
    page_keeping(language, title, body, "")
}

/// A page whose language switch keeps `query` (e.g. the token of an offer link), given as
/// `name=value&` pairs, already escaped for a URL.
pub(crate) fn page_keeping(language: Language, title: &str, body: &str, query: &str) -> HttpResponse {
    let other = match language {
        Language::De => format!("<a href=\"?{query}lang=en\" hreflang=\"en\">English</a>"),
        Language::En => format!("<a href=\"?{query}lang=de\" hreflang=\"de\">Deutsch</a>"),
    };
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        r#"<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Drawbridge</title>
<style>
body{{font:1.05rem/1.5 system-ui,sans-serif;max-width:52rem;margin:0 auto;padding:1rem;color:#1a1a1a}}
header{{display:flex;justify-content:space-between;align-items:baseline;border-bottom:2px solid #0b5394;margin-bottom:1rem}}
a{{color:#0b5394}} table{{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}}
th,td{{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ccc;vertical-align:top}}
.yes{{color:#0a6b2d;font-weight:600}} .no{{color:#a61b1b;font-weight:600}}
label{{display:block;margin:.6rem 0 .2rem;font-weight:600}} input,select{{font:inherit;padding:.3rem}}
button{{font:inherit;padding:.4rem 1rem;margin-top:1rem}} code{{word-break:break-all}}
</style></head>
<body><header><p><a href="/?lang={lang}"><strong>Drawbridge</strong></a></p><nav>{other}</nav></header>
<main><h1>{title}</h1>
{body}</main></body></html>"#,
        lang = language.as_str(),
    ))
}

pub async fn index(
    state: web::Data<AppState>,
    query: web::Query<LanguageQuery>,
) -> Result<HttpResponse, ApiError> {
    let language = query.language();
    let lang = language.as_str();
    let regions: String = policies::all_current(state.store.pool())
        .await?
        .iter()
        .map(|p| {
            format!(
                "<li><strong>{name}</strong>: <a href=\"/regions/{id}/policy?lang={lang}\">{rules}</a> · <a href=\"/regions/{id}/check?lang={lang}\">{check}</a></li>",
                name = escape(&p.policy.name),
                id = escape(&p.region),
                rules = t(language, "Regeln (Version ", "Rules (version ").to_owned() + &p.version.to_string() + ")",
                check = t(language, "Anspruch prüfen", "Check eligibility"),
            )
        })
        .collect();
    let intro = t(
        language,
        "Drawbridge vergibt knappe Impftermine fair: Sie registrieren sich einmal und erhalten ein Angebot, statt den ganzen Tag nach freien Terminen zu suchen. Wer ein Angebot bekommt, entscheidet eine Auslosung, die jede und jeder nachprüfen kann. Alle Regeln sind veröffentlicht, und jede Entscheidung wird begründet.",
        "Drawbridge hands out scarce vaccination appointments fairly: you register once and receive an offer instead of searching for free slots all day. Who gets an offer is decided by a lottery that anyone can check. All rules are published and every decision is explained.",
    );
    let body = format!(
        "<p>{intro}</p><h2>{heading}</h2><ul>{regions}</ul><p>{api} <a href=\"/openapi.json\">/openapi.json</a></p>",
        heading = t(language, "Regionen", "Regions"),
        api = t(language, "Programmierschnittstelle:", "API:"),
    );
    Ok(page(
        language,
        t(language, "Faire Terminvergabe", "Fair appointments"),
        &body,
    ))
}

pub async fn policy(
    state: web::Data<AppState>,
    region: web::Path<String>,
    query: web::Query<LanguageQuery>,
) -> Result<HttpResponse, ApiError> {
    let language = query.language();
    let published = state.policies.current(&region).await?;
    Ok(page(
        language,
        &published.policy.name,
        &policy_body(language, &published),
    ))
}

fn policy_body(language: Language, published: &PublishedPolicy) -> String {
    let policy: &Policy = &published.policy;
    let groups: String = policy
        .groups
        .iter()
        .map(|g| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                g.id,
                escape(&g.name),
                g.released_on,
                g.tier,
                g.weight
            )
        })
        .collect();
    let vaccines: String = policy
        .vaccines
        .iter()
        .map(|v| {
            let interval = v
                .interval_days
                .as_ref()
                .map(|w| format!("{}–{} {}", w.min, w.max, t(language, "Tage", "days")))
                .unwrap_or_else(|| "–".to_owned());
            let ages = match v.max_age {
                Some(max) => format!("{}–{}", v.min_age, max),
                None => format!("{}+", v.min_age),
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{interval}</td><td>{ages}</td></tr>",
                escape(&v.name),
                v.doses
            )
        })
        .collect();
    let draw = &policy.draw;
    format!(
        r#"<p>{version_label} {version}, {published_label} {published_at}. SHA-256: <code>{digest}</code> · <a href="/v1/regions/{region}/policy">JSON</a></p>
<h2>{groups_h}</h2><table><thead><tr><th>{group}</th><th>{name}</th><th>{released}</th><th>{tier}</th><th>{weight}</th></tr></thead><tbody>{groups}</tbody></table>
<h2>{vaccines_h}</h2><table><thead><tr><th>{vaccine}</th><th>{doses}</th><th>{interval}</th><th>{age}</th></tr></thead><tbody>{vaccines}</tbody></table>
<h2>{draw_h}</h2><p>{draw_text}</p>
<p><a href="/regions/{region}/check?lang={lang}">{check}</a></p>"#,
        version_label = t(language, "Version", "Version"),
        version = published.version,
        published_label = t(language, "veröffentlicht am", "published"),
        published_at = published.published_at.format("%Y-%m-%d %H:%M UTC"),
        digest = published.digest,
        region = escape(&published.region),
        lang = language.as_str(),
        groups_h = t(language, "Priorisierungsgruppen", "Priority groups"),
        group = t(language, "Gruppe", "Group"),
        name = t(language, "Bezeichnung", "Name"),
        released = t(language, "freigegeben ab", "released on"),
        tier = t(language, "Rang (kleiner zuerst)", "Tier (lower first)"),
        weight = t(language, "Gewicht", "Weight"),
        vaccines_h = t(language, "Impfstoffe", "Vaccines"),
        vaccine = t(language, "Impfstoff", "Vaccine"),
        doses = t(language, "Dosen", "Doses"),
        interval = t(language, "Abstand 1.–2. Dosis", "Interval 1st–2nd dose"),
        age = t(language, "Alter", "Age"),
        draw_h = t(language, "Auslosung", "The draw"),
        draw_text = match language {
            Language::De => format!("Freie Terminpaare werden regelmäßig unter allen Wartenden verlost, die Anspruch haben; kleinere Ränge zuerst. Jede Woche Wartezeit erhöht das Losgewicht um {}. Ein Angebot gilt {} Minuten, bei Terminen in den nächsten {} Stunden {} Minuten.", draw.waiting_time_weight_per_week, draw.offer_window_minutes, draw.short_notice_hours, draw.short_notice_window_minutes),
            Language::En => format!("Free appointment pairs are drawn regularly among everyone waiting who is eligible; lower tiers first. Each week of waiting adds {} to a person's lottery weight. An offer is valid for {} minutes, or {} minutes for appointments within the next {} hours.", draw.waiting_time_weight_per_week, draw.offer_window_minutes, draw.short_notice_window_minutes, draw.short_notice_hours),
        },
        check = t(language, "Anspruch prüfen", "Check your eligibility"),
    )
}

/// The check form's fields; read by hand because a form repeats `vaccine` once per checkbox.
struct CheckQuery {
    lang: Option<String>,
    birth_year: Option<i32>,
    priority_group: Option<u8>,
    postcode: Option<String>,
    vaccine: Vec<String>,
}

/// The eligibility check as a form: the same evaluation as the API, rendered with every reason.
pub async fn check(
    state: web::Data<AppState>,
    region: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let query = parse_check_query(query.into_inner());
    let language = query
        .lang
        .as_deref()
        .and_then(Language::parse)
        .unwrap_or_default();
    let published = state.policies.current(&region).await?;
    let policy = &published.policy;
    let checkboxes: String = policy
        .vaccines
        .iter()
        .map(|v| {
            let checked = if query.vaccine.is_empty() || query.vaccine.contains(&v.code) { " checked" } else { "" };
            format!("<label style=\"font-weight:normal\"><input type=\"checkbox\" name=\"vaccine\" value=\"{}\"{checked}> {}</label>", escape(&v.code), escape(&v.name))
        })
        .collect();
    let groups: String = policy
        .groups
        .iter()
        .map(|g| {
            let selected = if query.priority_group == Some(g.id) {
                " selected"
            } else {
                ""
            };
            format!(
                "<option value=\"{}\"{selected}>{} – {}</option>",
                g.id,
                g.id,
                escape(&g.name)
            )
        })
        .collect();
    let result = match (query.birth_year, query.priority_group, &query.postcode) {
        (Some(birth_year), Some(priority_group), Some(postcode)) => {
            match (
                drawbridge_domain::BirthYear::parse(birth_year, this_year()),
                drawbridge_domain::Postcode::parse(postcode),
            ) {
                (Ok(birth_year), Ok(postcode)) => {
                    let person = Person {
                        birth_year: birth_year.get(),
                        priority_group,
                        postcode: postcode.into_string(),
                        accepted_vaccines: query.vaccine.clone(),
                    };
                    render_evaluation(
                        language,
                        policy,
                        &evaluate(policy, &person, Utc::now().date_naive()),
                    )
                }
                (Err(e), _) | (_, Err(e)) => {
                    format!("<p class=\"no\" role=\"alert\">{}</p>", escape(&e.to_string()))
                }
            }
        }
        _ => String::new(),
    };
    let body = format!(
        r#"<form method="get"><input type="hidden" name="lang" value="{lang}">
<label for="birth_year">{birth}</label><input id="birth_year" name="birth_year" inputmode="numeric" required value="{birth_value}">
<label for="priority_group">{group}</label><select id="priority_group" name="priority_group">{groups}</select>
<label for="postcode">{postcode}</label><input id="postcode" name="postcode" inputmode="numeric" required value="{postcode_value}">
<fieldset><legend>{accept}</legend>{checkboxes}</fieldset>
<button type="submit">{submit}</button></form>{result}"#,
        lang = language.as_str(),
        birth = t(language, "Geburtsjahr", "Year of birth"),
        birth_value = query.birth_year.map(|y| y.to_string()).unwrap_or_default(),
        group = t(language, "Priorisierungsgruppe", "Priority group"),
        postcode = t(language, "Postleitzahl", "Postcode"),
        postcode_value = escape(query.postcode.as_deref().unwrap_or("")),
        accept = t(
            language,
            "Welche Impfstoffe kommen für Sie in Frage?",
            "Which vaccines do you accept?"
        ),
        submit = t(language, "Prüfen", "Check"),
    );
    Ok(page(
        language,
        t(language, "Anspruch prüfen", "Check your eligibility"),
        &body,
    ))
}

fn parse_check_query(pairs: Vec<(String, String)>) -> CheckQuery {
    let mut query = CheckQuery {
        lang: None,
        birth_year: None,
        priority_group: None,
        postcode: None,
        vaccine: Vec::new(),
    };
    for (key, value) in pairs {
        match key.as_str() {
            "lang" => query.lang = Some(value),
            "birth_year" => query.birth_year = value.trim().parse().ok(),
            "priority_group" => query.priority_group = value.trim().parse().ok(),
            "postcode" => query.postcode = Some(value),
            "vaccine" => query.vaccine.push(value),
            _ => {}
        }
    }
    query
}

fn render_evaluation(language: Language, policy: &Policy, evaluation: &Evaluation) -> String {
    let rows: String = evaluation
        .vaccines
        .iter()
        .map(|decision| {
            let name = policy
                .vaccine(&decision.vaccine)
                .map(|v| v.name.as_str())
                .unwrap_or(&decision.vaccine);
            let verdict = if decision.eligible {
                format!("<span class=\"yes\">{}</span>", t(language, "ja", "yes"))
            } else {
                format!("<span class=\"no\">{}</span>", t(language, "nein", "no"))
            };
            let reasons: String = decision
                .reasons
                .iter()
                .map(|r| {
                    let text = match language {
                        Language::De => &r.de,
                        Language::En => &r.en,
                    };
                    format!("<li>{} {}</li>", if r.passed { "✓" } else { "✗" }, escape(text))
                })
                .collect();
            format!(
                "<tr><td>{}</td><td>{verdict}</td><td><ul>{reasons}</ul></td></tr>",
                escape(name)
            )
        })
        .collect();
    format!(
        "<h2>{heading}</h2><table><thead><tr><th>{vaccine}</th><th>{eligible}</th><th>{why}</th></tr></thead><tbody>{rows}</tbody></table>",
        heading = t(language, "Ergebnis", "Result"),
        vaccine = t(language, "Impfstoff", "Vaccine"),
        eligible = t(language, "Anspruch", "Eligible"),
        why = t(language, "Begründung, Regel für Regel", "Why, rule by rule"),
    )
}
