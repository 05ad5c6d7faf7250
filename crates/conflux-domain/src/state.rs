//! The in-memory config plane: the state every node rebuilds from its storage and changes
//! only through [`State::apply`].
//!
//! Version *contents* are not kept here (they can be large and most are never read again);
//! the storage layer keeps them beside the metadata and serves the released ones from its
//! own cache. Everything else is here, so apply never needs to read storage.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::command::{Proposal, Response};
use crate::digest::{Digester, StateDigest};
use crate::error::DomainError;
use crate::model::{
    App, Config, ConfigId, ConfigPath, ContentHash, Environment, Revision, Tenant, UnixMillis,
    VersionId, VersionMeta,
};
use crate::proposal::{ProposalId, ReleaseProposal};
use crate::schema::CompiledSchema;
use crate::transition::{self, Decision};

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// The outcome of a write remembered under its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub fingerprint: ContentHash,
    pub outcome: Result<Response, DomainError>,
    pub created_at: UnixMillis,
}

/// Counters that make apply deterministic; persisted with every applied batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The id the next created config receives.
    pub next_config_id: ConfigId,
    /// The largest timestamp applied so far: the state's clock never goes backwards.
    pub clock_ms: UnixMillis,
    /// The id the next proposal receives. Left out while it is 1, so that counters (and the
    /// state digest) are what they were before proposals existed until the first one.
    #[serde(default = "first_id", skip_serializing_if = "is_first_id")]
    pub next_proposal_id: ProposalId,
}

fn first_id() -> u64 {
    1
}

fn is_first_id(id: &u64) -> bool {
    *id == 1
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            next_config_id: 1,
            clock_ms: 0,
            next_proposal_id: 1,
        }
    }
}

/// One persistent effect of an applied command. The storage layer turns a list of changes
/// into one atomic write batch; [`State::apply_change`] performs the same change in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    PutTenant(Tenant),
    DeleteTenant {
        name: String,
    },
    PutApp(App),
    DeleteApp {
        tenant: String,
        name: String,
    },
    PutEnvironment(Environment),
    DeleteEnvironment {
        tenant: String,
        app: String,
        name: String,
    },
    PutConfig(Config),
    /// Deletes the config and every one of its versions.
    DeleteConfig {
        id: ConfigId,
        path: ConfigPath,
    },
    /// A new version; `content` is for storage, the state keeps only the metadata.
    PutVersion {
        meta: VersionMeta,
        content: Bytes,
    },
    DeleteVersion {
        config_id: ConfigId,
        version: VersionId,
    },
    /// A version's metadata changed (a sealed version's data key wrapped anew); its content
    /// is unchanged.
    PutVersionMeta(VersionMeta),
    PutIdempotency {
        key: String,
        record: IdempotencyRecord,
    },
    DeleteIdempotency {
        key: String,
    },
    /// A cluster member has started and caught up at least once (see
    /// [`crate::Command::RecordMemberStarted`]).
    PutStartedMember {
        node_id: u64,
    },
    /// Boxed: a proposal (with its rules and history) is far larger than the other changes.
    PutProposal(Box<ReleaseProposal>),
    DeleteProposal {
        config_id: ConfigId,
        id: ProposalId,
    },
    /// Drops the audit outbox up to and including (`index`, `position`); storage only.
    TrimAuditOutbox {
        index: u64,
        position: u32,
    },
}

/// The config plane of one node. Every field but `schemas` (compiled from the configs'
/// schema text) and `idempotency_by_time` (an index) holds replicated records: each is listed
/// by [`State::to_changes`] and hashed by [`State::digest`], and a new one must be added to
/// both.
#[derive(Debug, Default)]
pub struct State {
    tenants: BTreeMap<String, Tenant>,
    apps: BTreeMap<(String, String), App>,
    envs: BTreeMap<(String, String, String), Environment>,
    configs: BTreeMap<ConfigId, Config>,
    config_ids: BTreeMap<ConfigPath, ConfigId>,
    versions: BTreeMap<(ConfigId, VersionId), VersionMeta>,
    idempotency: BTreeMap<String, IdempotencyRecord>,
    idempotency_by_time: BTreeSet<(UnixMillis, String)>,
    /// Compiled schemas of configs that have one. A schema that no longer compiles (after
    /// a validator upgrade, say) is kept as its error, which blocks new versions instead of
    /// silently skipping validation.
    schemas: HashMap<ConfigId, Result<CompiledSchema, DomainError>>,
    /// Cluster members known to have held data.
    started_members: BTreeSet<u64>,
    /// Proposals by config, so that a config's deletion takes its proposals with it.
    proposals: BTreeMap<(ConfigId, ProposalId), ReleaseProposal>,
    /// Index: the config of each proposal.
    proposal_configs: HashMap<ProposalId, ConfigId>,
    /// Index: the pending proposal of a config (there is at most one).
    pending_proposals: HashMap<ConfigId, ProposalId>,
    counters: Counters,
}

