//! `/_cluster/*`: status, state digests, membership, leadership, snapshots and backups.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conflux_api_types::{
    ClusterChange, ClusterDigest, ClusterStatus, JoinRequest, MemberStatus, SnapshotTaken,
    TransferLeaderRequest,
};

use conflux_domain::{Role, Scope};

use super::AppState;
use super::access::Caller;
use super::error::ApiError;
use super::extract::{ApiPath, JsonBody, parse_json};
use crate::cluster::ClusterError;
use crate::raft::{ForwardReply, ForwardRequest, NodeInfo};
use crate::storage::snapshot;

/// Membership changes wait this long for the leader (catching up a new node can be slow).
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(330);
/// How long a snapshot request waits for the snapshot to be built.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

type ApiResult = Result<Response, ApiError>;

/// Every `/_cluster/*` call needs cluster_admin on `*`; the ones that change something
/// (membership, leadership, snapshots) and backups (a copy of everything) are audited.
pub async fn cluster_admin_only(
    State(app): State<AppState>,
    caller: Caller,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let action = format!("{} {}", req.method(), req.uri().path());
    let audited = req.method() != axum::http::Method::GET || req.uri().path() == "/_cluster/backup";
    if let Err(e) = caller.require(Role::ClusterAdmin, &Scope::All, "operate the cluster") {
        return e.into_response();
    }
    let response = next.run(req).await;
    if audited {
        let status = response.status();
        app.auditor().record(crate::audit::event(
            &caller.principal(),
            &caller.origin,
            &action,
            "cluster",
            None,
            if status.is_success() {
                "success"
            } else {
                "failed"
            },
            None,
            serde_json::json!({"status": status.as_u16()}),
        ));
    }
    response
}

pub async fn status(State(app): State<AppState>) -> Json<ClusterStatus> {
    let cluster = app.cluster();
    let local = cluster.local_view();
    let views = cluster.member_views().await;
    let leader_log = views
        .iter()
        .filter_map(|(_, _, _, v)| v.as_ref())
        .find(|v| v.role == "leader")
        .map(|v| v.last_log_index);
    let members = views
        .into_iter()
        .map(|(id, node, voter, view)| MemberStatus {
            id,
            role: view
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), |v| v.role.clone()),
            voter,
            raft_addr: node.raft_addr,
            api_addr: node.api_addr,
            reachable: view.is_some(),
            term: view.as_ref().map(|v| v.term),
            applied_index: view.as_ref().map(|v| v.applied_index),
            last_log_index: view.as_ref().map(|v| v.last_log_index),
            lag: view
                .as_ref()
                .zip(leader_log)
                .map(|(v, l)| l.saturating_sub(v.applied_index)),
        })
        .collect();
    Json(ClusterStatus {
        node_id: local.node_id,
        leader_id: local.leader_id,
        term: local.term,
        members,
    })
}

/// The digest of this node's config plane and the applied index it describes, computed on a
/// heavy-job thread (it reads the whole state under the state's read lock).
pub async fn digest(State(app): State<AppState>) -> Result<Json<ClusterDigest>, ApiError> {
    let plane = app.plane().clone();
    let (applied_index, d) = app.heavy_jobs().run(move || Ok(plane.digest())).await?;
    Ok(Json(ClusterDigest {
        node_id: app.cluster().node_id(),
        applied_index,
        digest: d.to_string(),
        tenants: d.tenants,
        apps: d.apps,
        environments: d.environments,
        configs: d.configs,
        versions: d.versions,
        idempotency_records: d.idempotency_records,
    }))
}

fn change(app: &AppState, reply: ForwardReply) -> ApiResult {
    match reply {
        ForwardReply::Done { revision } => {
            let leader_id = app.raft().metrics().borrow().current_leader;
            Ok(Json(ClusterChange {
                revision,
                leader_id,
            })
            .into_response())
        }
        other => Err(ApiError::internal(format!(
            "unexpected answer from the leader: {other:?}"
        ))),
    }
}

