//! Webhook endpoints (contract section 7): registration, listing, deletion and the
//! deliveries of a webhook; and the check of an external approver's signed callback.
//!
//! Who may do what: a webhook of a tenant is managed (created, seen, deleted, its deliveries
//! read) by a tenant_admin of that tenant; a webhook of every tenant (no `tenant`) by a
//! cluster_admin. A webhook the caller may not manage answers 404, exactly as one that does
//! not exist. Webhooks live in the metadata DB (like users and tokens, not in the Raft
//! state): the DB down is 503 `metadata_unavailable`. Registrations and deletions are
//! audited as node-local events. The secret is sealed with the node's KMS before it is
//! stored (see [`crate::webhooks`]) and never returned.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use conflux_api_types::{
    CreateWebhook, DeliveryAttemptView, DeliveryList, DeliveryView, WEBHOOK_EVENTS, WebhookList,
    WebhookView, rfc3339,
};
use conflux_domain::{Role, Scope, validate_name};
use conflux_metadata::{DeliveryRecord, DeliveryStatus, MetadataError, NewWebhook, WebhookRecord};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::access::Caller;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, JsonBody};
use crate::audit::event;
use crate::clock::now_ms;
use crate::webhooks::{open_secret, parse_signature, seal_secret, verify};

type ApiResult = Result<Response, ApiError>;

use conflux_api_types::{
    WEBHOOK_MAX_NAME_CHARS as MAX_NAME_LEN, WEBHOOK_MAX_SECRET_BYTES as MAX_SECRET_LEN,
    WEBHOOK_MAX_URL_BYTES as MAX_URL_LEN, WEBHOOK_MIN_SECRET_BYTES as MIN_SECRET_LEN,
};
const DEFAULT_DELIVERY_LIMIT: u32 = 100;

fn time(ms: i64) -> String {
    rfc3339(ms.max(0) as u64)
}

async fn db<T>(
    app: &AppState,
    f: impl std::future::Future<Output = Result<T, MetadataError>>,
) -> Result<T, ApiError> {
    let result = f.await;
    app.metadata().observe(&result);
    Ok(result?)
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_request("invalid_argument", field, message)
}

fn view(w: &WebhookRecord) -> WebhookView {
    WebhookView {
        id: w.id.clone(),
        name: w.name.clone(),
        url: w.url.clone(),
        events: w.events.clone(),
        tenant: w.tenant.clone(),
        created_at: time(w.created_at_ms),
        created_by: w.created_by.clone(),
    }
}

fn delivery_view(d: &DeliveryRecord) -> DeliveryView {
    DeliveryView {
        id: d.id.clone(),
        webhook_id: d.webhook_id.clone(),
        event: d.event.clone(),
        status: d.status.as_str().to_owned(),
        created_at: time(d.created_at_ms),
        next_attempt_at: match d.status {
            DeliveryStatus::Pending => d.next_attempt_ms.map(time),
            DeliveryStatus::Delivered | DeliveryStatus::Failed => None,
        },
        delivered_at: d.delivered_at_ms.map(time),
        attempts: d
            .attempts
            .iter()
            .map(|a| DeliveryAttemptView {
                time: time(a.time_ms),
                status_code: a.status_code.and_then(|c| u16::try_from(c).ok()),
                error: a.error.clone(),
                duration_ms: a.duration_ms.max(0) as u64,
            })
            .collect(),
    }
}

/// The role and scope managing webhooks of `tenant` (`None`: every tenant) needs.
fn managing(tenant: Option<&str>) -> (Role, Scope) {
    match tenant {
        Some(t) => (Role::TenantAdmin, Scope::Tenant(t.to_owned())),
        None => (Role::ClusterAdmin, Scope::All),
    }
}

fn may_manage(caller: &Caller, w: &WebhookRecord) -> bool {
    let (role, scope) = managing(w.tenant.as_deref());
    caller.allows(role, &scope)
}

/// Webhook ids are lower-case hex digits.
fn check_id(id: &str) -> Result<(), ApiError> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(invalid("id", "webhook ids are lower-case hex digits"))
    }
}