fn after<T: Ord + Clone>(map_key: &T) -> std::ops::Bound<T> {
    std::ops::Bound::Excluded(map_key.clone())
}

impl State {
    pub fn new() -> Self {
        State::default()
    }

    /// Applies one committed entry at log index `revision`: decides the outcome, performs
    /// its changes in memory and returns both, so the caller can persist the same changes.
    pub fn apply(&mut self, revision: Revision, proposal: &Proposal) -> Decision {
        let decision = transition::decide(self, revision, proposal);
        for change in &decision.changes {
            self.apply_change(change.clone());
        }
        self.counters = decision.counters;
        decision
    }

    /// Performs one change in memory. Also used to rebuild the state from storage.
    pub fn apply_change(&mut self, change: Change) {
        match change {
            Change::PutTenant(t) => {
                self.tenants.insert(t.name.clone(), t);
            }
            Change::DeleteTenant { name } => {
                self.tenants.remove(&name);
            }
            Change::PutApp(a) => {
                self.apps.insert((a.tenant.clone(), a.name.clone()), a);
            }
            Change::DeleteApp { tenant, name } => {
                self.apps.remove(&(tenant, name));
            }
            Change::PutEnvironment(e) => {
                self.envs
                    .insert((e.tenant.clone(), e.app.clone(), e.name.clone()), e);
            }
            Change::DeleteEnvironment { tenant, app, name } => {
                self.envs.remove(&(tenant, app, name));
            }
            Change::PutConfig(c) => {
                let unchanged_schema = self
                    .configs
                    .get(&c.id)
                    .is_some_and(|old| old.schema == c.schema);
                if !unchanged_schema {
                    match &c.schema {
                        Some(text) => {
                            self.schemas.insert(c.id, CompiledSchema::compile(text));
                        }
                        None => {
                            self.schemas.remove(&c.id);
                        }
                    }
                }
                self.config_ids.insert(c.path.clone(), c.id);
                self.configs.insert(c.id, c);
            }
            Change::DeleteConfig { id, path } => {
                self.configs.remove(&id);
                self.config_ids.remove(&path);
                self.schemas.remove(&id);
                let doomed: Vec<_> = self.versions_of(id).map(|v| (id, v.version)).collect();
                for k in doomed {
                    self.versions.remove(&k);
                }
                let proposals: Vec<_> = self.proposals_of(id).map(|p| p.id).collect();
                for pid in proposals {
                    self.remove_proposal(id, pid);
                }
            }
            Change::PutVersion { meta, .. } => {
                self.versions.insert((meta.config_id, meta.version), meta);
            }
            Change::DeleteVersion { config_id, version } => {
                self.versions.remove(&(config_id, version));
            }
            Change::PutVersionMeta(meta) => {
                self.versions.insert((meta.config_id, meta.version), meta);
            }
            Change::PutIdempotency { key, record } => {
                if let Some(old) = self.idempotency.get(&key) {
                    self.idempotency_by_time
                        .remove(&(old.created_at, key.clone()));
                }
                self.idempotency_by_time
                    .insert((record.created_at, key.clone()));
                self.idempotency.insert(key, record);
            }
            Change::DeleteIdempotency { key } => {
                if let Some(old) = self.idempotency.remove(&key) {
                    self.idempotency_by_time.remove(&(old.created_at, key));
                }
            }
            Change::PutStartedMember { node_id } => {
                self.started_members.insert(node_id);
            }
            Change::PutProposal(p) => {
                if p.status.is_finished() {
                    if self.pending_proposals.get(&p.config_id) == Some(&p.id) {
                        self.pending_proposals.remove(&p.config_id);
                    }
                } else {
                    self.pending_proposals.insert(p.config_id, p.id);
                }
                self.proposal_configs.insert(p.id, p.config_id);
                self.proposals.insert((p.config_id, p.id), *p);
            }
            Change::DeleteProposal { config_id, id } => self.remove_proposal(config_id, id),
            // The outbox lives only in storage.
            Change::TrimAuditOutbox { .. } => {}
        }
    }

