//! Property tests of retention (contract section 2): which old versions a policy purges.

use std::collections::BTreeSet;

use conflux_domain::{
    RetentionKind, RetentionPolicy, RetentionRule, RetentionStrategy, UnixMillis, VersionId,
    versions_to_purge,
};
use proptest::prelude::*;

const DAY: u64 = 86_400_000;
const T0: u64 = 1_700_000_000_000;

fn policy(strategy: RetentionStrategy, rules: &[(RetentionKind, u64)]) -> RetentionPolicy {
    RetentionPolicy {
        strategy,
        rules: rules
            .iter()
            .map(|&(kind, keep)| RetentionRule { kind, keep })
            .collect(),
    }
}

/// A config's history: ascending version numbers (with gaps where earlier purges ran),
/// non-decreasing creation times, the latest version, the versions release rules use, and
/// the time of the decision.
#[derive(Debug, Clone)]
struct History {
    versions: Vec<(VersionId, UnixMillis)>,
    latest: VersionId,
    referenced: BTreeSet<VersionId>,
    now: UnixMillis,
}

fn arb_history() -> impl Strategy<Value = History> {
    (
        prop::collection::vec((1u64..4, 0u64..3 * DAY), 0..25),
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        0u64..15 * DAY,
    )
        .prop_map(|(steps, refs, after)| {
            let mut versions = Vec::new();
            let (mut v, mut t) = (0u64, T0);
            for (gap, dt) in steps {
                v += gap;
                t += dt;
                versions.push((v, t));
            }
            let referenced = if versions.is_empty() {
                BTreeSet::new()
            } else {
                refs.iter()
                    .map(|i| versions[i.index(versions.len())].0)
                    .collect()
            };
            History {
                latest: versions.last().map_or(0, |&(v, _)| v),
                now: t + after,
                versions,
                referenced,
            }
        })
}

fn arb_rule() -> impl Strategy<Value = RetentionRule> {
    (
        prop_oneof![Just(RetentionKind::Count), Just(RetentionKind::Days)],
        1u64..12,
    )
        .prop_map(|(kind, keep)| RetentionRule { kind, keep })
}

fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
    (
        prop_oneof![Just(RetentionStrategy::And), Just(RetentionStrategy::Or)],
        prop::collection::vec(arb_rule(), 1..5),
    )
        .prop_map(|(strategy, rules)| RetentionPolicy { strategy, rules })
}

fn purge(p: &RetentionPolicy, h: &History) -> Vec<VersionId> {
    versions_to_purge(p, &h.versions, h.latest, &h.referenced, h.now)
}

/// Versions one rule keeps, by an independent reading of the contract: a count rule keeps
/// the newest `keep` versions, a days rule those created less than `keep` days ago.
fn model_keeps(rule: &RetentionRule, h: &History) -> BTreeSet<VersionId> {
    let n = h.versions.len();
    h.versions
        .iter()
        .enumerate()
        .filter(|&(pos, &(_, created))| match rule.kind {
            RetentionKind::Count => (n - pos) as u64 <= rule.keep,
            RetentionKind::Days => h.now.saturating_sub(created) < rule.keep * DAY,
        })
        .map(|(_, &(v, _))| v)
        .collect()
}

fn all_versions(h: &History) -> BTreeSet<VersionId> {
    h.versions.iter().map(|&(v, _)| v).collect()
}

fn protected(h: &History) -> BTreeSet<VersionId> {
    let mut p = h.referenced.clone();
    if h.latest != 0 {
        p.insert(h.latest);
    }
    p
}

