//! Management plane handlers (`/api/v1/mgt`): tenants, apps, environments, configs,
//! versions, releases, publish, rollback and the resolve simulator.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use conflux_api_types::{
    AppList, AppView, ConfigList, ConfigView, CreateApp, CreateConfig, CreateEnvironment,
    CreateTenant, DEFAULT_CANARY_PRIORITY, Deleted, EnvironmentList, EnvironmentView,
    ProposalAccepted, PublishRequest, PublishResponse, PutReleases, ReleasesView, ResolveResponse,
    RollbackRequest, Strategy, TenantList, TenantView, UpdateApp, UpdateConfig, UpdateEnvironment,
    UpdateTenant, VersionCreated, VersionList, VersionView, headers,
};
use conflux_domain::{
    Command, Config, ConfigId, ConfigPath, ContentHash, DIFF_TIME_LIMIT, DomainError, Entity,
    Patch, PublishStrategy, ReleaseProposal, Response as Outcome, Role, RollbackMode, Scope,
    VersionCheck, VersionId, VersionMeta, resolve, unified_diff, validate_config_name,
    validate_name,
};
use serde::{Deserialize, Serialize};

use super::access::{Caller, app_scope, env_scope, tenant_scope};
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, JsonBody, RawBody, WriteOptions, client_labels};
use super::sealing::{prepare_content, stored_plaintext};
use super::{AppState, Applied};

pub(super) type ApiResult = Result<Response, ApiError>;

/// Versions per page when the client does not say.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

fn respond<T: Serialize>(status: StatusCode, revision: u64, body: T) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut()
        .insert(headers::REVISION, HeaderValue::from(revision));
    r
}

pub(super) fn ok<T: Serialize>(body: T) -> ApiResult {
    Ok(Json(body).into_response())
}

pub(super) fn unexpected(what: &str, got: &Outcome) -> ApiError {
    ApiError::internal(format!("expected a {what} response, got {got:?}"))
}

fn deleted(applied: Applied) -> ApiResult {
    match applied.response {
        Outcome::Deleted { revision } => {
            Ok(respond(StatusCode::OK, revision, Deleted { revision }))
        }
        other => Err(unexpected("deletion", &other)),
    }
}

fn check_names(names: &[(&str, &str)]) -> Result<(), ApiError> {
    for (field, value) in names {
        validate_name(field, value)?;
    }
    Ok(())
}

fn not_found(entity: Entity, key: impl Into<String>) -> ApiError {
    DomainError::NotFound {
        entity,
        key: key.into(),
    }
    .into()
}

#[derive(Debug, Deserialize)]
pub struct CascadeQuery {
    #[serde(default)]
    cascade: bool,
}

// ---- tenants ------------------------------------------------------------------------------

fn tenant_response(status: StatusCode, applied: Applied) -> ApiResult {
    match applied.response {
        Outcome::Tenant(t) => Ok(respond(status, t.revision, TenantView::from(&t))),
        other => Err(unexpected("tenant", &other)),
    }
}

pub async fn create_tenant(
    State(app): State<AppState>,
    caller: Caller,
    opts: WriteOptions,
    body: JsonBody<CreateTenant>,
) -> ApiResult {
    caller.require(Role::ClusterAdmin, &Scope::All, "create tenants")?;
    let b = body.value;
    let cmd = Command::CreateTenant {
        name: b.name,
        display_name: b.display_name,
        quotas: b.quotas.unwrap_or_default(),
    };
    tenant_response(
        StatusCode::CREATED,
        app.propose(&caller, &opts, &body.raw, cmd).await?,
    )
}

pub async fn list_tenants(State(app): State<AppState>, caller: Caller) -> ApiResult {
    ok(TenantList {
        tenants: app.plane().read(|s| {
            s.tenants()
                .filter(|t| caller.sees(&tenant_scope(&t.name)))
                .map(TenantView::from)
                .collect()
        }),
    })
}

