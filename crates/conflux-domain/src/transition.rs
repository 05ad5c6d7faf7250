//! The state-machine transition: given the state and one committed proposal, decide the
//! response and the list of changes. Pure and deterministic: the same state, revision and
//! proposal give the same decision on every node.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::command::{Command, Patch, Proposal, PublishStrategy, Response, RollbackMode};
use crate::error::{DomainError, Entity, Quota};
use crate::format::{self, Format};
use crate::labels::{MAX_CLIENT_LABELS, MAX_LABEL_VALUE_LEN};
use crate::model::{
    App, ApprovalSettings, Config, ConfigPath, ContentHash, Environment, Quotas, QuotasPatch,
    ReleaseRule, RetentionKind, RetentionPolicy, Revision, Tenant, TenantStatus, UnixMillis,
    VersionId, VersionMeta,
};
use crate::names::{validate_config_name, validate_label_key, validate_name};
use crate::proposal::{
    Approval, MAX_COMMENT_LEN, MAX_FINISHED_PROPOSALS_PER_CONFIG, ProposalAction, ProposalEvent,
    ProposalId, ProposalStatus, ProposedChange, ReleaseProposal,
};
use crate::retention::{validate_policy, versions_to_purge};
use crate::schema::CompiledSchema;
use crate::sealed::{Rewrap, SealedContent};
use crate::state::{Change, Counters, IDEMPOTENCY_TTL_MS, IdempotencyRecord, State};

/// A config has at most this many release rules.
pub const MAX_RULES_PER_CONFIG: usize = 64;
pub const MAX_DESCRIPTION_LEN: usize = 1024;
pub const MAX_DISPLAY_NAME_LEN: usize = 256;
/// Schemas are small documents; a larger one is almost certainly a mistake.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
/// Hard cap on one version's content, whatever the tenant's quota says.
pub const MAX_CONTENT_BYTES: u64 = 4 * 1024 * 1024;

/// The outcome of applying one proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Result<Response, DomainError>,
    /// What to persist, in order. Empty when the command was rejected, except for
    /// housekeeping (expired idempotency keys), which happens on every entry.
    pub changes: Vec<Change>,
    pub counters: Counters,
    /// True when the outcome was replayed from an idempotency record.
    pub replayed: bool,
}

pub(crate) fn decide(state: &State, revision: Revision, p: &Proposal) -> Decision {
    let now = p.timestamp_ms.max(state.counters().clock_ms);
    let mut counters = Counters {
        clock_ms: now,
        ..state.counters()
    };
    let mut changes: Vec<Change> = state
        .idempotency_by_age()
        .take_while(|(created, _)| created.saturating_add(IDEMPOTENCY_TTL_MS) <= now)
        .map(|(_, key)| Change::DeleteIdempotency { key: key.clone() })
        .collect();

    if let Some(idem) = &p.idempotency {
        let live = state
            .idempotency_record(&idem.key)
            .filter(|r| r.created_at.saturating_add(IDEMPOTENCY_TTL_MS) > now);
        if let Some(record) = live {
            let outcome = if record.fingerprint == idem.fingerprint {
                record.outcome.clone()
            } else {
                Err(DomainError::IdempotencyKeyReused {
                    key: idem.key.clone(),
                })
            };
            return Decision {
                outcome,
                changes,
                counters,
                replayed: true,
            };
        }
    }

    let mut tx = Tx {
        state,
        revision,
        now,
        expected: p.expected_revision,
        author: p.author.clone(),
        next_config_id: counters.next_config_id,
        next_proposal_id: counters.next_proposal_id,
        changes: Vec::new(),
    };
    let outcome = tx.execute(&p.command);
    if outcome.is_ok() {
        changes.append(&mut tx.changes);
        counters.next_config_id = tx.next_config_id;
        counters.next_proposal_id = tx.next_proposal_id;
    }
    // The first outcome is remembered whether it succeeded or not: a retry of a rejected
    // write is answered with the same rejection, never executed a second time.
    if let Some(idem) = &p.idempotency {
        changes.push(Change::PutIdempotency {
            key: idem.key.clone(),
            record: IdempotencyRecord {
                fingerprint: idem.fingerprint,
                outcome: outcome.clone(),
                created_at: now,
            },
        });
    }
    Decision {
        outcome,
        changes,
        counters,
        replayed: false,
    }
}

/// Checks that `content` may become a new version of `config`: size quota, format, schema.
pub fn check_new_version(
    state: &State,
    config: &Config,
    content: &[u8],
) -> Result<(), DomainError> {
    VersionCheck::of(state, config).check(content)
}

/// What decides whether a content may become a new version of one config, taken from the
/// state so that the costly part (parsing, schema validation) can run without it, e.g.
/// outside the state's lock for a `validate_only` request. Cheap to take and to clone.
#[derive(Debug, Clone)]
pub struct VersionCheck {
    format: Format,
    /// The tenant's byte quota, capped by [`MAX_CONTENT_BYTES`].
    limit: u64,
    /// The config's compiled schema, or why it no longer compiles.
    schema: Option<Result<CompiledSchema, DomainError>>,
}

impl VersionCheck {
    pub fn of(state: &State, config: &Config) -> VersionCheck {
        let quotas = state
            .tenant(&config.path.tenant)
            .map(|t| t.quotas)
            .unwrap_or_default();
        VersionCheck {
            format: config.format,
            limit: quotas.max_config_bytes.min(MAX_CONTENT_BYTES),
            schema: state.schema(config.id).cloned(),
        }
    }

    /// The size quota alone (for sealed contents, whose plaintext apply cannot see).
    pub fn check_size(&self, size: u64) -> Result<(), DomainError> {
        if size > self.limit {
            return Err(DomainError::QuotaExceeded {
                quota: Quota::MaxConfigBytes,
                limit: self.limit,
                requested: size,
            });
        }
        Ok(())
    }

