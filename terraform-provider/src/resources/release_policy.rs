//! `conflux_release_policy`: the whole, ordered release-rule list of one config.
//!
//! Writes are optimistic: the provider reads the current rules and their revision, refuses
//! to go on if they are not what Terraform last saw (someone changed them outside Terraform
//! since the refresh: run plan again and the change shows as drift), and writes the new list
//! with `If-Match: <revision>`, so a change that lands in between is a 409, never a silent
//! overwrite. A 409 caused by something else on the config (a new version) is retried after
//! a fresh read. Destroy removes every rule (the config is then unpublished).
//!
//! In an environment that requires approval, a rule write becomes a proposal; create,
//! update and destroy wait for it (see `approval.rs`, bounded by
//! `timeouts { create update delete }`), read the rules back once it executed, and fail
//! naming the proposal if it is rejected, canceled, fails (`stale`: the config changed
//! meanwhile) or is not decided in time.
//!
//! Import ID: `tenant/app/env/name` (or the numeric config id).

use conflux_api_types::{PutReleases, ReleasesView};
use conflux_domain::{MAX_RULES_PER_CONFIG, ReleaseRule};

use super::approval::{self, Operation, WriteError};
use super::{Outcome, Resource, gone_if_not_found};
use crate::api::Api;
use crate::client_errors::Renames;
use crate::protocol::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct ReleasePolicy;

/// The operations that write rules, and so may wait for an approval.
const OPERATIONS: [Operation; 3] = [Operation::Create, Operation::Update, Operation::Delete];

/// Fresh reads after a revision mismatch caused by a change that left the rules alone.
const MAX_WRITE_ATTEMPTS: usize = 3;

/// The rules of a planned or prior state, in order.
pub fn rules_from_obj(obj: &Obj) -> Outcome<Vec<ReleaseRule>> {
    obj.obj_list("rule")?
        .iter()
        .map(|r| {
            let percent = r
                .opt_u64("percent")?
                .map(|p| {
                    u8::try_from(p).map_err(|_| {
                        Diagnostic::error("Invalid percent", "percent must be between 0 and 100")
                            .at(r.attr_path("percent"))
                    })
                })
                .transpose()?;
            let priority = r.opt_i64("priority")?.unwrap_or(0);
            Ok(ReleaseRule {
                labels: r.string_map("labels")?,
                percent,
                version_id: r.u64("version_id")?,
                priority: i32::try_from(priority).map_err(|_| {
                    Diagnostic::error("Invalid priority", "priority must fit in 32 bits")
                        .at(r.attr_path("priority"))
                })?,
            })
        })
        .collect()
}

impl ReleasePolicy {
    /// The state for `view`. Empty labels keep the form (null or `{}`) they had in `like`.
    fn state(view: &ReleasesView, like: Option<&Obj>) -> Obj {
        let state = Self::rules_state(view, like);
        match like {
            Some(like) => approval::keep_timeouts(state, like),
            None => state.with("timeouts", Value::Null),
        }
    }