pub async fn get_tenant(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult {
    check_names(&[("tenant", &tenant)])?;
    caller.require_sight(&tenant_scope(&tenant), "read")?;
    let view = app
        .plane()
        .read(|s| s.tenant(&tenant).map(TenantView::from));
    let view = view.ok_or_else(|| not_found(Entity::Tenant, &tenant))?;
    Ok(respond(StatusCode::OK, view.revision, view))
}

pub async fn update_tenant(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    opts: WriteOptions,
    body: JsonBody<UpdateTenant>,
) -> ApiResult {
    check_names(&[("tenant", &tenant)])?;
    // Quotas and suspension are the operator's: a tenant admin cannot raise its own limits.
    caller.require(Role::ClusterAdmin, &tenant_scope(&tenant), "change tenants")?;
    let b = body.value;
    let cmd = Command::UpdateTenant {
        name: tenant,
        display_name: b.display_name,
        status: b.status,
        quotas: b.quotas,
    };
    tenant_response(
        StatusCode::OK,
        app.propose(&caller, &opts, &body.raw, cmd).await?,
    )
}

pub async fn delete_tenant(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(q): ApiQuery<CascadeQuery>,
    opts: WriteOptions,
) -> ApiResult {
    check_names(&[("tenant", &tenant)])?;
    caller.require(Role::ClusterAdmin, &tenant_scope(&tenant), "delete tenants")?;
    deleted(
        app.propose(
            &caller,
            &opts,
            &[],
            Command::DeleteTenant {
                name: tenant,
                cascade: q.cascade,
            },
        )
        .await?,
    )
}

// ---- apps ---------------------------------------------------------------------------------

fn app_response(status: StatusCode, applied: Applied) -> ApiResult {
    match applied.response {
        Outcome::App(a) => Ok(respond(status, a.revision, AppView::from(&a))),
        other => Err(unexpected("app", &other)),
    }
}

pub async fn create_app(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    opts: WriteOptions,
    body: JsonBody<CreateApp>,
) -> ApiResult {
    check_names(&[("tenant", &tenant)])?;
    caller.require(Role::TenantAdmin, &tenant_scope(&tenant), "create apps")?;
    let b = body.value;
    let cmd = Command::CreateApp {
        tenant,
        name: b.name,
        description: b.description,
    };
    app_response(
        StatusCode::CREATED,
        app.propose(&caller, &opts, &body.raw, cmd).await?,
    )
}

pub async fn list_apps(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult {
    check_names(&[("tenant", &tenant)])?;
    caller.require_sight(&tenant_scope(&tenant), "list apps")?;
    let apps = app.plane().read(|s| {
        s.tenant(&tenant).map(|_| {
            s.apps(&tenant)
                .filter(|a| caller.sees(&app_scope(&tenant, &a.name)))
                .map(AppView::from)
                .collect::<Vec<_>>()
        })
    });
    ok(AppList {
        apps: apps.ok_or_else(|| not_found(Entity::Tenant, &tenant))?,
    })
}

pub async fn get_app(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
) -> ApiResult {
    check_names(&[("tenant", &tenant), ("app", &name)])?;
    caller.require_sight(&app_scope(&tenant, &name), "read")?;
    let view = app
        .plane()
        .read(|s| s.app(&tenant, &name).map(AppView::from));
    let view = view.ok_or_else(|| not_found(Entity::App, format!("{tenant}/{name}")))?;
    Ok(respond(StatusCode::OK, view.revision, view))
}

pub async fn update_app(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
    opts: WriteOptions,
    body: JsonBody<UpdateApp>,
) -> ApiResult {
    check_names(&[("tenant", &tenant), ("app", &name)])?;
    caller.require(Role::TenantAdmin, &app_scope(&tenant, &name), "change apps")?;
    let cmd = Command::UpdateApp {
        tenant,
        name,
        description: body.value.description,
    };
    app_response(
        StatusCode::OK,
        app.propose(&caller, &opts, &body.raw, cmd).await?,
    )
}

pub async fn delete_app(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, name)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<CascadeQuery>,
    opts: WriteOptions,
) -> ApiResult {
    check_names(&[("tenant", &tenant), ("app", &name)])?;
    caller.require(Role::TenantAdmin, &app_scope(&tenant, &name), "delete apps")?;
    deleted(
        app.propose(
            &caller,
            &opts,
            &[],
            Command::DeleteApp {
                tenant,
                name,
                cascade: q.cascade,
            },
        )
        .await?,
    )
}

// ---- environments -------------------------------------------------------------------------

fn env_response(status: StatusCode, applied: Applied) -> ApiResult {
    match applied.response {
        Outcome::Environment(e) => Ok(respond(status, e.revision, EnvironmentView::from(&e))),
        other => Err(unexpected("environment", &other)),
    }
}

pub async fn create_env(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, app_name)): ApiPath<(String, String)>,
    opts: WriteOptions,
    body: JsonBody<CreateEnvironment>,
) -> ApiResult {
    check_names(&[("tenant", &tenant), ("app", &app_name)])?;
    caller.require(
        Role::TenantAdmin,
        &app_scope(&tenant, &app_name),
        "create environments",
    )?;
    let b = body.value;
    let cmd = Command::CreateEnvironment {
        tenant,
        app: app_name,
        name: b.name,
        description: b.description,
        approval: b.approval,
    };
    env_response(
        StatusCode::CREATED,
        app.propose(&caller, &opts, &body.raw, cmd).await?,
    )
}

