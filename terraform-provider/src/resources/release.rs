//! `conflux_release`: one immutable version of a config.
//!
//! Versions never change, so changing `content` or `description` replaces the resource with
//! a new version. `is_stable = true` points the config's default rule at this version (a
//! stable publish on create, a `stable_only` rollback later) and reports drift when the
//! default rule points elsewhere; `is_stable = false` leaves the rules alone (manage them
//! with `conflux_release_policy` instead; do not combine both on one config). Destroy only
//! forgets the version: the API cannot delete versions, retention purges them once no rule
//! uses them.
//!
//! In an environment that requires approval, the stable publish (create) and the rollback
//! (update to `is_stable = true`) become proposals; the apply waits for them (see
//! `approval.rs`, bounded by `timeouts { create update }`) and fails naming the proposal if
//! it is rejected, canceled, fails or is not decided in time. A version is created either
//! way (creating versions needs no approval), so a create that fails there leaves a version
//! that no rule uses, which retention purges.
//!
//! Import ID: `tenant/app/env/name/VERSION` (or `CONFIG_ID/VERSION`).

use conflux_api_types::{PublishRequest, RollbackRequest, Strategy, VersionView};
use conflux_client::NewVersion;
use conflux_domain::RollbackMode;

use super::approval::{self, Operation, WriteError};
use super::{Outcome, Resource, default_if_null, gone_if_not_found};
use crate::api::Api;
use crate::client_errors::Renames;
use crate::protocol::diag::{Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type, Value};
use crate::validate;

pub struct Release;

/// Accepted by the server for every format.
const CONTENT_TYPE: &str = "application/octet-stream";

impl Release {
    /// The state for `view`; `timeouts` is what the configuration (or `like`) said.
    fn state(view: &VersionView, content: &str, is_stable: bool, like: &Obj) -> Obj {
        let state = Obj::new()
            .with(
                "id",
                Value::string(format!("{}/{}", view.config_id, view.version_id)),
            )
            .with("config_id", Value::uint(view.config_id))
            .with("version_id", Value::uint(view.version_id))
            .with("hash", Value::string(&view.hash))
            .with("content", Value::string(content))
            .with("description", Value::string(&view.description))
            .with("is_stable", Value::Bool(is_stable));
        approval::keep_timeouts(state, like)
    }

    /// The diagnostics of a release write that failed or whose proposal did not execute.
    fn write_error(&self, action: &str, e: WriteError) -> Diagnostics {
        match e {
            WriteError::Api(e) => self.api_error(action, &e),
            WriteError::Proposal(d) => d,
        }
    }

    /// Whether the config's default rule serves `version`.
    async fn is_default(&self, api: &Api, config_id: u64, version: u64) -> Outcome<bool> {
        let rules = api
            .retry(|| api.client.get_releases(config_id))
            .await
            .map_err(|e| self.api_error("read the rules of", &e))?;
        Ok(rules
            .releases
            .iter()
            .any(|r| r.is_default() && r.version_id == version))
    }

    async fn get_version(
        &self,
        api: &Api,
        config_id: u64,
        version: u64,
    ) -> Outcome<Option<VersionView>> {
        let view = api
            .retry(|| api.client.get_version(config_id, version))
            .await;
        gone_if_not_found(view).map_err(|e| self.api_error("read", &e))
    }
}

