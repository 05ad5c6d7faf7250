//! Plan-time checks shared by resources and data sources. Each check looks at one attribute
//! of a configuration, skips it while it is unknown or null (required-ness is Terraform's
//! job), and reports a diagnostic naming the attribute. The rules are the contract's, taken
//! from `conflux-domain` where it exports them.

use std::str::FromStr;

use conflux_domain::{Format, MAX_CLIENT_LABELS, MAX_LABEL_VALUE_LEN};

use crate::protocol::diag::{Diagnostic, Diagnostics};
use crate::protocol::value::{Obj, Value};

/// Descriptions and comments.
pub const MAX_DESCRIPTION_BYTES: usize = conflux_domain::MAX_DESCRIPTION_LEN;
/// Tenant display names.
pub const MAX_DISPLAY_NAME_BYTES: usize = conflux_domain::MAX_DISPLAY_NAME_LEN;

fn invalid(obj: &Obj, name: &str, detail: impl Into<String>) -> Diagnostic {
    Diagnostic::error(format!("Invalid {name}"), detail).at(obj.attr_path(name))
}

/// Tenant, app and environment names: `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn name(obj: &Obj, attr: &str, diags: &mut Diagnostics) {
    if let Some(v) = obj.known_str(attr)
        && let Err(e) = conflux_domain::validate_name(attr, v)
    {
        diags.push(invalid(obj, attr, e.to_string()));
    }
}

/// Config names: `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`.
pub fn config_name(obj: &Obj, attr: &str, diags: &mut Diagnostics) {
    if let Some(v) = obj.known_str(attr)
        && let Err(e) = conflux_domain::validate_config_name(attr, v)
    {
        diags.push(invalid(obj, attr, e.to_string()));
    }
}

pub fn max_len(obj: &Obj, attr: &str, max: usize, diags: &mut Diagnostics) {
    if let Some(v) = obj.known_str(attr)
        && v.len() > max
    {
        diags.push(invalid(
            obj,
            attr,
            format!(
                "{attr} is {} bytes long; at most {max} are allowed",
                v.len()
            ),
        ));
    }
}

/// One of the seven formats; returns it when known and valid.
pub fn format(obj: &Obj, attr: &str, diags: &mut Diagnostics) -> Option<Format> {
    let v = obj.known_str(attr)?;
    match Format::from_str(v) {
        Ok(f) => Some(f),
        Err(e) => {
            diags.push(invalid(obj, attr, e));
            None
        }
    }
}

/// A whole number in `min..=max`; returns it when known and valid.
pub fn int_range(
    obj: &Obj,
    attr: &str,
    min: i64,
    max: i64,
    diags: &mut Diagnostics,
) -> Option<i64> {
    let n = obj.known_number(attr)?;
    match n.as_i64() {
        Some(i) if (min..=max).contains(&i) => Some(i),
        _ => {
            diags.push(invalid(
                obj,
                attr,
                format!("{attr} must be a whole number between {min} and {max}, got {n}"),
            ));
            None
        }
    }
}

/// One of `allowed`.
pub fn one_of(obj: &Obj, attr: &str, allowed: &[&str], diags: &mut Diagnostics) {
    if let Some(v) = obj.known_str(attr)
        && !allowed.contains(&v)
    {
        diags.push(invalid(
            obj,
            attr,
            format!("{v:?} is not one of {}", allowed.join(", ")),
        ));
    }
}

/// One of the six built-in roles (`reader` ... `cluster_admin`).
pub fn role(obj: &Obj, attr: &str, diags: &mut Diagnostics) {
    if let Some(v) = obj.known_str(attr)
        && let Err(e) = conflux_domain::Role::from_str(v)
    {
        diags.push(invalid(obj, attr, e.to_string()));
    }
}

/// A scope: `*`, `tenant`, `tenant/app` or `tenant/app/env`, each part a name.
pub fn scope(obj: &Obj, attr: &str, diags: &mut Diagnostics) {
    if let Some(v) = obj.known_str(attr)
        && let Err(e) = conflux_domain::Scope::parse(attr, v)
    {
        diags.push(invalid(obj, attr, e.to_string()));
    }
}

/// A principal: `user:<username>` or `token:<id>`.
pub fn principal(obj: &Obj, attr: &str, diags: &mut Diagnostics) {
    if let Some(v) = obj.known_str(attr)
        && let Err(e) = conflux_domain::Principal::parse(attr, v)
    {
        diags.push(invalid(obj, attr, e.to_string()));
    }
}

/// A JSON document that is a JSON Schema (object or boolean) the server can compile.
pub fn json_schema(obj: &Obj, attr: &str, diags: &mut Diagnostics) -> bool {
    let Some(text) = obj.known_str(attr) else {
        return false;
    };
    match conflux_domain::CompiledSchema::compile(text) {
        Ok(_) => true,
        Err(e) => {
            diags.push(invalid(obj, attr, e.to_string()));
            false
        }
    }
}

