//! `GET /api/v1/fetch/config/{tenant}/{app}/{env}/{name}`: the hot path.
//!
//! Reads only the lock-free fetch index; the path is looked up straight from the request URI
//! (no allocation for the key), content is a shared `Bytes`, and header values are
//! precomputed per version.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conflux_api_types::headers;
use conflux_domain::{ClientLabels, ConfigPath, DomainError, Entity, resolve_ordered};
use percent_encoding::percent_decode_str;

use super::AppState;
use super::access;
use super::error::ApiError;
use super::extract::client_labels;
use crate::auth::Subject;
use crate::serving::{ServedConfig, ServedVersion};

const PREFIX: &str = "/api/v1/fetch/config/";

pub async fn fetch(State(app): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    // Authenticated here rather than by a middleware layer: the hot path.
    let response = match access::authenticate_headers(&app, &parts.headers) {
        Ok((subject, _)) => match serve(&app, &subject, &parts).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    };
    app.0.metrics.fetch.count(response.status().as_u16());
    response
}

#[derive(Default)]
struct FetchQuery {
    linearizable: bool,
    min_revision: Option<u64>,
}

fn parse_query(query: Option<&str>) -> Result<FetchQuery, ApiError> {
    let mut q = FetchQuery::default();
    let Some(query) = query else { return Ok(q) };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "consistency" => match v {
                "linearizable" => q.linearizable = true,
                "local" | "" => q.linearizable = false,
                other => {
                    return Err(ApiError::invalid_request(
                        "invalid_query",
                        "consistency",
                        format!("consistency must be 'linearizable' or 'local', got {other:?}"),
                    ));
                }
            },
            "min_revision" => {
                q.min_revision = Some(v.parse().map_err(|_| {
                    ApiError::invalid_request(
                        "invalid_query",
                        "min_revision",
                        format!("{v:?} is not a revision number"),
                    )
                })?)
            }
            // Unknown parameters are ignored, as caches and proxies sometimes add their own.
            _ => {}
        }
    }
    Ok(q)
}

/// What a fetch of `path` by a client with `labels` serves, after the consistency waits
/// asked for. Shared by the HTTP and gRPC fetch.
pub async fn resolve_fetch(
    app: &AppState,
    caller: &Subject,
    path: &str,
    labels: &ClientLabels,
    min_revision: Option<u64>,
    linearizable: bool,
) -> Result<(Arc<ServedConfig>, Arc<ServedVersion>), ApiError> {
    // A linearizable read waits until this node has applied everything the leader had
    // committed when the read arrived (the leader's read index, confirmed by a quorum).
    let read_index = match linearizable {
        true => Some(app.cluster().read_index().await?),
        false => None,
    };
    if let Some(revision) = read_index.max(min_revision) {
        let plane = app.plane();
        if plane.applied_index() < revision
            && !plane.wait_applied(revision, app.0.min_revision_wait).await
        {
            return Err(ApiError::Unavailable {
                code: "revision_not_reached",
                message: format!(
                    "this node has applied revision {} and did not reach {revision} within {:?}",
                    plane.applied_index(),
                    app.0.min_revision_wait
                ),
                retry_after_secs: 1,
            });
        }
    }
    // A config outside the caller's scope answers exactly like one that does not exist.
    let found = app
        .plane()
        .fetch_index()
        .get(path)
        .filter(|_| caller.may_read_path(path));
    let Some(served) = found else {
        // Distinguish a malformed path (400 naming the segment) from an unknown config.
        ConfigPath::parse(path)?;
        return Err(DomainError::NotFound {
            entity: Entity::Config,
            key: path.to_owned(),
        }
        .into());
    };
    let resolution = resolve_ordered(served.config_id, &served.rules, &served.order, labels)
        .ok_or_else(|| {
            ApiError::from(DomainError::NotPublished {
                path: path.to_owned(),
            })
        })?;
    let version = served
        .version(resolution.rule.version_id)
        .cloned()
        .ok_or_else(|| {
            ApiError::internal("a release rule points at a version the fetch index lacks")
        })?;
    Ok((served, version))
}

fn etag_matches(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let etag = etag.as_bytes();
    inm.split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/").as_bytes() == etag)
}

async fn serve(app: &AppState, caller: &Subject, req: &Parts) -> Result<Response, ApiError> {
    let uri = &req.uri;
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let path: Cow<'_, str> = if raw.contains('%') {
        percent_decode_str(raw).decode_utf8().map_err(|_| {
            ApiError::invalid_request("invalid_path", "path", "the config path is not valid UTF-8")
        })?
    } else {
        Cow::Borrowed(raw)
    };
    let query = parse_query(uri.query())?;
    let headers = &req.headers;
    let labels = client_labels(headers, [], None)?;
    let (served, version) = resolve_fetch(
        app,
        caller,
        &path,
        &labels,
        query.min_revision,
        query.linearizable,
    )
    .await?;

    let mut builder = Response::builder()
        .header(header::ETAG, version.etag.clone())
        .header(headers::CONFIG_VERSION, version.version_header.clone())
        .header(headers::CONFIG_HASH, version.hash.clone())
        .header(headers::REVISION, served.revision_header.clone());
    let body = if etag_matches(headers, &version.etag) {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        Body::empty()
    } else {
        builder = builder
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, served.content_type.clone());
        Body::from(super::sealing::served_plaintext(app, &version).await?)
    };
    builder.body(body).map_err(ApiError::internal)
}
