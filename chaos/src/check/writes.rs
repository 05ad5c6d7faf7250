//! Writes against the final state. Assumes what the harness guarantees: every write of a run
//! carries a content of its own, and retention is off (versions are never purged).

use std::collections::{BTreeMap, HashMap};

use super::Anomaly;
use crate::history::{Call, ConfigKey, FinalVersion, Operation, Outcome};

const CHECKER: &str = "writes";

pub fn check(
    history: &[Operation],
    finals: &BTreeMap<ConfigKey, Vec<FinalVersion>>,
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let anomaly = |op: Option<u64>, config: &str, message: String| Anomaly {
        checker: CHECKER,
        op,
        config: config.to_owned(),
        message,
    };
    let empty = Vec::new();

    // The final state on its own: versions 1..=n, each content once.
    for (config, versions) in finals {
        for (i, v) in versions.iter().enumerate() {
            if v.version != i as u64 + 1 {
                out.push(anomaly(
                    None,
                    config,
                    format!(
                        "version {} stands at position {} (gap or duplicate)",
                        v.version,
                        i + 1
                    ),
                ));
                break;
            }
        }
        let mut seen: HashMap<&str, u64> = HashMap::new();
        for v in versions {
            if let Some(first) = seen.insert(&v.content_hash, v.version) {
                out.push(anomaly(
                    None,
                    config,
                    format!(
                        "content {} is in versions {first} and {}: a write applied twice",
                        v.content_hash, v.version
                    ),
                ));
            }
        }
    }

    // Each write against it.
    let mut acknowledged: HashMap<(&str, u64), u64> = HashMap::new();
    let mut written: HashMap<&str, Vec<&str>> = HashMap::new();
    for op in history {
        let Call::Write {
            config,
            content_hash,
            ..
        } = &op.call
        else {
            continue;
        };
        written.entry(config).or_default().push(content_hash);
        let versions = finals.get(config).unwrap_or(&empty);
        let holds = |hash: &str| versions.iter().find(|v| v.content_hash == hash);
        match &op.outcome {
            Outcome::Ok { version, .. } => {
                if let Some(other) = acknowledged.insert((config, *version), op.id) {
                    out.push(anomaly(
                        Some(op.id),
                        config,
                        format!(
                            "version {version} was acknowledged to operations {other} and {}",
                            op.id
                        ),
                    ));
                }
                match versions.iter().find(|v| v.version == *version) {
                    None => out.push(anomaly(
                        Some(op.id),
                        config,
                        format!("acknowledged version {version} is lost"),
                    )),
                    Some(v) if v.content_hash != *content_hash => out.push(anomaly(
                        Some(op.id),
                        config,
                        format!(
                            "acknowledged version {version} holds {} instead of {content_hash}",
                            v.content_hash
                        ),
                    )),
                    Some(_) => {}
                }
            }
            Outcome::Fail { code } => {
                if let Some(v) = holds(content_hash) {
                    out.push(anomaly(
                        Some(op.id),
                        config,
                        format!(
                            "a write refused with {code} took effect as version {}",
                            v.version
                        ),
                    ));
                }
            }
            Outcome::Unknown { .. } => {}
        }
    }

    // Nothing nobody wrote.
    for (config, versions) in finals {
        let known = written.get(config.as_str());
        for v in versions {
            if !known.is_some_and(|k| k.contains(&v.content_hash.as_str())) {
                out.push(anomaly(
                    None,
                    config,
                    format!(
                        "version {} holds {}, which no operation wrote",
                        v.version, v.content_hash
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{C, fail, ok, unknown, write};
    use super::*;

    fn finals(versions: &[(u64, &str)]) -> BTreeMap<ConfigKey, Vec<FinalVersion>> {
        let list = versions
            .iter()
            .map(|(v, h)| FinalVersion {
                version: *v,
                content_hash: (*h).into(),
            })
            .collect();
        BTreeMap::from([(C.to_owned(), list)])
    }

    fn messages(a: &[Anomaly]) -> Vec<&str> {
        a.iter().map(|a| a.message.as_str()).collect()
    }

    #[test]
    fn a_good_history_passes_with_unknown_writes_either_way() {
        let h = [
            write(1, (0, 10), "a", ok(5, 1, "a")),
            write(2, (5, 20), "b", unknown()),
            write(3, (6, 30), "c", unknown()),
            write(4, (7, 40), "d", fail()),
            write(5, (8, 50), "e", ok(9, 3, "e")),
        ];
        // b took effect, c did not: both fine.
        assert_eq!(check(&h, &finals(&[(1, "a"), (2, "b"), (3, "e")])), vec![]);
    }

    #[test]
    fn a_lost_or_replaced_acknowledged_write_is_found() {
        let h = [
            write(1, (0, 10), "a", ok(5, 1, "a")),
            write(2, (0, 10), "b", ok(6, 2, "b")),
        ];
        let lost = check(&h, &finals(&[(1, "a")]));
        assert_eq!(messages(&lost), ["acknowledged version 2 is lost"]);
        let replaced = check(&h, &finals(&[(1, "b"), (2, "a")]));
        assert_eq!(replaced.len(), 2, "{replaced:?}");
        assert!(replaced[0].message.contains("holds b instead of a"));
    }

    #[test]
    fn gaps_duplicates_and_double_applies_are_found() {
        let h = [
            write(1, (0, 10), "a", ok(5, 1, "a")),
            write(2, (0, 10), "b", unknown()),
        ];
        let gap = check(&h, &finals(&[(1, "a"), (3, "b")]));
        assert!(messages(&gap)[0].contains("gap or duplicate"), "{gap:?}");
        let twice = check(&h, &finals(&[(1, "a"), (2, "b"), (3, "b")]));
        assert!(
            twice.iter().any(|a| a.message.contains("applied twice")),
            "{twice:?}"
        );
        let same_version = [
            write(1, (0, 10), "a", ok(5, 1, "a")),
            write(2, (0, 10), "b", ok(6, 1, "b")),
        ];
        let dup = check(&same_version, &finals(&[(1, "a"), (2, "b")]));
        assert!(
            dup.iter()
                .any(|a| a.message.contains("acknowledged to operations 1 and 2")),
            "{dup:?}"
        );
    }

    #[test]
    fn a_refused_write_that_took_effect_and_an_unwritten_version_are_found() {
        let h = [write(1, (0, 10), "a", fail())];
        let applied = check(&h, &finals(&[(1, "a")]));
        assert_eq!(
            messages(&applied),
            ["a write refused with revision_mismatch took effect as version 1"]
        );
        let ghost = check(&[], &finals(&[(1, "zz")]));
        assert_eq!(
            messages(&ghost),
            ["version 1 holds zz, which no operation wrote"]
        );
    }
}
