//! Identity endpoints (contract section 6): login, logout, whoami, users, service tokens and
//! role bindings. They are the only API calls that write the metadata DB; each writes its
//! audit record and then reloads this node's identity, so the change holds here at once
//! (other nodes follow within the link's poll interval).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use conflux_api_types::{
    BindingSpec, CreateRoleBinding, CreateToken, CreateUser, GrantView, LoginRequest,
    LoginResponse, RoleBindingList, RoleBindingView, TokenCreated, TokenList, TokenView,
    UpdateUser, UserList, UserView, WhoAmI, rfc3339,
};
use conflux_domain::access::may_grant;
use conflux_domain::{Principal, Role, Scope, validate_name};
use conflux_metadata::{
    BindingRecord, MetadataStore, NewBinding, NewSession, NewToken, TokenRecord, UserPatch,
    UserRecord,
};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::access::{Caller, Origin};
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, JsonBody};
use crate::audit::event;
use crate::auth::{password, token};
use crate::clock::now_ms;

type ApiResult = Result<Response, ApiError>;

/// Lifetime of a login session (contract: 12 h).
pub const SESSION_LIFETIME_MS: i64 = 12 * 3600 * 1000;
/// Failed logins for one username within [`LOGIN_WINDOW_MS`] before 429.
pub const MAX_LOGIN_FAILURES: u32 = 5;
pub const LOGIN_WINDOW_MS: i64 = 60_000;
const MAX_NAME_LEN: usize = 128;

fn now() -> i64 {
    now_ms() as i64
}

fn time(ms: i64) -> String {
    rfc3339(ms.max(0) as u64)
}

fn store(app: &AppState) -> Result<std::sync::Arc<MetadataStore>, ApiError> {
    Ok(app.metadata().store()?)
}

/// Runs a DB call, noting whether the DB answered (for readiness and logs).
async fn db<T>(
    app: &AppState,
    f: impl std::future::Future<Output = Result<T, conflux_metadata::MetadataError>>,
) -> Result<T, ApiError> {
    let result = f.await;
    app.metadata().observe(&result);
    Ok(result?)
}

/// After an identity write: this node's identity reflects it before the answer goes out.
async fn refresh(app: &AppState) {
    if let Err(e) = app.metadata().refresh().await {
        tracing::warn!(error = %e, "reloading identity after a change failed; the poll will retry");
    }
}

fn require_cluster_admin(caller: &Caller, action: &str) -> Result<(), ApiError> {
    caller.require(Role::ClusterAdmin, &Scope::All, action)
}

/// A successful identity change of `caller`, audited.
fn audit_ok(
    app: &AppState,
    caller: &Caller,
    action: &str,
    resource: &str,
    details: serde_json::Value,
) {
    app.auditor().record(event(
        &caller.principal(),
        &caller.origin,
        action,
        resource,
        None,
        "success",
        None,
        details,
    ));
}

/// Ids of tokens and role bindings are short lower-case alphanumerics; `what` names the kind
/// in the error.
fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    if conflux_domain::access::is_token_id(id) {
        Ok(())
    } else {
        Err(ApiError::invalid_request(
            "invalid_argument",
            "id",
            format!("{what} ids are lower-case letters and digits"),
        ))
    }
}

/// 404 for an identity record (`what`: user, token, role binding) that does not exist, or
/// that the caller may not see.
fn missing(what: &str, id: &str) -> ApiError {
    ApiError::Metadata(conflux_metadata::MetadataError::NotFound(format!(
        "{what} {id} does not exist"
    )))
}

// ---- login, logout, whoami ----------------------------------------------------------------