pub async fn list_envs(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, app_name)): ApiPath<(String, String)>,
) -> ApiResult {
    check_names(&[("tenant", &tenant), ("app", &app_name)])?;
    caller.require_sight(&app_scope(&tenant, &app_name), "list environments")?;
    let envs = app.plane().read(|s| {
        s.app(&tenant, &app_name).map(|_| {
            s.environments(&tenant, &app_name)
                .filter(|e| caller.sees(&env_scope(&tenant, &app_name, &e.name)))
                .map(EnvironmentView::from)
                .collect::<Vec<_>>()
        })
    });
    ok(EnvironmentList {
        environments: envs.ok_or_else(|| not_found(Entity::App, format!("{tenant}/{app_name}")))?,
    })
}

pub async fn get_env(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, app_name, env)): ApiPath<(String, String, String)>,
) -> ApiResult {
    check_names(&[("tenant", &tenant), ("app", &app_name), ("env", &env)])?;
    caller.require_sight(&env_scope(&tenant, &app_name, &env), "read")?;
    let view = app.plane().read(|s| {
        s.environment(&tenant, &app_name, &env)
            .map(EnvironmentView::from)
    });
    let view =
        view.ok_or_else(|| not_found(Entity::Environment, format!("{tenant}/{app_name}/{env}")))?;
    Ok(respond(StatusCode::OK, view.revision, view))
}

pub async fn update_env(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, app_name, env)): ApiPath<(String, String, String)>,
    opts: WriteOptions,
    body: JsonBody<UpdateEnvironment>,
) -> ApiResult {
    check_names(&[("tenant", &tenant), ("app", &app_name), ("env", &env)])?;
    caller.require(
        Role::TenantAdmin,
        &env_scope(&tenant, &app_name, &env),
        "change environments",
    )?;
    let b = body.value;
    let cmd = Command::UpdateEnvironment {
        tenant,
        app: app_name,
        name: env,
        description: b.description,
        approval: b.approval,
    };
    env_response(
        StatusCode::OK,
        app.propose(&caller, &opts, &body.raw, cmd).await?,
    )
}

pub async fn delete_env(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, app_name, env)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<CascadeQuery>,
    opts: WriteOptions,
) -> ApiResult {
    check_names(&[("tenant", &tenant), ("app", &app_name), ("env", &env)])?;
    caller.require(
        Role::TenantAdmin,
        &env_scope(&tenant, &app_name, &env),
        "delete environments",
    )?;
    let cmd = Command::DeleteEnvironment {
        tenant,
        app: app_name,
        name: env,
        cascade: q.cascade,
    };
    deleted(app.propose(&caller, &opts, &[], cmd).await?)
}

