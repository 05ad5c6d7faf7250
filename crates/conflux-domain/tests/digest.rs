//! `State::digest`: equal for equal states however they were built (applied from the log,
//! rebuilt from storage in any order), different as soon as any replicated fact differs.

use std::collections::BTreeMap;

use bytes::Bytes;
use conflux_domain::{
    ApprovalSettings, Change, Command, ConfigPath, ContentHash, Format, IdempotencyKey, Proposal,
    PublishStrategy, QuotasPatch, ReleaseRule, RetentionKind, RetentionPolicy, RetentionRule,
    RetentionStrategy, State,
};

const T0: u64 = 1_700_000_000_000;

/// Two tenants, apps, environments, configs (one with a schema and retention) with versions,
/// canary rules, an idempotency record and a started member.
fn rich_state() -> State {
    let mut state = State::new();
    let path = |t: &str, name: &str| ConfigPath::new(t, "web", "prod", name);
    let mut commands = Vec::new();
    for tenant in ["acme", "globex"] {
        commands.extend([
            Command::CreateTenant {
                name: tenant.into(),
                display_name: None,
                quotas: QuotasPatch::default(),
            },
            Command::CreateApp {
                tenant: tenant.into(),
                name: "web".into(),
                description: Some("storefront".into()),
            },
            Command::CreateEnvironment {
                tenant: tenant.into(),
                app: "web".into(),
                name: "prod".into(),
                description: None,
                approval: None,
            },
        ]);
    }
    commands.extend([
        Command::CreateConfig {
            path: path("acme", "app.json"),
            format: Format::Json,
            schema: Some(r#"{"type": "object"}"#.into()),
            retention: Some(RetentionPolicy {
                strategy: RetentionStrategy::Or,
                rules: vec![RetentionRule {
                    kind: RetentionKind::Count,
                    keep: 10,
                }],
            }),
            description: None,
            encrypted: false,
        },
        Command::CreateConfig {
            path: path("globex", "app.txt"),
            format: Format::Text,
            schema: None,
            retention: None,
            description: None,
            encrypted: false,
        },
    ]);
    for (config_id, content) in [(1, "{\"a\": 1}"), (1, "{\"a\": 2}"), (2, "hello")] {
        commands.push(Command::Publish {
            config_id,
            content: Bytes::from(content),
            description: None,
            strategy: PublishStrategy::Stable,
            sealed: None,
        });
    }
    commands.push(Command::SetReleases {
        config_id: 1,
        rules: vec![
            ReleaseRule::default_to(1),
            ReleaseRule {
                labels: BTreeMap::from([("canary".into(), "true".into())]),
                percent: Some(10),
                version_id: 2,
                priority: 100,
            },
        ],
        comment: Some("canary".into()),
    });
    commands.push(Command::RecordMemberStarted { node_id: 2 });
    for (i, command) in commands.into_iter().enumerate() {
        let mut p = Proposal::new(T0 + i as u64 * 1_000, command);
        if i == 0 {
            p.idempotency = Some(IdempotencyKey {
                key: "create-acme".into(),
                fingerprint: ContentHash::of(b"POST /tenants"),
            });
        }
        let d = state.apply(i as u64 + 1, &p);
        assert!(d.outcome.is_ok(), "{:?}", d.outcome);
    }
    state
}

/// A state holding `changes` (applied in that order) and the counters of `like`.
fn rebuilt(changes: impl IntoIterator<Item = Change>, like: &State) -> State {
    let mut s = State::new();
    for c in changes {
        s.apply_change(c);
    }
    s.set_counters(like.counters());
    s
}

#[test]
fn a_state_rebuilt_in_any_order_has_the_digest_of_the_applied_one() {
    let applied = rich_state();
    let changes: Vec<Change> = applied.to_changes().collect();
    let forward = rebuilt(changes.clone(), &applied);
    let backward = rebuilt(changes.iter().rev().cloned(), &applied);
    // Odd records first, then even ones: interleaves kinds and keys.
    let shuffled = rebuilt(
        changes
            .iter()
            .skip(1)
            .step_by(2)
            .chain(changes.iter().step_by(2))
            .cloned(),
        &applied,
    );
    let digest = applied.digest();
    assert_eq!(forward.digest(), digest);
    assert_eq!(backward.digest(), digest);
    assert_eq!(shuffled.digest(), digest);
    assert_eq!(
        (digest.tenants, digest.apps, digest.environments),
        (2, 2, 2)
    );
    assert_eq!((digest.configs, digest.versions), (2, 3));
    assert_eq!(digest.idempotency_records, 1);
}

#[test]
fn every_record_counts() {
    let state = rich_state();
    let changes: Vec<Change> = state.to_changes().collect();
    let digest = state.digest();
    for skipped in 0..changes.len() {
        let without = rebuilt(
            changes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skipped)
                .map(|(_, c)| c.clone()),
            &state,
        );
        assert_ne!(
            without.digest().sha256,
            digest.sha256,
            "the state without {:?} has the same digest",
            changes[skipped]
        );
    }
}

