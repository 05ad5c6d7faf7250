//! Data sources: read-only views of Conflux, one file each, driven by the protocol layer
//! through [`DataSource`].

mod config;
mod release_policy;
mod resolved_version;

use std::sync::Arc;

use conflux_client::ClientError;

use crate::api::Api;
use crate::client_errors::{self, Renames};
use crate::protocol::diag::Diagnostics;
use crate::protocol::schema::Schema;
use crate::protocol::value::Obj;

/// Every data source of the provider.
pub fn all() -> Vec<Arc<dyn DataSource>> {
    vec![
        Arc::new(config::ConfigData),
        Arc::new(release_policy::ReleasePolicyData),
        Arc::new(resolved_version::ResolvedVersion),
    ]
}

#[tonic::async_trait]
pub trait DataSource: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;

    fn schema(&self) -> Schema;

    fn renames(&self) -> Renames {
        &[]
    }

    /// Plan-time checks of the configuration; values may still be unknown.
    fn validate(&self, config: &Obj, diags: &mut Diagnostics);

    /// The configuration with its computed attributes filled in.
    async fn read(&self, api: &Api, config: &Obj) -> Result<Obj, Diagnostics>;

    fn api_error(&self, err: &ClientError) -> Diagnostics {
        client_errors::diagnostic(
            &format!("read data source {}", self.type_name()),
            err,
            &self.schema().block,
            self.renames(),
        )
        .into()
    }
}

/// The object type of one release rule in data sources.
pub fn rule_type() -> crate::protocol::value::Type {
    use crate::protocol::value::Type;
    Type::object([
        ("labels", Type::map(Type::String)),
        ("percent", Type::Number),
        ("version_id", Type::Number),
        ("priority", Type::Number),
    ])
}

/// One release rule as a data-source value.
pub fn rule_value(r: &conflux_domain::ReleaseRule) -> crate::protocol::value::Value {
    use crate::protocol::value::Value;
    Obj::new()
        .with("labels", Value::string_map(&r.labels))
        .with(
            "percent",
            r.percent.map_or(Value::Null, |p| Value::int(i64::from(p))),
        )
        .with("version_id", Value::uint(r.version_id))
        .with("priority", Value::int(i64::from(r.priority)))
        .into_value()
}
