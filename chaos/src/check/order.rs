//! Real-time order, the part of linearizability that version numbers and revisions make
//! checkable without a search: a config's versions and revisions are assigned in one total
//! order (the Raft log), so that order must agree with real time.
//!
//! - A write acknowledged before another write began got the lower version and revision (a
//!   release change, the lower revision).
//! - Nothing is observed before it was written: a read (of any mode) or a write that completed
//!   before a write began never shows that write's revision or a later one.

use std::collections::HashMap;

use super::Anomaly;
use crate::history::{Call, Operation, Outcome};

const CHECKER: &str = "order";

struct Done<'a> {
    op: &'a Operation,
    completed: u64,
    revision: u64,
    version: u64,
    /// A write or a release change: it got a revision of its own.
    is_change: bool,
    /// A write: it got a version number of its own.
    is_write: bool,
}

pub fn check(history: &[Operation]) -> Vec<Anomaly> {
    let mut by_config: HashMap<&str, Vec<Done>> = HashMap::new();
    for op in history {
        if let (
            Outcome::Ok {
                revision, version, ..
            },
            Some(completed),
        ) = (&op.outcome, op.completed_ns)
        {
            by_config.entry(op.config()).or_default().push(Done {
                op,
                completed,
                revision: *revision,
                version: *version,
                is_change: op.is_change(),
                is_write: matches!(op.call, Call::Write { .. }),
            });
        }
    }
    let mut out = Vec::new();
    for (config, mut done) in by_config {
        // Everything that completed, in completion order, with the highest revision (and
        // write version) completed so far: one binary search per write.
        done.sort_by_key(|d| d.completed);
        let mut highest: Vec<(u64, Option<&Done>, Option<&Done>)> = Vec::with_capacity(done.len());
        let (mut by_revision, mut by_version): (Option<&Done>, Option<&Done>) = (None, None);
        for d in &done {
            if by_revision.is_none_or(|b| d.revision > b.revision) {
                by_revision = Some(d);
            }
            if d.is_write && by_version.is_none_or(|b| d.version > b.version) {
                by_version = Some(d);
            }
            highest.push((d.completed, by_revision, by_version));
        }
        for w in done.iter().filter(|d| d.is_change) {
            let before = highest.partition_point(|(completed, _, _)| *completed < w.op.invoked_ns);
            let Some((_, Some(seen), written)) = before.checked_sub(1).map(|i| highest[i]) else {
                continue;
            };
            let anomaly = |message: String| Anomaly {
                checker: CHECKER,
                op: Some(w.op.id),
                config: config.to_owned(),
                message,
            };
            if seen.revision >= w.revision {
                out.push(anomaly(format!(
                    "operation {} completed at revision {} before write {} began, which got revision {}",
                    seen.op.id, seen.revision, w.op.id, w.revision
                )));
            }
            if let Some(earlier) = written
                && w.is_write
                && earlier.version >= w.version
            {
                out.push(anomaly(format!(
                    "write {} was acknowledged as version {} before write {} began, which got version {}",
                    earlier.op.id, earlier.version, w.op.id, w.version
                )));
            }
        }
    }
    out.sort_by_key(|a| a.op);
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ok, read, unknown, write};
    use super::*;
    use crate::history::ReadMode;

    #[test]
    fn an_order_that_agrees_with_real_time_passes() {
        let h = [
            write(1, (0, 10), "a", ok(5, 1, "a")),
            // Overlapping writes may be ordered either way.
            write(2, (11, 30), "b", ok(7, 3, "b")),
            write(3, (12, 25), "c", ok(6, 2, "c")),
            write(4, (13, 40), "d", unknown()),
            read(5, 1, (31, 32), ReadMode::Default, 7),
            write(6, (33, 50), "e", ok(9, 4, "e")),
        ];
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn a_later_write_with_an_earlier_version_is_found() {
        let h = [
            write(1, (0, 10), "a", ok(6, 2, "a")),
            write(2, (11, 20), "b", ok(7, 1, "b")),
        ];
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .message
                .contains("acknowledged as version 2 before write 2 began")
        );
    }

    #[test]
    fn seeing_a_write_before_it_began_is_found() {
        let h = [
            read(1, 1, (0, 5), ReadMode::Default, 8),
            write(2, (6, 20), "a", ok(8, 1, "a")),
        ];
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .message
                .contains("operation 1 completed at revision 8 before write 2 began")
        );
    }

    #[test]
    fn a_release_change_is_ordered_by_revision_not_by_version() {
        let release = |id, at: (u64, u64), version, revision| Operation {
            id,
            client: format!("c{id}"),
            node: 1,
            invoked_ns: at.0,
            completed_ns: Some(at.1),
            call: Call::Release {
                config: super::super::fixtures::C.into(),
                version,
                if_match: None,
            },
            outcome: ok(revision, version, "a"),
        };
        // Serving version 1 again after version 2 was written is fine...
        let fine = [
            write(1, (0, 10), "a", ok(5, 1, "a")),
            write(2, (11, 20), "b", ok(6, 2, "b")),
            release(3, (21, 30), 1, 7),
        ];
        assert_eq!(check(&fine), vec![]);
        // ...but not at a revision older than a write acknowledged before it began.
        let stale = [
            write(1, (0, 10), "a", ok(5, 1, "a")),
            write(2, (11, 20), "b", ok(6, 2, "b")),
            release(3, (21, 30), 1, 4),
        ];
        let found = check(&stale);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].message.contains("before write 3 began"),
            "{found:?}"
        );
    }
}
