//! JSON Schema validation of parsed config content (the `jsonschema` crate).
//!
//! Schemas are compiled once when a config is created or its schema changes, and the compiled
//! validator is kept in memory beside the state. Remote `$ref`s are not resolved: apply must
//! not do I/O, and a schema that depends on a URL could validate differently on each node.

use std::fmt;
use std::sync::Arc;

use crate::error::{DomainError, SchemaViolation};

/// At most this many violations are reported for one document; the rest are counted.
pub const MAX_REPORTED_VIOLATIONS: usize = 50;

/// A compiled JSON Schema, cheap to clone.
#[derive(Clone)]
pub struct CompiledSchema {
    validator: Arc<jsonschema::Validator>,
}

impl fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CompiledSchema")
    }
}

impl CompiledSchema {
    /// Compiles schema text. Errors name what is wrong with the schema itself.
    pub fn compile(schema_text: &str) -> Result<Self, DomainError> {
        let value: serde_json::Value =
            serde_json::from_str(schema_text).map_err(|e| DomainError::InvalidSchema {
                message: format!("not valid JSON: {e}"),
            })?;
        if !value.is_object() && !value.is_boolean() {
            return Err(DomainError::InvalidSchema {
                message: "a JSON Schema must be an object or a boolean".to_owned(),
            });
        }
        let validator =
            jsonschema::validator_for(&value).map_err(|e| DomainError::InvalidSchema {
                message: e.to_string(),
            })?;
        Ok(CompiledSchema {
            validator: Arc::new(validator),
        })
    }

    /// Every violation of `document`, as JSON pointers and messages.
    pub fn violations(&self, document: &serde_json::Value) -> Vec<SchemaViolation> {
        let mut out = Vec::new();
        let mut extra = 0usize;
        for err in self.validator.iter_errors(document) {
            if out.len() < MAX_REPORTED_VIOLATIONS {
                out.push(SchemaViolation {
                    pointer: err.instance_path().to_string(),
                    message: err.to_string(),
                });
            } else {
                extra += 1;
            }
        }
        if extra > 0 {
            out.push(SchemaViolation {
                pointer: String::new(),
                message: format!("... and {extra} more violation(s)"),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_each_violation_with_pointer() {
        let s = CompiledSchema::compile(
            r#"{"type":"object","properties":{"port":{"type":"integer"},"hosts":{"type":"array","items":{"type":"string"}}},"required":["port"]}"#,
        )
        .unwrap();
        assert!(s.violations(&json!({"port": 1, "hosts": ["a"]})).is_empty());
        let v = s.violations(&json!({"port": "x", "hosts": ["a", 2]}));
        let pointers: Vec<_> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/port"), "{v:?}");
        assert!(pointers.contains(&"/hosts/1"), "{v:?}");
    }

    #[test]
    fn rejects_invalid_schemas() {
        assert_eq!(
            CompiledSchema::compile("{").unwrap_err().code(),
            "invalid_schema"
        );
        assert_eq!(
            CompiledSchema::compile("3").unwrap_err().code(),
            "invalid_schema"
        );
        assert!(CompiledSchema::compile(r#"{"type": "no-such-type"}"#).is_err());
    }
}
