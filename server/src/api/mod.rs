//! The HTTP API (contract section 4) on axum: the fetch plane for services, the management
//! plane for operators, and health/readiness.
//!
//! API boundary: handlers translate HTTP into domain commands and domain results into the
//! wire types of `conflux-api-types`. They never decide anything the state machine decides
//! (quotas, versions, rule validity); writes go through Raft ([`AppState::propose`]) and
//! reads come from the applied state of this node.

pub mod access;
mod audit;
mod cluster;
pub mod error;
pub mod extract;
mod fetch;
pub mod grpc;
pub mod heavy;
mod identity;
mod kms;
mod mgt;
mod ops;
mod proposals;
mod sealing;
pub mod tls;
mod watch;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{get, post};
use conflux_domain::{Command, Proposal, RequestOrigin, Response};

use crate::auth::{IdentityCache, MetadataLink};
use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::raft::Raft;
use crate::storage::ConfigPlane;
use access::Caller;
use error::ApiError;
use extract::WriteOptions;
use heavy::HeavyJobs;

/// Hard cap on any request body (contract: 413 `payload_too_large` above 4 MiB).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Everything a handler needs, cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<AppInner>);

impl std::fmt::Debug for AppInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppInner")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

pub struct AppInner {
    pub node_id: u64,
    pub raft: Raft,
    pub plane: ConfigPlane,
    pub cluster: Cluster,
    pub metrics: Arc<Metrics>,
    /// How long `?min_revision=` waits for this node to catch up.
    pub min_revision_wait: Duration,
    /// Subscriptions one WebSocket connection may hold.
    pub max_subscriptions_per_connection: usize,
    /// Slots for CPU-heavy request work (diffs, `validate_only`), off the async workers.
    pub heavy_jobs: HeavyJobs,
    /// Raised when the node begins to shut down: long-lived requests (watches) end at once.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// The metadata DB and the in-memory identity kept from it.
    pub metadata: Arc<MetadataLink>,
    /// Audit records of this node's own events (denials, logins, identity changes).
    pub auditor: Arc<crate::audit::Auditor>,
    /// Seals and opens the contents of encrypted configs.
    pub kms: Arc<conflux_kms::Kms>,
}

/// A command that went through Raft: its response and the revision (log index) of its entry.
/// Who a proposal is made for, and where the request came from.
#[derive(Debug, Clone)]
pub struct Author {
    /// `user:alice`, `token:<id>`, `webhook:<id>`.
    pub principal: String,
    pub origin: access::Origin,
}

impl Author {
    pub fn of(caller: &Caller) -> Author {
        Author {
            principal: caller.principal(),
            origin: caller.origin.clone(),
        }
    }
}

#[derive(Debug)]
pub struct Applied {
    pub response: Response,
    pub revision: u64,
}

impl AppState {
    pub fn new(inner: AppInner) -> Self {
        AppState(Arc::new(inner))
    }

    pub fn plane(&self) -> &ConfigPlane {
        &self.0.plane
    }

    pub fn raft(&self) -> &Raft {
        &self.0.raft
    }

    pub fn cluster(&self) -> &Cluster {
        &self.0.cluster
    }

    pub fn heavy_jobs(&self) -> &HeavyJobs {
        &self.0.heavy_jobs
    }

    pub fn metadata(&self) -> &MetadataLink {
        &self.0.metadata
    }

    pub fn kms(&self) -> &conflux_kms::Kms {
        &self.0.kms
    }

    pub fn auditor(&self) -> &crate::audit::Auditor {
        &self.0.auditor
    }

    /// Who holds which token, in memory (no DB round trip per request).
    pub fn identity(&self) -> &IdentityCache {
        self.0.metadata.identity()
    }

