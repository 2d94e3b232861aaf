//! The discrete-event simulation: people register, centres publish pairs, draws run, people
//! answer, cancel, come or do not come. Every allocation decision is the production code's:
//! the policy parser, [`waiting::candidate`] (eligibility, waiting weeks, age band), the travel
//! rule [`waiting::reachable`], capacity planning [`capacity::plan`], the offer windows
//! ([`draw::offer_expiry`], applied by the draw), the lapse rule [`waiting::offer_lapsed`], the
//! decline count [`waiting::counts_as_decline`] and the draw itself
//! ([`draw::draw`] / [`draw::draw_with_keys`]). What the simulation adds is only what the
//! allocator reads from its database: who registered, and what people did with their offers.
//!
//! A run is a pure function of the scenario and the seed, single-threaded: the same seed gives
//! the same bytes whatever else runs beside it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use drawbridge_domain::allocation::capacity::{self, CapacityRequest};
use drawbridge_domain::allocation::draw::{
    self, Candidate, DrawError, DrawInput, DrawOutcome, FreePair, Pseudonym, Seed,
};
use drawbridge_domain::allocation::fairness::{
    early_half_test, quantile_cells, uniformity_test, Contender, TestResult,
};
use drawbridge_domain::allocation::geo::Place;
use drawbridge_domain::allocation::waiting::{self, OfferEnd, Waiting};
use drawbridge_domain::{Person as DomainPerson, Policy};
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::metrics::{DayRecorder, RunResult};
use crate::random::{mix, Stream};
use crate::scenario::{gives, Scenario};

/// The draw a simulation calls: the production one unless a test swaps in a broken one.
/// Returns the outcome and, when `keys` is asked for, every candidate's lottery key.
pub type DrawFn = fn(&Policy, &Seed, &DrawInput, bool) -> Result<(DrawOutcome, Vec<f64>), DrawError>;

/// The production draw: [`draw::draw_with_keys`] when the keys are wanted (for the audit),
/// [`draw::draw`] otherwise.
pub fn production_draw(
    policy: &Policy,
    seed: &Seed,
    input: &DrawInput,
    keys: bool,
) -> Result<(DrawOutcome, Vec<f64>), DrawError> {
    if keys {
        draw::draw_with_keys(policy, seed, input)
    } else {
        draw::draw(policy, seed, input).map(|outcome| (outcome, Vec::new()))
    }
}

/// Options of one run besides the scenario.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// The seed: population, behaviour and every draw's seed derive from it.
    pub seed: u64,
    /// Test every draw for bias (needs every lottery key; slower).
    pub audit: bool,
    /// The draw to call.
    pub draw: DrawFn,
}

impl RunOptions {
    /// The production draw, no audit.
    pub fn new(seed: u64) -> RunOptions {
        RunOptions {
            seed,
            audit: false,
            draw: production_draw,
        }
    }
}

/// Where a person is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PersonState {
    /// Registers after the horizon.
    NotRegistered,
    /// Registered, no vaccine may be offered to them yet.
    Ineligible,
    /// In the draw's pool.
    Waiting,
    /// Holds a pending offer.
    Offered,
    /// Holds a booking whose first appointment is ahead.
    Booked,
    /// Got their first dose.
    Vaccinated,
    /// Did not come to their appointment.
    NoShow,
}

impl PersonState {
    /// Every state, in report order.
    pub const ALL: [PersonState; 7] = [
        PersonState::NotRegistered,
        PersonState::Ineligible,
        PersonState::Waiting,
        PersonState::Offered,
        PersonState::Booked,
        PersonState::Vaccinated,
        PersonState::NoShow,
    ];

    /// The state's name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            PersonState::NotRegistered => "not_registered",
            PersonState::Ineligible => "ineligible",
            PersonState::Waiting => "waiting",
            PersonState::Offered => "offered",
            PersonState::Booked => "booked",
            PersonState::Vaccinated => "vaccinated",
            PersonState::NoShow => "no_show",
        }
    }
}

/// Where a published pair is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PairState {
    /// Free, first appointment ahead.
    Open,
    /// In a pending offer.
    Offered,
    /// Booked, first appointment ahead.
    Booked,
    /// Its first dose was given.
    Used,
    /// Booked, but nobody came: wasted.
    NoShow,
    /// Its first appointment passed unbooked: wasted.
    Unused,
}

impl PairState {
    /// Every state, in report order.
    pub const ALL: [PairState; 6] = [
        PairState::Open,
        PairState::Offered,
        PairState::Booked,
        PairState::Used,
        PairState::NoShow,
        PairState::Unused,
    ];

    /// The state's name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            PairState::Open => "open",
            PairState::Offered => "offered",
            PairState::Booked => "booked",
            PairState::Used => "used",
            PairState::NoShow => "no_show",
            PairState::Unused => "unused",
        }
    }
}

/// A registrant as the simulation keeps them: compact, because there are millions.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    /// Registration (and phone verification) time, seconds since the epoch.
    pub arrival: i64,
    pub birth_year: i16,
    pub group: u8,
    pub area: u16,
    pub travel: u8,
    /// Bit `i`: refuses the policy's `i`-th vaccine of the scenario's vaccine list.
    pub refuses: u8,
    pub phone: bool,
    pub state: PersonState,
    pub declines: u32,
    pub offers: u32,
    /// First time in a draw's pool, seconds; `i64::MIN` before.
    pub eligible_since: i64,
    pub first_offer: i64,
    pub booked_at: i64,
}

