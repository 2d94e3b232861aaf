//! A scenario file: who registers when, where the centres are and what they get, which policy
//! documents apply from which day, how people answer offers, and for how long to simulate.
//!
//! Policies are the same TOML documents the allocator publishes (`deploy/policies/`), read by
//! the same parser; paths are relative to the scenario file.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use chrono::NaiveDate;
use chrono_tz::Tz;
use drawbridge_domain::Policy;
use serde::Deserialize;

/// A scenario as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// What the scenario models, shown in reports.
    pub name: String,
    /// The first simulated day (the region's calendar).
    #[serde(deserialize_with = "date")]
    pub start: NaiveDate,
    /// How many days to simulate.
    pub days: u32,
    /// Draws per day, evenly spaced from `first_draw_hour`.
    #[serde(default = "one")]
    pub draws_per_day: u32,
    /// Local hour of the day's first draw.
    #[serde(default = "six")]
    pub first_draw_hour: u32,
    /// The region's time zone (IANA name).
    #[serde(default = "berlin")]
    pub timezone: String,
    /// The seed used when the command line names none.
    #[serde(default)]
    pub seed: u64,
    /// Policy documents and the day (0-based) each applies from.
    pub policies: Vec<PolicyFile>,
    /// Who registers.
    pub population: Population,
    /// The vaccination centres.
    pub centres: Vec<Centre>,
    /// Deliveries, split among the centres that give the vaccine by their `size`.
    pub supply: Vec<Supply>,
    /// How people answer offers and keep appointments.
    #[serde(default)]
    pub behaviour: Behaviour,
}

/// A TOML date (`2021-04-12`) or a quoted one.
fn date<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<NaiveDate, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Toml(toml::value::Datetime),
        Quoted(String),
    }
    let text = match Text::deserialize(deserializer)? {
        Text::Toml(datetime) => datetime.to_string(),
        Text::Quoted(text) => text,
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a date like 2021-04-12")))
}

fn one() -> u32 {
    1
}
fn six() -> u32 {
    6
}
fn berlin() -> String {
    "Europe/Berlin".into()
}

/// A policy document and the first day it applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Path of the policy TOML, relative to the scenario file.
    pub file: PathBuf,
    /// First simulated day (0-based) the policy applies.
    #[serde(default)]
    pub from_day: u32,
}

/// The registrants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Population {
    /// How many people register over the horizon (and before it, see `arrivals`).
    pub size: u64,
    /// Priority groups: their share of the registrants and their birth years.
    pub groups: Vec<GroupMix>,
    /// Where people live: postcode areas with their centroid and share of registrants.
    pub areas: Vec<Area>,
    /// How far people will travel: distances in km and the share choosing each.
    pub travel_km: Vec<Share<f64>>,
    /// Share of registrants who refuse each vaccine (by code); the rest accept it.
    #[serde(default)]
    pub refuses: std::collections::BTreeMap<String, f64>,
    /// Share of registrants who registered by phone (a call centre) rather than on the web.
    #[serde(default)]
    pub phone_share: f64,
    /// The registration curve: from each `day` on, `share` of all registrants arrive, spread
    /// evenly until the next point (or the horizon). A negative day means before the start.
    pub arrivals: Vec<Arrival>,
}

/// A priority group's part of the population.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMix {
    /// The group's number in the policy.
    pub id: u8,
    /// Share of the registrants.
    pub share: f64,
    /// Birth years, inclusive, drawn uniformly.
    pub born: [i32; 2],
}

/// A postcode area.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Area {
    /// A postcode of the area (five digits).
    pub postcode: String,
    /// Centroid.
    pub latitude: f64,
    /// Centroid.
    pub longitude: f64,
    /// Share of the registrants living there.
    pub share: f64,
}

/// A value and the share of people with it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share<T> {
    /// The value.
    pub value: T,
    /// Its share.
    pub share: f64,
}

/// A point of the registration curve.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// From this day on (0-based; negative is before the start).
    pub day: i32,
    /// Share of all registrants arriving until the next point.
    pub share: f64,
}

/// A vaccination centre.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Centre {
    /// Its id.
    pub id: String,
    /// Where it is.
    pub latitude: f64,
    /// Where it is.
    pub longitude: f64,
    /// Relative size: its share of every delivery of a vaccine it gives.
    #[serde(default = "unit")]
    pub size: f64,
    /// The vaccines it gives; empty means every vaccine delivered.
    #[serde(default)]
    pub vaccines: Vec<String>,
}

fn unit() -> f64 {
    1.0
}

