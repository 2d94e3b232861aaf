//! Who may be offered which vaccine, and why, in words a citizen understands.
//!
//! In 2021 people found out only by accident that rules nobody had published decided what they
//! were offered. Here every decision carries its reasons: every rule of the published
//! [`Policy`] is evaluated for every vaccine (never short-circuited), and each reason says, in
//! every language Drawbridge speaks, which fact about the person met which limit of the policy.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::allocation::policy::{is_german_postcode, Policy, PriorityGroup, Vaccine};
use crate::language::Language;

/// What a registrant told us that eligibility depends on. No name is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Year of birth; the 2021 rules went by birth-year cohort, not by birthday.
    pub birth_year: i32,
    /// The priority group the person states they belong to.
    pub priority_group: u8,
    /// German postcode of the person's home.
    pub postcode: String,
    /// Codes of the vaccines the person accepts; any other vaccine is refused, for whatever
    /// reason, and the refusal is never overridden.
    pub accepted_vaccines: Vec<String>,
}

impl Person {
    /// The age the person reaches in the calendar year `year` (negative if born later).
    pub fn age_in_year(&self, year: i32) -> i32 {
        year.saturating_sub(self.birth_year)
    }

    /// Whether the person said they accept the vaccine with this code.
    pub fn accepts(&self, vaccine_code: &str) -> bool {
        self.accepted_vaccines.iter().any(|c| c == vaccine_code)
    }
}

/// One rule of the policy, as named in reasons (serialized in `snake_case`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The person's postcode lies in the region the policy governs.
    PostcodeInRegion,
    /// The person's priority group has been released for appointments.
    GroupReleased,
    /// The person is old enough for the vaccine.
    MinimumAge,
    /// The person is not too old for the vaccine (only for vaccines with an upper age limit).
    MaximumAge,
    /// The person accepts the vaccine.
    Accepted,
    /// The person's priority group exists in the policy.
    KnownGroup,
}

/// The outcome of one rule for one vaccine, explained in every language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Which rule was checked.
    pub rule: Rule,
    /// Whether the person meets it.
    pub passed: bool,
    /// The explanation in German.
    pub de: String,
    /// The explanation in English.
    pub en: String,
    /// The explanation in Turkish.
    pub tr: String,
    /// The explanation in Arabic.
    pub ar: String,
}

impl Reason {
    /// A reason whose explanation `say` writes in each language.
    fn new(rule: Rule, passed: bool, say: impl Fn(Language) -> String) -> Reason {
        Reason {
            rule,
            passed,
            de: say(Language::De),
            en: say(Language::En),
            tr: say(Language::Tr),
            ar: say(Language::Ar),
        }
    }

    /// The explanation in `language`.
    pub fn text(&self, language: Language) -> &str {
        match language {
            Language::De => &self.de,
            Language::En => &self.en,
            Language::Tr => &self.tr,
            Language::Ar => &self.ar,
        }
    }
}

/// Whether a person may be offered one vaccine, with every reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaccineDecision {
    /// The vaccine's code.
    pub vaccine: String,
    /// True exactly when every reason passed.
    pub eligible: bool,
    /// One reason per rule that applies to this vaccine, in a fixed order.
    pub reasons: Vec<Reason>,
}

impl VaccineDecision {
    /// The only way decisions are built, so `eligible` always agrees with the reasons.
    fn new(vaccine: &Vaccine, reasons: Vec<Reason>) -> VaccineDecision {
        VaccineDecision {
            vaccine: vaccine.code.clone(),
            eligible: reasons.iter().all(|r| r.passed),
            reasons,
        }
    }
}

/// A person evaluated against one version of a policy on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The policy version the decision was made under.
    pub policy_version: u32,
    /// The day the decision applies to (release dates and ages depend on it).
    pub on: NaiveDate,
    /// True when the person is eligible for at least one vaccine.
    pub eligible: bool,
    /// One decision per vaccine of the policy, in policy order.
    pub vaccines: Vec<VaccineDecision>,
}

