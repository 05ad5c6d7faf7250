//! Diagnostics: what the provider tells Terraform about errors and warnings, each naming the
//! attribute at fault when there is one, and their conversion to the wire messages.

use std::fmt;

use crate::proto::tfplugin6 as pb;

/// One step into a value: an attribute, a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Attr(String),
    Key(String),
    Index(i64),
}

/// Where in a resource's value something is: `rule[1].labels["canary"]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttrPath(pub Vec<Step>);

impl AttrPath {
    pub fn root(name: &str) -> AttrPath {
        AttrPath(vec![Step::Attr(name.to_owned())])
    }

    pub fn attr(mut self, name: &str) -> AttrPath {
        self.0.push(Step::Attr(name.to_owned()));
        self
    }

    pub fn key(mut self, key: &str) -> AttrPath {
        self.0.push(Step::Key(key.to_owned()));
        self
    }

    pub fn index(mut self, i: usize) -> AttrPath {
        self.0
            .push(Step::Index(i64::try_from(i).unwrap_or(i64::MAX)));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn first_attr(&self) -> Option<&str> {
        match self.0.first() {
            Some(Step::Attr(a)) => Some(a),
            _ => None,
        }
    }

    pub fn to_proto(&self) -> pb::AttributePath {
        use pb::attribute_path::step::Selector;
        pb::AttributePath {
            steps: self
                .0
                .iter()
                .map(|s| pb::attribute_path::Step {
                    selector: Some(match s {
                        Step::Attr(a) => Selector::AttributeName(a.clone()),
                        Step::Key(k) => Selector::ElementKeyString(k.clone()),
                        Step::Index(i) => Selector::ElementKeyInt(*i),
                    }),
                })
                .collect(),
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Attr(a) if i == 0 => write!(f, "{a}")?,
                Step::Attr(a) => write!(f, ".{a}")?,
                Step::Key(k) => write!(f, "[{k:?}]")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    pub attribute: Option<AttrPath>,
}

impl Diagnostic {
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            summary: summary.into(),
            detail: detail.into(),
            attribute: None,
        }
    }

    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(summary, detail)
        }
    }

    /// Names the attribute at fault (an empty path names none).
    pub fn at(mut self, path: AttrPath) -> Diagnostic {
        self.attribute = (!path.is_empty()).then_some(path);
        self
    }

    pub fn to_proto(&self) -> pb::Diagnostic {
        pb::Diagnostic {
            severity: match self.severity {
                Severity::Error => pb::diagnostic::Severity::Error,
                Severity::Warning => pb::diagnostic::Severity::Warning,
            } as i32,
            summary: self.summary.clone(),
            detail: self.detail.clone(),
            attribute: self.attribute.as_ref().map(AttrPath::to_proto),
        }
    }
}

/// The diagnostics of one call. Also the error type of resource operations: an operation
/// fails with at least one error diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn to_proto(&self) -> Vec<pb::Diagnostic> {
        self.0.iter().map(Diagnostic::to_proto).collect()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_terraform_addresses() {
        let p = AttrPath::root("rule").index(1).attr("labels").key("canary");
        assert_eq!(p.to_string(), "rule[1].labels[\"canary\"]");
        assert_eq!(p.to_proto().steps.len(), 4);
        assert_eq!(p.first_attr(), Some("rule"));
    }

    #[test]
    fn an_empty_path_names_no_attribute() {
        let d = Diagnostic::error("x", "y").at(AttrPath::default());
        assert!(d.attribute.is_none());
        assert!(d.to_proto().attribute.is_none());
    }
}
