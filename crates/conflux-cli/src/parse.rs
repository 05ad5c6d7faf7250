//! Parsers of command-line values: entity paths, label lists, release rules and durations.
//!
//! Each is a clap `value_parser`, so bad input is a usage error (exit code 2) that names the
//! flag, before anything is sent. Names are validated with the domain's own rules, so the
//! CLI refuses exactly what the server would.

use std::collections::BTreeMap;
use std::time::Duration;

use conflux_api_types::{BindingSpec, ReleaseRule};
use conflux_domain::{ConfigPath, Principal, Role, Scope, validate_label_key, validate_name};

/// `tenant/app/env/name`.
pub fn config_path(s: &str) -> Result<ConfigPath, String> {
    ConfigPath::parse(s).map_err(|e| e.to_string())
}

/// `tenant/app`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPath {
    pub tenant: String,
    pub app: String,
}

/// `tenant/app/env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPath {
    pub tenant: String,
    pub app: String,
    pub env: String,
}

/// Splits `s` into exactly `N` `/`-separated names, each validated as a tenant, app or
/// environment name (`fields` names them in that order).
fn names<const N: usize>(s: &str, fields: [&str; N]) -> Result<[String; N], String> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() != N {
        return Err(format!("{s:?} is not of the form {}", fields.join("/")));
    }
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for ((slot, field), part) in out.iter_mut().zip(fields).zip(parts) {
        validate_name(field, part).map_err(|e| e.to_string())?;
        *slot = part.to_owned();
    }
    Ok(out)
}

/// A tenant name.
pub fn tenant_name(s: &str) -> Result<String, String> {
    let [tenant] = names(s, ["tenant"])?;
    Ok(tenant)
}

pub fn app_path(s: &str) -> Result<AppPath, String> {
    let [tenant, app] = names(s, ["tenant", "app"])?;
    Ok(AppPath { tenant, app })
}

pub fn env_path(s: &str) -> Result<EnvPath, String> {
    let [tenant, app, env] = names(s, ["tenant", "app", "env"])?;
    Ok(EnvPath { tenant, app, env })
}

/// Labels given as `k=v,k2=v2`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(pub BTreeMap<String, String>);

/// Parses `k=v,k2=v2`. Keys follow the label-key rules (lower-case letters, digits, `.`,
/// `_`, `-`); values are trimmed and may contain `=` but not `,`. An empty string is no
/// labels.
pub fn labels(s: &str) -> Result<Labels, String> {
    let mut map = BTreeMap::new();
    for item in s.split(',').map(str::trim) {
        if item.is_empty() {
            if s.trim().is_empty() {
                continue;
            }
            return Err(format!("{s:?} has an empty item; write k=v,k2=v2"));
        }
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("label {item:?} has no '='; write k=v"))?;
        insert_label(&mut map, k.trim(), v.trim())?;
    }
    Ok(Labels(map))
}

fn insert_label(map: &mut BTreeMap<String, String>, key: &str, value: &str) -> Result<(), String> {
    validate_label_key(&format!("labels.{key}"), key).map_err(|e| e.to_string())?;
    if map.insert(key.to_owned(), value.to_owned()).is_some() {
        return Err(format!("label {key:?} is given twice"));
    }
    Ok(())
}

/// The `--rule` syntax, shown in `--help`.
pub const RULE_SYNTAX: &str = "\
A rule is comma-separated key=value items:
  version=N         the version clients matching this rule get (required)
  labels=k:v;k2:v2  labels the client must all have (';' between labels, ':' inside one)
  percent=P         only clients whose bucket (from their client id) is below P, 0-100
  priority=N        rules are tried by priority, highest first (default 0)
A rule without labels and percent is the default rule; a non-empty rule list needs exactly
one. Label values are trimmed and cannot contain ',' or ';'.
Example: --rule 'labels=canary:true;region:eu,percent=10,version=5,priority=100' --rule version=4";