impl Evaluation {
    /// Codes of the vaccines the person may be offered, in policy order.
    pub fn eligible_vaccines(&self) -> impl Iterator<Item = &str> {
        self.vaccines
            .iter()
            .filter(|d| d.eligible)
            .map(|d| d.vaccine.as_str())
    }
}

/// Evaluates every rule of `policy` for every vaccine, for `person` on the day `on`.
pub fn evaluate(policy: &Policy, person: &Person, on: NaiveDate) -> Evaluation {
    let age = Age::of(person, on.year());
    // These do not depend on the vaccine; they are repeated in each decision so that every
    // decision can be read on its own.
    let shared = [
        postcode_in_region(policy, &person.postcode),
        known_group(policy, person.priority_group),
        group_released(policy.group(person.priority_group), person.priority_group, on),
    ];
    let vaccines: Vec<VaccineDecision> = policy
        .vaccines
        .iter()
        .map(|vaccine| {
            let mut reasons = shared.to_vec();
            reasons.push(minimum_age(vaccine, &age));
            reasons.extend(vaccine.max_age.map(|max| maximum_age(vaccine, max, &age)));
            reasons.push(accepted(vaccine, person));
            VaccineDecision::new(vaccine, reasons)
        })
        .collect();
    Evaluation {
        policy_version: policy.version,
        on,
        eligible: vaccines.iter().any(|d| d.eligible),
        vaccines,
    }
}

/// The vaccines `person` may be offered on `on`, in policy order: the same decision as
/// [`evaluate`] without the explanations, for the allocator, which decides for a million
/// people per draw and publishes the reasons separately.
pub fn eligible_vaccines<'p>(
    policy: &'p Policy,
    person: &'p Person,
    on: NaiveDate,
) -> impl Iterator<Item = &'p Vaccine> + 'p {
    let age = person.age_in_year(on.year());
    let admitted = policy.covers_postcode(&person.postcode)
        && policy
            .group(person.priority_group)
            .is_some_and(|group| group.released_on <= on);
    policy.vaccines.iter().filter(move |vaccine| {
        admitted
            && age >= i32::from(vaccine.min_age)
            && vaccine.max_age.is_none_or(|max| age <= i32::from(max))
            && person.accepts(&vaccine.code)
    })
}

fn postcode_in_region(policy: &Policy, postcode: &str) -> Reason {
    let region = |language| policy.name.get(language);
    let rule = Rule::PostcodeInRegion;
    if !is_german_postcode(postcode) {
        let shown = postcode.escape_debug();
        return Reason::new(rule, false, |language| match language {
            Language::De => format!(
                "„{shown}“ ist keine deutsche Postleitzahl; bitte geben Sie Ihre fünfstellige \
                 Postleitzahl ein."
            ),
            Language::En => {
                format!("“{shown}” is not a German postcode; please enter your 5-digit postcode.")
            }
            Language::Tr => {
                format!("“{shown}” bir Alman posta kodu değil; lütfen beş haneli posta kodunuzu girin.")
            }
            Language::Ar => {
                format!("«{shown}» ليس رمزًا بريديًا ألمانيًا؛ يرجى إدخال رمزك البريدي المكوّن من خمسة أرقام.")
            }
        });
    }
    if policy.covers_postcode(postcode) {
        Reason::new(rule, true, |language| {
            let region = region(language);
            match language {
                Language::De => format!("Ihre Postleitzahl {postcode} liegt in {region}."),
                Language::En => format!("Your postcode {postcode} is in {region}."),
                Language::Tr => format!("Posta kodunuz {postcode}, {region} bölgesinde."),
                Language::Ar => format!("رمزك البريدي {postcode} يقع في {region}."),
            }
        })
    } else {
        Reason::new(rule, false, |language| {
            let region = region(language);
            match language {
                Language::De => format!(
                    "Ihre Postleitzahl {postcode} liegt nicht in {region}; bitte registrieren \
                     Sie sich in dem Bundesland, in dem Sie wohnen."
                ),
                Language::En => format!(
                    "Your postcode {postcode} is not in {region}; please register in the region \
                     where you live."
                ),
                Language::Tr => format!(
                    "Posta kodunuz {postcode}, {region} bölgesinde değil; lütfen yaşadığınız \
                     eyalette kayıt olun."
                ),
                Language::Ar => format!(
                    "رمزك البريدي {postcode} لا يقع في {region}؛ يرجى التسجيل في الولاية التي \
                     تسكن فيها."
                ),
            }
        })
    }
}