    /// Resolves when the node begins to shut down.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stop = self.0.stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    /// Proposes a command through the leader (wherever it is) and waits until it is applied
    /// on this node. The proposal carries the caller and the request's origin into the
    /// change's audit record.
    pub async fn propose(
        &self,
        caller: &Caller,
        opts: &WriteOptions,
        body: &[u8],
        command: Command,
    ) -> Result<Applied, ApiError> {
        self.propose_as(&Author::of(caller), opts, body, command)
            .await
    }

    /// [`AppState::propose`] for an author that is not a token's principal (an external
    /// approver).
    pub async fn propose_as(
        &self,
        author: &Author,
        opts: &WriteOptions,
        body: &[u8],
        command: Command,
    ) -> Result<Applied, ApiError> {
        // The leader stamps the time again when it batches the proposal; this stamp is only
        // what the proposal carries on its way there.
        let proposal = Proposal {
            timestamp_ms: crate::clock::now_ms(),
            idempotency: opts.idempotency(&author.principal, body),
            expected_revision: opts.if_match,
            author: Some(author.principal.clone()),
            origin: Some(RequestOrigin {
                request_id: author.origin.request_id(),
                source_ip: author.origin.source_ip(),
                user_agent: author.origin.user_agent(),
            }),
            command,
        };
        let outcome = match self.0.cluster.propose(proposal).await {
            Ok(result) => match result.outcome {
                Ok(response) => Ok(Applied {
                    response,
                    revision: result.revision,
                }),
                Err(e) => Err(ApiError::Domain(e)),
            },
            Err(e) => Err(ApiError::Cluster(e)),
        };
        self.0.metrics.writes.count(match &outcome {
            Ok(_) => 200,
            Err(e) => e.status().as_u16(),
        });
        outcome
    }
}