    fn rules_state(view: &ReleasesView, like: Option<&Obj>) -> Obj {
        let like_rules = like
            .and_then(|o| o.obj_list("rule").ok())
            .unwrap_or_default();
        let rules = view
            .releases
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let labels = if r.labels.is_empty() {
                    match like_rules.get(i).map(|l| l.get("labels")) {
                        Some(Value::Map(_)) => Value::Map(Default::default()),
                        _ => Value::Null,
                    }
                } else {
                    Value::string_map(&r.labels)
                };
                Obj::new()
                    .with("labels", labels)
                    .with(
                        "percent",
                        r.percent.map_or(Value::Null, |p| Value::int(i64::from(p))),
                    )
                    .with("version_id", Value::uint(r.version_id))
                    .with("priority", Value::int(i64::from(r.priority)))
                    .into_value()
            })
            .collect();
        Obj::new()
            .with("id", Value::string(view.config_id.to_string()))
            .with("config_id", Value::uint(view.config_id))
            .with("rule", Value::List(rules))
            .with("revision", Value::uint(view.revision))
    }

    /// Replaces the rule list with `rules`, guarded as the module explains. `expected` is
    /// what Terraform last saw (`None`: take over whatever is there). A write that becomes a
    /// proposal is waited for, at most `limit`.
    async fn write(
        &self,
        api: &Api,
        config_id: u64,
        expected: Option<&[ReleaseRule]>,
        rules: Vec<ReleaseRule>,
        limit: std::time::Duration,
    ) -> Outcome<ReleasesView> {
        let body = PutReleases {
            releases: rules,
            comment: None,
        };
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = api
                .retry(|| api.client.get_releases(config_id))
                .await
                .map_err(|e| self.api_error("read", &e))?;
            if let Some(expected) = expected
                && current.releases != expected
            {
                return Err(Diagnostic::error(
                    "Release rules changed outside Terraform",
                    format!(
                        "The rules of config {config_id} changed since Terraform last read them \
                         (now at revision {}). Nothing was written; run terraform plan to see \
                         the change, then apply again.",
                        current.revision
                    ),
                )
                .at(AttrPath::root("rule"))
                .into());
            }
            // A fresh key per attempt: a rejected write is remembered under its key.
            let opts = api.write_options().if_match(current.revision);
            let r = api
                .retry(|| api.client.put_releases(config_id, &body, &opts))
                .await;
            match approval::write_or_wait(api, "write conflux_release_policy", limit, r).await {
                Ok(Some(view)) => return Ok(view),
                // The proposal executed: the rules are the ones written.
                Ok(None) => {
                    return api
                        .retry(|| api.client.get_releases(config_id))
                        .await
                        .map_err(|e| self.api_error("read", &e));
                }
                Err(WriteError::Api(e)) if e.code() == "revision_mismatch" => continue,
                Err(WriteError::Api(e)) => return Err(self.api_error("write", &e)),
                Err(WriteError::Proposal(d)) => return Err(d),
            }
        }
        Err(Diagnostic::error(
            "Config keeps changing",
            format!(
                "config {config_id} changed {MAX_WRITE_ATTEMPTS} times while its rules were being written; try again"
            ),
        )
        .into())
    }
}