fn known_group(policy: &Policy, id: u8) -> Reason {
    let region = |language| policy.name.get(language);
    let rule = Rule::KnownGroup;
    if policy.group(id).is_some() {
        return Reason::new(rule, true, |language| {
            let region = region(language);
            match language {
                Language::De => {
                    format!("Sie gehören zur Priorisierungsgruppe {id} der Regeln für {region}.")
                }
                Language::En => format!("You are in priority group {id} of the rules for {region}."),
                Language::Tr => format!("{region} kurallarına göre {id}. öncelik grubundasınız."),
                Language::Ar => format!("أنت في فئة الأولوية {id} وفق قواعد {region}."),
            }
        });
    }
    let ids: Vec<String> = policy.groups.iter().map(|g| g.id.to_string()).collect();
    Reason::new(rule, false, |language| {
        let region = region(language);
        match language {
            Language::De => format!(
                "Die Priorisierungsgruppe {id} gibt es in den Regeln für {region} nicht; bitte \
                 wählen Sie Gruppe {}.",
                one_of(&ids, "oder")
            ),
            Language::En => format!(
                "Priority group {id} does not exist in the rules for {region}; please choose \
                 group {}.",
                one_of(&ids, "or")
            ),
            Language::Tr => format!(
                "{region} kurallarında {id}. öncelik grubu yok; lütfen {} grubunu seçin.",
                one_of(&ids, "veya")
            ),
            Language::Ar => format!(
                "لا توجد فئة الأولوية {id} في قواعد {region}؛ يرجى اختيار الفئة {}.",
                one_of(&ids, "أو")
            ),
        }
    })
}

fn group_released(group: Option<&PriorityGroup>, id: u8, on: NaiveDate) -> Reason {
    let rule = Rule::GroupReleased;
    let Some(group) = group else {
        return Reason::new(rule, false, |language| match language {
            Language::De => {
                format!("Die Priorisierungsgruppe {id} gibt es nicht, daher hat sie kein Freigabedatum.")
            }
            Language::En => format!("Priority group {id} does not exist, so it has no release date."),
            Language::Tr => format!("{id}. öncelik grubu olmadığı için açılış tarihi de yok."),
            Language::Ar => format!("فئة الأولوية {id} غير موجودة، لذا ليس لها تاريخ فتح."),
        });
    };
    if group.released_on <= on {
        Reason::new(rule, true, |language| {
            let date = long_date(group.released_on, language);
            match language {
                Language::De => {
                    format!("Die Priorisierungsgruppe {id} ist seit dem {date} für Termine freigegeben.")
                }
                Language::En => format!("Priority group {id} has been open for appointments since {date}."),
                Language::Tr => {
                    format!("{id}. öncelik grubu {date} tarihinden beri randevulara açık.")
                }
                Language::Ar => format!("فئة الأولوية {id} مفتوحة للمواعيد منذ {date}."),
            }
        })
    } else {
        Reason::new(rule, false, |language| {
            let date = long_date(group.released_on, language);
            match language {
                Language::De => {
                    format!("Die Priorisierungsgruppe {id} wird erst am {date} für Termine freigegeben.")
                }
                Language::En => {
                    format!("Priority group {id} will only be opened for appointments on {date}.")
                }
                Language::Tr => {
                    format!("{id}. öncelik grubu ancak {date} tarihinde randevulara açılacak.")
                }
                Language::Ar => format!("لن تُفتح فئة الأولوية {id} للمواعيد إلا في {date}."),
            }
        })
    }
}