fn missing(id: &str) -> ApiError {
    ApiError::Metadata(MetadataError::NotFound(format!(
        "webhook {id} does not exist"
    )))
}

/// The webhook `id`, if it exists and the caller may manage it; 404 otherwise.
async fn visible(app: &AppState, caller: &Caller, id: &str) -> Result<WebhookRecord, ApiError> {
    check_id(id)?;
    let store = app.metadata().store()?;
    match db(app, store.get_webhook(id)).await? {
        Some(w) if may_manage(caller, &w) => Ok(w),
        _ => Err(missing(id)),
    }
}

/// Checks a registration; returns the events without duplicates, in the order given.
pub fn validate(b: &CreateWebhook) -> Result<Vec<String>, ApiError> {
    if b.name.trim().is_empty()
        || b.name.chars().count() > MAX_NAME_LEN
        || b.name.chars().any(char::is_control)
    {
        return Err(invalid(
            "name",
            format!("name is 1-{MAX_NAME_LEN} characters without control characters"),
        ));
    }
    check_url(&b.url)?;
    if b.events.is_empty() {
        return Err(invalid(
            "events",
            format!(
                "events names at least one of: {}",
                WEBHOOK_EVENTS.join(", ")
            ),
        ));
    }
    let mut events: Vec<String> = Vec::new();
    for (i, e) in b.events.iter().enumerate() {
        if !WEBHOOK_EVENTS.contains(&e.as_str()) {
            return Err(invalid(
                &format!("events[{i}]"),
                format!("{e:?} is not an event; use {}", WEBHOOK_EVENTS.join(", ")),
            ));
        }
        if !events.contains(e) {
            events.push(e.clone());
        }
    }
    let len = b.secret.len();
    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
        return Err(invalid(
            "secret",
            format!("secret is {MIN_SECRET_LEN}-{MAX_SECRET_LEN} bytes (got {len})"),
        ));
    }
    if let Some(t) = &b.tenant {
        validate_name("tenant", t)?;
    }
    Ok(events)
}

/// An `http://` or `https://` URL with a host, no credentials and no fragment.
fn check_url(url: &str) -> Result<(), ApiError> {
    if url.len() > MAX_URL_LEN {
        return Err(invalid(
            "url",
            format!("url is at most {MAX_URL_LEN} bytes"),
        ));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| invalid("url", format!("url is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("url", "url must be http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url", "url must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "url",
            "url must not carry credentials (deliveries are authenticated by their signature)",
        ));
    }
    if parsed.fragment().is_some() {
        return Err(invalid("url", "url must not have a #fragment"));
    }
    crate::webhooks::check_target(&parsed).map_err(|why| invalid("url", format!("url: {why}")))
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    body: JsonBody<CreateWebhook>,
) -> ApiResult {
    let b = body.value;
    let events = validate(&b)?;
    let (role, scope) = managing(b.tenant.as_deref());
    caller.require(role, &scope, "register webhooks")?;
    let store = app.metadata().store()?;
    let id = hex::encode(crate::auth::token::random_bytes::<8>());
    let secret_sealed = seal_secret(app.kms(), &id, b.secret.as_bytes()).await?;
    let created = db(
        &app,
        store.create_webhook(&NewWebhook {
            id: id.clone(),
            name: b.name.clone(),
            url: b.url.clone(),
            events: events.clone(),
            tenant: b.tenant.clone(),
            secret_sealed,
            created_at_ms: now_ms() as i64,
            created_by: caller.principal(),
        }),
    )
    .await?;
    app.auditor().record(event(
        &caller.principal(),
        &caller.origin,
        "webhook.create",
        &format!("webhook:{id}"),
        b.tenant.as_deref(),
        "success",
        None,
        json!({"name": b.name, "url": b.url, "events": events}),
    ));
    Ok((StatusCode::CREATED, Json(view(&created))).into_response())
}