// ---- configs ------------------------------------------------------------------------------

fn config_response(status: StatusCode, applied: Applied) -> ApiResult {
    match applied.response {
        Outcome::Config(c) => Ok(respond(status, c.revision, ConfigView::from(&c))),
        other => Err(unexpected("config", &other)),
    }
}

fn schema_text(schema: &serde_json::Value) -> String {
    schema.to_string()
}

pub async fn create_config(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, app_name, env)): ApiPath<(String, String, String)>,
    opts: WriteOptions,
    body: JsonBody<CreateConfig>,
) -> ApiResult {
    check_names(&[("tenant", &tenant), ("app", &app_name), ("env", &env)])?;
    caller.require(
        Role::Editor,
        &env_scope(&tenant, &app_name, &env),
        "create configs",
    )?;
    let b = body.value;
    let cmd = Command::CreateConfig {
        path: ConfigPath::new(tenant, app_name, env, b.name),
        format: b.format,
        schema: b.schema.as_ref().map(schema_text),
        retention: b.retention,
        description: b.description,
        encrypted: b.encrypted,
    };
    config_response(
        StatusCode::CREATED,
        app.propose(&caller, &opts, &body.raw, cmd).await?,
    )
}

pub async fn list_configs(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, app_name, env)): ApiPath<(String, String, String)>,
) -> ApiResult {
    check_names(&[("tenant", &tenant), ("app", &app_name), ("env", &env)])?;
    caller.require(
        Role::Viewer,
        &env_scope(&tenant, &app_name, &env),
        "list configs",
    )?;
    let configs = app.plane().read(|s| {
        s.environment(&tenant, &app_name, &env).map(|_| {
            s.configs_under(&tenant, Some(&app_name), Some(&env))
                .map(ConfigView::from)
                .collect::<Vec<_>>()
        })
    });
    ok(ConfigList {
        configs: configs
            .ok_or_else(|| not_found(Entity::Environment, format!("{tenant}/{app_name}/{env}")))?,
    })
}

pub async fn get_config_by_path(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((tenant, app_name, env, name)): ApiPath<(String, String, String, String)>,
) -> ApiResult {
    check_names(&[("tenant", &tenant), ("app", &app_name), ("env", &env)])?;
    caller.require(
        Role::Viewer,
        &env_scope(&tenant, &app_name, &env),
        "read configs",
    )?;
    validate_config_name("name", &name)?;
    let path = ConfigPath::new(tenant, app_name, env, name);
    let view = app
        .plane()
        .read(|s| s.config_by_path(&path).map(ConfigView::from));
    let view = view.ok_or_else(|| not_found(Entity::Config, path.to_string()))?;
    Ok(respond(StatusCode::OK, view.revision, view))
}

/// `Ok` if `caller` holds `needed` on the environment of config `id`; 404 if there is no
/// such config, 403 if the caller may not.
/// The environment scope of a config, or 404.
fn config_scope(app: &AppState, id: ConfigId) -> Result<Scope, ApiError> {
    with_config(app, id, |_, c| {
        env_scope(&c.path.tenant, &c.path.app, &c.path.env)
    })
}

fn require_on_config(
    app: &AppState,
    caller: &Caller,
    id: ConfigId,
    needed: Role,
    action: &str,
) -> Result<(), ApiError> {
    caller.require(needed, &config_scope(app, id)?, action)
}

/// Reads something about one config, or 404.
pub(super) fn with_config<R>(
    app: &AppState,
    id: ConfigId,
    f: impl FnOnce(&conflux_domain::State, &Config) -> R,
) -> Result<R, ApiError> {
    app.plane()
        .read(|s| s.config(id).map(|c| f(s, c)))
        .ok_or_else(|| not_found(Entity::Config, id.to_string()))
}