#[tonic::async_trait]
impl Resource for ReleasePolicy {
    fn type_name(&self) -> &'static str {
        "conflux_release_policy"
    }

    fn schema(&self) -> Schema {
        let rule = Block::new(
            "One release rule. A client gets the version of the first matching rule, by \
             priority (highest first), then more labels first, then list position.",
        )
        .attr(Attribute::optional(
            "labels",
            Type::map(Type::String),
            "The rule matches clients that send all these labels (keys lower-case).",
        ))
        .attr(Attribute::optional(
            "percent",
            Type::Number,
            "0-100: the rule matches only this share of clients (by client id).",
        ))
        .attr(Attribute::required(
            "version_id",
            Type::Number,
            "The version the matching clients get.",
        ))
        .attr(Attribute::optional_computed(
            "priority",
            Type::Number,
            "Higher first; 0 by default.",
        ));
        Schema::new(
            Block::new(
                "All release rules of one config, in order; exactly one rule has neither labels \
                 nor percent (the default). Import with `tenant/app/env/name` or the config id.",
            )
            .attr(Attribute::computed("id", Type::String, "The config id."))
            .attr(Attribute::required(
                "config_id",
                Type::Number,
                "The config whose rules this owns. Changing it moves the policy.",
            ))
            .attr(Attribute::computed(
                "revision",
                Type::Number,
                "The config's revision after the last rule change Terraform made or saw.",
            ))
            .list(
                "rule",
                rule,
                1,
                i64::try_from(MAX_RULES_PER_CONFIG).unwrap_or(64),
            )
            .single("timeouts", approval::timeouts_block(&OPERATIONS)),
        )
    }

    fn renames(&self) -> Renames {
        &[("releases", "rule"), ("id", "config_id")]
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        validate::int_range(config, "config_id", 1, i64::MAX, diags);
        approval::validate_timeouts(config, &OPERATIONS, diags);
        let Ok(rules) = config.obj_list("rule") else {
            return;
        };
        let mut defaults = Some(0usize);
        for r in &rules {
            validate::labels(r, "labels", diags);
            validate::int_range(r, "percent", 0, 100, diags);
            validate::int_range(r, "version_id", 1, i64::MAX, diags);
            validate::int_range(
                r,
                "priority",
                i64::from(i32::MIN),
                i64::from(i32::MAX),
                diags,
            );
            let labels_empty = match r.get("labels") {
                Value::Null => Some(true),
                Value::Map(m) => Some(m.is_empty()),
                _ => None,
            };
            let no_percent = match r.get("percent") {
                Value::Null => Some(true),
                Value::Unknown => None,
                _ => Some(false),
            };
            defaults = match (defaults, labels_empty, no_percent) {
                (Some(n), Some(l), Some(p)) => Some(n + usize::from(l && p)),
                _ => None,
            };
        }
        if let Some(n) = defaults
            && n != 1
            && !rules.is_empty()
        {
            diags.push(
                Diagnostic::error(
                    "Invalid release rules",
                    format!(
                        "exactly one rule must have neither labels nor percent (the default rule); found {n}"
                    ),
                )
                .at(config.attr_path("rule")),
            );
        }
    }

    fn replace_on_change(&self) -> &'static [&'static str] {
        &["config_id"]
    }

    fn unknown_on_update(&self) -> &'static [&'static str] {
        &["revision"]
    }

    fn defaults(&self, planned: &mut Obj, config: &Obj) {
        let (Value::List(planned_rules), Value::List(config_rules)) =
            (planned.get("rule").clone(), config.get("rule"))
        else {
            return;
        };
        let rules = planned_rules
            .into_iter()
            .zip(config_rules)
            .map(|(p, c)| match (p, c) {
                (Value::Object(mut p), Value::Object(c)) => {
                    if c.get("priority").is_none_or(Value::is_null) {
                        p.insert("priority".to_owned(), Value::int(0));
                    }
                    Value::Object(p)
                }
                (p, _) => p,
            })
            .collect();
        planned.set("rule", Value::List(rules));
    }

    async fn create(&self, api: &Api, planned: &Obj) -> Outcome<Obj> {
        let config_id = planned.u64("config_id")?;
        let limit = approval::timeout(planned, Operation::Create)?;
        let view = self
            .write(api, config_id, None, rules_from_obj(planned)?, limit)
            .await?;
        Ok(Self::state(&view, Some(planned)))
    }

    async fn read(&self, api: &Api, state: &Obj) -> Outcome<Option<Obj>> {
        let config_id = state.u64("config_id")?;
        let view = api.retry(|| api.client.get_releases(config_id)).await;
        let view = gone_if_not_found(view).map_err(|e| self.api_error("read", &e))?;
        Ok(view.map(|v| Self::state(&v, Some(state))))
    }

    async fn update(&self, api: &Api, prior: &Obj, planned: &Obj) -> Outcome<Obj> {
        let config_id = prior.u64("config_id")?;
        let expected = rules_from_obj(prior)?;
        let rules = rules_from_obj(planned)?;
        if rules == expected {
            // Only `timeouts` changed: nothing to write.
            let view = api
                .retry(|| api.client.get_releases(config_id))
                .await
                .map_err(|e| self.api_error("read", &e))?;
            return Ok(Self::state(&view, Some(planned)));
        }
        let limit = approval::timeout(planned, Operation::Update)?;
        let view = self
            .write(api, config_id, Some(&expected), rules, limit)
            .await?;
        Ok(Self::state(&view, Some(planned)))
    }

    async fn delete(&self, api: &Api, state: &Obj) -> Outcome<()> {
        let config_id = state.u64("config_id")?;
        let current = api.retry(|| api.client.get_releases(config_id)).await;
        // The config went first (and its rules with it): nothing left to remove.
        if gone_if_not_found(current)
            .map_err(|e| self.api_error("read", &e))?
            .is_none()
        {
            return Ok(());
        }
        let limit = approval::timeout(state, Operation::Delete)?;
        self.write(api, config_id, None, Vec::new(), limit).await?;
        Ok(())
    }

    async fn import(&self, api: &Api, id: &str) -> Outcome<Obj> {
        let config_id = match id.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                let path = super::config::config_path(id)?;
                api.retry(|| api.client.get_config_by_path(&path))
                    .await
                    .map_err(|e| self.api_error("import", &e))?
                    .id
            }
        };
        let view = api
            .retry(|| api.client.get_releases(config_id))
            .await
            .map_err(|e| self.api_error("import", &e))?;
        Ok(Self::state(&view, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(labels: Value, percent: Value, version: i64) -> Value {
        Obj::new()
            .with("labels", labels)
            .with("percent", percent)
            .with("version_id", Value::int(version))
            .with("priority", Value::Null)
            .into_value()
    }

    fn config(rules: Vec<Value>) -> Obj {
        Obj::new()
            .with("config_id", Value::int(1))
            .with("rule", Value::List(rules))
    }

    fn canary() -> Value {
        Value::Map([("canary".to_owned(), Value::string("true"))].into())
    }

    #[test]
    fn exactly_one_default_rule_is_required_at_plan_time() {
        let mut d = Diagnostics::default();
        ReleasePolicy.validate(
            &config(vec![
                rule(Value::Null, Value::Null, 1),
                rule(canary(), Value::int(10), 2),
            ]),
            &mut d,
        );
        assert!(d.0.is_empty(), "{d:?}");

        let mut d = Diagnostics::default();
        ReleasePolicy.validate(
            &config(vec![
                rule(Value::Null, Value::Null, 1),
                rule(Value::Map(Default::default()), Value::Null, 2),
            ]),
            &mut d,
        );
        assert_eq!(d.0.len(), 1);
        assert!(d.0[0].detail.contains("found 2"));
        assert_eq!(d.0[0].attribute.as_ref().unwrap().to_string(), "rule");

        // Unknown selectors cannot be judged yet.
        let mut d = Diagnostics::default();
        ReleasePolicy.validate(&config(vec![rule(Value::Unknown, Value::Null, 1)]), &mut d);
        assert!(d.0.is_empty());
    }

    #[test]
    fn rule_fields_are_checked_where_they_are() {
        let mut d = Diagnostics::default();
        ReleasePolicy.validate(
            &config(vec![
                rule(Value::Null, Value::Null, 0),
                rule(canary(), Value::int(101), 2),
            ]),
            &mut d,
        );
        let at: Vec<String> =
            d.0.iter()
                .map(|x| x.attribute.as_ref().unwrap().to_string())
                .collect();
        assert_eq!(at, ["rule[0].version_id", "rule[1].percent"]);
    }

    #[test]
    fn empty_labels_keep_their_form() {
        let view = ReleasesView {
            config_id: 3,
            revision: 9,
            releases: vec![ReleaseRule::default_to(1), ReleaseRule::default_to(2)],
            comment: None,
        };
        let like = config(vec![
            rule(Value::Map(Default::default()), Value::Null, 1),
            rule(Value::Null, Value::Null, 2),
        ]);
        let state = ReleasePolicy::state(&view, Some(&like));
        let rules = state.obj_list("rule").unwrap();
        assert_eq!(rules[0].get("labels"), &Value::Map(Default::default()));
        assert_eq!(rules[1].get("labels"), &Value::Null);
        assert_eq!(rules[0].get("priority"), &Value::int(0));
        assert_eq!(
            rules_from_obj(&state).unwrap(),
            view.releases,
            "state and rules convert both ways"
        );
    }
}
