//! The one place where errors of the Conflux API become Terraform diagnostics.
//!
//! The server names the request field at fault (`name`, `releases[1].version_id`,
//! `retention.rules[0].keep`, a path segment such as `tenant`); this module turns that into
//! the attribute path of the resource, using the resource's renames (`releases` is the
//! `rule` blocks, `app` is `application`, ...), so Terraform points at the line of
//! configuration that caused it. Errors without a field but about a named entity
//! (`tenant_not_found`) point at the attribute that names it. A field the resource has no
//! attribute for is mentioned in the detail instead.
//!
//! Release changes in an environment that requires approval end here too: a change that
//! became a proposal and was not approved (rejected, canceled, failed) or not decided in
//! time names the proposal, its status and what to do next ([`proposal_ended`],
//! [`proposal_timeout`]).

use std::time::Duration;

use conflux_api_types::ProposalView;
use conflux_client::ClientError;

use crate::protocol::diag::{AttrPath, Diagnostic, Step};
use crate::protocol::schema::Block;

/// How one resource's attributes are called on the wire: `(server field, attribute)`,
/// applied to every step of a field path.
pub type Renames = &'static [(&'static str, &'static str)];

/// The diagnostic for `err`, which happened while doing `action` ("create conflux_tenant").
pub fn diagnostic(action: &str, err: &ClientError, schema: &Block, renames: Renames) -> Diagnostic {
    let code = err.code();
    let field = err
        .field()
        .map(str::to_owned)
        .or_else(|| implied_field(code).map(str::to_owned));
    let path = field
        .as_deref()
        .map(|f| rename(parse_field(f), renames))
        .filter(|p| p.first_attr().is_some_and(|a| schema.has(a)));

    let mut detail = err.message();
    if let ClientError::PendingApproval(p) = err {
        detail = format!(
            "The environment requires approval: the change became proposal {} (status {}) and \
             changed nothing for clients yet.",
            p.proposal_id, p.status
        );
    }
    if let ClientError::Api { details, .. } = err
        && !details.is_empty()
    {
        let rendered: Vec<String> = details.iter().map(|d| d.to_string()).collect();
        detail.push_str(&format!("\nDetails: {}", rendered.join(", ")));
    }
    if let (Some(f), None) = (&field, &path) {
        detail.push_str(&format!("\n(Conflux field: {f})"));
    }
    if let Some(hint) = hint(code) {
        detail.push_str("\n\n");
        detail.push_str(hint);
    }
    let status = err
        .status()
        .map(|s| format!(", HTTP {s}"))
        .unwrap_or_default();
    let d = Diagnostic::error(format!("Cannot {action}: {code}{status}"), detail);
    match path {
        Some(p) => d.at(p),
        None => d,
    }
}

/// A release change that became a proposal which ended without executing: `rejected`,
/// `canceled` or `failed` (with the reason, `stale` when the config changed meanwhile).
pub fn proposal_ended(action: &str, p: &ProposalView) -> Diagnostic {
    let mut detail = format!(
        "The environment requires approval, so the change became proposal {} on config {} \
         ({}), which ended {}",
        p.id, p.config_id, p.config, p.status
    );
    if let Some(reason) = &p.reason {
        detail.push_str(&format!(" (reason: {reason})"));
    }
    if let Some(last) = p.history.last() {
        detail.push_str(&format!(" by {} at {}", last.actor, last.time));
        if let Some(c) = &last.comment {
            detail.push_str(&format!(": {c:?}"));
        }
    }
    detail.push_str(". Nothing changed for clients.");
    if p.reason.as_deref() == Some("stale") {
        detail.push_str(
            " The config changed after the proposal was made: run terraform plan again, then apply.",
        );
    } else {
        detail.push_str(" Apply again to propose the change anew.");
    }
    Diagnostic::error(
        format!("Cannot {action}: proposal {} {}", p.id, p.status),
        detail,
    )
}

/// A release change whose proposal was still pending when the operation's timeout ended.
pub fn proposal_timeout(action: &str, id: u64, waited: Duration) -> Diagnostic {
    Diagnostic::error(
        format!("Cannot {action}: proposal {id} is still pending"),
        format!(
            "The environment requires approval, so the change became proposal {id}, which was \
             still pending after {} (the resource's timeouts block sets how long to wait). It \
             stays pending: once approved it executes without Terraform. Until it is approved, \
             rejected or canceled (conflux proposal approve|reject|cancel {id}), another \
             change of this config, including the next terraform apply, gets 409 \
             proposal_pending.",
            humantime::format_duration(waited)
        ),
    )
}

/// A release change whose wait for its proposal ended because Terraform asked the provider
/// to stop (Ctrl-C).
pub fn proposal_stopped(action: &str, id: u64) -> Diagnostic {
    Diagnostic::error(
        format!("Cannot {action}: stopped while proposal {id} is pending"),
        format!(
            "The environment requires approval, so the change became proposal {id}; Terraform \
             was interrupted while waiting for it. It stays pending: once approved it executes \
             without Terraform. Until it is approved, rejected or canceled (conflux proposal \
             approve|reject|cancel {id}), another change of this config, including the next \
             terraform apply, gets 409 proposal_pending."
        ),
    )
}