fn minimum_age(vaccine: &Vaccine, age: &Age) -> Reason {
    let min = vaccine.min_age;
    let passed = age.years >= i32::from(min);
    Reason::new(Rule::MinimumAge, passed, |language| {
        let (age, name) = (age.said(language), vaccine.name.get(language));
        match (language, passed) {
            (Language::De, true) => format!("{age}; {name} ist ab {} zugelassen.", jahre(min, Case::Dative)),
            (Language::De, false) => {
                format!(
                    "{age}; {name} ist erst ab {} zugelassen.",
                    jahre(min, Case::Dative)
                )
            }
            (Language::En, true) => format!("{age}; {name} is approved from age {min}."),
            (Language::En, false) => format!("{age}; {name} is only approved from age {min}."),
            (Language::Tr, true) => format!("{age}; {name} {min} yaşından itibaren onaylıdır."),
            (Language::Tr, false) => format!("{age}; {name} ancak {min} yaşından itibaren onaylıdır."),
            (Language::Ar, true) => format!("{age}؛ {name} معتمد ابتداءً من سن {min}."),
            (Language::Ar, false) => format!("{age}؛ {name} معتمد فقط ابتداءً من سن {min}."),
        }
    })
}

fn maximum_age(vaccine: &Vaccine, max: u8, age: &Age) -> Reason {
    let passed = age.years <= i32::from(max);
    Reason::new(Rule::MaximumAge, passed, |language| {
        let (age, name) = (age.said(language), vaccine.name.get(language));
        match (language, passed) {
            (Language::De, true) => format!(
                "{age}; {name} ist bis zum Alter von {} zugelassen.",
                jahre(max, Case::Dative)
            ),
            (Language::De, false) => format!(
                "{age}; {name} ist nur bis zum Alter von {} zugelassen.",
                jahre(max, Case::Dative)
            ),
            (Language::En, true) => format!("{age}; {name} is approved up to age {max}."),
            (Language::En, false) => format!("{age}; {name} is only approved up to age {max}."),
            (Language::Tr, true) => format!("{age}; {name} {max} yaşına kadar onaylıdır."),
            (Language::Tr, false) => format!("{age}; {name} yalnızca {max} yaşına kadar onaylıdır."),
            (Language::Ar, true) => format!("{age}؛ {name} معتمد حتى سن {max}."),
            (Language::Ar, false) => format!("{age}؛ {name} معتمد فقط حتى سن {max}."),
        }
    })
}

fn accepted(vaccine: &Vaccine, person: &Person) -> Reason {
    let passed = person.accepts(&vaccine.code);
    Reason::new(Rule::Accepted, passed, |language| {
        let name = vaccine.name.get(language);
        match (language, passed) {
            (Language::De, true) => format!("Sie haben angegeben, dass Sie {name} akzeptieren."),
            (Language::De, false) => format!(
                "Sie haben angegeben, dass Sie {name} nicht akzeptieren; das respektieren wir \
                 und bieten Ihnen diesen Impfstoff nie an."
            ),
            (Language::En, true) => format!("You said you accept {name}."),
            (Language::En, false) => format!(
                "You said you do not accept {name}; we respect that and will never offer it \
                 to you."
            ),
            (Language::Tr, true) => format!("{name} aşısını kabul ettiğinizi belirttiniz."),
            (Language::Tr, false) => format!(
                "{name} aşısını kabul etmediğinizi belirttiniz; buna saygı duyuyoruz ve bu aşıyı \
                 size asla önermeyeceğiz."
            ),
            (Language::Ar, true) => format!("لقد ذكرت أنك تقبل لقاح {name}."),
            (Language::Ar, false) => {
                format!("لقد ذكرت أنك لا تقبل لقاح {name}؛ نحترم ذلك ولن نعرض عليك هذا اللقاح أبدًا.")
            }
        }
    })
}

/// The age used by the age rules, with the facts needed to explain it.
struct Age {
    years: i32,
    year: i32,
    birth_year: i32,
}

impl Age {
    fn of(person: &Person, year: i32) -> Age {
        Age {
            years: person.age_in_year(year),
            year,
            birth_year: person.birth_year,
        }
    }

