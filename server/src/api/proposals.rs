//! Proposals (contract section 7): list and read them, approve, reject and cancel.
//!
//! Every decision is a Raft command decided in apply (`conflux_domain::proposal`); this layer
//! only says who is deciding. A bearer token's principal needs publisher on the config's
//! environment to approve or reject, and viewer to see or cancel (apply then lets only the
//! proposer, or a tenant_admin, cancel). Without a token, approve and reject take an external
//! approver's `X-Conflux-Signature-256` over the raw body, made with the secret of a webhook
//! of the config's tenant (or a global one); the approver is then `webhook:<id>`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use conflux_api_types::{ProposalDecision, ProposalList, ProposalView, headers};
use conflux_domain::{
    Command, ConfigId, Entity, ProposalId, ProposalStatus, Response as Outcome, Role, Scope,
};
use serde::Deserialize;

use super::access::{Caller, Origin, authenticate_headers, env_scope};
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, WriteOptions, parse_json};
use super::mgt::{ApiResult, ok, unexpected};
use super::{AppState, Author};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    config_id: Option<ConfigId>,
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn proposal_not_found(id: ProposalId) -> ApiError {
    conflux_domain::DomainError::NotFound {
        entity: Entity::Proposal,
        key: id.to_string(),
    }
    .into()
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::InvalidRequest {
        code: "invalid_argument",
        message: format!("{field}: {message}"),
        field: Some(field.to_owned()),
    }
}

