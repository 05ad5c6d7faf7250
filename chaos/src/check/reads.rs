//! Read freshness. A read's revision is the config revision it was served at
//! (`X-Conflux-Revision`), which only grows with the config's changes.
//!
//! - `min_revision=R`: never served at a revision below R.
//! - linearizable: never older than any write to the same config acknowledged before the
//!   read was invoked.
//! - default (and every mode): on one node, a read invoked after another completed is never
//!   served at an older revision.

use std::collections::HashMap;

use super::Anomaly;
use crate::history::{Call, Operation, Outcome, ReadMode};

const CHECKER: &str = "reads";

struct Done<'a> {
    op: &'a Operation,
    revision: u64,
    completed: u64,
}

fn succeeded(op: &Operation) -> Option<Done<'_>> {
    match (&op.outcome, op.completed_ns) {
        (Outcome::Ok { revision, .. }, Some(completed)) => Some(Done {
            op,
            revision: *revision,
            completed,
        }),
        _ => None,
    }
}

pub fn check(history: &[Operation]) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let anomaly = |op: &Operation, message: String| Anomaly {
        checker: CHECKER,
        op: Some(op.id),
        config: op.config().to_owned(),
        message,
    };
    let mut writes: HashMap<&str, Vec<Done>> = HashMap::new();
    let mut reads: HashMap<(&str, u64), Vec<Done>> = HashMap::new();
    for op in history {
        if let Some(done) = succeeded(op) {
            let config = op.config();
            if op.is_change() {
                writes.entry(config).or_default().push(done);
            } else {
                reads.entry((config, op.node)).or_default().push(done);
            }
        }
    }

    for ((config, node), done) in &reads {
        for read in done {
            let Call::Read { mode, .. } = &read.op.call else {
                continue;
            };
            match *mode {
                ReadMode::MinRevision { revision } if read.revision < revision => {
                    out.push(anomaly(
                        read.op,
                        format!(
                            "min_revision={revision} was served at revision {}",
                            read.revision
                        ),
                    ))
                }
                ReadMode::Linearizable => {
                    let before = writes
                        .get(config)
                        .into_iter()
                        .flatten()
                        .filter(|w| w.completed < read.op.invoked_ns)
                        .max_by_key(|w| w.revision);
                    if let Some(w) = before
                        && read.revision < w.revision
                    {
                        out.push(anomaly(
                            read.op,
                            format!(
                                "a linearizable read at revision {} misses write {} (revision {}) acknowledged before it began",
                                read.revision, w.op.id, w.revision
                            ),
                        ));
                    }
                }
                _ => {}
            }
            // Monotonic on the node: compare with every read on it that finished before this
            // one began.
            if let Some(earlier) = done
                .iter()
                .filter(|e| e.completed < read.op.invoked_ns && e.revision > read.revision)
                .max_by_key(|e| e.revision)
            {
                out.push(anomaly(
                    read.op,
                    format!(
                        "node {node} served revision {} after it had served {} (operation {})",
                        read.revision, earlier.revision, earlier.op.id
                    ),
                ));
            }
        }
    }
    out.sort_by_key(|a| a.op);
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ok, read, write};
    use super::*;

    #[test]
    fn fresh_reads_pass() {
        let h = [
            write(1, (0, 10), "a", ok(7, 1, "a")),
            read(2, 1, (11, 12), ReadMode::Linearizable, 7),
            read(3, 2, (11, 13), ReadMode::MinRevision { revision: 7 }, 8),
            // Concurrent with the write: may miss it.
            read(4, 3, (5, 15), ReadMode::Linearizable, 3),
            read(5, 1, (20, 21), ReadMode::Default, 7),
        ];
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn stale_min_revision_and_linearizable_reads_are_found() {
        let h = [
            write(1, (0, 10), "a", ok(7, 1, "a")),
            read(2, 1, (11, 12), ReadMode::Linearizable, 6),
            read(3, 2, (11, 13), ReadMode::MinRevision { revision: 7 }, 5),
        ];
        let found = check(&h);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].message.contains("misses write 1"), "{found:?}");
        assert!(
            found[1]
                .message
                .contains("min_revision=7 was served at revision 5")
        );
    }

    #[test]
    fn a_node_going_backwards_is_found_but_not_two_nodes_disagreeing() {
        let backwards = [
            read(1, 1, (0, 5), ReadMode::Default, 9),
            read(2, 1, (6, 8), ReadMode::Default, 8),
        ];
        let found = check(&backwards);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .message
                .contains("node 1 served revision 8 after it had served 9")
        );
        // Another node may lag; overlapping reads on one node may be served in either order.
        let fine = [
            read(1, 1, (0, 5), ReadMode::Default, 9),
            read(2, 2, (6, 8), ReadMode::Default, 8),
            read(3, 1, (1, 9), ReadMode::Default, 8),
        ];
        assert_eq!(check(&fine), vec![]);
    }
}