async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound {
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
    }
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let mgt = Router::new()
        .route("/tenants", post(mgt::create_tenant).get(mgt::list_tenants))
        .route(
            "/tenants/{tenant}",
            get(mgt::get_tenant)
                .patch(mgt::update_tenant)
                .delete(mgt::delete_tenant),
        )
        .route(
            "/tenants/{tenant}/apps",
            post(mgt::create_app).get(mgt::list_apps),
        )
        .route(
            "/tenants/{tenant}/apps/{app}",
            get(mgt::get_app)
                .patch(mgt::update_app)
                .delete(mgt::delete_app),
        )
        .route(
            "/tenants/{tenant}/apps/{app}/envs",
            post(mgt::create_env).get(mgt::list_envs),
        )
        .route(
            "/tenants/{tenant}/apps/{app}/envs/{env}",
            get(mgt::get_env)
                .patch(mgt::update_env)
                .delete(mgt::delete_env),
        )
        .route(
            "/tenants/{tenant}/apps/{app}/envs/{env}/configs",
            post(mgt::create_config).get(mgt::list_configs),
        )
        .route(
            "/tenants/{tenant}/apps/{app}/envs/{env}/configs/{name}",
            get(mgt::get_config_by_path),
        )
        .route(
            "/configs/{id}",
            get(mgt::get_config)
                .patch(mgt::update_config)
                .delete(mgt::delete_config),
        )
        .route(
            "/configs/{id}/versions",
            post(mgt::create_version).get(mgt::list_versions),
        )
        .route("/configs/{id}/versions/{version}", get(mgt::get_version))
        .route(
            "/configs/{id}/versions/{version}/content",
            get(mgt::get_version_content),
        )
        .route(
            "/configs/{id}/versions/{a}/diff/{b}",
            get(mgt::diff_versions),
        )
        .route(
            "/configs/{id}/releases",
            get(mgt::get_releases).put(mgt::put_releases),
        )
        .route("/configs/{id}/publish", post(mgt::publish))
        .route("/configs/{id}/rollback", post(mgt::rollback))
        .route("/configs/{id}/resolve", get(mgt::resolve_simulator))
        .route("/proposals", get(proposals::list))
        .route("/proposals/{id}", get(proposals::get))
        .route("/proposals/{id}/cancel", post(proposals::cancel))
        .layer(axum::middleware::from_fn(extract::read_body_first));

    // Approve and reject authenticate in their handlers: an external approver signs the
    // body with a webhook's secret instead of sending a token.
    let decisions = Router::new()
        .route(
            "/api/v1/mgt/proposals/{id}/approve",
            post(proposals::approve),
        )
        .route("/api/v1/mgt/proposals/{id}/reject", post(proposals::reject))
        .layer(axum::middleware::from_fn(extract::read_body_first));

    // Node and cluster operations; the same body handling as management.
    let cluster_routes = Router::new()
        .route("/_cluster/status", get(cluster::status))
        .route("/_cluster/digest", get(cluster::digest))
        .route("/_cluster/members", post(cluster::add_member))
        .route(
            "/_cluster/members/{id}",
            axum::routing::delete(cluster::remove_member),
        )
        .route("/_cluster/leader/transfer", post(cluster::transfer_leader))
        .route("/_cluster/snapshot", post(cluster::snapshot))
        .route("/_cluster/backup", get(cluster::backup))
        .route("/api/v1/mgt/kms", get(kms::get_status))
        .route("/api/v1/mgt/kms/rewrap", post(kms::rewrap))
        .layer(axum::middleware::from_fn(extract::read_body_first))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cluster::cluster_admin_only,
        ));

    // Identity and audit (contract section 6); the same body handling as management.
    let identity_routes = Router::new()
        .route("/api/v1/auth/logout", post(identity::logout))
        .route("/api/v1/auth/whoami", get(identity::whoami))
        .route(
            "/api/v1/users",
            post(identity::create_user).get(identity::list_users),
        )
        .route(
            "/api/v1/users/{username}",
            get(identity::get_user)
                .patch(identity::update_user)
                .delete(identity::delete_user),
        )
        .route(
            "/api/v1/tokens",
            post(identity::create_token).get(identity::list_tokens),
        )
        .route(
            "/api/v1/tokens/{id}",
            get(identity::get_token).delete(identity::delete_token),
        )
        .route(
            "/api/v1/role-bindings",
            post(identity::create_binding).get(identity::list_bindings),
        )
        .route(
            "/api/v1/role-bindings/{id}",
            get(identity::get_binding).delete(identity::delete_binding),
        )
        .route("/api/v1/audit", get(audit::list))
        .route(
            "/api/v1/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .layer(axum::middleware::from_fn(extract::read_body_first));

    // What services call: watch over REST, WebSocket and gRPC, and gRPC fetch, behind
    // authentication. REST fetch (the hot path) authenticates in its handler, with no layer.
    let serving = Router::new()
        .route(
            "/api/v1/watch/config/{tenant}/{app}/{env}/{name}",
            get(watch::long_poll),
        )
        .route("/api/v1/watch/ws", get(watch::websocket))
        .route_service(
            "/conflux.v1.Config/{*method}",
            grpc::pb::config_server::ConfigServer::new(grpc::FetchService(state.clone())),
        )
        .route_service(
            "/conflux.v1.Watch/{*method}",
            grpc::pb::watch_server::WatchServer::new(grpc::WatchService(state.clone())),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::authenticate,
        ));

    // What operators call: every request has an id (echoed, and carried into its audit
    // record) and its denials are audited.
    let managing = Router::new()
        .nest("/api/v1/mgt", mgt)
        .merge(cluster_routes)
        .merge(identity_routes)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::authenticate,
        ))
        .merge(decisions)
        // Outside authentication: sees its 401s as well as the handlers' 403s.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::audit_denials,
        ))
        .route(
            "/api/v1/auth/login",
            post(identity::login).layer(axum::middleware::from_fn(extract::read_body_first)),
        )
        .route_layer(axum::middleware::from_fn(access::origin));

    Router::new()
        .route(
            "/api/v1/fetch/config/{tenant}/{app}/{env}/{name}",
            get(fetch::fetch),
        )
        .merge(serving)
        .merge(managing)
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