proptest! {
    #[test]
    fn output_is_ascending_and_a_subset_of_the_input(p in arb_policy(), h in arb_history()) {
        let out = purge(&p, &h);
        prop_assert!(out.windows(2).all(|w| w[0] < w[1]), "ascending, no duplicates: {:?}", out);
        let all = all_versions(&h);
        prop_assert!(out.iter().all(|v| all.contains(v)), "{:?} not all in {:?}", out, all);
    }

    #[test]
    fn latest_and_referenced_versions_are_never_purged(p in arb_policy(), h in arb_history()) {
        let out: BTreeSet<_> = purge(&p, &h).into_iter().collect();
        prop_assert!(!out.contains(&h.latest), "latest {} purged", h.latest);
        let hit: Vec<_> = out.intersection(&h.referenced).collect();
        prop_assert!(hit.is_empty(), "referenced versions purged: {:?}", hit);
    }

    /// "and": kept only if every rule keeps it, i.e. the kept set is the intersection of
    /// what each rule alone keeps; "or": the union. Latest and referenced always stay.
    #[test]
    fn strategies_combine_single_rules(p in arb_policy(), h in arb_history()) {
        let all = all_versions(&h);
        let alone: Vec<BTreeSet<VersionId>> = p
            .rules
            .iter()
            .map(|r| {
                let single = RetentionPolicy { strategy: p.strategy, rules: vec![*r] };
                let purged: BTreeSet<_> = purge(&single, &h).into_iter().collect();
                all.difference(&purged).copied().collect()
            })
            .collect();
        let combined: BTreeSet<VersionId> = match p.strategy {
            RetentionStrategy::And => alone
                .iter()
                .fold(all.clone(), |acc, k| acc.intersection(k).copied().collect()),
            RetentionStrategy::Or => alone.iter().flatten().copied().collect(),
        };
        let kept: BTreeSet<VersionId> = combined.union(&protected(&h)).copied().collect();
        let expected: Vec<VersionId> = all.difference(&kept).copied().collect();
        prop_assert_eq!(purge(&p, &h), expected);
    }

    /// The whole decision against the independent model.
    #[test]
    fn purge_matches_the_reference_model(p in arb_policy(), h in arb_history()) {
        let keeps: Vec<BTreeSet<VersionId>> = p.rules.iter().map(|r| model_keeps(r, &h)).collect();
        let prot = protected(&h);
        let expected: Vec<VersionId> = h
            .versions
            .iter()
            .map(|&(v, _)| v)
            .filter(|v| !prot.contains(v))
            .filter(|v| match p.strategy {
                RetentionStrategy::And => !keeps.iter().all(|k| k.contains(v)),
                RetentionStrategy::Or => !keeps.iter().any(|k| k.contains(v)),
            })
            .collect();
        prop_assert_eq!(purge(&p, &h), expected);
    }

    #[test]
    fn count_keeps_exactly_the_newest_n(
        n in 1u64..15,
        h in arb_history(),
        strategy in prop_oneof![Just(RetentionStrategy::And), Just(RetentionStrategy::Or)],
    ) {
        let h = History { referenced: BTreeSet::new(), ..h };
        let p = policy(strategy, &[(RetentionKind::Count, n)]);
        let out = purge(&p, &h);
        let ids: Vec<VersionId> = h.versions.iter().map(|&(v, _)| v).collect();
        let cut = ids.len().saturating_sub(n as usize);
        prop_assert_eq!(&out[..], &ids[..cut]);
        prop_assert_eq!(ids.len() - out.len(), ids.len().min(n as usize));
    }

    #[test]
    fn count_with_references_keeps_the_newest_n_and_the_referenced(
        n in 1u64..15,
        h in arb_history(),
    ) {
        let p = policy(RetentionStrategy::And, &[(RetentionKind::Count, n)]);
        let ids: Vec<VersionId> = h.versions.iter().map(|&(v, _)| v).collect();
        let cut = ids.len().saturating_sub(n as usize);
        let expected: Vec<VersionId> =
            ids[..cut].iter().copied().filter(|v| !h.referenced.contains(v)).collect();
        prop_assert_eq!(purge(&p, &h), expected);
    }

    #[test]
    fn days_keep_versions_younger_than_n_days(
        n in 1u64..12,
        h in arb_history(),
        strategy in prop_oneof![Just(RetentionStrategy::And), Just(RetentionStrategy::Or)],
    ) {
        let p = policy(strategy, &[(RetentionKind::Days, n)]);
        let prot = protected(&h);
        let expected: Vec<VersionId> = h
            .versions
            .iter()
            .filter(|&&(v, created)| !prot.contains(&v) && h.now - created >= n * DAY)
            .map(|&(v, _)| v)
            .collect();
        prop_assert_eq!(purge(&p, &h), expected);
    }

    #[test]
    fn a_policy_without_rules_keeps_everything(
        h in arb_history(),
        strategy in prop_oneof![Just(RetentionStrategy::And), Just(RetentionStrategy::Or)],
    ) {
        let empty = RetentionPolicy { strategy, rules: vec![] };
        prop_assert_eq!(purge(&empty, &h), Vec::<VersionId>::new());
    }

    /// Adding a rule to an "and" policy never keeps more; to an "or" policy never keeps less.
    #[test]
    fn adding_a_rule_is_monotonic(p in arb_policy(), extra in arb_rule(), h in arb_history()) {
        let before: BTreeSet<_> = purge(&p, &h).into_iter().collect();
        let mut more = p.clone();
        more.rules.push(extra);
        let after: BTreeSet<_> = purge(&more, &h).into_iter().collect();
        match p.strategy {
            RetentionStrategy::And => prop_assert!(after.is_superset(&before)),
            RetentionStrategy::Or => prop_assert!(after.is_subset(&before)),
        }
    }
}

