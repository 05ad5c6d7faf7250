//! The audit log on the API: records of denied management requests, and
//! `GET /api/v1/audit` (contract section 6).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use conflux_api_types::{AuditPage, AuditRecordView, rfc3339};
use conflux_domain::{Role, Scope};
use conflux_metadata::AuditQuery;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::access::{Actor, Caller, Origin};
use super::error::{ApiError, DeniedBecause};
use super::extract::ApiQuery;
use crate::audit::event;
use crate::clock::now_ms;

/// Denial records one node writes per second at most. A client hammering the API with bad
/// tokens must not be able to fill the audit log (or the spool) at line rate; what is
/// dropped is counted in the log.
const MAX_DENIALS_PER_SECOND: u64 = 50;

/// Writes an audit record for every 401 and 403 of the management, identity and cluster
/// APIs (the router puts it in front of those only). Fetch and watch are left out: a service
/// with a stale token would write one record per poll, and their denials are 404s by design.
pub async fn audit_denials(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let origin = req
        .extensions()
        .get::<Origin>()
        .cloned()
        .unwrap_or_default();
    let response = next.run(req).await;
    let status = response.status();
    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        return response;
    }
    if !denial_budget() {
        return response;
    }
    let actor = response
        .extensions()
        .get::<Actor>()
        .map(|a| a.0.clone())
        .unwrap_or_else(|| "anonymous".to_owned());
    let reason = response
        .extensions()
        .get::<DeniedBecause>()
        .map(|d| d.0.clone());
    app.auditor().record(event(
        &actor,
        &origin,
        &format!("{method} {path}"),
        &path,
        tenant_of(&path),
        "denied",
        reason,
        json!({"status": status.as_u16()}),
    ));
    response
}

/// The tenant a management path is under, if it names one.
fn tenant_of(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/mgt/tenants/")
        .and_then(|rest| rest.split('/').next())
        .filter(|t| !t.is_empty())
}

/// A fixed-window budget of [`MAX_DENIALS_PER_SECOND`].
fn denial_budget() -> bool {
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    static USED: AtomicU64 = AtomicU64::new(0);
    static DROPPED: AtomicU64 = AtomicU64::new(0);
    let second = now_ms() / 1000;
    if WINDOW.swap(second, Ordering::Relaxed) != second {
        USED.store(0, Ordering::Relaxed);
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "denied requests not audited: over {MAX_DENIALS_PER_SECOND}/s"
            );
        }
    }
    if USED.fetch_add(1, Ordering::Relaxed) < MAX_DENIALS_PER_SECOND {
        true
    } else {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        false
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    tenant: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn parse_time(field: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(v) = value else { return Ok(None) };
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| Some(d.as_millis() as i64))
        .ok_or_else(|| {
            ApiError::invalid_request(
                "invalid_query",
                field,
                format!("{field} is not an RFC 3339 time such as 2026-12-01T00:00:00Z"),
            )
        })
}

/// `GET /api/v1/audit`: cluster admins see everything; viewers and above the records of the
/// scopes they hold viewer (or more) on.
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditFilter>,
) -> Result<Response, ApiError> {
    let visible_scopes = if caller.allows(Role::ClusterAdmin, &Scope::All) {
        None
    } else {
        let scopes: Vec<String> = caller
            .subject
            .grants
            .iter()
            .filter(|g| g.role >= Role::Viewer)
            .map(|g| g.scope.to_string())
            .collect();
        if scopes.is_empty() {
            return Err(ApiError::Forbidden {
                message: format!(
                    "{} may not read the audit log (needs viewer on some scope)",
                    caller.subject.principal
                ),
            });
        }
        Some(scopes)
    };
    if let Some(limit) = q.limit
        && !(1..=1000).contains(&limit)
    {
        return Err(ApiError::invalid_request(
            "invalid_query",
            "limit",
            "limit must be 1-1000",
        ));
    }
    let query = AuditQuery {
        tenant: q.tenant,
        actor: q.actor,
        action: q.action,
        since_ms: parse_time("since", &q.since)?,
        until_ms: parse_time("until", &q.until)?,
        limit: q.limit,
        cursor: q.cursor,
        visible_scopes,
    };
    let store = app.metadata().store()?;
    let page = store.query_audit(&query).await;
    app.metadata().observe(&page);
    let page = page.map_err(|e| match e {
        conflux_metadata::MetadataError::Invalid(m) => {
            ApiError::invalid_request("invalid_query", "cursor", m)
        }
        other => ApiError::Metadata(other),
    })?;
    Ok(Json(AuditPage {
        records: page
            .records
            .into_iter()
            .map(|r| AuditRecordView {
                id: r.id,
                time: rfc3339(r.time_ms.max(0) as u64),
                actor: r.actor,
                action: r.action,
                resource: r.resource,
                tenant: r.tenant,
                outcome: r.outcome,
                reason: r.reason,
                revision: r.revision.map(|v| v as u64),
                request_id: r.request_id,
                source_ip: r.source_ip,
                user_agent: r.user_agent,
                details: r.details,
            })
            .collect(),
        next_cursor: page.next_cursor,
    })
    .into_response())
}