    fn remove_proposal(&mut self, config_id: ConfigId, id: ProposalId) {
        self.proposals.remove(&(config_id, id));
        self.proposal_configs.remove(&id);
        if self.pending_proposals.get(&config_id) == Some(&id) {
            self.pending_proposals.remove(&config_id);
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Restores the counters when the state is rebuilt from storage.
    pub fn set_counters(&mut self, counters: Counters) {
        self.counters = counters;
    }

    // ---- reads -------------------------------------------------------------------------

    /// Whether cluster member `node_id` has started and caught up at least once.
    pub fn member_started(&self, node_id: u64) -> bool {
        self.started_members.contains(&node_id)
    }

    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name)
    }

    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    pub fn app(&self, tenant: &str, name: &str) -> Option<&App> {
        self.apps.get(&(tenant.to_owned(), name.to_owned()))
    }

    /// Apps of a tenant, by name.
    pub fn apps(&self, tenant: &str) -> impl Iterator<Item = &App> {
        let start = (tenant.to_owned(), String::new());
        self.apps
            .range(start..)
            .map(|(_, a)| a)
            .take_while(move |a| a.tenant == tenant)
    }

    pub fn environment(&self, tenant: &str, app: &str, name: &str) -> Option<&Environment> {
        self.envs
            .get(&(tenant.to_owned(), app.to_owned(), name.to_owned()))
    }

