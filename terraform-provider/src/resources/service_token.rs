//! `conflux_service_token`: a service token (contract section 6) and the role bindings created
//! with it.
//!
//! The secret is write-once: the server shows it only in the answer to the create, so the
//! provider stores it in the state then (sensitive) and carries it from state to state; no read
//! can recover it. An imported token therefore has a null `token`. Every argument forces a new
//! token (the API has no update): a new name, expiry or binding set means a new secret.
//!
//! Drift: a token deleted outside Terraform leaves the state and is created again (with a new
//! secret) by the next apply. With `bindings` set, each refresh lists the token's bindings and
//! keeps those of the state that still exist, so a binding removed outside Terraform shows as a
//! change (which replaces the token); bindings added outside Terraform (for example by
//! `conflux_role_binding`) are not this resource's and are ignored.
//!
//! Import ID: the token id. Its `token` is null after import, and `bindings` are all the
//! bindings the token has.

use conflux_api_types::{BindingSpec, CreateToken, RoleBindingView, TokenView};

use super::{Outcome, Resource, gone_if_not_found};
use crate::api::Api;
use crate::protocol::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::{timestamp, validate};

pub struct ServiceToken;

/// A token's name is free text, as long as a description.
const MAX_TOKEN_NAME_BYTES: usize = validate::MAX_DISPLAY_NAME_BYTES;
/// Bindings created with one token.
const MAX_BINDINGS: usize = 64;

fn binding_type() -> Type {
    Type::object([("role", Type::String), ("scope", Type::String)])
}

fn binding_value(role: &str, scope: &str) -> Value {
    Obj::new()
        .with("role", Value::string(role))
        .with("scope", Value::string(scope))
        .into_value()
}

/// The `principal` of a token's bindings.
pub fn principal_of(id: &str) -> String {
    format!("token:{id}")
}

impl ServiceToken {
    fn bindings(obj: &Obj) -> Outcome<Vec<BindingSpec>> {
        Ok(obj
            .obj_list("bindings")?
            .iter()
            .map(|b| {
                Ok(BindingSpec {
                    role: b.str("role")?.to_owned(),
                    scope: b.str("scope")?.to_owned(),
                })
            })
            .collect::<Result<_, Diagnostic>>()?)
    }

    /// The state for `view`. `token` and `bindings` come from the caller (the server never
    /// shows the secret again, nor the bindings with the token); `expires_at` keeps the
    /// spelling of `like` when it is the same instant.
    fn state(view: &TokenView, token: Value, bindings: Value, like: Option<&Obj>) -> Obj {
        let ours = like.and_then(|o| o.known_str("expires_at"));
        Obj::new()
            .with("id", Value::string(&view.id))
            .with("name", Value::string(&view.name))
            .with(
                "expires_at",
                Value::opt_string(
                    view.expires_at
                        .as_deref()
                        .map(|e| timestamp::same_instant_or(e, ours)),
                ),
            )
            .with("bindings", bindings)
            .with("created_at", Value::string(&view.created_at))
            .with("created_by", Value::string(&view.created_by))
            .with("token", token)
    }

    async fn list_bindings(&self, api: &Api, id: &str) -> Outcome<Vec<RoleBindingView>> {
        let principal = principal_of(id);
        Ok(api
            .retry(|| api.client.list_role_bindings(Some(&principal), None))
            .await
            .map_err(|e| self.api_error("read", &e))?
            .role_bindings)
    }

    /// The error of a failed call, pointing at `bindings` rather than into it: the server
    /// numbers the bindings it was sent, which is no position in a set.
    fn error(&self, action: &str, err: &conflux_client::ClientError) -> Diagnostics {
        let mut d = self.api_error(action, err);
        for diag in &mut d.0 {
            if diag
                .attribute
                .as_ref()
                .is_some_and(|a| a.first_attr() == Some("bindings"))
            {
                diag.attribute = Some(AttrPath::root("bindings"));
            }
        }
        d
    }
}

