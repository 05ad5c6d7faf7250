//! Data-driven and property tests of release-rule resolution (contract section 3):
//! ordering, subset matching, the default rule, percentage buckets and client-label limits.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use conflux_domain::{
    ClientLabels, ConfigId, ReleaseRule, bucket, order_rules, resolve, resolve_ordered,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

// ---- helpers ------------------------------------------------------------------------------

fn rule(
    labels: &[(&str, &str)],
    percent: Option<u8>,
    version_id: u64,
    priority: i32,
) -> ReleaseRule {
    ReleaseRule {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        percent,
        version_id,
        priority,
    }
}

fn client(labels: &BTreeMap<String, String>, id: Option<&str>) -> ClientLabels {
    ClientLabels::from_pairs(labels.iter(), id).expect("generated client labels are valid")
}

/// The bucket as documented: first 8 bytes of SHA-256("{config_id}:{client_id}"), big
/// endian, modulo 100. Written independently of the crate.
fn reference_bucket(config_id: ConfigId, client_id: &str) -> u8 {
    let digest = Sha256::digest(format!("{config_id}:{client_id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

/// Reference model of one rule matching a client: subset match of labels, then the percent
/// bucket (which needs a client id).
fn model_matches(
    config_id: ConfigId,
    rule: &ReleaseRule,
    labels: &BTreeMap<String, String>,
    client_id: Option<&str>,
) -> bool {
    rule.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        && match rule.percent {
            None => true,
            Some(p) => client_id.is_some_and(|id| reference_bucket(config_id, id) < p),
        }
}

/// Reference model of resolution: among the matching rules, the one with the highest
/// (priority, number of labels, earliest position).
fn model_resolve(
    config_id: ConfigId,
    rules: &[ReleaseRule],
    labels: &BTreeMap<String, String>,
    client_id: Option<&str>,
) -> Option<usize> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| model_matches(config_id, r, labels, client_id))
        .max_by_key(|(i, r)| (r.priority, r.labels.len(), Reverse(*i)))
        .map(|(i, _)| i)
}

const KEYS: &[&str] = &["env", "region", "canary", "tier"];
// "A" and "a" differ: values are compared byte-exact.
const VALUES: &[&str] = &["a", "b", "A"];

fn arb_rule_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(KEYS).prop_map(str::to_owned),
        prop::sample::select(VALUES).prop_map(str::to_owned),
        0..=3,
    )
}

fn arb_rule() -> impl Strategy<Value = ReleaseRule> {
    (
        arb_rule_labels(),
        prop::option::weighted(0.35, 0u8..=100),
        1u64..10,
        -2i32..=2,
    )
        .prop_map(|(labels, percent, version_id, priority)| ReleaseRule {
            labels,
            percent,
            version_id,
            priority,
        })
}

fn arb_rules() -> impl Strategy<Value = Vec<ReleaseRule>> {
    prop::collection::vec(arb_rule(), 0..12)
}

/// A valid list: exactly one default rule, at a random position.
fn arb_valid_rules() -> impl Strategy<Value = Vec<ReleaseRule>> {
    (
        prop::collection::vec(arb_rule(), 0..12),
        any::<prop::sample::Index>(),
        -3i32..=3,
        1u64..10,
    )
        .prop_map(|(rules, at, priority, version)| {
            let mut rules: Vec<ReleaseRule> =
                rules.into_iter().filter(|r| !r.is_default()).collect();
            let pos = at.index(rules.len() + 1);
            let mut default = ReleaseRule::default_to(version);
            default.priority = priority;
            rules.insert(pos, default);
            rules
        })
}

fn arb_client_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(&["env", "region", "canary", "tier", "zone", "host"][..])
            .prop_map(str::to_owned),
        prop::sample::select(VALUES).prop_map(str::to_owned),
        0..=6,
    )
}

fn arb_client_id() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[a-z0-9-]{1,12}")
}

// ---- determinism and ordering ------------------------------------------------------------

