//! The seven config formats: their names, the media types each accepts, and a parser per
//! format that reports where the content is broken (line and column, 1-based, wherever the
//! underlying parser can tell).
//!
//! Every format requires UTF-8 content. Parsed documents convert to a JSON value for JSON
//! Schema validation: json/yaml/toml as their natural JSON shape, ini as an object of
//! sections (keys outside any section at the top level), properties as a flat object; both
//! with string values. xml and text have no JSON shape, so configs of those formats cannot
//! carry a schema.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Json,
    Yaml,
    Toml,
    Xml,
    Ini,
    Properties,
    Text,
}

/// Accepted by every format, for clients that do not know better.
pub const OCTET_STREAM: &str = "application/octet-stream";

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Json,
        Format::Yaml,
        Format::Toml,
        Format::Xml,
        Format::Ini,
        Format::Properties,
        Format::Text,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Toml => "toml",
            Format::Xml => "xml",
            Format::Ini => "ini",
            Format::Properties => "properties",
            Format::Text => "text",
        }
    }

    /// The media types a new version of this format may be sent with (besides
    /// `application/octet-stream`). The first one is what fetch answers with.
    pub fn media_types(self) -> &'static [&'static str] {
        match self {
            Format::Json => &["application/json"],
            Format::Yaml => &["application/yaml", "application/x-yaml", "text/yaml"],
            Format::Toml => &["application/toml"],
            Format::Xml => &["application/xml", "text/xml"],
            Format::Ini | Format::Properties | Format::Text => &["text/plain"],
        }
    }

    /// The `Content-Type` fetch answers with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
            Format::Toml => "application/toml",
            Format::Xml => "application/xml",
            Format::Ini | Format::Properties | Format::Text => "text/plain; charset=utf-8",
        }
    }

    /// Whether a request `Content-Type` header value fits this format. Parameters such as
    /// `charset` are ignored; the comparison is case-insensitive.
    pub fn accepts_content_type(self, header: &str) -> bool {
        let essence = header.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case(OCTET_STREAM)
            || self
                .media_types()
                .iter()
                .any(|m| essence.eq_ignore_ascii_case(m))
    }

    /// Whether content of this format has a JSON shape a schema can validate.
    pub fn supports_schema(self) -> bool {
        !matches!(self, Format::Xml | Format::Text)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| {
            format!(
                "unknown format {s:?}; expected one of json, yaml, toml, xml, ini, properties, text"
            )
        })
    }
}