pub async fn get_config(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ConfigId>,
) -> ApiResult {
    require_on_config(&app, &caller, id, Role::Viewer, "read configs")?;
    let view = with_config(&app, id, |_, c| ConfigView::from(c))?;
    Ok(respond(StatusCode::OK, view.revision, view))
}

pub async fn update_config(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ConfigId>,
    opts: WriteOptions,
    body: JsonBody<UpdateConfig>,
) -> ApiResult {
    require_on_config(&app, &caller, id, Role::Editor, "change configs")?;
    let b = body.value;
    let schema = match b.schema {
        None => Patch::Unchanged,
        Some(None) => Patch::Clear,
        Some(Some(v)) => Patch::Set(schema_text(&v)),
    };
    let retention = match b.retention {
        None => Patch::Unchanged,
        Some(None) => Patch::Clear,
        Some(Some(r)) => Patch::Set(r),
    };
    let cmd = Command::UpdateConfig {
        id,
        schema,
        retention,
        description: b.description,
        encrypted: b.encrypted,
    };
    config_response(
        StatusCode::OK,
        app.propose(&caller, &opts, &body.raw, cmd).await?,
    )
}

pub async fn delete_config(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ConfigId>,
    opts: WriteOptions,
) -> ApiResult {
    // A config already gone is left to the apply: it answers 404, or replays this
    // caller's own earlier delete under the same idempotency key.
    if app.plane().read(|s| s.config(id).is_some()) {
        require_on_config(&app, &caller, id, Role::Editor, "delete configs")?;
    }
    deleted(
        app.propose(&caller, &opts, &[], Command::DeleteConfig { id })
            .await?,
    )
}

// ---- versions -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct CreateVersionQuery {
    description: Option<String>,
    #[serde(default)]
    validate_only: bool,
}

pub async fn create_version(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ConfigId>,
    ApiQuery(q): ApiQuery<CreateVersionQuery>,
    opts: WriteOptions,
    body: RawBody,
) -> ApiResult {
    require_on_config(&app, &caller, id, Role::Editor, "create versions")?;
    let format = with_config(&app, id, |_, c| c.format)?;
    if !format.accepts_content_type(&body.content_type) {
        return Err(ApiError::UnsupportedMediaType {
            message: format!(
                "Content-Type {:?} does not fit a {format} config; send one of {} or application/octet-stream",
                body.content_type,
                format.media_types().join(", ")
            ),
        });
    }
    if q.validate_only {
        // Parsing and schema validation of up to 4 MiB: a heavy job, outside the state lock.
        let (check, revision) = with_config(&app, id, |s, c| (VersionCheck::of(s, c), c.revision))?;
        let content = body.bytes.clone();
        let hash = app
            .heavy_jobs()
            .run(move || {
                check.check(&content)?;
                Ok(ContentHash::of(&content))
            })
            .await?;
        let created = VersionCreated {
            version_id: 0,
            hash: hash.to_string(),
            revision,
            validate_only: true,
        };
        return Ok(respond(StatusCode::OK, revision, created));
    }
    let (content, sealed) = prepare_content(&app, id, body.bytes.clone()).await?;
    let cmd = Command::CreateVersion {
        config_id: id,
        content,
        description: q.description,
        sealed,
    };
    match app
        .propose(&caller, &opts, &body.bytes, cmd)
        .await?
        .response
    {
        Outcome::Version { version, config } => {
            let created = VersionCreated {
                version_id: version.version,
                hash: version.hash.to_string(),
                revision: config.revision,
                validate_only: false,
            };
            Ok(respond(StatusCode::CREATED, config.revision, created))
        }
        other => Err(unexpected("version", &other)),
    }
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

pub async fn list_versions(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ConfigId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult {
    require_on_config(&app, &caller, id, Role::Viewer, "list versions")?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid_request(
            "invalid_query",
            "limit",
            format!("limit must be 1-{MAX_PAGE}"),
        ));
    }
    let before: Option<VersionId> = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse().map_err(|_| {
            ApiError::invalid_request(
                "invalid_query",
                "cursor",
                "the cursor is not one this server issued",
            )
        })?),
    };
    // Newest first: the versions a person looks for are usually the recent ones.
    let (versions, more) = with_config(&app, id, |s, _| {
        let mut page: Vec<VersionView> = s
            .versions_of(id)
            .rev()
            .filter(|v| before.is_none_or(|b| v.version < b))
            .take(limit + 1)
            .map(VersionView::from)
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    })?;
    let next_cursor = more
        .then(|| versions.last().map(|v| v.version_id.to_string()))
        .flatten();
    ok(VersionList {
        versions,
        next_cursor,
    })
}