#[test]
fn examples() {
    // v1..v6, one per day; decided at day 10.
    let versions: Vec<_> = (1..=6).map(|v| (v, T0 + v * DAY)).collect();
    let now = T0 + 10 * DAY;
    let none = BTreeSet::new();
    let run =
        |p: &RetentionPolicy, refs: &BTreeSet<u64>| versions_to_purge(p, &versions, 6, refs, now);

    let count3 = policy(RetentionStrategy::And, &[(RetentionKind::Count, 3)]);
    assert_eq!(run(&count3, &none), vec![1, 2, 3]);
    assert_eq!(run(&count3, &BTreeSet::from([2])), vec![1, 3]);

    // Ages: v1 9 days ... v6 4 days. "younger than 6 days" keeps v5 and v6; v4 is exactly 6.
    let days6 = policy(RetentionStrategy::And, &[(RetentionKind::Days, 6)]);
    assert_eq!(run(&days6, &none), vec![1, 2, 3, 4]);

    let both = [(RetentionKind::Count, 3), (RetentionKind::Days, 6)];
    assert_eq!(
        run(&policy(RetentionStrategy::And, &both), &none),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        run(&policy(RetentionStrategy::Or, &both), &none),
        vec![1, 2, 3]
    );

    // Only the latest survives a count of 1, even if it is old.
    let count1 = policy(RetentionStrategy::Or, &[(RetentionKind::Count, 1)]);
    assert_eq!(run(&count1, &none), vec![1, 2, 3, 4, 5]);
    let days1 = policy(RetentionStrategy::Or, &[(RetentionKind::Days, 1)]);
    assert_eq!(run(&days1, &BTreeSet::from([1, 3])), vec![2, 4, 5]);

    // Boundary: one millisecond under N days is kept, exactly N days is not.
    let vs = [(1, now - 2 * DAY + 1), (2, now - 2 * DAY), (3, now)];
    let days2 = policy(RetentionStrategy::And, &[(RetentionKind::Days, 2)]);
    assert_eq!(versions_to_purge(&days2, &vs, 3, &none, now), vec![2]);
    // A version stamped after `now` (clock skew) is zero days old, so kept.
    let vs = [(1, now + DAY), (2, now + DAY)];
    assert!(versions_to_purge(&days2, &vs, 2, &none, now).is_empty());
    // Nothing to decide about.
    assert!(versions_to_purge(&count1, &[], 0, &none, now).is_empty());
}

/// The policy's JSON shape is the API's: `{"strategy": "and"|"or", "rules": [{"type":
/// "count"|"days", "keep": N}]}`, and unknown fields are rejected.
#[test]
fn policy_wire_shape() {
    let p: RetentionPolicy = serde_json::from_str(
        r#"{"strategy": "or", "rules": [{"type": "count", "keep": 10}, {"type": "days", "keep": 30}]}"#,
    )
    .unwrap();
    assert_eq!(
        p,
        policy(
            RetentionStrategy::Or,
            &[(RetentionKind::Count, 10), (RetentionKind::Days, 30)]
        )
    );
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        serde_json::json!({"strategy": "or", "rules": [{"type": "count", "keep": 10}, {"type": "days", "keep": 30}]})
    );
    for bad in [
        r#"{"strategy": "xor", "rules": []}"#,
        r#"{"strategy": "and", "rules": [{"type": "weeks", "keep": 1}]}"#,
        r#"{"strategy": "and", "rules": [{"type": "count", "keep": 1, "extra": 1}]}"#,
        r#"{"strategy": "and", "rules": [], "extra": 1}"#,
        r#"{"strategy": "and", "rules": [{"type": "count", "keep": -1}]}"#,
    ] {
        assert!(
            serde_json::from_str::<RetentionPolicy>(bad).is_err(),
            "{bad}"
        );
    }
}
