//! Envy between tiers within one draw: an offer made to someone whom a person of a better
//! (lower-numbered) tier, left without any offer by the same draw, could have taken: they
//! accept the pair's vaccine (it is in their candidate list) and reach its centre. Strict
//! tiers never do this by themselves; reserves, and anything that breaks the order, do.

use drawbridge_domain::allocation::draw::{DrawInput, DrawOutcome, Pseudonym};
use drawbridge_domain::Policy;
use rustc_hash::{FxHashMap, FxHashSet};

/// For each offer of `outcome`, in order: whether it is envied.
pub fn envied(policy: &Policy, input: &DrawInput, outcome: &DrawOutcome) -> Vec<bool> {
    let tier = |group: u8| policy.group(group).map_or(u32::MAX, |g| g.tier);
    let lowest = policy.groups.iter().map(|g| g.tier).max().unwrap_or(0);
    let served: FxHashSet<Pseudonym> = outcome.matches.iter().map(|m| m.pseudonym).collect();
    // One pass: the tiers of those served, and who else might envy them (not the last tier).
    let mut tier_of: FxHashMap<Pseudonym, u32> = FxHashMap::default();
    let mut others = Vec::new();
    for c in &input.candidates {
        let t = tier(c.group);
        if served.contains(&c.pseudonym) {
            tier_of.insert(c.pseudonym, t);
        } else if t < lowest {
            others.push((t, c));
        }
    }
    let tier_of_match = |m: &drawbridge_domain::Match| tier_of.get(&m.pseudonym).copied().unwrap_or(u32::MAX);
    let Some(worst) = outcome.matches.iter().map(tier_of_match).max() else {
        return Vec::new();
    };
    // Per (centre, vaccine): the best tier left unserved who could use it.
    let mut best: FxHashMap<(&str, &str), u32> = FxHashMap::default();
    for (t, c) in others {
        if t >= worst {
            continue;
        }
        for centre in &c.centres {
            for vaccine in &c.vaccines {
                let cell = best
                    .entry((centre.as_str(), vaccine.as_str()))
                    .or_insert(u32::MAX);
                *cell = (*cell).min(t);
            }
        }
    }
    if best.is_empty() {
        return vec![false; outcome.matches.len()];
    }
    let pairs: FxHashMap<uuid::Uuid, (&str, &str)> = input
        .pairs
        .iter()
        .map(|p| (p.id, (p.centre.as_str(), p.vaccine.as_str())))
        .collect();
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
