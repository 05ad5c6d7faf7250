//! Output: every result is an api-types view (or a small CLI composite of them) that renders
//! as a table for people, or as pretty JSON / YAML of exactly the wire shape for scripts.

use std::fmt::Write as _;

use comfy_table::{Table, presets};
use conflux_api_types::{
    AppList, AppView, ClusterChange, ClusterDigest, ClusterStatus, ConfigList, ConfigView,
    EnvironmentList, EnvironmentView, KmsRewrapped, KmsStatus, PublishResponse, ReleaseRule,
    ReleasesView, ResolveResponse, SnapshotTaken, TenantList, TenantView, VersionCreated,
    VersionList,
};
use conflux_api_types::{
    AuditPage, RoleBindingList, RoleBindingView, TokenCreated, TokenList, TokenView, UserList,
    UserView, WhoAmI,
};
use conflux_domain::order_rules;
use serde::Serialize;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// Pretty JSON of the API's own shapes.
    Json,
    /// YAML of the API's own shapes.
    Yaml,
}

/// A result the CLI can print.
pub trait Render: Serialize {
    /// The human rendering, ending with a newline.
    fn table(&self) -> String;
}

/// Renders `value` in `format`; the text ends with a newline.
pub fn render<T: Render>(value: &T, format: OutputFormat) -> Result<String, String> {
    match format {
        OutputFormat::Table => Ok(value.table()),
        OutputFormat::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| format!("cannot render JSON: {e}")),
        OutputFormat::Yaml => {
            serde_norway::to_string(value).map_err(|e| format!("cannot render YAML: {e}"))
        }
    }
}

/// Shown for an absent or empty value.
const NONE: &str = "-";

pub(crate) fn or_none(s: &str) -> &str {
    if s.is_empty() { NONE } else { s }
}

pub(crate) fn list(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_header(header.to_vec());
    let mut n = 0;
    for row in rows {
        t.add_row(row);
        n += 1;
    }
    if n == 0 {
        return "(none)\n".to_owned();
    }
    format!("{}\n", trim_lines(&t.to_string()))
}

/// Two columns, field and value, for one entity.
pub(crate) fn fields(rows: &[(&str, String)]) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    for (k, v) in rows {
        t.add_row(vec![format!("{k}:"), v.clone()]);
    }
    format!("{}\n", trim_lines(&t.to_string()))
}