pub async fn list(State(app): State<AppState>, caller: Caller) -> ApiResult {
    let store = app.metadata().store()?;
    let all = db(&app, store.list_webhooks()).await?;
    Ok(Json(WebhookList {
        webhooks: all
            .iter()
            .filter(|w| may_manage(&caller, w))
            .map(view)
            .collect(),
    })
    .into_response())
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let w = visible(&app, &caller, &id).await?;
    Ok(Json(view(&w)).into_response())
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let w = visible(&app, &caller, &id).await?;
    let store = app.metadata().store()?;
    if !db(&app, store.delete_webhook(&id)).await? {
        return Err(missing(&id));
    }
    app.auditor().record(event(
        &caller.principal(),
        &caller.origin,
        "webhook.delete",
        &format!("webhook:{id}"),
        w.tenant.as_deref(),
        "success",
        None,
        json!({"name": w.name, "url": w.url}),
    ));
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    limit: Option<u32>,
}

pub async fn deliveries(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(DEFAULT_DELIVERY_LIMIT);
    if limit == 0 || limit > conflux_metadata::DELIVERY_LIST_MAX {
        return Err(ApiError::invalid_request(
            "invalid_query",
            "limit",
            format!("limit is 1-{}", conflux_metadata::DELIVERY_LIST_MAX),
        ));
    }
    visible(&app, &caller, &id).await?;
    let store = app.metadata().store()?;
    let list = db(&app, store.list_deliveries(&id, limit)).await?;
    Ok(Json(DeliveryList {
        deliveries: list.iter().map(delivery_view).collect(),
    })
    .into_response())
}

// ---- external approvers --------------------------------------------------------------------

fn bad_signature(message: impl Into<String>) -> ApiError {
    ApiError::Unauthenticated {
        message: message.into(),
    }
}

/// Which of `candidates` (webhook id, secret) signed `raw_body` with `signature`
/// (`sha256=<hex>`): `webhook:<id>` of the first whose secret verifies, compared in constant
/// time; 401 `unauthenticated` if none does or the signature is malformed.
pub fn match_signature<'a>(
    candidates: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    raw_body: &[u8],
    signature: &str,
) -> Result<String, ApiError> {
    let Some(raw) = parse_signature(signature) else {
        return Err(bad_signature(
            "X-Conflux-Signature-256 must be sha256=<64 hex digits>",
        ));
    };
    for (id, secret) in candidates {
        if verify(secret, raw_body, &raw) {
            return Ok(format!("webhook:{id}"));
        }
    }
    Err(bad_signature(
        "X-Conflux-Signature-256 matches no webhook secret of this tenant",
    ))
}