/// A published pair.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub centre: u16,
    pub vaccine: u8,
    pub first_at: i64,
    pub second_at: Option<i64>,
    pub state: PairState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The person answers their pending offer.
    Answer { person: u32, pair: u32, accept: bool },
    /// The person cancels their booking.
    Cancel { person: u32, pair: u32 },
    /// The first appointment of a booked pair.
    Appointment { person: u32, pair: u32, shows: bool },
}

/// A batch of capacity: `count` pairs of one vaccine at one centre on one day.
#[derive(Debug, Clone)]
struct Batch {
    publish_at: i64,
    centre: u16,
    vaccine: u8,
    day: NaiveDate,
    count: u32,
    second_after: Option<u32>,
}

/// Seconds since the epoch of a UTC time.
fn secs(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

fn time(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("simulated times are in range")
}

/// The simulation's state.
pub(crate) struct Sim<'a> {
    pub scenario: &'a Scenario,
    options: RunOptions,
    pub people: Vec<Person>,
    /// People in order of arrival, and how many have arrived.
    arrivals: Vec<u32>,
    arrived: usize,
    pub pairs: Vec<Pair>,
    /// The draw's input: open pairs and the pool.
    input: DrawInput,
    /// Where each person sits in `input.candidates` (`u32::MAX`: not there).
    slot: Vec<u32>,
    /// Where each pair sits in `input.pairs`.
    pair_slot: Vec<u32>,
    /// Waiting people who may not be offered anything yet, with their group.
    ineligible: Vec<(u32, u8)>,
    /// The registration time and waiting weeks of each candidate, aligned with
    /// `input.candidates`: read every tick, so kept beside the pool, already converted, and
    /// small, so that a tick writes only the candidates whose waiting weeks changed.
    waits_of_pool: Vec<(DateTime<Utc>, u32)>,
    /// Candidates and pairs taken out of the draw's input, kept so that the next one put in
    /// reuses their text's allocations instead of making new ones (millions of small strings
    /// are most of what filling the pool costs).
    spare_candidates: Vec<Candidate>,
    spare_pairs: Vec<FreePair>,
    /// Candidates in the pool by group id, kept as they enter and leave so that the day's
    /// sample need not read the whole pool.
    pool_by_group: [u64; 256],
    /// People holding a pending offer: (person, pair, expires_at).
    pending: Vec<(u32, u32, i64)>,
    events: BinaryHeap<Reverse<(i64, u64, Event)>>,
    sequence: u64,
    batches: Vec<Batch>,
    published: usize,
    /// Candidate templates by profile, valid for one eligibility epoch.
    profiles: FxHashMap<u64, Option<Candidate>>,
    epoch: Option<(usize, u64, i32)>,
    /// Reachable centres' ids, nearest first, per (area, travel choice): a candidate's
    /// `centres` (the domain passes them through) are copied from these few lists, which stay
    /// in the cache, rather than from each profile's template.
    reach_ids: Vec<Vec<String>>,
    centre_ids: Vec<String>,
    vaccine_codes: Vec<String>,
    /// Local midnight of day 0, seconds.
    pub t0: i64,
    pseudonym_key: u64,
    pub recorder: DayRecorder,
}