/// The `NOTHING` preset pads cells with spaces; drop the trailing and the one leading space.
fn trim_lines(s: &str) -> String {
    s.lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

fn labels_text(rule: &ReleaseRule) -> String {
    if rule.is_default() {
        return "(default)".to_owned();
    }
    if rule.labels.is_empty() {
        return NONE.to_owned();
    }
    rule.labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn percent_text(rule: &ReleaseRule) -> String {
    rule.percent.map_or(NONE.to_owned(), |p| format!("{p}%"))
}

/// The rule list with each rule's list position and its place in evaluation order.
pub(crate) fn rules_table(rules: &[ReleaseRule]) -> String {
    if rules.is_empty() {
        return "(no rules: the config is not published)\n".to_owned();
    }
    let order = order_rules(rules);
    let mut rank = vec![0; rules.len()];
    for (position, &index) in order.iter().enumerate() {
        rank[index] = position + 1;
    }
    list(
        &["#", "ORDER", "PRIORITY", "LABELS", "PERCENT", "VERSION"],
        rules.iter().enumerate().map(|(i, r)| {
            vec![
                i.to_string(),
                rank[i].to_string(),
                r.priority.to_string(),
                labels_text(r),
                percent_text(r),
                r.version_id.to_string(),
            ]
        }),
    )
}

impl Render for TenantView {
    fn table(&self) -> String {
        fields(&[
            ("name", self.name.clone()),
            ("display name", or_none(&self.display_name).to_owned()),
            ("status", self.status.as_str().to_owned()),
            ("max apps", self.quotas.max_apps.to_string()),
            ("max configs", self.quotas.max_configs.to_string()),
            ("max config bytes", self.quotas.max_config_bytes.to_string()),
            (
                "max versions per config",
                self.quotas.max_versions_per_config.to_string(),
            ),
            ("created", self.created_at.clone()),
            ("updated", self.updated_at.clone()),
            ("revision", self.revision.to_string()),
        ])
    }
}

impl Render for TenantList {
    fn table(&self) -> String {
        list(
            &["NAME", "DISPLAY NAME", "STATUS", "CREATED", "REVISION"],
            self.tenants.iter().map(|t| {
                vec![
                    t.name.clone(),
                    or_none(&t.display_name).to_owned(),
                    t.status.as_str().to_owned(),
                    t.created_at.clone(),
                    t.revision.to_string(),
                ]
            }),
        )
    }
}

impl Render for AppView {
    fn table(&self) -> String {
        fields(&[
            ("app", format!("{}/{}", self.tenant, self.name)),
            ("description", or_none(&self.description).to_owned()),
            ("created", self.created_at.clone()),
            ("updated", self.updated_at.clone()),
            ("revision", self.revision.to_string()),
        ])
    }
}

impl Render for AppList {
    fn table(&self) -> String {
        list(
            &["NAME", "DESCRIPTION", "CREATED", "REVISION"],
            self.apps.iter().map(|a| {
                vec![
                    a.name.clone(),
                    or_none(&a.description).to_owned(),
                    a.created_at.clone(),
                    a.revision.to_string(),
                ]
            }),
        )
    }
}

impl Render for EnvironmentView {
    fn table(&self) -> String {
        fields(&[
            ("env", format!("{}/{}/{}", self.tenant, self.app, self.name)),
            ("description", or_none(&self.description).to_owned()),
            ("approval required", self.approval.required.to_string()),
            ("min approvals", self.approval.min_approvals.to_string()),
            (
                "self-approval",
                if self.approval.allow_self_approval {
                    "allowed"
                } else {
                    "refused"
                }
                .to_owned(),
            ),
            ("created", self.created_at.clone()),
            ("updated", self.updated_at.clone()),
            ("revision", self.revision.to_string()),
        ])
    }
}

impl Render for EnvironmentList {
    fn table(&self) -> String {
        list(
            &["NAME", "DESCRIPTION", "APPROVAL", "CREATED", "REVISION"],
            self.environments.iter().map(|e| {
                vec![
                    e.name.clone(),
                    or_none(&e.description).to_owned(),
                    if e.approval.required {
                        "required"
                    } else {
                        "no"
                    }
                    .to_owned(),
                    e.created_at.clone(),
                    e.revision.to_string(),
                ]
            }),
        )
    }
}

impl Render for ConfigView {
    fn table(&self) -> String {
        let latest = if self.latest_version == 0 {
            "(no versions yet)".to_owned()
        } else {
            self.latest_version.to_string()
        };
        let retention = match &self.retention {
            None => NONE.to_owned(),
            Some(r) => serde_json::to_string(r).unwrap_or_else(|_| "?".to_owned()),
        };
        fields(&[
            ("id", self.id.to_string()),
            ("path", self.path.clone()),
            ("format", self.format.to_string()),
            ("description", or_none(&self.description).to_owned()),
            ("latest version", latest),
            (
                "schema",
                if self.schema.is_some() { "yes" } else { "no" }.to_owned(),
            ),
            ("retention", retention),
            (
                "encrypted",
                if self.encrypted { "yes" } else { "no" }.to_owned(),
            ),
            ("created", self.created_at.clone()),
            ("updated", self.updated_at.clone()),
            ("revision", self.revision.to_string()),
        ])
    }
}

impl Render for ConfigList {
    fn table(&self) -> String {
        list(
            &["ID", "NAME", "FORMAT", "LATEST", "UPDATED", "REVISION"],
            self.configs.iter().map(|c| {
                vec![
                    c.id.to_string(),
                    c.name.clone(),
                    c.format.to_string(),
                    c.latest_version.to_string(),
                    c.updated_at.clone(),
                    c.revision.to_string(),
                ]
            }),
        )
    }
}

impl Render for VersionCreated {
    fn table(&self) -> String {
        if self.validate_only {
            return format!("valid: {} (nothing was stored)\n", self.hash);
        }
        fields(&[
            ("version", self.version_id.to_string()),
            ("hash", self.hash.clone()),
            ("revision", self.revision.to_string()),
        ])
    }
}

impl Render for VersionList {
    fn table(&self) -> String {
        let mut out = list(
            &[
                "VERSION",
                "SIZE",
                "HASH",
                "AUTHOR",
                "CREATED",
                "DESCRIPTION",
            ],
            self.versions.iter().map(|v| {
                vec![
                    v.version_id.to_string(),
                    v.size.to_string(),
                    v.hash.clone(),
                    v.author.as_deref().unwrap_or(NONE).to_owned(),
                    v.created_at.clone(),
                    or_none(&v.description).to_owned(),
                ]
            }),
        );
        if let Some(cursor) = &self.next_cursor {
            let _ = writeln!(out, "more: --cursor {cursor}");
        }
        out
    }
}

impl Render for ReleasesView {
    fn table(&self) -> String {
        let mut out = rules_table(&self.releases);
        let _ = writeln!(out, "revision: {}", self.revision);
        if let Some(comment) = &self.comment {
            let _ = writeln!(out, "comment: {comment}");
        }
        out
    }
}

impl Render for PublishResponse {
    fn table(&self) -> String {
        let mut out = fields(&[
            ("version", self.version_id.to_string()),
            ("hash", self.hash.clone()),
            ("revision", self.revision.to_string()),
        ]);
        out.push('\n');
        out.push_str(&rules_table(&self.releases));
        out
    }
}

/// `release status`: the rules, and what the given labels resolve to.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseStatus {
    #[serde(flatten)]
    pub releases: ReleasesView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Resolved>,
}

/// What a set of labels resolves to, with the labels that were asked about.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(flatten)]
    pub answer: ResolveResponse,
}