/// Rule or client labels: at most 32, keys per the label-key rule, values at most 256
/// bytes without surrounding whitespace.
pub fn labels(obj: &Obj, attr: &str, diags: &mut Diagnostics) {
    let Value::Map(m) = obj.get(attr) else {
        return;
    };
    if m.len() > MAX_CLIENT_LABELS {
        diags.push(invalid(
            obj,
            attr,
            format!(
                "at most {MAX_CLIENT_LABELS} labels are allowed, got {}",
                m.len()
            ),
        ));
    }
    for (k, v) in m {
        let at = obj.attr_path(attr).key(k);
        if let Err(e) = conflux_domain::validate_label_key(attr, k) {
            diags.push(Diagnostic::error("Invalid label key", e.to_string()).at(at.clone()));
        }
        if let Value::String(s) = v
            && (s.len() > MAX_LABEL_VALUE_LEN || s.trim() != s)
        {
            diags.push(
                Diagnostic::error(
                    "Invalid label value",
                    format!(
                        "label values are at most {MAX_LABEL_VALUE_LEN} bytes without surrounding whitespace"
                    ),
                )
                .at(at),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract_and_unknowns_pass() {
        let mut d = Diagnostics::default();
        name(
            &Obj::of(&[("name", Value::string("Bad_Name"))]),
            "name",
            &mut d,
        );
        assert_eq!(d.0.len(), 1);
        assert_eq!(d.0[0].attribute.as_ref().unwrap().to_string(), "name");
        let mut d = Diagnostics::default();
        name(&Obj::of(&[("name", Value::Unknown)]), "name", &mut d);
        config_name(
            &Obj::of(&[("name", Value::string("app.yaml"))]),
            "name",
            &mut d,
        );
        assert!(d.0.is_empty());
    }

    #[test]
    fn roles_scopes_and_principals_follow_the_access_model() {
        let mut d = Diagnostics::default();
        let b = Obj::of(&[
            ("role", Value::string("tenant_admin")),
            ("scope", Value::string("shop/web")),
            ("principal", Value::string("user:alice")),
        ]);
        role(&b, "role", &mut d);
        scope(&b, "scope", &mut d);
        principal(&b, "principal", &mut d);
        assert!(d.0.is_empty(), "{d:?}");
        let b = Obj::of(&[
            ("role", Value::string("admin")),
            ("scope", Value::string("Shop")),
            ("principal", Value::string("group:ops")),
        ]);
        role(&b, "role", &mut d);
        scope(&b, "scope", &mut d);
        principal(&b, "principal", &mut d);
        let at: Vec<String> =
            d.0.iter()
                .map(|x| x.attribute.as_ref().unwrap().to_string())
                .collect();
        assert_eq!(at, ["role", "scope", "principal"]);
        assert!(d.0[0].detail.contains("tenant_admin"), "{}", d.0[0].detail);
    }

    #[test]
    fn numbers_must_be_whole_and_in_range() {
        let mut d = Diagnostics::default();
        assert_eq!(
            int_range(
                &Obj::of(&[("percent", Value::int(10))]),
                "percent",
                0,
                100,
                &mut d
            ),
            Some(10)
        );
        int_range(
            &Obj::of(&[("percent", Value::int(101))]),
            "percent",
            0,
            100,
            &mut d,
        );
        int_range(
            &Obj::of(&[(
                "percent",
                Value::Number(crate::protocol::value::Number::Float(1.5)),
            )]),
            "percent",
            0,
            100,
            &mut d,
        );
        assert_eq!(d.0.len(), 2);
    }

    #[test]
    fn formats_schemas_and_labels() {
        let mut d = Diagnostics::default();
        assert_eq!(
            format(
                &Obj::of(&[("format", Value::string("yaml"))]),
                "format",
                &mut d
            ),
            Some(Format::Yaml)
        );
        format(
            &Obj::of(&[("format", Value::string("yml"))]),
            "format",
            &mut d,
        );
        assert!(json_schema(
            &Obj::of(&[("schema", Value::string(r#"{"type": "object"}"#))]),
            "schema",
            &mut d
        ));
        assert!(!json_schema(
            &Obj::of(&[("schema", Value::string("[1]"))]),
            "schema",
            &mut d
        ));
        let labels_value = Value::Map(
            [
                ("Canary".to_owned(), Value::string("true")),
                ("ok".to_owned(), Value::string(" padded ")),
            ]
            .into_iter()
            .collect(),
        );
        labels(&Obj::of(&[("labels", labels_value)]), "labels", &mut d);
        assert_eq!(d.0.len(), 4, "{d:?}");
        assert_eq!(
            d.0[2].attribute.as_ref().unwrap().to_string(),
            "labels[\"Canary\"]"
        );
    }
}
