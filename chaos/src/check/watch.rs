//! Watchers. Each watcher follows one config to the end of the run, reconnecting with the
//! last revision it saw. Coalescing is allowed (a slow watcher may skip to a newer state),
//! so the rules are: revisions strictly increase (no duplicate, nothing out of order, nothing
//! at or before a revision already seen, across reconnects too); no `Deleted` for a config
//! that exists at the end (the workload deletes no config); and the last event is the
//! config's final revision (nothing missed at the end).

use std::collections::BTreeMap;

use super::Anomaly;
use crate::history::{ConfigKey, WatchChange, WatchEvent};

const CHECKER: &str = "watch";

/// `final_revisions`: each config's revision once every fault healed.
pub fn check(events: &[WatchEvent], final_revisions: &BTreeMap<ConfigKey, u64>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut by_watcher: BTreeMap<(&str, &str), Vec<&WatchEvent>> = BTreeMap::new();
    for e in events {
        by_watcher
            .entry((&e.watcher, &e.config))
            .or_default()
            .push(e);
    }
    for ((watcher, config), mut seen) in by_watcher {
        seen.sort_by_key(|e| e.received_ns);
        let anomaly = |message: String| Anomaly {
            checker: CHECKER,
            op: None,
            config: config.to_owned(),
            message: format!("watcher {watcher}: {message}"),
        };
        for pair in seen.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b.revision <= a.revision {
                out.push(anomaly(format!(
                    "revision {} (from node {} over {}) after revision {}: a duplicate or out of order",
                    b.revision, b.node, b.transport, a.revision
                )));
            }
        }
        let exists_at_end = final_revisions.get(config);
        for e in &seen {
            if e.change == WatchChange::Deleted && exists_at_end.is_some() {
                out.push(anomaly(format!(
                    "told at revision {} that the config was deleted, but it exists",
                    e.revision
                )));
            }
        }
        if let (Some(last), Some(&final_revision)) = (seen.last(), exists_at_end)
            && last.revision != final_revision
        {
            out.push(anomaly(format!(
                "last saw revision {}, the config ended at {final_revision}",
                last.revision
            )));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::C;
    use super::*;

    fn event(at: u64, revision: u64, change: WatchChange) -> WatchEvent {
        WatchEvent {
            watcher: "w1".into(),
            transport: "websocket".into(),
            node: 2,
            config: C.into(),
            received_ns: at,
            revision,
            change,
        }
    }

    fn changed(at: u64, revision: u64) -> WatchEvent {
        event(at, revision, WatchChange::Changed { version: revision })
    }

    fn finals(revision: u64) -> BTreeMap<ConfigKey, u64> {
        BTreeMap::from([(C.to_owned(), revision)])
    }

    #[test]
    fn increasing_revisions_ending_at_the_final_one_pass_even_coalesced() {
        let events = [changed(1, 3), changed(2, 4), changed(3, 9)];
        assert_eq!(check(&events, &finals(9)), vec![]);
    }

    #[test]
    fn duplicates_reordering_phantom_deletes_and_a_missed_end_are_found() {
        let dup = [changed(1, 3), changed(2, 3)];
        let found = check(&dup, &finals(3));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("duplicate or out of order"));

        let back = [changed(1, 5), changed(2, 4), changed(3, 6)];
        assert_eq!(check(&back, &finals(6)).len(), 1);

        let phantom = [
            changed(1, 3),
            event(2, 4, WatchChange::Deleted),
            changed(3, 5),
        ];
        let found = check(&phantom, &finals(5));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("deleted, but it exists"));

        let missed = [changed(1, 3)];
        let found = check(&missed, &finals(4));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .message
                .contains("last saw revision 3, the config ended at 4")
        );
    }
}