    /// Size quota, then format, then schema: the first that fails is the error.
    pub fn check(&self, content: &[u8]) -> Result<(), DomainError> {
        self.check_size(content.len() as u64)?;
        let doc = format::parse(self.format, content).map_err(|e| DomainError::ContentInvalid {
            format: self.format,
            message: e.message,
            line: e.line,
            column: e.column,
        })?;
        if let Some(schema) = &self.schema {
            let schema = schema.as_ref().map_err(Clone::clone)?;
            if let Some(json) = doc.to_json() {
                let violations = schema.violations(&json);
                if !violations.is_empty() {
                    return Err(DomainError::SchemaViolation { violations });
                }
            }
        }
        Ok(())
    }
}

struct Tx<'s> {
    state: &'s State,
    revision: Revision,
    now: UnixMillis,
    expected: Option<Revision>,
    author: Option<String>,
    next_config_id: u64,
    next_proposal_id: ProposalId,
    changes: Vec<Change>,
}

type Outcome = Result<Response, DomainError>;

impl Tx<'_> {
    fn execute(&mut self, command: &Command) -> Outcome {
        match command {
            Command::CreateTenant {
                name,
                display_name,
                quotas,
            } => self.create_tenant(name, display_name.as_deref(), quotas),
            Command::UpdateTenant {
                name,
                display_name,
                status,
                quotas,
            } => self.update_tenant(name, display_name.as_deref(), *status, quotas.as_ref()),
            Command::DeleteTenant { name, cascade } => self.delete_tenant(name, *cascade),
            Command::CreateApp {
                tenant,
                name,
                description,
            } => self.create_app(tenant, name, description.as_deref()),
            Command::UpdateApp {
                tenant,
                name,
                description,
            } => self.update_app(tenant, name, description.as_deref()),
            Command::DeleteApp {
                tenant,
                name,
                cascade,
            } => self.delete_app(tenant, name, *cascade),
            Command::CreateEnvironment {
                tenant,
                app,
                name,
                description,
                approval,
            } => self.create_env(tenant, app, name, description.as_deref(), *approval),
            Command::UpdateEnvironment {
                tenant,
                app,
                name,
                description,
                approval,
            } => self.update_env(tenant, app, name, description.as_deref(), *approval),
            Command::DeleteEnvironment {
                tenant,
                app,
                name,
                cascade,
            } => self.delete_env(tenant, app, name, *cascade),
            Command::CreateConfig {
                path,
                format,
                schema,
                retention,
                description,
                encrypted,
            } => self.create_config(
                path,
                *format,
                schema.as_deref(),
                retention.as_ref(),
                description.as_deref(),
                *encrypted,
            ),
            Command::UpdateConfig {
                id,
                schema,
                retention,
                description,
                encrypted,
            } => self.update_config(*id, schema, retention, description.as_deref(), *encrypted),
            Command::DeleteConfig { id } => self.delete_config(*id),
            Command::CreateVersion {
                config_id,
                content,
                description,
                sealed,
            } => {
                let config = self.writable_config(*config_id)?;
                let (meta, mut config) =
                    self.new_version(config, content, sealed.as_ref(), description.as_deref())?;
                self.finish_version(&mut config, meta, content.clone())
            }
            Command::SetReleases {
                config_id,
                rules,
                comment,
            } => {
                let config = self.writable_config(*config_id)?;
                check_opt_len("comment", comment.as_deref(), MAX_DESCRIPTION_LEN)?;
                validate_rules(self.state, &config, rules, None)?;
                if self.requires_approval(&config)? {
                    let change = ProposedChange::SetReleases {
                        rules: rules.clone(),
                        comment: comment.clone(),
                    };
                    return self.propose(&config, change, None);
                }
                self.set_releases(config, rules, comment.as_deref())
            }
            Command::Publish {
                config_id,
                content,
                description,
                strategy,
                sealed,
            } => {
                let config = self.writable_config(*config_id)?;
                let (meta, mut config) =
                    self.new_version(config, content, sealed.as_ref(), description.as_deref())?;
                let rules = publish_rules(&config.rules, meta.version, strategy)?;
                validate_rules(self.state, &config, &rules, Some(meta.version))?;
                if self.requires_approval(&config)? {
                    // The version is created now (that needs no approval); its release is
                    // what the proposal asks for, against the revision of this entry.
                    self.finish_version(&mut config, meta.clone(), content.clone())?;
                    let change = ProposedChange::Publish {
                        version_id: meta.version,
                        strategy: strategy.clone(),
                    };
                    return self.propose(&config, change, Some(meta));
                }
                config.rules = rules;
                config.release_comment = None;
                self.finish_version(&mut config, meta, content.clone())
            }
            Command::Rollback {
                config_id,
                version_id,
                mode,
                break_glass,
            } => {
                let config = self.writable_config(*config_id)?;
                self.check_version_exists(&config, *version_id)?;
                let glass_broken = *break_glass && *mode == RollbackMode::Emergency;
                if !glass_broken && self.requires_approval(&config)? {
                    let change = ProposedChange::Rollback {
                        version_id: *version_id,
                        mode: *mode,
                    };
                    return self.propose(&config, change, None);
                }
                self.rollback(config, *version_id, *mode)
            }
            Command::ApproveProposal { id, comment } => self.approve(*id, comment.as_deref()),
            Command::RejectProposal { id, comment } => {
                let mut proposal = self.pending_proposal(*id, comment.as_deref())?;
                proposal.status = ProposalStatus::Rejected;
                self.record_step(&mut proposal, ProposalAction::Rejected, comment.as_deref());
                Ok(self.put_proposal(proposal, None))
            }
            Command::CancelProposal {
                id,
                comment,
                by_admin,
            } => {
                let mut proposal = self.pending_proposal(*id, comment.as_deref())?;
                if !by_admin && self.actor() != proposal.proposer {
                    return Err(DomainError::NotProposer {
                        proposal_id: *id,
                        proposer: proposal.proposer,
                    });
                }
                proposal.status = ProposalStatus::Canceled;
                self.record_step(&mut proposal, ProposalAction::Canceled, comment.as_deref());
                Ok(self.put_proposal(proposal, None))
            }
            Command::SweepRetention => self.sweep_retention(),
            Command::RewrapKeys { keys } => Ok(self.rewrap_keys(keys)),
            Command::RecordMemberStarted { node_id } => {
                if !self.state.member_started(*node_id) {
                    self.changes
                        .push(Change::PutStartedMember { node_id: *node_id });
                }
                Ok(Response::MemberRecorded)
            }
            Command::TrimAuditOutbox { index, position } => {
                self.changes.push(Change::TrimAuditOutbox {
                    index: *index,
                    position: *position,
                });
                Ok(Response::AuditTrimmed)
            }
        }
    }

    // ---- helpers ---------------------------------------------------------------------

    fn check_revision(&self, actual: Revision) -> Result<(), DomainError> {
        match self.expected {
            Some(expected) if expected != actual => {
                Err(DomainError::RevisionMismatch { expected, actual })
            }
            _ => Ok(()),
        }
    }

    fn tenant(&self, name: &str) -> Result<&Tenant, DomainError> {
        self.state
            .tenant(name)
            .ok_or_else(|| DomainError::not_found(Entity::Tenant, name))
    }

    fn active_tenant(&self, name: &str) -> Result<&Tenant, DomainError> {
        let t = self.tenant(name)?;
        if t.status == TenantStatus::Suspended {
            return Err(DomainError::TenantSuspended {
                tenant: name.to_owned(),
            });
        }
        Ok(t)
    }

    fn app(&self, tenant: &str, name: &str) -> Result<&App, DomainError> {
        self.state
            .app(tenant, name)
            .ok_or_else(|| DomainError::not_found(Entity::App, format!("{tenant}/{name}")))
    }

    fn env(&self, tenant: &str, app: &str, name: &str) -> Result<&Environment, DomainError> {
        self.state.environment(tenant, app, name).ok_or_else(|| {
            DomainError::not_found(Entity::Environment, format!("{tenant}/{app}/{name}"))
        })
    }

    fn config(&self, id: u64) -> Result<Config, DomainError> {
        self.state
            .config(id)
            .cloned()
            .ok_or_else(|| DomainError::not_found(Entity::Config, id.to_string()))
    }

    /// A config that may be changed: exists, tenant active, `If-Match` satisfied.
    fn writable_config(&self, id: u64) -> Result<Config, DomainError> {
        let config = self.config(id)?;
        self.active_tenant(&config.path.tenant)?;
        self.check_revision(config.revision)?;
        Ok(config)
    }

    fn put_config(&mut self, mut config: Config) -> Outcome {
        config.revision = self.revision;
        config.updated_at = self.now;
        self.changes.push(Change::PutConfig(config.clone()));
        Ok(Response::Config(config))
    }

    // ---- release changes and proposals -------------------------------------------------

    /// The principal the command is applied for.
    fn actor(&self) -> String {
        self.author.clone().unwrap_or_else(|| "system".to_owned())
    }

    fn requires_approval(&self, config: &Config) -> Result<bool, DomainError> {
        let p = &config.path;
        Ok(self.env(&p.tenant, &p.app, &p.env)?.approval.required)
    }

    fn check_version_exists(&self, config: &Config, version: VersionId) -> Result<(), DomainError> {
        match self.state.version(config.id, version) {
            Some(_) => Ok(()),
            None => Err(DomainError::UnknownVersion {
                field: "version_id".to_owned(),
                version,
            }),
        }
    }

    fn set_releases(
        &mut self,
        mut config: Config,
        rules: &[ReleaseRule],
        comment: Option<&str>,
    ) -> Outcome {
        config.rules = rules.to_vec();
        config.release_comment = comment.map(str::to_owned);
        // Versions the old rules pinned may now be purgeable.
        self.purge(&config, None);
        self.put_config(config)
    }

    fn rollback(
        &mut self,
        mut config: Config,
        version_id: VersionId,
        mode: RollbackMode,
    ) -> Outcome {
        config.rules = match mode {
            RollbackMode::Emergency => vec![ReleaseRule::default_to(version_id)],
            RollbackMode::StableOnly => with_default(&config.rules, version_id),
        };
        config.release_comment = Some(format!("rollback to version {version_id}"));
        self.purge(&config, None);
        self.put_config(config)
    }

    /// Records `change` as a pending proposal against the config's current revision.
    fn propose(
        &mut self,
        config: &Config,
        change: ProposedChange,
        version: Option<VersionMeta>,
    ) -> Outcome {
        if let Some(pending) = self.state.pending_proposal(config.id) {
            return Err(DomainError::ProposalPending {
                path: config.path.to_string(),
                proposal_id: pending.id,
            });
        }
        let id = self.next_proposal_id;
        self.next_proposal_id += 1;
        let mut proposal = ReleaseProposal {
            id,
            config_id: config.id,
            path: config.path.clone(),
            status: ProposalStatus::Pending,
            proposer: self.actor(),
            created_at: self.now,
            // A publish created its version in this entry: `config` already carries this
            // entry's revision.
            base_revision: config.revision,
            change,
            approvals: Vec::new(),
            history: Vec::new(),
            reason: None,
            revision: self.revision,
        };
        self.record_step(&mut proposal, ProposalAction::Created, None);
        self.changes
            .push(Change::PutProposal(Box::new(proposal.clone())));
        Ok(Response::Proposed {
            proposal: Box::new(proposal),
            version,
        })
    }

    /// A proposal a decision may still change.
    fn pending_proposal(
        &self,
        id: ProposalId,
        comment: Option<&str>,
    ) -> Result<ReleaseProposal, DomainError> {
        check_opt_len("comment", comment, MAX_COMMENT_LEN)?;
        let proposal = self
            .state
            .proposal(id)
            .cloned()
            .ok_or_else(|| DomainError::not_found(Entity::Proposal, id.to_string()))?;
        if proposal.status.is_finished() {
            return Err(DomainError::ProposalFinished {
                proposal_id: id,
                status: proposal.status.as_str().to_owned(),
            });
        }
        Ok(proposal)
    }

    fn record_step(
        &self,
        proposal: &mut ReleaseProposal,
        action: ProposalAction,
        comment: Option<&str>,
    ) {
        proposal.revision = self.revision;
        proposal.history.push(ProposalEvent {
            action,
            actor: self.actor(),
            time: self.now,
            comment: comment.map(str::to_owned),
            revision: self.revision,
        });
    }

    fn approve(&mut self, id: ProposalId, comment: Option<&str>) -> Outcome {
        let mut proposal = self.pending_proposal(id, comment)?;
        let approver = self.actor();
        let config = self.config(proposal.config_id)?;
        let p = &config.path;
        let settings = self.env(&p.tenant, &p.app, &p.env)?.approval;
        if approver == proposal.proposer && !settings.allow_self_approval {
            return Err(DomainError::SelfApproval {
                proposal_id: id,
                approver,
            });
        }
        if proposal.approvals.iter().any(|a| a.approver == approver) {
            return Err(DomainError::AlreadyApproved {
                proposal_id: id,
                approver,
            });
        }
        proposal.approvals.push(Approval {
            approver,
            time: self.now,
            comment: comment.map(str::to_owned),
        });
        self.record_step(&mut proposal, ProposalAction::Approved, comment);
        // The settings at the time of the approval count: raising `min_approvals` holds back
        // pending proposals too.
        if proposal.approvals.len() < settings.min_approvals.max(1) as usize {
            return Ok(self.put_proposal(proposal, None));
        }
        let executed = self.execute_proposal(&mut proposal, config);
        Ok(self.put_proposal(proposal, executed))
    }

    /// Executes an approved proposal's change; returns the config after it, or marks the
    /// proposal failed (stale, or the error the change met) and changes nothing else.
    fn execute_proposal(
        &mut self,
        proposal: &mut ReleaseProposal,
        config: Config,
    ) -> Option<Config> {
        if config.revision != proposal.base_revision {
            proposal.status = ProposalStatus::Failed;
            proposal.reason = Some(format!(
                "stale: the config changed at revision {} after this proposal was made against \
                 revision {}",
                config.revision, proposal.base_revision
            ));
            self.record_step(proposal, ProposalAction::Failed, None);
            return None;
        }
        let mark = self.changes.len();
        let outcome = self
            .active_tenant(&config.path.tenant)
            .cloned()
            .and_then(|_| match proposal.change.clone() {
                ProposedChange::SetReleases { rules, comment } => {
                    validate_rules(self.state, &config, &rules, None)?;
                    self.set_releases(config, &rules, comment.as_deref())
                }
                ProposedChange::Publish {
                    version_id,
                    strategy,
                } => {
                    let rules = publish_rules(&config.rules, version_id, &strategy)?;
                    validate_rules(self.state, &config, &rules, None)?;
                    self.set_releases(config, &rules, None)
                }
                ProposedChange::Rollback { version_id, mode } => {
                    self.check_version_exists(&config, version_id)?;
                    self.rollback(config, version_id, mode)
                }
            });
        match outcome {
            Ok(Response::Config(config)) => {
                proposal.status = ProposalStatus::Executed;
                self.record_step(proposal, ProposalAction::Executed, None);
                Some(config)
            }
            other => {
                self.changes.truncate(mark);
                proposal.status = ProposalStatus::Failed;
                proposal.reason = Some(match other {
                    Err(e) => e.to_string(),
                    Ok(r) => format!("unexpected outcome {r:?}"),
                });
                self.record_step(proposal, ProposalAction::Failed, None);
                None
            }
        }
    }

    /// Records the proposal; when it is finished, drops the config's oldest finished
    /// proposals beyond [`MAX_FINISHED_PROPOSALS_PER_CONFIG`].
    fn put_proposal(&mut self, proposal: ReleaseProposal, config: Option<Config>) -> Response {
        if proposal.status.is_finished() {
            let finished: Vec<ProposalId> = self
                .state
                .proposals_of(proposal.config_id)
                .filter(|p| p.status.is_finished() && p.id != proposal.id)
                .map(|p| p.id)
                .collect();
            let excess = (finished.len() + 1).saturating_sub(MAX_FINISHED_PROPOSALS_PER_CONFIG);
            for id in finished.into_iter().take(excess) {
                self.changes.push(Change::DeleteProposal {
                    config_id: proposal.config_id,
                    id,
                });
            }
        }
        self.changes
            .push(Change::PutProposal(Box::new(proposal.clone())));
        Response::Proposal {
            proposal: Box::new(proposal),
            config,
        }
    }

    // ---- tenants, apps, environments ---------------------------------------------------

    fn create_tenant(
        &mut self,
        name: &str,
        display_name: Option<&str>,
        quotas: &QuotasPatch,
    ) -> Outcome {
        validate_name("name", name)?;
        if let Some(d) = display_name {
            check_len("display_name", d, MAX_DISPLAY_NAME_LEN)?;
        }
        validate_quotas(quotas)?;
        if self.state.tenant(name).is_some() {
            return Err(DomainError::AlreadyExists {
                entity: Entity::Tenant,
                key: name.to_owned(),
            });
        }
        let tenant = Tenant {
            name: name.to_owned(),
            display_name: display_name.unwrap_or(name).to_owned(),
            status: TenantStatus::Active,
            quotas: quotas.apply_to(Quotas::default()),
            created_at: self.now,
            updated_at: self.now,
            revision: self.revision,
        };
        self.changes.push(Change::PutTenant(tenant.clone()));
        Ok(Response::Tenant(tenant))
    }

    fn update_tenant(
        &mut self,
        name: &str,
        display_name: Option<&str>,
        status: Option<TenantStatus>,
        quotas: Option<&QuotasPatch>,
    ) -> Outcome {
        let mut tenant = self.tenant(name)?.clone();
        self.check_revision(tenant.revision)?;
        if let Some(d) = display_name {
            check_len("display_name", d, MAX_DISPLAY_NAME_LEN)?;
            tenant.display_name = d.to_owned();
        }
        if let Some(s) = status {
            tenant.status = s;
        }
        if let Some(q) = quotas {
            validate_quotas(q)?;
            tenant.quotas = q.apply_to(tenant.quotas);
        }
        tenant.updated_at = self.now;
        tenant.revision = self.revision;
        self.changes.push(Change::PutTenant(tenant.clone()));
        Ok(Response::Tenant(tenant))
    }

    fn delete_tenant(&mut self, name: &str, cascade: bool) -> Outcome {
        let tenant = self.tenant(name)?;
        self.check_revision(tenant.revision)?;
        let apps: Vec<App> = self.state.apps(name).cloned().collect();
        refuse_children(Entity::Tenant, name, apps.len(), "app(s)", cascade)?;
        for app in &apps {
            self.delete_app_tree(app);
        }
        self.changes.push(Change::DeleteTenant {
            name: name.to_owned(),
        });
        Ok(Response::Deleted {
            revision: self.revision,
        })
    }

    fn create_app(&mut self, tenant: &str, name: &str, description: Option<&str>) -> Outcome {
        validate_name("tenant", tenant)?;
        validate_name("name", name)?;
        check_opt_len("description", description, MAX_DESCRIPTION_LEN)?;
        let t = self.active_tenant(tenant)?;
        if self.state.app(tenant, name).is_some() {
            return Err(DomainError::AlreadyExists {
                entity: Entity::App,
                key: format!("{tenant}/{name}"),
            });
        }
        let count = self.state.app_count(tenant) as u64;
        if count >= t.quotas.max_apps {
            return Err(DomainError::QuotaExceeded {
                quota: Quota::MaxApps,
                limit: t.quotas.max_apps,
                requested: count + 1,
            });
        }
        let app = App {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            description: description.unwrap_or_default().to_owned(),
            created_at: self.now,
            updated_at: self.now,
            revision: self.revision,
        };
        self.changes.push(Change::PutApp(app.clone()));
        Ok(Response::App(app))
    }

    fn update_app(&mut self, tenant: &str, name: &str, description: Option<&str>) -> Outcome {
        let mut app = self.app(tenant, name)?.clone();
        self.active_tenant(tenant)?;
        self.check_revision(app.revision)?;
        check_opt_len("description", description, MAX_DESCRIPTION_LEN)?;
        if let Some(d) = description {
            app.description = d.to_owned();
        }
        app.updated_at = self.now;
        app.revision = self.revision;
        self.changes.push(Change::PutApp(app.clone()));
        Ok(Response::App(app))
    }

    fn delete_app(&mut self, tenant: &str, name: &str, cascade: bool) -> Outcome {
        let app = self.app(tenant, name)?.clone();
        self.check_revision(app.revision)?;
        let envs = self.state.environments(tenant, name).count();
        refuse_children(
            Entity::App,
            &format!("{tenant}/{name}"),
            envs,
            "environment(s)",
            cascade,
        )?;
        self.delete_app_tree(&app);
        Ok(Response::Deleted {
            revision: self.revision,
        })
    }

    fn delete_app_tree(&mut self, app: &App) {
        let envs: Vec<Environment> = self
            .state
            .environments(&app.tenant, &app.name)
            .cloned()
            .collect();
        for env in &envs {
            self.delete_env_tree(env);
        }
        self.changes.push(Change::DeleteApp {
            tenant: app.tenant.clone(),
            name: app.name.clone(),
        });
    }

    fn create_env(
        &mut self,
        tenant: &str,
        app: &str,
        name: &str,
        description: Option<&str>,
        approval: Option<ApprovalSettings>,
    ) -> Outcome {
        validate_name("tenant", tenant)?;
        validate_name("app", app)?;
        validate_name("name", name)?;
        check_opt_len("description", description, MAX_DESCRIPTION_LEN)?;
        if let Some(a) = &approval {
            validate_approval(a)?;
        }
        self.active_tenant(tenant)?;
        self.app(tenant, app)?;
        if self.state.environment(tenant, app, name).is_some() {
            return Err(DomainError::AlreadyExists {
                entity: Entity::Environment,
                key: format!("{tenant}/{app}/{name}"),
            });
        }
        let env = Environment {
            tenant: tenant.to_owned(),
            app: app.to_owned(),
            name: name.to_owned(),
            description: description.unwrap_or_default().to_owned(),
            approval: approval.unwrap_or_default(),
            created_at: self.now,
            updated_at: self.now,
            revision: self.revision,
        };
        self.changes.push(Change::PutEnvironment(env.clone()));
        Ok(Response::Environment(env))
    }

    fn update_env(
        &mut self,
        tenant: &str,
        app: &str,
        name: &str,
        description: Option<&str>,
        approval: Option<ApprovalSettings>,
    ) -> Outcome {
        let mut env = self.env(tenant, app, name)?.clone();
        self.active_tenant(tenant)?;
        self.check_revision(env.revision)?;
        check_opt_len("description", description, MAX_DESCRIPTION_LEN)?;
        if let Some(d) = description {
            env.description = d.to_owned();
        }
        if let Some(a) = approval {
            validate_approval(&a)?;
            env.approval = a;
        }
        env.updated_at = self.now;
        env.revision = self.revision;
        self.changes.push(Change::PutEnvironment(env.clone()));
        Ok(Response::Environment(env))
    }

    fn delete_env(&mut self, tenant: &str, app: &str, name: &str, cascade: bool) -> Outcome {
        let env = self.env(tenant, app, name)?.clone();
        self.check_revision(env.revision)?;
        let configs = self
            .state
            .configs_under(tenant, Some(app), Some(name))
            .count();
        let key = format!("{tenant}/{app}/{name}");
        refuse_children(Entity::Environment, &key, configs, "config(s)", cascade)?;
        self.delete_env_tree(&env);
        Ok(Response::Deleted {
            revision: self.revision,
        })
    }

    fn delete_env_tree(&mut self, env: &Environment) {
        let configs: Vec<(u64, ConfigPath)> = self
            .state
            .configs_under(&env.tenant, Some(&env.app), Some(&env.name))
            .map(|c| (c.id, c.path.clone()))
            .collect();
        for (id, path) in configs {
            self.changes.push(Change::DeleteConfig { id, path });
        }
        self.changes.push(Change::DeleteEnvironment {
            tenant: env.tenant.clone(),
            app: env.app.clone(),
            name: env.name.clone(),
        });
    }

    // ---- configs -----------------------------------------------------------------------

    fn create_config(
        &mut self,
        path: &ConfigPath,
        format: Format,
        schema: Option<&str>,
        retention: Option<&RetentionPolicy>,
        description: Option<&str>,
        encrypted: bool,
    ) -> Outcome {
        validate_name("tenant", &path.tenant)?;
        validate_name("app", &path.app)?;
        validate_name("env", &path.env)?;
        validate_config_name("name", &path.name)?;
        check_opt_len("description", description, MAX_DESCRIPTION_LEN)?;
        if let Some(s) = schema {
            validate_schema(format, s)?;
        }
        if let Some(r) = retention {
            validate_policy(r)?;
        }
        let tenant = self.active_tenant(&path.tenant)?;
        self.app(&path.tenant, &path.app)?;
        self.env(&path.tenant, &path.app, &path.env)?;
        if self.state.config_by_path(path).is_some() {
            return Err(DomainError::AlreadyExists {
                entity: Entity::Config,
                key: path.to_string(),
            });
        }
        let count = self.state.config_count(&path.tenant) as u64;
        if count >= tenant.quotas.max_configs {
            return Err(DomainError::QuotaExceeded {
                quota: Quota::MaxConfigs,
                limit: tenant.quotas.max_configs,
                requested: count + 1,
            });
        }
        let id = self.next_config_id;
        self.next_config_id += 1;
        let config = Config {
            id,
            path: path.clone(),
            format,
            schema: schema.map(str::to_owned),
            retention: retention.cloned(),
            description: description.unwrap_or_default().to_owned(),
            latest_version: 0,
            rules: Vec::new(),
            release_comment: None,
            revision: self.revision,
            created_revision: self.revision,
            created_at: self.now,
            updated_at: self.now,
            encrypted,
        };
        self.changes.push(Change::PutConfig(config.clone()));
        Ok(Response::Config(config))
    }

    fn update_config(
        &mut self,
        id: u64,
        schema: &Patch<String>,
        retention: &Patch<RetentionPolicy>,
        description: Option<&str>,
        encrypted: Option<bool>,
    ) -> Outcome {
        let mut config = self.writable_config(id)?;
        check_opt_len("description", description, MAX_DESCRIPTION_LEN)?;
        if encrypted.is_some_and(|e| e != config.encrypted) {
            return Err(DomainError::invalid_argument(
                "encrypted",
                "is chosen when the config is created and cannot be changed; create a new \
                 config to change it",
            ));
        }
        match schema {
            Patch::Unchanged => {}
            Patch::Clear => config.schema = None,
            Patch::Set(s) => {
                validate_schema(config.format, s)?;
                config.schema = Some(s.clone());
            }
        }
        let retention_changed = !matches!(retention, Patch::Unchanged);
        match retention {
            Patch::Unchanged => {}
            Patch::Clear => config.retention = None,
            Patch::Set(r) => {
                validate_policy(r)?;
                config.retention = Some(r.clone());
            }
        }
        if let Some(d) = description {
            config.description = d.to_owned();
        }
        if retention_changed {
            self.purge(&config, None);
        }
        self.put_config(config)
    }

    fn delete_config(&mut self, id: u64) -> Outcome {
        let config = self.config(id)?;
        self.check_revision(config.revision)?;
        self.changes.push(Change::DeleteConfig {
            id,
            path: config.path,
        });
        Ok(Response::Deleted {
            revision: self.revision,
        })
    }

    // ---- versions and releases ---------------------------------------------------------

    /// Validates content and builds the next version of `config`; the returned config has
    /// `latest_version` advanced.
    fn new_version(
        &self,
        mut config: Config,
        content: &Bytes,
        sealed: Option<&SealedContent>,
        description: Option<&str>,
    ) -> Result<(VersionMeta, Config), DomainError> {
        check_opt_len("description", description, MAX_DESCRIPTION_LEN)?;
        let (hash, size, seal) = match (config.encrypted, sealed) {
            (false, None) => {
                check_new_version(self.state, &config, content)?;
                (ContentHash::of(content), content.len() as u64, None)
            }
            (true, Some(sealed)) => {
                // The receiving node parsed and validated the plaintext; what apply can
                // still check is the size quota and that the schema is still that one.
                VersionCheck::of(self.state, &config).check_size(sealed.plaintext_size)?;
                if sealed.schema_digest != SealedContent::digest_of_schema(config.schema.as_deref())
                {
                    return Err(DomainError::invalid_argument(
                        "content",
                        "the config's schema changed while this version was being validated; \
                         send it again",
                    ));
                }
                (
                    sealed.plaintext_hash,
                    sealed.plaintext_size,
                    Some(Box::new(sealed.seal.clone())),
                )
            }
            // Encryption is fixed at creation, so the proposing node saw the same setting;
            // a mismatch is a node that proposed wrongly, never a client's input.
            (true, None) => {
                return Err(DomainError::invalid_argument(
                    "content",
                    "this config is encrypted and the version was not sealed",
                ));
            }
            (false, Some(_)) => {
                return Err(DomainError::invalid_argument(
                    "content",
                    "this config is not encrypted and the version was sealed",
                ));
            }
        };
        let version = config.latest_version + 1;
        let meta = VersionMeta {
            config_id: config.id,
            version,
            hash,
            size,
            format: config.format,
            description: description.unwrap_or_default().to_owned(),
            author: self.author.clone(),
            created_at: self.now,
            revision: self.revision,
            seal,
        };
        config.latest_version = version;
        Ok((meta, config))
    }

    /// Records a new version (and the rule change that came with it): retention runs first,
    /// so a config whose policy keeps it under `max_versions_per_config` never gets stuck.
    fn finish_version(
        &mut self,
        config: &mut Config,
        meta: VersionMeta,
        content: Bytes,
    ) -> Outcome {
        config.revision = self.revision;
        config.updated_at = self.now;
        let purged = self.purge(config, Some(&meta)) as u64;
        let quotas = self.tenant(&config.path.tenant)?.quotas;
        let count = self.state.version_count(config.id) as u64 + 1 - purged;
        if count > quotas.max_versions_per_config {
            return Err(DomainError::QuotaExceeded {
                quota: Quota::MaxVersionsPerConfig,
                limit: quotas.max_versions_per_config,
                requested: count,
            });
        }
        self.changes.push(Change::PutVersion {
            meta: meta.clone(),
            content,
        });
        self.changes.push(Change::PutConfig(config.clone()));
        Ok(Response::Version {
            version: meta,
            config: config.clone(),
        })
    }

    /// Adds the retention purges of `config` to the changes. `new` is a version created in
    /// this same entry (not yet in the state).
    fn purge(&mut self, config: &Config, new: Option<&VersionMeta>) -> usize {
        let Some(policy) = &config.retention else {
            return 0;
        };
        let mut versions: Vec<(VersionId, UnixMillis)> = self
            .state
            .versions_of(config.id)
            .map(|v| (v.version, v.created_at))
            .collect();
        if let Some(n) = new {
            versions.push((n.version, n.created_at));
        }
        let referenced: BTreeSet<VersionId> = config.rules.iter().map(|r| r.version_id).collect();
        let doomed = versions_to_purge(
            policy,
            &versions,
            config.latest_version,
            &referenced,
            self.now,
        );
        let n = doomed.len();
        for version in doomed {
            self.changes.push(Change::DeleteVersion {
                config_id: config.id,
                version,
            });
        }
        n
    }

    fn rewrap_keys(&mut self, keys: &[Rewrap]) -> Response {
        let mut rewrapped = 0;
        for k in keys {
            let Some(meta) = self.state.version(k.config_id, k.version) else {
                continue;
            };
            if meta.seal.as_ref().is_some_and(|seal| seal.key == k.from) {
                let mut meta = meta.clone();
                if let Some(seal) = meta.seal.as_mut() {
                    seal.key = k.to.clone();
                }
                self.changes.push(Change::PutVersionMeta(meta));
                rewrapped += 1;
            }
        }
        Response::Rewrapped {
            rewrapped,
            skipped: keys.len() as u64 - rewrapped,
        }
    }

    fn sweep_retention(&mut self) -> Outcome {
        let candidates: Vec<Config> = self
            .state
            .configs()
            .filter(|c| {
                c.retention
                    .as_ref()
                    .is_some_and(|p| p.rules.iter().any(|r| r.kind == RetentionKind::Days))
            })
            .cloned()
            .collect();
        let mut purged = 0u64;
        for config in candidates {
            let n = self.purge(&config, None);
            if n > 0 {
                purged += n as u64;
                let mut config = config;
                config.revision = self.revision;
                config.updated_at = self.now;
                self.changes.push(Change::PutConfig(config));
            }
        }
        Ok(Response::Swept { purged })
    }
}