#[tonic::async_trait]
impl Resource for Release {
    fn type_name(&self) -> &'static str {
        "conflux_release"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "An immutable version of a config. Import with `tenant/app/env/name/VERSION` or `CONFIG_ID/VERSION`.",
            )
            .attr(Attribute::computed("id", Type::String, "`CONFIG_ID/VERSION`."))
            .attr(Attribute::required(
                "config_id",
                Type::Number,
                "The config (conflux_config.x.id). Changing it creates a new version there.",
            ))
            .attr(
                Attribute::required(
                    "content",
                    Type::String,
                    "The content; must parse as the config's format and satisfy its schema. Changing it creates a new version. Sensitive: Terraform hides it in plans (it still sits in the state file; protect the state like any secret store).",
                )
                .sensitive(),
            )
            .attr(Attribute::optional_computed(
                "description",
                Type::String,
                "What changed (at most 1024 bytes). Changing it creates a new version.",
            ))
            .attr(Attribute::optional_computed(
                "is_stable",
                Type::Bool,
                "true: the config's default rule serves this version. false (default): the rules are left alone.",
            ))
            .attr(Attribute::computed(
                "version_id",
                Type::Number,
                "The version number.",
            ))
            .attr(Attribute::computed(
                "hash",
                Type::String,
                "sha256:<hex> of the content.",
            ))
            .single(
                "timeouts",
                approval::timeouts_block(&[Operation::Create, Operation::Update]),
            ),
        )
    }

    fn renames(&self) -> Renames {
        &[("id", "config_id")]
    }

    fn validate(&self, config: &Obj, diags: &mut Diagnostics) {
        validate::int_range(config, "config_id", 1, i64::MAX, diags);
        validate::max_len(
            config,
            "description",
            validate::MAX_DESCRIPTION_BYTES,
            diags,
        );
        if let Some(c) = config.known_str("content") {
            let max = usize::try_from(conflux_domain::MAX_CONTENT_BYTES).unwrap_or(usize::MAX);
            if c.len() > max {
                diags.push(
                    Diagnostic::error(
                        "Invalid content",
                        format!("content is {} bytes; at most {max} are allowed", c.len()),
                    )
                    .at(config.attr_path("content")),
                );
            }
        }
        approval::validate_timeouts(config, &[Operation::Create, Operation::Update], diags);
    }

    fn replace_on_change(&self) -> &'static [&'static str] {
        &["config_id", "content", "description"]
    }

    fn defaults(&self, planned: &mut Obj, config: &Obj) {
        default_if_null(planned, config, "description", Value::string(""));
        default_if_null(planned, config, "is_stable", Value::Bool(false));
    }

    /// A new version is checked by the server (format, schema, size) at plan time.
    async fn check_plan(&self, api: &Api, planned: &Obj, prior: Option<&Obj>) -> Outcome<()> {
        let (None, Some(config_id), Some(content)) = (
            prior,
            planned.known_number("config_id").and_then(|n| n.as_i64()),
            planned.known_str("content"),
        ) else {
            return Ok(());
        };
        let Ok(config_id) = u64::try_from(config_id) else {
            return Ok(());
        };
        let version = NewVersion::new(content.to_owned(), CONTENT_TYPE).validate_only(true);
        let opts = conflux_client::WriteOptions::default();
        let r = api
            .retry(|| api.client.create_version(config_id, version.clone(), &opts))
            .await;
        match r {
            // The config itself may be created by the same apply.
            Err(e) if e.code() == "config_not_found" => Ok(()),
            Err(e) => Err(self.api_error("validate the content of", &e)),
            Ok(_) => Ok(()),
        }
    }

    async fn create(&self, api: &Api, planned: &Obj) -> Outcome<Obj> {
        let config_id = planned.u64("config_id")?;
        let content = planned.str("content")?;
        let description = planned.opt_str("description")?.filter(|d| !d.is_empty());
        let is_stable = planned.opt_bool("is_stable")?.unwrap_or(false);
        let opts = api.write_options();
        let version_id = if is_stable {
            let body = PublishRequest {
                content: content.to_owned(),
                description: description.map(str::to_owned),
                strategy: Strategy::Stable,
            };
            let action = "publish conflux_release";
            let limit = approval::timeout(planned, Operation::Create)?;
            let r = api
                .retry(|| api.client.publish(config_id, &body, &opts))
                .await;
            // The version exists before its release is approved: its number is in the 202.
            let created = match &r {
                Err(conflux_client::ClientError::PendingApproval(p)) => p.version_id,
                _ => None,
            };
            match approval::write_or_wait(api, action, limit, r).await {
                Ok(Some(published)) => published.version_id,
                Ok(None) => created.ok_or_else(|| {
                    Diagnostic::error(
                        "Unexpected answer from Conflux",
                        "the publish became a proposal whose answer names no version",
                    )
                })?,
                Err(e) => return Err(self.write_error("publish", e)),
            }
        } else {
            let mut version = NewVersion::new(content.to_owned(), CONTENT_TYPE);
            if let Some(d) = description {
                version = version.description(d);
            }
            api.retry(|| api.client.create_version(config_id, version.clone(), &opts))
                .await
                .map_err(|e| self.api_error("create", &e))?
                .version_id
        };
        let view = self
            .get_version(api, config_id, version_id)
            .await?
            .ok_or_else(|| {
                Diagnostic::error(
                    "Version vanished",
                    format!("version {version_id} of config {config_id} was purged right after it was created"),
                )
            })?;
        Ok(Self::state(&view, content, is_stable, planned))
    }

    async fn read(&self, api: &Api, state: &Obj) -> Outcome<Option<Obj>> {
        let config_id = state.u64("config_id")?;
        let version_id = state.u64("version_id")?;
        let Some(view) = self.get_version(api, config_id, version_id).await? else {
            return Ok(None);
        };
        let managed_stable = state.opt_bool("is_stable")?.unwrap_or(false);
        let is_stable = managed_stable && self.is_default(api, config_id, version_id).await?;
        Ok(Some(Self::state(
            &view,
            state.str("content")?,
            is_stable,
            state,
        )))
    }

    async fn update(&self, api: &Api, prior: &Obj, planned: &Obj) -> Outcome<Obj> {
        let config_id = prior.u64("config_id")?;
        let version_id = prior.u64("version_id")?;
        let is_stable = planned.opt_bool("is_stable")?.unwrap_or(false);
        let was_stable = prior.opt_bool("is_stable")?.unwrap_or(false);
        // A change of `timeouts` alone changes nothing on the server.
        if is_stable && !was_stable {
            let body = RollbackRequest {
                version_id,
                mode: RollbackMode::StableOnly,
            };
            let opts = api.write_options();
            let limit = approval::timeout(planned, Operation::Update)?;
            let r = api
                .retry(|| api.client.rollback(config_id, &body, &opts))
                .await;
            approval::write_or_wait(api, "make stable conflux_release", limit, r)
                .await
                .map_err(|e| self.write_error("make stable", e))?;
        }
        let view = self
            .get_version(api, config_id, version_id)
            .await?
            .ok_or_else(|| {
                Diagnostic::error(
                    "Version not found",
                    format!("version {version_id} of config {config_id} no longer exists"),
                )
            })?;
        Ok(Self::state(
            &view,
            prior.str("content")?,
            is_stable,
            planned,
        ))
    }

    async fn delete(&self, _api: &Api, _state: &Obj) -> Outcome<()> {
        // Versions are immutable and cannot be deleted; retention purges them once no rule
        // uses them.
        Ok(())
    }

    async fn import(&self, api: &Api, id: &str) -> Outcome<Obj> {
        let (config_part, version_part) = id.rsplit_once('/').ok_or_else(|| {
            Diagnostic::error(
                "Invalid import ID",
                format!(
                    "{id:?} is not of the form tenant/app/env/name/VERSION or CONFIG_ID/VERSION"
                ),
            )
        })?;
        let version_id: u64 = version_part.parse().map_err(|_| {
            Diagnostic::error(
                "Invalid import ID",
                format!("{version_part:?} is not a version number"),
            )
        })?;
        let config_id = match config_part.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                let path = super::config::config_path(config_part)?;
                api.retry(|| api.client.get_config_by_path(&path))
                    .await
                    .map_err(|e| self.api_error("import", &e))?
                    .id
            }
        };
        let view = api
            .retry(|| api.client.get_version(config_id, version_id))
            .await
            .map_err(|e| self.api_error("import", &e))?;
        let content = api
            .retry(|| api.client.get_version_content(config_id, version_id))
            .await
            .map_err(|e| self.api_error("import", &e))?;
        let content = String::from_utf8(content.to_vec()).map_err(|_| {
            Diagnostic::error("Cannot import", "the version's content is not UTF-8")
        })?;
        let is_stable = self.is_default(api, config_id, version_id).await?;
        Ok(Self::state(&view, &content, is_stable, &Obj::new()))
    }
}