fn version_view(app: &AppState, id: ConfigId, version: VersionId) -> Result<VersionView, ApiError> {
    with_config(app, id, |s, _| {
        s.version(id, version).map(VersionView::from)
    })?
    .ok_or_else(|| not_found(Entity::Version, format!("{id}/{version}")))
}

pub async fn get_version(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((id, version)): ApiPath<(ConfigId, VersionId)>,
) -> ApiResult {
    require_on_config(&app, &caller, id, Role::Viewer, "read versions")?;
    ok(version_view(&app, id, version)?)
}

async fn content_of(app: &AppState, id: ConfigId, version: VersionId) -> Result<Bytes, ApiError> {
    version_view(app, id, version)?;
    let stored = app
        .plane()
        .content(id, version)
        .await
        .map_err(ApiError::internal)?
        // Deleted between the two reads (retention, delete): the version is gone.
        .ok_or_else(|| not_found(Entity::Version, format!("{id}/{version}")))?;
    stored_plaintext(app, id, version, stored).await
}

pub async fn get_version_content(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((id, version)): ApiPath<(ConfigId, VersionId)>,
) -> ApiResult {
    require_on_config(&app, &caller, id, Role::Viewer, "read contents")?;
    let content = content_of(&app, id, version).await?;
    let format = with_config(&app, id, |_, c| c.format)?;
    let view = version_view(&app, id, version)?;
    let mut r = (StatusCode::OK, content).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(headers::CONFIG_VERSION, HeaderValue::from(version));
    if let Ok(v) = HeaderValue::from_str(&view.hash) {
        h.insert(headers::CONFIG_HASH, v);
    }
    Ok(r)
}

pub async fn diff_versions(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((id, a, b)): ApiPath<(ConfigId, VersionId, VersionId)>,
) -> ApiResult {
    require_on_config(&app, &caller, id, Role::Viewer, "diff versions")?;
    // An unknown version is answered at once, without waiting for a heavy-job slot.
    let old = content_of(&app, id, a).await?;
    let new = content_of(&app, id, b).await?;
    let diff = app
        .heavy_jobs()
        .run(move || {
            let labels = (format!("version {a}"), format!("version {b}"));
            Ok(unified_diff(
                &old,
                &new,
                &labels.0,
                &labels.1,
                DIFF_TIME_LIMIT,
            ))
        })
        .await?;
    let mut r = (StatusCode::OK, diff).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(r)
}

// ---- releases -----------------------------------------------------------------------------

fn releases_response(applied: Applied) -> ApiResult {
    match applied.response {
        Outcome::Config(c) => Ok(respond(StatusCode::OK, c.revision, ReleasesView::from(&c))),
        Outcome::Proposed { proposal, version } => {
            Ok(proposed(&proposal, version.as_ref(), applied.revision))
        }
        other => Err(unexpected("config", &other)),
    }
}

/// 202: the environment requires approval, and the release change became a proposal.
fn proposed(proposal: &ReleaseProposal, version: Option<&VersionMeta>, revision: u64) -> Response {
    let accepted = ProposalAccepted {
        proposal_id: proposal.id,
        status: proposal.status.as_str().to_owned(),
        config_id: proposal.config_id,
        version_id: version.map(|v| v.version),
    };
    respond(StatusCode::ACCEPTED, revision, accepted)
}