pub async fn login(
    State(app): State<AppState>,
    Extension(origin): Extension<Origin>,
    body: JsonBody<LoginRequest>,
) -> ApiResult {
    let LoginRequest { username, password } = body.value;
    let audit = |outcome: &str, reason: Option<&str>| {
        // An invalid username is not echoed into the audit log verbatim beyond its length.
        let actor = if validate_name("username", &username).is_ok() {
            format!("user:{username}")
        } else {
            "anonymous".to_owned()
        };
        app.auditor().record(event(
            &actor,
            &origin,
            "auth.login",
            &actor,
            None,
            outcome,
            reason.map(str::to_owned),
            json!({}),
        ));
    };
    if validate_name("username", &username).is_err() || password.len() > password::MAX_PASSWORD_LEN
    {
        audit("failed", Some("invalid credentials"));
        return Err(ApiError::InvalidCredentials);
    }
    let store = store(&app)?;
    let failures = db(
        &app,
        store.login_failures(&username, now(), LOGIN_WINDOW_MS),
    )
    .await?;
    if failures >= MAX_LOGIN_FAILURES {
        audit("denied", Some("too many failed logins"));
        return Err(ApiError::TooManyAttempts {
            retry_after_secs: (LOGIN_WINDOW_MS / 1000) as u32,
        });
    }
    let user = db(&app, store.get_user(&username)).await?;
    // Unknown users cost the same hash as known ones.
    let stored = user
        .as_ref()
        .filter(|u| !u.disabled)
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::decoy_hash().to_owned());
    let candidate = password.clone();
    let matches = app
        .heavy_jobs()
        .run(move || Ok(password::verify(&candidate, &stored)))
        .await?;
    let usable = matches && user.as_ref().is_some_and(|u| !u.disabled);
    if !usable {
        db(
            &app,
            store.record_login_failure(&username, now(), LOGIN_WINDOW_MS),
        )
        .await?;
        audit("failed", Some("invalid credentials"));
        return Err(ApiError::InvalidCredentials);
    }
    db(&app, store.clear_login_failures(&username)).await?;
    let issued = token::issue(token::SESSION_PREFIX);
    let expires_at_ms = now() + SESSION_LIFETIME_MS;
    db(
        &app,
        store.create_session(&NewSession {
            id: issued.id.clone(),
            username: username.clone(),
            secret_hash: issued.digest_hex.clone(),
            created_at_ms: now(),
            expires_at_ms,
        }),
    )
    .await?;
    refresh(&app).await;
    audit("success", None);
    Ok(Json(LoginResponse {
        token: issued.token,
        expires_at: time(expires_at_ms),
    })
    .into_response())
}

