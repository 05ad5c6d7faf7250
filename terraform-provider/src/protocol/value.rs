//! Terraform values and types as plain Rust data.
//!
//! A [`Value`] is what a `DynamicValue` decodes to, given the [`Type`] that the schema says it
//! has: objects keep every attribute of their type (absent ones are [`Value::Null`]), and a
//! value Terraform does not know yet (during plan) is [`Value::Unknown`]. Resources read
//! configuration through [`Obj`], whose accessors name the attribute in their errors.

use std::collections::BTreeMap;

use crate::protocol::diag::{AttrPath, Diagnostic};

/// A type constraint of the Terraform language (the subset the provider's schemas use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    String,
    Number,
    Bool,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
}

impl Type {
    pub fn list(of: Type) -> Type {
        Type::List(Box::new(of))
    }

    pub fn map(of: Type) -> Type {
        Type::Map(Box::new(of))
    }

    pub fn object<'a>(attrs: impl IntoIterator<Item = (&'a str, Type)>) -> Type {
        Type::Object(attrs.into_iter().map(|(k, t)| (k.to_owned(), t)).collect())
    }

    /// The compact JSON form the schema carries: `"string"`, `["list","string"]`,
    /// `["object",{"a":"number"}]`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Type::String => json!("string"),
            Type::Number => json!("number"),
            Type::Bool => json!("bool"),
            Type::List(t) => json!(["list", t.to_json()]),
            Type::Set(t) => json!(["set", t.to_json()]),
            Type::Map(t) => json!(["map", t.to_json()]),
            Type::Object(attrs) => {
                let attrs: serde_json::Map<String, serde_json::Value> = attrs
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_json()))
                    .collect();
                json!(["object", attrs])
            }
        }
    }
}

/// A number. Terraform numbers are arbitrary-precision; everything this provider handles
/// (ids, versions, quotas, percents) is an integer, so integers are kept exactly and anything
/// else as a float.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    /// Normalises floats that hold an integer, so `1.0` and `1` compare equal.
    pub fn from_f64(f: f64) -> Number {
        if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
            Number::Int(f as i64)
        } else {
            Number::Float(f)
        }
    }

    pub fn as_i64(self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(i),
            Number::Float(_) => None,
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            _ => self.as_f64() == other.as_f64(),
        }
    }
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

/// A value of the Terraform type system. Lists and sets are both [`Value::List`]; the type
/// tells them apart where it matters (encoding).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    /// Known only after apply.
    Unknown,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
}

impl Value {
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    pub fn int(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }

    /// A `u64` from the API (ids, versions, quotas). Values past `i64::MAX` cannot occur in
    /// practice; they are clamped rather than wrapped.
    pub fn uint(u: u64) -> Value {
        Value::Number(Number::Int(i64::try_from(u).unwrap_or(i64::MAX)))
    }

    pub fn opt_string(s: Option<impl Into<String>>) -> Value {
        s.map_or(Value::Null, |s| Value::String(s.into()))
    }

    pub fn string_map(m: &BTreeMap<String, String>) -> Value {
        Value::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::string(v)))
                .collect(),
        )
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// True when neither this value nor anything inside it is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(items) => items.iter().all(Value::is_wholly_known),
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            _ => true,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// An object value together with where it sits in the resource, so that every accessor
/// error names the attribute (`rule[1].version_id`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Obj {
    pub path: AttrPath,
    pub attrs: BTreeMap<String, Value>,
}

impl Obj {
    /// The top-level object of a resource; `Null` (no object) is `None`.
    pub fn root(value: Value) -> Option<Obj> {
        match value {
            Value::Object(attrs) => Some(Obj {
                path: AttrPath::default(),
                attrs,
            }),
            _ => None,
        }
    }

    pub fn new() -> Obj {
        Obj::default()
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.attrs)
    }

    pub fn get(&self, name: &str) -> &Value {
        self.attrs.get(name).unwrap_or(&Value::Null)
    }

    pub fn set(&mut self, name: &str, value: Value) {
        self.attrs.insert(name.to_owned(), value);
    }

    pub fn with(mut self, name: &str, value: Value) -> Obj {
        self.set(name, value);
        self
    }

    /// An object with these attributes (the rest null), for tests.
    #[cfg(test)]
    pub fn of(pairs: &[(&str, Value)]) -> Obj {
        pairs
            .iter()
            .fold(Obj::new(), |o, (k, v)| o.with(k, v.clone()))
    }

    pub fn attr_path(&self, name: &str) -> AttrPath {
        self.path.clone().attr(name)
    }

    fn invalid(&self, name: &str, what: &str) -> Diagnostic {
        Diagnostic::error(
            format!("Invalid value for {name}"),
            format!("{name} must be {what}"),
        )
        .at(self.attr_path(name))
    }

    // ---- typed reads of known values (apply time: everything is known) ----------------

    pub fn str(&self, name: &str) -> Result<&str, Diagnostic> {
        self.opt_str(name)?
            .ok_or_else(|| self.invalid(name, "set (a known string)"))
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, Diagnostic> {
        match self.get(name) {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            _ => Err(self.invalid(name, "a known string")),
        }
    }

    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, Diagnostic> {
        match self.get(name) {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.invalid(name, "a whole number")),
            _ => Err(self.invalid(name, "a known number")),
        }
    }

    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, Diagnostic> {
        match self.opt_i64(name)? {
            None => Ok(None),
            Some(i) => u64::try_from(i)
                .map(Some)
                .map_err(|_| self.invalid(name, "zero or more")),
        }
    }

    pub fn u64(&self, name: &str) -> Result<u64, Diagnostic> {
        self.opt_u64(name)?
            .ok_or_else(|| self.invalid(name, "set (a known number)"))
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, Diagnostic> {
        match self.get(name) {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            _ => Err(self.invalid(name, "a known bool")),
        }
    }

    pub fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, Diagnostic> {
        match self.get(name) {
            Value::Null => Ok(BTreeMap::new()),
            Value::Map(m) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(Diagnostic::error(
                        format!("Invalid value for {name}"),
                        format!("{name}[{k:?}] must be a known string"),
                    )
                    .at(self.attr_path(name).key(k))),
                })
                .collect(),
            _ => Err(self.invalid(name, "a known map of strings")),
        }
    }

    /// A single nested block or object attribute; `None` when null.
    pub fn opt_obj(&self, name: &str) -> Result<Option<Obj>, Diagnostic> {
        match self.get(name) {
            Value::Null => Ok(None),
            Value::Object(attrs) => Ok(Some(Obj {
                path: self.attr_path(name),
                attrs: attrs.clone(),
            })),
            _ => Err(self.invalid(name, "a known block")),
        }
    }

    /// A list of nested blocks or objects; null is empty.
    pub fn obj_list(&self, name: &str) -> Result<Vec<Obj>, Diagnostic> {
        match self.get(name) {
            Value::Null => Ok(Vec::new()),
            Value::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Object(attrs) => Ok(Obj {
                        path: self.attr_path(name).index(i),
                        attrs: attrs.clone(),
                    }),
                    _ => Err(self.invalid(name, "a list of known blocks")),
                })
                .collect(),
            _ => Err(self.invalid(name, "a known list")),
        }
    }

    // ---- plan-time reads: `None` while unknown --------------------------------------

    /// The string if it is known and set.
    pub fn known_str(&self, name: &str) -> Option<&str> {
        self.get(name).as_str()
    }

    /// The number if it is known and set.
    pub fn known_number(&self, name: &str) -> Option<Number> {
        match self.get(name) {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
}