proptest! {
    #[test]
    fn resolution_is_deterministic_and_equals_resolve_ordered(
        config_id in 0u64..1_000,
        rules in arb_rules(),
        labels in arb_client_labels(),
        id in arb_client_id(),
    ) {
        let c = client(&labels, id.as_deref());
        let a = resolve(config_id, &rules, &c);
        let b = resolve(config_id, &rules, &c.clone());
        prop_assert_eq!(a, b);
        let order = order_rules(&rules);
        prop_assert_eq!(a, resolve_ordered(config_id, &rules, &order, &c));
        if let Some(r) = a {
            prop_assert!(std::ptr::eq(r.rule, &rules[r.index]), "rule is rules[index]");
        }
    }

    #[test]
    fn resolution_matches_the_reference_model(
        config_id in 0u64..1_000,
        rules in arb_rules(),
        labels in arb_client_labels(),
        id in arb_client_id(),
    ) {
        let c = client(&labels, id.as_deref());
        let got = resolve(config_id, &rules, &c).map(|r| r.index);
        let want = model_resolve(config_id, &rules, &labels, id.as_deref());
        prop_assert_eq!(got, want, "rules: {:?}", rules);
    }

    #[test]
    fn order_is_priority_desc_then_more_labels_then_position(rules in arb_rules()) {
        let order = order_rules(&rules);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..rules.len()).collect::<Vec<_>>(), "a permutation");
        let mut expected: Vec<usize> = (0..rules.len()).collect();
        expected.sort_by_key(|&i| (Reverse(rules[i].priority), Reverse(rules[i].labels.len()), i));
        prop_assert_eq!(order, expected);
    }

    /// A precomputed order stays valid while the rules do not change, whatever client asks.
    #[test]
    fn one_order_serves_every_client(
        config_id in 0u64..1_000,
        rules in arb_valid_rules(),
        clients in prop::collection::vec((arb_client_labels(), arb_client_id()), 1..8),
    ) {
        let order = order_rules(&rules);
        for (labels, id) in &clients {
            let c = client(labels, id.as_deref());
            prop_assert_eq!(
                resolve_ordered(config_id, &rules, &order, &c),
                resolve(config_id, &rules, &c)
            );
        }
    }
}

#[test]
fn ordering_examples() {
    let base = ClientLabels::from_pairs([("env", "prod"), ("region", "eu")], Some("h1")).unwrap();
    // Priority beats label count.
    let rules = vec![
        rule(&[], None, 1, 0),
        rule(&[("env", "prod"), ("region", "eu")], None, 2, 5),
        rule(&[("env", "prod")], None, 3, 10),
    ];
    assert_eq!(resolve(1, &rules, &base).unwrap().index, 2);
    // Equal priority: more labels first.
    let rules = vec![
        rule(&[], None, 1, 0),
        rule(&[("env", "prod")], None, 3, 10),
        rule(&[("env", "prod"), ("region", "eu")], None, 2, 10),
    ];
    assert_eq!(resolve(1, &rules, &base).unwrap().index, 2);
    // Equal priority and label count: list position.
    let rules = vec![
        rule(&[], None, 1, 0),
        rule(&[("region", "eu")], None, 3, 10),
        rule(&[("env", "prod")], None, 2, 10),
    ];
    assert_eq!(resolve(1, &rules, &base).unwrap().index, 1);
    // A negative-priority labelled rule loses against the default at priority 0.
    let rules = vec![rule(&[("env", "prod")], None, 2, -1), rule(&[], None, 1, 0)];
    assert_eq!(resolve(1, &rules, &base).unwrap().index, 1);
    // Empty list: nothing (fetch answers not_published).
    assert_eq!(resolve(1, &[], &base), None);
}

// ---- subset matching ---------------------------------------------------------------------

