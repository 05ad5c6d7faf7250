//! Benchmarks of Conflux. This crate owns the criterion micro-benchmarks under `benches/`
//! (resolution, format validation and apply) and the fixtures they share, and the
//! `conflux-bench` load tool that answers "is this build fast enough, and how does it compare
//! with etcd?": it does not own anything that ships.
//!
//! The tool, bottom up: [`stats`] (HDR histograms, CPU and memory from `/proc`),
//! [`openloop`] (when each open-loop arrival is due), [`load`] (the closed/open-loop request
//! driver), [`targets`] (Conflux and etcd: start, prepare, workers, watchers), [`scenarios`]
//! (fetch, write, mixed, watch, connections), [`failover`] (leader faults and elections),
//! [`check`] (the targets table), [`report`]
//! (Markdown, JSON, PNG), [`machine`] and [`tls`] (connections to a target on TLS); `src/main.rs` is the command line.

pub mod check;
pub mod failover;
pub mod fdlimit;
pub mod load;
pub mod machine;
pub mod openloop;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod targets;
pub mod tls;

use bytes::Bytes;
use conflux_domain::{Command, ConfigPath, Format, Proposal, QuotasPatch, State};

/// A JSON document of about `size` bytes: an object of string fields.
pub fn json_doc(size: usize) -> Vec<u8> {
    let mut out = String::from("{");
    let mut i = 0;
    while out.len() + 40 < size {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"key_{i:04}\": \"value-{i:08}-abcdefgh\""));
        i += 1;
    }
    out.push('}');
    out.into_bytes()
}

/// The same kind of document in each format, about `size` bytes.
pub fn doc(format: Format, size: usize) -> Vec<u8> {
    let n = size / 32;
    let mut out = String::new();
    match format {
        Format::Json => return json_doc(size),
        Format::Yaml => {
            (0..n).for_each(|i| out.push_str(&format!("key_{i:04}: value-{i:08}-abcdefgh\n")))
        }
        Format::Toml | Format::Ini => {
            (0..n).for_each(|i| out.push_str(&format!("key_{i:04} = \"value-{i:08}-abcd\"\n")))
        }
        Format::Properties => {
            (0..n).for_each(|i| out.push_str(&format!("key.{i:04} = value-{i:08}-abcdefg\n")))
        }
        Format::Xml => {
            out.push_str("<config>");
            (0..n).for_each(|i| out.push_str(&format!("<k{i:04}>value-{i:08}-ab</k{i:04}>")));
            out.push_str("</config>");
        }
        Format::Text => {
            (0..n).for_each(|i| out.push_str(&format!("line {i:04} of plain text here...\n")))
        }
    }
    out.into_bytes()
}

/// A state with one tenant/app/env and a JSON config (id 1), and the revision to apply next.
pub fn state_with_config(schema: Option<&str>) -> (State, u64) {
    let mut state = State::new();
    let commands = [
        Command::CreateTenant {
            name: "acme".into(),
            display_name: None,
            quotas: QuotasPatch::default(),
        },
        Command::CreateApp {
            tenant: "acme".into(),
            name: "shop".into(),
            description: None,
        },
        Command::CreateEnvironment {
            tenant: "acme".into(),
            app: "shop".into(),
            name: "prod".into(),
            description: None,
            approval: None,
        },
        Command::CreateConfig {
            path: ConfigPath::new("acme", "shop", "prod", "app.json"),
            format: Format::Json,
            schema: schema.map(str::to_owned),
            retention: Some(conflux_domain::RetentionPolicy {
                strategy: conflux_domain::RetentionStrategy::Or,
                rules: vec![conflux_domain::RetentionRule {
                    kind: conflux_domain::RetentionKind::Count,
                    keep: 50,
                }],
            }),
            description: None,
            encrypted: false,
        },
    ];
    for (i, c) in commands.into_iter().enumerate() {
        let d = state.apply(i as u64 + 1, &Proposal::new(1_000, c));
        assert!(d.outcome.is_ok(), "{:?}", d.outcome);
    }
    (state, 5)
}

/// A version-creation proposal for config 1.
pub fn create_version(content: &Bytes, ts: u64) -> Proposal {
    Proposal::new(
        ts,
        Command::CreateVersion {
            config_id: 1,
            content: content.clone(),
            description: None,
            sealed: None,
        },
    )
}
