//! What the SDK hands out: a config's content with its metadata ([`ConfigValue`]), the
//! changes a watch reports ([`Change`]), and typed reading of json, yaml and toml content.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ClientError;

/// A config as one client gets it: the content its labels resolve to, and where that content
/// stands in the cluster's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigValue {
    /// `tenant/app/env/name`.
    pub key: String,
    /// The raw content, exactly as pushed.
    pub content: Bytes,
    /// The version the client's labels resolve to (`X-Config-Version`).
    pub version: u64,
    /// The config's revision when this was served (`X-Conflux-Revision`).
    pub revision: u64,
    /// `sha256:<hex>` of the content (`X-Config-Hash`).
    pub hash: String,
    /// The `Content-Type` of the config's format, e.g. `application/yaml`.
    pub content_type: String,
}

impl ConfigValue {
    /// The content as UTF-8 text, when it is.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.content).ok()
    }

    /// Deserialises the content by the config's format (its Content-Type): json with
    /// `serde_json`, yaml with `serde_norway`, toml with `toml`. Other formats (xml, ini,
    /// properties, text) have no typed reading: use [`ConfigValue::content`].
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        let undecodable = |message: String| ClientError::Content {
            key: self.key.clone(),
            message,
        };
        match TypedFormat::of(&self.content_type) {
            Some(TypedFormat::Json) => {
                serde_json::from_slice(&self.content).map_err(|e| undecodable(format!("json: {e}")))
            }
            Some(TypedFormat::Yaml) => serde_norway::from_slice(&self.content)
                .map_err(|e| undecodable(format!("yaml: {e}"))),
            Some(TypedFormat::Toml) => {
                let text = std::str::from_utf8(&self.content)
                    .map_err(|_| undecodable("toml: the content is not UTF-8".to_owned()))?;
                toml::from_str(text).map_err(|e| undecodable(format!("toml: {}", e.message())))
            }
            None => Err(undecodable(format!(
                "content type {:?} has no typed reading (json, yaml and toml have)",
                self.content_type
            ))),
        }
    }
}

/// The formats [`ConfigValue::get`] reads, recognised by every media type the server uses
/// for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypedFormat {
    Json,
    Yaml,
    Toml,
}

impl TypedFormat {
    fn of(content_type: &str) -> Option<TypedFormat> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(TypedFormat::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" => Some(TypedFormat::Yaml),
            "application/toml" => Some(TypedFormat::Toml),
            _ => None,
        }
    }
}

/// What happened to a watched config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The content this client gets changed (or it is no longer published for it: then
    /// [`Change::version`] is `None`).
    Updated,
    /// The config was deleted; nothing follows.
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// One change of a watched config, as this client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `tenant/app/env/name`.
    pub key: String,
    pub kind: ChangeKind,
    /// The revision of the state this change describes. Strictly increasing along a watch.
    pub revision: u64,
    /// The version this client now gets; `None` after a deletion, or when no rule serves it.
    pub version: Option<u64>,
    /// The new content (fetched with `min_revision`, so never older than the change), for an
    /// update that has a version.
    pub value: Option<ConfigValue>,
}

impl Change {
    pub(crate) fn updated(value: ConfigValue) -> Change {
        Change {
            key: value.key.clone(),
            kind: ChangeKind::Updated,
            revision: value.revision,
            version: Some(value.version),
            value: Some(value),
        }
    }

    pub(crate) fn unpublished(key: &str, revision: u64) -> Change {
        Change {
            key: key.to_owned(),
            kind: ChangeKind::Updated,
            revision,
            version: None,
            value: None,
        }
    }

    pub(crate) fn deleted(key: &str, revision: u64) -> Change {
        Change {
            key: key.to_owned(),
            kind: ChangeKind::Deleted,
            revision,
            version: None,
            value: None,
        }
    }

    /// The new content, for an update.
    pub fn content(&self) -> Option<&Bytes> {
        self.value.as_ref().map(|v| &v.content)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Db {
        timeout_ms: u64,
        hosts: Vec<String>,
        tls: BTreeMap<String, bool>,
    }

    fn value(content_type: &str, content: &str) -> ConfigValue {
        ConfigValue {
            key: "acme/shop/prod/db".into(),
            content: Bytes::from(content.to_owned()),
            version: 1,
            revision: 7,
            hash: "sha256:00".into(),
            content_type: content_type.into(),
        }
    }

    fn expected() -> Db {
        Db {
            timeout_ms: 500,
            hosts: vec!["a".into(), "b".into()],
            tls: BTreeMap::from([("verify".to_owned(), true)]),
        }
    }

    #[test]
    fn typed_getters_read_the_three_formats() {
        let json = r#"{"timeout_ms": 500, "hosts": ["a", "b"], "tls": {"verify": true}}"#;
        let yaml = "timeout_ms: 500\nhosts: [a, b]\ntls:\n  verify: true\n";
        let toml = "timeout_ms = 500\nhosts = [\"a\", \"b\"]\n[tls]\nverify = true\n";
        assert_eq!(
            value("application/json", json).get::<Db>().unwrap(),
            expected()
        );
        assert_eq!(
            value("application/yaml", yaml).get::<Db>().unwrap(),
            expected()
        );
        assert_eq!(value("text/yaml", yaml).get::<Db>().unwrap(), expected());
        assert_eq!(
            value("application/toml", toml).get::<Db>().unwrap(),
            expected()
        );
        // Parameters and case do not matter.
        let v = value("Application/JSON; charset=utf-8", json);
        assert_eq!(v.get::<Db>().unwrap(), expected());
        // Untyped reading works for anything.
        let any: serde_json::Value = value("application/yaml", yaml).get().unwrap();
        assert_eq!(any["hosts"][1], "b");
    }

    #[test]
    fn typed_getters_report_what_failed() {
        let e = value("application/json", "{\"timeout_ms\": \"x\"}")
            .get::<Db>()
            .unwrap_err();
        assert_eq!(e.code(), "content_undecodable");
        assert!(
            e.to_string().starts_with("acme/shop/prod/db: json: "),
            "{e}"
        );
        let e = value("application/toml", "timeout_ms = ")
            .get::<Db>()
            .unwrap_err();
        assert!(e.to_string().contains("toml: "), "{e}");
        let e = value("application/yaml", "timeout_ms: [")
            .get::<Db>()
            .unwrap_err();
        assert!(e.to_string().contains("yaml: "), "{e}");
        let e = value("text/plain; charset=utf-8", "a=b")
            .get::<Db>()
            .unwrap_err();
        assert!(e.to_string().contains("no typed reading"), "{e}");
        let mut v = value("application/toml", "");
        v.content = Bytes::from_static(b"\xff\xfe");
        assert!(v.get::<Db>().unwrap_err().to_string().contains("UTF-8"));
    }
}