    /// "You will be 65 in 2021", or why there is no age yet.
    fn said(&self, language: Language) -> String {
        let Age {
            years,
            year,
            birth_year,
        } = self;
        match (language, *years < 0) {
            (Language::De, true) => format!("Ihr Geburtsjahr {birth_year} liegt nach {year}"),
            (Language::De, false) => format!("Sie werden {year} {} alt", jahre(*years, Case::Nominative)),
            (Language::En, true) => format!("Your year of birth {birth_year} is after {year}"),
            (Language::En, false) => format!("You will be {years} in {year}"),
            (Language::Tr, true) => format!("Doğum yılınız {birth_year}, {year} yılından sonra"),
            (Language::Tr, false) => format!("{year} yılında {years} yaşına giriyorsunuz"),
            (Language::Ar, true) => format!("سنة ميلادك {birth_year} بعد عام {year}"),
            (Language::Ar, false) => format!("عمرك في عام {year} هو {years}"),
        }
    }
}

/// Grammatical case of "Jahr" in the German sentences.
#[derive(Clone, Copy)]
enum Case {
    /// "Sie werden 65 Jahre alt"
    Nominative,
    /// "ab 60 Jahren"
    Dative,
}

/// "1 Jahr", "65 Jahre", "ab 60 Jahren".
fn jahre(n: impl Into<i32>, case: Case) -> String {
    let n = n.into();
    match (n, case) {
        (1, _) => "1 Jahr".to_owned(),
        (_, Case::Nominative) => format!("{n} Jahre"),
        (_, Case::Dative) => format!("{n} Jahren"),
    }
}

/// "1, 2, 3 or 4".
fn one_of(items: &[String], or: &str) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} {or} {last}", init.join(", ")),
    }
}