/// A parent with children is only deleted with `cascade`.
fn refuse_children(
    entity: Entity,
    key: &str,
    children: usize,
    what: &str,
    cascade: bool,
) -> Result<(), DomainError> {
    if children > 0 && !cascade {
        return Err(DomainError::HasChildren {
            entity,
            key: key.to_owned(),
            children: format!("{children} {what}"),
        });
    }
    Ok(())
}

/// Whether the leader has anything to sweep: lets it skip proposing empty sweeps.
pub fn retention_sweep_needed(state: &State, now: UnixMillis) -> bool {
    state.configs().any(|c| {
        let Some(policy) = &c.retention else {
            return false;
        };
        if !policy.rules.iter().any(|r| r.kind == RetentionKind::Days) {
            return false;
        }
        let versions: Vec<_> = state
            .versions_of(c.id)
            .map(|v| (v.version, v.created_at))
            .collect();
        let referenced = c.rules.iter().map(|r| r.version_id).collect();
        !versions_to_purge(policy, &versions, c.latest_version, &referenced, now).is_empty()
    })
}

/// The rule list after publishing `version` with `strategy`.
fn publish_rules(
    rules: &[ReleaseRule],
    version: VersionId,
    strategy: &PublishStrategy,
) -> Result<Vec<ReleaseRule>, DomainError> {
    match strategy {
        PublishStrategy::Stable => Ok(with_default(rules, version)),
        PublishStrategy::Canary {
            labels,
            percent,
            priority,
        } => {
            if labels.is_empty() && percent.is_none() {
                return Err(DomainError::invalid_rules(
                    "strategy",
                    "a canary needs labels or a percent; use the stable strategy to move the default rule",
                ));
            }
            if rules.is_empty() {
                return Err(DomainError::invalid_rules(
                    "strategy",
                    "publish a stable version first: a canary needs a default rule to fall back to",
                ));
            }
            let rule = ReleaseRule {
                labels: labels.clone(),
                percent: *percent,
                version_id: version,
                priority: *priority,
            };
            validate_rule_selector(&rule, "strategy")?;
            let mut out = rules.to_vec();
            match out
                .iter_mut()
                .find(|r| r.labels == rule.labels && r.percent == rule.percent)
            {
                Some(existing) => *existing = rule,
                None => out.push(rule),
            }
            Ok(out)
        }
    }
}