impl<'a> Sim<'a> {
    /// Generates the population and the capacity schedule.
    pub fn new(scenario: &'a Scenario, options: RunOptions) -> Sim<'a> {
        let file = &scenario.file;
        let tz = scenario.timezone;
        let t0 = secs(
            tz.from_local_datetime(&file.start.and_time(NaiveTime::MIN))
                .earliest()
                .expect("local midnight exists")
                .with_timezone(&Utc),
        );
        let policy = scenario.policy_on(0).0;
        let vaccine_codes: Vec<String> = policy.vaccines.iter().map(|v| v.code.clone()).collect();
        let centre_ids: Vec<String> = file.centres.iter().map(|c| c.id.clone()).collect();
        let places: Vec<Place> = file
            .centres
            .iter()
            .map(|c| Place {
                latitude: c.latitude,
                longitude: c.longitude,
            })
            .collect();
        let area_places: Vec<Place> = file
            .population
            .areas
            .iter()
            .map(|a| Place {
                latitude: a.latitude,
                longitude: a.longitude,
            })
            .collect();
        let travel = &file.population.travel_km;
        let mut reach = Vec::with_capacity(area_places.len() * travel.len());
        for home in &area_places {
            for km in travel {
                reach.push(waiting::reachable(
                    *home,
                    centre_ids.iter().map(String::as_str).zip(places.iter().copied()),
                    km.value,
                ));
            }
        }
        let people = population(scenario, options.seed, t0, &vaccine_codes);
        // Sorted with their keys beside them: looking each key up in `people` while sorting
        // costs a cache miss per comparison. The index makes every key distinct.
        let mut by_arrival: Vec<(i64, u32)> = people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.arrival, i as u32))
            .collect();
        by_arrival.sort_unstable();
        let arrivals: Vec<u32> = by_arrival.into_iter().map(|(_, i)| i).collect();
        let batches = schedule(scenario, options.seed, t0, &vaccine_codes);
        let n = people.len();
        let groups: Vec<u8> = file.population.groups.iter().map(|g| g.id).collect();
        Sim {
            scenario,
            options,
            people,
            arrivals,
            arrived: 0,
            pairs: Vec::new(),
            input: DrawInput {
                drawn_at: time(t0),
                pairs: Vec::new(),
                // Most people end up in the pool: growing it by doubling would copy it.
                candidates: Vec::with_capacity(n),
            },
            slot: vec![u32::MAX; n],
            pair_slot: Vec::new(),
            ineligible: Vec::new(),
            waits_of_pool: Vec::with_capacity(n),
            spare_candidates: Vec::new(),
            spare_pairs: Vec::new(),
            pool_by_group: [0; 256],
            pending: Vec::new(),
            events: BinaryHeap::new(),
            sequence: 0,
            batches,
            published: 0,
            profiles: FxHashMap::default(),
            epoch: None,
            reach_ids: reach,
            centre_ids,
            vaccine_codes,
            t0,
            pseudonym_key: mix(options.seed ^ 0x7073_6575_646f_6e79),
            recorder: DayRecorder::new(file.days, groups),
        }
    }

    /// Runs the whole horizon; `progress` is told each finished day.
    pub fn run(mut self, progress: &dyn Fn(u32)) -> Result<RunResult, DrawError> {
        let file = &self.scenario.file;
        let every = 86_400 / i64::from(file.draws_per_day);
        let mut draw_number = 0u64;
        for day in 0..file.days {
            let date = file.start + Duration::days(day.into());
            let first = self
                .scenario
                .timezone
                .from_local_datetime(&date.and_hms_opt(file.first_draw_hour, 0, 0).expect("an hour"))
                .earliest()
                .expect("the draw hour exists")
                .with_timezone(&Utc);
            for k in 0..file.draws_per_day {
                let at = secs(first) + i64::from(k) * every;
                self.advance(at);
                self.tick(day, k == 0, at, draw_number)?;
                draw_number += 1;
            }
            progress(day);
        }
        let end = self.t0 + i64::from(file.days) * 86_400;
        self.advance(end);
        // Offers still pending at the horizon stay pending: the next tick would lapse them.
        Ok(self.finish(end))
    }

    fn day_of(&self, at: i64) -> u32 {
        ((at - self.t0).max(0) / 86_400).min(i64::from(self.scenario.file.days) - 1) as u32
    }

    fn push_event(&mut self, at: i64, event: Event) {
        self.sequence += 1;
        self.events.push(Reverse((at, self.sequence, event)));
    }

    /// Processes everything that happens before `until`: arrivals, publications, answers,
    /// cancellations and appointments, in time order.
    fn advance(&mut self, until: i64) {
        loop {
            let next_event = self.events.peek().map(|Reverse((at, _, _))| *at);
            let next_arrival = self
                .arrivals
                .get(self.arrived)
                .map(|&p| self.people[p as usize].arrival);
            let next_batch = self.batches.get(self.published).map(|b| b.publish_at);
            let next = [next_event, next_arrival, next_batch].into_iter().flatten().min();
            let Some(at) = next.filter(|&at| at < until) else {
                break;
            };
            if next_batch == Some(at) {
                self.publish(self.published);
                self.published += 1;
            } else if next_arrival == Some(at) {
                let person = self.arrivals[self.arrived];
                self.arrived += 1;
                self.recorder
                    .registered(self.day_of(at), self.people[person as usize].group);
                self.enter(person, at);
            } else {
                let Reverse((at, _, event)) = self.events.pop().expect("peeked");
                self.happen(at, event);
            }
        }
    }

    fn publish(&mut self, index: usize) {
        let batch = self.batches[index].clone();
        let policy = self.scenario.policy_on(self.day_of(batch.publish_at)).0;
        let slots = 144u32; // 08:00 to 20:00 in 5-minute slots.
        let (per_slot, rest) = (batch.count / slots, batch.count % slots);
        let open = NaiveTime::from_hms_opt(8, 0, 0).expect("08:00");
        let mut requests = Vec::new();
        if per_slot > 0 {
            requests.push((open, NaiveTime::from_hms_opt(20, 0, 0).expect("20:00"), per_slot));
        }
        if rest > 0 {
            requests.push((open, open + Duration::minutes(5 * i64::from(rest)), 1));
        }
        let tz = self.scenario.timezone;
        for (from, until, people_per_slot) in requests {
            let request = CapacityRequest {
                vaccine: self.vaccine_codes[usize::from(batch.vaccine)].clone(),
                day: batch.day,
                from,
                until,
                slot_minutes: 5,
                people_per_slot,
                second_dose_after_days: batch.second_after,
            };
            let planned = capacity::plan(policy, &request).expect("the scenario's capacity is valid");
            let local = |at: chrono::NaiveDateTime| {
                secs(
                    tz.from_local_datetime(&at)
                        .earliest()
                        .expect("a local time")
                        .with_timezone(&Utc),
                )
            };
            for pair in planned {
                let id = self.pairs.len() as u32;
                let first_at = local(pair.first);
                self.pairs.push(Pair {
                    centre: batch.centre,
                    vaccine: batch.vaccine,
                    first_at,
                    second_at: pair.second.map(local),
                    state: PairState::Open,
                });
                self.pair_slot.push(u32::MAX);
                self.recorder.published(self.day_of(first_at));
                self.open(id);
            }
        }
    }

    /// Puts a pair back on offer.
    fn open(&mut self, pair: u32) {
        let record = &mut self.pairs[pair as usize];
        record.state = PairState::Open;
        self.pair_slot[pair as usize] = self.input.pairs.len() as u32;
        let id = Uuid::from_u128(u128::from(pair));
        let (first_at, second_at) = (time(record.first_at), record.second_at.map(time));
        let centre = &self.centre_ids[usize::from(record.centre)];
        let vaccine = &self.vaccine_codes[usize::from(record.vaccine)];
        let free = match self.spare_pairs.pop() {
            Some(mut spare) => {
                spare.id = id;
                spare.centre.clone_from(centre);
                spare.vaccine.clone_from(vaccine);
                spare.first_at = first_at;
                spare.second_at = second_at;
                spare
            }
            None => FreePair {
                id,
                centre: centre.clone(),
                vaccine: vaccine.clone(),
                first_at,
                second_at,
            },
        };
        self.input.pairs.push(free);
    }

    /// Takes a pair off offer (offered, or its time passed).
    fn close(&mut self, pair: u32) {
        let at = self.pair_slot[pair as usize] as usize;
        self.pair_slot[pair as usize] = u32::MAX;
        let spare = self.input.pairs.swap_remove(at);
        self.spare_pairs.push(spare);
        if let Some(moved) = self.input.pairs.get(at) {
            self.pair_slot[moved.id.as_u128() as usize] = at as u32;
        }
    }

    fn pseudonym(&self, person: u32) -> Pseudonym {
        // The first eight bytes choose the lottery stream: a bijection of the index, so no
        // two people share one; the last eight are the index itself.
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&mix(self.pseudonym_key ^ u64::from(person)).to_le_bytes());
        bytes[8..].copy_from_slice(&u64::from(person).to_le_bytes());
        Pseudonym::from_bytes(bytes)
    }

    fn person_of(pseudonym: &Pseudonym) -> u32 {
        let bytes = pseudonym.as_bytes();
        u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes")) as u32
    }

    /// The person is waiting: into the pool if they may be offered something today.
    fn enter(&mut self, person: u32, at: i64) {
        let drawn_at = at;
        match self.candidate(person, drawn_at) {
            Some(candidate) => {
                let day = self.day_of(at);
                let record = &mut self.people[person as usize];
                record.state = PersonState::Waiting;
                if record.eligible_since == i64::MIN {
                    record.eligible_since = at;
                    self.recorder.became_eligible(day, record.group);
                }
                self.slot[person as usize] = self.input.candidates.len() as u32;
                let arrival = time(self.people[person as usize].arrival);
                self.waits_of_pool.push((arrival, candidate.waited_weeks));
                self.pool_by_group[usize::from(candidate.group)] += 1;
                self.input.candidates.push(candidate);
            }
            None => {
                self.people[person as usize].state = PersonState::Ineligible;
                self.ineligible.push((person, self.people[person as usize].group));
            }
        }
    }

    /// Removes the person from the pool.
    fn leave(&mut self, person: u32) {
        let at = self.slot[person as usize] as usize;
        self.slot[person as usize] = u32::MAX;
        let spare = self.input.candidates.swap_remove(at);
        self.pool_by_group[usize::from(spare.group)] -= 1;
        self.spare_candidates.push(spare);
        self.waits_of_pool.swap_remove(at);
        if let Some(moved) = self.input.candidates.get(at) {
            self.slot[Sim::person_of(&moved.pseudonym) as usize] = at as u32;
        }
    }

    /// The person as a draw candidate, through the domain's rule, or `None` if ineligible.
    /// People with the same profile get the same answer, so the rule runs once per profile
    /// and eligibility epoch.
    fn candidate(&mut self, person: u32, drawn_at: i64) -> Option<Candidate> {
        let p = &self.people[person as usize];
        let (arrival, declines) = (p.arrival, p.declines);
        let reach = self.reach_index(p);
        let key = self.template(person, drawn_at);
        // Field by field below, so the borrows are of `profiles` and `reach_ids` alone.
        let template = self.profiles[&key].as_ref()?;
        let mut candidate = match self.spare_candidates.pop() {
            Some(mut spare) => {
                // Field by field: `clone_from` of a string or a list of them reuses the spare's
                // allocations (a derived `clone_from` would not).
                let Candidate {
                    pseudonym: _,
                    group,
                    age_band,
                    waited_weeks: _,
                    declines: _,
                    vaccines,
                    centres,
                    ahead,
                } = template;
                spare.group = *group;
                spare.age_band.clone_from(age_band);
                spare.vaccines.clone_from(vaccines);
                debug_assert_eq!(*centres, self.reach_ids[reach]);
                spare.centres.clone_from(&self.reach_ids[reach]);
                spare.ahead = *ahead;
                spare
            }
            None => Candidate {
                pseudonym: template.pseudonym,
                group: template.group,
                age_band: template.age_band.clone(),
                waited_weeks: 0,
                declines: 0,
                vaccines: template.vaccines.clone(),
                centres: self.reach_ids[reach].clone(),
                ahead: template.ahead,
            },
        };
        candidate.pseudonym = self.pseudonym(person);
        candidate.waited_weeks = waiting::waited_weeks(time(arrival), time(drawn_at));
        candidate.declines = declines;
        Some(candidate)
    }

    /// Makes sure `profiles` holds the candidate the domain makes of anyone with this
    /// person's profile; returns its key there.
    fn template(&mut self, person: u32, drawn_at: i64) -> u64 {
        let key = self.profile_key(person);
        if !self.profiles.contains_key(&key) {
            let made = self.profile(person, drawn_at);
            self.profiles.insert(key, made);
        }
        key
    }

    /// What the domain's rule reads of a person, in one number.
    fn profile_key(&self, person: u32) -> u64 {
        let p = &self.people[person as usize];
        u64::from(p.group)
            | u64::from(p.birth_year as u16) << 8
            | u64::from(p.refuses) << 24
            | u64::from(p.area) << 32
            | u64::from(p.travel) << 48
    }

    fn profile(&self, person: u32, drawn_at: i64) -> Option<Candidate> {
        let p = &self.people[person as usize];
        let policy = self.scenario.policy_on(self.day_of(drawn_at)).0;
        let domain_person = DomainPerson {
            birth_year: i32::from(p.birth_year),
            priority_group: p.group,
            postcode: self.scenario.file.population.areas[usize::from(p.area)]
                .postcode
                .clone(),
            accepted_vaccines: self
                .vaccine_codes
                .iter()
                .enumerate()
                .filter(|(i, _)| p.refuses & (1 << i) == 0)
                .map(|(_, code)| code.clone())
                .collect(),
        };
        let centres = self.reach_ids[self.reach_index(p)].clone();
        let waiting = Waiting {
            pseudonym: self.pseudonym(person),
            verified_at: time(p.arrival),
            declines: p.declines,
            ahead: false,
            centres,
        };
        waiting::candidate(
            policy,
            &domain_person,
            waiting,
            time(drawn_at),
            self.today(drawn_at),
        )
    }

    fn reach_index(&self, p: &Person) -> usize {
        usize::from(p.area) * self.scenario.file.population.travel_km.len() + usize::from(p.travel)
    }

    fn today(&self, at: i64) -> NaiveDate {
        time(at).with_timezone(&self.scenario.timezone).date_naive()
    }

    /// Re-evaluates everyone waiting when what eligibility depends on changed: the policy in
    /// force, the groups released, the year (ages go by birth year).
    fn refresh_eligibility(&mut self, day: u32, at: i64) {
        let today = self.today(at);
        let (policy_index, policy) = self
            .scenario
            .policies
            .iter()
            .enumerate()
            .rev()
            .find(|(_, (from, _, _))| *from <= day)
            .map(|(i, (_, policy, _))| (i, policy))
            .expect("a policy from day 0");
        let released = policy
            .groups
            .iter()
            .filter(|g| g.released_on <= today)
            .fold(0u64, |mask, g| mask | 1 << (g.id % 64));
        let epoch = Some((policy_index, released, today.year()));
        if epoch == self.epoch {
            return;
        }
        self.epoch = epoch;
        self.profiles.clear();
        // Candidates whom the rule still makes the same candidate stay as they are, in their
        // order; the others leave the pool and enter again.
        let mut everyone: Vec<u32> = std::mem::take(&mut self.ineligible)
            .into_iter()
            .map(|(person, _)| person)
            .collect();
        let mut kept = 0;
        for i in 0..self.input.candidates.len() {
            let person = Sim::person_of(&self.input.candidates[i].pseudonym);
            let key = self.template(person, at);
            let candidate = &self.input.candidates[i];
            let same = self.profiles[&key].as_ref().is_some_and(|t| {
                t.vaccines == candidate.vaccines
                    && t.age_band == candidate.age_band
                    && t.centres == candidate.centres
            });
            if same {
                self.input.candidates.swap(kept, i);
                self.waits_of_pool.swap(kept, i);
                self.slot[person as usize] = kept as u32;
                kept += 1;
            } else {
                self.slot[person as usize] = u32::MAX;
                everyone.push(person);
            }
        }
        for left in self.input.candidates.drain(kept..) {
            self.pool_by_group[usize::from(left.group)] -= 1;
            self.spare_candidates.push(left);
        }
        self.waits_of_pool.truncate(kept);
        everyone.sort_unstable();
        for person in everyone {
            self.enter(person, at);
        }
    }

    /// One allocator tick at `at`: lapse offers, then draw.
    fn tick(&mut self, day: u32, sample: bool, at: i64, number: u64) -> Result<(), DrawError> {
        // Pending offers whose time is up lapse; their pairs and people return for this draw.
        let mut still = Vec::with_capacity(self.pending.len());
        for (person, pair, expires_at) in std::mem::take(&mut self.pending) {
            if self.people[person as usize].state != PersonState::Offered {
                continue;
            }
            if waiting::offer_lapsed(time(expires_at), time(at)) {
                self.end_offer(person, pair, OfferEnd::Lapsed, at);
            } else {
                still.push((person, pair, expires_at));
            }
        }
        self.pending = still;
        self.refresh_eligibility(day, at);
        // Pairs whose first appointment has begun can no longer be drawn.
        let passed: Vec<u32> = self
            .input
            .pairs
            .iter()
            .filter(|p| secs(p.first_at) <= at)
            .map(|p| p.id.as_u128() as u32)
            .collect();
        for pair in passed {
            self.close(pair);
            self.pairs[pair as usize].state = PairState::Unused;
            let first_at = self.pairs[pair as usize].first_at;
            self.recorder.unused(self.day_of(first_at));
        }
        let now = time(at);
        for (candidate, (arrival, weeks)) in self.input.candidates.iter_mut().zip(&mut self.waits_of_pool) {
            let waited = waiting::waited_weeks(*arrival, now);
            if waited != *weeks {
                *weeks = waited;
                candidate.waited_weeks = waited;
            }
        }
        self.input.drawn_at = time(at);
        let (policy, _) = self.scenario.policy_on(day);
        if sample {
            for (group, &count) in self.pool_by_group.iter().enumerate() {
                if count > 0 {
                    self.recorder.pool(day, group as u8, count);
                }
            }
            for &(_, group) in &self.ineligible {
                self.recorder.ineligible(day, group);
            }
        }
        if self.input.candidates.is_empty() || self.input.pairs.is_empty() {
            return Ok(());
        }
        let seed = draw_seed(self.options.seed, number);
        let (outcome, keys) = (self.options.draw)(policy, &seed, &self.input, self.options.audit)?;
        if self.options.audit {
            self.audit(policy, &keys, day);
        }
        self.envy(policy, &outcome, day);
        for unmatched in &outcome.unmatched {
            self.recorder.unmatched(day, unmatched.reason);
        }
        for m in &outcome.matches {
            let person = Sim::person_of(&m.pseudonym);
            let pair = m.pair.as_u128() as u32;
            self.leave(person);
            self.close(pair);
            self.pairs[pair as usize].state = PairState::Offered;
            let expires_at = secs(m.expires_at);
            let p = &mut self.people[person as usize];
            p.state = PersonState::Offered;
            p.offers += 1;
            let first = p.first_offer == i64::MIN;
            if first {
                p.first_offer = at;
            }
            let (group, arrival, offers, phone) = (p.group, p.arrival, p.offers, p.phone);
            self.recorder.offered(day, group, first.then_some(at - arrival));
            self.pending.push((person, pair, expires_at));
            // The answer, if it comes before the offer lapses.
            let conduct = self.scenario.file.behaviour.of(group);
            let mut stream = Stream::new(self.options.seed, u64::from(person), u64::from(offers));
            let factor = if phone {
                self.scenario.file.behaviour.phone_answer_factor
            } else {
                1.0
            };
            let answer_after = stream.exponential(conduct.answer_hours * factor * 3600.0) as i64;
            let accept = stream.uniform() < conduct.accept;
            if at + answer_after < expires_at {
                self.push_event(at + answer_after, Event::Answer { person, pair, accept });
            }
        }
        Ok(())
    }

    /// An offer ended without a booking: the person waits again, the pair is free again.
    fn end_offer(&mut self, person: u32, pair: u32, end: OfferEnd, at: i64) {
        let day = self.day_of(at);
        let group = self.people[person as usize].group;
        if waiting::counts_as_decline(end) {
            self.people[person as usize].declines += 1;
        }
        match end {
            OfferEnd::Lapsed => self.recorder.lapsed(day, group),
            _ => self.recorder.declined(day, group),
        }
        self.enter(person, at);
        self.free(pair, at);
    }

    fn free(&mut self, pair: u32, at: i64) {
        if self.pairs[pair as usize].first_at > at {
            self.open(pair);
        } else {
            self.pairs[pair as usize].state = PairState::Unused;
            self.recorder
                .unused(self.day_of(self.pairs[pair as usize].first_at));
        }
    }

    fn happen(&mut self, at: i64, event: Event) {
        let day = self.day_of(at);
        match event {
            Event::Answer { person, pair, accept } => {
                // Its entry in `pending` is dropped at the next tick: the person is no longer
                // `Offered` by then.
                if !accept {
                    self.end_offer(person, pair, OfferEnd::Declined, at);
                    return;
                }
                let p = &mut self.people[person as usize];
                p.state = PersonState::Booked;
                p.booked_at = at;
                let (group, arrival, offers) = (p.group, p.arrival, p.offers);
                let since = if p.eligible_since == i64::MIN {
                    arrival
                } else {
                    p.eligible_since
                };
                self.recorder.booked(day, group, at - arrival, at - since);
                self.pairs[pair as usize].state = PairState::Booked;
                let first_at = self.pairs[pair as usize].first_at;
                let conduct = self.scenario.file.behaviour.of(group);
                let mut stream =
                    Stream::new(self.options.seed ^ 0xb00c, u64::from(person), u64::from(offers));
                if stream.uniform() < conduct.cancel {
                    let when = at + ((first_at - at) as f64 * stream.uniform()) as i64;
                    self.push_event(when, Event::Cancel { person, pair });
                } else {
                    let shows = stream.uniform() >= conduct.no_show;
                    self.push_event(first_at, Event::Appointment { person, pair, shows });
                }
            }
            Event::Cancel { person, pair } => {
                self.recorder.cancelled(day, self.people[person as usize].group);
                self.enter(person, at);
                self.free(pair, at);
            }
            Event::Appointment { person, pair, shows } => {
                let (person_state, pair_state) = if shows {
                    (PersonState::Vaccinated, PairState::Used)
                } else {
                    (PersonState::NoShow, PairState::NoShow)
                };
                self.people[person as usize].state = person_state;
                self.pairs[pair as usize].state = pair_state;
                self.recorder.appointment(day, shows);
            }
        }
    }

    /// Counts the draw's offers that a better tier left unserved could have taken.
    fn envy(&mut self, policy: &Policy, outcome: &DrawOutcome, day: u32) {
        let envied = crate::envy::envied(policy, &self.input, outcome);
        for (m, envied) in outcome.matches.iter().zip(envied) {
            if envied {
                let group = self.people[Sim::person_of(&m.pseudonym) as usize].group;
                self.recorder.envy(day, group);
            }
        }
    }

    /// The bias tests `drawbridge audit` runs on recorded draws, on this draw: group weights,
    /// registration time (which the simulation knows), uniformity of the lottery numbers.
    fn audit(&mut self, policy: &Policy, keys: &[f64], day: u32) {
        let mut contenders = Vec::with_capacity(keys.len());
        let mut groups = Vec::with_capacity(keys.len());
        let mut arrivals = Vec::with_capacity(keys.len());
        for (c, &key) in self.input.candidates.iter().zip(keys) {
            let (Some(group), Some(weight)) = (policy.group(c.group), draw::weight(policy, c)) else {
                continue;
            };
            contenders.push(Contender {
                tier: group.tier,
                weight,
                key,
            });
            groups.push(usize::from(c.group));
            let person = Sim::person_of(&c.pseudonym);
            arrivals.push((self.people[person as usize].arrival, person));
        }
        let mut order: Vec<usize> = (0..arrivals.len()).collect();
        order.sort_by_key(|&i| arrivals[i]);
        let mut rank = vec![0; order.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r;
        }
        let results = [
            early_half_test("offer chances follow the group weights", &contenders, &groups),
            early_half_test(
                "registration time does not matter beyond the weights",
                &contenders,
                &quantile_cells(&rank, 5),
            ),
            uniformity_test(&contenders),
        ];
        let mut any = TestResult {
            name: "any of the tests".into(),
            statistic: 0.0,
            degrees_of_freedom: 0,
            critical_value: 0.0,
            passed: true,
        };
        for result in results.into_iter().flatten() {
            any.passed &= result.passed;
            self.recorder.audited(day, &result);
        }
        self.recorder.audited(day, &any);
    }

    fn finish(self, end: i64) -> RunResult {
        let mut people_states = FxHashMap::default();
        let mut waits: Vec<Vec<f64>> = vec![Vec::new(); self.recorder.groups.len()];
        let mut all_waits = Vec::new();
        for p in &self.people {
            *people_states.entry((p.group, p.state)).or_insert(0u64) += 1;
            if p.eligible_since != i64::MIN {
                let until = if p.booked_at != i64::MIN { p.booked_at } else { end };
                let wait = (until - p.eligible_since) as f64 / 86_400.0;
                if let Some(g) = self.recorder.groups.iter().position(|&g| g == p.group) {
                    waits[g].push(wait);
                }
                all_waits.push(wait);
            }
        }
        let mut pair_states = FxHashMap::default();
        for pair in &self.pairs {
            *pair_states.entry(pair.state).or_insert(0u64) += 1;
        }
        self.recorder.finish(
            self.scenario,
            self.options.seed,
            self.people.len() as u64,
            people_states,
            pair_states,
            waits,
            all_waits,
        )
    }
}

