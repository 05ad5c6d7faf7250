//! Scenario and property tests of the state-machine transition (`State::apply`): version
//! numbering, quotas, If-Match, idempotency, publish/rollback, release-rule validation,
//! deletes, suspension, retention, and determinism / rebuild from `to_changes()`.

use std::collections::BTreeMap;

use bytes::Bytes;
use conflux_domain::{
    Change, ClientLabels, Command, Config, ConfigId, ConfigPath, ContentHash, Decision,
    DomainError, Format, IDEMPOTENCY_TTL_MS, IdempotencyKey, Patch, Proposal, PublishStrategy,
    Quota, QuotasPatch, ReleaseRule, Response, RetentionKind, RetentionPolicy, RetentionRule,
    RetentionStrategy, RollbackMode, State, TenantStatus, VersionId, resolve,
    retention_sweep_needed,
};
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;
const DAY: u64 = 86_400_000;

// ---- a tiny driver -------------------------------------------------------------------------

/// A state plus the Raft log position and the proposing clock.
struct World {
    state: State,
    rev: u64,
    ts: u64,
}

/// What a rejected or replayed command may still persist: expiry of old idempotency keys,
/// and the remembered rejection under its own key.
fn is_housekeeping(c: &Change) -> bool {
    match c {
        Change::DeleteIdempotency { .. } => true,
        Change::PutIdempotency { record, .. } => record.outcome.is_err(),
        _ => false,
    }
}

impl World {
    fn new() -> Self {
        World {
            state: State::new(),
            rev: 0,
            ts: T0,
        }
    }

    fn dump(&self) -> Vec<Change> {
        self.state.to_changes().collect()
    }

    /// Applies a proposal at the next log index, round-tripping it through MessagePack with
    /// field names as the log does.
    fn propose(&mut self, p: Proposal) -> Decision {
        let bytes = rmp_serde::to_vec_named(&p).unwrap();
        let decoded: Proposal = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(decoded, p, "proposal survives the log encoding");
        self.rev += 1;
        let d = self.state.apply(self.rev, &decoded);
        if let Ok(r) = &d.outcome {
            let bytes = rmp_serde::to_vec_named(r).unwrap();
            let back: Response = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(&back, r, "response survives MessagePack");
        }
        d
    }

    fn tick(&mut self) -> u64 {
        self.ts += 1_000;
        self.ts
    }

    fn exec(&mut self, command: Command) -> Decision {
        let ts = self.tick();
        self.propose(Proposal::new(ts, command))
    }

    fn ok(&mut self, command: Command) -> Response {
        let d = self.exec(command.clone());
        match d.outcome {
            Ok(r) => r,
            Err(e) => panic!("{command:?} failed: {e:?}"),
        }
    }

    /// Runs a proposal that must be rejected, and checks that it changed nothing.
    fn reject(&mut self, p: Proposal) -> DomainError {
        let before = self.dump();
        let d = self.propose(p);
        assert!(
            d.changes.iter().all(is_housekeeping),
            "a rejected command persisted {:?}",
            d.changes
        );
        assert_eq!(self.dump(), before, "a rejected command changed the state");
        d.outcome.expect_err("command should have been rejected")
    }

    fn fail(&mut self, command: Command) -> DomainError {
        let ts = self.tick();
        self.reject(Proposal::new(ts, command))
    }

    fn config(&self, id: ConfigId) -> Config {
        self.state.config(id).expect("config exists").clone()
    }

    fn version_ids(&self, id: ConfigId) -> Vec<VersionId> {
        self.state.versions_of(id).map(|v| v.version).collect()
    }

    /// tenant `acme` (with `quotas`), app `web`, env `prod`, config `app.<ext>`.
    fn setup(
        &mut self,
        quotas: QuotasPatch,
        format: Format,
        schema: Option<&str>,
        retention: Option<RetentionPolicy>,
    ) -> ConfigId {
        self.ok(create_tenant("acme", quotas));
        self.ok(create_app("acme", "web"));
        self.ok(create_env("acme", "web", "prod"));
        config_id(self.ok(create_config(
            path("acme", "web", "prod", &format!("app.{format}")),
            format,
            schema,
            retention,
        )))
    }

    fn setup_json(&mut self) -> ConfigId {
        self.setup(QuotasPatch::default(), Format::Json, None, None)
    }

    /// A plain config `acme/web/prod/plain.json` next to what a test already created.
    fn setup_json_in_same_tenant(&mut self) -> ConfigId {
        config_id(self.ok(create_config(
            path("acme", "web", "prod", "plain.json"),
            Format::Json,
            None,
            None,
        )))
    }
}

fn path(t: &str, a: &str, e: &str, n: &str) -> ConfigPath {
    ConfigPath::new(t, a, e, n)
}

fn create_tenant(name: &str, quotas: QuotasPatch) -> Command {
    Command::CreateTenant {
        name: name.into(),
        display_name: None,
        quotas,
    }
}

fn set_status(name: &str, status: TenantStatus) -> Command {
    Command::UpdateTenant {
        name: name.into(),
        display_name: None,
        status: Some(status),
        quotas: None,
    }
}

fn create_app(t: &str, a: &str) -> Command {
    Command::CreateApp {
        tenant: t.into(),
        name: a.into(),
        description: None,
    }
}

fn create_env(t: &str, a: &str, e: &str) -> Command {
    Command::CreateEnvironment {
        tenant: t.into(),
        app: a.into(),
        name: e.into(),
        description: None,
        approval: None,
    }
}

fn create_config(
    path: ConfigPath,
    format: Format,
    schema: Option<&str>,
    retention: Option<RetentionPolicy>,
) -> Command {
    Command::CreateConfig {
        path,
        format,
        schema: schema.map(str::to_owned),
        retention,
        description: None,
        encrypted: false,
    }
}

fn version(id: ConfigId, content: &[u8]) -> Command {
    Command::CreateVersion {
        config_id: id,
        content: Bytes::copy_from_slice(content),
        description: None,
        sealed: None,
    }
}

fn releases(id: ConfigId, rules: Vec<ReleaseRule>) -> Command {
    Command::SetReleases {
        config_id: id,
        rules,
        comment: None,
    }
}

fn publish(id: ConfigId, content: &[u8], strategy: PublishStrategy) -> Command {
    Command::Publish {
        config_id: id,
        content: Bytes::copy_from_slice(content),
        description: None,
        strategy,
        sealed: None,
    }
}

fn canary(labels: &[(&str, &str)], percent: Option<u8>, priority: i32) -> PublishStrategy {
    PublishStrategy::Canary {
        labels: labels_map(labels),
        percent,
        priority,
    }
}

fn rollback(id: ConfigId, v: VersionId, mode: RollbackMode) -> Command {
    Command::Rollback {
        config_id: id,
        version_id: v,
        mode,
        break_glass: false,
    }
}