/// Why content does not parse, and where (1-based line and column, when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl ParseError {
    fn at(message: impl Into<String>, line: usize, column: usize) -> Self {
        ParseError {
            message: message.into(),
            line: Some(saturate(line)),
            column: Some(saturate(column)),
        }
    }

    fn at_offset(message: impl Into<String>, text: &str, offset: usize) -> Self {
        let (line, column) = line_column(text, offset);
        ParseError::at(message, line, column)
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// INI content as (section, key/value pairs) in file order; `None` is the part before any
/// section header.
pub type IniSections = Vec<(Option<String>, Vec<(String, String)>)>;

/// A successfully parsed document, kept in its native shape until a schema asks for JSON.
#[derive(Debug)]
pub enum Document {
    Json(serde_json::Value),
    Yaml(serde_norway::Value),
    Toml(toml::Table),
    Xml,
    Ini(IniSections),
    Properties(Vec<(String, String)>),
    Text,
}

/// Parses `content` as `format`.
pub fn parse(format: Format, content: &[u8]) -> Result<Document, ParseError> {
    let text = utf8(content)?;
    if format == Format::Json {
        return serde_json::from_str(text)
            .map(Document::Json)
            .map_err(|e| json_error(text, &e));
    }
    match format {
        Format::Json => unreachable!("handled above"),
        Format::Yaml => parse_yaml(text),
        Format::Toml => toml::from_str::<toml::Table>(text)
            .map(Document::Toml)
            .map_err(|e| {
                let message = e.message().trim().to_owned();
                match e.span() {
                    Some(span) => ParseError::at_offset(message, text, span.start),
                    None => ParseError {
                        message,
                        line: None,
                        column: None,
                    },
                }
            }),
        Format::Xml => {
            let options = roxmltree::ParsingOptions {
                allow_dtd: false,
                ..Default::default()
            };
            roxmltree::Document::parse_with_options(text, options)
                .map(|_| Document::Xml)
                .map_err(|e| {
                    let pos = e.pos();
                    ParseError::at(
                        strip_position(&e.to_string()),
                        pos.row as usize,
                        pos.col as usize,
                    )
                })
        }
        Format::Ini => parse_ini(text),
        Format::Properties => parse_properties(text),
        Format::Text => Ok(Document::Text),
    }
}

/// serde_json reports byte columns, and puts errors found at a line break on the next line
/// at column 0; report the character position on the line where the problem is instead.
fn json_error(text: &str, e: &serde_json::Error) -> ParseError {
    let message = strip_position(&e.to_string());
    let lines: Vec<&str> = text.split('\n').collect();
    let (mut line, mut byte_col) = (e.line().max(1), e.column());
    if byte_col == 0 && line > 1 {
        line -= 1;
        byte_col = lines.get(line - 1).map_or(0, |l| l.len()) + 1;
    }
    let line_text = lines.get(line - 1).copied().unwrap_or_default();
    let mut end = byte_col.saturating_sub(1).min(line_text.len());
    while !line_text.is_char_boundary(end) {
        end -= 1;
    }
    ParseError::at(message, line, line_text[..end].chars().count() + 1)
}

fn utf8(content: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(content).map_err(|e| {
        let valid = e.valid_up_to();
        // The prefix is valid UTF-8 by definition of valid_up_to.
        let prefix = std::str::from_utf8(&content[..valid]).unwrap_or_default();
        let (line, column) = line_column(prefix, valid);
        ParseError::at(format!("invalid UTF-8 at byte {valid}"), line, column)
    })
}

/// Parser messages often end with "at line X column Y"; the position is reported in its own
/// fields, so drop the duplicate from the sentence.
fn strip_position(msg: &str) -> String {
    for marker in [" at line ", " at position "] {
        if let Some(i) = msg.find(marker) {
            return msg[..i].to_owned();
        }
    }
    msg.to_owned()
}

fn parse_yaml(text: &str) -> Result<Document, ParseError> {
    serde_norway::from_str::<serde_norway::Value>(text)
        .map(Document::Yaml)
        .map_err(|e| {
            let message = strip_position(&e.to_string());
            match e.location() {
                Some(loc) => ParseError::at(message, loc.line(), loc.column()),
                None => ParseError {
                    message,
                    line: None,
                    column: None,
                },
            }
        })
}

fn parse_ini(text: &str) -> Result<Document, ParseError> {
    let ini = ini::Ini::load_from_str(text)
        // rust-ini reports 1-based lines and columns one past the offending character.
        .map_err(|e| {
            ParseError::at(
                e.msg.to_string(),
                e.line.max(1),
                e.col.saturating_sub(1).max(1),
            )
        })?;
    let sections = ini
        .iter()
        .map(|(name, props)| {
            let pairs = props
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            (name.map(str::to_owned), pairs)
        })
        .collect();
    Ok(Document::Ini(sections))
}

fn parse_properties(text: &str) -> Result<Document, ParseError> {
    let mut pairs = Vec::new();
    // The crate defaults to ISO-8859-1 (Java's historical default); content is UTF-8.
    let iter =
        java_properties::PropertiesIter::new_with_encoding(text.as_bytes(), encoding_rs::UTF_8);
    for line in iter {
        let line = line.map_err(|e| ParseError {
            message: e.to_string(),
            line: e.line_number().map(saturate),
            column: None,
        })?;
        if let java_properties::LineContent::KVPair(k, v) = line.consume_content() {
            pairs.push((k, v));
        }
    }
    Ok(Document::Properties(pairs))
}

impl Document {
    /// The JSON shape a schema validates, or `None` for formats without one (xml, text).
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::{Map, Value};
        match self {
            Document::Json(v) => Some(v.clone()),
            Document::Yaml(v) => Some(yaml_to_json(v)),
            Document::Toml(t) => Some(toml_table_to_json(t)),
            Document::Ini(sections) => {
                let mut root = Map::new();
                // A section that appears twice is one section with the keys of both; a
                // top-level key named like a section is shadowed by the section in this view
                // (the stored content is unchanged).
                for (name, pairs) in sections {
                    let strings = pairs
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())));
                    match name {
                        None => root.extend(strings),
                        Some(section) => {
                            let entry = root
                                .entry(section.clone())
                                .or_insert_with(|| Value::Object(Map::new()));
                            if !entry.is_object() {
                                *entry = Value::Object(Map::new());
                            }
                            if let Value::Object(obj) = entry {
                                obj.extend(strings);
                            }
                        }
                    }
                }
                Some(Value::Object(root))
            }
            Document::Properties(pairs) => Some(Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )),
            Document::Xml | Document::Text => None,
        }
    }
}