/// The seed of draw `number` of the run with seed `seed`.
pub fn draw_seed(seed: u64, number: u64) -> Seed {
    Seed::from_bytes(
        Sha256::new()
            .chain_update(b"drawbridge/simulation/draw/v1")
            .chain_update(seed.to_le_bytes())
            .chain_update(number.to_le_bytes())
            .finalize()
            .into(),
    )
}

/// Draws the population: arrival, group, birth year, home, travel distance, refusals, channel.
fn population(scenario: &Scenario, seed: u64, t0: i64, vaccines: &[String]) -> Vec<Person> {
    let pop = &scenario.file.population;
    let horizon = i64::from(scenario.file.days);
    let n = pop.size as usize;
    let cumulative = |shares: &mut dyn Iterator<Item = f64>| -> Vec<f64> {
        let mut total = 0.0;
        shares
            .map(|s| {
                total += s;
                total
            })
            .collect()
    };
    let group_cdf = cumulative(&mut pop.groups.iter().map(|g| g.share));
    let area_cdf = cumulative(&mut pop.areas.iter().map(|a| a.share));
    let travel_cdf = cumulative(&mut pop.travel_km.iter().map(|t| t.share));
    let arrival_cdf = cumulative(&mut pop.arrivals.iter().map(|a| a.share));
    let pick = |cdf: &[f64], u: f64| cdf.iter().position(|&c| u < c).unwrap_or(cdf.len() - 1);
    let refuse: Vec<f64> = vaccines
        .iter()
        .map(|v| pop.refuses.get(v).copied().unwrap_or(0.0))
        .collect();
    (0..n)
        .map(|i| {
            let mut s = Stream::new(seed ^ 0x706f_7075_6c61_7465, i as u64, 0);
            let g = pick(&group_cdf, s.uniform());
            let group = &pop.groups[g];
            let span = (group.born[1] - group.born[0] + 1) as f64;
            let birth_year = group.born[0] + (s.uniform() * span) as i32;
            let a = pick(&arrival_cdf, s.uniform());
            let from = i64::from(pop.arrivals[a].day);
            let to = pop
                .arrivals
                .get(a + 1)
                .map_or(horizon, |next| i64::from(next.day));
            let arrival = t0 + from * 86_400 + (s.uniform() * ((to - from).max(1) * 86_400) as f64) as i64;
            let mut refuses = 0u8;
            for (k, &share) in refuse.iter().enumerate().take(8) {
                if s.uniform() < share {
                    refuses |= 1 << k;
                }
            }
            Person {
                arrival,
                birth_year: birth_year as i16,
                group: group.id,
                area: pick(&area_cdf, s.uniform()) as u16,
                travel: pick(&travel_cdf, s.uniform()) as u8,
                refuses,
                phone: s.uniform() < pop.phone_share,
                state: PersonState::NotRegistered,
                declines: 0,
                offers: 0,
                eligible_since: i64::MIN,
                first_offer: i64::MIN,
                booked_at: i64::MIN,
            }
        })
        .collect()
}