/// Parses one `--rule` (see [`RULE_SYNTAX`]).
pub fn rule(s: &str) -> Result<ReleaseRule, String> {
    let mut labels_seen = None;
    let mut percent = None;
    let mut version = None;
    let mut priority = None;
    for item in s.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!(
                "rule {s:?} has an empty item; items are separated by single commas"
            ));
        }
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("rule item {item:?} has no '='; write key=value"))?;
        let (key, value) = (key.trim(), value.trim());
        let duplicate = || format!("rule {s:?} gives {key} twice");
        match key {
            "labels" => {
                if labels_seen.is_some() {
                    return Err(duplicate());
                }
                let mut map = BTreeMap::new();
                for label in value.split(';').map(str::trim) {
                    if label.is_empty() {
                        if value.is_empty() {
                            continue;
                        }
                        return Err(format!("labels {value:?} has an empty label"));
                    }
                    let (k, v) = label.split_once(':').ok_or_else(|| {
                        format!("label {label:?} has no ':'; write labels=key:value;key2:value2")
                    })?;
                    insert_label(&mut map, k.trim(), v.trim())?;
                }
                labels_seen = Some(map);
            }
            "percent" => {
                if percent.is_some() {
                    return Err(duplicate());
                }
                let p = value
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= 100)
                    .ok_or_else(|| {
                        format!("percent must be a whole number 0-100, got {value:?}")
                    })?;
                percent = Some(p);
            }
            "version" => {
                if version.is_some() {
                    return Err(duplicate());
                }
                version = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("version must be a version number, got {value:?}"))?,
                );
            }
            "priority" => {
                if priority.is_some() {
                    return Err(duplicate());
                }
                priority = Some(
                    value
                        .parse::<i32>()
                        .map_err(|_| format!("priority must be a whole number, got {value:?}"))?,
                );
            }
            other => {
                return Err(format!(
                    "unknown rule item {other:?}; expected labels, percent, version or priority"
                ));
            }
        }
    }
    let version_id = version.ok_or_else(|| format!("rule {s:?} has no version=N"))?;
    Ok(ReleaseRule {
        labels: labels_seen.unwrap_or_default(),
        percent,
        version_id,
        priority: priority.unwrap_or(0),
    })
}

/// A duration such as `10s`, `500ms` or `2m`; a bare number is seconds.
pub fn timeout(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration (e.g. 10s, 500ms, 2m): {e}"))?,
    };
    if d.is_zero() {
        return Err("the timeout must be more than zero".to_owned());
    }
    Ok(d)
}

// ---- identity (contract section 6) --------------------------------------------------------

/// A username (the rules of a tenant name).
pub fn username(s: &str) -> Result<String, String> {
    validate_name("username", s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// A role: `cluster_admin`, `tenant_admin`, `publisher`, `editor`, `viewer` or `reader`.
pub fn role(s: &str) -> Result<String, String> {
    s.parse::<Role>()
        .map(|r| r.as_str().to_owned())
        .map_err(|e| e.to_string())
}

/// A scope: `*`, `tenant`, `tenant/app` or `tenant/app/env`.
pub fn scope(s: &str) -> Result<String, String> {
    Scope::parse("scope", s)
        .map(|s| s.to_string())
        .map_err(|e| e.to_string())
}

/// A principal: `user:<username>` or `token:<id>`.
pub fn principal(s: &str) -> Result<String, String> {
    Principal::parse("principal", s)
        .map(|p| p.to_string())
        .map_err(|e| e.to_string())
}

/// `--bind role=scope`, e.g. `reader=acme/billing/prod`.
pub fn binding(s: &str) -> Result<BindingSpec, String> {
    let (r, sc) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} has no '='; write role=scope, e.g. reader=acme/billing"))?;
    Ok(BindingSpec {
        role: role(r.trim())?,
        scope: scope(sc.trim())?,
    })
}

/// A point in time for the API (RFC 3339): either RFC 3339 itself (passed on as given; the
/// server checks it), or a duration (`90d`, `12h`) counted back from now for `--since` and
/// `--until`.
pub fn time_ago(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(
            "an empty time; give RFC 3339 (2030-01-31T12:00:00Z) or a duration (1h)".into(),
        );
    }
    match humantime::parse_duration(s) {
        Ok(d) => std::time::SystemTime::now()
            .checked_sub(d)
            .map(|t| humantime::format_rfc3339(t).to_string())
            .ok_or_else(|| format!("{s:?} reaches before the epoch")),
        Err(_) => Ok(s.to_owned()),
    }
}