fn yaml_to_json(v: &serde_norway::Value) -> serde_json::Value {
    use serde_json::Value;
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s.clone(),
                        // Non-string keys (numbers, booleans) become their YAML spelling.
                        other => serde_norway::to_string(other)
                            .map(|s| s.trim_end().to_owned())
                            .unwrap_or_default(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(&t.value),
    }
}

fn toml_table_to_json(t: &toml::Table) -> serde_json::Value {
    serde_json::Value::Object(
        t.iter()
            .map(|(k, v)| (k.clone(), toml_to_json(v)))
            .collect(),
    )
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => toml_table_to_json(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_contract() {
        assert!(Format::Json.accepts_content_type("application/json; charset=utf-8"));
        assert!(Format::Json.accepts_content_type("Application/JSON"));
        assert!(Format::Yaml.accepts_content_type("text/yaml"));
        assert!(Format::Xml.accepts_content_type("text/xml"));
        assert!(Format::Properties.accepts_content_type("text/plain"));
        for f in Format::ALL {
            assert!(f.accepts_content_type("application/octet-stream"));
        }
        assert!(!Format::Json.accepts_content_type("text/plain"));
        assert!(!Format::Toml.accepts_content_type("application/json"));
        assert!(!Format::Text.accepts_content_type(""));
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse(Format::Json, b"{\n  \"a\": 1,\n  oops\n}").unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(3)));
        let e = parse(Format::Toml, b"a = 1\nb = = 2\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = parse(Format::Yaml, b"a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.line.is_some());
        let e = parse(Format::Xml, b"<a>\n  <b></c>\n</a>").unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = parse(Format::Text, b"ok\nbad \xff").unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(5)));
    }

    #[test]
    fn json_shapes_for_schema() {
        let d = parse(Format::Ini, b"top = 1\n[db]\nhost = x\n").unwrap();
        assert_eq!(
            d.to_json().unwrap(),
            serde_json::json!({"top": "1", "db": {"host": "x"}})
        );
        let d = parse(Format::Properties, b"a.b = c\n# comment\nd=e\n").unwrap();
        assert_eq!(
            d.to_json().unwrap(),
            serde_json::json!({"a.b": "c", "d": "e"})
        );
        let d = parse(Format::Toml, b"port = 5\n[db]\nat = 1979-05-27T07:32:00Z\n").unwrap();
        assert_eq!(
            d.to_json().unwrap(),
            serde_json::json!({"port": 5, "db": {"at": "1979-05-27T07:32:00Z"}})
        );
        assert!(parse(Format::Xml, b"<a/>").unwrap().to_json().is_none());
    }
}