impl Render for ReleaseStatus {
    fn table(&self) -> String {
        let mut out = self.releases.table();
        if let Some(r) = &self.resolved {
            let who = if r.labels.is_empty() {
                "no labels".to_owned()
            } else {
                r.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let id = r
                .client_id
                .as_deref()
                .map(|id| format!(" and client id {id}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{who}{id} -> version {} (rule #{})",
                r.answer.version_id, r.answer.rule_index
            );
        }
        out
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn opt_u64(v: Option<u64>) -> String {
    v.map_or(NONE.to_owned(), |v| v.to_string())
}

impl Render for ClusterStatus {
    fn table(&self) -> String {
        let leader = self
            .leader_id
            .map_or("none".to_owned(), |id| format!("node {id}"));
        let mut out = format!(
            "leader: {leader}, term {} (as seen by node {})\n",
            self.term, self.node_id
        );
        out.push_str(&list(
            &[
                "ID",
                "ROLE",
                "VOTER",
                "RAFT ADDR",
                "API ADDR",
                "APPLIED",
                "LAG",
                "REACHABLE",
            ],
            self.members.iter().map(|m| {
                vec![
                    m.id.to_string(),
                    m.role.clone(),
                    yes_no(m.voter).to_owned(),
                    m.raft_addr.clone(),
                    m.api_addr.clone(),
                    opt_u64(m.applied_index),
                    opt_u64(m.lag),
                    yes_no(m.reachable).to_owned(),
                ]
            }),
        ));
        out
    }
}

impl Render for ClusterDigest {
    fn table(&self) -> String {
        fields(&[
            ("node", self.node_id.to_string()),
            ("applied index", self.applied_index.to_string()),
            ("digest", self.digest.clone()),
            ("tenants", self.tenants.to_string()),
            ("apps", self.apps.to_string()),
            ("environments", self.environments.to_string()),
            ("configs", self.configs.to_string()),
            ("versions", self.versions.to_string()),
            ("idempotency records", self.idempotency_records.to_string()),
        ])
    }
}

/// A membership change or leadership transfer: the API's answer, with a sentence for people
/// (not part of the JSON / YAML, which are exactly the API's shape).
#[derive(Debug, Clone, Serialize)]
pub struct ClusterChanged {
    #[serde(skip)]
    pub summary: String,
    #[serde(flatten)]
    pub change: ClusterChange,
}

impl Render for ClusterChanged {
    fn table(&self) -> String {
        let leader = self
            .change
            .leader_id
            .map_or("unknown".to_owned(), |id| format!("node {id}"));
        let mut out = format!("{}\n", self.summary);
        out.push_str(&fields(&[
            ("revision", self.change.revision.to_string()),
            ("leader", leader),
        ]));
        out
    }
}

impl Render for KmsStatus {
    fn table(&self) -> String {
        let mut rows = vec![("current KEK", self.current_kek_id.clone())];
        for (kek, n) in &self.data_keys_by_kek {
            rows.push(("data keys", format!("{n} wrapped by {kek}")));
        }
        fields(&rows)
    }
}

impl Render for KmsRewrapped {
    fn table(&self) -> String {
        format!(
            "{}{}",
            fields(&[
                ("rewrapped", self.rewrapped.to_string()),
                ("remaining", self.remaining.to_string()),
            ]),
            self.status.table()
        )
    }
}

impl Render for SnapshotTaken {
    fn table(&self) -> String {
        fields(&[("snapshot index", self.snapshot_index.to_string())])
    }
}

/// `admin cluster backup`: what was written where.
#[derive(Debug, Clone, Serialize)]
pub struct BackupWritten {
    pub file: String,
    pub bytes: u64,
    /// The log index the backup covers, when the server said.
    pub revision: Option<u64>,
}

impl Render for BackupWritten {
    fn table(&self) -> String {
        fields(&[
            ("file", self.file.clone()),
            ("bytes", self.bytes.to_string()),
            ("revision", opt_u64(self.revision)),
        ])
    }
}

// ---- identity, access and audit ----------------------------------------------------------

pub(crate) fn opt_text(v: &Option<String>) -> String {
    v.as_deref()
        .map_or(NONE.to_owned(), |s| or_none(s).to_owned())
}

fn grants_text<'a>(grants: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let text: Vec<String> = grants
        .into_iter()
        .map(|(role, scope)| format!("{role} on {scope}"))
        .collect();
    if text.is_empty() {
        NONE.to_owned()
    } else {
        text.join(", ")
    }
}

impl Render for WhoAmI {
    fn table(&self) -> String {
        let mut out = format!("principal: {}\n", self.principal);
        if self.bindings.is_empty() {
            out.push_str("(no role bindings: only whoami and logout are allowed)\n");
        } else {
            out.push_str(&list(
                &["BINDING", "ROLE", "SCOPE"],
                self.bindings
                    .iter()
                    .map(|b| vec![b.id.clone(), b.role.clone(), b.scope.clone()]),
            ));
        }
        out
    }
}

impl Render for UserView {
    fn table(&self) -> String {
        fields(&[
            ("username", self.username.clone()),
            ("display name", opt_text(&self.display_name)),
            ("disabled", yes_no(self.disabled).to_owned()),
            ("created", self.created_at.clone()),
            ("updated", self.updated_at.clone()),
        ])
    }
}

impl Render for UserList {
    fn table(&self) -> String {
        list(
            &["USERNAME", "DISPLAY NAME", "DISABLED", "CREATED"],
            self.users.iter().map(|u| {
                vec![
                    u.username.clone(),
                    opt_text(&u.display_name),
                    yes_no(u.disabled).to_owned(),
                    u.created_at.clone(),
                ]
            }),
        )
    }
}

/// Printed under a new service token's secret.
pub const TOKEN_SHOWN_ONCE: &str =
    "This is the only time the token is shown: store it now (it is kept only as a hash).";

impl Render for TokenCreated {
    fn table(&self) -> String {
        let mut out = fields(&[
            ("id", self.id.clone()),
            ("principal", format!("token:{}", self.id)),
            ("name", self.name.clone()),
            ("expires", opt_text(&self.expires_at)),
            (
                "bindings",
                grants_text(
                    self.bindings
                        .iter()
                        .map(|b| (b.role.as_str(), b.scope.as_str())),
                ),
            ),
            ("token", self.token.clone()),
        ]);
        out.push_str(TOKEN_SHOWN_ONCE);
        out.push('\n');
        out
    }
}

impl Render for TokenView {
    fn table(&self) -> String {
        fields(&[
            ("id", self.id.clone()),
            ("name", self.name.clone()),
            ("created", self.created_at.clone()),
            ("created by", self.created_by.clone()),
            ("expires", opt_text(&self.expires_at)),
        ])
    }
}

impl Render for TokenList {
    fn table(&self) -> String {
        list(
            &["ID", "NAME", "CREATED", "EXPIRES", "CREATED BY"],
            self.tokens.iter().map(|t| {
                vec![
                    t.id.clone(),
                    t.name.clone(),
                    t.created_at.clone(),
                    opt_text(&t.expires_at),
                    t.created_by.clone(),
                ]
            }),
        )
    }
}

impl Render for RoleBindingView {
    fn table(&self) -> String {
        fields(&[
            ("id", self.id.clone()),
            ("principal", self.principal.clone()),
            ("role", self.role.clone()),
            ("scope", self.scope.clone()),
            ("created", self.created_at.clone()),
            ("created by", self.created_by.clone()),
        ])
    }
}

impl Render for RoleBindingList {
    fn table(&self) -> String {
        list(
            &["ID", "PRINCIPAL", "ROLE", "SCOPE", "CREATED BY"],
            self.role_bindings.iter().map(|b| {
                vec![
                    b.id.clone(),
                    b.principal.clone(),
                    b.role.clone(),
                    b.scope.clone(),
                    b.created_by.clone(),
                ]
            }),
        )
    }
}

impl Render for AuditPage {
    fn table(&self) -> String {
        let mut out = list(
            &["TIME", "ACTOR", "ACTION", "RESOURCE", "OUTCOME", "REASON"],
            self.records.iter().map(|r| {
                vec![
                    r.time.clone(),
                    r.actor.clone(),
                    r.action.clone(),
                    r.resource.clone(),
                    r.outcome.clone(),
                    opt_text(&r.reason),
                ]
            }),
        );
        if let Some(cursor) = &self.next_cursor {
            let _ = writeln!(out, "more: --cursor {cursor}");
        }
        out
    }
}

/// A deletion (users, tokens, role bindings answer 204, so there is nothing else to show).
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// `user`, `token`, `role binding`.
    pub deleted: &'static str,
    pub id: String,
}

impl Removed {
    pub fn new(deleted: &'static str, id: impl Into<String>) -> Self {
        Removed {
            deleted,
            id: id.into(),
        }
    }
}

impl Render for Removed {
    fn table(&self) -> String {
        format!("{} {} deleted\n", self.deleted, self.id)
    }
}

/// `conflux login` (never the token: it is in the credentials file).
#[derive(Debug, Clone, Serialize)]
pub struct LoggedIn {
    pub endpoint: String,
    pub principal: String,
    pub expires_at: String,
    pub credentials_file: String,
}

impl Render for LoggedIn {
    fn table(&self) -> String {
        format!(
            "logged in to {} as {} until {}\ncredentials saved in {}\n",
            self.endpoint, self.principal, self.expires_at, self.credentials_file
        )
    }
}

/// `conflux logout`.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedOut {
    pub endpoint: String,
    /// The server ended the session (false: it was already invalid, or there was none).
    pub session_ended: bool,
    /// The saved login for the endpoint was removed from the credentials file.
    pub credentials_removed: bool,
}

impl Render for LoggedOut {
    fn table(&self) -> String {
        match (self.session_ended, self.credentials_removed) {
            (false, false) => format!("not logged in to {}\n", self.endpoint),
            (true, true) => format!(
                "logged out of {} (session ended, saved login removed)\n",
                self.endpoint
            ),
            (true, false) => format!("logged out of {} (session ended)\n", self.endpoint),
            (false, true) => format!(
                "logged out of {} (the session had already ended; saved login removed)\n",
                self.endpoint
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use conflux_api_types::{Format, MemberStatus, Quotas, TenantStatus, VersionView};

    use super::*;

    fn rules() -> Vec<ReleaseRule> {
        vec![
            ReleaseRule::default_to(4),
            ReleaseRule {
                labels: BTreeMap::from([("canary".into(), "true".into())]),
                percent: Some(10),
                version_id: 5,
                priority: 100,
            },
        ]
    }

    fn releases() -> ReleasesView {
        ReleasesView {
            config_id: 7,
            revision: 42,
            releases: rules(),
            comment: Some("canary 10%".into()),
        }
    }

    fn tenant() -> TenantView {
        TenantView {
            name: "acme".into(),
            display_name: String::new(),
            status: TenantStatus::Active,
            quotas: Quotas::default(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
            revision: 3,
        }
    }

    #[test]
    fn rules_table_shows_order_and_defaults() {
        let text = releases().table();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["#", "ORDER", "PRIORITY", "LABELS", "PERCENT", "VERSION"]
        );
        let default: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(default, ["0", "2", "0", "(default)", "-", "4"]);
        let canary: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(canary, ["1", "1", "100", "canary=true", "10%", "5"]);
        assert_eq!(lines[3], "revision: 42");
        assert_eq!(lines[4], "comment: canary 10%");
    }

    #[test]
    fn empty_rules_and_lists() {
        let v = ReleasesView {
            releases: vec![],
            comment: None,
            ..releases()
        };
        assert_eq!(
            v.table(),
            "(no rules: the config is not published)\nrevision: 42\n"
        );
        assert_eq!(TenantList { tenants: vec![] }.table(), "(none)\n");
    }

    #[test]
    fn lists_are_columns() {
        let text = TenantList {
            tenants: vec![tenant()],
        }
        .table();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "DISPLAY", "NAME", "STATUS", "CREATED", "REVISION"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["acme", "-", "active", "2026-01-01T00:00:00.000Z", "3"]
        );
        assert!(!text.lines().any(|l| l.ends_with(' ') || l.starts_with(' ')));
    }

    #[test]
    fn single_entities_are_field_value_rows() {
        let text = tenant().table();
        assert!(text.starts_with("name:"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("max apps:") && l.ends_with("100"))
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("display name:") && l.ends_with('-'))
        );
    }

    #[test]
    fn json_and_yaml_are_the_wire_shape() {
        let v = releases();
        let json = render(&v, OutputFormat::Json).unwrap();
        assert!(json.ends_with("}\n"));
        let back: ReleasesView = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        let yaml = render(&v, OutputFormat::Yaml).unwrap();
        let back: ReleasesView = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, v);
        assert!(yaml.contains("revision: 42"), "{yaml}");
    }