/// For approve/reject by an external system: the approver (`webhook:<id>`) whose secret
/// signed `raw_body`, among the webhooks of `tenant` and the global ones; 401
/// `unauthenticated` if none did or the signature is malformed, 503 if the metadata DB
/// cannot be reached, or if no secret matched and one of them could not be opened (the KMS
/// is down: that webhook might have been the signer). One webhook whose secret cannot be
/// opened does not stop another's signature from being accepted.
pub async fn verify_external_approver(
    app: &AppState,
    tenant: &str,
    raw_body: &[u8],
    signature: &str,
) -> Result<String, ApiError> {
    if parse_signature(signature).is_none() {
        return match_signature(std::iter::empty(), raw_body, signature);
    }
    let store = app.metadata().store()?;
    let hooks = db(app, store.list_webhooks()).await?;
    let mut unopened = None;
    for w in hooks
        .iter()
        .filter(|w| w.tenant.as_deref().is_none_or(|t| t == tenant))
    {
        match open_secret(app.kms(), &w.id, &w.secret_sealed).await {
            Ok(secret) => {
                if let Ok(approver) =
                    match_signature([(w.id.as_str(), secret.as_slice())], raw_body, signature)
                {
                    return Ok(approver);
                }
            }
            Err(e) => {
                tracing::warn!(webhook = %w.id, error = %e, "cannot open a webhook secret to check an external approver");
                unopened = Some(e);
            }
        }
    }
    match unopened {
        Some(e) => Err(e.into()),
        None => match_signature(std::iter::empty(), raw_body, signature),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::sign;

    fn body(tenant: Option<&str>) -> CreateWebhook {
        CreateWebhook {
            name: "chat".into(),
            url: "https://hooks.example.com/conflux".into(),
            events: vec!["version.created".into(), "version.created".into()],
            secret: "0123456789abcdef".into(),
            tenant: tenant.map(str::to_owned),
        }
    }

    fn field_of(e: ApiError) -> (String, Option<String>) {
        let d = e.detail();
        (d.code, d.field)
    }

    #[test]
    fn registration_is_validated_field_by_field() {
        assert_eq!(validate(&body(Some("acme"))).unwrap(), ["version.created"]);
        type Change = Box<dyn Fn(&mut CreateWebhook)>;
        let cases: Vec<(Change, &str, &str)> = vec![
            (
                Box::new(|b| b.name = String::new()),
                "invalid_argument",
                "name",
            ),
            (
                Box::new(|b| b.name = "a\nb".into()),
                "invalid_argument",
                "name",
            ),
            (
                Box::new(|b| b.url = "ftp://x/".into()),
                "invalid_argument",
                "url",
            ),
            (
                Box::new(|b| b.url = "not a url".into()),
                "invalid_argument",
                "url",
            ),
            (
                Box::new(|b| b.url = "http://u:p@h/".into()),
                "invalid_argument",
                "url",
            ),
            (
                Box::new(|b| b.url = "http://".into()),
                "invalid_argument",
                "url",
            ),
            (
                Box::new(|b| b.url = "http://h/#frag".into()),
                "invalid_argument",
                "url",
            ),
            (Box::new(|b| b.events.clear()), "invalid_argument", "events"),
            (
                Box::new(|b| b.events.push("config.deleted".into())),
                "invalid_argument",
                "events[2]",
            ),
            (
                Box::new(|b| b.secret = "short".into()),
                "invalid_argument",
                "secret",
            ),
            (
                Box::new(|b| b.secret = "x".repeat(257)),
                "invalid_argument",
                "secret",
            ),
            (
                Box::new(|b| b.tenant = Some("Bad_Name".into())),
                "invalid_name",
                "tenant",
            ),
        ];
        for (change, code, field) in cases {
            let mut b = body(Some("acme"));
            change(&mut b);
            let (c, f) = field_of(validate(&b).unwrap_err());
            assert_eq!((c.as_str(), f.as_deref()), (code, Some(field)), "{b:?}");
        }
        let mut b = body(None);
        b.secret = "x".repeat(256);
        assert!(validate(&b).is_ok());
    }

    #[test]
    fn external_approver_signatures() {
        let body = br#"{"comment":"ship it"}"#;
        let (a, b) = (
            b"secret-of-a-0123".as_slice(),
            b"secret-of-b-0123".as_slice(),
        );
        let candidates = || [("aa", a), ("bb", b)];
        // Good: the webhook whose secret signed it.
        assert_eq!(
            match_signature(candidates(), body, &sign(b, body)).unwrap(),
            "webhook:bb"
        );
        // Bad: another key, or another body.
        for sig in [
            sign(b"not a registered secret", body),
            sign(a, br#"{"comment":"ship it!"}"#),
        ] {
            let e = match_signature(candidates(), body, &sig).unwrap_err();
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(e.detail().code, "unauthenticated");
        }
        // Malformed: wrong prefix, not hex, wrong length, empty.
        let good = sign(a, body);
        for sig in [
            good.replacen("sha256=", "sha1=", 1),
            good.replace(&good[10..12], "zz"),
            good[..good.len() - 2].to_owned(),
            String::new(),
        ] {
            let e = match_signature(candidates(), body, &sig).unwrap_err();
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED, "{sig}");
        }
        // No candidate at all (no webhook for the tenant).
        assert!(match_signature(std::iter::empty(), body, &good).is_err());
    }
}