pub async fn get_releases(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ConfigId>,
) -> ApiResult {
    require_on_config(&app, &caller, id, Role::Viewer, "read releases")?;
    let view = with_config(&app, id, |_, c| ReleasesView::from(c))?;
    Ok(respond(StatusCode::OK, view.revision, view))
}

pub async fn put_releases(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ConfigId>,
    opts: WriteOptions,
    body: JsonBody<PutReleases>,
) -> ApiResult {
    require_on_config(&app, &caller, id, Role::Publisher, "change releases")?;
    let b = body.value;
    let cmd = Command::SetReleases {
        config_id: id,
        rules: b.releases,
        comment: b.comment,
    };
    releases_response(app.propose(&caller, &opts, &body.raw, cmd).await?)
}

pub async fn publish(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ConfigId>,
    opts: WriteOptions,
    body: JsonBody<PublishRequest>,
) -> ApiResult {
    require_on_config(&app, &caller, id, Role::Publisher, "publish")?;
    let b = body.value;
    let strategy = match b.strategy {
        Strategy::Stable => PublishStrategy::Stable,
        Strategy::Canary {
            labels,
            percent,
            priority,
        } => PublishStrategy::Canary {
            labels,
            percent,
            priority: priority.unwrap_or(DEFAULT_CANARY_PRIORITY),
        },
    };
    let (content, sealed) = prepare_content(&app, id, Bytes::from(b.content.into_bytes())).await?;
    let cmd = Command::Publish {
        config_id: id,
        content,
        description: b.description,
        strategy,
        sealed,
    };
    let applied = app.propose(&caller, &opts, &body.raw, cmd).await?;
    match applied.response {
        Outcome::Proposed { proposal, version } => {
            Ok(proposed(&proposal, version.as_ref(), applied.revision))
        }
        Outcome::Version { version, config } => {
            let published = PublishResponse {
                version_id: version.version,
                hash: version.hash.to_string(),
                revision: config.revision,
                releases: config.rules.clone(),
            };
            Ok(respond(StatusCode::CREATED, config.revision, published))
        }
        other => Err(unexpected("version", &other)),
    }
}

pub async fn rollback(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ConfigId>,
    opts: WriteOptions,
    body: JsonBody<RollbackRequest>,
) -> ApiResult {
    let scope = config_scope(&app, id)?;
    caller.require(Role::Publisher, &scope, "roll back")?;
    let b = body.value;
    let cmd = Command::Rollback {
        config_id: id,
        version_id: b.version_id,
        mode: b.mode,
        // Apply decides whether the environment requires approval; a tenant_admin's
        // emergency rollback skips it (break glass).
        break_glass: b.mode == RollbackMode::Emergency && caller.allows(Role::TenantAdmin, &scope),
    };
    releases_response(app.propose(&caller, &opts, &body.raw, cmd).await?)
}

/// `GET /configs/{id}/resolve`: labels from `X-Client-Label-*` headers and/or
/// `?label.<key>=<value>`, client id from `X-Client-Id` or `?client_id=`.
pub async fn resolve_simulator(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ConfigId>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> ApiResult {
    require_on_config(&app, &caller, id, Role::Viewer, "simulate resolution")?;
    let extra = query
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("label.").map(|k| (k, v.as_str())));
    let labels = client_labels(&headers, extra, query.get("client_id").map(String::as_str))?;
    let resolved = with_config(&app, id, |_, c| {
        resolve(c.id, &c.rules, &labels)
            .map(|r| ResolveResponse {
                version_id: r.rule.version_id,
                rule_index: r.index,
                rule: r.rule.clone(),
                revision: c.revision,
            })
            .ok_or_else(|| DomainError::NotPublished {
                path: c.path.to_string(),
            })
    })??;
    Ok(respond(StatusCode::OK, resolved.revision, resolved))
}