pub async fn add_member(State(app): State<AppState>, body: JsonBody<JoinRequest>) -> ApiResult {
    let b = body.value;
    if app.metadata().is_sqlite() {
        return Err(ApiError::invalid_request(
            "metadata_sqlite_single_node",
            "node_id",
            "this node keeps its metadata in SQLite, which serves a single node only: restart \
             the cluster with a shared PostgreSQL metadata DB (--metadata-url) before adding members",
        ));
    }
    if b.node_id == 0 {
        return Err(ApiError::invalid_request(
            "invalid_argument",
            "node_id",
            "node ids start at 1",
        ));
    }
    for (field, addr) in [("raft_addr", &b.raft_addr), ("api_addr", &b.api_addr)] {
        if !crate::config::is_host_port(addr) {
            return Err(ApiError::invalid_request(
                "invalid_argument",
                field,
                format!("{addr:?} is not host:port"),
            ));
        }
    }
    let request = ForwardRequest::AddMember {
        node_id: b.node_id,
        node: NodeInfo {
            raft_addr: b.raft_addr,
            api_addr: b.api_addr,
        },
    };
    let reply = app
        .cluster()
        .on_leader(request, Instant::now() + MEMBERSHIP_TIMEOUT)
        .await?;
    change(&app, reply)
}

pub async fn remove_member(State(app): State<AppState>, ApiPath(id): ApiPath<u64>) -> ApiResult {
    let reply = app
        .cluster()
        .on_leader(
            ForwardRequest::RemoveMember { node_id: id },
            Instant::now() + MEMBERSHIP_TIMEOUT,
        )
        .await?;
    change(&app, reply)
}

/// The body is optional: without one (or without `to`) the leader picks its successor.
pub async fn transfer_leader(State(app): State<AppState>, raw: axum::body::Bytes) -> ApiResult {
    let to = match raw.is_empty() {
        true => None,
        false => parse_json::<TransferLeaderRequest>(&raw)?.to,
    };
    let reply = app
        .cluster()
        .on_leader(
            ForwardRequest::TransferLeader { to },
            Instant::now() + Duration::from_secs(30),
        )
        .await?;
    change(&app, reply)
}

/// Builds a snapshot on this node that covers everything applied so far.
async fn take_snapshot(app: &AppState) -> Result<u64, ApiError> {
    let wanted = app.plane().applied_index();
    let raft = app.raft();
    let current = raft.metrics().borrow().snapshot.map_or(0, |l| l.index);
    if current < wanted || current == 0 {
        raft.trigger()
            .snapshot()
            .await
            .map_err(|e| ApiError::Cluster(ClusterError::Stopped(e.to_string())))?;
    }
    let mut metrics = raft.metrics();
    let built = tokio::time::timeout(
        SNAPSHOT_TIMEOUT,
        metrics.wait_for(|m| m.snapshot.is_some_and(|l| l.index >= wanted)),
    )
    .await;
    match built {
        Ok(Ok(m)) => Ok(m.snapshot.map_or(0, |l| l.index)),
        _ => Err(ApiError::Unavailable {
            code: "snapshot_timeout",
            message: format!("the snapshot was not built within {SNAPSHOT_TIMEOUT:?}"),
            retry_after_secs: 5,
        }),
    }
}

pub async fn snapshot(State(app): State<AppState>) -> ApiResult {
    let snapshot_index = take_snapshot(&app).await?;
    Ok((StatusCode::OK, Json(SnapshotTaken { snapshot_index })).into_response())
}

/// Streams a consistent snapshot file, from which `conflux restore` creates a new cluster.
pub async fn backup(State(app): State<AppState>) -> ApiResult {
    take_snapshot(&app).await?;
    // An open handle: the file stays readable even if a newer snapshot replaces it.
    let (meta, file) = snapshot::current_file(app.plane())
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("no snapshot after building one"))?;
    let file = tokio::fs::File::from_std(file);
    let index = meta.last_log_id.map_or(0, |l| l.index);
    let name = format!("attachment; filename=\"conflux-backup-{index}.snap\"");
    let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(file)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        conflux_api_types::headers::REVISION,
        HeaderValue::from(index),
    );
    Ok(r)
}