fn labels_map(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn rule(labels: &[(&str, &str)], percent: Option<u8>, v: VersionId, priority: i32) -> ReleaseRule {
    ReleaseRule {
        labels: labels_map(labels),
        percent,
        version_id: v,
        priority,
    }
}

fn config_id(r: Response) -> ConfigId {
    match r {
        Response::Config(c) => c.id,
        other => panic!("expected a config, got {other:?}"),
    }
}

fn version_of(r: &Response) -> VersionId {
    match r {
        Response::Version { version, .. } => version.version,
        other => panic!("expected a version, got {other:?}"),
    }
}

fn count_policy(n: u64) -> RetentionPolicy {
    RetentionPolicy {
        strategy: RetentionStrategy::And,
        rules: vec![RetentionRule {
            kind: RetentionKind::Count,
            keep: n,
        }],
    }
}

fn days_policy(n: u64) -> RetentionPolicy {
    RetentionPolicy {
        strategy: RetentionStrategy::And,
        rules: vec![RetentionRule {
            kind: RetentionKind::Days,
            keep: n,
        }],
    }
}

/// What a client with these labels is served.
fn served(c: &Config, labels: &[(&str, &str)], id: Option<&str>) -> Option<VersionId> {
    let l = ClientLabels::from_pairs(labels.iter().copied(), id).unwrap();
    resolve(c.id, &c.rules, &l).map(|r| r.rule.version_id)
}

const PORT_SCHEMA: &str =
    r#"{"type":"object","properties":{"port":{"type":"integer"}},"required":["port"]}"#;

// ---- version numbering ---------------------------------------------------------------------

#[test]
fn versions_are_numbered_without_gaps_and_rejections_use_none() {
    let mut w = World::new();
    let quotas = QuotasPatch {
        max_config_bytes: Some(64),
        ..Default::default()
    };
    let id = w.setup(quotas, Format::Json, Some(PORT_SCHEMA), None);
    assert_eq!(w.config(id).latest_version, 0);

    assert_eq!(version_of(&w.ok(version(id, br#"{"port": 1}"#))), 1);

    // Does not parse: 422 with the position.
    let e = w.fail(version(id, b"{\n  \"port\": 1,\n  oops\n}"));
    assert_eq!(e.code(), "content_invalid");
    assert_eq!(e.field(), Some("content"));
    let DomainError::ContentInvalid {
        format,
        line,
        column,
        ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!((format, line, column), (Format::Json, Some(3), Some(3)));

    // Breaks the schema: every violation with its pointer.
    let e = w.fail(version(id, br#"{"port": "x"}"#));
    assert_eq!(e.code(), "schema_violation");
    let DomainError::SchemaViolation { violations } = &e else {
        unreachable!()
    };
    assert!(
        violations.iter().any(|v| v.pointer == "/port"),
        "{violations:?}"
    );
    let e = w.fail(version(id, br#"{}"#));
    assert_eq!(e.code(), "schema_violation");

    // Over max_config_bytes.
    let big = format!(r#"{{"port": 1, "pad": "{}"}}"#, "x".repeat(60));
    let e = w.fail(version(id, big.as_bytes()));
    assert_eq!(
        e,
        DomainError::QuotaExceeded {
            quota: Quota::MaxConfigBytes,
            limit: 64,
            requested: big.len() as u64
        }
    );

    // Stale If-Match.
    let stale = w.config(id).revision - 1;
    let ts = w.tick();
    let mut p = Proposal::new(ts, version(id, br#"{"port": 2}"#));
    p.expected_revision = Some(stale);
    assert_eq!(w.reject(p).code(), "revision_mismatch");

    // A publish whose rule change is refused does not keep its version either.
    let e = w.fail(publish(
        id,
        br#"{"port": 3}"#,
        canary(&[("canary", "true")], None, 100),
    ));
    assert_eq!(e.code(), "invalid_release_rules");

    assert_eq!(version_of(&w.ok(version(id, br#"{"port": 4}"#))), 2);
    let r = w.ok(publish(id, br#"{"port": 5}"#, PublishStrategy::Stable));
    assert_eq!(version_of(&r), 3);
    assert_eq!(w.version_ids(id), vec![1, 2, 3]);
    assert_eq!(w.config(id).latest_version, 3);
    let meta = w.state.version(id, 3).unwrap();
    assert_eq!(meta.hash, ContentHash::of(br#"{"port": 5}"#));
    assert_eq!(meta.size, 11);
    assert_eq!(meta.format, Format::Json);
}

#[derive(Debug, Clone, Copy)]
enum Attempt {
    Good,
    Unparsable,
    SchemaViolation,
    TooBig,
    StaleIfMatch,
    PublishStable,
    PublishBadCanary,
}

fn arb_attempt() -> impl Strategy<Value = Attempt> {
    prop::sample::select(vec![
        Attempt::Good,
        Attempt::Unparsable,
        Attempt::SchemaViolation,
        Attempt::TooBig,
        Attempt::StaleIfMatch,
        Attempt::PublishStable,
        Attempt::PublishBadCanary,
    ])
}

proptest! {
    #[test]
    fn versions_stay_dense_whatever_is_rejected(attempts in prop::collection::vec(arb_attempt(), 1..30)) {
        let mut w = World::new();
        let quotas = QuotasPatch { max_config_bytes: Some(100), ..Default::default() };
        let id = w.setup(quotas, Format::Json, Some(PORT_SCHEMA), None);
        let mut accepted = 0u64;
        for (i, a) in attempts.iter().enumerate() {
            let good = format!(r#"{{"port": {i}}}"#);
            let ts = w.tick();
            let (command, expected_revision) = match a {
                Attempt::Good => (version(id, good.as_bytes()), None),
                Attempt::Unparsable => (version(id, b"{\"port\": "), None),
                Attempt::SchemaViolation => (version(id, br#"{"port": 1.5}"#), None),
                Attempt::TooBig => (version(id, format!(r#"{{"port": 1, "p": "{}"}}"#, "x".repeat(100)).as_bytes()), None),
                Attempt::StaleIfMatch => (version(id, good.as_bytes()), Some(w.config(id).revision + 1)),
                Attempt::PublishStable => (publish(id, good.as_bytes(), PublishStrategy::Stable), None),
                Attempt::PublishBadCanary => (publish(id, good.as_bytes(), canary(&[], None, 1)), None),
            };
            let mut p = Proposal::new(ts, command);
            p.expected_revision = expected_revision;
            let d = w.propose(p);
            match (a, &d.outcome) {
                (Attempt::Good | Attempt::PublishStable, Ok(r)) => {
                    accepted += 1;
                    prop_assert_eq!(version_of(r), accepted);
                }
                (Attempt::Good | Attempt::PublishStable, Err(e)) => {
                    prop_assert!(false, "{:?} rejected: {:?}", a, e);
                }
                (_, Ok(r)) => prop_assert!(false, "{:?} accepted: {:?}", a, r),
                (_, Err(_)) => prop_assert!(d.changes.is_empty()),
            }
        }
        prop_assert_eq!(w.version_ids(id), (1..=accepted).collect::<Vec<_>>());
        prop_assert_eq!(w.config(id).latest_version, accepted);
    }
}

// ---- quotas --------------------------------------------------------------------------------

#[test]
fn quotas_default_to_the_contract_values_and_patch_partially() {
    let mut w = World::new();
    let Response::Tenant(t) = w.ok(create_tenant("acme", QuotasPatch::default())) else {
        panic!()
    };
    assert_eq!(
        (
            t.quotas.max_apps,
            t.quotas.max_configs,
            t.quotas.max_config_bytes,
            t.quotas.max_versions_per_config
        ),
        (100, 1000, 102_400, 1000)
    );
    let Response::Tenant(t) = w.ok(Command::UpdateTenant {
        name: "acme".into(),
        display_name: None,
        status: None,
        quotas: Some(QuotasPatch {
            max_apps: Some(3),
            ..Default::default()
        }),
    }) else {
        panic!()
    };
    assert_eq!(
        (
            t.quotas.max_apps,
            t.quotas.max_configs,
            t.quotas.max_config_bytes,
            t.quotas.max_versions_per_config
        ),
        (3, 1000, 102_400, 1000)
    );
    // The quotas JSON object takes any subset.
    let q: QuotasPatch = serde_json::from_str(r#"{"max_configs": 5}"#).unwrap();
    assert_eq!(q.max_configs, Some(5));
    assert!(serde_json::from_str::<QuotasPatch>(r#"{"max_widgets": 5}"#).is_err());

    for (patch, field) in [
        (
            QuotasPatch {
                max_apps: Some(0),
                ..Default::default()
            },
            "quotas.max_apps",
        ),
        (
            QuotasPatch {
                max_config_bytes: Some(4 * 1024 * 1024 + 1),
                ..Default::default()
            },
            "quotas.max_config_bytes",
        ),
    ] {
        let e = w.fail(create_tenant("other", patch));
        assert_eq!((e.code(), e.field()), ("invalid_argument", Some(field)));
    }
}

#[test]
fn max_apps_and_max_configs_are_enforced() {
    let mut w = World::new();
    w.ok(create_tenant(
        "acme",
        QuotasPatch {
            max_apps: Some(2),
            max_configs: Some(2),
            ..Default::default()
        },
    ));
    w.ok(create_app("acme", "a1"));
    w.ok(create_app("acme", "a2"));
    let e = w.fail(create_app("acme", "a3"));
    assert_eq!(e.code(), "quota_exceeded");
    assert_eq!(e.field(), Some("max_apps"));
    assert_eq!(
        e,
        DomainError::QuotaExceeded {
            quota: Quota::MaxApps,
            limit: 2,
            requested: 3
        }
    );
    // Another tenant has its own count.
    w.ok(create_tenant("other", QuotasPatch::default()));
    w.ok(create_app("other", "a3"));
    // Room again after a delete.
    w.ok(Command::DeleteApp {
        tenant: "acme".into(),
        name: "a2".into(),
        cascade: false,
    });
    w.ok(create_app("acme", "a3"));

    w.ok(create_env("acme", "a1", "prod"));
    w.ok(create_env("acme", "a3", "prod"));
    w.ok(create_config(
        path("acme", "a1", "prod", "one"),
        Format::Text,
        None,
        None,
    ));
    w.ok(create_config(
        path("acme", "a3", "prod", "two"),
        Format::Text,
        None,
        None,
    ));
    let e = w.fail(create_config(
        path("acme", "a1", "prod", "three"),
        Format::Text,
        None,
        None,
    ));
    assert_eq!(
        e,
        DomainError::QuotaExceeded {
            quota: Quota::MaxConfigs,
            limit: 2,
            requested: 3
        }
    );
    assert_eq!(e.field(), Some("max_configs"));
}

#[test]
fn max_config_bytes_and_max_versions_are_enforced() {
    let mut w = World::new();
    let quotas = QuotasPatch {
        max_config_bytes: Some(10),
        max_versions_per_config: Some(2),
        ..Default::default()
    };
    let id = w.setup(quotas, Format::Text, None, None);
    let e = w.fail(version(id, b"12345678901"));
    assert_eq!(
        e,
        DomainError::QuotaExceeded {
            quota: Quota::MaxConfigBytes,
            limit: 10,
            requested: 11
        }
    );
    assert_eq!(e.field(), Some("max_config_bytes"));
    assert_eq!(version_of(&w.ok(version(id, b"1234567890"))), 1);
    assert_eq!(
        version_of(&w.ok(publish(id, b"", PublishStrategy::Stable))),
        2
    );
    for command in [
        version(id, b"three"),
        publish(id, b"three", PublishStrategy::Stable),
    ] {
        let e = w.fail(command);
        assert_eq!(
            e,
            DomainError::QuotaExceeded {
                quota: Quota::MaxVersionsPerConfig,
                limit: 2,
                requested: 3
            }
        );
    }
    // Raising the quota lets writes through again, numbered on.
    w.ok(Command::UpdateTenant {
        name: "acme".into(),
        display_name: None,
        status: None,
        quotas: Some(QuotasPatch {
            max_versions_per_config: Some(3),
            ..Default::default()
        }),
    });
    assert_eq!(version_of(&w.ok(version(id, b"three"))), 3);
}

// ---- If-Match ------------------------------------------------------------------------------

#[test]
fn if_match_mismatch_changes_nothing() {
    let mut w = World::new();
    let id = w.setup_json();
    w.ok(publish(id, b"{}", PublishStrategy::Stable));
    let commands = [
        version(id, b"{}"),
        releases(id, vec![rule(&[], None, 1, 0)]),
        publish(id, b"{}", PublishStrategy::Stable),
        rollback(id, 1, RollbackMode::Emergency),
        Command::UpdateConfig {
            id,
            schema: Patch::Clear,
            retention: Patch::Unchanged,
            description: Some("x".into()),
            encrypted: None,
        },
        Command::DeleteConfig { id },
    ];
    for command in commands {
        let actual = w.config(id).revision;
        for wrong in [0, actual - 1, actual + 1, u64::MAX] {
            let ts = w.tick();
            let mut p = Proposal::new(ts, command.clone());
            p.expected_revision = Some(wrong);
            let e = w.reject(p);
            assert_eq!(e.code(), "revision_mismatch", "{command:?}");
            assert_eq!(
                e,
                DomainError::RevisionMismatch {
                    expected: wrong,
                    actual
                }
            );
        }
        // The right revision goes through, and moves the config to this entry's revision.
        let ts = w.tick();
        let mut p = Proposal::new(ts, command.clone());
        p.expected_revision = Some(actual);
        let d = w.propose(p);
        assert!(d.outcome.is_ok(), "{command:?}: {:?}", d.outcome);
        if let Some(c) = w.state.config(id) {
            assert_eq!(c.revision, w.rev);
            assert!(c.revision > actual, "revisions only grow");
        }
    }
    assert!(w.state.config(id).is_none());
}

#[test]
fn if_match_applies_to_tenants_apps_and_environments() {
    let mut w = World::new();
    w.setup_json();
    let t_rev = w.state.tenant("acme").unwrap().revision;
    let a_rev = w.state.app("acme", "web").unwrap().revision;
    let e_rev = w.state.environment("acme", "web", "prod").unwrap().revision;
    let cases = [
        (set_status("acme", TenantStatus::Active), t_rev),
        (
            Command::UpdateApp {
                tenant: "acme".into(),
                name: "web".into(),
                description: Some("d".into()),
            },
            a_rev,
        ),
        (
            Command::UpdateEnvironment {
                tenant: "acme".into(),
                app: "web".into(),
                name: "prod".into(),
                description: Some("d".into()),
                approval: None,
            },
            e_rev,
        ),
    ];
    for (command, actual) in cases {
        let ts = w.tick();
        let mut p = Proposal::new(ts, command.clone());
        p.expected_revision = Some(actual + 100);
        assert_eq!(w.reject(p).code(), "revision_mismatch", "{command:?}");
        let ts = w.tick();
        let mut p = Proposal::new(ts, command.clone());
        p.expected_revision = Some(actual);
        assert!(w.propose(p).outcome.is_ok(), "{command:?}");
    }
}

// ---- idempotency ---------------------------------------------------------------------------

fn keyed(ts: u64, key: &str, request: &[u8], command: Command) -> Proposal {
    let mut p = Proposal::new(ts, command);
    p.idempotency = Some(IdempotencyKey {
        key: key.into(),
        fingerprint: ContentHash::of(request),
    });
    p
}

#[test]
fn idempotency_replays_rejects_reuse_and_expires() {
    let mut w = World::new();
    let id = w.setup_json();
    let t1 = w.tick();
    let first = w.propose(keyed(t1, "k1", b"POST v1", version(id, br#"{"a": 1}"#)));
    assert!(!first.replayed);
    let first_response = first.outcome.clone().unwrap();
    assert_eq!(version_of(&first_response), 1);
    assert!(
        matches!(first.changes.last(), Some(Change::PutIdempotency { key, .. }) if key == "k1")
    );
    let record = w.state.idempotency_record("k1").unwrap();
    assert_eq!(record.created_at, t1);
    assert_eq!(record.outcome, Ok(first_response.clone()));

    // The config moves on in between; a retry still gets the first answer.
    w.ok(version(id, br#"{"a": 2}"#));

    // Same key, same request: the first response, nothing applied.
    let before = w.dump();
    let d = w.propose(keyed(
        w.ts + 1,
        "k1",
        b"POST v1",
        version(id, br#"{"a": 1}"#),
    ));
    assert!(d.replayed);
    assert_eq!(d.outcome, Ok(first_response.clone()));
    assert!(d.changes.is_empty(), "{:?}", d.changes);
    assert_eq!(w.dump(), before);

    // Same key, another request: refused, nothing applied.
    let d = w.propose(keyed(
        w.ts + 2,
        "k1",
        b"POST v2",
        version(id, br#"{"a": 9}"#),
    ));
    assert!(d.changes.is_empty());
    let e = d.outcome.unwrap_err();
    assert_eq!(e.code(), "idempotency_key_reused");
    assert_eq!(e, DomainError::IdempotencyKeyReused { key: "k1".into() });
    assert_eq!(w.dump(), before);

    // Still remembered one millisecond before 24 h of proposal time...
    let d = w.propose(keyed(
        t1 + IDEMPOTENCY_TTL_MS - 1,
        "k1",
        b"POST v1",
        version(id, br#"{"a": 1}"#),
    ));
    assert!(d.replayed);
    assert_eq!(d.outcome, Ok(first_response.clone()));
    assert_eq!(w.version_ids(id), vec![1, 2]);

    // ...and forgotten at 24 h: the request runs again, as a new write.
    let d = w.propose(keyed(
        t1 + IDEMPOTENCY_TTL_MS,
        "k1",
        b"POST v1",
        version(id, br#"{"a": 1}"#),
    ));
    assert!(!d.replayed);
    assert_eq!(version_of(&d.outcome.unwrap()), 3);
    assert_eq!(
        w.state.idempotency_record("k1").unwrap().created_at,
        t1 + IDEMPOTENCY_TTL_MS
    );
    assert_eq!(w.version_ids(id), vec![1, 2, 3]);
}

#[test]
fn expired_keys_are_removed_by_any_entry_and_free_for_reuse() {
    let mut w = World::new();
    let id = w.setup_json();
    let t1 = w.tick();
    w.propose(keyed(t1, "a", b"1", version(id, b"{}")));
    w.propose(keyed(t1 + 10, "b", b"1", version(id, b"{}")));
    assert!(w.state.idempotency_record("a").is_some());

    // Any later entry, even one that fails, drops the keys that are 24 h old.
    let d = w.propose(Proposal::new(t1 + IDEMPOTENCY_TTL_MS, version(999, b"{}")));
    assert_eq!(d.outcome.unwrap_err().code(), "config_not_found");
    assert_eq!(
        d.changes,
        vec![Change::DeleteIdempotency { key: "a".into() }]
    );
    assert!(w.state.idempotency_record("a").is_none());
    assert!(w.state.idempotency_record("b").is_some());

    // An expired key may be used for a different request.
    let d = w.propose(keyed(
        t1 + IDEMPOTENCY_TTL_MS + 20,
        "a",
        b"other",
        version(id, b"[]"),
    ));
    assert!(!d.replayed);
    assert!(d.outcome.is_ok());
    assert!(w.state.idempotency_record("b").is_none());
}

#[test]
fn idempotency_time_never_runs_backwards() {
    // A new leader with a slow clock proposes an older timestamp: the state's clock holds,
    // so a key does not live longer than 24 h of applied time.
    let mut w = World::new();
    let id = w.setup_json();
    let t1 = w.tick();
    w.propose(keyed(t1, "k", b"1", version(id, b"{}")));
    w.propose(Proposal::new(t1 + IDEMPOTENCY_TTL_MS, version(id, b"{}")));
    let d = w.propose(keyed(t1 + 5, "k", b"1", version(id, b"{}")));
    assert!(
        !d.replayed,
        "the key expired at the earlier, later-stamped entry"
    );
    let r = d.outcome.unwrap();
    let Response::Version { version, .. } = r else {
        panic!()
    };
    assert_eq!(version.created_at, t1 + IDEMPOTENCY_TTL_MS);
    assert_eq!(w.state.counters().clock_ms, t1 + IDEMPOTENCY_TTL_MS);
}

// ---- publish, releases and rollback --------------------------------------------------------

#[test]
fn publish_and_rollback_scenario() {
    let mut w = World::new();
    let id = w.setup_json();

    // A plain version changes nothing that clients see.
    w.ok(version(id, br#"{"v": 1}"#));
    assert!(w.config(id).rules.is_empty());
    assert_eq!(served(&w.config(id), &[], None), None);

    // A canary needs a default rule to fall back to.
    let e = w.fail(publish(id, b"{}", canary(&[("canary", "true")], None, 100)));
    assert_eq!(
        (e.code(), e.field()),
        ("invalid_release_rules", Some("strategy"))
    );

    // Stable publish on an empty list creates the default rule.
    w.ok(publish(id, br#"{"v": 2}"#, PublishStrategy::Stable));
    assert_eq!(w.config(id).rules, vec![rule(&[], None, 2, 0)]);

    // Canary by label.
    w.ok(publish(
        id,
        br#"{"v": 3}"#,
        canary(&[("canary", "true")], None, 100),
    ));
    let c = w.config(id);
    assert_eq!(
        c.rules,
        vec![
            rule(&[], None, 2, 0),
            rule(&[("canary", "true")], None, 3, 100)
        ]
    );
    assert_eq!(served(&c, &[("canary", "true")], None), Some(3));
    assert_eq!(served(&c, &[("canary", "false")], None), Some(2));
    assert_eq!(served(&c, &[], Some("h1")), Some(2));

    // The same labels and percent again: the rule is replaced, not added.
    w.ok(publish(
        id,
        br#"{"v": 4}"#,
        canary(&[("canary", "true")], None, 50),
    ));
    let c = w.config(id);
    assert_eq!(
        c.rules,
        vec![
            rule(&[], None, 2, 0),
            rule(&[("canary", "true")], None, 4, 50)
        ]
    );
    // Same labels with a percent is another rule.
    w.ok(publish(
        id,
        br#"{"v": 5}"#,
        canary(&[("canary", "true")], Some(10), 100),
    ));
    assert_eq!(w.config(id).rules.len(), 3);
    // A percent-only canary.
    w.ok(publish(id, br#"{"v": 6}"#, canary(&[], Some(100), 100)));
    let c = w.config(id);
    assert_eq!(c.rules.len(), 4);
    assert_eq!(served(&c, &[], Some("any-host")), Some(6));
    assert_eq!(served(&c, &[], None), Some(2), "no id: no percentage rule");

    // Stable moves the default and keeps every other rule.
    w.ok(publish(id, br#"{"v": 7}"#, PublishStrategy::Stable));
    let c = w.config(id);
    assert_eq!(c.rules[0], rule(&[], None, 7, 0));
    assert_eq!(c.rules[1..], w.config(id).rules[1..]);
    assert_eq!(
        c.rules.iter().map(|r| r.version_id).collect::<Vec<_>>(),
        vec![7, 4, 5, 6]
    );
    assert_eq!(c.release_comment, None);

    // stable_only: default to the target, others kept.
    let Response::Config(c) = w.ok(rollback(id, 2, RollbackMode::StableOnly)) else {
        panic!()
    };
    assert_eq!(
        c.rules.iter().map(|r| r.version_id).collect::<Vec<_>>(),
        vec![2, 4, 5, 6]
    );
    assert_eq!(c.release_comment.as_deref(), Some("rollback to version 2"));
    assert_eq!(c.latest_version, 7, "rollback creates no version");
    assert_eq!(served(&c, &[("canary", "true")], None), Some(4));

    // emergency: one default rule, nothing else.
    let Response::Config(c) = w.ok(rollback(id, 1, RollbackMode::Emergency)) else {
        panic!()
    };
    assert_eq!(c.rules, vec![rule(&[], None, 1, 0)]);
    assert_eq!(served(&c, &[("canary", "true")], Some("h")), Some(1));

    // Rolling back to a version that does not exist.
    let e = w.fail(rollback(id, 99, RollbackMode::StableOnly));
    assert_eq!(
        e,
        DomainError::UnknownVersion {
            field: "version_id".into(),
            version: 99
        }
    );
    assert_eq!(e.code(), "unknown_version");
    assert_eq!(w.version_ids(id), (1..=7).collect::<Vec<_>>());
}

#[test]
fn rollback_on_an_unpublished_config_creates_the_default_rule() {
    let mut w = World::new();
    let id = w.setup_json();
    w.ok(version(id, b"{}"));
    w.ok(version(id, b"[]"));
    let Response::Config(c) = w.ok(rollback(id, 1, RollbackMode::StableOnly)) else {
        panic!()
    };
    assert_eq!(c.rules, vec![rule(&[], None, 1, 0)]);
}

#[test]
fn set_releases_validation() {
    let mut w = World::new();
    let id = w.setup_json();
    w.ok(version(id, b"{}"));
    w.ok(version(id, b"[]"));

    let cases: Vec<(Vec<ReleaseRule>, &str, &str)> = vec![
        (
            vec![rule(&[], None, 1, 0), rule(&[], None, 2, 5)],
            "invalid_release_rules",
            "releases",
        ),
        (
            vec![rule(&[("canary", "true")], None, 1, 0)],
            "invalid_release_rules",
            "releases",
        ),
        (
            vec![rule(&[], Some(50), 1, 0)],
            "invalid_release_rules",
            "releases",
        ),
        (
            vec![rule(&[], None, 1, 0), rule(&[("a", "b")], None, 3, 0)],
            "unknown_version",
            "releases[1].version_id",
        ),
        (
            vec![rule(&[], None, 0, 0)],
            "unknown_version",
            "releases[0].version_id",
        ),
        (
            vec![rule(&[], None, 1, 0), rule(&[], Some(101), 2, 0)],
            "invalid_release_rules",
            "releases[1].percent",
        ),
        (
            vec![rule(&[], None, 1, 0), rule(&[("Canary", "x")], None, 2, 0)],
            "invalid_label",
            "releases[1].labels",
        ),
        (
            vec![rule(&[], None, 1, 0), rule(&[("canary", " x")], None, 2, 0)],
            "invalid_label",
            "releases[1].labels.canary",
        ),
    ];
    for (rules, code, field) in cases {
        let e = w.fail(releases(id, rules.clone()));
        assert_eq!((e.code(), e.field()), (code, Some(field)), "{rules:?}: {e}");
    }
    if let DomainError::UnknownVersion { version, .. } = w.fail(releases(
        id,
        vec![rule(&[], None, 1, 0), rule(&[("a", "b")], None, 3, 0)],
    )) {
        assert_eq!(version, 3);
    } else {
        panic!("expected unknown_version");
    }
    let too_many: Vec<ReleaseRule> = std::iter::once(rule(&[], None, 1, 0))
        .chain((0..64).map(|i| rule(&[("n", &i.to_string())], None, 2, 1)))
        .collect();
    let e = w.fail(releases(id, too_many));
    assert_eq!(
        (e.code(), e.field()),
        ("invalid_release_rules", Some("releases"))
    );

    // Valid lists are stored as sent, with the comment; the empty list unpublishes.
    let good = vec![
        rule(&[("canary", "true")], Some(10), 2, 100),
        rule(&[], None, 1, 0),
        rule(&[("ip", "10.0.0.1")], None, 2, 50),
    ];
    let rev_before = w.config(id).revision;
    let Response::Config(c) = w.ok(Command::SetReleases {
        config_id: id,
        rules: good.clone(),
        comment: Some("canary 10%".into()),
    }) else {
        panic!()
    };
    assert_eq!(c.rules, good);
    assert_eq!(c.release_comment.as_deref(), Some("canary 10%"));
    assert!(c.revision > rev_before);
    assert_eq!(served(&c, &[("ip", "10.0.0.1")], None), Some(2));
    assert_eq!(c.latest_version, 2, "rules create no version");
    let Response::Config(c) = w.ok(releases(id, vec![])) else {
        panic!()
    };
    assert!(c.rules.is_empty());
}

// ---- deletes, suspension -------------------------------------------------------------------

#[test]
fn deleting_a_parent_with_children_needs_cascade() {
    let mut w = World::new();
    let id = w.setup_json();
    w.ok(publish(id, b"{}", PublishStrategy::Stable));

    let del_env = |cascade| Command::DeleteEnvironment {
        tenant: "acme".into(),
        app: "web".into(),
        name: "prod".into(),
        cascade,
    };
    let del_app = |cascade| Command::DeleteApp {
        tenant: "acme".into(),
        name: "web".into(),
        cascade,
    };
    let del_tenant = |cascade| Command::DeleteTenant {
        name: "acme".into(),
        cascade,
    };
    for command in [del_env(false), del_app(false), del_tenant(false)] {
        assert_eq!(
            w.fail(command.clone()).code(),
            "has_children",
            "{command:?}"
        );
    }
    // Another app with an empty env, to delete bottom-up without cascade.
    w.ok(create_app("acme", "api"));
    w.ok(create_env("acme", "api", "dev"));
    w.ok(Command::DeleteEnvironment {
        tenant: "acme".into(),
        app: "api".into(),
        name: "dev".into(),
        cascade: false,
    });
    w.ok(Command::DeleteApp {
        tenant: "acme".into(),
        name: "api".into(),
        cascade: false,
    });

    // Cascade removes everything below, versions included.
    let d = w.exec(del_tenant(true));
    assert!(d.outcome.is_ok());
    assert!(d.changes.contains(&Change::DeleteConfig {
        id,
        path: path("acme", "web", "prod", "app.json")
    }));
    assert!(w.state.tenant("acme").is_none());
    assert!(w.state.app("acme", "web").is_none());
    assert!(w.state.environment("acme", "web", "prod").is_none());
    assert!(w.state.config(id).is_none());
    assert!(
        w.state
            .config_by_path(&path("acme", "web", "prod", "app.json"))
            .is_none()
    );
    assert_eq!(w.state.version_count(id), 0);
    assert!(w.dump().is_empty());

    // The names are free again; config ids are never reused.
    let id2 = w.setup_json();
    assert!(id2 > id);
    assert_eq!(version_of(&w.ok(version(id2, b"{}"))), 1);
}

#[test]
fn cascade_is_scoped_to_its_subtree() {
    let mut w = World::new();
    let id = w.setup_json();
    w.ok(create_env("acme", "web", "dev"));
    let other = config_id(w.ok(create_config(
        path("acme", "web", "dev", "app.json"),
        Format::Json,
        None,
        None,
    )));
    w.ok(version(other, b"{}"));
    w.ok(version(id, b"{}"));
    w.ok(Command::DeleteEnvironment {
        tenant: "acme".into(),
        app: "web".into(),
        name: "prod".into(),
        cascade: true,
    });
    assert!(w.state.config(id).is_none());
    assert_eq!(w.version_ids(other), vec![1]);
    assert!(w.state.environment("acme", "web", "dev").is_some());
}

#[test]
fn a_suspended_tenant_rejects_writes() {
    let mut w = World::new();
    let id = w.setup_json();
    w.ok(publish(id, b"{}", PublishStrategy::Stable));
    w.ok(set_status("acme", TenantStatus::Suspended));
    let commands = [
        create_app("acme", "other"),
        create_env("acme", "web", "dev"),
        create_config(
            path("acme", "web", "prod", "x.json"),
            Format::Json,
            None,
            None,
        ),
        Command::UpdateApp {
            tenant: "acme".into(),
            name: "web".into(),
            description: Some("d".into()),
        },
        Command::UpdateEnvironment {
            tenant: "acme".into(),
            app: "web".into(),
            name: "prod".into(),
            description: Some("d".into()),
            approval: None,
        },
        Command::UpdateConfig {
            id,
            schema: Patch::Unchanged,
            retention: Patch::Unchanged,
            description: Some("d".into()),
            encrypted: None,
        },
        version(id, b"{}"),
        releases(id, vec![rule(&[], None, 1, 0)]),
        publish(id, b"{}", PublishStrategy::Stable),
        rollback(id, 1, RollbackMode::Emergency),
    ];
    for command in commands {
        let e = w.fail(command.clone());
        assert_eq!(e.code(), "tenant_suspended", "{command:?}");
        assert_eq!(
            e,
            DomainError::TenantSuspended {
                tenant: "acme".into()
            }
        );
    }
    // Reading still works, and reactivating makes writes possible again.
    assert_eq!(served(&w.config(id), &[], None), Some(1));
    w.ok(set_status("acme", TenantStatus::Active));
    assert_eq!(version_of(&w.ok(version(id, b"{}"))), 2);
}

// ---- retention inside apply ----------------------------------------------------------------

#[test]
fn count_retention_purges_in_the_same_entry_and_keeps_released_versions() {
    let mut w = World::new();
    let id = w.setup(
        QuotasPatch::default(),
        Format::Text,
        None,
        Some(count_policy(2)),
    );
    w.ok(publish(id, b"v1", PublishStrategy::Stable));
    for v in 2..=5u64 {
        let d = w.exec(version(id, format!("v{v}").as_bytes()));
        assert_eq!(version_of(d.outcome.as_ref().unwrap()), v);
        // The purge is part of the same decision: v1 is released, so from v4 on the
        // version that drops out of the newest two goes.
        let purged: Vec<VersionId> = d
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::DeleteVersion { config_id, version } if *config_id == id => Some(*version),
                _ => None,
            })
            .collect();
        let expected = if v >= 4 { vec![v - 2] } else { vec![] };
        assert_eq!(purged, expected, "v{v}");
    }
    // v1 is released, so it stays; of the rest, the newest two.
    assert_eq!(w.version_ids(id), vec![1, 4, 5]);
    // A stable publish moves the default off v1, which is then purged in the same entry.
    w.ok(publish(id, b"v6", PublishStrategy::Stable));
    assert_eq!(w.version_ids(id), vec![5, 6]);
    // A rollback can only name versions that are still there.
    assert_eq!(
        w.fail(rollback(id, 4, RollbackMode::StableOnly)).code(),
        "unknown_version"
    );
    // Version numbers continue after purges.
    assert_eq!(version_of(&w.ok(version(id, b"v7"))), 7);
    assert_eq!(w.version_ids(id), vec![6, 7]);
}

#[test]
fn changing_the_policy_purges_at_once() {
    let mut w = World::new();
    let id = w.setup(QuotasPatch::default(), Format::Text, None, None);
    for i in 1..=5 {
        w.ok(version(id, format!("{i}").as_bytes()));
    }
    w.ok(releases(id, vec![rule(&[], None, 2, 0)]));
    let d = w.exec(Command::UpdateConfig {
        id,
        schema: Patch::Unchanged,
        retention: Patch::Set(count_policy(1)),
        description: None,
        encrypted: None,
    });
    assert!(d.outcome.is_ok());
    assert_eq!(w.version_ids(id), vec![2, 5]);
    // Invalid policies are refused with their field.
    for (p, field) in [
        (count_policy(0), "retention.rules[0].keep"),
        (
            RetentionPolicy {
                strategy: RetentionStrategy::Or,
                rules: vec![],
            },
            "retention.rules",
        ),
    ] {
        let e = w.fail(Command::UpdateConfig {
            id,
            schema: Patch::Unchanged,
            retention: Patch::Set(p),
            description: None,
            encrypted: None,
        });
        assert_eq!((e.code(), e.field()), ("invalid_argument", Some(field)));
    }
}

#[test]
fn days_retention_is_swept_by_the_leader_command() {
    let mut w = World::new();
    let id = w.setup(
        QuotasPatch::default(),
        Format::Text,
        None,
        Some(days_policy(2)),
    );
    let t = w.tick();
    w.propose(Proposal::new(
        t,
        publish(id, b"v1", PublishStrategy::Stable),
    ));
    w.propose(Proposal::new(t + 1, version(id, b"v2")));
    w.propose(Proposal::new(t + 2, version(id, b"v3")));
    w.propose(Proposal::new(t + DAY, version(id, b"v4")));
    assert_eq!(w.version_ids(id), vec![1, 2, 3, 4]);

    let later = t + 2 * DAY + 2;
    assert!(retention_sweep_needed(&w.state, later));
    assert!(!retention_sweep_needed(&w.state, t + 2 * DAY));
    let rev_before = w.config(id).revision;
    let d = w.propose(Proposal::new(later, Command::SweepRetention));
    assert_eq!(d.outcome, Ok(Response::Swept { purged: 2 }));
    // v1 is released and v4 is latest (and young): both stay.
    assert_eq!(w.version_ids(id), vec![1, 4]);
    assert!(w.config(id).revision > rev_before);
    assert!(!retention_sweep_needed(&w.state, later));
    // Nothing left to do: an empty sweep changes nothing.
    let d = w.propose(Proposal::new(later + 1, Command::SweepRetention));
    assert_eq!(d.outcome, Ok(Response::Swept { purged: 0 }));
    assert!(d.changes.is_empty());
}

// ---- determinism and rebuild ---------------------------------------------------------------

const TENANTS: [&str; 2] = ["t0", "t1"];
const APPS: [&str; 2] = ["a0", "a1"];
const ENVS: [&str; 2] = ["e0", "e1"];
const NAMES: [&str; 2] = ["c0", "c1"];
const FORMATS: [Format; 4] = [Format::Json, Format::Yaml, Format::Text, Format::Properties];
const CONTENTS: [&[u8]; 6] = [
    br#"{"port": 1}"#,
    br#"{"port": "x"}"#,
    b"{",
    b"port=1",
    b"\xff\xfe",
    b"0123456789012345678901234567890123456789",
];

#[derive(Debug, Clone)]
enum Op {
    CreateTenant(usize, Option<u64>),
    SetStatus(usize, bool),
    CreateApp(usize, usize),
    CreateEnv(usize, usize, usize),
    CreateConfig(
        usize,
        usize,
        usize,
        usize,
        usize,
        bool,
        Option<RetentionPolicy>,
    ),
    UpdateRetention(u64, Option<RetentionPolicy>),
    Version(u64, usize),
    Releases(u64, Vec<ReleaseRule>),
    Publish(u64, usize, Option<(BTreeMap<String, String>, Option<u8>)>),
    Rollback(u64, u64, bool),
    DeleteConfig(u64),
    DeleteEnv(usize, usize, usize, bool),
    DeleteApp(usize, usize, bool),
    DeleteTenant(usize, bool),
    Sweep,
}

#[derive(Debug, Clone)]
struct Step {
    op: Op,
    dt: i64,
    idempotency: Option<(u8, u8)>,
    expected_revision: Option<u64>,
    /// Send the previous request again (a client retry), with this step's timestamp.
    retry: bool,
}

fn arb_policy() -> impl Strategy<Value = Option<RetentionPolicy>> {
    prop::option::of(
        (
            any::<bool>(),
            prop::collection::vec((any::<bool>(), 1u64..4), 1..3),
        )
            .prop_map(|(and, rules)| RetentionPolicy {
                strategy: if and {
                    RetentionStrategy::And
                } else {
                    RetentionStrategy::Or
                },
                rules: rules
                    .into_iter()
                    .map(|(count, keep)| RetentionRule {
                        kind: if count {
                            RetentionKind::Count
                        } else {
                            RetentionKind::Days
                        },
                        keep,
                    })
                    .collect(),
            }),
    )
}

fn arb_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(vec!["canary", "region"]).prop_map(str::to_owned),
        prop::sample::select(vec!["true", "eu"]).prop_map(str::to_owned),
        0..2,
    )
}

fn arb_op() -> impl Strategy<Value = Op> {
    let t = 0usize..2;
    let id = 1u64..6;
    prop_oneof![
        2 => (t.clone(), prop::option::of(1u64..4)).prop_map(|(t, q)| Op::CreateTenant(t, q)),
        1 => (t.clone(), any::<bool>()).prop_map(|(t, s)| Op::SetStatus(t, s)),
        2 => (t.clone(), 0usize..2).prop_map(|(t, a)| Op::CreateApp(t, a)),
        2 => (t.clone(), 0usize..2, 0usize..2).prop_map(|(t, a, e)| Op::CreateEnv(t, a, e)),
        3 => (t.clone(), 0usize..2, 0usize..2, 0usize..2, 0usize..4, any::<bool>(), arb_policy())
            .prop_map(|(t, a, e, n, f, s, r)| Op::CreateConfig(t, a, e, n, f, s, r)),
        1 => (id.clone(), arb_policy()).prop_map(|(i, r)| Op::UpdateRetention(i, r)),
        6 => (id.clone(), 0usize..6).prop_map(|(i, c)| Op::Version(i, c)),
        2 => (
            id.clone(),
            prop::collection::vec(
                (arb_labels(), prop::option::weighted(0.3, 0u8..=101), 0u64..6, -1i32..3)
                    .prop_map(|(labels, percent, version_id, priority)| ReleaseRule {
                        labels,
                        percent,
                        version_id,
                        priority,
                    }),
                0..4,
            ),
        )
            .prop_map(|(i, r)| Op::Releases(i, r)),
        4 => (id.clone(), 0usize..6, prop::option::of((arb_labels(), prop::option::of(0u8..=100))))
            .prop_map(|(i, c, s)| Op::Publish(i, c, s)),
        2 => (id.clone(), 0u64..6, any::<bool>()).prop_map(|(i, v, e)| Op::Rollback(i, v, e)),
        1 => id.clone().prop_map(Op::DeleteConfig),
        1 => (t.clone(), 0usize..2, 0usize..2, any::<bool>())
            .prop_map(|(t, a, e, c)| Op::DeleteEnv(t, a, e, c)),
        1 => (t.clone(), 0usize..2, any::<bool>()).prop_map(|(t, a, c)| Op::DeleteApp(t, a, c)),
        1 => (t, any::<bool>()).prop_map(|(t, c)| Op::DeleteTenant(t, c)),
        1 => Just(Op::Sweep),
    ]
}

fn arb_step() -> impl Strategy<Value = Step> {
    (
        arb_op(),
        prop_oneof![
            8 => 0i64..60_000,
            2 => (DAY as i64 / 2)..(2 * DAY as i64),
            1 => -120_000i64..0,
        ],
        prop::option::weighted(0.15, (0u8..3, 0u8..2)),
        prop::option::weighted(0.15, 0u64..40),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(op, dt, idempotency, expected_revision, retry)| Step {
            op,
            dt,
            idempotency,
            expected_revision,
            retry,
        })
}

fn to_command(op: &Op) -> Command {
    let s = |x: &str| x.to_owned();
    match op.clone() {
        Op::CreateTenant(t, q) => create_tenant(
            TENANTS[t],
            QuotasPatch {
                max_versions_per_config: q,
                max_config_bytes: q.map(|q| 30 + q),
                ..Default::default()
            },
        ),
        Op::SetStatus(t, suspended) => set_status(
            TENANTS[t],
            if suspended {
                TenantStatus::Suspended
            } else {
                TenantStatus::Active
            },
        ),
        Op::CreateApp(t, a) => create_app(TENANTS[t], APPS[a]),
        Op::CreateEnv(t, a, e) => create_env(TENANTS[t], APPS[a], ENVS[e]),
        Op::CreateConfig(t, a, e, n, f, schema, retention) => create_config(
            path(TENANTS[t], APPS[a], ENVS[e], NAMES[n]),
            FORMATS[f],
            schema.then_some(r#"{"type":"object","properties":{"port":{"type":"integer"}}}"#),
            retention,
        ),
        Op::UpdateRetention(id, r) => Command::UpdateConfig {
            id,
            schema: Patch::Unchanged,
            retention: r.map_or(Patch::Clear, Patch::Set),
            description: None,
            encrypted: None,
        },
        Op::Version(id, c) => version(id, CONTENTS[c]),
        Op::Releases(id, rules) => releases(id, rules),
        Op::Publish(id, c, strategy) => publish(
            id,
            CONTENTS[c],
            match strategy {
                None => PublishStrategy::Stable,
                Some((labels, percent)) => PublishStrategy::Canary {
                    labels,
                    percent,
                    priority: 100,
                },
            },
        ),
        Op::Rollback(id, v, emergency) => rollback(
            id,
            v,
            if emergency {
                RollbackMode::Emergency
            } else {
                RollbackMode::StableOnly
            },
        ),
        Op::DeleteConfig(id) => Command::DeleteConfig { id },
        Op::DeleteEnv(t, a, e, cascade) => Command::DeleteEnvironment {
            tenant: s(TENANTS[t]),
            app: s(APPS[a]),
            name: s(ENVS[e]),
            cascade,
        },
        Op::DeleteApp(t, a, cascade) => Command::DeleteApp {
            tenant: s(TENANTS[t]),
            name: s(APPS[a]),
            cascade,
        },
        Op::DeleteTenant(t, cascade) => Command::DeleteTenant {
            name: s(TENANTS[t]),
            cascade,
        },
        Op::Sweep => Command::SweepRetention,
    }
}

/// Tenants, apps, environments and four configs (ids 1 to 4) of different formats, schema
/// and retention, so that most random steps act on something that exists.
fn prelude() -> Vec<Command> {
    let mut out = vec![
        create_tenant(
            "t0",
            QuotasPatch {
                max_versions_per_config: Some(4),
                ..Default::default()
            },
        ),
        create_tenant("t1", QuotasPatch::default()),
    ];
    for t in TENANTS {
        for a in APPS {
            out.push(create_app(t, a));
            out.push(create_env(t, a, "e0"));
        }
    }
    let schema = r#"{"type":"object","properties":{"port":{"type":"integer"}}}"#;
    out.push(create_config(
        path("t0", "a0", "e0", "c0"),
        Format::Json,
        Some(schema),
        None,
    ));
    out.push(create_config(
        path("t0", "a0", "e0", "c1"),
        Format::Yaml,
        None,
        Some(count_policy(2)),
    ));
    out.push(create_config(
        path("t1", "a0", "e0", "c0"),
        Format::Text,
        None,
        Some(days_policy(1)),
    ));
    out.push(create_config(
        path("t1", "a1", "e0", "c1"),
        Format::Properties,
        Some(schema),
        None,
    ));
    out
}

/// Proposals for `steps`, stamped from `start` on.
fn to_proposals(start: u64, steps: &[Step]) -> Vec<Proposal> {
    let mut ts = start as i64;
    let mut out: Vec<Proposal> = Vec::new();
    for s in steps {
        ts += s.dt;
        if let (true, Some(prev)) = (s.retry, out.last()) {
            let mut p = prev.clone();
            p.timestamp_ms = ts as u64;
            out.push(p);
            continue;
        }
        out.push({
            let command = to_command(&s.op);
            let mut p = Proposal::new(ts as u64, command.clone());
            p.expected_revision = s.expected_revision;
            p.author = Some("alice".into());
            if let Some((key, fp)) = s.idempotency {
                // The fingerprint covers the request: same command and variant -> same print.
                p.idempotency = Some(IdempotencyKey {
                    key: format!("key-{key}"),
                    fingerprint: ContentHash::of(format!("{fp}:{command:?}").as_bytes()),
                });
            }
            p
        });
    }
    out
}

fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(arb_step(), 1..60)
}

/// The prelude, then random steps.
fn arb_run() -> impl Strategy<Value = Vec<Proposal>> {
    arb_steps().prop_map(|steps| {
        let mut out: Vec<Proposal> = prelude()
            .into_iter()
            .enumerate()
            .map(|(i, c)| Proposal::new(T0 + i as u64, c))
            .collect();
        out.extend(to_proposals(T0 + 1_000, &steps));
        out
    })
}

/// Invariants that hold after every entry, whatever the entry was.
fn check_invariants(state: &State) -> Result<(), TestCaseError> {
    for c in state.configs() {
        let versions: Vec<VersionId> = state.versions_of(c.id).map(|v| v.version).collect();
        prop_assert!(versions.iter().all(|&v| v >= 1 && v <= c.latest_version));
        if c.latest_version > 0 {
            prop_assert!(
                state.version(c.id, c.latest_version).is_some(),
                "latest purged: {:?}",
                c
            );
        }
        for r in &c.rules {
            prop_assert!(
                state.version(c.id, r.version_id).is_some(),
                "rule points at a missing version: {:?}",
                c
            );
        }
        let defaults = c.rules.iter().filter(|r| r.is_default()).count();
        prop_assert!(c.rules.is_empty() || defaults == 1, "{:?}", c.rules);
        let p = &c.path;
        let tenant = state.tenant(&p.tenant);
        prop_assert!(tenant.is_some(), "orphan config {}", p);
        prop_assert!(
            state.app(&p.tenant, &p.app).is_some(),
            "orphan config {}",
            p
        );
        prop_assert!(
            state.environment(&p.tenant, &p.app, &p.env).is_some(),
            "orphan config {}",
            p
        );
        prop_assert_eq!(state.config_by_path(p).map(|x| x.id), Some(c.id));
        let quota = tenant.unwrap().quotas.max_versions_per_config;
        prop_assert!(versions.len() as u64 <= quota);
    }
    for t in state.tenants() {
        for a in state.apps(&t.name) {
            for e in state.environments(&a.tenant, &a.name) {
                prop_assert_eq!(&e.app, &a.name);
            }
        }
    }
    Ok(())
}

fn run(state: &mut State, first_rev: u64, proposals: &[Proposal]) -> Vec<Decision> {
    proposals
        .iter()
        .enumerate()
        .map(|(i, p)| state.apply(first_rev + i as u64, p))
        .collect()
}

fn dump(state: &State) -> Vec<Change> {
    state.to_changes().collect()
}

/// A fresh state rebuilt from another's `to_changes()` and counters, as after a restart or
/// a snapshot install.
fn rebuild(from: &State) -> State {
    let mut s = State::new();
    for c in from.to_changes() {
        s.apply_change(c);
    }
    s.set_counters(from.counters());
    s
}

proptest! {
    #[test]
    fn apply_is_deterministic(proposals in arb_run()) {
        let mut a = State::new();
        let mut b = State::new();
        for (i, p) in proposals.iter().enumerate() {
            let rev = i as u64 + 1;
            let da = a.apply(rev, p);
            let db = b.apply(rev, p);
            prop_assert_eq!(&da, &db);
            // Rejections and replays persist nothing but housekeeping.
            if da.outcome.is_err() || da.replayed {
                prop_assert!(da.changes.iter().all(is_housekeeping), "{:?}", da);
            }
            if let (Command::SweepRetention, Ok(_)) = (&p.command, &da.outcome) {
                prop_assert!(!retention_sweep_needed(&a, a.counters().clock_ms));
            }
            check_invariants(&a)?;
        }
        prop_assert_eq!(dump(&a), dump(&b));
        prop_assert_eq!(a.counters(), b.counters());
        prop_assert_eq!(a.digest(), b.digest());
    }

    #[test]
    fn a_rebuilt_state_decides_like_the_original(
        prefix in arb_run(),
        suffix in arb_steps(),
    ) {
        let mut a = State::new();
        run(&mut a, 1, &prefix);
        let suffix = to_proposals(prefix.last().unwrap().timestamp_ms, &suffix);
        let mut b = rebuild(&a);
        prop_assert_eq!(dump(&a), dump(&b));
        prop_assert_eq!(a.digest(), b.digest());
        let first = prefix.len() as u64 + 1;
        // The rebuilt state and the original decide the same from here on.
        let da = run(&mut a, first, &suffix);
        let db = run(&mut b, first, &suffix);
        prop_assert_eq!(da, db);
        prop_assert_eq!(dump(&a), dump(&b));
        prop_assert_eq!(a.counters(), b.counters());
    }

    /// Applying a decision's changes to a copy of the old state gives the new state: what
    /// the storage layer persists is exactly what apply did in memory.
    #[test]
    fn decision_changes_are_the_whole_effect(proposals in arb_run()) {
        let mut a = State::new();
        let mut mirror = State::new();
        for (i, p) in proposals.iter().enumerate() {
            let d = a.apply(i as u64 + 1, p);
            for c in d.changes.clone() {
                mirror.apply_change(c);
            }
            mirror.set_counters(d.counters);
        }
        prop_assert_eq!(dump(&a), dump(&mirror));
        prop_assert_eq!(a.counters(), mirror.counters());
    }
}

// ---- encrypted configs -----------------------------------------------------------------------

fn sealed(plaintext: &[u8], schema: Option<&str>, kek: &str) -> conflux_domain::SealedContent {
    conflux_domain::SealedContent {
        seal: conflux_domain::Seal {
            key: wrapped(kek, b"wrapped-key"),
            nonce: Bytes::from_static(&[9; 12]),
        },
        plaintext_hash: ContentHash::of(plaintext),
        plaintext_size: plaintext.len() as u64,
        schema_digest: conflux_domain::SealedContent::digest_of_schema(schema),
    }
}

fn wrapped(kek: &str, bytes: &'static [u8]) -> conflux_domain::WrappedKey {
    conflux_domain::WrappedKey {
        kek_id: kek.into(),
        ciphertext: Bytes::from_static(bytes),
    }
}

fn sealed_version(id: ConfigId, s: conflux_domain::SealedContent) -> Command {
    Command::CreateVersion {
        config_id: id,
        content: Bytes::from_static(b"<ciphertext>"),
        description: None,
        sealed: Some(s),
    }
}

/// tenant `acme` (quotas), config `acme/web/prod/secret.json`, encrypted, with `schema`.
fn encrypted_setup(w: &mut World, quotas: QuotasPatch, schema: Option<&str>) -> ConfigId {
    w.ok(create_tenant("acme", quotas));
    w.ok(create_app("acme", "web"));
    w.ok(create_env("acme", "web", "prod"));
    config_id(w.ok(Command::CreateConfig {
        path: path("acme", "web", "prod", "secret.json"),
        format: Format::Json,
        schema: schema.map(str::to_owned),
        retention: None,
        description: None,
        encrypted: true,
    }))
}

#[test]
fn a_sealed_version_records_the_plaintext_facts_and_its_seal() {
    let mut w = World::new();
    let id = encrypted_setup(&mut w, QuotasPatch::default(), None);
    assert!(w.config(id).encrypted);
    let plaintext = br#"{"password":"hunter2"}"#;
    let d = w.exec(sealed_version(id, sealed(plaintext, None, "kek-a")));
    let Ok(Response::Version { version, .. }) = &d.outcome else {
        panic!("{:?}", d.outcome)
    };
    assert_eq!(version.hash, ContentHash::of(plaintext));
    assert_eq!(version.size, plaintext.len() as u64);
    assert_eq!(version.seal.as_ref().unwrap().key.kek_id, "kek-a");
    let stored = d.changes.iter().find_map(|c| match c {
        Change::PutVersion { content, .. } => Some(content.clone()),
        _ => None,
    });
    assert_eq!(
        stored.as_deref(),
        Some(&b"<ciphertext>"[..]),
        "storage gets the ciphertext"
    );
}

#[test]
fn sealing_must_match_the_config_and_its_schema() {
    let mut w = World::new();
    let schema = r#"{"type":"object"}"#;
    let id = encrypted_setup(&mut w, QuotasPatch::default(), Some(schema));

    // Plaintext into an encrypted config, and a sealed content into a plain one.
    assert_eq!(w.fail(version(id, b"{}")).field(), Some("content"));
    let plain = w.setup_json_in_same_tenant();
    assert_eq!(
        w.fail(sealed_version(plain, sealed(b"{}", None, "k")))
            .field(),
        Some("content")
    );

    // Validated against a schema that is no longer the config's: refused, nothing written.
    let stale = sealed(b"{}", Some(r#"{"type":"array"}"#), "k");
    let e = w.fail(sealed_version(id, stale));
    assert_eq!(e.code(), "invalid_argument");
    assert!(e.to_string().contains("schema changed"), "{e}");
    w.ok(sealed_version(id, sealed(b"{}", Some(schema), "k")));
    assert_eq!(w.version_ids(id), vec![1]);
}

#[test]
fn the_size_quota_counts_the_plaintext_of_a_sealed_version() {
    let mut w = World::new();
    let quotas = QuotasPatch {
        max_config_bytes: Some(10),
        ..QuotasPatch::default()
    };
    let id = encrypted_setup(&mut w, quotas, None);
    let e = w.fail(sealed_version(id, sealed(b"01234567890", None, "k")));
    assert_eq!(e.code(), "quota_exceeded");
    w.ok(sealed_version(id, sealed(b"0123456789", None, "k")));
}

#[test]
fn encryption_cannot_be_changed_after_creation() {
    let mut w = World::new();
    let id = encrypted_setup(&mut w, QuotasPatch::default(), None);
    let off = Command::UpdateConfig {
        id,
        schema: Patch::Unchanged,
        retention: Patch::Unchanged,
        description: None,
        encrypted: Some(false),
    };
    assert_eq!(w.fail(off).field(), Some("encrypted"));
    assert!(w.config(id).encrypted);
    // Repeating the current setting is fine (Terraform sends every attribute).
    w.ok(Command::UpdateConfig {
        id,
        schema: Patch::Unchanged,
        retention: Patch::Unchanged,
        description: Some("same".into()),
        encrypted: Some(true),
    });
}

#[test]
fn a_rewrap_replaces_only_the_key_it_was_built_from() {
    let mut w = World::new();
    let id = encrypted_setup(&mut w, QuotasPatch::default(), None);
    w.ok(sealed_version(id, sealed(b"{}", None, "old")));
    let revision = w.config(id).revision;
    let rewrap = |from, to| conflux_domain::Rewrap {
        config_id: id,
        version: 1,
        from,
        to,
    };
    let first = rewrap(wrapped("old", b"wrapped-key"), wrapped("new", b"rewrapped"));
    let r = w.ok(Command::RewrapKeys {
        keys: vec![first.clone()],
    });
    assert_eq!(
        r,
        Response::Rewrapped {
            rewrapped: 1,
            skipped: 0
        }
    );
    let key = |w: &World| {
        w.state
            .version(id, 1)
            .unwrap()
            .seal
            .as_ref()
            .unwrap()
            .key
            .clone()
    };
    assert_eq!(key(&w), wrapped("new", b"rewrapped"));
    assert_eq!(
        w.config(id).revision,
        revision,
        "a rewrap is not a config change"
    );

    // The same command again (a retry after a leader change), or one built from a key that
    // has since changed, or for a version that is gone: nothing happens.
    let stale = rewrap(wrapped("old", b"wrapped-key"), wrapped("other", b"x"));
    let gone = conflux_domain::Rewrap {
        version: 9,
        ..first.clone()
    };
    let r = w.ok(Command::RewrapKeys {
        keys: vec![first, stale, gone],
    });
    assert_eq!(
        r,
        Response::Rewrapped {
            rewrapped: 0,
            skipped: 3
        }
    );
    assert_eq!(key(&w), wrapped("new", b"rewrapped"));
}
