//! A region's vaccination policy: published, versioned data instead of rules hidden in code.
//!
//! Each region (a federal state) writes its rules as a TOML document: who is in which priority
//! group and since when, which vaccines exist with which dose intervals and age limits, and how
//! the allocation draw is tuned. [`Policy::from_toml`] parses and validates the document and
//! names the exact field of anything wrong, so the people who write policies can fix them
//! without reading Rust. The same [`Policy`] serializes to JSON for the public policy endpoint.
//! Every name a citizen reads is a [`Label`], written in each language Drawbridge speaks.

use std::collections::HashSet;
use std::fmt::Display;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::language::Language;
use crate::phone::is_country_calling_code;

/// The complete rule set of one region at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Stable identifier of the region, e.g. `bw`; lowercase `a-z`, `0-9` and `-`.
    pub region: String,
    /// Version of this policy; every draw records it so it can be replayed under the same rules.
    pub version: u32,
    /// The region's name as citizens know it, used in explanations ("Your postcode 70173 is in
    /// Baden-Württemberg").
    pub name: Label,
    /// Leading digits of the German postcodes the region serves; empty means the whole country.
    #[serde(default)]
    pub postcode_prefixes: Vec<String>,
    /// Country calling codes (without `+`) whose mobile numbers may register on the web, e.g.
    /// `["49"]`; empty means the country of the service (`gateway.default_country_code`).
    /// Registering costs an SMS, so other numbers are refused before one is sent.
    #[serde(default)]
    pub phone_country_codes: Vec<String>,
    /// Priority groups, each released on its own date.
    pub groups: Vec<PriorityGroup>,
    /// Vaccines the region offers, in the order explanations list them.
    pub vaccines: Vec<Vaccine>,
    /// Tuning of the allocation draw and of offers.
    pub draw: DrawSettings,
}

/// A priority group as defined by the vaccination ordinance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityGroup {
    /// The group's number (1 = highest priority), as registrants state it.
    pub id: u8,
    /// Who belongs to the group, in the words of the ordinance.
    pub name: Label,
    /// First day on which members of the group may be offered appointments.
    #[serde(with = "date")]
    pub released_on: NaiveDate,
    /// Strict ordering in the draw: every registrant of a lower tier is drawn before anyone of a
    /// higher tier.
    pub tier: u32,
    /// Relative lottery weight within a tier (Efraimidis–Spirakis); 1.0 is neutral.
    pub weight: f64,
}

/// A vaccine the region offers and the rules for giving it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vaccine {
    /// Stable identifier, e.g. `biontech`; registrants list the codes they accept.
    pub code: String,
    /// Name shown to citizens, e.g. "Comirnaty (BioNTech/Pfizer)".
    pub name: Label,
    /// Number of doses in the primary series: 1 or 2.
    pub doses: u8,
    /// Allowed days between first and second dose; present exactly for two-dose vaccines.
    #[serde(default)]
    pub interval_days: Option<IntervalWindow>,
    /// Minimum age, reached within the calendar year (the 2021 rules went by birth year).
    pub min_age: u8,
    /// Maximum age, if the vaccine is approved or recommended only up to an age.
    #[serde(default)]
    pub max_age: Option<u8>,
}

/// A name as citizens read it. German and English are required, so no German or English page
/// shows a name in the other language; Turkish and Arabic are optional and read as the English
/// name where a region has not written them (vaccines' and regions' proper names mostly are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// Deutsch.
    pub de: String,
    /// English.
    pub en: String,
    /// Türkçe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tr: Option<String>,
    /// العربية.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ar: Option<String>,
}

impl Label {
    /// The same text in every language: for proper names, and for documents published before
    /// names carried languages.
    pub fn same(text: &str) -> Label {
        Label {
            de: text.to_owned(),
            en: text.to_owned(),
            tr: Some(text.to_owned()),
            ar: Some(text.to_owned()),
        }
    }

    /// The text in `language`, or the English one where the policy has none in it.
    pub fn get(&self, language: Language) -> &str {
        match language {
            Language::De => &self.de,
            Language::En => &self.en,
            Language::Tr => self.tr.as_deref().unwrap_or(&self.en),
            Language::Ar => self.ar.as_deref().unwrap_or(&self.en),
        }
    }

    /// The texts the policy wrote, by language.
    fn texts(&self) -> impl Iterator<Item = (Language, &str)> {
        [
            (Language::De, Some(self.de.as_str())),
            (Language::En, Some(self.en.as_str())),
            (Language::Tr, self.tr.as_deref()),
            (Language::Ar, self.ar.as_deref()),
        ]
        .into_iter()
        .filter_map(|(language, text)| Some((language, text?)))
    }
}

/// Inclusive range of days between the first and the second dose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalWindow {
    /// Earliest day after the first dose on which the second may be given.
    pub min: u16,
    /// Latest day after the first dose on which the second may be given.
    pub max: u16,
}