/// What becomes of a proposal whose wait ended early (its status could not be read).
pub fn proposal_timeout_note(id: u64) -> Diagnostic {
    Diagnostic::warning(
        format!("Proposal {id} may still be pending"),
        format!(
            "Terraform stopped waiting for proposal {id}. Check it with conflux proposal show \
             {id}; while it is pending, another change of this config gets 409 proposal_pending."
        ),
    )
}

/// The field an error without one is about.
fn implied_field(code: &str) -> Option<&'static str> {
    Some(match code {
        "tenant_not_found" | "tenant_suspended" => "tenant",
        "app_not_found" => "app",
        "environment_not_found" => "env",
        "config_not_found" => "config_id",
        "version_not_found" => "version_id",
        "tenant_already_exists"
        | "app_already_exists"
        | "environment_already_exists"
        | "config_already_exists" => "name",
        "content_invalid" | "schema_violation" | "unsupported_media_type" => "content",
        "invalid_schema" => "schema",
        _ => return None,
    })
}

fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "unreachable" | "timeout" => {
            "Check the provider's endpoint (or CONFLUX_ENDPOINT) and that the Conflux node is running."
        }
        "unauthenticated" => {
            "Set the provider's token (or CONFLUX_TOKEN) to a valid Conflux token: a service token, \
             a session token from a login, or a node's bootstrap token (<data-dir>/admin.token)."
        }
        "forbidden" => {
            "The provider's token has no role that allows this here. Give its principal a binding \
             (conflux_role_binding, or the CLI) with a token that may grant it."
        }
        "metadata_unavailable" => {
            "The cluster's metadata database is unreachable: users, tokens and role bindings cannot \
             change until it is back. Apply again later."
        }
        "revision_mismatch" => {
            "The object changed outside Terraform while this apply ran. Run terraform plan again to see the change, then apply."
        }
        "tenant_already_exists"
        | "app_already_exists"
        | "environment_already_exists"
        | "config_already_exists" => {
            "It exists already: use terraform import to manage it with Terraform."
        }
        "has_children" => {
            "It still has children that Terraform does not manage; delete or import them first."
        }
        "quota_exceeded" => {
            "Raise the tenant's quota (conflux_tenant quotas block) or remove objects."
        }
        "pending_approval" => {
            "Approve it (conflux proposal approve <id>, by a publisher other than the proposer \
             unless the environment allows self-approval), then run terraform apply again; or \
             reject or cancel it."
        }
        "proposal_pending" => {
            "Another change of this config awaits approval: only one proposal per config may be \
             pending. Approve, reject or cancel it (conflux proposal list --status pending), then \
             apply again."
        }
        _ => return None,
    })
}

/// `releases[1].labels.canary` as steps: attributes, list indexes, and the key after
/// `labels` (a map).
pub fn parse_field(field: &str) -> AttrPath {
    let mut steps = Vec::new();
    let mut after_map = false;
    for part in field.split('.') {
        if after_map {
            steps.push(Step::Key(part.to_owned()));
            after_map = false;
            continue;
        }
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            steps.push(Step::Attr(name.to_owned()));
        }
        while let Some(close) = rest.find(']') {
            match rest[1..close].parse::<i64>() {
                Ok(i) => steps.push(Step::Index(i)),
                Err(_) => steps.push(Step::Key(rest[1..close].to_owned())),
            }
            rest = &rest[close + 1..];
        }
        after_map = name == "labels" && rest.is_empty();
    }
    AttrPath(steps)
}

