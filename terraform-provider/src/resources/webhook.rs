//! `conflux_webhook`: a webhook (contract section 7) that receives signed events (proposals,
//! release changes, new versions).
//!
//! The API has no update: every argument forces a new webhook (a new id; the old webhook's
//! pending deliveries are dropped with it).
//!
//! The `secret` (the HMAC key of `X-Conflux-Signature-256`) is write-only on the server: it
//! is sent with the create and never shown again. Terraform 1.0 keeps every argument in the
//! state, so the secret is in the state as the configuration gave it (sensitive: hidden in
//! plans and output; protect the state file, as for `conflux_service_token`'s `token`), and a
//! refresh carries it over from the previous state: no read can check it, so a secret changed
//! outside Terraform (only possible by recreating the webhook, which changes its id) is not
//! seen.
//!
//! Drift: a webhook deleted outside Terraform leaves the state and is created again by the
//! next apply; its name, url, events or tenant as the server reports them are compared with
//! the configuration, and a difference plans a replacement.
//!
//! Import ID: the webhook id. The secret cannot be read, so an imported webhook has a null
//! `secret`, and the first plan with a configuration that sets one replaces the webhook,
//! which re-establishes a secret Terraform knows. To keep the imported webhook and its
//! secret instead, add `lifecycle { ignore_changes = [secret] }`.

use conflux_api_types::{CreateWebhook, WEBHOOK_EVENTS, WebhookView};

use super::{Outcome, Resource, gone_if_not_found};
use crate::api::Api;
use crate::protocol::diag::{Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct Webhook;

// The server's limits, checked at plan time.
use conflux_api_types::{
    WEBHOOK_MAX_NAME_CHARS as MAX_NAME_CHARS, WEBHOOK_MAX_SECRET_BYTES as MAX_SECRET_BYTES,
    WEBHOOK_MAX_URL_BYTES as MAX_URL_BYTES, WEBHOOK_MIN_SECRET_BYTES as MIN_SECRET_BYTES,
};

impl Webhook {
    /// The state for `view`; the server never shows the secret, so `secret` comes from the
    /// caller.
    fn state(view: &WebhookView, secret: Value) -> Obj {
        // A set of strings: Terraform orders it lexically; so does the state.
        let mut events = view.events.clone();
        events.sort();
        events.dedup();
        Obj::new()
            .with("id", Value::string(&view.id))
            .with("name", Value::string(&view.name))
            .with("url", Value::string(&view.url))
            .with(
                "events",
                Value::List(events.into_iter().map(Value::String).collect()),
            )
            .with("tenant", Value::opt_string(view.tenant.as_deref()))
            .with("secret", secret)
            .with("created_at", Value::string(&view.created_at))
            .with("created_by", Value::string(&view.created_by))
    }

    fn events(planned: &Obj) -> Outcome<Vec<String>> {
        match planned.get("events") {
            Value::List(items) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        Diagnostic::error("Invalid events", "events must be known strings")
                            .at(planned.attr_path("events"))
                            .into()
                    })
                })
                .collect(),
            _ => Err(
                Diagnostic::error("Invalid events", "events must be a known set")
                    .at(planned.attr_path("events"))
                    .into(),
            ),
        }
    }
}