/// "7. Juni 2021", "7 June 2021", "7 Haziran 2021", "7 يونيو 2021" (chrono knows only English
/// month names without its locale feature).
fn long_date(date: NaiveDate, language: Language) -> String {
    const MONTHS_DE: [&str; 12] = [
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ];
    const MONTHS_TR: [&str; 12] = [
        "Ocak", "Şubat", "Mart", "Nisan", "Mayıs", "Haziran", "Temmuz", "Ağustos", "Eylül", "Ekim", "Kasım",
        "Aralık",
    ];
    const MONTHS_AR: [&str; 12] = [
        "يناير",
        "فبراير",
        "مارس",
        "أبريل",
        "مايو",
        "يونيو",
        "يوليو",
        "أغسطس",
        "سبتمبر",
        "أكتوبر",
        "نوفمبر",
        "ديسمبر",
    ];
    let month = |names: [&'static str; 12]| names.get(date.month0() as usize).copied().unwrap_or_default();
    let (day, year) = (date.day(), date.year());
    match language {
        Language::De => format!("{day}. {} {year}", month(MONTHS_DE)),
        Language::En => date.format("%-d %B %Y").to_string(),
        Language::Tr => format!("{day} {} {year}", month(MONTHS_TR)),
        Language::Ar => format!("{day} {} {year}", month(MONTHS_AR)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::allocation::policy::tests::bw;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    fn person(birth_year: i32, group: u8, postcode: &str, accepted: &[&str]) -> Person {
        Person {
            birth_year,
            priority_group: group,
            postcode: postcode.to_owned(),
            accepted_vaccines: accepted.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    const ALL: &[&str] = &["biontech", "moderna", "astrazeneca", "janssen"];

    fn decision<'a>(evaluation: &'a Evaluation, code: &str) -> &'a VaccineDecision {
        evaluation
            .vaccines
            .iter()
            .find(|d| d.vaccine == code)
            .expect("every vaccine has a decision")
    }

    fn failed_rules(decision: &VaccineDecision) -> Vec<Rule> {
        decision
            .reasons
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.rule)
            .collect()
    }

    fn reason(decision: &VaccineDecision, rule: Rule) -> &Reason {
        decision
            .reasons
            .iter()
            .find(|r| r.rule == rule)
            .expect("rule evaluated")
    }

    /// The 2021 scandal: people aged 60+ were silently never offered mRNA vaccines. Here a
    /// 65-year-old who accepts only mRNA vaccines gets exactly those, and the only thing that
    /// keeps them from the others is their own refusal.
    #[test]
    fn sixty_five_year_old_who_accepts_only_mrna_gets_mrna() {
        let evaluation = evaluate(
            &bw(),
            &person(1956, 3, "70173", &["biontech", "moderna"]),
            day(2021, 5, 3),
        );
        assert!(evaluation.eligible);
        assert_eq!(evaluation.policy_version, 3);
        assert_eq!(
            evaluation.eligible_vaccines().collect::<Vec<_>>(),
            ["biontech", "moderna"]
        );
        for code in ["biontech", "moderna"] {
            let d = decision(&evaluation, code);
            assert!(d.eligible && d.reasons.iter().all(|r| r.passed), "{d:?}");
        }
        for code in ["astrazeneca", "janssen"] {
            let d = decision(&evaluation, code);
            assert!(!d.eligible);
            assert_eq!(failed_rules(d), [Rule::Accepted], "{d:?}");
        }
        let astrazeneca = decision(&evaluation, "astrazeneca");
        let age = reason(astrazeneca, Rule::MinimumAge);
        assert_eq!(
            age.en,
            "You will be 65 in 2021; Vaxzevria (AstraZeneca) is approved from age 60."
        );
        assert_eq!(
            age.de,
            "Sie werden 2021 65 Jahre alt; Vaxzevria (AstraZeneca) ist ab 60 Jahren zugelassen."
        );
        let refusal = reason(astrazeneca, Rule::Accepted);
        assert!(refusal
            .en
            .starts_with("You said you do not accept Vaxzevria (AstraZeneca)"));
        assert!(refusal.de.contains("Vaxzevria (AstraZeneca) nicht akzeptieren"));
    }

    #[test]
    fn every_rule_is_evaluated_in_a_fixed_order() {
        let evaluation = evaluate(&bw(), &person(1956, 3, "70173", ALL), day(2021, 5, 3));
        let rules: Vec<Rule> = decision(&evaluation, "biontech")
            .reasons
            .iter()
            .map(|r| r.rule)
            .collect();
        assert_eq!(
            rules,
            [
                Rule::PostcodeInRegion,
                Rule::KnownGroup,
                Rule::GroupReleased,
                Rule::MinimumAge,
                Rule::Accepted
            ]
        );
        let codes: Vec<_> = evaluation.vaccines.iter().map(|d| d.vaccine.as_str()).collect();
        assert_eq!(codes, ALL);
    }

    #[test]
    fn seventeen_year_old_gets_biontech_but_not_moderna() {
        let evaluation = evaluate(&bw(), &person(2004, 4, "69117", ALL), day(2021, 6, 10));
        assert_eq!(evaluation.eligible_vaccines().collect::<Vec<_>>(), ["biontech"]);
        let moderna = decision(&evaluation, "moderna");
        assert_eq!(failed_rules(moderna), [Rule::MinimumAge]);
        let age = reason(moderna, Rule::MinimumAge);
        assert_eq!(
            age.en,
            "You will be 17 in 2021; Spikevax (Moderna) is only approved from age 18."
        );
        assert_eq!(
            age.de,
            "Sie werden 2021 17 Jahre alt; Spikevax (Moderna) ist erst ab 18 Jahren zugelassen."
        );
        assert!(reason(decision(&evaluation, "biontech"), Rule::MinimumAge).passed);
    }

    #[test]
    fn group_not_yet_released_names_the_release_date() {
        let evaluation = evaluate(&bw(), &person(1950, 4, "70173", ALL), day(2021, 5, 3));
        assert!(!evaluation.eligible);
        for d in &evaluation.vaccines {
            assert_eq!(failed_rules(d), [Rule::GroupReleased], "{d:?}");
        }
        let released = reason(&evaluation.vaccines[0], Rule::GroupReleased);
        assert_eq!(
            released.en,
            "Priority group 4 will only be opened for appointments on 7 June 2021."
        );
        assert_eq!(
            released.de,
            "Die Priorisierungsgruppe 4 wird erst am 7. Juni 2021 für Termine freigegeben."
        );

        let on_release_day = evaluate(&bw(), &person(1950, 4, "70173", ALL), day(2021, 6, 7));
        let released = reason(&on_release_day.vaccines[0], Rule::GroupReleased);
        assert!(released.passed);
        assert_eq!(
            released.en,
            "Priority group 4 has been open for appointments since 7 June 2021."
        );
    }

    #[test]
    fn postcode_outside_the_region_fails_every_vaccine() {
        let evaluation = evaluate(&bw(), &person(1940, 1, "10115", ALL), day(2021, 5, 3));
        assert!(!evaluation.eligible);
        for d in &evaluation.vaccines {
            assert_eq!(failed_rules(d), [Rule::PostcodeInRegion], "{d:?}");
        }
        let outside = reason(&evaluation.vaccines[0], Rule::PostcodeInRegion);
        assert_eq!(
            outside.en,
            "Your postcode 10115 is not in Baden-Württemberg; please register in the region \
             where you live."
        );

        let garbled = evaluate(&bw(), &person(1940, 1, "7017\n", ALL), day(2021, 5, 3));
        let garbled = reason(&garbled.vaccines[0], Rule::PostcodeInRegion);
        assert!(!garbled.passed);
        assert_eq!(
            garbled.en,
            "“7017\\n” is not a German postcode; please enter your 5-digit postcode."
        );
    }

    #[test]
    fn unknown_group_fails_and_lists_the_real_groups() {
        let evaluation = evaluate(&bw(), &person(1940, 9, "70173", ALL), day(2021, 5, 3));
        assert!(!evaluation.eligible);
        for d in &evaluation.vaccines {
            assert_eq!(failed_rules(d), [Rule::KnownGroup, Rule::GroupReleased]);
        }
        let unknown = reason(&evaluation.vaccines[0], Rule::KnownGroup);
        assert_eq!(
            unknown.en,
            "Priority group 9 does not exist in the rules for Baden-Württemberg; please choose \
             group 1, 2, 3 or 4."
        );
        assert_eq!(
            unknown.de,
            "Die Priorisierungsgruppe 9 gibt es in den Regeln für Baden-Württemberg nicht; \
             bitte wählen Sie Gruppe 1, 2, 3 oder 4."
        );
    }

    #[test]
    fn maximum_age_is_checked_only_where_set() {
        let mut policy = bw();
        policy.vaccines[0].max_age = Some(70);
        let evaluation = evaluate(&policy, &person(1946, 1, "70173", ALL), day(2021, 5, 3));
        let capped = &evaluation.vaccines[0];
        assert_eq!(failed_rules(capped), [Rule::MaximumAge]);
        assert_eq!(
            reason(capped, Rule::MaximumAge).en,
            "You will be 75 in 2021; Comirnaty (BioNTech/Pfizer) is only approved up to age 70."
        );
        assert!(evaluation.vaccines[1]
            .reasons
            .iter()
            .all(|r| r.rule != Rule::MaximumAge));

        let evaluation = evaluate(&policy, &person(1956, 3, "70173", ALL), day(2021, 5, 3));
        let within = reason(&evaluation.vaccines[0], Rule::MaximumAge);
        assert!(within.passed);
        assert_eq!(
            within.de,
            "Sie werden 2021 65 Jahre alt; Comirnaty (BioNTech/Pfizer) ist bis zum Alter von \
             70 Jahren zugelassen."
        );
    }

    #[test]
    fn ages_go_by_birth_year_and_never_overflow() {
        let p = person(1956, 3, "70173", ALL);
        assert_eq!(p.age_in_year(2021), 65);
        assert_eq!(person(i32::MIN, 1, "", &[]).age_in_year(2021), i32::MAX);
        assert_eq!(person(i32::MAX, 1, "", &[]).age_in_year(-5), i32::MIN);

        let unborn = evaluate(&bw(), &person(2030, 4, "70173", ALL), day(2021, 7, 1));
        let age = reason(&unborn.vaccines[0], Rule::MinimumAge);
        assert!(!age.passed);
        assert_eq!(
            age.en,
            "Your year of birth 2030 is after 2021; Comirnaty (BioNTech/Pfizer) is only \
             approved from age 16."
        );
    }

    #[test]
    fn german_grammar_and_lists() {
        assert_eq!(jahre(1u8, Case::Dative), "1 Jahr");
        assert_eq!(jahre(2, Case::Nominative), "2 Jahre");
        assert_eq!(jahre(60u8, Case::Dative), "60 Jahren");
        let items = |xs: &[&str]| xs.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(one_of(&items(&[]), "or"), "");
        assert_eq!(one_of(&items(&["1"]), "or"), "1");
        assert_eq!(one_of(&items(&["1", "2", "3"]), "oder"), "1, 2 oder 3");
        assert_eq!(long_date(day(2021, 3, 31), Language::De), "31. März 2021");
        assert_eq!(long_date(day(2020, 12, 27), Language::En), "27 December 2020");
        assert_eq!(long_date(day(2021, 2, 8), Language::Tr), "8 Şubat 2021");
        assert_eq!(long_date(day(2021, 6, 7), Language::Ar), "7 يونيو 2021");
    }

    #[test]
    fn evaluations_serialize_with_snake_case_rules() {
        let evaluation = evaluate(&bw(), &person(1956, 3, "70173", ALL), day(2021, 5, 3));
        let json = serde_json::to_string(&evaluation).expect("serializes");
        assert!(json.contains(r#""rule":"postcode_in_region""#), "{json}");
        assert!(json.contains(r#""on":"2021-05-03""#), "{json}");
        let back: Evaluation = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, evaluation);
        assert_eq!(
            serde_json::to_string(&Rule::KnownGroup).expect("serializes"),
            r#""known_group""#
        );
    }

    fn any_person() -> impl Strategy<Value = Person> {
        let postcode = prop_oneof!["[0-9]{5}", "(68|69|7|88|89|97)[0-9]{3}", "\\PC{0,8}"];
        let accepted = prop::collection::vec(
            prop_oneof![prop::sample::select(ALL).prop_map(str::to_owned), "\\PC{0,10}"],
            0..6,
        );
        (any::<i32>(), any::<u8>(), postcode, accepted).prop_map(
            |(birth_year, priority_group, postcode, accepted_vaccines)| Person {
                birth_year,
                priority_group,
                postcode,
                accepted_vaccines,
            },
        )
    }

    proptest! {
        #[test]
        fn every_vaccine_is_decided_and_explained(
            person in any_person(),
            days in 0i64..2000,
        ) {
            let policy = bw();
            let on = day(2020, 1, 1) + chrono::Duration::days(days);
            let evaluation = evaluate(&policy, &person, on);
            prop_assert_eq!(evaluation.vaccines.len(), policy.vaccines.len());
            for (d, vaccine) in evaluation.vaccines.iter().zip(&policy.vaccines) {
                prop_assert_eq!(&d.vaccine, &vaccine.code);
                prop_assert_eq!(d.eligible, d.reasons.iter().all(|r| r.passed));
                for r in &d.reasons {
                    for language in Language::ALL {
                        prop_assert!(!r.text(language).trim().is_empty());
                    }
                }
            }
            prop_assert_eq!(evaluation.eligible, evaluation.vaccines.iter().any(|d| d.eligible));
        }

        #[test]
        fn the_fast_path_decides_exactly_as_the_explained_one(
            person in any_person(),
            days in 0i64..2000,
        ) {
            let policy = bw();
            let on = day(2020, 1, 1) + chrono::Duration::days(days);
            let evaluation = evaluate(&policy, &person, on);
            let fast: Vec<&str> = eligible_vaccines(&policy, &person, on).map(|v| v.code.as_str()).collect();
            prop_assert_eq!(fast, evaluation.eligible_vaccines().collect::<Vec<_>>());
        }
    }
}
