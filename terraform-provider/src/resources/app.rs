//! `conflux_app`: an application of a tenant.
//!
//! Import ID: `tenant/app`. Destroy refuses (409 `has_children`) while the app has
//! environments Terraform does not manage.

use conflux_api_types::{AppView, CreateApp, UpdateApp};

use super::{Outcome, Resource, default_if_null, gone_if_not_found, import_parts};
use crate::api::Api;
use crate::protocol::diag::Diagnostics;
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct App;

impl App {
    fn state(view: &AppView) -> Obj {
        Obj::new()
            .with(
                "id",
                Value::string(format!("{}/{}", view.tenant, view.name)),
            )
            .with("tenant", Value::string(&view.tenant))
            .with("name", Value::string(&view.name))
            .with("description", Value::string(&view.description))
    }
}

#[tonic::async_trait]
impl Resource for App {
    fn type_name(&self) -> &'static str {
        "conflux_app"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new("An application of a tenant. Import with `tenant/app`.")
                .attr(Attribute::computed("id", Type::String, "`tenant/app`."))
                .attr(Attribute::required(
                    "tenant",
                    Type::String,
                    "The tenant's name. Changing it replaces the app.",
                ))
                .attr(Attribute::required(
                    "name",
                    Type::String,
                    "App name: lower-case letters, digits and '-', 1-63 characters. Changing it replaces the app.",
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
        validate::name(config, "name", diags);
        validate::max_len(
            config,
            "description",
            validate::MAX_DESCRIPTION_BYTES,
            diags,
        );
    }

    fn replace_on_change(&self) -> &'static [&'static str] {
        &["tenant", "name"]
    }

    fn defaults(&self, planned: &mut Obj, config: &Obj) {
        default_if_null(planned, config, "description", Value::string(""));
    }

    async fn create(&self, api: &Api, planned: &Obj) -> Outcome<Obj> {
        let tenant = planned.str("tenant")?;
        let body = CreateApp {
            name: planned.str("name")?.to_owned(),
            description: planned.opt_str("description")?.map(str::to_owned),
        };
        let opts = api.write_options();
        let view = api
            .retry(|| api.client.create_app(tenant, &body, &opts))
            .await
            .map_err(|e| self.api_error("create", &e))?;
        Ok(Self::state(&view))
    }

    async fn read(&self, api: &Api, state: &Obj) -> Outcome<Option<Obj>> {
        let (tenant, name) = (state.str("tenant")?, state.str("name")?);
        let view = api.retry(|| api.client.get_app(tenant, name)).await;
        let view = gone_if_not_found(view).map_err(|e| self.api_error("read", &e))?;
        Ok(view.as_ref().map(Self::state))
    }

    async fn update(&self, api: &Api, _prior: &Obj, planned: &Obj) -> Outcome<Obj> {
        let (tenant, name) = (planned.str("tenant")?, planned.str("name")?);
        let body = UpdateApp {
            description: planned.opt_str("description")?.map(str::to_owned),
        };
        let opts = api.write_options();
        let view = api
            .retry(|| api.client.update_app(tenant, name, &body, &opts))
            .await
            .map_err(|e| self.api_error("update", &e))?;
        Ok(Self::state(&view))
    }

    async fn delete(&self, api: &Api, state: &Obj) -> Outcome<()> {
        let (tenant, name) = (state.str("tenant")?, state.str("name")?);
        let opts = api.write_options();
        let r = api
            .retry(|| api.client.delete_app(tenant, name, false, &opts))
            .await;
        gone_if_not_found(r).map_err(|e| self.api_error("delete", &e))?;
        Ok(())
    }

    async fn import(&self, api: &Api, id: &str) -> Outcome<Obj> {
        let p = import_parts(id, 2, "tenant/app")?;
        let view = api
            .retry(|| api.client.get_app(p[0], p[1]))
            .await
            .map_err(|e| self.api_error("import", &e))?;
        Ok(Self::state(&view))
    }
}
