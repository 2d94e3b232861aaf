//! Replaying what happened: published draw manifests (as `GET /v1/draws/{id}/manifest`
//! serves them) are checked, measured for fairness, and re-drawn under another policy — the
//! same recorded pool, pairs and seed, other rules: a counterfactual of the real draw.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use drawbridge_domain::allocation::draw::{self, unhex, Manifest, Seed};
use drawbridge_domain::allocation::fairness::{
    early_half_test, quantile_cells, uniformity_test, Contender, TestResult,
};
use drawbridge_domain::Policy;
use serde::Serialize;
use uuid::Uuid;

use crate::envy::envied;

/// One recorded draw, replayed and measured.
#[derive(Debug, Clone, Serialize)]
pub struct DrawReplay {
    /// The draw.
    pub draw: Uuid,
    /// Its region.
    pub region: String,
    /// When it ran.
    pub drawn_at: String,
    /// True when the replay reproduced every recorded figure.
    pub reproduced: bool,
    /// What did not check out.
    pub problems: Vec<String>,
    /// The bias tests of `drawbridge audit` that had enough candidates: group weights,
    /// waiting time (the manifest's stand-in for registration time), uniformity.
    pub tests: Vec<TestResult>,
    /// Per priority group.
    pub groups: Vec<ReplayGroup>,
    /// The counterfactual policy's file, when one was given.
    pub counterfactual_policy: Option<String>,
    /// Candidates whose offer (which pair, or none) differs under the counterfactual.
    pub counterfactual_changed: Option<u64>,
}

/// One group in one recorded draw.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayGroup {
    /// The group.
    pub group: u8,
    /// Candidates of the group.
    pub pool: u64,
    /// Offers they got.
    pub offers: u64,
    /// offers / pool.
    pub offer_rate: f64,
    /// Their offers that a better tier left unserved could have taken.
    pub envy: u64,
    /// Offers under the counterfactual policy.
    pub counterfactual_offers: Option<u64>,
    /// Envied offers under the counterfactual policy.
    pub counterfactual_envy: Option<u64>,
}

/// Reads every `*.json` manifest in `dir`, in file-name order.
pub fn load_manifests(dir: &Path) -> anyhow::Result<Vec<Manifest>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)?;
            serde_json::from_str(&text).with_context(|| format!("{} is not a draw manifest", path.display()))
        })
        .collect()
}

/// Replays and measures one manifest; with `other`, also re-draws it under that policy.
pub fn replay(manifest: &Manifest, other: Option<(&Policy, &str)>) -> DrawReplay {
    let verdict = manifest.replay();
    let mut result = DrawReplay {
        draw: manifest.draw,
        region: manifest.region.clone(),
        drawn_at: manifest.drawn_at.to_rfc3339(),
        reproduced: verdict.reproduced(),
        problems: verdict.problems,
        tests: Vec::new(),
        groups: Vec::new(),
        counterfactual_policy: other.map(|(_, name)| name.to_owned()),
        counterfactual_changed: None,
    };
    let Ok(policy) = Policy::from_published(&manifest.policy) else {
        return result;
    };
    let input = manifest.input();
    let outcome = draw::DrawOutcome {
        matches: manifest.matches.clone(),
        unmatched: manifest.unmatched.clone(),
    };
    result.tests = bias_tests(&policy, manifest);
    let mut groups: BTreeMap<u8, ReplayGroup> = BTreeMap::new();
    let group_of: rustc_hash::FxHashMap<_, u8> =
        input.candidates.iter().map(|c| (c.pseudonym, c.group)).collect();
    for c in &input.candidates {
        groups
            .entry(c.group)
            .or_insert_with(|| ReplayGroup {
                group: c.group,
                pool: 0,
                offers: 0,
                offer_rate: 0.0,
                envy: 0,
                counterfactual_offers: other.map(|_| 0),
                counterfactual_envy: other.map(|_| 0),
            })
            .pool += 1;
    }
    for (m, envied) in outcome.matches.iter().zip(envied(&policy, &input, &outcome)) {
        if let Some(g) = group_of.get(&m.pseudonym).and_then(|g| groups.get_mut(g)) {
            g.offers += 1;
            g.envy += u64::from(envied);
        }
    }
    if let (Some((other_policy, _)), Some(seed)) = (other, unhex(&manifest.seed)) {
        let seed = Seed::from_bytes(seed.try_into().unwrap_or([0; 32]));
        match draw::draw(other_policy, &seed, &input) {
            Ok(counterfactual) => {
                for (m, envied) in
                    counterfactual
                        .matches
                        .iter()
                        .zip(envied(other_policy, &input, &counterfactual))
                {
                    if let Some(g) = group_of.get(&m.pseudonym).and_then(|g| groups.get_mut(g)) {
                        *g.counterfactual_offers.get_or_insert(0) += 1;
                        *g.counterfactual_envy.get_or_insert(0) += u64::from(envied);
                    }
                }
                let recorded: rustc_hash::FxHashMap<_, _> =
                    outcome.matches.iter().map(|m| (m.pseudonym, m.pair)).collect();
                let other: rustc_hash::FxHashMap<_, _> = counterfactual
                    .matches
                    .iter()
                    .map(|m| (m.pseudonym, m.pair))
                    .collect();
                let changed = input
                    .candidates
                    .iter()
                    .filter(|c| recorded.get(&c.pseudonym) != other.get(&c.pseudonym))
                    .count();
                result.counterfactual_changed = Some(changed as u64);
            }
            Err(error) => result.problems.push(format!(
                "the counterfactual policy cannot draw this pool: {error}"
            )),
        }
    }
    for g in groups.values_mut() {
        g.offer_rate = crate::metrics::ratio(g.offers, g.pool);
    }
    result.groups = groups.into_values().collect();
    result
}

/// The audit's bias tests on a manifest's recorded keys.
pub fn bias_tests(policy: &Policy, manifest: &Manifest) -> Vec<TestResult> {
    let mut contenders = Vec::new();
    let mut groups = Vec::new();
    let mut waited = Vec::new();
    for c in &manifest.candidates {
        let (Some(group), Some(weight)) = (
            policy.group(c.candidate.group),
            draw::weight(policy, &c.candidate),
        ) else {
            continue;
        };
        contenders.push(Contender {
            tier: group.tier,
            weight,
            key: c.lottery_key.value(),
        });
        groups.push(usize::from(c.candidate.group));
        waited.push((std::cmp::Reverse(c.candidate.waited_weeks), c.candidate.pseudonym));
    }
    let mut order: Vec<usize> = (0..waited.len()).collect();
    order.sort_by_key(|&i| waited[i]);
    let mut rank = vec![0; order.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    [
        early_half_test("offer chances follow the group weights", &contenders, &groups),
        early_half_test(
            "waiting time does not matter beyond the weights",
            &contenders,
            &quantile_cells(&rank, 5),
        ),
        uniformity_test(&contenders),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The per-group rows of all replays, as CSV.
pub fn csv(replays: &[DrawReplay]) -> String {
    let mut text = String::from(
        "draw,drawn_at,reproduced,group,pool,offers,offer_rate,envy,counterfactual_offers,counterfactual_envy\n",
    );
    for r in replays {
        for g in &r.groups {
            let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
            text.push_str(&format!(
                "{},{},{},{},{},{},{:?},{},{},{}\n",
                r.draw,
                r.drawn_at,
                r.reproduced,
                g.group,
                g.pool,
                g.offers,
                g.offer_rate,
                g.envy,
                opt(g.counterfactual_offers),
                opt(g.counterfactual_envy)
            ));
        }
    }
    text
}
