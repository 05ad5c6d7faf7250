//! `conflux_role_binding`: one role granted to one principal (a user or a service token) on
//! one scope (contract section 6).
//!
//! A binding is immutable in the API, so every argument forces a new one. Role, scope and
//! principal are checked at plan time with the access model of `conflux-domain`, so a typo is
//! a diagnostic at its attribute, not a 400 in the middle of an apply. A binding deleted
//! outside Terraform leaves the state and is created again by the next apply.
//!
//! Import ID: the binding id.

use conflux_api_types::{CreateRoleBinding, RoleBindingView};

use super::{Outcome, Resource, gone_if_not_found};
use crate::api::Api;
use crate::protocol::diag::{Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct RoleBinding;

impl RoleBinding {
    fn state(view: &RoleBindingView) -> Obj {
        Obj::new()
            .with("id", Value::string(&view.id))
            .with("principal", Value::string(&view.principal))
            .with("role", Value::string(&view.role))
            .with("scope", Value::string(&view.scope))
            .with("created_at", Value::string(&view.created_at))
            .with("created_by", Value::string(&view.created_by))
    }
}

#[tonic::async_trait]
impl Resource for RoleBinding {
    fn type_name(&self) -> &'static str {
        "conflux_role_binding"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "Grants a role on a scope to a user or a service token. Every argument forces \
                 a new binding. Import with the binding id.",
            )
            .attr(Attribute::computed("id", Type::String, "The binding's id."))
            .attr(Attribute::required(
                "principal",
                Type::String,
                "Who gets the role: \"user:<username>\" or \"token:<id>\" (such as \"token:${conflux_service_token.ci.id}\").",
            ))
            .attr(Attribute::required(
                "role",
                Type::String,
                "reader, viewer, editor, publisher, tenant_admin or cluster_admin; each includes the ones before it.",
            ))
            .attr(Attribute::required(
                "scope",
                Type::String,
                "Where the role applies: \"*\" (everything), \"tenant\", \"tenant/app\" or \"tenant/app/env\", and everything under it.",
            ))
            .attr(Attribute::computed(
                "created_at",
                Type::String,
                "When the binding was created (RFC 3339).",
            ))
            .attr(Attribute::computed(
                "created_by",
                Type::String,
                "The principal that created it.",
            )),
        )
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        validate::principal(config, "principal", diags);
        validate::role(config, "role", diags);
        validate::scope(config, "scope", diags);
    }

    fn replace_on_change(&self) -> &'static [&'static str] {
        &["principal", "role", "scope"]
    }

    async fn create(&self, api: &Api, planned: &Obj) -> Outcome<Obj> {
        let body = CreateRoleBinding {
            principal: planned.str("principal")?.to_owned(),
            role: planned.str("role")?.to_owned(),
            scope: planned.str("scope")?.to_owned(),
        };
        let view = api
            .retry_unavailable(|| api.client.create_role_binding(&body))
            .await
            .map_err(|e| self.api_error("create", &e))?;
        Ok(Self::state(&view))
    }

    async fn read(&self, api: &Api, state: &Obj) -> Outcome<Option<Obj>> {
        let id = state.str("id")?;
        let view = api.retry(|| api.client.get_role_binding(id)).await;
        let view = gone_if_not_found(view).map_err(|e| self.api_error("read", &e))?;
        Ok(view.as_ref().map(Self::state))
    }

    async fn update(&self, _api: &Api, _prior: &Obj, _planned: &Obj) -> Outcome<Obj> {
        Err(Diagnostic::error(
            "Internal error in the conflux provider",
            "conflux_role_binding has no in-place update: every argument replaces the binding. \
             This is a bug; please report it.",
        )
        .into())
    }

    async fn delete(&self, api: &Api, state: &Obj) -> Outcome<()> {
        let id = state.str("id")?;
        let r = api.retry(|| api.client.delete_role_binding(id)).await;
        gone_if_not_found(r).map_err(|e| self.api_error("delete", &e))?;
        Ok(())
    }

    async fn import(&self, api: &Api, id: &str) -> Outcome<Obj> {
        // Binding ids are of the same shape as token ids.
        if !conflux_domain::access::is_token_id(id) {
            return Err(Diagnostic::error(
                "Invalid import ID",
                format!("{id:?} is not a role binding id (lower-case letters and digits)"),
            )
            .into());
        }
        let view = api
            .retry(|| api.client.get_role_binding(id))
            .await
            .map_err(|e| self.api_error("import", &e))?;
        Ok(Self::state(&view))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::plan;

    fn diags_of(principal: &str, role: &str, scope: &str) -> Vec<String> {
        let mut d = Diagnostics::default();
        RoleBinding.validate(
            &Obj::new()
                .with("principal", Value::string(principal))
                .with("role", Value::string(role))
                .with("scope", Value::string(scope)),
            &mut d,
        );
        d.0.iter()
            .map(|x| x.attribute.as_ref().unwrap().to_string())
            .collect()
    }

    #[test]
    fn every_argument_is_checked_at_its_attribute() {
        assert!(diags_of("user:alice", "viewer", "shop/web/prod").is_empty());
        assert!(diags_of("token:a1b2", "cluster_admin", "*").is_empty());
        assert_eq!(diags_of("alice", "viewer", "shop"), ["principal"]);
        assert_eq!(diags_of("user:alice", "superuser", "shop"), ["role"]);
        assert_eq!(diags_of("user:alice", "viewer", "shop/"), ["scope"]);
        assert_eq!(diags_of("user:alice", "viewer", "a/b/c/d"), ["scope"]);
        assert_eq!(
            diags_of("token:UPPER", "owner", "**"),
            ["principal", "role", "scope"]
        );
    }

    #[test]
    fn any_change_replaces_the_binding() {
        let prior = RoleBinding::state(&RoleBindingView {
            id: "rb1".into(),
            principal: "user:alice".into(),
            role: "viewer".into(),
            scope: "shop".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            created_by: "token:boot".into(),
        });
        let mut proposed = prior.clone();
        proposed.set("role", Value::string("editor"));
        let config = Obj::new()
            .with("principal", Value::string("user:alice"))
            .with("role", Value::string("editor"))
            .with("scope", Value::string("shop"));
        let (_, replace) = plan(
            &RoleBinding,
            &RoleBinding.schema(),
            Some(&prior),
            proposed,
            &config,
        );
        assert_eq!(replace.len(), 1);
        assert_eq!(replace[0].to_string(), "role");
    }
}