    #[test]
    fn status_with_resolution() {
        let s = ReleaseStatus {
            releases: releases(),
            resolved: Some(Resolved {
                labels: BTreeMap::from([("canary".into(), "true".into())]),
                client_id: Some("c1".into()),
                answer: ResolveResponse {
                    version_id: 5,
                    rule_index: 1,
                    rule: rules()[1].clone(),
                    revision: 42,
                },
            }),
        };
        let text = s.table();
        assert!(
            text.ends_with("canary=true and client id c1 -> version 5 (rule #1)\n"),
            "{text}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&s, OutputFormat::Json).unwrap()).unwrap();
        assert_eq!(json["config_id"], 7);
        assert_eq!(json["resolved"]["version_id"], 5);
        assert_eq!(json["resolved"]["labels"]["canary"], "true");
        let yaml = render(&s, OutputFormat::Yaml).unwrap();
        let back: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, json);
        // Without labels there is no resolution in any output.
        let plain = ReleaseStatus {
            releases: releases(),
            resolved: None,
        };
        let json = render(&plain, OutputFormat::Json).unwrap();
        assert!(!json.contains("resolved"));
    }

    fn cluster() -> ClusterStatus {
        let member = |id: u64, role: &str, reachable: bool| MemberStatus {
            id,
            role: role.into(),
            voter: role != "learner",
            raft_addr: format!("10.0.0.{id}:9000"),
            api_addr: format!("10.0.0.{id}:8080"),
            reachable,
            term: reachable.then_some(3),
            applied_index: reachable.then_some(40 + id),
            last_log_index: reachable.then_some(45),
            lag: reachable.then_some(5 - id),
        };
        ClusterStatus {
            node_id: 2,
            leader_id: Some(1),
            term: 3,
            members: vec![
                member(1, "leader", true),
                member(2, "follower", true),
                member(3, "unknown", false),
                member(4, "learner", true),
            ],
        }
    }

