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
        reason,
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
