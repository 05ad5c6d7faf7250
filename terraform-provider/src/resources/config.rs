//! `conflux_config`: a config (`tenant/app/env/name`) with its format, optional JSON Schema,
//! retention policy and description. Exports the numeric `id` that releases and release
//! policies refer to.
//!
//! Import ID: `tenant/app/env/name` (or the numeric id). Destroy deletes the config with all
//! its versions and rules.

use conflux_api_types::{ConfigView, CreateConfig, UpdateConfig};
use conflux_domain::{
    ConfigPath, Format, RetentionKind, RetentionPolicy, RetentionRule, RetentionStrategy,
};

use super::{Outcome, Resource, default_if_null, gone_if_not_found, same_json_or};
use crate::api::Api;
use crate::client_errors::Renames;
use crate::protocol::diag::{Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct Config;

/// Days rules keep at most this many days (the server's limit).
const MAX_RETENTION_DAYS: i64 = 36_500;

impl Config {
    fn state(view: &ConfigView, schema_text: Option<&str>) -> Obj {
        let retention = match &view.retention {
            None => Value::Null,
            Some(r) => Obj::new()
                .with(
                    "strategy",
                    Value::string(match r.strategy {
                        RetentionStrategy::And => "and",
                        RetentionStrategy::Or => "or",
                    }),
                )
                .with(
                    "rule",
                    Value::List(
                        r.rules
                            .iter()
                            .map(|rule| {
                                Obj::new()
                                    .with(
                                        "type",
                                        Value::string(match rule.kind {
                                            RetentionKind::Count => "count",
                                            RetentionKind::Days => "days",
                                        }),
                                    )
                                    .with("keep", Value::uint(rule.keep))
                                    .into_value()
                            })
                            .collect(),
                    ),
                )
                .into_value(),
        };
        Obj::new()
            .with("id", Value::uint(view.id))
            .with("tenant", Value::string(&view.tenant))
            .with("application", Value::string(&view.app))
            .with("environment", Value::string(&view.env))
            .with("name", Value::string(&view.name))
            .with("path", Value::string(&view.path))
            .with("format", Value::string(view.format.as_str()))
            .with(
                "schema",
                Value::opt_string(view.schema.as_ref().map(|s| same_json_or(s, schema_text))),
            )
            .with("retention_policy", retention)
            .with("description", Value::string(&view.description))
            .with("encrypted", Value::Bool(view.encrypted))
    }

    fn schema_json(planned: &Obj) -> Outcome<Option<serde_json::Value>> {
        planned
            .opt_str("schema")?
            .map(|text| {
                serde_json::from_str(text).map_err(|e| {
                    Diagnostic::error("Invalid schema", format!("not valid JSON: {e}"))
                        .at(planned.attr_path("schema"))
                        .into()
                })
            })
            .transpose()
    }

    fn retention(planned: &Obj) -> Outcome<Option<RetentionPolicy>> {
        let Some(r) = planned.opt_obj("retention_policy")? else {
            return Ok(None);
        };
        let strategy = match r.str("strategy")? {
            "and" => RetentionStrategy::And,
            _ => RetentionStrategy::Or,
        };
        let rules = r
            .obj_list("rule")?
            .iter()
            .map(|rule| {
                Ok(RetentionRule {
                    kind: match rule.str("type")? {
                        "count" => RetentionKind::Count,
                        _ => RetentionKind::Days,
                    },
                    keep: rule.u64("keep")?,
                })
            })
            .collect::<Result<_, Diagnostic>>()?;
        Ok(Some(RetentionPolicy { strategy, rules }))
    }
}

#[tonic::async_trait]
impl Resource for Config {
    fn type_name(&self) -> &'static str {
        "conflux_config"
    }

    fn schema(&self) -> Schema {
        let rule = Block::new("One retention rule.")
            .attr(Attribute::required(
                "type",
                Type::String,
                "count (keep the newest N versions) or days (keep versions younger than N days).",
            ))
            .attr(Attribute::required("keep", Type::Number, "N, at least 1."));
        let retention = Block::new(
            "Which old versions retention purges. The latest version and every version a \
             release rule uses are always kept.",
        )
        .attr(Attribute::required(
            "strategy",
            Type::String,
            "and: a version is kept only if every rule keeps it; or: if any rule keeps it.",
        ))
        .list("rule", rule, 1, 16);
        Schema::new(
            Block::new(
                "A config of an environment. Import with `tenant/app/env/name` or the numeric id.",
            )
            .attr(Attribute::computed(
                "id",
                Type::Number,
                "The config's numeric id (config_id of releases and release policies).",
            ))
            .attr(Attribute::required(
                "tenant",
                Type::String,
                "The tenant's name. Changing it replaces the config.",
            ))
            .attr(Attribute::required(
                "application",
                Type::String,
                "The app's name. Changing it replaces the config.",
            ))
            .attr(Attribute::required(
                "environment",
                Type::String,
                "The environment's name. Changing it replaces the config.",
            ))
            .attr(Attribute::required(
                "name",
                Type::String,
                "Config name such as app.yaml: letters, digits, '.', '_' and '-', 1-128 characters. Changing it replaces the config.",
            ))
            .attr(Attribute::computed(
                "path",
                Type::String,
                "tenant/app/env/name.",
            ))
            .attr(Attribute::required(
                "format",
                Type::String,
                "json, yaml, toml, xml, ini, properties or text. Changing it replaces the config.",
            ))
            .attr(Attribute::optional(
                "schema",
                Type::String,
                "A JSON Schema (JSON text, e.g. jsonencode({...})) every new version must satisfy; not for xml and text.",
            ))
            .attr(Attribute::optional_computed(
                "description",
                Type::String,
                "Free text (at most 1024 bytes); empty by default.",
            ))
            .attr(Attribute::optional_computed(
                "encrypted",
                Type::Bool,
                "Keep every version's content envelope-encrypted at rest (AES-256-GCM, data keys wrapped by the cluster's KMS); false by default. Fixed when the config is created: changing it replaces the config (and its versions).",
            ))
            .single("retention_policy", retention),
        )
    }

    fn renames(&self) -> Renames {
        &[
            ("app", "application"),
            ("env", "environment"),
            ("retention", "retention_policy"),
            ("rules", "rule"),
        ]
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        validate::name(config, "tenant", diags);
        validate::name(config, "application", diags);
        validate::name(config, "environment", diags);
        validate::config_name(config, "name", diags);
        let format = validate::format(config, "format", diags);
        validate::max_len(
            config,
            "description",
            validate::MAX_DESCRIPTION_BYTES,
            diags,
        );
        if validate::json_schema(config, "schema", diags)
            && let Some(f) = format
            && !f.supports_schema()
        {
            diags.push(
                Diagnostic::error(
                    "Invalid schema",
                    format!("{f} configs cannot have a JSON Schema"),
                )
                .at(config.attr_path("schema")),
            );
        }
        if let Ok(Some(r)) = config.opt_obj("retention_policy") {
            validate::one_of(&r, "strategy", &["and", "or"], diags);
            for rule in r.obj_list("rule").unwrap_or_default() {
                validate::one_of(&rule, "type", &["count", "days"], diags);
                let max = if rule.known_str("type") == Some("days") {
                    MAX_RETENTION_DAYS
                } else {
                    i64::MAX
                };
                validate::int_range(&rule, "keep", 1, max, diags);
            }
        }
    }

    fn replace_on_change(&self) -> &'static [&'static str] {
        &[
            "tenant",
            "application",
            "environment",
            "name",
            "format",
            "encrypted",
        ]
    }

    fn defaults(&self, planned: &mut Obj, config: &Obj) {
        default_if_null(planned, config, "description", Value::string(""));
        default_if_null(planned, config, "encrypted", Value::Bool(false));
        if let (Some(t), Some(a), Some(e), Some(n)) = (
            config.known_str("tenant"),
            config.known_str("application"),
            config.known_str("environment"),
            config.known_str("name"),
        ) {
            planned.set("path", Value::string(format!("{t}/{a}/{e}/{n}")));
        }
    }

    async fn create(&self, api: &Api, planned: &Obj) -> Outcome<Obj> {
        let format: Format = planned.str("format")?.parse().map_err(|e: String| {
            Diagnostic::error("Invalid format", e).at(planned.attr_path("format"))
        })?;
        let (tenant, app, env) = (
            planned.str("tenant")?,
            planned.str("application")?,
            planned.str("environment")?,
        );
        let body = CreateConfig {
            name: planned.str("name")?.to_owned(),
            format,
            schema: Self::schema_json(planned)?,
            retention: Self::retention(planned)?,
            description: planned.opt_str("description")?.map(str::to_owned),
            encrypted: planned.opt_bool("encrypted")?.unwrap_or(false),
        };
        let opts = api.write_options();
        let view = api
            .retry(|| api.client.create_config(tenant, app, env, &body, &opts))
            .await
            .map_err(|e| self.api_error("create", &e))?;
        Ok(Self::state(&view, planned.opt_str("schema")?))
    }

    async fn read(&self, api: &Api, state: &Obj) -> Outcome<Option<Obj>> {
        let id = state.u64("id")?;
        let view = api.retry(|| api.client.get_config(id)).await;
        let view = gone_if_not_found(view).map_err(|e| self.api_error("read", &e))?;
        Ok(view.map(|v| Self::state(&v, state.opt_str("schema").ok().flatten())))
    }

    async fn update(&self, api: &Api, prior: &Obj, planned: &Obj) -> Outcome<Obj> {
        let id = prior.u64("id")?;
        let mut body = UpdateConfig {
            description: planned.opt_str("description")?.map(str::to_owned),
            ..UpdateConfig::default()
        };
        if planned.get("schema") != prior.get("schema") {
            body.schema = Some(Self::schema_json(planned)?);
        }
        if planned.get("retention_policy") != prior.get("retention_policy") {
            body.retention = Some(Self::retention(planned)?);
        }
        let opts = api.write_options();
        let view = api
            .retry(|| api.client.update_config(id, &body, &opts))
            .await
            .map_err(|e| self.api_error("update", &e))?;
        Ok(Self::state(&view, planned.opt_str("schema")?))
    }

    async fn delete(&self, api: &Api, state: &Obj) -> Outcome<()> {
        let id = state.u64("id")?;
        let opts = api.write_options();
        let r = api.retry(|| api.client.delete_config(id, &opts)).await;
        gone_if_not_found(r).map_err(|e| self.api_error("delete", &e))?;
        Ok(())
    }

    async fn import(&self, api: &Api, id: &str) -> Outcome<Obj> {
        let view = match id.parse::<u64>() {
            Ok(n) => api.retry(|| api.client.get_config(n)).await,
            Err(_) => {
                let path = config_path(id)?;
                api.retry(|| api.client.get_config_by_path(&path)).await
            }
        }
        .map_err(|e| self.api_error("import", &e))?;
        Ok(Self::state(&view, None))
    }
}

