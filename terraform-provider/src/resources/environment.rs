//! `conflux_environment`: an environment (prod, staging, ...) of an app.
//!
//! Import ID: `tenant/app/env`. Destroy refuses (409 `has_children`) while the environment
//! has configs Terraform does not manage.
//!
//! Approval settings (contract section 7) are the optional `approval` block:
//!
//! - With the block, Terraform manages all three settings (`min_approvals` defaults to 1,
//!   `allow_self_approval` to false), and a change made outside Terraform shows as drift.
//! - Without the block on an environment Terraform never managed them for, they are not
//!   managed: Terraform neither reads nor changes them (so adopting this provider version
//!   never switches an approval requirement off).
//! - Removing the block from the configuration is a change: the plan shows the block going
//!   away and the apply sets the defaults (`required = false`): approvals are switched off,
//!   visibly, in the plan a reviewer sees.
//! - Import brings the block in when the environment's settings are not the defaults, so a
//!   configuration without the block then plans to switch them off.

use conflux_api_types::{ApprovalSettings, CreateEnvironment, EnvironmentView, UpdateEnvironment};

use super::{Outcome, Resource, default_if_null, gone_if_not_found, import_parts};
use crate::api::Api;
use crate::protocol::diag::{Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct Environment;

/// The most approvals an environment may require (the server's limit).
const MAX_MIN_APPROVALS: i64 = 10;

impl Environment {
    /// The settings of the planned `approval` block; `None` without one.
    fn approval(planned: &Obj) -> Outcome<Option<ApprovalSettings>> {
        let Some(a) = planned.opt_obj("approval")? else {
            return Ok(None);
        };
        let defaults = ApprovalSettings::default();
        let min = a
            .opt_u64("min_approvals")?
            .unwrap_or(defaults.min_approvals.into());
        Ok(Some(ApprovalSettings {
            required: a.opt_bool("required")?.unwrap_or(defaults.required),
            min_approvals: u32::try_from(min).map_err(|_| {
                Diagnostic::error(
                    "Invalid min_approvals",
                    format!("min_approvals must be between 1 and {MAX_MIN_APPROVALS}"),
                )
                .at(a.attr_path("min_approvals"))
            })?,
            allow_self_approval: a
                .opt_bool("allow_self_approval")?
                .unwrap_or(defaults.allow_self_approval),
        }))
    }

    fn approval_value(a: &ApprovalSettings) -> Value {
        Obj::new()
            .with("required", Value::Bool(a.required))
            .with("min_approvals", Value::uint(a.min_approvals.into()))
            .with("allow_self_approval", Value::Bool(a.allow_self_approval))
            .into_value()
    }

    /// The state for `view`; the `approval` block only when it is managed.
    fn state(view: &EnvironmentView, manage_approval: bool) -> Obj {
        let approval = if manage_approval {
            Self::approval_value(&view.approval)
        } else {
            Value::Null
        };
        Obj::new()
            .with(
                "id",
                Value::string(format!("{}/{}/{}", view.tenant, view.app, view.name)),
            )
            .with("tenant", Value::string(&view.tenant))
            .with("app", Value::string(&view.app))
            .with("name", Value::string(&view.name))
            .with("description", Value::string(&view.description))
            .with("approval", approval)
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
                ))
                .single(
                    "approval",
                    Block::new(
                        "Approval of release changes: with required = true, release rule \
                         changes, publishes and stable_only rollbacks become proposals that \
                         others approve. With this block Terraform manages all three settings \
                         and reports changes made elsewhere; without it they are left as they \
                         are, unless the block was there before: removing it switches approval \
                         off (required = false).",
                    )
                    .attr(Attribute::required(
                        "required",
                        Type::Bool,
                        "Whether release changes need approval.",
                    ))
                    .attr(Attribute::optional_computed(
                        "min_approvals",
                        Type::Number,
                        "Approvals a proposal needs before it executes: 1-10, default 1.",
                    ))
                    .attr(Attribute::optional_computed(
                        "allow_self_approval",
                        Type::Bool,
                        "Whether the proposer's own approval counts; default false.",
                    )),
                ),
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
        if let Ok(Some(a)) = config.opt_obj("approval") {
            validate::int_range(&a, "min_approvals", 1, MAX_MIN_APPROVALS, diags);
        }
    }

    fn replace_on_change(&self) -> &'static [&'static str] {
        &["tenant", "app", "name"]
    }

    fn defaults(&self, planned: &mut Obj, config: &Obj) {
        default_if_null(planned, config, "description", Value::string(""));
        if let (Ok(Some(mut a)), Ok(Some(ca))) =
            (planned.opt_obj("approval"), config.opt_obj("approval"))
        {
            let d = ApprovalSettings::default();
            default_if_null(
                &mut a,
                &ca,
                "min_approvals",
                Value::uint(d.min_approvals.into()),
            );
            default_if_null(
                &mut a,
                &ca,
                "allow_self_approval",
                Value::Bool(d.allow_self_approval),
            );
            planned.set("approval", a.into_value());
        }
    }

    async fn create(&self, api: &Api, planned: &Obj) -> Outcome<Obj> {
        let (tenant, app) = (planned.str("tenant")?, planned.str("app")?);
        let body = CreateEnvironment {
            name: planned.str("name")?.to_owned(),
            description: planned.opt_str("description")?.map(str::to_owned),
            approval: Self::approval(planned)?,
        };
        let opts = api.write_options();
        let view = api
            .retry(|| api.client.create_env(tenant, app, &body, &opts))
            .await
            .map_err(|e| self.api_error("create", &e))?;
        Ok(Self::state(&view, body.approval.is_some()))
    }

    async fn read(&self, api: &Api, state: &Obj) -> Outcome<Option<Obj>> {
        let (tenant, app, name) = (state.str("tenant")?, state.str("app")?, state.str("name")?);
        let view = api.retry(|| api.client.get_env(tenant, app, name)).await;
        let view = gone_if_not_found(view).map_err(|e| self.api_error("read", &e))?;
        let managed = !state.get("approval").is_null();
        Ok(view.map(|v| Self::state(&v, managed)))
    }

    async fn update(&self, api: &Api, prior: &Obj, planned: &Obj) -> Outcome<Obj> {
        let (tenant, app, name) = (
            planned.str("tenant")?,
            planned.str("app")?,
            planned.str("name")?,
        );
        let approval = match Self::approval(planned)? {
            Some(a) => Some(a),
            // The block was removed: approvals off (see the module's doc).
            None if !prior.get("approval").is_null() => Some(ApprovalSettings::default()),
            None => None,
        };
        let body = UpdateEnvironment {
            description: planned.opt_str("description")?.map(str::to_owned),
            approval,
        };
        let opts = api.write_options();
        let view = api
            .retry(|| api.client.update_env(tenant, app, name, &body, &opts))
            .await
            .map_err(|e| self.api_error("update", &e))?;
        Ok(Self::state(&view, !planned.get("approval").is_null()))
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
        // Default settings import as "not managed", so a configuration without the block
        // plans no change; others import as a block.
        Ok(Self::state(
            &view,
            view.approval != ApprovalSettings::default(),
        ))
    }
}