proptest! {
    #[test]
    fn a_rule_matches_iff_its_labels_are_a_subset(
        config_id in 0u64..1_000,
        rule_labels in arb_rule_labels(),
        labels in arb_client_labels(),
        id in arb_client_id(),
    ) {
        let r = ReleaseRule { labels: rule_labels.clone(), percent: None, version_id: 1, priority: 0 };
        let rules = [r];
        let subset = rule_labels.iter().all(|(k, v)| labels.get(k) == Some(v));
        let c = client(&labels, id.as_deref());
        prop_assert_eq!(resolve(config_id, &rules, &c).is_some(), subset);
    }

    #[test]
    fn extra_client_labels_are_ignored(
        rule_labels in arb_rule_labels(),
        extra in prop::collection::btree_map("x[a-z0-9]{0,6}", "[ -~]{0,10}", 0..10),
        id in arb_client_id(),
    ) {
        let mut labels = extra;
        labels.extend(rule_labels.clone());
        let rules = [ReleaseRule { labels: rule_labels, percent: None, version_id: 1, priority: 0 }];
        prop_assert!(resolve(3, &rules, &client(&labels, id.as_deref())).is_some());
    }

    /// Values are compared byte-exact: changing the case of one value breaks the match,
    /// while header keys are lower-cased and values trimmed before comparing.
    #[test]
    fn values_are_case_sensitive_keys_are_not(
        rule_labels in prop::collection::btree_map("[a-z][a-z0-9_]{0,8}", "[a-z]{1,8}", 1..4),
        which in any::<prop::sample::Index>(),
    ) {
        let rules = [ReleaseRule { labels: rule_labels.clone(), percent: None, version_id: 1, priority: 0 }];
        // Header spelling: upper-case keys, padded values.
        let headers: Vec<(String, String)> = rule_labels
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), format!("  {v}\t")))
            .collect();
        let c = ClientLabels::from_pairs(headers, None).unwrap();
        prop_assert!(resolve(1, &rules, &c).is_some());
        // Upper-case one value: no match.
        let k = rule_labels.keys().nth(which.index(rule_labels.len())).unwrap().clone();
        let mut changed = rule_labels.clone();
        changed.insert(k.clone(), rule_labels[&k].to_ascii_uppercase());
        prop_assert!(resolve(1, &rules, &client(&changed, None)).is_none());
        // Drop one label: no match.
        let mut missing = rule_labels.clone();
        missing.remove(&k);
        prop_assert!(resolve(1, &rules, &client(&missing, None)).is_none());
    }
}

#[test]
fn matching_examples() {
    let rules = vec![
        rule(&[], None, 1, 0),
        rule(&[("canary", "true")], None, 2, 100),
    ];
    let pick = |pairs: &[(&str, &str)]| {
        resolve(
            9,
            &rules,
            &ClientLabels::from_pairs(pairs.iter().copied(), None).unwrap(),
        )
        .unwrap()
        .rule
        .version_id
    };
    assert_eq!(pick(&[("canary", "true")]), 2);
    assert_eq!(
        pick(&[("Canary", " true ")]),
        2,
        "header key lower-cased, value trimmed"
    );
    assert_eq!(pick(&[("canary", "True")]), 1, "values are case-sensitive");
    assert_eq!(pick(&[("canary", "true "), ("x", "y")]), 2);
    assert_eq!(pick(&[("canary", "")]), 1);
    assert_eq!(pick(&[]), 1);
    // A label with an empty value matches exactly an empty value.
    let rules = vec![rule(&[], None, 1, 0), rule(&[("tier", "")], None, 2, 1)];
    let c = ClientLabels::from_pairs([("tier", "   ")], None).unwrap();
    assert_eq!(resolve(1, &rules, &c).unwrap().rule.version_id, 2);
    assert_eq!(
        resolve(1, &rules, &ClientLabels::default())
            .unwrap()
            .rule
            .version_id,
        1
    );
}

// ---- the default rule --------------------------------------------------------------------

proptest! {
    #[test]
    fn a_valid_list_always_resolves(
        config_id in any::<u64>(),
        rules in arb_valid_rules(),
        labels in arb_client_labels(),
        id in arb_client_id(),
    ) {
        let c = client(&labels, id.as_deref());
        let r = resolve(config_id, &rules, &c);
        prop_assert!(r.is_some(), "a list with a default rule resolved to nothing: {:?}", rules);
        // Whatever wins ranks at least as high as the default, which always matches.
        let d = rules.iter().position(ReleaseRule::is_default).unwrap();
        let single = [rules[d].clone()];
        prop_assert!(resolve(config_id, &single, &c).is_some(), "the default rule matches everyone");
        let w = r.unwrap();
        prop_assert!(
            (w.rule.priority, w.rule.labels.len(), Reverse(w.index))
                >= (rules[d].priority, 0, Reverse(d))
        );
    }
}

// ---- percentages -------------------------------------------------------------------------

#[test]
fn bucket_is_the_documented_function() {
    // Pinned with an independent implementation (Python hashlib), for other SDKs.
    assert_eq!(bucket(42, "host-1"), 73);
    assert_eq!(bucket(1, "a"), 54);
    assert_eq!(bucket(7, "client-0"), 55);
    assert_eq!(bucket(u64::MAX, "ü-ñ"), 10);
    assert_eq!(bucket(0, ""), 20);
}