    /// Environments of an app, by name.
    pub fn environments<'a>(
        &'a self,
        tenant: &'a str,
        app: &'a str,
    ) -> impl Iterator<Item = &'a Environment> {
        let start = (tenant.to_owned(), app.to_owned(), String::new());
        self.envs
            .range(start..)
            .map(|(_, e)| e)
            .take_while(move |e| e.tenant == tenant && e.app == app)
    }

    pub fn config(&self, id: ConfigId) -> Option<&Config> {
        self.configs.get(&id)
    }

    pub fn config_by_path(&self, path: &ConfigPath) -> Option<&Config> {
        self.config_ids
            .get(path)
            .and_then(|id| self.configs.get(id))
    }

    /// All configs, by id.
    pub fn configs(&self) -> impl Iterator<Item = &Config> {
        self.configs.values()
    }

    /// Configs under a path prefix: a tenant, an app (`Some(app)`) or an environment
    /// (`Some(app)`, `Some(env)`), ordered by path.
    pub fn configs_under<'a>(
        &'a self,
        tenant: &'a str,
        app: Option<&'a str>,
        env: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Config> {
        let start = ConfigPath::new(tenant, app.unwrap_or(""), env.unwrap_or(""), "");
        self.config_ids
            .range(start..)
            .take_while(move |(p, _)| {
                p.tenant == tenant
                    && app.is_none_or(|a| p.app == a)
                    && env.is_none_or(|e| p.env == e)
            })
            .filter_map(|(_, id)| self.configs.get(id))
    }

    pub fn version(&self, config_id: ConfigId, version: VersionId) -> Option<&VersionMeta> {
        self.versions.get(&(config_id, version))
    }

    /// Every version whose content is sealed (encrypted configs), in (config, version) order.
    pub fn sealed_versions(&self) -> impl Iterator<Item = &VersionMeta> {
        self.versions.values().filter(|v| v.seal.is_some())
    }

    /// Versions of a config in ascending order.
    pub fn versions_of(
        &self,
        config_id: ConfigId,
    ) -> impl DoubleEndedIterator<Item = &VersionMeta> {
        self.versions
            .range((config_id, 0)..=(config_id, VersionId::MAX))
            .map(|(_, v)| v)
    }

    /// Versions of a config after `cursor` (exclusive), ascending, at most `limit`.
    pub fn versions_page(
        &self,
        config_id: ConfigId,
        cursor: Option<VersionId>,
        limit: usize,
    ) -> Vec<&VersionMeta> {
        let start = match cursor {
            Some(c) => after(&(config_id, c)),
            None => std::ops::Bound::Included((config_id, 0)),
        };
        self.versions
            .range((
                start,
                std::ops::Bound::Included((config_id, VersionId::MAX)),
            ))
            .map(|(_, v)| v)
            .take(limit)
            .collect()
    }

    pub fn proposal(&self, id: ProposalId) -> Option<&ReleaseProposal> {
        let config_id = self.proposal_configs.get(&id)?;
        self.proposals.get(&(*config_id, id))
    }

    /// The pending proposal of a config, if it has one.
    pub fn pending_proposal(&self, config_id: ConfigId) -> Option<&ReleaseProposal> {
        self.pending_proposals
            .get(&config_id)
            .and_then(|id| self.proposal(*id))
    }

    /// Proposals of a config, oldest first.
    pub fn proposals_of(
        &self,
        config_id: ConfigId,
    ) -> impl DoubleEndedIterator<Item = &ReleaseProposal> {
        self.proposals
            .range((config_id, 0)..=(config_id, ProposalId::MAX))
            .map(|(_, p)| p)
    }

    /// All proposals, by config and then id.
    pub fn proposals(&self) -> impl Iterator<Item = &ReleaseProposal> {
        self.proposals.values()
    }

    pub fn schema(&self, config_id: ConfigId) -> Option<&Result<CompiledSchema, DomainError>> {
        self.schemas.get(&config_id)
    }

    pub fn idempotency_record(&self, key: &str) -> Option<&IdempotencyRecord> {
        self.idempotency.get(key)
    }

    pub fn idempotency_records(&self) -> impl Iterator<Item = (&String, &IdempotencyRecord)> {
        self.idempotency.iter()
    }

    /// Idempotency keys in order of creation time.
    pub(crate) fn idempotency_by_age(&self) -> impl Iterator<Item = &(UnixMillis, String)> {
        self.idempotency_by_time.iter()
    }

    pub fn app_count(&self, tenant: &str) -> usize {
        self.apps(tenant).count()
    }

    pub fn config_count(&self, tenant: &str) -> usize {
        self.configs_under(tenant, None, None).count()
    }

    pub fn version_count(&self, config_id: ConfigId) -> usize {
        self.versions_of(config_id).count()
    }

    /// The digest of the whole state (see [`crate::digest`]): equal exactly when the
    /// records and counters are, whatever order they were created in.
    pub fn digest(&self) -> StateDigest {
        let mut d = Digester::new();
        d.section("counters", 1);
        d.record(&self.counters);
        d.section("tenants", self.tenants.len());
        self.tenants.values().for_each(|t| d.record(t));
        d.section("apps", self.apps.len());
        self.apps.values().for_each(|a| d.record(a));
        d.section("environments", self.envs.len());
        self.envs.values().for_each(|e| d.record(e));
        d.section("configs", self.configs.len());
        self.configs.values().for_each(|c| d.record(c));
        d.section("versions", self.versions.len());
        self.versions.values().for_each(|v| d.record(v));
        d.section("idempotency", self.idempotency.len());
        self.idempotency.iter().for_each(|kr| d.record(&kr));
        d.section("started_members", self.started_members.len());
        self.started_members.iter().for_each(|m| d.record(m));
        // Only when there are any: a state without proposals keeps the digest it had before
        // proposals existed, so nodes of both versions agree during a rolling upgrade.
        if !self.proposals.is_empty() {
            d.section("proposals", self.proposals.len());
            self.proposals.values().for_each(|p| d.record(p));
        }
        let count = |n: usize| n as u64;
        StateDigest {
            sha256: d.finish(),
            tenants: count(self.tenants.len()),
            apps: count(self.apps.len()),
            environments: count(self.envs.len()),
            configs: count(self.configs.len()),
            versions: count(self.versions.len()),
            idempotency_records: count(self.idempotency.len()),
        }
    }

    /// Every record of the state as `Put*` changes, in an order that [`State::apply_change`]
    /// can replay into an empty state. Used for snapshots and equality checks.
    pub fn to_changes(&self) -> impl Iterator<Item = Change> + '_ {
        let tenants = self.tenants.values().cloned().map(Change::PutTenant);
        let apps = self.apps.values().cloned().map(Change::PutApp);
        let envs = self.envs.values().cloned().map(Change::PutEnvironment);
        let configs = self.configs.values().cloned().map(Change::PutConfig);
        let versions = self
            .versions
            .values()
            .cloned()
            .map(|meta| Change::PutVersion {
                meta,
                content: Bytes::new(),
            });
        let idem = self
            .idempotency
            .iter()
            .map(|(k, r)| Change::PutIdempotency {
                key: k.clone(),
                record: r.clone(),
            });
        let members = self
            .started_members
            .iter()
            .map(|&node_id| Change::PutStartedMember { node_id });
        let proposals = self
            .proposals
            .values()
            .map(|p| Change::PutProposal(Box::new(p.clone())));
        tenants
            .chain(apps)
            .chain(envs)
            .chain(configs)
            .chain(versions)
            .chain(idem)
            .chain(members)
            .chain(proposals)
    }
}