impl IntervalWindow {
    /// Whether a second dose `days` after the first lies inside the window.
    pub fn contains(&self, days: i64) -> bool {
        (i64::from(self.min)..=i64::from(self.max)).contains(&days)
    }
}

/// Parameters of the allocation draw and of the offers it makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawSettings {
    /// How long a registrant has to accept a regular offer before it goes to someone else.
    pub offer_window_minutes: u32,
    /// How long a registrant has to accept a short-notice offer; shorter, so that a slot that
    /// is about to happen is not wasted waiting for an answer.
    pub short_notice_window_minutes: u32,
    /// An offer is short-notice when its first appointment starts within this many hours.
    pub short_notice_hours: u32,
    /// A pending offer is reminded once when this many minutes are left to answer it, if its
    /// window was longer than that (for a shorter one the offer itself is the reminder).
    /// 0, the default, sends no reminders.
    #[serde(default)]
    pub remind_before_minutes: u32,
    /// How much every full week of waiting adds to a registrant's lottery weight, so that
    /// people who have waited long are not left behind by bad luck forever.
    pub waiting_time_weight_per_week: f64,
    /// What each declined offer multiplies a registrant's lottery weight by: 1.0 (the default)
    /// makes declining free, 0.5 halves the weight per decline, so that people who decline
    /// again and again do not crowd out those who turn up.
    #[serde(default = "no_decline_penalty")]
    pub weight_after_decline: f64,
    /// Shares of each draw's pairs that go first to some priority groups, whatever their tier,
    /// so that a group is never starved by the tiers above it.
    #[serde(default)]
    pub reserves: Vec<Reserve>,
}

fn no_decline_penalty() -> f64 {
    1.0
}

/// A share of every draw's pairs offered first to the members of some groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reserve {
    /// The priority groups the reserve is for.
    pub groups: Vec<u8>,
    /// Fraction of the draw's free pairs, greater than 0 and at most 1; what the groups do not
    /// take goes to everyone in the same draw.
    pub share: f64,
}

/// Why a policy document was rejected: the field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    /// Path of the offending field, e.g. `vaccines[2].interval_days.max`, or the position in
    /// the document for a TOML syntax error.
    pub field: String,
    /// What is wrong and, where possible, what is expected instead.
    pub message: String,
}

impl PolicyError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Wraps a TOML syntax or shape error; the toml crate's message names the key at fault,
    /// and the field is the position in the document.
    fn from_toml(text: &str, error: &toml::de::Error) -> PolicyError {
        let field = match error.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {column}")
            }
            None => "document".to_owned(),
        };
        PolicyError::new(
            field,
            format!("could not read the policy TOML: {}", error.message()),
        )
    }
}

impl Policy {
    /// Parses a policy document and checks every rule a policy must satisfy.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::from_toml(text, &e))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Parses a document that was published (stored, or in a draw's manifest) and so must be
    /// read as it was written: documents published before names carried languages give each
    /// name as one string, which then stands for every language. New documents go through
    /// [`Policy::from_toml`], which requires every language.
    pub fn from_published(text: &str) -> Result<Policy, PolicyError> {
        let mut document: toml::Table = toml::from_str(text).map_err(|e| PolicyError::from_toml(text, &e))?;
        one_language_name(&mut document);
        for list in ["groups", "vaccines"] {
            if let Some(toml::Value::Array(entries)) = document.get_mut(list) {
                for entry in entries.iter_mut().filter_map(toml::Value::as_table_mut) {
                    one_language_name(entry);
                }
            }
        }
        let policy: Policy = toml::Value::Table(document)
            .try_into()
            .map_err(|e: toml::de::Error| {
                PolicyError::new(
                    "document",
                    format!("could not read the policy TOML: {}", e.message()),
                )
            })?;
        policy.validate()?;
        Ok(policy)
    }

    /// The vaccine with the given code, if the policy offers it.
    pub fn vaccine(&self, code: &str) -> Option<&Vaccine> {
        self.vaccines.iter().find(|v| v.code == code)
    }

    /// The name of the vaccine with the given code; the code itself for a vaccine the policy
    /// no longer lists (an appointment made under an older version).
    pub fn vaccine_name(&self, code: &str) -> Label {
        self.vaccine(code)
            .map_or_else(|| Label::same(code), |v| v.name.clone())
    }

    /// The priority group with the given number, if the policy defines it.
    pub fn group(&self, id: u8) -> Option<&PriorityGroup> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// Whether a German postcode (exactly five digits) lies in this region. Anything that is
    /// not a postcode is never covered, even by a policy for the whole country.
    pub fn covers_postcode(&self, postcode: &str) -> bool {
        is_german_postcode(postcode)
            && (self.postcode_prefixes.is_empty()
                || self
                    .postcode_prefixes
                    .iter()
                    .any(|prefix| postcode.starts_with(prefix.as_str())))
    }