proptest! {
    #[test]
    fn bucket_is_stable_below_100_and_reproducible(config_id in any::<u64>(), id in "\\PC{0,40}") {
        let b = bucket(config_id, &id);
        prop_assert!(b < 100);
        prop_assert_eq!(b, bucket(config_id, &id));
        prop_assert_eq!(b, reference_bucket(config_id, &id));
    }

    #[test]
    fn percent_rule_matches_iff_bucket_below_percent(
        config_id in any::<u64>(),
        id in "[A-Za-z0-9._-]{1,32}",
        percent in 0u8..=100,
        via_label in any::<bool>(),
    ) {
        let rules = [rule(&[], Some(percent), 1, 0)];
        // The id comes from X-Client-Id or, without one, from the client_id label.
        let c = if via_label {
            ClientLabels::from_pairs([("client_id", id.as_str())], None).unwrap()
        } else {
            ClientLabels::from_pairs::<&str, &str>([], Some(&id)).unwrap()
        };
        let matched = resolve(config_id, &rules, &c).is_some();
        prop_assert_eq!(matched, bucket(config_id, &id) < percent);
        if percent == 0 {
            prop_assert!(!matched, "percent 0 never matches");
        }
        if percent == 100 {
            prop_assert!(matched, "percent 100 matches every client with an id");
        }
    }

    #[test]
    fn percent_rule_never_matches_without_a_client_id(
        config_id in any::<u64>(),
        percent in 0u8..=100,
        labels in arb_client_labels(),
    ) {
        let rules = [rule(&[], Some(percent), 2, 100), rule(&[], None, 1, 0)];
        let c = client(&labels, None);
        prop_assert_eq!(c.client_id(), None);
        prop_assert_eq!(resolve(config_id, &rules, &c).unwrap().rule.version_id, 1);
        // Blank X-Client-Id is no id either.
        let c = ClientLabels::from_pairs(labels.iter(), Some("   ")).unwrap();
        prop_assert_eq!(resolve(config_id, &rules, &c).unwrap().rule.version_id, 1);
    }
}

/// Chi-square statistic of `n` ids over the 100 buckets.
fn chi_square(config_id: ConfigId, ids: impl Iterator<Item = String>) -> (f64, [u32; 100], u32) {
    let mut counts = [0u32; 100];
    let mut n = 0u32;
    for id in ids {
        counts[bucket(config_id, &id) as usize] += 1;
        n += 1;
    }
    let expected = f64::from(n) / 100.0;
    let chi = counts
        .iter()
        .map(|&c| (f64::from(c) - expected).powi(2) / expected)
        .sum();
    (chi, counts, n)
}