    #[test]
    fn cluster_status_table_and_wire_shape() {
        let s = cluster();
        let text = s.table();
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            text.lines().next(),
            Some("leader: node 1, term 3 (as seen by node 2)")
        );
        assert_eq!(
            lines[1],
            [
                "ID",
                "ROLE",
                "VOTER",
                "RAFT",
                "ADDR",
                "API",
                "ADDR",
                "APPLIED",
                "LAG",
                "REACHABLE"
            ]
        );
        assert_eq!(
            lines[2],
            [
                "1",
                "leader",
                "yes",
                "10.0.0.1:9000",
                "10.0.0.1:8080",
                "41",
                "4",
                "yes"
            ]
        );
        assert_eq!(
            lines[4],
            [
                "3",
                "unknown",
                "yes",
                "10.0.0.3:9000",
                "10.0.0.3:8080",
                "-",
                "-",
                "no"
            ]
        );
        assert_eq!(lines[5][..3], ["4", "learner", "no"]);
        assert_eq!(lines.len(), 6);
        let json = render(&s, OutputFormat::Json).unwrap();
        assert_eq!(serde_json::from_str::<ClusterStatus>(&json).unwrap(), s);
        let yaml = render(&s, OutputFormat::Yaml).unwrap();
        assert_eq!(serde_norway::from_str::<ClusterStatus>(&yaml).unwrap(), s);
        let none = ClusterStatus {
            leader_id: None,
            ..s
        };
        assert!(none.table().starts_with("leader: none, term 3"));
    }

