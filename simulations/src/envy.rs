//! Envy between tiers within one draw: an offer made to someone whom a person of a better
//! (lower-numbered) tier, left without any offer by the same draw, could have taken: they
//! accept the pair's vaccine (it is in their candidate list) and reach its centre. Strict
//! tiers never do this by themselves; reserves, and anything that breaks the order, do.

use drawbridge_domain::draw::{DrawInput, DrawOutcome, Pseudonym};
use drawbridge_domain::Policy;
use rustc_hash::{FxHashMap, FxHashSet};

/// For each offer of `outcome`, in order: whether it is envied.
pub fn envied(policy: &Policy, input: &DrawInput, outcome: &DrawOutcome) -> Vec<bool> {
    let tier = |group: u8| policy.group(group).map_or(u32::MAX, |g| g.tier);
    let by_pseudonym: FxHashMap<Pseudonym, usize> = input
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.pseudonym, i))
        .collect();
    let pairs: FxHashMap<uuid::Uuid, (&str, &str)> = input
        .pairs
        .iter()
        .map(|p| (p.id, (p.centre.as_str(), p.vaccine.as_str())))
        .collect();
    let tier_of_match = |m: &drawbridge_domain::Match| {
        by_pseudonym
            .get(&m.pseudonym)
            .map_or(u32::MAX, |&i| tier(input.candidates[i].group))
    };
    let Some(worst) = outcome.matches.iter().map(tier_of_match).max() else {
        return Vec::new();
    };
    let served: FxHashSet<Pseudonym> = outcome.matches.iter().map(|m| m.pseudonym).collect();
    // Per (centre, vaccine): the best tier left unserved who could use it.
    let mut best: FxHashMap<(&str, &str), u32> = FxHashMap::default();
    for c in &input.candidates {
        let t = tier(c.group);
        if t >= worst || served.contains(&c.pseudonym) {
            continue;
        }
        for centre in &c.centres {
            for vaccine in &c.vaccines {
                let cell = best.entry((centre.as_str(), vaccine.as_str())).or_insert(u32::MAX);
                *cell = (*cell).min(t);
            }
        }
    }
    outcome
        .matches
        .iter()
        .map(|m| {
            let shelf = pairs.get(&m.pair).copied();
            shelf
                .and_then(|shelf| best.get(&shelf))
                .is_some_and(|&better| better < tier_of_match(m))
        })
        .collect()
}
