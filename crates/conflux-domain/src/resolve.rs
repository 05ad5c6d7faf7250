//! Release-rule resolution: which version a client with given labels receives.
//!
//! One pure function shared by the fetch path, the resolve endpoint, the SDK and the tests.
//! Rules are tried in order of priority (descending), then number of labels (more specific
//! first), then list position; the first rule that matches wins. A rule matches when every
//! one of its labels is present in the client's labels with an equal value, and, if it has a
//! percent, when the client's bucket is below it. A valid non-empty rule list always has a
//! default rule, so resolution only returns `None` for an empty list.

use sha2::{Digest, Sha256};

use crate::labels::ClientLabels;
use crate::model::{ConfigId, ReleaseRule};

/// The outcome of resolution: the winning rule and its position in the config's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution<'a> {
    pub index: usize,
    pub rule: &'a ReleaseRule,
}

/// The stable percentage bucket (0..=99) of a client for a config: the first 8 bytes of
/// `SHA-256("{config_id}:{client_id}")` as a big-endian integer, modulo 100. Any SDK can
/// reproduce it; a client keeps its bucket for a config forever, and different configs
/// spread the same client independently.
pub fn bucket(config_id: ConfigId, client_id: &str) -> u8 {
    let mut h = Sha256::new();
    h.update(config_id.to_string().as_bytes());
    h.update(b":");
    h.update(client_id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The remainder of a division by 100 always fits in a u8.
    (u64::from_be_bytes(first) % 100) as u8
}

/// Indices of `rules` in evaluation order. Computed once when rules change and kept beside
/// them, so the fetch path does not sort.
pub fn order_rules(rules: &[ReleaseRule]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rules.len()).collect();
    // A stable sort keeps list position as the last tie-breaker.
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&rules[a], &rules[b]);
        rb.priority
            .cmp(&ra.priority)
            .then(rb.labels.len().cmp(&ra.labels.len()))
    });
    order
}

/// Whether one rule matches a client.
pub fn rule_matches(config_id: ConfigId, rule: &ReleaseRule, labels: &ClientLabels) -> bool {
    let labels_match = rule
        .labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v.as_str()));
    if !labels_match {
        return false;
    }
    match rule.percent {
        None => true,
        Some(percent) => match labels.client_id() {
            Some(id) => bucket(config_id, id) < percent,
            None => false,
        },
    }
}

/// Resolves with a precomputed [`order_rules`] order.
pub fn resolve_ordered<'a>(
    config_id: ConfigId,
    rules: &'a [ReleaseRule],
    order: &[usize],
    labels: &ClientLabels,
) -> Option<Resolution<'a>> {
    order
        .iter()
        .map(|&index| Resolution {
            index,
            rule: &rules[index],
        })
        .find(|r| rule_matches(config_id, r.rule, labels))
}

/// Resolves a rule list for a client.
pub fn resolve<'a>(
    config_id: ConfigId,
    rules: &'a [ReleaseRule],
    labels: &ClientLabels,
) -> Option<Resolution<'a>> {
    resolve_ordered(config_id, rules, &order_rules(rules), labels)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn rule(labels: &[(&str, &str)], percent: Option<u8>, v: u64, prio: i32) -> ReleaseRule {
        ReleaseRule {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            percent,
            version_id: v,
            priority: prio,
        }
    }

    #[test]
    fn canary_label_wins_over_default() {
        let rules = vec![
            rule(&[], None, 1, 0),
            rule(&[("canary", "true")], None, 2, 100),
        ];
        let canary = ClientLabels::from_pairs([("canary", "true")], None).unwrap();
        let plain = ClientLabels::from_pairs([("region", "eu")], None).unwrap();
        assert_eq!(resolve(7, &rules, &canary).unwrap().rule.version_id, 2);
        assert_eq!(resolve(7, &rules, &plain).unwrap().rule.version_id, 1);
        assert_eq!(resolve(7, &rules, &plain).unwrap().index, 0);
    }

    #[test]
    fn percent_rule_needs_a_client_id() {
        let rules = vec![rule(&[], None, 1, 0), rule(&[], Some(100), 2, 10)];
        let anon = ClientLabels::default();
        let known = ClientLabels::from_pairs::<&str, &str>([], Some("host-1")).unwrap();
        assert_eq!(resolve(1, &rules, &anon).unwrap().rule.version_id, 1);
        assert_eq!(resolve(1, &rules, &known).unwrap().rule.version_id, 2);
    }

    #[test]
    fn bucket_is_a_documented_function() {
        // Pinned so that SDKs in other languages can check their implementation.
        let d = Sha256::digest(b"42:host-1");
        let expected = (u64::from_be_bytes(d[..8].try_into().unwrap()) % 100) as u8;
        assert_eq!(bucket(42, "host-1"), expected);
    }
}