    /// The country calling codes whose mobile numbers may register on the web, given the
    /// service's own.
    pub fn phone_countries<'a>(&'a self, default_country_code: &'a str) -> Vec<&'a str> {
        if self.phone_country_codes.is_empty() {
            vec![default_country_code]
        } else {
            self.phone_country_codes.iter().map(String::as_str).collect()
        }
    }

    /// Checks everything serde cannot: ranges, uniqueness and consistency between fields.
    /// Returns the first problem found, in document order.
    fn validate(&self) -> Result<(), PolicyError> {
        at_least("version", self.version, 1, None)?;
        identifier("region", &self.region)?;
        label("name", &self.name)?;
        for (i, code) in self.phone_country_codes.iter().enumerate() {
            if !is_country_calling_code(code) {
                return Err(PolicyError::new(
                    format!("phone_country_codes[{i}]"),
                    format!("must be a country calling code of 1 to 3 digits without +, e.g. \"49\", got {code:?}"),
                ));
            }
        }
        for (i, prefix) in self.postcode_prefixes.iter().enumerate() {
            if prefix.is_empty() || prefix.len() > 5 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PolicyError::new(
                    format!("postcode_prefixes[{i}]"),
                    format!("must be 1 to 5 digits (the start of a German postcode), got {prefix:?}"),
                ));
            }
        }
        self.validate_groups()?;
        self.validate_vaccines()?;
        self.draw.validate()?;
        self.validate_reserves()
    }

    fn validate_reserves(&self) -> Result<(), PolicyError> {
        let mut total = 0.0;
        for (i, reserve) in self.draw.reserves.iter().enumerate() {
            let field = |name: &str| format!("draw.reserves[{i}].{name}");
            if !(reserve.share.is_finite() && reserve.share > 0.0 && reserve.share <= 1.0) {
                return Err(PolicyError::new(
                    field("share"),
                    format!("must be greater than 0 and at most 1, got {}", reserve.share),
                ));
            }
            total += reserve.share;
            if reserve.groups.is_empty() {
                return Err(PolicyError::new(
                    field("groups"),
                    "name at least one priority group",
                ));
            }
            if let Some(unknown) = reserve.groups.iter().find(|id| self.group(**id).is_none()) {
                return Err(PolicyError::new(
                    field("groups"),
                    format!("priority group {unknown} is not defined in [[groups]]"),
                ));
            }
        }
        if total > 1.0 + 1e-9 {
            return Err(PolicyError::new(
                "draw.reserves",
                format!("the shares add up to {total}, more than all pairs (1.0)"),
            ));
        }
        Ok(())
    }

    fn validate_groups(&self) -> Result<(), PolicyError> {
        if self.groups.is_empty() {
            return Err(PolicyError::new(
                "groups",
                "at least one priority group is required; add a [[groups]] table",
            ));
        }
        let mut seen = HashSet::new();
        for (i, group) in self.groups.iter().enumerate() {
            let field = |name: &str| format!("groups[{i}].{name}");
            at_least(field("id"), group.id, 1, None)?;
            if !seen.insert(group.id) {
                return Err(PolicyError::new(
                    field("id"),
                    format!("duplicate priority group {}", group.id),
                ));
            }
            label(field("name"), &group.name)?;
            if !(group.weight.is_finite() && group.weight > 0.0) {
                return Err(PolicyError::new(
                    field("weight"),
                    format!("must be a finite number greater than 0, got {}", group.weight),
                ));
            }
        }
        Ok(())
    }

    fn validate_vaccines(&self) -> Result<(), PolicyError> {
        if self.vaccines.is_empty() {
            return Err(PolicyError::new(
                "vaccines",
                "at least one vaccine is required; add a [[vaccines]] table",
            ));
        }
        let mut seen = HashSet::new();
        for (i, vaccine) in self.vaccines.iter().enumerate() {
            let field = |name: &str| format!("vaccines[{i}].{name}");
            identifier(field("code"), &vaccine.code)?;
            if !seen.insert(vaccine.code.as_str()) {
                return Err(PolicyError::new(
                    field("code"),
                    format!("duplicate vaccine code {:?}", vaccine.code),
                ));
            }
            label(field("name"), &vaccine.name)?;
            match (vaccine.doses, vaccine.interval_days) {
                (1, None) => {}
                (1, Some(_)) => {
                    return Err(PolicyError::new(
                        field("interval_days"),
                        "a single-dose vaccine has no second dose; remove interval_days",
                    ))
                }
                (2, None) => {
                    return Err(PolicyError::new(
                        field("interval_days"),
                        "a two-dose vaccine needs the days between doses, \
                         e.g. interval_days = { min = 21, max = 42 }",
                    ))
                }
                (2, Some(window)) => {
                    at_least(field("interval_days.min"), window.min, 1, None)?;
                    at_least(field("interval_days.max"), window.max, window.min, Some("min"))?;
                }
                (doses, _) => {
                    return Err(PolicyError::new(
                        field("doses"),
                        format!("must be 1 or 2, got {doses}"),
                    ))
                }
            }
            if let Some(max_age) = vaccine.max_age {
                at_least(field("max_age"), max_age, vaccine.min_age, Some("min_age"))?;
            }
        }
        Ok(())
    }
}