/// Region-wide supply of one vaccine over a range of appointment days.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supply {
    /// Vaccine code from the policy.
    pub vaccine: String,
    /// First appointment day (0-based).
    pub from_day: u32,
    /// Last appointment day, inclusive.
    pub to_day: u32,
    /// Pairs per appointment day, all centres together.
    pub pairs_per_day: u32,
    /// Days before the appointment day that the pairs are published.
    pub lead_days: u32,
    /// Share of centre-days whose delivery arrives late.
    #[serde(default)]
    pub late_share: f64,
    /// A late delivery is published only this many days (0: on the day itself) before.
    #[serde(default)]
    pub late_lead_days: u32,
    /// Days to the second dose; the vaccine's longest interval if left out.
    #[serde(default)]
    pub second_dose_after_days: Option<u32>,
}

/// How people answer and keep appointments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Mean hours until someone answers an offer (exponential); an answer later than the
    /// offer window is no answer: the offer lapses.
    #[serde(default = "answer_hours")]
    pub answer_hours: f64,
    /// Phone registrants answer this many times slower (a call back).
    #[serde(default = "phone_factor")]
    pub phone_answer_factor: f64,
    /// Share of answers that accept; the rest decline.
    #[serde(default = "accept")]
    pub accept: f64,
    /// Share of bookings cancelled before the appointment (the pair reopens, the person
    /// waits again).
    #[serde(default)]
    pub cancel: f64,
    /// Share of bookings not kept: the pair is wasted.
    #[serde(default)]
    pub no_show: f64,
    /// Per-group overrides.
    #[serde(default)]
    pub groups: Vec<GroupBehaviour>,
}

fn answer_hours() -> f64 {
    6.0
}
fn phone_factor() -> f64 {
    2.0
}
fn accept() -> f64 {
    0.85
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour {
            answer_hours: answer_hours(),
            phone_answer_factor: phone_factor(),
            accept: accept(),
            cancel: 0.0,
            no_show: 0.0,
            groups: Vec::new(),
        }
    }
}

/// A group's own behaviour, where it differs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupBehaviour {
    /// The group.
    pub id: u8,
    /// See [`Behaviour::answer_hours`].
    pub answer_hours: Option<f64>,
    /// See [`Behaviour::accept`].
    pub accept: Option<f64>,
    /// See [`Behaviour::cancel`].
    pub cancel: Option<f64>,
    /// See [`Behaviour::no_show`].
    pub no_show: Option<f64>,
}

/// The behaviour of one group, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Conduct {
    /// Mean hours to answer.
    pub answer_hours: f64,
    /// Share of answers accepting.
    pub accept: f64,
    /// Share of bookings cancelled.
    pub cancel: f64,
    /// Share of bookings not kept.
    pub no_show: f64,
}

impl Behaviour {
    /// The behaviour of group `id`.
    pub fn of(&self, id: u8) -> Conduct {
        let own = self.groups.iter().find(|g| g.id == id);
        Conduct {
            answer_hours: own.and_then(|g| g.answer_hours).unwrap_or(self.answer_hours),
            accept: own.and_then(|g| g.accept).unwrap_or(self.accept),
            cancel: own.and_then(|g| g.cancel).unwrap_or(self.cancel),
            no_show: own.and_then(|g| g.no_show).unwrap_or(self.no_show),
        }
    }
}

/// A scenario ready to run: the file with its policies parsed.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file as written.
    pub file: ScenarioFile,
    /// The policies with their first day and document text, in day order.
    pub policies: Vec<(u32, Policy, String)>,
    /// The region's time zone.
    pub timezone: Tz,
    /// Where the scenario came from.
    pub path: PathBuf,
}