/// `GET /api/v1/mgt/proposals?config_id=&status=&limit=&cursor=`: the proposals the caller
/// may see (viewer on their environment), newest first.
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(ProposalStatus::parse(s).ok_or_else(|| {
            invalid(
                "status",
                format!("{s:?} is not one of pending, rejected, canceled, executed, failed"),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let before = match q.cursor.as_deref() {
        None => ProposalId::MAX,
        Some(c) => c
            .parse::<ProposalId>()
            .map_err(|_| invalid("cursor", "is not a cursor this API returned".into()))?,
    };
    let (proposals, more) = app.plane().read(|s| {
        let mut visible: Vec<ProposalView> = Vec::new();
        let mut candidates: Vec<_> = match q.config_id {
            Some(id) => s.proposals_of(id).collect(),
            None => s.proposals().collect(),
        };
        candidates.sort_by_key(|p| std::cmp::Reverse(p.id));
        let mut more = false;
        for p in candidates {
            if p.id >= before || status.is_some_and(|st| st != p.status) {
                continue;
            }
            if !caller.allows(
                Role::Viewer,
                &env_scope(&p.path.tenant, &p.path.app, &p.path.env),
            ) {
                continue;
            }
            if visible.len() == limit {
                more = true;
                break;
            }
            visible.push(ProposalView::from(p));
        }
        (visible, more)
    });
    let next_cursor = more.then(|| proposals.last().map(|p| p.id.to_string()));
    ok(ProposalList {
        proposals,
        next_cursor: next_cursor.flatten(),
    })
}

/// The environment scope of a proposal, or 404 (also when the caller may not see it).
fn scope_of(app: &AppState, caller: &Caller, id: ProposalId) -> Result<Scope, ApiError> {
    let scope = app
        .plane()
        .read(|s| {
            s.proposal(id)
                .map(|p| env_scope(&p.path.tenant, &p.path.app, &p.path.env))
        })
        .ok_or_else(|| proposal_not_found(id))?;
    if caller.allows(Role::Viewer, &scope) {
        Ok(scope)
    } else {
        Err(proposal_not_found(id))
    }
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ProposalId>,
) -> ApiResult {
    scope_of(&app, &caller, id)?;
    let view = app
        .plane()
        .read(|s| s.proposal(id).map(ProposalView::from))
        .ok_or_else(|| proposal_not_found(id))?;
    ok(view)
}

fn decision_body(raw: &Bytes) -> Result<ProposalDecision, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(ProposalDecision::default());
    }
    parse_json(raw)
}

fn decided(applied: super::Applied) -> ApiResult {
    match applied.response {
        Outcome::Proposal { proposal, .. } => {
            let mut r =
                (StatusCode::OK, Json(ProposalView::from(proposal.as_ref()))).into_response();
            r.headers_mut()
                .insert(headers::REVISION, applied.revision.into());
            Ok(r)
        }
        other => Err(unexpected("proposal", &other)),
    }
}

/// Who decides an approve or reject: the bearer token's principal, or an external approver
/// proven by the signature header.
async fn decider(
    app: &AppState,
    headers: &HeaderMap,
    origin: Origin,
    id: ProposalId,
    raw: &Bytes,
) -> Result<Author, ApiError> {
    if headers.contains_key(axum::http::header::AUTHORIZATION)
        || !headers.contains_key(headers::SIGNATURE)
    {
        let (subject, token) = authenticate_headers(app, headers)?;
        let caller = Caller {
            subject,
            token,
            origin,
        };
        let scope = scope_of(app, &caller, id)?;
        caller.require(Role::Publisher, &scope, "decide on proposals")?;
        return Ok(Author::of(&caller));
    }
    let signature = headers
        .get(headers::SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // The tenant whose webhooks may approve; an unknown proposal checks global webhooks only
    // (apply then answers 404), so its existence is not revealed to an unsigned caller.
    let tenant = app
        .plane()
        .read(|s| s.proposal(id).map(|p| p.path.tenant.clone()))
        .unwrap_or_default();
    let principal = super::webhooks::verify_external_approver(app, &tenant, raw, signature).await?;
    Ok(Author { principal, origin })
}

async fn decide(
    app: AppState,
    headers: HeaderMap,
    origin: Origin,
    id: ProposalId,
    opts: WriteOptions,
    raw: Bytes,
    approve: bool,
) -> ApiResult {
    let author = decider(&app, &headers, origin, id, &raw).await?;
    let body = decision_body(&raw)?;
    let cmd = if approve {
        Command::ApproveProposal {
            id,
            comment: body.comment,
        }
    } else {
        Command::RejectProposal {
            id,
            comment: body.comment,
        }
    };
    decided(app.propose_as(&author, &opts, &raw, cmd).await?)
}

/// `POST /api/v1/mgt/proposals/{id}/approve`: outside the authentication layer, because an
/// external approver signs instead of sending a token.
pub async fn approve(
    State(app): State<AppState>,
    headers: HeaderMap,
    origin: Option<axum::Extension<Origin>>,
    ApiPath(id): ApiPath<ProposalId>,
    opts: WriteOptions,
    raw: Bytes,
) -> ApiResult {
    let origin = origin.map(|o| o.0).unwrap_or_default();
    decide(app, headers, origin, id, opts, raw, true).await
}

/// `POST /api/v1/mgt/proposals/{id}/reject`: like approve.
pub async fn reject(
    State(app): State<AppState>,
    headers: HeaderMap,
    origin: Option<axum::Extension<Origin>>,
    ApiPath(id): ApiPath<ProposalId>,
    opts: WriteOptions,
    raw: Bytes,
) -> ApiResult {
    let origin = origin.map(|o| o.0).unwrap_or_default();
    decide(app, headers, origin, id, opts, raw, false).await
}

/// `POST /api/v1/mgt/proposals/{id}/cancel`: the proposer, or a tenant_admin of the config.
pub async fn cancel(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<ProposalId>,
    opts: WriteOptions,
    raw: Bytes,
) -> ApiResult {
    let scope = scope_of(&app, &caller, id)?;
    let body = decision_body(&raw)?;
    let cmd = Command::CancelProposal {
        id,
        comment: body.comment,
        by_admin: caller.allows(Role::TenantAdmin, &scope),
    };
    decided(app.propose(&caller, &opts, &raw, cmd).await?)
}
