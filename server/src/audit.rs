//! Audit that is never lost (contract section 6).
//!
//! Two sources, two paths into the metadata DB:
//! - **Config-plane changes** get their record inside the Raft apply ([`AuditEntry::of_change`],
//!   written to the `audit_outbox` column family in the same batch as the change), so a record
//!   exists exactly when the change committed, on every node. The leader drains the outbox
//!   into the DB keyed by `raft:<index>:<position>` (inserting twice is harmless) and then
//!   proposes `TrimAuditOutbox`, which drops the drained records on every node. A new leader
//!   simply drains what is left.
//! - **Node-local events** (denied requests, logins, user/token/binding changes) are written
//!   by the node that handled them: first appended to a spool file in its data directory,
//!   then copied into the DB keyed by `node:<id>:<random>`; the spool keeps them while the DB
//!   is down.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use conflux_domain::audit::AuditSubject;
use conflux_domain::{Command, DomainError, Proposal, ReleaseProposal, Response};
use conflux_metadata::{MetadataError, NewAuditRecord};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use crate::auth::MetadataLink;
use crate::clock::now_ms;

/// One audit record as the node keeps it before the metadata DB has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub time_ms: u64,
    pub actor: String,
    pub action: String,
    pub resource: String,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
    /// `success`, `denied` or `failed`.
    pub outcome: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub revision: Option<u64>,
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub source_ip: String,
    #[serde(default)]
    pub user_agent: String,
    /// JSON text (MessagePack cannot carry an arbitrary JSON value losslessly).
    #[serde(default)]
    pub details: String,
    /// The webhook events this change raises (`version.created`, `release.changed`, ...),
    /// fanned out to the matching webhooks' deliveries when the leader drains the outbox.
    /// Not part of the audit record itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