/// The capacity batches: per supply line, appointment day and centre, the centre's share of
/// the day's pairs (largest remainder, so the day's total is exact), published `lead_days`
/// before the day, or `late_lead_days` when that centre-day's delivery is late.
fn schedule(scenario: &Scenario, seed: u64, t0: i64, vaccines: &[String]) -> Vec<Batch> {
    let file = &scenario.file;
    let mut batches = Vec::new();
    for (s, supply) in file.supply.iter().enumerate() {
        let vaccine = vaccines
            .iter()
            .position(|v| *v == supply.vaccine)
            .expect("checked") as u8;
        let second_after = scenario
            .policy_on(0)
            .0
            .vaccine(&supply.vaccine)
            .and_then(|v| v.interval_days)
            .map(|w| supply.second_dose_after_days.unwrap_or(u32::from(w.max)));
        let centres: Vec<usize> = (0..file.centres.len())
            .filter(|&c| gives(&file.centres[c], &supply.vaccine))
            .collect();
        let total: f64 = centres.iter().map(|&c| file.centres[c].size).sum();
        for day in supply.from_day..=supply.to_day.min(file.days.saturating_sub(1)) {
            let exact: Vec<f64> = centres
                .iter()
                .map(|&c| f64::from(supply.pairs_per_day) * file.centres[c].size / total)
                .collect();
            let mut counts: Vec<u32> = exact.iter().map(|e| e.floor() as u32).collect();
            let short = supply.pairs_per_day - counts.iter().sum::<u32>();
            let mut by_remainder: Vec<usize> = (0..centres.len()).collect();
            by_remainder.sort_by(|&a, &b| {
                (exact[b] - exact[b].floor())
                    .total_cmp(&(exact[a] - exact[a].floor()))
                    .then(a.cmp(&b))
            });
            for &k in by_remainder.iter().take(short as usize) {
                counts[k] += 1;
            }
            for (k, &c) in centres.iter().enumerate() {
                if counts[k] == 0 {
                    continue;
                }
                let mut stream = Stream::new(seed ^ 0x6c61_7465, (s as u64) << 32 | c as u64, u64::from(day));
                let lead = if stream.uniform() < supply.late_share {
                    supply.late_lead_days
                } else {
                    supply.lead_days
                };
                let publish_day = i64::from(day) - i64::from(lead);
                batches.push(Batch {
                    publish_at: t0 + publish_day * 86_400,
                    centre: c as u16,
                    vaccine,
                    day: file.start + Duration::days(day.into()),
                    count: counts[k],
                    second_after,
                });
            }
        }
    }
    batches.sort_by_key(|b| (b.publish_at, b.day, b.centre, b.vaccine));
    batches
}

/// One run of a scenario.
pub fn run(scenario: &Scenario, options: RunOptions, progress: &dyn Fn(u32)) -> Result<RunResult, DrawError> {
    Sim::new(scenario, options).run(progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_german_state_registers_near_37000_an_hour_at_its_peak_at_full_scale() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/bw-spring-2021.toml");
        let mut scenario = Scenario::load(&path).expect("a valid scenario");
        let sample = 100_000;
        scenario.scale_population(sample);
        let sim = Sim::new(&scenario, RunOptions::new(1));
        let mut per_hour: FxHashMap<i64, u64> = FxHashMap::default();
        for p in sim.people.iter().filter(|p| p.arrival >= sim.t0) {
            *per_hour.entry((p.arrival - sim.t0) / 3600).or_default() += 1;
        }
        let peak = per_hour.values().copied().max().unwrap_or(0);
        // The scenario is the state at one in eleven.
        let full_scale = peak as f64 * (11_000_000 / sample) as f64;
        assert!(
            (33_000.0..41_000.0).contains(&full_scale),
            "{full_scale:.0} an hour"
        );
    }
}