    #[test]
    fn cluster_digest_table_and_wire_shape() {
        let d = ClusterDigest {
            node_id: 3,
            applied_index: 57,
            digest: format!("sha256:{}", "0f".repeat(32)),
            tenants: 1,
            apps: 2,
            environments: 3,
            configs: 4,
            versions: 5,
            idempotency_records: 6,
        };
        let text = d.table();
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{name}:")))
                .map(|l| l[name.len() + 1..].trim().to_owned())
        };
        assert_eq!(row("node").as_deref(), Some("3"));
        assert_eq!(row("applied index").as_deref(), Some("57"));
        assert_eq!(row("digest"), Some(d.digest.clone()));
        assert_eq!(row("versions").as_deref(), Some("5"));
        let json = render(&d, OutputFormat::Json).unwrap();
        assert_eq!(serde_json::from_str::<ClusterDigest>(&json).unwrap(), d);
        let yaml = render(&d, OutputFormat::Yaml).unwrap();
        assert_eq!(serde_norway::from_str::<ClusterDigest>(&yaml).unwrap(), d);
    }

    #[test]
    fn cluster_changes_are_the_api_shape_with_a_sentence_for_people() {
        let c = ClusterChanged {
            summary: "node 4 removed".into(),
            change: ClusterChange {
                revision: 57,
                leader_id: Some(1),
            },
        };
        let text = c.table();
        assert_eq!(text.lines().next(), Some("node 4 removed"));
        assert!(
            text.lines()
                .any(|l| l.starts_with("revision:") && l.ends_with(" 57"))
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("leader:") && l.ends_with("node 1"))
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&c, OutputFormat::Json).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({"revision": 57, "leader_id": 1}));
        let back: ClusterChange =
            serde_norway::from_str(&render(&c, OutputFormat::Yaml).unwrap()).unwrap();
        assert_eq!(back, c.change);
        let snap = SnapshotTaken { snapshot_index: 9 };
        assert_eq!(
            snap.table().split_whitespace().collect::<Vec<_>>(),
            ["snapshot", "index:", "9"]
        );
        let written = BackupWritten {
            file: "b.snap".into(),
            bytes: 10,
            revision: None,
        };
        assert!(
            written
                .table()
                .lines()
                .any(|l| l.starts_with("revision:") && l.ends_with('-'))
        );
    }

    #[test]
    fn versions_and_configs() {
        let list = VersionList {
            versions: vec![VersionView {
                config_id: 7,
                version_id: 2,
                hash: "sha256:ab".into(),
                size: 12,
                format: Format::Toml,
                description: "bump pool".into(),
                author: None,
                created_at: "t".into(),
                revision: 9,
            }],
            next_cursor: Some("c2".into()),
        };
        let text = list.table();
        assert!(text.contains("bump pool"));
        assert!(text.ends_with("more: --cursor c2\n"));
        let created = VersionCreated {
            version_id: 0,
            hash: "sha256:ab".into(),
            revision: 9,
            validate_only: true,
        };
        assert_eq!(created.table(), "valid: sha256:ab (nothing was stored)\n");
        let config = ConfigView {
            id: 7,
            tenant: "acme".into(),
            app: "billing".into(),
            env: "prod".into(),
            name: "db.toml".into(),
            path: "acme/billing/prod/db.toml".into(),
            format: Format::Toml,
            schema: None,
            retention: None,
            description: String::new(),
            latest_version: 0,
            revision: 5,
            created_at: "t".into(),
            updated_at: "t".into(),
            encrypted: false,
        };
        let text = config.table();
        assert!(
            text.lines()
                .any(|l| l.starts_with("latest version:") && l.ends_with("(no versions yet)"))
        );
        let yaml = render(
            &ConfigList {
                configs: vec![config.clone()],
            },
            OutputFormat::Yaml,
        )
        .unwrap();
        let back: ConfigList = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back.configs, vec![config]);
    }

    #[test]
    fn identity_tables() {
        let created = TokenCreated {
            id: "t1".into(),
            name: "billing-reader".into(),
            token: "cfx_s3cr3t".into(),
            expires_at: None,
            bindings: vec![conflux_api_types::RoleBindingView {
                id: "b1".into(),
                principal: "token:t1".into(),
                role: "reader".into(),
                scope: "acme/billing".into(),
                created_at: "t".into(),
                created_by: "user:alice".into(),
            }],
        };
        let text = created.table();
        assert!(
            text.lines()
                .any(|l| l.starts_with("token:") && l.ends_with("cfx_s3cr3t")),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l.ends_with("reader on acme/billing")),
            "{text}"
        );
        assert!(text.ends_with(&format!("{TOKEN_SHOWN_ONCE}\n")), "{text}");
        // Scripts get the wire shape, secret included (that is what they asked for).
        let json: serde_json::Value =
            serde_json::from_str(&render(&created, OutputFormat::Json).unwrap()).unwrap();
        assert_eq!(json["token"], "cfx_s3cr3t");

        let me = WhoAmI {
            principal: "token:t1".into(),
            bindings: vec![],
        };
        assert!(me.table().contains("no role bindings"), "{}", me.table());
        let page = AuditPage {
            records: vec![],
            next_cursor: Some("c9".into()),
        };
        assert_eq!(page.table(), "(none)\nmore: --cursor c9\n");
        assert_eq!(Removed::new("token", "t1").table(), "token t1 deleted\n");
        assert_eq!(
            render(&Removed::new("role binding", "b1"), OutputFormat::Json).unwrap(),
            "{\n  \"deleted\": \"role binding\",\n  \"id\": \"b1\"\n}\n"
        );
        let out = LoggedOut {
            endpoint: "http://h:1".into(),
            session_ended: true,
            credentials_removed: true,
        };
        assert!(out.table().starts_with("logged out of http://h:1"));
    }
}