/// `tenant/app/env/name`, each part checked against the naming rules.
pub fn config_path(id: &str) -> Outcome<ConfigPath> {
    ConfigPath::parse(id).map_err(|e| {
        Diagnostic::error(
            "Invalid import ID",
            format!("expected tenant/app/env/name or a numeric config id: {e}"),
        )
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Obj {
        Obj::new()
            .with("tenant", Value::string("acme"))
            .with("application", Value::string("checkout"))
            .with("environment", Value::string("prod"))
            .with("name", Value::string("app.yaml"))
            .with("format", Value::string("yaml"))
    }

    fn errors_at(o: &Obj) -> Vec<String> {
        let mut d = Diagnostics::default();
        Config.validate(o, &mut d);
        d.0.iter()
            .map(|x| {
                x.attribute
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn a_valid_config_passes() {
        assert!(errors_at(&base()).is_empty());
    }

    #[test]
    fn every_attribute_is_checked() {
        let o = base()
            .with("environment", Value::string("Prod"))
            .with("name", Value::string(".hidden"))
            .with("format", Value::string("yml"));
        assert_eq!(errors_at(&o), ["environment", "name", "format"]);

        let o = base()
            .with("format", Value::string("text"))
            .with("schema", Value::string(r#"{"type": "object"}"#));
        assert_eq!(errors_at(&o), ["schema"]);

        let retention = Obj::new()
            .with("strategy", Value::string("xor"))
            .with(
                "rule",
                Value::List(vec![
                    Obj::new()
                        .with("type", Value::string("days"))
                        .with("keep", Value::int(40_000))
                        .into_value(),
                ]),
            )
            .into_value();
        let o = base().with("retention_policy", retention);
        assert_eq!(
            errors_at(&o),
            ["retention_policy.strategy", "retention_policy.rule[0].keep"]
        );
    }

    #[test]
    fn server_views_become_state() {
        let view = ConfigView {
            id: 7,
            tenant: "acme".into(),
            app: "checkout".into(),
            env: "prod".into(),
            name: "app.yaml".into(),
            path: "acme/checkout/prod/app.yaml".into(),
            format: Format::Yaml,
            schema: Some(serde_json::json!({"type": "object"})),
            retention: Some(RetentionPolicy {
                strategy: RetentionStrategy::Or,
                rules: vec![RetentionRule {
                    kind: RetentionKind::Count,
                    keep: 3,
                }],
            }),
            description: String::new(),
            latest_version: 0,
            revision: 4,
            created_at: String::new(),
            updated_at: String::new(),
            encrypted: true,
        };
        let s = Config::state(&view, Some("{ \"type\" : \"object\" }"));
        assert_eq!(s.get("encrypted"), &Value::Bool(true));
        assert_eq!(s.get("id"), &Value::int(7));
        assert_eq!(s.get("schema"), &Value::string("{ \"type\" : \"object\" }"));
        assert_eq!(s.get("application"), &Value::string("checkout"));
        let r = Config::retention(&s).unwrap().unwrap();
        assert_eq!(Some(r), view.retention);
    }
}
