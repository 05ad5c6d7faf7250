//! Managed resources: one file per resource type, each with its schema, plan-time
//! validation, CRUD against the Conflux API, and import.
//!
//! The [`Resource`] trait is what the protocol layer (`server.rs`) drives; planning rules
//! that every resource shares (unknown computed values on create, replacement when an
//! identifying attribute changes, "no change" when nothing changed) live in [`plan`] so each
//! resource only states its own facts: which attributes force replacement, which computed
//! values change on update, and its defaults.

mod app;
mod approval;
pub(crate) mod config;
mod environment;
mod release;
mod release_policy;
mod role_binding;
mod service_token;
mod tenant;
mod webhook;

use std::sync::Arc;

use conflux_client::ClientError;

use crate::api::Api;
use crate::client_errors::{self, Renames};
use crate::protocol::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::protocol::schema::{Block, Nesting, Schema};
use crate::protocol::value::{Obj, Value};

/// Every resource type of the provider.
pub fn all() -> Vec<Arc<dyn Resource>> {
    vec![
        Arc::new(tenant::Tenant),
        Arc::new(app::App),
        Arc::new(environment::Environment),
        Arc::new(config::Config),
        Arc::new(release::Release),
        Arc::new(release_policy::ReleasePolicy),
        Arc::new(service_token::ServiceToken),
        Arc::new(role_binding::RoleBinding),
        Arc::new(webhook::Webhook),
    ]
}

pub type Outcome<T> = Result<T, Diagnostics>;

#[tonic::async_trait]
pub trait Resource: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;

    fn schema(&self) -> Schema;

    /// How server field names map to this resource's attributes (see `client_errors`).
    fn renames(&self) -> Renames {
        &[]
    }

    /// Plan-time checks of the configuration; values may still be unknown.
    fn validate(&self, config: &Obj, diags: &mut Diagnostics);

    /// Attributes whose change replaces the object instead of updating it.
    fn replace_on_change(&self) -> &'static [&'static str];

    /// Computed attributes whose value changes with every update.
    fn unknown_on_update(&self) -> &'static [&'static str] {
        &[]
    }

    /// Sets the defaults of optional+computed attributes the configuration leaves null.
    fn defaults(&self, _planned: &mut Obj, _config: &Obj) {}

    /// Checks that need the server at plan time (planned values may be unknown).
    async fn check_plan(&self, _api: &Api, _planned: &Obj, _prior: Option<&Obj>) -> Outcome<()> {
        Ok(())
    }

    async fn create(&self, api: &Api, planned: &Obj) -> Outcome<Obj>;

    /// The object as it is now, or `None` when it no longer exists.
    async fn read(&self, api: &Api, state: &Obj) -> Outcome<Option<Obj>>;

    async fn update(&self, api: &Api, prior: &Obj, planned: &Obj) -> Outcome<Obj>;

    async fn delete(&self, api: &Api, state: &Obj) -> Outcome<()>;

    /// The state of an existing object named by an import ID.
    async fn import(&self, api: &Api, id: &str) -> Outcome<Obj>;

    /// The diagnostic for a failed API call.
    fn api_error(&self, action: &str, err: &ClientError) -> Diagnostics {
        client_errors::diagnostic(
            &format!("{action} {}", self.type_name()),
            err,
            &self.schema().block,
            self.renames(),
        )
        .into()
    }
}

/// The planned new state and the attributes that force replacement.
pub fn plan(
    resource: &dyn Resource,
    schema: &Schema,
    prior: Option<&Obj>,
    proposed: Obj,
    config: &Obj,
) -> (Obj, Vec<AttrPath>) {
    let mut planned = proposed;
    // A single nested block the configuration leaves out is absent from the plan too.
    for b in &schema.block.blocks {
        if b.nesting == Nesting::Single && config.get(b.name).is_null() {
            planned.set(b.name, Value::Null);
        }
    }
    resource.defaults(&mut planned, config);
    let Some(prior) = prior else {
        unknown_computed(&schema.block, &mut planned.attrs);
        return (planned, Vec::new());
    };
    let changed = planned
        .attrs
        .keys()
        .chain(prior.attrs.keys())
        .any(|k| planned.get(k) != prior.get(k));
    if !changed {
        return (prior.clone(), Vec::new());
    }
    let replace: Vec<AttrPath> = resource
        .replace_on_change()
        .iter()
        .filter(|a| planned.get(a) != prior.get(a))
        .map(|a| AttrPath::root(a))
        .collect();
    for a in resource.unknown_on_update() {
        planned.set(a, Value::Unknown);
    }
    (planned, replace)
}