#[tonic::async_trait]
impl Resource for Webhook {
    fn type_name(&self) -> &'static str {
        "conflux_webhook"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "A webhook: Conflux POSTs the events it subscribes to, signed with \
                 X-Conflux-Signature-256 (HMAC-SHA256 of the body with the secret). Every \
                 argument forces a new webhook. Import with the webhook id (the secret cannot \
                 be read back: an imported webhook is replaced by the first apply that sets \
                 one, unless lifecycle.ignore_changes lists secret).",
            )
            .attr(Attribute::computed("id", Type::String, "The webhook's id."))
            .attr(Attribute::required(
                "name",
                Type::String,
                "What the webhook is for (free text, 1-128 characters). Changing it replaces the webhook.",
            ))
            .attr(Attribute::required(
                "url",
                Type::String,
                "Where deliveries are POSTed: http:// or https://. Changing it replaces the webhook.",
            ))
            .attr(Attribute::required(
                "events",
                Type::Set(Box::new(Type::String)),
                "The events to deliver: proposal.created, proposal.approved, proposal.rejected, \
                 proposal.executed, proposal.failed, release.changed, version.created. Changing \
                 them replaces the webhook.",
            ))
            .attr(
                Attribute::required(
                    "secret",
                    Type::String,
                    "The HMAC-SHA256 key deliveries are signed with, and that external approvers \
                     sign approve/reject calls with. Write-only on the server (never read back); \
                     kept in the state as given, sensitive. 16-256 bytes. Changing it replaces the webhook.",
                )
                .sensitive(),
            )
            .attr(Attribute::optional(
                "tenant",
                Type::String,
                "Deliver only this tenant's events (tenant_admin of the tenant may create it). \
                 Without it: every tenant's (cluster_admin only). Changing it replaces the webhook.",
            ))
            .attr(Attribute::computed(
                "created_at",
                Type::String,
                "When the webhook was created (RFC 3339).",
            ))
            .attr(Attribute::computed(
                "created_by",
                Type::String,
                "The principal that created it (user:<name> or token:<id>).",
            )),
        )
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        for attr in ["name", "secret"] {
            if config.known_str(attr).is_some_and(str::is_empty) {
                diags.push(
                    Diagnostic::error(
                        format!("Invalid {attr}"),
                        format!("{attr} must not be empty"),
                    )
                    .at(config.attr_path(attr)),
                );
            }
        }
        if let Some(name) = config.known_str("name")
            && (name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control))
        {
            diags.push(
                Diagnostic::error(
                    "Invalid name",
                    format!("name is 1-{MAX_NAME_CHARS} characters without control characters"),
                )
                .at(config.attr_path("name")),
            );
        }
        if let Some(secret) = config.known_str("secret")
            && !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&secret.len())
            && !secret.is_empty()
        {
            // Never the secret itself in a diagnostic.
            diags.push(
                Diagnostic::error(
                    "Invalid secret",
                    format!(
                        "secret must be {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes, got {}; use a long random value",
                        secret.len()
                    ),
                )
                .at(config.attr_path("secret")),
            );
        }
        validate::max_len(config, "url", MAX_URL_BYTES, diags);
        if let Some(url) = config.known_str("url")
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            diags.push(
                Diagnostic::error(
                    "Invalid url",
                    format!("{url:?} is not an http:// or https:// URL"),
                )
                .at(config.attr_path("url")),
            );
        }
        if config.get("tenant").as_str().is_some() {
            validate::name(config, "tenant", diags);
        }
        if let Value::List(items) = config.get("events") {
            if items.is_empty() {
                diags.push(
                    Diagnostic::error("Invalid events", "a webhook needs at least one event")
                        .at(config.attr_path("events")),
                );
            }
            for e in items.iter().filter_map(Value::as_str) {
                if !WEBHOOK_EVENTS.contains(&e) {
                    diags.push(
                        Diagnostic::error(
                            "Invalid events",
                            format!("{e:?} is not one of {}", WEBHOOK_EVENTS.join(", ")),
                        )
                        .at(config.attr_path("events")),
                    );
                }
            }
        }
    }

    fn replace_on_change(&self) -> &'static [&'static str] {
        &["name", "url", "events", "secret", "tenant"]
    }

    /// The server numbers the events it was sent (`events[2]`), which is no position in a
    /// set: point at `events` itself.
    fn api_error(&self, action: &str, err: &conflux_client::ClientError) -> Diagnostics {
        let mut d: Diagnostics = crate::client_errors::diagnostic(
            &format!("{action} {}", self.type_name()),
            err,
            &self.schema().block,
            self.renames(),
        )
        .into();
        for diag in &mut d.0 {
            if diag
                .attribute
                .as_ref()
                .is_some_and(|a| a.first_attr() == Some("events"))
            {
                diag.attribute = Some(crate::protocol::diag::AttrPath::root("events"));
            }
        }
        d
    }

    async fn create(&self, api: &Api, planned: &Obj) -> Outcome<Obj> {
        let secret = planned.str("secret")?;
        let body = CreateWebhook {
            name: planned.str("name")?.to_owned(),
            url: planned.str("url")?.to_owned(),
            events: Self::events(planned)?,
            secret: secret.to_owned(),
            tenant: planned.opt_str("tenant")?.map(str::to_owned),
        };
        // No idempotency key on this endpoint: only a 503 (nothing done) is retried.
        let view = api
            .retry_unavailable(|| api.client.create_webhook(&body))
            .await
            .map_err(|e| self.api_error("create", &e))?;
        Ok(Self::state(&view, Value::string(secret)))
    }

    async fn read(&self, api: &Api, state: &Obj) -> Outcome<Option<Obj>> {
        let id = state.str("id")?;
        let view = api.retry(|| api.client.get_webhook(id)).await;
        let view = gone_if_not_found(view).map_err(|e| self.api_error("read", &e))?;
        Ok(view.map(|v| Self::state(&v, state.get("secret").clone())))
    }

    async fn update(&self, _api: &Api, _prior: &Obj, _planned: &Obj) -> Outcome<Obj> {
        Err(Diagnostic::error(
            "Internal error in the conflux provider",
            "conflux_webhook has no in-place update: every argument replaces the webhook. \
             This is a bug; please report it.",
        )
        .into())
    }

    async fn delete(&self, api: &Api, state: &Obj) -> Outcome<()> {
        let id = state.str("id")?;
        let r = api.retry(|| api.client.delete_webhook(id)).await;
        gone_if_not_found(r).map_err(|e| self.api_error("delete", &e))?;
        Ok(())
    }

    async fn import(&self, api: &Api, id: &str) -> Outcome<Obj> {
        super::import_parts(id, 1, "the webhook id")?;
        let view = api
            .retry(|| api.client.get_webhook(id))
            .await
            .map_err(|e| self.api_error("import", &e))?;
        Ok(Self::state(&view, Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, events: &[&str]) -> Obj {
        Obj::new()
            .with("name", Value::string("chat-ops"))
            .with("url", Value::string(url))
            .with("secret", Value::string("a-long-enough-s3cret"))
            .with(
                "events",
                Value::List(events.iter().map(|e| Value::string(*e)).collect()),
            )
    }

    fn diags_of(config: &Obj) -> Diagnostics {
        let mut d = Diagnostics::default();
        Webhook.validate(config, &mut d);
        d
    }

    #[test]
    fn urls_and_events_are_checked_at_plan_time() {
        assert!(
            diags_of(&config(
                "https://hooks.example.com/conflux",
                &["proposal.created", "release.changed"]
            ))
            .0
            .is_empty()
        );
        let d = diags_of(&config("ftp://x", &["proposal.created"]));
        assert_eq!(d.0.len(), 1);
        assert_eq!(d.0[0].attribute.as_ref().unwrap().to_string(), "url");
        let d = diags_of(&config("http://x", &["proposal.create"]));
        assert_eq!(d.0.len(), 1);
        assert!(
            d.0[0].detail.contains("proposal.created"),
            "{}",
            d.0[0].detail
        );
        let d = diags_of(&config("http://x", &[]));
        assert!(d.0[0].detail.contains("at least one"));
        let short =
            config("http://x", &["proposal.created"]).with("secret", Value::string("s3cret"));
        let d = diags_of(&short);
        assert_eq!(d.0.len(), 1);
        assert_eq!(d.0[0].attribute.as_ref().unwrap().to_string(), "secret");
        assert!(!d.0[0].detail.contains("s3cret"));
    }

    #[test]
    fn state_orders_events_and_keeps_the_given_secret() {
        let view = WebhookView {
            id: "w1".into(),
            name: "n".into(),
            url: "http://x".into(),
            events: vec!["version.created".into(), "proposal.created".into()],
            tenant: None,
            created_at: "2030-01-01T00:00:00Z".into(),
            created_by: "token:a".into(),
        };
        let s = Webhook::state(&view, Value::string("k"));
        assert_eq!(
            s.get("events"),
            &Value::List(vec![
                Value::string("proposal.created"),
                Value::string("version.created")
            ])
        );
        assert_eq!(s.get("secret"), &Value::string("k"));
        assert_eq!(s.get("tenant"), &Value::Null);
    }
}