impl AuditEntry {
    /// The record of an applied config-plane proposal. Deterministic: every node derives
    /// the same record from the same entry.
    pub fn of_change(
        author: &str,
        subject: AuditSubject,
        proposal: &Proposal,
        revision: u64,
        outcome: &Result<Response, DomainError>,
        replayed: bool,
    ) -> AuditEntry {
        let mut details = serde_json::Map::new();
        let mut action = subject.action;
        if replayed {
            details.insert("replayed".into(), json!(true));
        }
        if subject.break_glass {
            details.insert("break_glass".into(), json!(true));
        }
        // Who changed an environment's approval settings, and to what.
        if let Command::CreateEnvironment {
            approval: Some(settings),
            ..
        }
        | Command::UpdateEnvironment {
            approval: Some(settings),
            ..
        } = &proposal.command
        {
            details.insert("approval".into(), json!(settings));
        }
        match outcome {
            Ok(Response::Version { version, config }) => {
                details.insert("version_id".into(), json!(version.version));
                if matches!(proposal.command, Command::Publish { .. }) {
                    details.insert("releases".into(), json!(config.rules));
                }
            }
            Ok(Response::Config(config))
                if matches!(
                    proposal.command,
                    Command::SetReleases { .. } | Command::Rollback { .. }
                ) =>
            {
                details.insert("releases".into(), json!(config.rules));
            }
            // A release change that became a proposal is recorded as its creation; the
            // action it stands for stays in `details.change`.
            Ok(Response::Proposed {
                proposal: created,
                version,
            }) => {
                details.insert("change".into(), json!(subject.action));
                action = "proposal.create";
                if let Some(v) = version {
                    details.insert("version_id".into(), json!(v.version));
                }
                describe_proposal(&mut details, created);
            }
            Ok(Response::Proposal {
                proposal: decided,
                config,
            }) => {
                describe_proposal(&mut details, decided);
                if let Some(config) = config {
                    details.insert("releases".into(), json!(config.rules));
                }
            }
            Err(e) => {
                details.insert("code".into(), json!(e.code()));
            }
            Ok(_) => {}
        }
        let events = if replayed {
            Vec::new()
        } else {
            conflux_domain::audit::webhook_events(&proposal.command, outcome)
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        let origin = proposal.origin.clone().unwrap_or_default();
        AuditEntry {
            time_ms: proposal.timestamp_ms,
            actor: author.to_owned(),
            action: action.to_owned(),
            resource: subject.resource,
            tenant: subject.tenant,
            app: subject.app,
            env: subject.env,
            outcome: if outcome.is_ok() { "success" } else { "failed" }.to_owned(),
            reason: outcome.as_ref().err().map(|e| e.to_string()),
            revision: outcome.is_ok().then_some(revision),
            request_id: origin.request_id,
            source_ip: origin.source_ip,
            user_agent: origin.user_agent,
            details: serde_json::Value::Object(details).to_string(),
            events,
        }
    }

    fn into_record(self, key: String) -> NewAuditRecord {
        NewAuditRecord {
            key,
            time_ms: self.time_ms as i64,
            actor: self.actor,
            action: self.action,
            resource: self.resource,
            tenant: self.tenant,
            app: self.app,
            env: self.env,
            outcome: self.outcome,
            reason: self.reason,
            revision: self.revision.map(|r| r as i64),
            request_id: self.request_id,
            source_ip: self.source_ip,
            user_agent: self.user_agent,
            details: serde_json::from_str(&self.details).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// What an audit record (and a webhook event's `data`) says about a proposal: enough to
/// answer who proposed, who approved and what became of it without another look-up.
fn describe_proposal(
    details: &mut serde_json::Map<String, serde_json::Value>,
    p: &ReleaseProposal,
) {
    details.insert("proposal_id".into(), json!(p.id));
    details.insert("status".into(), json!(p.status.as_str()));
    details.insert("proposer".into(), json!(p.proposer));
    details.insert("base_revision".into(), json!(p.base_revision));
    let approvers: Vec<&str> = p.approvals.iter().map(|a| a.approver.as_str()).collect();
    details.insert("approvers".into(), json!(approvers));
    if let Some(reason) = &p.reason {
        details.insert("reason".into(), json!(reason));
    }
    if let Some(comment) = p.history.last().and_then(|h| h.comment.as_ref()) {
        details.insert("comment".into(), json!(comment));
    }
}

/// The key of a config-plane record in the metadata DB.
pub fn outbox_key(index: u64, position: u32) -> String {
    format!("raft:{index}:{position}")
}

/// Records of one node's own events: appended to a spool file, copied to the DB by
/// [`Auditor::run`].
#[derive(Debug)]
pub struct Auditor {
    node_id: u64,
    spool: PathBuf,
    /// Serialises appends with the drain's rewrite of the file.
    file_lock: Mutex<()>,
    wake: Notify,
}

/// Outbox records copied to the DB per insert.
const DRAIN_BATCH: usize = 1000;
/// Spooled lines copied per round: each round rewrites the rest of the spool, so after a long
/// outage large rounds keep the catch-up linear in practice.
const SPOOL_BATCH: usize = 5000;
const DRAIN_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Serialize, Deserialize)]
struct Spooled {
    key: String,
    entry: AuditEntry,
}

impl Auditor {
    pub fn new(node_id: u64, data_dir: &std::path::Path) -> Arc<Auditor> {
        Arc::new(Auditor {
            node_id,
            spool: data_dir.join("audit-spool.jsonl"),
            file_lock: Mutex::new(()),
            wake: Notify::new(),
        })
    }

    /// Records a node-local event. The spool append is the commitment: once it returns, the
    /// record reaches the DB eventually, across DB outages and node restarts.
    pub fn record(&self, entry: AuditEntry) {
        let key = format!(
            "node:{}:{}",
            self.node_id,
            hex::encode(crate::auth::token::random_bytes::<12>())
        );
        let line = match serde_json::to_string(&Spooled { key, entry }) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an audit record");
                return;
            }
        };
        let _guard = self.file_lock.lock();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spool)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::error!(error = %e, file = %self.spool.display(), "cannot spool an audit record");
        }
        drop(_guard);
        self.wake.notify_one();
    }

    /// Reads up to [`SPOOL_BATCH`] spooled lines; returns the records among them and how many
    /// lines were read.
    fn read_spool(&self) -> std::io::Result<(Vec<Spooled>, usize)> {
        let _guard = self.file_lock.lock();
        let file = match std::fs::File::open(&self.spool) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        let mut lines = 0;
        for line in std::io::BufReader::new(file).lines().take(SPOOL_BATCH) {
            let line = line?;
            lines += 1;
            match serde_json::from_str::<Spooled>(&line) {
                Ok(s) => out.push(s),
                // A torn last line after a crash: nothing the DB can take.
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable spooled audit line"),
            }
        }
        Ok((out, lines))
    }

    /// Drops the first `n` lines of the spool (they are in the DB).
    fn drop_spooled(&self, n: usize) -> std::io::Result<()> {
        let _guard = self.file_lock.lock();
        let text = std::fs::read_to_string(&self.spool)?;
        let rest: String = text.split_inclusive('\n').skip(n).collect();
        let tmp = self.spool.with_extension("jsonl.tmp");
        std::fs::write(&tmp, rest)?;
        std::fs::rename(&tmp, &self.spool)
    }

    /// Copies spooled records into the DB until `stop` resolves.
    pub async fn run(
        self: Arc<Self>,
        link: Arc<MetadataLink>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(DRAIN_EVERY) => {}
            }
            loop {
                let (batch, n) = match self.read_spool() {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the audit spool");
                        break;
                    }
                };
                if n == 0 {
                    break;
                }
                let records: Vec<NewAuditRecord> = batch
                    .into_iter()
                    .map(|s| s.entry.into_record(s.key))
                    .collect();
                if !records.is_empty() && insert(&link, &records).await.is_err() {
                    break;
                }
                if let Err(e) = self.drop_spooled(n) {
                    tracing::warn!(error = %e, "cannot trim the audit spool (records stay; inserting them again is harmless)");
                    break;
                }
            }
        }
    }
}