/// `rules` with the default rule pointing at `version` (added if there is none).
fn with_default(rules: &[ReleaseRule], version: VersionId) -> Vec<ReleaseRule> {
    let mut out = rules.to_vec();
    match out.iter_mut().find(|r| r.is_default()) {
        Some(d) => d.version_id = version,
        None => out.push(ReleaseRule::default_to(version)),
    }
    out
}

/// Checks a rule's labels and percent; `field` names the rule in errors (`releases[2]`,
/// `strategy`).
fn validate_rule_selector(rule: &ReleaseRule, field: &str) -> Result<(), DomainError> {
    if rule.labels.len() > MAX_CLIENT_LABELS {
        return Err(DomainError::InvalidLabel {
            field: format!("{field}.labels"),
            message: format!("a rule has at most {MAX_CLIENT_LABELS} labels"),
        });
    }
    for (k, v) in &rule.labels {
        validate_label_key(&format!("{field}.labels"), k)?;
        if v.len() > MAX_LABEL_VALUE_LEN || v.trim() != v {
            return Err(DomainError::InvalidLabel {
                field: format!("{field}.labels.{k}"),
                message: format!(
                    "label values are at most {MAX_LABEL_VALUE_LEN} bytes without surrounding whitespace"
                ),
            });
        }
    }
    if let Some(p) = rule.percent
        && p > 100
    {
        return Err(DomainError::invalid_rules(
            format!("{field}.percent"),
            format!("percent must be between 0 and 100, got {p}"),
        ));
    }
    Ok(())
}

