//! Data source `conflux_config`: a config looked up by its path.

use super::DataSource;
use crate::api::Api;
use crate::client_errors::Renames;
use crate::protocol::diag::Diagnostics;
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct ConfigData;

#[tonic::async_trait]
impl DataSource for ConfigData {
    fn type_name(&self) -> &'static str {
        "conflux_config"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new("A config, by its path tenant/application/environment/name.")
                .attr(Attribute::required("tenant", Type::String, "Tenant name."))
                .attr(Attribute::required(
                    "application",
                    Type::String,
                    "App name.",
                ))
                .attr(Attribute::required(
                    "environment",
                    Type::String,
                    "Environment name.",
                ))
                .attr(Attribute::required("name", Type::String, "Config name."))
                .attr(Attribute::computed(
                    "id",
                    Type::Number,
                    "The numeric config id.",
                ))
                .attr(Attribute::computed(
                    "path",
                    Type::String,
                    "tenant/app/env/name.",
                ))
                .attr(Attribute::computed("format", Type::String, "The format."))
                .attr(Attribute::computed(
                    "schema",
                    Type::String,
                    "The JSON Schema as JSON text, or null.",
                ))
                .attr(Attribute::computed(
                    "description",
                    Type::String,
                    "Description.",
                ))
                .attr(Attribute::computed(
                    "latest_version",
                    Type::Number,
                    "Newest version number (0 before the first).",
                ))
                .attr(Attribute::computed(
                    "revision",
                    Type::Number,
                    "Revision of the config's last change.",
                )),
        )
    }

    fn renames(&self) -> Renames {
        &[("app", "application"), ("env", "environment")]
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        validate::name(config, "tenant", diags);
        validate::name(config, "application", diags);
        validate::name(config, "environment", diags);
        validate::config_name(config, "name", diags);
    }

    async fn read(&self, api: &Api, config: &Obj) -> Result<Obj, Diagnostics> {
        let path = conflux_client::ConfigPath::new(
            config.str("tenant")?,
            config.str("application")?,
            config.str("environment")?,
            config.str("name")?,
        );
        let view = api
            .retry(|| api.client.get_config_by_path(&path))
            .await
            .map_err(|e| self.api_error(&e))?;
        Ok(config
            .clone()
            .with("id", Value::uint(view.id))
            .with("path", Value::string(&view.path))
            .with("format", Value::string(view.format.as_str()))
            .with(
                "schema",
                Value::opt_string(view.schema.as_ref().map(|s| s.to_string())),
            )
            .with("description", Value::string(&view.description))
            .with("latest_version", Value::uint(view.latest_version))
            .with("revision", Value::uint(view.revision)))
    }
}