/// `--expires-in DURATION`: now plus the duration, in RFC 3339.
pub fn time_from_now(s: &str) -> Result<String, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration (e.g. 90d, 12h): {e}"))?;
    std::time::SystemTime::now()
        .checked_add(d)
        .map(|t| humantime::format_rfc3339(t).to_string())
        .ok_or_else(|| format!("{s:?} is too far in the future"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn full_rule() {
        let r = rule("labels=canary:true;region:eu,percent=10,version=5,priority=100").unwrap();
        assert_eq!(
            r,
            ReleaseRule {
                labels: map(&[("canary", "true"), ("region", "eu")]),
                percent: Some(10),
                version_id: 5,
                priority: 100,
            }
        );
    }

    #[test]
    fn default_rule_and_spacing() {
        let r = rule("version=4").unwrap();
        assert!(r.is_default());
        assert_eq!(r, ReleaseRule::default_to(4));
        let r = rule(" version = 4 , priority = -3 , labels = ").unwrap();
        assert!(r.is_default());
        assert_eq!(r.priority, -3);
        // Items in any order; label values keep ':' after the first and lose outer spaces.
        let r = rule("priority=1,labels= ip : ::1 ; host:a ,version=2").unwrap();
        assert_eq!(r.labels, map(&[("ip", "::1"), ("host", "a")]));
        let r = rule("percent=0,version=1").unwrap();
        assert_eq!(r.percent, Some(0));
        assert!(!r.is_default());
    }

    #[test]
    fn rule_errors_are_clear() {
        let cases = [
            ("", "empty item"),
            ("version=1,,priority=2", "empty item"),
            ("labels=canary:true", "no version=N"),
            ("version", "no '='"),
            ("version=x", "version must be"),
            ("version=-1", "version must be"),
            ("version=1,version=2", "gives version twice"),
            ("version=1,percent=101", "0-100"),
            ("version=1,percent=-1", "0-100"),
            ("version=1,percent=5.5", "0-100"),
            ("version=1,priority=1e3", "priority must be"),
            ("version=1,priority=99999999999", "priority must be"),
            ("version=1,labels=canary", "has no ':'"),
            ("version=1,labels=a:1;;b:2", "empty label"),
            ("version=1,labels=a:1;a:2", "given twice"),
            ("version=1,labels=Canary:true", "labels.Canary"),
            ("version=1,labels=:x", "must not be empty"),
            ("version=1,weight=3", "unknown rule item \"weight\""),
            ("version=1,labels=a:b,labels=c:d", "gives labels twice"),
        ];
        for (input, expected) in cases {
            let err = rule(input).unwrap_err();
            assert!(err.contains(expected), "{input:?}: {err}");
        }
    }

    #[test]
    fn label_lists() {
        assert_eq!(
            labels("canary=true, region = eu").unwrap(),
            Labels(map(&[("canary", "true"), ("region", "eu")]))
        );
        assert_eq!(labels("").unwrap(), Labels::default());
        assert_eq!(labels("k=a=b").unwrap().0["k"], "a=b");
        assert_eq!(labels("k=").unwrap().0["k"], "");
        for (bad, expected) in [
            ("canary", "no '='"),
            ("a=1,,b=2", "empty item"),
            ("a=1,a=2", "twice"),
            ("Region=eu", "labels.Region"),
            ("a b=1", "contains ' '"),
        ] {
            let err = labels(bad).unwrap_err();
            assert!(err.contains(expected), "{bad:?}: {err}");
        }
    }

    #[test]
    fn config_paths() {
        let p = config_path("acme/billing/prod/database.toml").unwrap();
        assert_eq!(
            p,
            ConfigPath::new("acme", "billing", "prod", "database.toml")
        );
        for (bad, expected) in [
            ("acme/billing/prod", "tenant/app/env/name"),
            ("acme/billing/prod/a/b", "tenant/app/env/name"),
            ("Acme/billing/prod/x", "tenant"),
            ("acme//prod/x", "app"),
            ("acme/billing/prod/.hidden", "name"),
            ("acme/billing/../x", "env"),
        ] {
            let err = config_path(bad).unwrap_err();
            assert!(err.contains(expected), "{bad:?}: {err}");
        }
    }

    #[test]
    fn shorter_paths() {
        assert_eq!(tenant_name("acme").unwrap(), "acme");
        assert!(
            tenant_name("acme/x")
                .unwrap_err()
                .contains("of the form tenant")
        );
        assert_eq!(
            app_path("acme/billing").unwrap(),
            AppPath {
                tenant: "acme".into(),
                app: "billing".into()
            }
        );
        assert!(app_path("acme").unwrap_err().contains("tenant/app"));
        assert!(app_path("acme/Billing").unwrap_err().starts_with("app:"));
        assert_eq!(env_path("a/b/c").unwrap().env, "c");
        assert!(env_path("a/b/c/d").unwrap_err().contains("tenant/app/env"));
        assert!(env_path("a/b/-c").unwrap_err().starts_with("env:"));
    }

    #[test]
    fn timeouts() {
        assert_eq!(timeout("5").unwrap(), Duration::from_secs(5));
        assert_eq!(timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(timeout("2m").unwrap(), Duration::from_secs(120));
        assert!(timeout("0").is_err());
        assert!(timeout("soon").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn identity_values() {
        assert_eq!(binding("reader = acme/billing").unwrap().role, "reader");
        assert_eq!(binding("cluster_admin=*").unwrap().scope, "*");
        assert!(binding("reader").unwrap_err().contains("role=scope"));
        assert!(binding("owner=acme").unwrap_err().contains("not a role"));
        assert!(binding("reader=a/b/c/d").is_err());
        assert_eq!(principal("user:alice").unwrap(), "user:alice");
        assert!(principal("alice").is_err());
        assert!(principal("token:ABC").is_err());
        assert!(username("Alice").is_err());
        assert_eq!(
            time_ago("2030-01-01T00:00:00Z").unwrap(),
            "2030-01-01T00:00:00Z"
        );
        let an_hour_ago = time_ago("1h").unwrap();
        assert!(an_hour_ago.ends_with('Z'), "{an_hour_ago}");
        assert!(an_hour_ago < humantime::format_rfc3339(std::time::SystemTime::now()).to_string());
        assert!(time_from_now("soon").is_err());
        assert!(time_from_now("90d").unwrap().ends_with('Z'));
    }
}