impl DrawSettings {
    fn validate(&self) -> Result<(), PolicyError> {
        at_least(
            "draw.offer_window_minutes",
            self.offer_window_minutes,
            MIN_OFFER_WINDOW_MINUTES,
            None,
        )?;
        at_least(
            "draw.short_notice_window_minutes",
            self.short_notice_window_minutes,
            MIN_OFFER_WINDOW_MINUTES,
            None,
        )?;
        if self.short_notice_window_minutes > self.offer_window_minutes {
            return Err(PolicyError::new(
                "draw.short_notice_window_minutes",
                format!(
                    "must be at most offer_window_minutes ({}), got {}",
                    self.offer_window_minutes, self.short_notice_window_minutes
                ),
            ));
        }
        if self.remind_before_minutes >= self.offer_window_minutes {
            return Err(PolicyError::new(
                "draw.remind_before_minutes",
                format!(
                    "must be less than offer_window_minutes ({}), or 0 to send no reminders, got {}",
                    self.offer_window_minutes, self.remind_before_minutes
                ),
            ));
        }
        let weight = self.waiting_time_weight_per_week;
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(PolicyError::new(
                "draw.waiting_time_weight_per_week",
                format!("must be a finite number of at least 0, got {weight}"),
            ));
        }
        let factor = self.weight_after_decline;
        if !(factor.is_finite() && factor > 0.0 && factor <= 1.0) {
            return Err(PolicyError::new(
                "draw.weight_after_decline",
                format!("must be greater than 0 and at most 1 (1 means no penalty), got {factor}"),
            ));
        }
        Ok(())
    }
}

/// Shortest time anyone can be expected to answer an offer in.
const MIN_OFFER_WINDOW_MINUTES: u32 = 5;

/// Whether `text` has the shape of a German postcode: exactly five ASCII digits.
pub fn is_german_postcode(text: &str) -> bool {
    text.len() == 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// `value >= min`, or an error such as `must be at least min (21), got 14` when the bound is
/// another field (`bound_name`), or `must be at least 1, got 0` when it is a constant.
fn at_least<T: PartialOrd + Display>(
    field: impl Into<String>,
    value: T,
    min: T,
    bound_name: Option<&str>,
) -> Result<(), PolicyError> {
    if value >= min {
        return Ok(());
    }
    let bound = match bound_name {
        Some(name) => format!("{name} ({min})"),
        None => min.to_string(),
    };
    Err(PolicyError::new(
        field,
        format!("must be at least {bound}, got {value}"),
    ))
}

/// Identifiers appear in URLs and in registrations, so they are restricted to `[a-z0-9-]`.
fn identifier(field: impl Into<String>, value: &str) -> Result<(), PolicyError> {
    let valid = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(PolicyError::new(
            field,
            format!("must be lowercase letters a-z, digits and '-', got {value:?}"),
        ))
    }
}

/// Names are shown to citizens in every explanation, so they must say something.
fn not_blank(field: impl Into<String>, value: &str) -> Result<(), PolicyError> {
    if value.trim().is_empty() {
        Err(PolicyError::new(field, "must not be empty"))
    } else {
        Ok(())
    }
}

/// Every language's text of a label is filled in.
fn label(field: impl Into<String>, label: &Label) -> Result<(), PolicyError> {
    let field = field.into();
    for (language, text) in label.texts() {
        not_blank(format!("{field}.{}", language.as_str()), text)?;
    }
    Ok(())
}

/// Turns `name = "text"` of an older document into the same text in every language.
fn one_language_name(table: &mut toml::Table) {
    if let Some(toml::Value::String(text)) = table.get("name") {
        let label = Label::same(text);
        let mut languages = toml::Table::new();
        for (language, text) in label.texts() {
            languages.insert(language.as_str().into(), toml::Value::String(text.into()));
        }
        table.insert("name".into(), toml::Value::Table(languages));
    }
}

/// Dates as TOML writes them (`released_on = 2021-02-24`, a native TOML date) and as JSON does
/// (`"2021-02-24"`). chrono alone only understands the string form.
mod date {
    use std::fmt;

    use chrono::NaiveDate;
    use serde::de::{self, value::MapAccessDeserializer, Deserialize, Deserializer, Visitor};
    use serde::Serializer;

    const FORMAT: &str = "%Y-%m-%d";

