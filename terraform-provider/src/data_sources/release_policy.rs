//! Data source `conflux_release_policy`: the current release rules of a config.

use super::{DataSource, rule_type, rule_value};
use crate::api::Api;
use crate::protocol::diag::Diagnostics;
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct ReleasePolicyData;

#[tonic::async_trait]
impl DataSource for ReleasePolicyData {
    fn type_name(&self) -> &'static str {
        "conflux_release_policy"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new("The release rules of a config, in order.")
                .attr(Attribute::required(
                    "config_id",
                    Type::Number,
                    "The config id.",
                ))
                .attr(Attribute::computed(
                    "rules",
                    Type::list(rule_type()),
                    "The rules: labels, percent, version_id, priority.",
                ))
                .attr(Attribute::computed(
                    "revision",
                    Type::Number,
                    "The config's revision.",
                )),
        )
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        validate::int_range(config, "config_id", 1, i64::MAX, diags);
    }

    async fn read(&self, api: &Api, config: &Obj) -> Result<Obj, Diagnostics> {
        let config_id = config.u64("config_id")?;
        let view = api
            .retry(|| api.client.get_releases(config_id))
            .await
            .map_err(|e| self.api_error(&e))?;
        Ok(config
            .clone()
            .with(
                "rules",
                Value::List(view.releases.iter().map(rule_value).collect()),
            )
            .with("revision", Value::uint(view.revision)))
    }
}
