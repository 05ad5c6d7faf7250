//! `conflux_environment`: an environment (prod, staging, ...) of an app.
//!
//! Import ID: `tenant/app/env`. Destroy refuses (409 `has_children`) while the environment
//! has configs Terraform does not manage. Approval settings are not managed here yet.

use conflux_api_types::{CreateEnvironment, EnvironmentView, UpdateEnvironment};

use super::{Outcome, Resource, default_if_null, gone_if_not_found, import_parts};
use crate::api::Api;
use crate::protocol::diag::Diagnostics;
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct Environment;

impl Environment {
    fn state(view: &EnvironmentView) -> Obj {
        Obj::new()
            .with(
                "id",
                Value::string(format!("{}/{}/{}", view.tenant, view.app, view.name)),
            )
            .with("tenant", Value::string(&view.tenant))
            .with("app", Value::string(&view.app))
            .with("name", Value::string(&view.name))
            .with("description", Value::string(&view.description))
    }
}

#[tonic::async_trait]
impl Resource for Environment {
    fn type_name(&self) -> &'static str {
        "conflux_environment"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new("An environment of an app. Import with `tenant/app/env`.")
                .attr(Attribute::computed("id", Type::String, "`tenant/app/env`."))
                .attr(Attribute::required(
                    "tenant",
                    Type::String,
                    "The tenant's name. Changing it replaces the environment.",
                ))
                .attr(Attribute::required(
                    "app",
                    Type::String,
                    "The app's name. Changing it replaces the environment.",
                ))
                .attr(Attribute::required(
                    "name",
                    Type::String,
                    "Environment name: lower-case letters, digits and '-', 1-63 characters. Changing it replaces the environment.",
                ))
                .attr(Attribute::optional_computed(
                    "description",
                    Type::String,
                    "Free text (at most 1024 bytes); empty by default.",
                )),
        )
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        validate::name(config, "tenant", diags);
        validate::name(config, "app", diags);
        validate::name(config, "name", diags);
        validate::max_len(
            config,
            "description",
            validate::MAX_DESCRIPTION_BYTES,
            diags,
        );
    }

    fn replace_on_change(&self) -> &'static [&'static str] {
        &["tenant", "app", "name"]
    }

    fn defaults(&self, planned: &mut Obj, config: &Obj) {
        default_if_null(planned, config, "description", Value::string(""));
    }

    async fn create(&self, api: &Api, planned: &Obj) -> Outcome<Obj> {
        let (tenant, app) = (planned.str("tenant")?, planned.str("app")?);
        let body = CreateEnvironment {
            name: planned.str("name")?.to_owned(),
            description: planned.opt_str("description")?.map(str::to_owned),
            approval: None,
        };
        let opts = api.write_options();
        let view = api
            .retry(|| api.client.create_env(tenant, app, &body, &opts))
            .await
            .map_err(|e| self.api_error("create", &e))?;
        Ok(Self::state(&view))
    }

    async fn read(&self, api: &Api, state: &Obj) -> Outcome<Option<Obj>> {
        let (tenant, app, name) = (state.str("tenant")?, state.str("app")?, state.str("name")?);
        let view = api.retry(|| api.client.get_env(tenant, app, name)).await;
        let view = gone_if_not_found(view).map_err(|e| self.api_error("read", &e))?;
        Ok(view.as_ref().map(Self::state))
    }

    async fn update(&self, api: &Api, _prior: &Obj, planned: &Obj) -> Outcome<Obj> {
        let (tenant, app, name) = (
            planned.str("tenant")?,
            planned.str("app")?,
            planned.str("name")?,
        );
        let body = UpdateEnvironment {
            description: planned.opt_str("description")?.map(str::to_owned),
            approval: None,
        };
        let opts = api.write_options();
        let view = api
            .retry(|| api.client.update_env(tenant, app, name, &body, &opts))
            .await
            .map_err(|e| self.api_error("update", &e))?;
        Ok(Self::state(&view))
    }

    async fn delete(&self, api: &Api, state: &Obj) -> Outcome<()> {
        let (tenant, app, name) = (state.str("tenant")?, state.str("app")?, state.str("name")?);
        let opts = api.write_options();
        let r = api
            .retry(|| api.client.delete_env(tenant, app, name, false, &opts))
            .await;
        gone_if_not_found(r).map_err(|e| self.api_error("delete", &e))?;
        Ok(())
    }

    async fn import(&self, api: &Api, id: &str) -> Outcome<Obj> {
        let p = import_parts(id, 3, "tenant/app/env")?;
        let view = api
            .retry(|| api.client.get_env(p[0], p[1], p[2]))
            .await
            .map_err(|e| self.api_error("import", &e))?;
        Ok(Self::state(&view))
    }
}
