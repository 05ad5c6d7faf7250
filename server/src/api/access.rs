//! Authentication and authorization at the HTTP edge (contract section 6).
//!
//! [`authenticate`] runs before every protected route (REST, WebSocket upgrade and gRPC alike:
//! gRPC's `authorization` metadata is the same HTTP/2 header): it turns the bearer token into
//! a [`Caller`] by an in-memory look-up, or answers 401. Handlers then ask for the role they
//! need on the resource they touch ([`Caller::require`]); fetch and watch use
//! [`Caller::may_read_config`] so that a config outside the caller's scope looks exactly like
//! one that does not exist.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use conflux_api_types::headers;
use conflux_domain::{Role, Scope};

use super::AppState;
use super::error::ApiError;
use crate::auth::Subject;
use crate::auth::token::TokenDigest;
use crate::clock::now_ms;

/// Where a request came from, for audit records and logs. Kept as the request's own header
/// values and address (no string is made unless a record needs one: the fetch path makes
/// this for every request).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    request_id: Option<HeaderValue>,
    source_ip: Option<IpAddr>,
    user_agent: Option<HeaderValue>,
}

impl Origin {
    pub fn request_id(&self) -> String {
        header_text(self.request_id.as_ref())
    }

    pub fn source_ip(&self) -> String {
        self.source_ip.map(|ip| ip.to_string()).unwrap_or_default()
    }

    pub fn user_agent(&self) -> String {
        let text = header_text(self.user_agent.as_ref());
        text.chars().take(MAX_USER_AGENT_LEN).collect()
    }
}

fn header_text(v: Option<&HeaderValue>) -> String {
    v.and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The authenticated principal of a request and where the request came from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: Arc<Subject>,
    /// The token's digest: long-lived requests (watches) look it up again after every
    /// identity reload to notice revocation.
    pub token: TokenDigest,
    pub origin: Origin,
}

/// The principal a response was given to, for the audit of denied requests (which runs
/// outside authentication and so sees only the response).
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// Longest `X-Request-Id` taken from a client; longer or odd ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;
const MAX_USER_AGENT_LEN: usize = 256;

/// A request id of this node: a random per-process prefix and a counter, unique without a
/// system call per request.
fn new_request_id() -> HeaderValue {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| hex::encode(crate::auth::token::random_bytes::<6>()));
    let id = format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed));
    HeaderValue::from_maybe_shared(bytes::Bytes::from(id))
        .expect("hex digits and '-' are a valid header value")
}

/// Reads (or makes up) the request id and where the request came from, and echoes the
/// request id on the answer. Runs on every route.
pub async fn origin(mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(headers::REQUEST_ID)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.as_bytes().iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(new_request_id);
    let origin = Origin {
        request_id: Some(request_id.clone()),
        source_ip: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
    };
    req.extensions_mut().insert(origin);
    let mut response = next.run(req).await;
    response
        .headers_mut()
        .insert(headers::REQUEST_ID, request_id);
    response
}

/// The bearer token of a request: `None` when there is no `Authorization` header, an error
/// when there is one that is not `Bearer <token>`.
pub fn bearer_token(parts_headers: &axum::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts_headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::Unauthenticated {
        message: "the Authorization header is not visible ASCII".into(),
    })?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthenticated {
            message: "the Authorization header must be `Bearer <token>`".into(),
        });
    }
    Ok(Some(token.trim()))
}

/// Authenticates a protected request: attaches its [`Caller`] or answers 401 (for gRPC, the
/// `UNAUTHENTICATED` status).
/// The subject of the bearer token in `headers` and the token's digest, or 401. A look-up in
/// the in-memory identity: one SHA-256 and one map access.
pub fn authenticate_headers(
    app: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<(Arc<Subject>, TokenDigest), ApiError> {
    let token = bearer_token(headers)?.ok_or_else(|| ApiError::Unauthenticated {
        message: "this request needs `Authorization: Bearer <token>`".into(),
    })?;
    let unknown = || ApiError::Unauthenticated {
        message: "the token is unknown, expired or revoked".into(),
    };
    if !crate::auth::token::well_formed(token) {
        return Err(unknown());
    }
    let digest = crate::auth::token::digest(token);
    let identity = app.identity();
    match identity
        .load()
        .authenticate_digest(&digest, now_ms() as i64)
    {
        Some(subject) => Ok((subject, digest)),
        // A node that started while the metadata DB was away, on an empty data directory,
        // knows no token yet: "try again" is the truth, "unauthenticated" would not be.
        None if !identity.loaded() => Err(ApiError::Metadata(
            conflux_metadata::MetadataError::Unavailable(
                "this node has not loaded the identities from the metadata DB yet; retry".into(),
            ),
        )),
        None => Err(unknown()),
    }
}

/// Authenticates a protected request: attaches its [`Caller`] or answers 401 (for gRPC, the
/// `UNAUTHENTICATED` status). The fetch route calls [`authenticate_headers`] itself instead
/// (no middleware on the hot path).
pub async fn authenticate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let subject = authenticate_headers(&app, req.headers());
    let origin = req
        .extensions()
        .get::<Origin>()
        .cloned()
        .unwrap_or_default();
    match subject {
        Ok((subject, token)) => {
            req.extensions_mut().insert(Caller {
                subject: subject.clone(),
                token,
                origin,
            });
            let mut response = next.run(req).await;
            // Only denials are audited with their actor; the fetch path makes no string.
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                response
                    .extensions_mut()
                    .insert(Actor(subject.principal.to_string()));
            }
            response
        }
        Err(e) if grpc => tonic::Status::unauthenticated(e.to_string())
            .into_http::<axum::body::Body>()
            .into_response(),
        Err(e) => e.into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthenticated {
                message: "this request needs `Authorization: Bearer <token>`".into(),
            })
    }
}

