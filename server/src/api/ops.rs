//! Health and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use conflux_api_types::{Health, Readiness};

use super::AppState;

/// A node that has applied this many entries fewer than its log holds is not ready: it would
/// serve noticeably stale configs.
pub const READY_MAX_APPLY_LAG: u64 = 100;

pub async fn health(State(app): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        node_id: app.0.node_id,
    })
}

pub async fn ready(State(app): State<AppState>) -> Response {
    let metrics = app.raft().metrics().borrow().clone();
    let applied = metrics.last_applied.map_or(0, |l| l.index);
    let last_log = metrics.last_log_index.unwrap_or(0);
    let reason = if let Err(e) = &metrics.running_state {
        Some(format!("the Raft core stopped: {e}"))
    } else if metrics.current_leader.is_none() {
        Some("no leader is known".to_owned())
    } else if !app.identity().loaded() {
        Some("the identities have not been loaded from the metadata DB yet".to_owned())
    } else if last_log.saturating_sub(applied) > READY_MAX_APPLY_LAG {
        Some(format!(
            "applied index {applied} lags the log ({last_log}) by more than {READY_MAX_APPLY_LAG}"
        ))
    } else {
        None
    };
    let body = Readiness {
        ready: reason.is_none(),
        node_id: app.0.node_id,
        leader_id: metrics.current_leader,
        applied_index: applied,
        metadata_reachable: app.metadata().reachable(),
        reason,
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(app): State<AppState>) -> Response {
    let m = app.raft().metrics().borrow().clone();
    let g = &app.0.metrics.gauges;
    g.term.set(m.current_term as i64);
    g.is_leader
        .set(i64::from(m.current_leader == Some(app.0.node_id)));
    g.last_log_index.set(m.last_log_index.unwrap_or(0) as i64);
    g.applied_index
        .set(m.last_applied.map_or(0, |l| l.index) as i64);
    g.snapshot_index
        .set(m.snapshot.map_or(0, |l| l.index) as i64);
    g.purged_index.set(m.purged.map_or(0, |l| l.index) as i64);
    g.members
        .set(m.membership_config.membership().nodes().count() as i64);
    let (tenants, configs, versions) = app.plane().read(|s| {
        let configs: Vec<u64> = s.configs().map(|c| c.id).collect();
        let versions: usize = configs.iter().map(|id| s.version_count(*id)).sum();
        (s.tenants().count(), configs.len(), versions)
    });
    g.tenants.set(tenants as i64);
    g.configs.set(configs as i64);
    g.versions.set(versions as i64);
    g.watch_subscriptions
        .set(app.plane().watch_hub().subscriptions() as i64);
    let body = app.0.metrics.encode();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