impl Scenario {
    /// Reads and checks a scenario file and the policy documents it names.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        let file: ScenarioFile =
            toml::from_str(&text).with_context(|| format!("scenario {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut policies = Vec::new();
        for entry in &file.policies {
            let policy_path = base.join(&entry.file);
            let document = std::fs::read_to_string(&policy_path)
                .with_context(|| format!("cannot read policy {}", policy_path.display()))?;
            let policy =
                Policy::from_toml(&document).with_context(|| format!("policy {}", policy_path.display()))?;
            policies.push((entry.from_day, policy, document));
        }
        Scenario::new(file, policies, path.to_owned())
    }

    /// A scenario from its parts (tests build them in code).
    pub fn new(
        file: ScenarioFile,
        mut policies: Vec<(u32, Policy, String)>,
        path: PathBuf,
    ) -> anyhow::Result<Scenario> {
        policies.sort_by_key(|(day, _, _)| *day);
        ensure!(!policies.is_empty(), "policies: name at least one policy file");
        ensure!(
            policies[0].0 == 0,
            "policies: the first policy must apply from day 0"
        );
        ensure!(file.days >= 1, "days: must be at least 1");
        ensure!(
            (1..=24).contains(&file.draws_per_day),
            "draws_per_day: must be 1 to 24"
        );
        ensure!(file.first_draw_hour < 24, "first_draw_hour: must be 0 to 23");
        let timezone: Tz = file
            .timezone
            .parse()
            .map_err(|_| anyhow::anyhow!("timezone: unknown time zone {:?}", file.timezone))?;
        let population = &file.population;
        ensure!(population.size >= 1, "population.size: must be at least 1");
        ensure!(
            population.size <= u32::MAX as u64,
            "population.size: at most 4294967295"
        );
        shares("population.groups", population.groups.iter().map(|g| g.share))?;
        shares("population.areas", population.areas.iter().map(|a| a.share))?;
        shares(
            "population.travel_km",
            population.travel_km.iter().map(|t| t.share),
        )?;
        shares("population.arrivals", population.arrivals.iter().map(|a| a.share))?;
        ensure!(
            population.arrivals.windows(2).all(|w| w[0].day < w[1].day),
            "population.arrivals: days must increase"
        );
        for group in &population.groups {
            ensure!(
                group.born[0] <= group.born[1],
                "population.groups: born = [first, last]"
            );
            for (_, policy, _) in &policies {
                ensure!(
                    policy.group(group.id).is_some(),
                    "population.groups: group {} is not defined by policy {} version {}",
                    group.id,
                    policy.region,
                    policy.version
                );
            }
        }
        for area in &population.areas {
            ensure!(
                policies[0].1.covers_postcode(&area.postcode),
                "population.areas: postcode {} is not in the policy's region",
                area.postcode
            );
        }
        for (code, share) in &population.refuses {
            ensure!(
                (0.0..=1.0).contains(share),
                "population.refuses.{code}: a share 0 to 1"
            );
        }
        ensure!(!file.centres.is_empty(), "centres: name at least one centre");
        for supply in &file.supply {
            let Some(vaccine) = policies[0].1.vaccine(&supply.vaccine) else {
                bail!("supply: vaccine {:?} is not in the policy", supply.vaccine);
            };
            ensure!(supply.from_day <= supply.to_day, "supply: from_day after to_day");
            ensure!(
                supply.late_lead_days <= supply.lead_days,
                "supply: late_lead_days must be at most lead_days"
            );
            if let (Some(days), Some(window)) = (supply.second_dose_after_days, vaccine.interval_days) {
                ensure!(
                    window.contains(i64::from(days)),
                    "supply: second_dose_after_days {days} is outside {}'s interval",
                    vaccine.code
                );
            }
            ensure!(
                file.centres.iter().any(|c| gives(c, &supply.vaccine)),
                "supply: no centre gives {}",
                supply.vaccine
            );
        }
        let behaviour = &file.behaviour;
        for id in behaviour.groups.iter().map(|g| g.id).chain([0]) {
            let c = behaviour.of(id);
            ensure!(c.answer_hours > 0.0, "behaviour.answer_hours: must be positive");
            for (name, value) in [("accept", c.accept), ("cancel", c.cancel), ("no_show", c.no_show)] {
                ensure!((0.0..=1.0).contains(&value), "behaviour.{name}: a share 0 to 1");
            }
        }
        Ok(Scenario {
            file,
            policies,
            timezone,
            path,
        })
    }

    /// The same scenario at `size` people, with every delivery scaled alike (at least one
    /// pair a day), so that scarcity stays the same.
    pub fn scale_population(&mut self, size: u64) {
        let scale = size as f64 / self.file.population.size as f64;
        self.file.population.size = size;
        for supply in &mut self.file.supply {
            supply.pairs_per_day = ((f64::from(supply.pairs_per_day) * scale).round() as u32).max(1);
        }
    }

    /// The policy in force on `day`, with its document.
    pub fn policy_on(&self, day: u32) -> (&Policy, &str) {
        let (_, policy, document) = self
            .policies
            .iter()
            .rev()
            .find(|(from, _, _)| *from <= day)
            .expect("a policy from day 0");
        (policy, document)
    }

    /// The same scenario under other policy documents (for comparisons and counterfactuals).
    pub fn with_policies(&self, policies: Vec<(u32, Policy, String)>) -> anyhow::Result<Scenario> {
        Scenario::new(self.file.clone(), policies, self.path.clone())
    }
}

/// Whether the centre gives the vaccine.
pub fn gives(centre: &Centre, vaccine: &str) -> bool {
    centre.vaccines.is_empty() || centre.vaccines.iter().any(|v| v == vaccine)
}

fn shares(name: &str, shares: impl Iterator<Item = f64>) -> anyhow::Result<()> {
    let mut total = 0.0;
    let mut any = false;
    for share in shares {
        ensure!(
            share >= 0.0 && share.is_finite(),
            "{name}: shares must be 0 or more"
        );
        total += share;
        any = true;
    }
    ensure!(any, "{name}: name at least one entry");
    ensure!(
        (total - 1.0).abs() < 1e-6,
        "{name}: the shares add up to {total}, not 1"
    );
    Ok(())
}