#[tonic::async_trait]
impl Resource for ServiceToken {
    fn type_name(&self) -> &'static str {
        "conflux_service_token"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "A Conflux service token, for services, CI and other Terraform runs, with the \
                 role bindings it is created with. The secret (`token`) is known only to the \
                 Terraform run that creates the token and kept in the state from then on; an \
                 imported token has a null `token`. Every argument forces a new token. Import \
                 with the token id.",
            )
            .attr(Attribute::computed(
                "id",
                Type::String,
                "The token's id; its bindings name it as the principal `token:<id>`.",
            ))
            .attr(Attribute::required(
                "name",
                Type::String,
                "What the token is for (free text, 1-256 bytes). Changing it replaces the token.",
            ))
            .attr(Attribute::optional(
                "expires_at",
                Type::String,
                "When the token stops working, RFC 3339 (\"2030-01-01T00:00:00Z\"). Without it the token does not expire. Changing it replaces the token.",
            ))
            .attr(Attribute::optional(
                "bindings",
                Type::Set(Box::new(binding_type())),
                "Role bindings created with the token: a set of { role, scope }. Roles: reader, viewer, editor, publisher, tenant_admin, cluster_admin; scopes: *, tenant, tenant/app or tenant/app/env. Changing them replaces the token; for bindings that can change on their own, use conflux_role_binding with principal \"token:${id}\".",
            ))
            .attr(Attribute::computed(
                "created_at",
                Type::String,
                "When the token was created (RFC 3339).",
            ))
            .attr(Attribute::computed(
                "created_by",
                Type::String,
                "The principal that created it (user:<name> or token:<id>).",
            ))
            .attr(
                Attribute::computed(
                    "token",
                    Type::String,
                    "The secret, for `Authorization: Bearer`. Known after the create only, then kept in the state; null for an imported token.",
                )
                .sensitive(),
            ),
        )
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        if config.known_str("name").is_some_and(str::is_empty) {
            diags.push(
                Diagnostic::error("Invalid name", "name must not be empty")
                    .at(config.attr_path("name")),
            );
        }
        validate::max_len(config, "name", MAX_TOKEN_NAME_BYTES, diags);
        if let Some(text) = config.known_str("expires_at")
            && let Err(e) = timestamp::parse(text)
        {
            diags.push(
                Diagnostic::error("Invalid expires_at", e).at(config.attr_path("expires_at")),
            );
        }
        let Value::List(items) = config.get("bindings") else {
            return;
        };
        if items.len() > MAX_BINDINGS {
            diags.push(
                Diagnostic::error(
                    "Too many bindings",
                    format!(
                        "a token is created with at most {MAX_BINDINGS} bindings, got {}",
                        items.len()
                    ),
                )
                .at(config.attr_path("bindings")),
            );
        }
        // Elements of a set have no index to point at: the diagnostics point at the set and
        // name the binding.
        for item in items {
            let Value::Object(attrs) = item else {
                continue;
            };
            let b = Obj {
                path: config.attr_path("bindings"),
                attrs: attrs.clone(),
            };
            let mut inner = Diagnostics::default();
            validate::role(&b, "role", &mut inner);
            validate::scope(&b, "scope", &mut inner);
            for mut d in inner.0 {
                d.attribute = Some(config.attr_path("bindings"));
                d.detail = format!(
                    "binding {{ role = {:?}, scope = {:?} }}: {}",
                    b.known_str("role").unwrap_or("?"),
                    b.known_str("scope").unwrap_or("?"),
                    d.detail
                );
                diags.push(d);
            }
        }
    }

    fn replace_on_change(&self) -> &'static [&'static str] {
        &["name", "expires_at", "bindings"]
    }

    async fn create(&self, api: &Api, planned: &Obj) -> Outcome<Obj> {
        let expires_at = match planned.opt_str("expires_at")? {
            Some(text) => Some(timestamp::canonical(timestamp::parse(text).map_err(
                |e| Diagnostic::error("Invalid expires_at", e).at(planned.attr_path("expires_at")),
            )?)),
            None => None,
        };
        let body = CreateToken {
            name: planned.str("name")?.to_owned(),
            expires_at,
            bindings: Self::bindings(planned)?,
        };
        let created = api
            .retry_unavailable(|| api.client.create_token(&body))
            .await
            .map_err(|e| self.error("create", &e))?;
        // The answer to the create has neither created_at nor created_by: read them.
        let view = match api.retry(|| api.client.get_token(&created.id)).await {
            Ok(v) => v,
            Err(e) => {
                // Without a state the token would be lost to Terraform: revoke it, so a
                // retried apply leaves no stray secret behind.
                let revoked = api.retry(|| api.client.delete_token(&created.id)).await;
                let mut d = self.error("read back the new token of", &e);
                if let Err(r) = revoked {
                    d.push(Diagnostic::warning(
                        "A token may be left over",
                        format!(
                            "token {} was created but could not be read back nor revoked ({}); \
                             delete it with the API or the CLI",
                            created.id,
                            r.code()
                        ),
                    ));
                }
                return Err(d);
            }
        };
        Ok(Self::state(
            &view,
            Value::string(&created.token),
            planned.get("bindings").clone(),
            Some(planned),
        ))
    }

    async fn read(&self, api: &Api, state: &Obj) -> Outcome<Option<Obj>> {
        let id = state.str("id")?;
        let view = api.retry(|| api.client.get_token(id)).await;
        let Some(view) = gone_if_not_found(view).map_err(|e| self.error("read", &e))? else {
            return Ok(None);
        };
        let bindings = match state.get("bindings") {
            Value::List(ours) => {
                let theirs = self.list_bindings(api, id).await?;
                let exists = |b: &Value| {
                    let Value::Object(a) = b else { return false };
                    theirs.iter().any(|t| {
                        a.get("role").and_then(Value::as_str) == Some(t.role.as_str())
                            && a.get("scope").and_then(Value::as_str) == Some(t.scope.as_str())
                    })
                };
                Value::List(ours.iter().filter(|b| exists(b)).cloned().collect())
            }
            other => other.clone(),
        };
        Ok(Some(Self::state(
            &view,
            state.get("token").clone(),
            bindings,
            Some(state),
        )))
    }

    async fn update(&self, _api: &Api, _prior: &Obj, _planned: &Obj) -> Outcome<Obj> {
        Err(Diagnostic::error(
            "Internal error in the conflux provider",
            "conflux_service_token has no in-place update: every argument replaces the token. \
             This is a bug; please report it.",
        )
        .into())
    }

    async fn delete(&self, api: &Api, state: &Obj) -> Outcome<()> {
        let id = state.str("id")?;
        let r = api.retry(|| api.client.delete_token(id)).await;
        gone_if_not_found(r).map_err(|e| self.error("delete", &e))?;
        Ok(())
    }

    async fn import(&self, api: &Api, id: &str) -> Outcome<Obj> {
        if !conflux_domain::access::is_token_id(id) {
            return Err(Diagnostic::error(
                "Invalid import ID",
                format!("{id:?} is not a token id (lower-case letters and digits)"),
            )
            .into());
        }
        let view = api
            .retry(|| api.client.get_token(id))
            .await
            .map_err(|e| self.error("import", &e))?;
        let bindings = self.list_bindings(api, id).await?;
        let bindings = if bindings.is_empty() {
            Value::Null
        } else {
            Value::List(
                bindings
                    .iter()
                    .map(|b| binding_value(&b.role, &b.scope))
                    .collect(),
            )
        };
        Ok(Self::state(&view, Value::Null, bindings, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bindings: Value) -> Obj {
        Obj::new()
            .with("name", Value::string("ci"))
            .with("bindings", bindings)
    }

    fn diags_of(config: &Obj) -> Diagnostics {
        let mut d = Diagnostics::default();
        ServiceToken.validate(config, &mut d);
        d
    }

    #[test]
    fn bindings_are_checked_at_plan_time_and_point_at_the_set() {
        let ok = config(Value::List(vec![
            binding_value("reader", "shop"),
            binding_value("cluster_admin", "*"),
        ]));
        assert!(diags_of(&ok).0.is_empty());

        let bad = config(Value::List(vec![
            binding_value("owner", "shop"),
            binding_value("reader", "shop/web/prod/extra"),
        ]));
        let d = diags_of(&bad);
        assert_eq!(d.0.len(), 2, "{d:?}");
        assert!(
            d.0.iter()
                .all(|x| x.attribute == Some(AttrPath::root("bindings")))
        );
        assert!(d.0[0].detail.contains("\"owner\"") && d.0[0].detail.contains("roles are"));
        assert!(d.0[1].detail.contains("shop/web/prod/extra"));

        // Unknown parts are judged at apply.
        let unknown = config(Value::List(vec![
            Obj::new()
                .with("role", Value::string("reader"))
                .with("scope", Value::Unknown)
                .into_value(),
        ]));
        assert!(diags_of(&unknown).0.is_empty());
        assert!(diags_of(&config(Value::Unknown)).0.is_empty());
    }

    #[test]
    fn name_and_expiry_are_checked() {
        let d = diags_of(
            &Obj::new()
                .with("name", Value::string(""))
                .with("expires_at", Value::string("next week")),
        );
        let at: Vec<String> =
            d.0.iter()
                .map(|x| x.attribute.as_ref().unwrap().to_string())
                .collect();
        assert_eq!(at, ["name", "expires_at"]);
    }

    #[test]
    fn state_keeps_the_secret_and_the_users_expiry_spelling() {
        let view = TokenView {
            id: "abc123".into(),
            name: "ci".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: Some("2030-01-01T00:00:00.000Z".into()),
            created_by: "token:boot".into(),
        };
        let like = Obj::new().with("expires_at", Value::string("2030-01-01T00:00:00Z"));
        let s = ServiceToken::state(&view, Value::string("s3cret"), Value::Null, Some(&like));
        assert_eq!(s.get("expires_at"), &Value::string("2030-01-01T00:00:00Z"));
        assert_eq!(s.get("token"), &Value::string("s3cret"));
        assert_eq!(s.get("created_by"), &Value::string("token:boot"));
        assert!(
            ServiceToken
                .schema()
                .block
                .attribute("token")
                .unwrap()
                .sensitive
        );
    }
}