/// Changes a record if it is of the kind wanted, and answers whether it did.
type Edit = Box<dyn Fn(&mut Change) -> bool>;

/// The digest of `state` with the first record `edit` changes (it answers whether it did).
fn digest_with(state: &State, edit: impl Fn(&mut Change) -> bool) -> [u8; 32] {
    let mut changes: Vec<Change> = state.to_changes().collect();
    let hit = changes.iter_mut().any(&edit);
    assert!(hit, "no record to edit");
    rebuilt(changes, state).digest().sha256
}

#[test]
fn any_change_of_a_version_a_rule_or_a_setting_changes_the_digest() {
    let state = rich_state();
    let original = state.digest().sha256;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "a version's content hash",
            Box::new(|c| match c {
                Change::PutVersion { meta, .. } if meta.config_id == 2 => {
                    meta.hash = ContentHash::of(b"other");
                    true
                }
                _ => false,
            }),
        ),
        (
            "a version's description",
            Box::new(|c| match c {
                Change::PutVersion { meta, .. } => {
                    meta.description = "edited".into();
                    true
                }
                _ => false,
            }),
        ),
        (
            "a rule's percent",
            Box::new(|c| match c {
                Change::PutConfig(config) if config.rules.len() == 2 => {
                    config.rules[1].percent = Some(20);
                    true
                }
                _ => false,
            }),
        ),
        (
            "a rule's labels",
            Box::new(|c| match c {
                Change::PutConfig(config) if config.rules.len() == 2 => {
                    config.rules[1].labels.insert("region".into(), "eu".into());
                    true
                }
                _ => false,
            }),
        ),
        (
            "the release comment",
            Box::new(|c| match c {
                Change::PutConfig(config) if config.release_comment.is_some() => {
                    config.release_comment = None;
                    true
                }
                _ => false,
            }),
        ),
        (
            "a config's schema",
            Box::new(|c| match c {
                Change::PutConfig(config) if config.schema.is_some() => {
                    config.schema = Some(r#"{"type": "array"}"#.into());
                    true
                }
                _ => false,
            }),
        ),
        (
            "a config's retention",
            Box::new(|c| match c {
                Change::PutConfig(config) if config.retention.is_some() => {
                    config.retention = None;
                    true
                }
                _ => false,
            }),
        ),
        (
            "a tenant's quota",
            Box::new(|c| match c {
                Change::PutTenant(t) => {
                    t.quotas.max_configs += 1;
                    true
                }
                _ => false,
            }),
        ),
        (
            "an environment's approval settings",
            Box::new(|c| match c {
                Change::PutEnvironment(e) => {
                    e.approval = ApprovalSettings {
                        required: true,
                        ..e.approval
                    };
                    true
                }
                _ => false,
            }),
        ),
        (
            "an app's description",
            Box::new(|c| match c {
                Change::PutApp(a) => {
                    a.description.clear();
                    true
                }
                _ => false,
            }),
        ),
        (
            "an idempotency record's time",
            Box::new(|c| match c {
                Change::PutIdempotency { record, .. } => {
                    record.created_at += 1;
                    true
                }
                _ => false,
            }),
        ),
        (
            "a started member",
            Box::new(|c| match c {
                Change::PutStartedMember { node_id } => {
                    *node_id = 3;
                    true
                }
                _ => false,
            }),
        ),
    ];
    for (what, edit) in edits {
        assert_ne!(
            digest_with(&state, edit),
            original,
            "changing {what} left the digest as it was"
        );
    }

    let mut counters = state.counters();
    counters.clock_ms += 1;
    let mut later = rebuilt(state.to_changes(), &state);
    later.set_counters(counters);
    assert_ne!(later.digest().sha256, original, "the state's clock");
}

#[test]
fn applying_one_more_write_changes_the_digest() {
    let mut state = rich_state();
    let before = state.digest();
    let publish = Command::Publish {
        config_id: 2,
        content: Bytes::from_static(b"hello again"),
        description: None,
        strategy: PublishStrategy::Stable,
        sealed: None,
    };
    let d = state.apply(100, &Proposal::new(T0 + 100_000, publish));
    assert!(d.outcome.is_ok(), "{:?}", d.outcome);
    let after = state.digest();
    assert_ne!(after.sha256, before.sha256);
    assert_eq!(after.versions, before.versions + 1);
}
