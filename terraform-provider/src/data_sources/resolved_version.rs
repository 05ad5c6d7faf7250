//! Data source `conflux_resolved_version`: which version a client with the given labels
//! (and client id) receives, as the server's resolve simulator answers.

use std::collections::BTreeMap;

use super::{DataSource, rule_type, rule_value};
use crate::api::Api;
use crate::client_errors::Renames;
use crate::protocol::diag::Diagnostics;
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct ResolvedVersion;

#[tonic::async_trait]
impl DataSource for ResolvedVersion {
    fn type_name(&self) -> &'static str {
        "conflux_resolved_version"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new("The version a client with these labels receives from a config.")
                .attr(Attribute::required(
                    "config_id",
                    Type::Number,
                    "The config id.",
                ))
                .attr(Attribute::optional(
                    "labels",
                    Type::map(Type::String),
                    "The client's labels (as X-Client-Label-* headers).",
                ))
                .attr(Attribute::optional(
                    "client_id",
                    Type::String,
                    "The client id (percentage rules bucket clients by it).",
                ))
                .attr(Attribute::computed(
                    "version_id",
                    Type::Number,
                    "The version served.",
                ))
                .attr(Attribute::computed(
                    "rule_index",
                    Type::Number,
                    "Position of the matching rule in the rule list.",
                ))
                .attr(Attribute::computed(
                    "rule",
                    rule_type(),
                    "The matching rule.",
                )),
        )
    }

    fn renames(&self) -> Renames {
        &[("id", "config_id")]
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        validate::int_range(config, "config_id", 1, i64::MAX, diags);
        validate::labels(config, "labels", diags);
        validate::max_len(
            config,
            "client_id",
            conflux_domain::MAX_LABEL_VALUE_LEN,
            diags,
        );
    }

    async fn read(&self, api: &Api, config: &Obj) -> Result<Obj, Diagnostics> {
        let config_id = config.u64("config_id")?;
        let labels: BTreeMap<String, String> = config.string_map("labels")?;
        let client_id = config.opt_str("client_id")?;
        let r = api
            .retry(|| api.client.resolve(config_id, &labels, client_id))
            .await
            .map_err(|e| self.api_error(&e))?;
        Ok(config
            .clone()
            .with("version_id", Value::uint(r.version_id))
            .with(
                "rule_index",
                Value::uint(u64::try_from(r.rule_index).unwrap_or(u64::MAX)),
            )
            .with("rule", rule_value(&r.rule)))
    }
}