/// On create, computed attributes the configuration (and defaults) leave null are unknown.
fn unknown_computed(block: &Block, attrs: &mut std::collections::BTreeMap<String, Value>) {
    for a in &block.attributes {
        if a.is_computed() {
            let v = attrs.entry(a.name.to_owned()).or_default();
            if v.is_null() {
                *v = Value::Unknown;
            }
        }
    }
    for b in &block.blocks {
        match (b.nesting, attrs.get_mut(b.name)) {
            (Nesting::Single, Some(Value::Object(inner))) => unknown_computed(&b.block, inner),
            (Nesting::List, Some(Value::List(items))) => {
                for item in items {
                    if let Value::Object(inner) = item {
                        unknown_computed(&b.block, inner);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Sets `attr` to `default` when the configuration leaves it null.
pub fn default_if_null(planned: &mut Obj, config: &Obj, attr: &str, default: Value) {
    if config.get(attr).is_null() && !default.is_null() {
        planned.set(attr, default);
    }
}

/// Splits an import ID into exactly `n` `/`-separated non-empty parts.
pub fn import_parts<'a>(id: &'a str, n: usize, shape: &str) -> Outcome<Vec<&'a str>> {
    let parts: Vec<&str> = id.split('/').collect();
    if parts.len() != n || parts.iter().any(|p| p.is_empty()) {
        return Err(Diagnostic::error(
            "Invalid import ID",
            format!("{id:?} is not of the form {shape}"),
        )
        .into());
    }
    Ok(parts)
}

/// Reads that answer 404 mean the object is gone (Terraform plans to create it again).
pub fn gone_if_not_found<T>(r: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The user's own text for a JSON document when it means the same as the server's, so
/// formatting and key order never show as a change.
pub fn same_json_or(server: &serde_json::Value, ours: Option<&str>) -> String {
    if let Some(text) = ours
        && serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .as_ref()
            == Some(server)
    {
        return text.to_owned();
    }
    server.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::schema::Attribute;
    use crate::protocol::value::Type;

    struct Fake;

    #[tonic::async_trait]
    impl Resource for Fake {
        fn type_name(&self) -> &'static str {
            "fake"
        }
        fn schema(&self) -> Schema {
            Schema::new(
                Block::new("")
                    .attr(Attribute::required("name", Type::String, ""))
                    .attr(Attribute::optional_computed(
                        "description",
                        Type::String,
                        "",
                    ))
                    .attr(Attribute::computed("id", Type::String, ""))
                    .attr(Attribute::computed("revision", Type::Number, ""))
                    .single(
                        "quotas",
                        Block::new("").attr(Attribute::optional_computed("max", Type::Number, "")),
                    ),
            )
        }
        fn validate(&self, _: &Obj, _: &mut Diagnostics) {}
        fn replace_on_change(&self) -> &'static [&'static str] {
            &["name"]
        }
        fn unknown_on_update(&self) -> &'static [&'static str] {
            &["revision"]
        }
        fn defaults(&self, planned: &mut Obj, config: &Obj) {
            default_if_null(planned, config, "description", Value::string(""));
        }
        async fn create(&self, _: &Api, p: &Obj) -> Outcome<Obj> {
            Ok(p.clone())
        }
        async fn read(&self, _: &Api, s: &Obj) -> Outcome<Option<Obj>> {
            Ok(Some(s.clone()))
        }
        async fn update(&self, _: &Api, _: &Obj, p: &Obj) -> Outcome<Obj> {
            Ok(p.clone())
        }
        async fn delete(&self, _: &Api, _: &Obj) -> Outcome<()> {
            Ok(())
        }
        async fn import(&self, _: &Api, _: &str) -> Outcome<Obj> {
            Ok(Obj::new())
        }
    }

    #[test]
    fn create_plans_defaults_and_unknown_computed_values() {
        let config = Obj::of(&[
            ("name", Value::string("a")),
            (
                "quotas",
                Value::Object([("max".to_owned(), Value::Null)].into_iter().collect()),
            ),
        ]);
        let (planned, replace) = plan(&Fake, &Fake.schema(), None, config.clone(), &config);
        assert!(replace.is_empty());
        assert_eq!(planned.get("description"), &Value::string(""));
        assert_eq!(planned.get("id"), &Value::Unknown);
        let Value::Object(q) = planned.get("quotas") else {
            panic!()
        };
        assert_eq!(q["max"], Value::Unknown);
    }

    #[test]
    fn unchanged_plans_are_the_prior_state() {
        let prior = Obj::of(&[
            ("name", Value::string("a")),
            ("description", Value::string("")),
            ("id", Value::string("a")),
            ("revision", Value::int(4)),
        ]);
        let config = Obj::of(&[("name", Value::string("a"))]);
        let (planned, replace) = plan(&Fake, &Fake.schema(), Some(&prior), prior.clone(), &config);
        assert_eq!(planned, prior);
        assert!(replace.is_empty());
    }

    #[test]
    fn changes_update_or_replace() {
        let prior = Obj::of(&[
            ("name", Value::string("a")),
            ("description", Value::string("")),
            ("id", Value::string("a")),
            ("revision", Value::int(4)),
        ]);
        let mut proposed = prior.clone();
        proposed.set("description", Value::string("new"));
        let config = Obj::of(&[
            ("name", Value::string("a")),
            ("description", Value::string("new")),
        ]);
        let (planned, replace) = plan(&Fake, &Fake.schema(), Some(&prior), proposed, &config);
        assert!(replace.is_empty());
        assert_eq!(planned.get("revision"), &Value::Unknown);
        assert_eq!(planned.get("id"), &Value::string("a"));

        let mut proposed = prior.clone();
        proposed.set("name", Value::string("b"));
        let config = Obj::of(&[("name", Value::string("b"))]);
        let (_, replace) = plan(&Fake, &Fake.schema(), Some(&prior), proposed, &config);
        assert_eq!(replace, vec![AttrPath::root("name")]);
    }

    #[test]
    fn import_ids_need_their_shape() {
        assert_eq!(import_parts("a/b", 2, "t/a").unwrap(), vec!["a", "b"]);
        assert!(import_parts("a", 2, "t/a").is_err());
        assert!(import_parts("a//b", 3, "t/a/e").is_err());
    }

    #[test]
    fn equivalent_json_keeps_the_users_text() {
        let server = serde_json::json!({"type": "object", "required": ["a"]});
        let ours = "{\n  \"required\": [\"a\"],\n  \"type\": \"object\"\n}";
        assert_eq!(same_json_or(&server, Some(ours)), ours);
        assert_eq!(
            same_json_or(&server, Some("{}")),
            r#"{"required":["a"],"type":"object"}"#
        );
    }
}
