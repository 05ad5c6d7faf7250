//! Client labels: what a fetching service says about itself, as a small sorted list.

use std::collections::BTreeMap;

use crate::error::DomainError;
use crate::names::validate_label_key;

pub const MAX_CLIENT_LABELS: usize = 32;
pub const MAX_LABEL_KEY_LEN: usize = 63;
pub const MAX_LABEL_VALUE_LEN: usize = 256;

/// The label whose value identifies the client for percentage rules when no `X-Client-Id`
/// is sent.
pub const CLIENT_ID_LABEL: &str = "client_id";

/// Labels of one client, sorted by key, plus the optional client id used for percentage
/// buckets. Built once per request; lookups are binary searches over at most 32 entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientLabels {
    pairs: Vec<(String, String)>,
    client_id: Option<String>,
}

impl ClientLabels {
    /// Builds labels from `(key, value)` pairs as they come off the wire: keys are
    /// lower-cased, values trimmed, limits enforced. A repeated key keeps the last value.
    pub fn from_pairs<K, V>(
        pairs: impl IntoIterator<Item = (K, V)>,
        client_id: Option<&str>,
    ) -> Result<Self, DomainError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            let key = k.as_ref().to_ascii_lowercase();
            let value = v.as_ref().trim();
            let field = format!("labels.{key}");
            if key.len() > MAX_LABEL_KEY_LEN {
                return Err(DomainError::InvalidLabel {
                    field,
                    message: format!("label keys are at most {MAX_LABEL_KEY_LEN} characters"),
                });
            }
            validate_label_key(&field, &key)?;
            if value.len() > MAX_LABEL_VALUE_LEN {
                return Err(DomainError::InvalidLabel {
                    field,
                    message: format!("label values are at most {MAX_LABEL_VALUE_LEN} bytes"),
                });
            }
            map.insert(key, value.to_owned());
            if map.len() > MAX_CLIENT_LABELS {
                return Err(DomainError::InvalidLabel {
                    field: "labels".to_owned(),
                    message: format!("at most {MAX_CLIENT_LABELS} labels are allowed"),
                });
            }
        }
        let client_id = match client_id.map(str::trim) {
            Some(id) if id.len() > MAX_LABEL_VALUE_LEN => {
                return Err(DomainError::InvalidLabel {
                    field: "client_id".to_owned(),
                    message: format!("the client id is at most {MAX_LABEL_VALUE_LEN} bytes"),
                });
            }
            Some(id) if !id.is_empty() => Some(id.to_owned()),
            _ => map.get(CLIENT_ID_LABEL).cloned(),
        };
        Ok(ClientLabels {
            pairs: map.into_iter().collect(),
            client_id,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.pairs[i].1.as_str())
    }

    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lowercased_and_values_trimmed() {
        let l = ClientLabels::from_pairs([("Canary", " true "), ("Region", "eu")], None).unwrap();
        assert_eq!(l.get("canary"), Some("true"));
        assert_eq!(l.get("region"), Some("eu"));
        assert_eq!(l.get("Canary"), None);
    }

    #[test]
    fn client_id_header_wins_over_label() {
        let l = ClientLabels::from_pairs([("client_id", "a")], Some("b")).unwrap();
        assert_eq!(l.client_id(), Some("b"));
        let l = ClientLabels::from_pairs([("client_id", "a")], None).unwrap();
        assert_eq!(l.client_id(), Some("a"));
    }

    #[test]
    fn limits_are_enforced() {
        let many: Vec<_> = (0..33).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert_eq!(
            ClientLabels::from_pairs(many, None).unwrap_err().code(),
            "invalid_label"
        );
        let long_key = "k".repeat(64);
        assert!(ClientLabels::from_pairs([(long_key.as_str(), "v")], None).is_err());
        let long_value = "v".repeat(257);
        assert!(ClientLabels::from_pairs([("k", long_value.as_str())], None).is_err());
        assert!(ClientLabels::from_pairs([("k", "v".repeat(256))], None).is_ok());
    }
}