/// Checks a complete rule list. `extra_version` exists although it is not yet in the state
/// (the version a publish creates).
fn validate_rules(
    state: &State,
    config: &Config,
    rules: &[ReleaseRule],
    extra_version: Option<VersionId>,
) -> Result<(), DomainError> {
    if rules.len() > MAX_RULES_PER_CONFIG {
        return Err(DomainError::invalid_rules(
            "releases",
            format!(
                "at most {MAX_RULES_PER_CONFIG} rules are allowed, got {}",
                rules.len()
            ),
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        validate_rule_selector(rule, &format!("releases[{i}]"))?;
        let exists = Some(rule.version_id) == extra_version
            || state.version(config.id, rule.version_id).is_some();
        if !exists {
            return Err(DomainError::UnknownVersion {
                field: format!("releases[{i}].version_id"),
                version: rule.version_id,
            });
        }
    }
    let defaults: Vec<usize> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_default())
        .map(|(i, _)| i)
        .collect();
    if !rules.is_empty() && defaults.len() != 1 {
        let found = if defaults.is_empty() {
            "none".to_owned()
        } else {
            format!("{} (at positions {defaults:?})", defaults.len())
        };
        return Err(DomainError::invalid_rules(
            "releases",
            format!(
                "a rule list needs exactly one default rule (no labels, no percent); found {found}"
            ),
        ));
    }
    Ok(())
}

fn validate_schema(format: Format, schema: &str) -> Result<(), DomainError> {
    if !format.supports_schema() {
        return Err(DomainError::invalid_argument(
            "schema",
            format!("{format} configs cannot have a JSON Schema"),
        ));
    }
    if schema.len() > MAX_SCHEMA_BYTES {
        return Err(DomainError::invalid_argument(
            "schema",
            format!("schemas are at most {MAX_SCHEMA_BYTES} bytes"),
        ));
    }
    crate::schema::CompiledSchema::compile(schema).map(|_| ())
}

fn validate_quotas(q: &QuotasPatch) -> Result<(), DomainError> {
    let fields = [
        ("quotas.max_apps", q.max_apps),
        ("quotas.max_configs", q.max_configs),
        ("quotas.max_config_bytes", q.max_config_bytes),
        ("quotas.max_versions_per_config", q.max_versions_per_config),
    ];
    for (field, value) in fields {
        if value == Some(0) {
            return Err(DomainError::invalid_argument(field, "must be at least 1"));
        }
    }
    if let Some(b) = q.max_config_bytes
        && b > MAX_CONTENT_BYTES
    {
        return Err(DomainError::invalid_argument(
            "quotas.max_config_bytes",
            format!("must be at most {MAX_CONTENT_BYTES} (the hard cap on a version)"),
        ));
    }
    Ok(())
}

fn validate_approval(a: &ApprovalSettings) -> Result<(), DomainError> {
    if a.min_approvals == 0 || a.min_approvals > 10 {
        return Err(DomainError::invalid_argument(
            "approval.min_approvals",
            "must be between 1 and 10",
        ));
    }
    Ok(())
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.len() > max {
        return Err(DomainError::invalid_argument(
            field,
            format!("is at most {max} bytes"),
        ));
    }
    Ok(())
}

fn check_opt_len(field: &str, value: Option<&str>, max: usize) -> Result<(), DomainError> {
    value.map_or(Ok(()), |v| check_len(field, v, max))
}