fn rename(path: AttrPath, renames: Renames) -> AttrPath {
    AttrPath(
        path.0
            .into_iter()
            .map(|s| match s {
                Step::Attr(a) => Step::Attr(
                    renames
                        .iter()
                        .find(|(from, _)| *from == a)
                        .map_or(a, |(_, to)| (*to).to_owned()),
                ),
                other => other,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::schema::{Attribute, Block};
    use crate::protocol::value::Type;

    fn api_error(status: u16, code: &str, field: Option<&str>) -> ClientError {
        ClientError::Api {
            status,
            code: code.into(),
            message: "the server's sentence".into(),
            field: field.map(str::to_owned),
            details: vec![serde_json::json!({"line": 2, "column": 5})],
            retry_after_secs: None,
        }
    }

    fn schema() -> Block {
        Block::new("t")
            .attr(Attribute::required("config_id", Type::Number, ""))
            .attr(Attribute::required("application", Type::String, ""))
            .attr(Attribute::required("content", Type::String, ""))
            .list(
                "rule",
                Block::new("r").attr(Attribute::required("version_id", Type::Number, "")),
                1,
                64,
            )
    }

    const RENAMES: Renames = &[("releases", "rule"), ("app", "application")];

    #[test]
    fn fields_parse_into_steps() {
        let p = parse_field("releases[1].labels.canary");
        assert_eq!(p.to_string(), "releases[1].labels[\"canary\"]");
        assert_eq!(
            parse_field("retention.rules[0].keep").to_string(),
            "retention.rules[0].keep"
        );
        assert_eq!(parse_field("name").to_string(), "name");
    }

    #[test]
    fn server_fields_become_attribute_paths() {
        let e = api_error(400, "unknown_version", Some("releases[1].version_id"));
        let d = diagnostic("update conflux_release_policy", &e, &schema(), RENAMES);
        assert_eq!(d.attribute.unwrap().to_string(), "rule[1].version_id");
        assert!(d.summary.contains("unknown_version") && d.summary.contains("HTTP 400"));
        assert!(d.detail.contains("the server's sentence"));
        assert!(d.detail.contains("\"line\":2"));
    }

    #[test]
    fn codes_imply_their_attribute() {
        let e = api_error(404, "app_not_found", None);
        let d = diagnostic("create conflux_config", &e, &schema(), RENAMES);
        assert_eq!(d.attribute.unwrap().to_string(), "application");
        let e = api_error(422, "content_invalid", None);
        let d = diagnostic("create conflux_release", &e, &schema(), RENAMES);
        assert_eq!(d.attribute.unwrap().to_string(), "content");
    }

    #[test]
    fn unknown_fields_are_named_in_the_detail() {
        let e = api_error(429, "quota_exceeded", Some("max_configs"));
        let d = diagnostic("create conflux_config", &e, &schema(), RENAMES);
        assert!(d.attribute.is_none());
        assert!(d.detail.contains("Conflux field: max_configs"));
        assert!(d.detail.contains("quota"));
    }

    #[test]
    fn auth_errors_say_what_to_do() {
        let e = api_error(401, "unauthenticated", None);
        let d = diagnostic("read conflux_tenant", &e, &schema(), RENAMES);
        assert!(d.summary.contains("unauthenticated") && d.summary.contains("HTTP 401"));
        assert!(d.detail.contains("CONFLUX_TOKEN"), "{}", d.detail);
        let e = api_error(403, "forbidden", None);
        let d = diagnostic("create conflux_tenant", &e, &schema(), RENAMES);
        assert!(d.detail.contains("conflux_role_binding"), "{}", d.detail);
    }

    fn proposal(status: &str, reason: Option<&str>) -> ProposalView {
        serde_json::from_value(serde_json::json!({
            "id": 7, "config_id": 3, "config": "acme/web/prod/app.yaml", "status": status,
            "proposer": "token:ci", "created_at": "2030-01-01T00:00:00Z", "base_revision": 10,
            "change": {"kind": "publish", "version_id": 2, "strategy": {"type": "stable"}},
            "approvals": [],
            "history": [{"action": status, "actor": "user:bob", "time": "2030-01-01T00:01:00Z",
                         "comment": "not today", "revision": 12}],
            "reason": reason, "revision": 12
        }))
        .unwrap()
    }

    #[test]
    fn proposals_that_did_not_execute_are_named_with_their_end() {
        let d = proposal_ended("publish conflux_release", &proposal("rejected", None));
        assert!(d.summary.contains("proposal 7 rejected"), "{}", d.summary);
        assert!(d.detail.contains("user:bob") && d.detail.contains("not today"));
        let d = proposal_ended(
            "write conflux_release_policy",
            &proposal("failed", Some("stale")),
        );
        assert!(d.summary.contains("proposal 7 failed"));
        assert!(d.detail.contains("reason: stale") && d.detail.contains("plan again"));
        let d = proposal_timeout("publish conflux_release", 7, Duration::from_secs(90));
        assert!(d.summary.contains("proposal 7 is still pending"));
        assert!(d.detail.contains("1m 30s") && d.detail.contains("proposal_pending"));
    }

    #[test]
    fn pending_approval_names_the_proposal() {
        let e = ClientError::PendingApproval(conflux_api_types::ProposalAccepted {
            proposal_id: 9,
            status: "pending".into(),
            config_id: 3,
            version_id: None,
        });
        let d = diagnostic("write conflux_release_policy", &e, &schema(), RENAMES);
        assert!(d.summary.contains("pending_approval"), "{}", d.summary);
        assert!(d.detail.contains("proposal 9") && d.detail.contains("approve"));
        let e = api_error(409, "proposal_pending", None);
        let d = diagnostic("write conflux_release_policy", &e, &schema(), RENAMES);
        assert!(
            d.detail.contains("only one proposal per config"),
            "{}",
            d.detail
        );
    }

    #[test]
    fn transport_errors_suggest_checking_the_endpoint() {
        let e = ClientError::Transport {
            endpoint: "http://127.0.0.1:1".into(),
            timed_out: false,
            message: "connection refused".into(),
        };
        let d = diagnostic("read conflux_tenant", &e, &schema(), RENAMES);
        assert!(d.summary.contains("unreachable"));
        assert!(d.detail.contains("endpoint"));
        assert!(d.attribute.is_none());
    }
}