#[test]
fn buckets_are_about_uniform_and_percent_shares_fit() {
    const N: u32 = 20_000;
    for config_id in [1u64, 42, 1_000_003] {
        let (chi, counts, n) = chi_square(config_id, (0..N).map(|i| format!("client-{i}")));
        assert_eq!(n, N);
        // 99 degrees of freedom: the 0.1% critical value is 148.2.
        assert!(
            chi < 148.2,
            "config {config_id}: chi-square {chi} over 100 buckets"
        );
        for p in [1u32, 5, 10, 25, 33, 50, 75, 90, 99] {
            let below: u32 = counts[..p as usize].iter().sum();
            // Also through the rule itself, for a sample.
            let expected = f64::from(N) * f64::from(p) / 100.0;
            let sd = (expected * (1.0 - f64::from(p) / 100.0)).sqrt();
            assert!(
                (f64::from(below) - expected).abs() < 5.0 * sd,
                "config {config_id}: {below} of {N} clients below {p}%, expected about {expected}"
            );
        }
        let rules = [rule(&[], Some(25), 2, 1), rule(&[], None, 1, 0)];
        let canaried = (0..N)
            .filter(|i| {
                let id = format!("client-{i}");
                let c = ClientLabels::from_pairs::<&str, &str>([], Some(&id)).unwrap();
                resolve(config_id, &rules, &c).unwrap().rule.version_id == 2
            })
            .count() as u32;
        assert_eq!(canaried, counts[..25].iter().sum::<u32>());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Uniformity for random configs and id shapes (few cases: each hashes 5,000 ids).
    #[test]
    fn buckets_are_about_uniform_for_random_ids(config_id in any::<u64>(), prefix in "[a-z0-9.-]{0,12}") {
        let (chi, _, _) = chi_square(config_id, (0..5_000).map(|i| format!("{prefix}{i}")));
        // About seven standard deviations above the mean of 99.
        prop_assert!(chi < 200.0, "chi-square {}", chi);
    }
}

/// Different configs spread the same clients independently: the 10% canary of one config
/// is not the 10% canary of another.
#[test]
fn configs_spread_clients_independently() {
    let ids: Vec<String> = (0..10_000).map(|i| format!("host-{i}")).collect();
    let a: Vec<bool> = ids.iter().map(|id| bucket(1, id) < 10).collect();
    let b: Vec<bool> = ids.iter().map(|id| bucket(2, id) < 10).collect();
    let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count();
    // Independent: about 1% of clients are in both; identical spreads would give 10%.
    assert!(
        (50..=160).contains(&both),
        "{both} clients in both 10% canaries"
    );
}

// ---- client labels -----------------------------------------------------------------------

#[test]
fn thirty_two_labels_are_fine_thirty_three_are_not() {
    let pairs = |n: usize| {
        (0..n)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect::<Vec<_>>()
    };
    let ok = ClientLabels::from_pairs(pairs(32), None).unwrap();
    assert_eq!(ok.len(), 32);
    let err = ClientLabels::from_pairs(pairs(33), None).unwrap_err();
    assert_eq!(err.code(), "invalid_label");
    assert_eq!(err.field(), Some("labels"));
    // Keys that collide after lower-casing count once (the last value wins).
    let mut dup = pairs(32);
    dup.push(("K0".to_owned(), "last".to_owned()));
    let l = ClientLabels::from_pairs(dup, None).unwrap();
    assert_eq!(l.len(), 32);
    assert_eq!(l.get("k0"), Some("last"));
}

#[test]
fn keys_are_lower_cased_values_trimmed_and_limited() {
    let l = ClientLabels::from_pairs(
        [
            ("Region", "  eu-west \t"),
            ("HOST.Name", "Web-01"),
            ("a_b-c.d", ""),
        ],
        None,
    )
    .unwrap();
    assert_eq!(l.get("region"), Some("eu-west"));
    assert_eq!(l.get("host.name"), Some("Web-01"), "values keep their case");
    assert_eq!(l.get("a_b-c.d"), Some(""));
    assert_eq!(l.get("Region"), None);
    assert_eq!(
        l.iter().collect::<Vec<_>>(),
        vec![
            ("a_b-c.d", ""),
            ("host.name", "Web-01"),
            ("region", "eu-west")
        ]
    );

    // Keys up to 63 characters, values up to 256 bytes (after trimming).
    let k63 = "k".repeat(63);
    let k64 = "k".repeat(64);
    let v256 = format!("  {}  ", "v".repeat(256));
    let v257 = "v".repeat(257);
    assert!(ClientLabels::from_pairs([(k63.as_str(), "v")], None).is_ok());
    assert!(ClientLabels::from_pairs([("k", v256.as_str())], None).is_ok());
    for (k, v) in [
        (k64.as_str(), "v"),
        ("k", v257.as_str()),
        ("", "v"),
        ("a b", "v"),
        ("-a", "v"),
        ("a/b", "v"),
    ] {
        let err = ClientLabels::from_pairs([(k, v)], None).unwrap_err();
        assert_eq!(err.code(), "invalid_label", "{k:?}={v:?}");
    }
}

#[test]
fn client_id_comes_from_header_or_label() {
    let l =
        ClientLabels::from_pairs([("client_id", "from-label")], Some("  from-header ")).unwrap();
    assert_eq!(l.client_id(), Some("from-header"));
    let l = ClientLabels::from_pairs([("Client_Id", " from-label ")], None).unwrap();
    assert_eq!(l.client_id(), Some("from-label"));
    let l = ClientLabels::from_pairs([("client_id", "from-label")], Some("")).unwrap();
    assert_eq!(l.client_id(), Some("from-label"));
    assert_eq!(ClientLabels::default().client_id(), None);
    let long = "i".repeat(257);
    assert_eq!(
        ClientLabels::from_pairs::<&str, &str>([], Some(&long))
            .unwrap_err()
            .code(),
        "invalid_label"
    );
}