    pub(super) fn serialize<S: Serializer>(date: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&date.format(FORMAT))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        d.deserialize_any(DateVisitor)
    }

    struct DateVisitor;

    impl<'de> Visitor<'de> for DateVisitor {
        type Value = NaiveDate;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a date like 2021-02-24")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<NaiveDate, E> {
            NaiveDate::parse_from_str(text, FORMAT)
                .map_err(|_| E::custom(format!("expected a date like 2021-02-24, got {text:?}")))
        }

        /// The toml crate hands native dates and times over as a one-entry map that only its
        /// own `Datetime` type can read.
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<NaiveDate, A::Error> {
            let datetime = toml::value::Datetime::deserialize(MapAccessDeserializer::new(map))?;
            match (datetime.date, datetime.time, datetime.offset) {
                (Some(date), None, None) => {
                    NaiveDate::from_ymd_opt(date.year.into(), date.month.into(), date.day.into())
                        .ok_or_else(|| de::Error::custom(format!("{datetime} is not a valid date")))
                }
                _ => Err(de::Error::custom(format!(
                    "expected a date like 2021-02-24 without a time, got {datetime}"
                ))),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const BW: &str = include_str!("../../../deploy/policies/bw.toml");

    /// A small valid policy that the error tests below break one field at a time.
    const MINIMAL: &str = r#"
region = "test"
version = 3
name = { de = "Testland", en = "Testland" }
postcode_prefixes = ["1"]

[[groups]]
id = 1
name = { de = "Everyone", en = "Everyone" }
released_on = 2021-01-01
tier = 1
weight = 1.0

[[vaccines]]
code = "one-shot"
name = { de = "One Shot", en = "One Shot" }
doses = 1
min_age = 18

[draw]
offer_window_minutes = 60
short_notice_window_minutes = 10
short_notice_hours = 12
waiting_time_weight_per_week = 0.0
"#;

    fn error_of(text: &str) -> String {
        match Policy::from_toml(text) {
            Ok(policy) => panic!("expected an error, got {policy:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// MINIMAL with `from` replaced by `to`, asserting the edit applied.
    fn minimal_with(from: &str, to: &str) -> String {
        assert!(MINIMAL.contains(from), "test edit {from:?} does not apply");
        MINIMAL.replacen(from, to, 1)
    }

    /// MINIMAL with extra vaccines appended after the first one.
    fn minimal_with_vaccines(extra: &str) -> String {
        minimal_with("[draw]", &format!("{extra}\n[draw]"))
    }

    /// The published Baden-Württemberg policy, shared with other modules' tests.
    pub(crate) fn bw() -> Policy {
        Policy::from_toml(BW).expect("bw.toml is valid")
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    #[test]
    fn published_bw_policy_is_valid_and_models_spring_2021() {
        let policy = bw();
        assert_eq!(policy.region, "bw");
        assert_eq!(policy.version, 3);
        let codes: Vec<_> = policy.vaccines.iter().map(|v| v.code.as_str()).collect();
        assert_eq!(codes, ["biontech", "moderna", "astrazeneca", "janssen"]);
        let astrazeneca = policy.vaccine("astrazeneca").expect("astrazeneca");
        assert_eq!(astrazeneca.min_age, 60);
        assert_eq!(
            astrazeneca.interval_days,
            Some(IntervalWindow { min: 63, max: 84 })
        );
        let janssen = policy.vaccine("janssen").expect("janssen");
        assert_eq!(
            (janssen.doses, janssen.interval_days, janssen.min_age),
            (1, None, 18)
        );
        let ids: Vec<_> = policy.groups.iter().map(|g| (g.id, g.tier)).collect();
        assert_eq!(ids, [(1, 1), (2, 2), (3, 3), (4, 4)]);
        assert_eq!(policy.group(4).map(|g| g.released_on), Some(day(2021, 6, 7)));
        assert_eq!(policy.draw.offer_window_minutes, 1440);
        assert_eq!(policy.draw.short_notice_window_minutes, 30);
    }

    #[test]
    fn bw_names_its_groups_in_each_language() {
        for group in bw().groups {
            let german = |c: char| "äöüß".contains(c);
            assert!(
                !group.name.en.contains(german),
                "{:?} is not English",
                group.name.en
            );
            assert_ne!(group.name.de, group.name.en);
            for language in [Language::Tr, Language::Ar] {
                assert_ne!(group.name.get(language), group.name.en, "{language:?}");
            }
        }
    }

    #[test]
    fn turkish_and_arabic_names_are_optional_and_read_as_english_where_missing() {
        let policy = Policy::from_toml(&minimal_with(
            r#"name = { de = "Everyone", en = "Everyone" }"#,
            r#"name = { de = "Alle", en = "Everyone", ar = "الجميع" }"#,
        ))
        .expect("valid");
        let name = &policy.group(1).unwrap().name;
        assert_eq!(name.get(Language::Tr), "Everyone");
        assert_eq!(name.get(Language::Ar), "الجميع");
        let error = error_of(&minimal_with(
            r#"name = { de = "Everyone", en = "Everyone" }"#,
            r#"name = { de = "Alle", en = "Everyone", tr = " " }"#,
        ));
        assert!(error.contains("groups[0].name.tr: must not be empty"), "{error}");
    }

    #[test]
    fn a_name_missing_a_language_is_refused_where_it_stands() {
        let error = error_of(&minimal_with(
            r#"name = { de = "Everyone", en = "Everyone" }"#,
            r#"name = { de = "Alle" }"#,
        ));
        assert!(error.starts_with("line 9, column 8:"), "{error}");
        assert!(error.contains("missing field `en`"), "{error}");
        let error = error_of(&minimal_with(
            r#"name = { de = "Testland", en = "Testland" }"#,
            r#"name = "Testland""#,
        ));
        assert!(error.contains("could not read the policy TOML"), "{error}");
    }

    #[test]
    fn a_document_published_with_one_language_names_reads_as_written() {
        let older = MINIMAL.replace(r#"{ de = "Everyone", en = "Everyone" }"#, r#""Everyone""#);
        let older = older.replace(r#"{ de = "Testland", en = "Testland" }"#, r#""Testland""#);
        assert!(Policy::from_toml(&older).is_err());
        let policy = Policy::from_published(&older).expect("an older document still reads");
        assert_eq!(policy.name, Label::same("Testland"));
        assert_eq!(policy.group(1).unwrap().name.get(Language::En), "Everyone");
        assert_eq!(policy.group(1).unwrap().released_on, day(2021, 1, 1));
        assert_eq!(Policy::from_published(MINIMAL), Policy::from_toml(MINIMAL));
        assert!(Policy::from_published(&older.replace("tier = 1", "tier = \"one\"")).is_err());
    }

    #[test]
    fn minimal_policy_is_valid() {
        let policy = Policy::from_toml(MINIMAL).expect("valid");
        assert_eq!(policy.group(1).map(|g| g.released_on), Some(day(2021, 1, 1)));
        assert_eq!(policy.vaccine("one-shot").map(|v| v.max_age), Some(None));
        assert!(policy.vaccine("two-shot").is_none());
        assert!(policy.group(2).is_none());
    }

    #[test]
    fn json_roundtrip_keeps_the_policy_and_writes_plain_dates() {
        let policy = bw();
        let json = serde_json::to_string(&policy).expect("serializes");
        assert!(json.contains(r#""released_on":"2021-06-07""#), "{json}");
        let back: Policy = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, policy);
    }

    #[test]
    fn quoted_dates_are_accepted_too() {
        let text = minimal_with("released_on = 2021-01-01", r#"released_on = "2021-01-01""#);
        assert!(Policy::from_toml(&text).is_ok());
    }

    #[test]
    fn date_with_time_is_rejected() {
        let text = minimal_with("2021-01-01", "2021-01-01T10:00:00");
        let error = error_of(&text);
        assert!(error.contains("without a time"), "{error}");
        assert!(
            error.starts_with("line 10, column 15: could not read the policy TOML"),
            "{error}"
        );
    }

    #[test]
    fn postcodes_match_by_prefix_and_must_be_five_digits() {
        let policy = bw();
        assert!(policy.covers_postcode("70173"));
        assert!(policy.covers_postcode("69117"));
        assert!(!policy.covers_postcode("10115"));
        assert!(!policy.covers_postcode("6811"));
        assert!(!policy.covers_postcode("7017a"));
        assert!(!policy.covers_postcode("701730"));
        assert!(!policy.covers_postcode(""));

        let everywhere = Policy {
            postcode_prefixes: vec![],
            ..policy
        };
        assert!(everywhere.covers_postcode("10115"));
        assert!(!everywhere.covers_postcode("Berlin"));
    }

    #[test]
    fn interval_window_is_inclusive() {
        let window = IntervalWindow { min: 21, max: 42 };
        assert!(!window.contains(20));
        assert!(window.contains(21));
        assert!(window.contains(42));
        assert!(!window.contains(43));
    }

    #[test]
    fn syntax_and_unknown_key_errors_name_the_place_and_the_key() {
        let error = error_of(&minimal_with("version = 3", "version = 3\ncolour = \"blue\""));
        assert!(
            error.starts_with("line 4, column 1: could not read the policy TOML"),
            "{error}"
        );
        assert!(error.contains("unknown field `colour`"), "{error}");

        let error = error_of(&minimal_with("min_age = 18", "min_age = 18\nminage = 60"));
        assert!(error.contains("unknown field `minage`"), "{error}");

        let error = error_of("region = ");
        assert!(error.contains("could not read the policy TOML"), "{error}");

        let error = error_of(&minimal_with("id = 1", "id = 300"));
        assert!(error.starts_with("line 8, column 6:"), "{error}");
    }

    #[test]
    fn missing_and_empty_sections_are_named() {
        let error = error_of(&minimal_with("[draw]", "[drawing]"));
        assert!(error.contains("unknown field `drawing`"), "{error}");

        let error = error_of(MINIMAL.split("[[groups]]").next().unwrap_or_default());
        assert!(error.contains("missing field `groups`"), "{error}");

        let group_table =
            "[[groups]]\nid = 1\nname = { de = \"Everyone\", en = \"Everyone\" }\nreleased_on = 2021-01-01\ntier = 1\nweight = 1.0\n";
        let text = minimal_with(group_table, "").replacen("name =", "groups = []\nname =", 1);
        assert_eq!(
            error_of(&text),
            "groups: at least one priority group is required; add a [[groups]] table"
        );

        let vaccine_table =
            "[[vaccines]]\ncode = \"one-shot\"\nname = { de = \"One Shot\", en = \"One Shot\" }\ndoses = 1\nmin_age = 18\n";
        let text = minimal_with(vaccine_table, "").replacen("name =", "vaccines = []\nname =", 1);
        assert_eq!(
            error_of(&text),
            "vaccines: at least one vaccine is required; add a [[vaccines]] table"
        );
    }

    #[test]
    fn each_rule_reports_its_field_path() {
        let cases: &[(&str, &str, &str)] = &[
            ("version = 3", "version = 0", "version: must be at least 1, got 0"),
            (
                r#"region = "test""#,
                r#"region = "BW""#,
                r#"region: must be lowercase letters a-z, digits and '-', got "BW""#,
            ),
            (
                r#"region = "test""#,
                r#"region = """#,
                r#"region: must be lowercase letters a-z, digits and '-', got """#,
            ),
            (r#"de = "Testland""#, r#"de = " ""#, "name.de: must not be empty"),
            (
                r#"["1"]"#,
                r#"["7", "12a"]"#,
                r#"postcode_prefixes[1]: must be 1 to 5 digits (the start of a German postcode), got "12a""#,
            ),
            (
                r#"postcode_prefixes = ["1"]"#,
                "postcode_prefixes = [\"1\"]\nphone_country_codes = [\"+49\"]",
                r#"phone_country_codes[0]: must be a country calling code of 1 to 3 digits without +, e.g. "49", got "+49""#,
            ),
            (
                r#"["1"]"#,
                r#"["123456"]"#,
                r#"postcode_prefixes[0]: must be 1 to 5 digits (the start of a German postcode), got "123456""#,
            ),
            (r#"["1"]"#, r#"[""]"#, r#"postcode_prefixes[0]: must be 1 to 5 digits (the start of a German postcode), got """#),
            ("id = 1", "id = 0", "groups[0].id: must be at least 1, got 0"),
            (r#"en = "Everyone""#, r#"en = """#, "groups[0].name.en: must not be empty"),
            (
                "weight = 1.0",
                "weight = 0.0",
                "groups[0].weight: must be a finite number greater than 0, got 0",
            ),
            (
                "weight = 1.0",
                "weight = nan",
                "groups[0].weight: must be a finite number greater than 0, got NaN",
            ),
            (
                "weight = 1.0",
                "weight = inf",
                "groups[0].weight: must be a finite number greater than 0, got inf",
            ),
            (
                r#"code = "one-shot""#,
                r#"code = "One Shot""#,
                r#"vaccines[0].code: must be lowercase letters a-z, digits and '-', got "One Shot""#,
            ),
            (r#"de = "One Shot""#, r#"de = """#, "vaccines[0].name.de: must not be empty"),
            ("doses = 1", "doses = 3", "vaccines[0].doses: must be 1 or 2, got 3"),
            ("doses = 1", "doses = 0", "vaccines[0].doses: must be 1 or 2, got 0"),
            (
                "doses = 1",
                "doses = 1\ninterval_days = { min = 1, max = 2 }",
                "vaccines[0].interval_days: a single-dose vaccine has no second dose; remove interval_days",
            ),
            (
                "doses = 1",
                "doses = 2",
                "vaccines[0].interval_days: a two-dose vaccine needs the days between doses, e.g. interval_days = { min = 21, max = 42 }",
            ),
            (
                "min_age = 18",
                "min_age = 18\nmax_age = 17",
                "vaccines[0].max_age: must be at least min_age (18), got 17",
            ),
            (
                "offer_window_minutes = 60",
                "offer_window_minutes = 4",
                "draw.offer_window_minutes: must be at least 5, got 4",
            ),
            (
                "short_notice_window_minutes = 10",
                "short_notice_window_minutes = 4",
                "draw.short_notice_window_minutes: must be at least 5, got 4",
            ),
            (
                "short_notice_window_minutes = 10",
                "short_notice_window_minutes = 61",
                "draw.short_notice_window_minutes: must be at most offer_window_minutes (60), got 61",
            ),
            (
                "short_notice_hours = 12",
                "short_notice_hours = 12\nremind_before_minutes = 60",
                "draw.remind_before_minutes: must be less than offer_window_minutes (60), or 0 to send no reminders, got 60",
            ),
            (
                "waiting_time_weight_per_week = 0.0",
                "waiting_time_weight_per_week = -0.5",
                "draw.waiting_time_weight_per_week: must be a finite number of at least 0, got -0.5",
            ),
            (
                "waiting_time_weight_per_week = 0.0",
                "waiting_time_weight_per_week = inf",
                "draw.waiting_time_weight_per_week: must be a finite number of at least 0, got inf",
            ),
            (
                "waiting_time_weight_per_week = 0.0",
                "waiting_time_weight_per_week = 0.0\nweight_after_decline = 0.0",
                "draw.weight_after_decline: must be greater than 0 and at most 1 (1 means no penalty), got 0",
            ),
            (
                "waiting_time_weight_per_week = 0.0",
                "waiting_time_weight_per_week = 0.0\nreserves = [{ groups = [1], share = 1.5 }]",
                "draw.reserves[0].share: must be greater than 0 and at most 1, got 1.5",
            ),
            (
                "waiting_time_weight_per_week = 0.0",
                "waiting_time_weight_per_week = 0.0\nreserves = [{ groups = [7], share = 0.5 }]",
                "draw.reserves[0].groups: priority group 7 is not defined in [[groups]]",
            ),
            (
                "waiting_time_weight_per_week = 0.0",
                "waiting_time_weight_per_week = 0.0\nreserves = [{ groups = [], share = 0.5 }]",
                "draw.reserves[0].groups: name at least one priority group",
            ),
            (
                "waiting_time_weight_per_week = 0.0",
                "waiting_time_weight_per_week = 0.0\nreserves = [{ groups = [1], share = 0.6 }, { groups = [1], share = 0.6 }]",
                "draw.reserves: the shares add up to 1.2, more than all pairs (1.0)",
            ),
        ];
        for (from, to, expected) in cases {
            assert_eq!(&error_of(&minimal_with(from, to)), expected, "{from} -> {to}");
        }
    }

    #[test]
    fn duplicates_and_interval_windows_are_checked_per_entry() {
        let two_dose = |code: &str, min: u16, max: u16| {
            format!(
                "[[vaccines]]\ncode = \"{code}\"\nname = {{ de = \"X\", en = \"X\" }}\ndoses = 2\n\
                 interval_days = {{ min = {min}, max = {max} }}\nmin_age = 0\n"
            )
        };
        assert!(Policy::from_toml(&minimal_with_vaccines(&two_dose("two", 21, 21))).is_ok());
        assert_eq!(
            error_of(&minimal_with_vaccines(&format!(
                "{}{}",
                two_dose("two", 21, 42),
                two_dose("three", 21, 14)
            ))),
            "vaccines[2].interval_days.max: must be at least min (21), got 14"
        );
        assert_eq!(
            error_of(&minimal_with_vaccines(&two_dose("two", 0, 14))),
            "vaccines[1].interval_days.min: must be at least 1, got 0"
        );
        assert_eq!(
            error_of(&minimal_with_vaccines(&two_dose("one-shot", 1, 2))),
            r#"vaccines[1].code: duplicate vaccine code "one-shot""#
        );

        let group = |id: u8| {
            format!("[[groups]]\nid = {id}\nname = {{ de = \"G\", en = \"G\" }}\nreleased_on = 2021-01-01\ntier = 1\nweight = 1.0\n")
        };
        let text = minimal_with("[[vaccines]]", &format!("{}{}[[vaccines]]", group(2), group(2)));
        assert_eq!(error_of(&text), "groups[2].id: duplicate priority group 2");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,600}") {
            let _ = Policy::from_toml(&text);
        }

        #[test]
        fn the_interval_window_rule_holds_for_every_pair(min in 0u16..150, max in 0u16..150) {
            let document = BW.replacen(
                "interval_days = { min = 21, max = 42 }",
                &format!("interval_days = {{ min = {min}, max = {max} }}"),
                1,
            );
            match Policy::from_toml(&document) {
                Ok(policy) => {
                    proptest::prop_assert!(min >= 1 && min <= max);
                    proptest::prop_assert_eq!(policy.vaccines[0].interval_days, Some(IntervalWindow { min, max }));
                }
                Err(error) => {
                    proptest::prop_assert!(min == 0 || min > max);
                    proptest::prop_assert!(error.field.starts_with("vaccines[0].interval_days"), "{}", error);
                }
            }
        }

        #[test]
        fn the_published_json_reads_back_identically(version in 1u32..10_000, weight in 0.01f64..100.0) {
            let document = BW
                .replacen("version = 1", &format!("version = {version}"), 1)
                .replacen("weight = 1.0", &format!("weight = {weight:?}"), 1);
            let policy = Policy::from_toml(&document).expect("valid");
            let json = serde_json::to_string(&policy).expect("serialises");
            let back: Policy = serde_json::from_str(&json).expect("reads back");
            proptest::prop_assert_eq!(back, policy);
        }
    }
}
