//! `conflux_tenant`: a tenant, its display name and its quotas.
//!
//! Import ID: the tenant name (`acme`); quotas other than the defaults import as a `quotas`
//! block. The `quotas` block, when present, states all four
//! quotas; the ones it leaves out are the contract defaults, so a quota changed outside
//! Terraform shows as drift. Without the block, quotas are not managed. Destroy refuses
//! (409 `has_children`) while the tenant has apps Terraform does not manage.

use conflux_api_types::{CreateTenant, Quotas, QuotasPatch, TenantView, UpdateTenant};

use super::{Outcome, Resource, default_if_null, gone_if_not_found};
use crate::api::Api;
use crate::protocol::diag::Diagnostics;
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct Tenant;

const QUOTAS: [&str; 4] = [
    "max_apps",
    "max_configs",
    "max_config_bytes",
    "max_versions_per_config",
];

fn default_quota(name: &str) -> u64 {
    let q = Quotas::default();
    match name {
        "max_apps" => q.max_apps,
        "max_configs" => q.max_configs,
        "max_config_bytes" => q.max_config_bytes,
        _ => q.max_versions_per_config,
    }
}

fn quota_of(q: &Quotas, name: &str) -> u64 {
    match name {
        "max_apps" => q.max_apps,
        "max_configs" => q.max_configs,
        "max_config_bytes" => q.max_config_bytes,
        _ => q.max_versions_per_config,
    }
}

impl Tenant {
    fn quotas_patch(planned: &Obj) -> Outcome<Option<QuotasPatch>> {
        let Some(q) = planned.opt_obj("quotas")? else {
            return Ok(None);
        };
        Ok(Some(QuotasPatch {
            max_apps: q.opt_u64("max_apps")?,
            max_configs: q.opt_u64("max_configs")?,
            max_config_bytes: q.opt_u64("max_config_bytes")?,
            max_versions_per_config: q.opt_u64("max_versions_per_config")?,
        }))
    }

    /// The state for `view`; the quotas block only when the configuration has one.
    fn state(view: &TenantView, manage_quotas: bool) -> Obj {
        let quotas = if manage_quotas {
            let mut q = Obj::new();
            for name in QUOTAS {
                q.set(name, Value::uint(quota_of(&view.quotas, name)));
            }
            q.into_value()
        } else {
            Value::Null
        };
        Obj::new()
            .with("id", Value::string(&view.name))
            .with("name", Value::string(&view.name))
            .with("display_name", Value::string(&view.display_name))
            .with("status", Value::string(view.status.as_str()))
            .with("quotas", quotas)
    }
}

#[tonic::async_trait]
impl Resource for Tenant {
    fn type_name(&self) -> &'static str {
        "conflux_tenant"
    }

    fn schema(&self) -> Schema {
        let mut quotas = Block::new(
            "Quotas of the tenant. Quotas left out are the defaults (100 apps, 1000 configs, \
             102400 bytes per config, 1000 versions per config). Without this block, quotas \
             are not managed by Terraform.",
        );
        for name in QUOTAS {
            quotas = quotas.attr(Attribute::optional_computed(
                name,
                Type::Number,
                "A quota (at least 1).",
            ));
        }
        Schema::new(
            Block::new("A Conflux tenant. Import with its name.")
                .attr(Attribute::computed("id", Type::String, "The tenant name."))
                .attr(Attribute::required(
                    "name",
                    Type::String,
                    "Tenant name: lower-case letters, digits and '-', 1-63 characters. Changing it replaces the tenant.",
                ))
                .attr(Attribute::optional_computed(
                    "display_name",
                    Type::String,
                    "Human-readable name; defaults to the name.",
                ))
                .attr(Attribute::computed(
                    "status",
                    Type::String,
                    "active or suspended.",
                ))
                .single("quotas", quotas),
        )
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        validate::name(config, "name", diags);
        validate::max_len(
            config,
            "display_name",
            validate::MAX_DISPLAY_NAME_BYTES,
            diags,
        );
        if let Ok(Some(q)) = config.opt_obj("quotas") {
            for name in QUOTAS {
                let max = if name == "max_config_bytes" {
                    i64::try_from(conflux_domain::MAX_CONTENT_BYTES).unwrap_or(i64::MAX)
                } else {
                    i64::MAX
                };
                validate::int_range(&q, name, 1, max, diags);
            }
        }
    }

    fn replace_on_change(&self) -> &'static [&'static str] {
        &["name"]
    }

    fn defaults(&self, planned: &mut Obj, config: &Obj) {
        if let Some(name) = config.known_str("name") {
            default_if_null(planned, config, "display_name", Value::string(name));
        }
        if let (Ok(Some(mut q)), Ok(Some(cq))) =
            (planned.opt_obj("quotas"), config.opt_obj("quotas"))
        {
            for name in QUOTAS {
                default_if_null(&mut q, &cq, name, Value::uint(default_quota(name)));
            }
            planned.set("quotas", q.into_value());
        }
    }

    async fn create(&self, api: &Api, planned: &Obj) -> Outcome<Obj> {
        let body = CreateTenant {
            name: planned.str("name")?.to_owned(),
            display_name: planned.opt_str("display_name")?.map(str::to_owned),
            quotas: Self::quotas_patch(planned)?,
        };
        let opts = api.write_options();
        let view = api
            .retry(|| api.client.create_tenant(&body, &opts))
            .await
            .map_err(|e| self.api_error("create", &e))?;
        Ok(Self::state(&view, !planned.get("quotas").is_null()))
    }

    async fn read(&self, api: &Api, state: &Obj) -> Outcome<Option<Obj>> {
        let name = state.str("name")?;
        let view = api.retry(|| api.client.get_tenant(name)).await;
        let view = gone_if_not_found(view).map_err(|e| self.api_error("read", &e))?;
        Ok(view.map(|v| Self::state(&v, !state.get("quotas").is_null())))
    }

    async fn update(&self, api: &Api, _prior: &Obj, planned: &Obj) -> Outcome<Obj> {
        let name = planned.str("name")?;
        let body = UpdateTenant {
            display_name: planned.opt_str("display_name")?.map(str::to_owned),
            status: None,
            quotas: Self::quotas_patch(planned)?,
        };
        let opts = api.write_options();
        let view = api
            .retry(|| api.client.update_tenant(name, &body, &opts))
            .await
            .map_err(|e| self.api_error("update", &e))?;
        Ok(Self::state(&view, !planned.get("quotas").is_null()))
    }

    async fn delete(&self, api: &Api, state: &Obj) -> Outcome<()> {
        let name = state.str("name")?;
        let opts = api.write_options();
        let r = api
            .retry(|| api.client.delete_tenant(name, false, &opts))
            .await;
        gone_if_not_found(r).map_err(|e| self.api_error("delete", &e))?;
        Ok(())
    }

    async fn import(&self, api: &Api, id: &str) -> Outcome<Obj> {
        super::import_parts(id, 1, "tenant")?;
        let view = api
            .retry(|| api.client.get_tenant(id))
            .await
            .map_err(|e| self.api_error("import", &e))?;
        // Default quotas import as "not managed", so a configuration without a quotas block
        // plans no change; other quotas import as a block.
        Ok(Self::state(&view, view.quotas != Quotas::default()))
    }
}