impl Caller {
    pub fn principal(&self) -> String {
        self.subject.principal.to_string()
    }

    pub fn allows(&self, needed: Role, resource: &Scope) -> bool {
        self.subject.allows(needed, resource)
    }

    /// `Ok` if the caller holds `needed` on `resource`, else 403 naming the action and the
    /// resource.
    pub fn require(&self, needed: Role, resource: &Scope, action: &str) -> Result<(), ApiError> {
        if self.allows(needed, resource) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                message: format!(
                    "{} may not {action} on {} (needs {needed} there)",
                    self.subject.principal,
                    describe(resource)
                ),
            })
        }
    }

    /// `Ok` if the caller can see anything at or under `resource` ([`Caller::sees`]), else 403.
    pub fn require_sight(&self, resource: &Scope, action: &str) -> Result<(), ApiError> {
        if self.sees(resource) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                message: format!(
                    "{} may not {action} on {} (needs viewer there)",
                    self.subject.principal,
                    describe(resource)
                ),
            })
        }
    }

    /// Whether the caller may fetch or watch the config at `tenant/app/env/name` `path`.
    pub fn may_read_path(&self, path: &str) -> bool {
        self.subject.may_read_path(path)
    }

    /// Whether the caller can see anything at or under `resource` (for lists: a tenant shows
    /// when the caller holds a viewer binding on it or anywhere inside it).
    pub fn sees(&self, resource: &Scope) -> bool {
        self.subject.grants.iter().any(|g| {
            g.role >= Role::Viewer && (g.scope.covers(resource) || resource.covers(&g.scope))
        })
    }
}

/// `tenant shop`, `app shop/web`, `environment shop/web/prod`, `the cluster`.
pub fn describe(scope: &Scope) -> String {
    match scope {
        Scope::All => "the cluster".into(),
        Scope::Tenant(_) => format!("tenant {scope}"),
        Scope::App(..) => format!("app {scope}"),
        Scope::Env(..) => format!("environment {scope}"),
    }
}

pub fn tenant_scope(tenant: &str) -> Scope {
    Scope::Tenant(tenant.to_owned())
}

pub fn app_scope(tenant: &str, app: &str) -> Scope {
    Scope::App(tenant.to_owned(), app.to_owned())
}

pub fn env_scope(tenant: &str, app: &str, env: &str) -> Scope {
    Scope::Env(tenant.to_owned(), app.to_owned(), env.to_owned())
}

/// Resolves when `caller` may no longer read config `key` (its token was revoked or expired,
/// its user disabled, or the binding that allowed it removed), with the error a watch then
/// ends with: 401 for a dead token, 404 for a config now out of scope. Long-lived requests
/// (watches) race their work against it; it re-checks after every identity reload.
pub fn access_lost(
    app: &AppState,
    caller: &Caller,
    key: String,
) -> impl std::future::Future<Output = ApiError> + Send + 'static {
    let mut generation = app.identity().subscribe();
    let link = app.0.metadata.clone();
    let token = caller.token;
    let expires_at_ms = caller.subject.expires_at_ms;
    async move {
        let expiry = async {
            match expires_at_ms {
                Some(at) => {
                    let left = (at - now_ms() as i64).max(0) as u64;
                    tokio::time::sleep(std::time::Duration::from_millis(left)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expiry);
        loop {
            tokio::select! {
                () = &mut expiry => return unauthenticated_now(),
                changed = generation.changed() => {
                    if changed.is_err() {
                        // The node is going away; the watch ends with it.
                        std::future::pending::<()>().await;
                    }
                }
            }
            let identity = link.identity().load();
            match identity.authenticate_digest(&token, now_ms() as i64) {
                None => return unauthenticated_now(),
                Some(subject) if !subject.may_read_path(&key) => {
                    return conflux_domain::DomainError::NotFound {
                        entity: conflux_domain::Entity::Config,
                        key: key.clone(),
                    }
                    .into();
                }
                Some(_) => {}
            }
        }
    }
}

pub fn unauthenticated_now() -> ApiError {
    ApiError::Unauthenticated {
        message: "the token was revoked or expired".into(),
    }
}
