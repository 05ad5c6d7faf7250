//! What a chaos run records: one [`Operation`] per client call, with when it was invoked and
//! completed (monotonic nanoseconds since the run started), the node it went to, and what it
//! returned. Written as JSON lines, one operation per line.
//!
//! An outcome is `ok` (the server answered with success), `fail` (the server answered with a
//! definite refusal: the operation did not and will not take effect) or `unknown` (a timeout,
//! a lost connection, `503 write_timeout`: it may or may not have taken effect).

use serde::{Deserialize, Serialize};

use crate::ChaosError;

/// A config as the history names it: `tenant/app/env/name`.
pub type ConfigKey = String;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub id: u64,
    pub client: String,
    pub node: u64,
    pub invoked_ns: u64,
    /// `None`: the client gave up waiting (the outcome is then `unknown`).
    pub completed_ns: Option<u64>,
    pub call: Call,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Call {
    /// A new version with this content (every write of a run has a content of its own).
    /// With `publish`, the version is also served as the stable release in the same command
    /// (`POST .../publish`); without, only created (`POST .../versions`).
    Write {
        config: ConfigKey,
        content_hash: String,
        idempotency_key: Option<String>,
        #[serde(default)]
        publish: bool,
    },
    /// A release change (`PUT .../releases`): serve an existing version as the stable release,
    /// guarded by `If-Match` when `if_match` is set. Its `ok` outcome carries the config's new
    /// revision and the version now served; its content hash is empty when the client does
    /// not know it (`PUT releases` answers with the rules, not the content).
    Release {
        config: ConfigKey,
        version: u64,
        if_match: Option<u64>,
    },
    /// A fetch.
    Read { config: ConfigKey, mode: ReadMode },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ReadMode {
    Default,
    Linearizable,
    MinRevision { revision: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// For a write: the version number it got and the config's revision after it. For a
    /// read: the version and content served, and the config revision it was served at.
    Ok {
        revision: u64,
        version: u64,
        content_hash: String,
    },
    Fail {
        code: String,
    },
    Unknown {
        reason: String,
    },
}

impl Operation {
    /// Writes and release changes: the operations that change a config.
    pub fn is_change(&self) -> bool {
        !matches!(self.call, Call::Read { .. })
    }

    pub fn config(&self) -> &str {
        match &self.call {
            Call::Write { config, .. }
            | Call::Release { config, .. }
            | Call::Read { config, .. } => config,
        }
    }
}

/// Reads a history written as JSON lines; names the line that does not parse.
pub fn parse_jsonl(text: &str) -> Result<Vec<Operation>, ChaosError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| ChaosError::History {
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

/// One event a watcher received (long poll, WebSocket or gRPC), after any reconnects: a
/// watcher reconnects with the last revision it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub watcher: String,
    pub transport: String,
    pub node: u64,
    pub config: ConfigKey,
    pub received_ns: u64,
    pub revision: u64,
    pub change: WatchChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WatchChange {
    Changed { version: u64 },
    Deleted,
}

/// What a config holds at the end of a run, after every fault healed: its versions in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalVersion {
    pub version: u64,
    pub content_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_round_trips_through_json_lines_and_a_bad_line_is_named() {
        let op = Operation {
            id: 1,
            client: "c1".into(),
            node: 2,
            invoked_ns: 10,
            completed_ns: None,
            call: Call::Read {
                config: "acme/shop/prod/app.txt".into(),
                mode: ReadMode::MinRevision { revision: 4 },
            },
            outcome: Outcome::Unknown {
                reason: "timeout".into(),
            },
        };
        let line = serde_json::to_string(&op).unwrap();
        assert_eq!(
            parse_jsonl(&format!("{line}\n\n{line}\n")).unwrap(),
            vec![op.clone(), op]
        );
        let e = parse_jsonl(&format!("{line}\n{{\"id\": 2}}\n")).unwrap_err();
        assert!(e.to_string().starts_with("history line 2:"), "{e}");
    }
}