pub async fn logout(State(app): State<AppState>, caller: Caller) -> ApiResult {
    let Some(session) = caller.subject.session_id.clone() else {
        return Err(ApiError::invalid_request(
            "not_a_session",
            "Authorization",
            "logout ends a user's login session; a service token is revoked with DELETE /api/v1/tokens/{id}",
        ));
    };
    let store = store(&app)?;
    db(&app, store.delete_session(&session)).await?;
    refresh(&app).await;
    audit_ok(&app, &caller, "auth.logout", &caller.principal(), json!({}));
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn whoami(caller: Caller) -> ApiResult {
    Ok(Json(WhoAmI {
        principal: caller.principal(),
        bindings: caller
            .subject
            .bindings
            .iter()
            .map(|(id, g)| GrantView {
                id: id.clone(),
                role: g.role.to_string(),
                scope: g.scope.to_string(),
            })
            .collect(),
    })
    .into_response())
}

// ---- users --------------------------------------------------------------------------------

fn user_view(u: &UserRecord) -> UserView {
    UserView {
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        disabled: u.disabled,
        created_at: time(u.created_at_ms),
        updated_at: time(u.updated_at_ms),
    }
}

fn check_display_name(name: &Option<String>) -> Result<(), ApiError> {
    match name {
        Some(n) if n.chars().count() > MAX_NAME_LEN || n.chars().any(char::is_control) => {
            Err(ApiError::invalid_request(
                "invalid_argument",
                "display_name",
                format!(
                    "display_name is at most {MAX_NAME_LEN} characters, without control characters"
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn check_password(p: &str) -> Result<(), ApiError> {
    password::check_new_password(p)
        .map_err(|why| ApiError::invalid_request("invalid_argument", "password", why))
}

async fn hash_password(app: &AppState, p: String) -> Result<String, ApiError> {
    app.heavy_jobs().run(move || Ok(password::hash(&p))).await
}

pub async fn create_user(
    State(app): State<AppState>,
    caller: Caller,
    body: JsonBody<CreateUser>,
) -> ApiResult {
    require_cluster_admin(&caller, "create users")?;
    let b = body.value;
    validate_name("username", &b.username)?;
    check_password(&b.password)?;
    check_display_name(&b.display_name)?;
    let store = store(&app)?;
    let hash = hash_password(&app, b.password).await?;
    let user = db(
        &app,
        store.create_user(&conflux_metadata::NewUser {
            username: b.username.clone(),
            password_hash: hash,
            display_name: b.display_name,
            created_at_ms: now(),
        }),
    )
    .await?;
    refresh(&app).await;
    audit_ok(
        &app,
        &caller,
        "user.create",
        &format!("user:{}", b.username),
        json!({}),
    );
    Ok((StatusCode::CREATED, Json(user_view(&user))).into_response())
}

pub async fn list_users(State(app): State<AppState>, caller: Caller) -> ApiResult {
    require_cluster_admin(&caller, "list users")?;
    let store = store(&app)?;
    let users = db(&app, store.list_users()).await?;
    Ok(Json(UserList {
        users: users.iter().map(user_view).collect(),
    })
    .into_response())
}

pub async fn get_user(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
) -> ApiResult {
    require_cluster_admin(&caller, "read users")?;
    validate_name("username", &username)?;
    let store = store(&app)?;
    let user = db(&app, store.get_user(&username)).await?;
    let user = user.ok_or_else(|| missing("user", &username))?;
    Ok(Json(user_view(&user)).into_response())
}

pub async fn update_user(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
    body: JsonBody<UpdateUser>,
) -> ApiResult {
    require_cluster_admin(&caller, "change users")?;
    validate_name("username", &username)?;
    let b = body.value;
    if let Some(p) = &b.password {
        check_password(p)?;
    }
    if let Some(d) = &b.display_name {
        check_display_name(d)?;
    }
    let store = store(&app)?;
    let password_hash = match b.password {
        Some(p) => Some(hash_password(&app, p).await?),
        None => None,
    };
    let changed_password = password_hash.is_some();
    let patch = UserPatch {
        password_hash,
        disabled: b.disabled,
        display_name: b.display_name,
    };
    let user = db(&app, store.update_user(&username, &patch, now())).await?;
    refresh(&app).await;
    audit_ok(
        &app,
        &caller,
        "user.update",
        &format!("user:{username}"),
        json!({"password_changed": changed_password, "disabled": b.disabled}),
    );
    Ok(Json(user_view(&user)).into_response())
}

pub async fn delete_user(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
) -> ApiResult {
    require_cluster_admin(&caller, "delete users")?;
    validate_name("username", &username)?;
    let store = store(&app)?;
    if !db(&app, store.delete_user(&username)).await? {
        return Err(missing("user", &username));
    }
    refresh(&app).await;
    audit_ok(
        &app,
        &caller,
        "user.delete",
        &format!("user:{username}"),
        json!({}),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- service tokens -------------------------------------------------------------------------

fn token_view(t: &TokenRecord) -> TokenView {
    TokenView {
        id: t.id.clone(),
        name: t.name.clone(),
        created_at: time(t.created_at_ms),
        expires_at: t.expires_at_ms.map(time),
        created_by: t.created_by.clone(),
    }
}

fn binding_view(b: &BindingRecord) -> RoleBindingView {
    RoleBindingView {
        id: b.id.clone(),
        principal: b.principal.clone(),
        role: b.role.clone(),
        scope: b.scope.clone(),
        created_at: time(b.created_at_ms),
        created_by: b.created_by.clone(),
    }
}

fn parse_role(field: &str, s: &str) -> Result<Role, ApiError> {
    s.parse::<Role>().map_err(|_| {
        ApiError::invalid_request(
            "invalid_argument",
            field,
            format!(
                "{s:?} is not a role: use reader, viewer, editor, publisher, tenant_admin or cluster_admin"
            ),
        )
    })
}

/// Checks a requested grant: a valid role and scope that `caller` may hand out. `field` is
/// where the grant sits in the request (`bindings[0]`), empty for a top-level one.
fn grantable(caller: &Caller, field: &str, spec: &BindingSpec) -> Result<(Role, Scope), ApiError> {
    let named = |name: &str| match field {
        "" => name.to_owned(),
        _ => format!("{field}.{name}"),
    };
    let role = parse_role(&named("role"), &spec.role)?;
    let scope = Scope::parse(&named("scope"), &spec.scope)?;
    if !may_grant(&caller.subject.grants, role, &scope) {
        return Err(ApiError::Forbidden {
            message: format!(
                "{} may not grant {role} on {}",
                caller.subject.principal,
                super::access::describe(&scope)
            ),
        });
    }
    Ok((role, scope))
}

/// Whether `caller` manages tokens at all: cluster admins, and tenant admins for tokens
/// bound inside their tenants.
fn is_some_admin(caller: &Caller) -> bool {
    caller
        .subject
        .grants
        .iter()
        .any(|g| g.role >= Role::TenantAdmin)
}

fn parse_expiry(s: &Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(s) = s else { return Ok(None) };
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| {
        ApiError::invalid_request(
            "invalid_argument",
            "expires_at",
            format!("{s:?} is not an RFC 3339 time such as 2027-01-31T00:00:00Z"),
        )
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    if ms <= now() {
        return Err(ApiError::invalid_request(
            "invalid_argument",
            "expires_at",
            "expires_at is in the past",
        ));
    }
    Ok(Some(ms))
}

pub async fn create_token(
    State(app): State<AppState>,
    caller: Caller,
    body: JsonBody<CreateToken>,
) -> ApiResult {
    let b = body.value;
    if b.name.is_empty()
        || b.name.chars().count() > MAX_NAME_LEN
        || b.name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid_request(
            "invalid_argument",
            "name",
            format!("name is 1-{MAX_NAME_LEN} characters without control characters"),
        ));
    }
    let expires_at_ms = parse_expiry(&b.expires_at)?;
    if !is_some_admin(&caller) {
        return Err(ApiError::Forbidden {
            message: format!("{} may not create service tokens", caller.subject.principal),
        });
    }
    let cluster_admin = caller.allows(Role::ClusterAdmin, &Scope::All);
    if !cluster_admin && b.bindings.is_empty() {
        return Err(ApiError::invalid_request(
            "invalid_argument",
            "bindings",
            "a tenant admin creates tokens with at least one binding inside its scope",
        ));
    }
    let mut grants = Vec::new();
    for (i, spec) in b.bindings.iter().enumerate() {
        grants.push(grantable(&caller, &format!("bindings[{i}]"), spec)?);
    }
    let store = store(&app)?;
    let issued = token::issue(token::SERVICE_PREFIX);
    let created_by = caller.principal();
    let principal = Principal::Token(issued.id.clone()).to_string();
    let bindings: Vec<NewBinding> = grants
        .iter()
        .map(|(role, scope)| NewBinding {
            id: hex::encode(token::random_bytes::<8>()),
            principal: principal.clone(),
            role: role.to_string(),
            scope: scope.to_string(),
            created_at_ms: now(),
            created_by: created_by.clone(),
        })
        .collect();
    let record = db(
        &app,
        store.create_token(
            &NewToken {
                id: issued.id.clone(),
                name: b.name.clone(),
                secret_hash: issued.digest_hex.clone(),
                created_at_ms: now(),
                expires_at_ms,
                created_by: created_by.clone(),
            },
            &bindings,
        ),
    )
    .await?;
    refresh(&app).await;
    audit_ok(
        &app,
        &caller,
        "token.create",
        &principal,
        json!({"name": b.name, "bindings": b.bindings.iter().map(|s| format!("{}@{}", s.role, s.scope)).collect::<Vec<_>>()}),
    );
    let created = TokenCreated {
        id: record.id.clone(),
        name: record.name.clone(),
        token: issued.token,
        expires_at: record.expires_at_ms.map(time),
        bindings: bindings
            .iter()
            .map(|n| binding_view(&BindingRecord::from(n)))
            .collect(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Cluster admins see every token; other admins the tokens they created.
fn sees_token(caller: &Caller, t: &TokenRecord) -> bool {
    caller.allows(Role::ClusterAdmin, &Scope::All) || t.created_by == caller.principal()
}

pub async fn list_tokens(State(app): State<AppState>, caller: Caller) -> ApiResult {
    if !is_some_admin(&caller) {
        return Err(ApiError::Forbidden {
            message: format!("{} may not list service tokens", caller.subject.principal),
        });
    }
    let store = store(&app)?;
    let tokens = db(&app, store.list_tokens()).await?;
    Ok(Json(TokenList {
        tokens: tokens
            .iter()
            .filter(|t| sees_token(&caller, t))
            .map(token_view)
            .collect(),
    })
    .into_response())
}

async fn visible_token(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(std::sync::Arc<MetadataStore>, TokenRecord), ApiError> {
    check_id("token", id)?;
    let store = store(app)?;
    let token = db(app, store.get_token(id)).await?;
    // A token the caller may not see answers like one that does not exist.
    let token = token
        .filter(|t| sees_token(caller, t))
        .ok_or_else(|| missing("token", id))?;
    Ok((store, token))
}

pub async fn get_token(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let (_, token) = visible_token(&app, &caller, &id).await?;
    Ok(Json(token_view(&token)).into_response())
}

pub async fn delete_token(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let (store, _) = visible_token(&app, &caller, &id).await?;
    if !db(&app, store.delete_token(&id)).await? {
        return Err(missing("token", &id));
    }
    refresh(&app).await;
    audit_ok(
        &app,
        &caller,
        "token.delete",
        &format!("token:{id}"),
        json!({}),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- role bindings --------------------------------------------------------------------------

pub async fn create_binding(
    State(app): State<AppState>,
    caller: Caller,
    body: JsonBody<CreateRoleBinding>,
) -> ApiResult {
    let b = body.value;
    let principal = Principal::parse("principal", &b.principal)?;
    let (role, scope) = grantable(
        &caller,
        "",
        &BindingSpec {
            role: b.role.clone(),
            scope: b.scope.clone(),
        },
    )
    .map_err(|e| match e {
        ApiError::Domain(conflux_domain::DomainError::InvalidName { message, .. }) => {
            ApiError::invalid_request("invalid_argument", "scope", message)
        }
        other => other,
    })?;
    let store = store(&app)?;
    let exists = match &principal {
        Principal::User(u) => db(&app, store.get_user(u)).await?.is_some(),
        Principal::Token(t) => db(&app, store.get_token(t)).await?.is_some(),
    };
    if !exists {
        return Err(ApiError::invalid_request(
            "invalid_argument",
            "principal",
            format!("{principal} does not exist"),
        ));
    }
    let record = db(
        &app,
        store.create_binding(&NewBinding {
            id: hex::encode(token::random_bytes::<8>()),
            principal: principal.to_string(),
            role: role.to_string(),
            scope: scope.to_string(),
            created_at_ms: now(),
            created_by: caller.principal(),
        }),
    )
    .await?;
    refresh(&app).await;
    app.auditor().record(event(
        &caller.principal(),
        &caller.origin,
        "binding.create",
        &format!("binding:{}", record.id),
        scope.tenant(),
        "success",
        None,
        json!({"principal": record.principal, "role": record.role, "scope": record.scope}),
    ));
    Ok((StatusCode::CREATED, Json(binding_view(&record))).into_response())
}

/// Whether `caller` may see (and so list) binding `b`: its own, or one it could grant.
fn sees_binding(caller: &Caller, b: &BindingRecord) -> bool {
    if b.principal == caller.principal() {
        return true;
    }
    match (b.role.parse::<Role>(), Scope::parse("scope", &b.scope)) {
        (Ok(role), Ok(scope)) => may_grant(&caller.subject.grants, role, &scope),
        _ => caller.allows(Role::ClusterAdmin, &Scope::All),
    }
}

#[derive(Debug, Deserialize)]
pub struct BindingFilter {
    principal: Option<String>,
    scope: Option<String>,
}

pub async fn list_bindings(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<BindingFilter>,
) -> ApiResult {
    if let Some(p) = &q.principal {
        Principal::parse("principal", p)?;
    }
    if let Some(s) = &q.scope {
        Scope::parse("scope", s)?;
    }
    let store = store(&app)?;
    let bindings = db(
        &app,
        store.list_bindings(q.principal.as_deref(), q.scope.as_deref()),
    )
    .await?;
    Ok(Json(RoleBindingList {
        role_bindings: bindings
            .iter()
            .filter(|b| sees_binding(&caller, b))
            .map(binding_view)
            .collect(),
    })
    .into_response())
}

/// Binding `id` if the caller may see it; 404 (as for a missing one) otherwise.
async fn visible_binding(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(std::sync::Arc<MetadataStore>, BindingRecord), ApiError> {
    check_id("role binding", id)?;
    let store = store(app)?;
    let binding = db(app, store.get_binding(id)).await?;
    let binding = binding
        .filter(|b| sees_binding(caller, b))
        .ok_or_else(|| missing("role binding", id))?;
    Ok((store, binding))
}

pub async fn get_binding(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let (_, binding) = visible_binding(&app, &caller, &id).await?;
    Ok(Json(binding_view(&binding)).into_response())
}

pub async fn delete_binding(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let (store, binding) = visible_binding(&app, &caller, &id).await?;
    grantable(
        &caller,
        "binding",
        &BindingSpec {
            role: binding.role.clone(),
            scope: binding.scope.clone(),
        },
    )?;
    if !db(&app, store.delete_binding(&id)).await? {
        return Err(missing("role binding", &id));
    }
    refresh(&app).await;
    let tenant = Scope::parse("scope", &binding.scope)
        .ok()
        .and_then(|s| s.tenant().map(str::to_owned));
    app.auditor().record(event(
        &caller.principal(),
        &caller.origin,
        "binding.delete",
        &format!("binding:{id}"),
        tenant.as_deref(),
        "success",
        None,
        json!({"principal": binding.principal, "role": binding.role, "scope": binding.scope}),
    ));
    Ok(StatusCode::NO_CONTENT.into_response())
}