async fn insert(link: &MetadataLink, records: &[NewAuditRecord]) -> Result<u64, MetadataError> {
    let store = link.store()?;
    let result = store.insert_audit(records).await;
    link.observe(&result);
    if let Err(e) = &result {
        tracing::debug!(error = %e, "audit records wait for the metadata DB");
    }
    result
}

/// Outbox records drained per round, at most: a round ends with one `TrimAuditOutbox`
/// entry, so bounding rounds by time (the drain interval) rather than by records keeps
/// those entries to a few per second under any write load.
const OUTBOX_ROUND_MAX: usize = 20_000;

/// One round of the leader's outbox drain: copies what the outbox holds (up to
/// [`OUTBOX_ROUND_MAX`] records, [`DRAIN_BATCH`] per insert) into the DB and returns the
/// position of the last one, for `TrimAuditOutbox`.
pub async fn drain_outbox(
    plane: &crate::storage::ConfigPlane,
    link: &MetadataLink,
) -> Result<Option<(u64, u32)>, MetadataError> {
    let mut last = None;
    let mut drained = 0;
    while drained < OUTBOX_ROUND_MAX {
        let pending = plane.audit_outbox(last, DRAIN_BATCH);
        let Some(&(index, position, _)) = pending.last() else {
            break;
        };
        drained += pending.len();
        // Webhook deliveries of these changes, before the outbox lets go of them (ids derived
        // from the outbox keys: enqueuing again after a crash or a leader change is harmless).
        // The audit rows go in next; the trim waits for both.
        crate::webhooks::enqueue(link, &pending).await?;
        let records: Vec<NewAuditRecord> = pending
            .into_iter()
            .map(|(i, p, entry)| entry.into_record(outbox_key(i, p)))
            .collect();
        insert(link, &records).await?;
        // Grants on a deleted tenant, app or environment go with it, so that one created
        // again under the same name inherits nobody's access. Repeating this is harmless.
        let store = link.store()?;
        for r in &records {
            if r.outcome == "success"
                && matches!(
                    r.action.as_str(),
                    "tenant.delete" | "app.delete" | "env.delete"
                )
            {
                store.delete_bindings_under(&r.resource).await?;
            }
        }
        last = Some((index, position));
    }
    Ok(last)
}

/// A node-local event of `caller` (or an anonymous one).
#[allow(clippy::too_many_arguments)]
pub fn event(
    actor: &str,
    origin: &crate::api::access::Origin,
    action: &str,
    resource: &str,
    tenant: Option<&str>,
    outcome: &str,
    reason: Option<String>,
    details: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        time_ms: now_ms(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        resource: resource.to_owned(),
        tenant: tenant.map(str::to_owned),
        app: None,
        env: None,
        outcome: outcome.to_owned(),
        reason,
        revision: None,
        request_id: origin.request_id(),
        source_ip: origin.source_ip(),
        user_agent: origin.user_agent(),
        details: details.to_string(),
        events: Vec::new(),
    }
}
