//! Per-request options and the few results that are not JSON bodies of `conflux-api-types`
//! (fetch answers raw content described by headers).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use conflux_api_types::headers;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, IF_MATCH, IF_NONE_MATCH};

use crate::error::ClientError;

/// Options every write accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Sent as `X-Idempotency-Key`: a retry with the same key (and the same request) within
    /// 24 h returns the first result instead of applying twice.
    pub idempotency_key: Option<String>,
    /// Sent as `If-Match: <revision>`: the write fails with 409 `revision_mismatch` unless the
    /// entity's revision is exactly this.
    pub if_match: Option<u64>,
}

impl WriteOptions {
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn if_match(mut self, revision: u64) -> Self {
        self.if_match = Some(revision);
        self
    }

    /// The headers these options add to a request.
    pub(crate) fn headers(&self) -> Result<HeaderMap, ClientError> {
        let mut h = HeaderMap::new();
        if let Some(key) = &self.idempotency_key {
            // The server takes 1-255 visible ASCII characters; it checks the length itself,
            // but a value that is not a header value at all cannot even be sent.
            let value = HeaderValue::from_str(key)
                .ok()
                .filter(|_| !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| {
                    ClientError::invalid_argument(
                        "idempotency_key",
                        "idempotency keys are non-empty visible ASCII without spaces",
                    )
                })?;
            h.insert(HeaderName::from_static(headers::IDEMPOTENCY_KEY), value);
        }
        if let Some(revision) = self.if_match {
            h.insert(IF_MATCH, HeaderValue::from(revision));
        }
        Ok(h)
    }
}

/// Options of a fetch: who is asking, and how fresh the answer must be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// Sent as `X-Client-Label-<key>: <value>` headers.
    pub labels: BTreeMap<String, String>,
    /// Sent as `X-Client-Id`; places the client in a bucket for percentage rules.
    pub client_id: Option<String>,
    /// The ETag of the content the caller holds; an unchanged answer is [`Fetched::NotModified`].
    pub if_none_match: Option<String>,
    /// `?min_revision=`: a lagging node waits (bounded) until it has applied this revision.
    pub min_revision: Option<u64>,
    /// `?consistency=linearizable`: the node confirms its leadership before answering.
    pub linearizable: bool,
}

impl FetchOptions {
    pub(crate) fn headers(&self) -> Result<HeaderMap, ClientError> {
        let mut h = identity_headers(&self.labels, self.client_id.as_deref())?;
        if let Some(etag) = &self.if_none_match {
            let value = HeaderValue::from_str(etag).map_err(|_| {
                ClientError::invalid_argument("if_none_match", "not a valid ETag header value")
            })?;
            h.insert(IF_NONE_MATCH, value);
        }
        Ok(h)
    }
}

/// Options of a long-poll watch ([`crate::ApiClient::watch`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// `?revision=`: the last revision the caller saw (0: answer at once with the current
    /// state). Reconnecting with the last revision seen can never miss a change.
    pub revision: u64,
    /// `?version=`: the version the caller holds. With it the watch is label-aware: only a
    /// change of the version these labels resolve to (or a deletion) answers.
    pub version: Option<u64>,
    /// Sent as `X-Client-Label-<key>: <value>` headers.
    pub labels: BTreeMap<String, String>,
    /// Sent as `X-Client-Id`.
    pub client_id: Option<String>,
    /// `?timeout=`: how long the server holds the request before answering 304 (server
    /// default 30 s, at most 300 s).
    pub timeout: Option<Duration>,
}

impl WatchOptions {
    pub(crate) fn headers(&self) -> Result<HeaderMap, ClientError> {
        identity_headers(&self.labels, self.client_id.as_deref())
    }
}

/// A duration as the server's `timeout` parameter reads it (`30s`, `1500ms`).
pub(crate) fn duration_param(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `X-Client-Label-<key>` and `X-Client-Id` headers. Values may be any UTF-8 text without
/// control characters (the server accepts UTF-8 label values, e.g. a city name).
pub(crate) fn identity_headers(
    labels: &BTreeMap<String, String>,
    client_id: Option<&str>,
) -> Result<HeaderMap, ClientError> {
    let mut h = HeaderMap::new();
    for (key, value) in labels {
        let field = format!("labels.{key}");
        let name =
            HeaderName::from_bytes(format!("{}{key}", headers::CLIENT_LABEL_PREFIX).as_bytes())
                .ok()
                .filter(|_| !key.is_empty())
                .ok_or_else(|| {
                    ClientError::invalid_argument(&field, format!("{key:?} cannot be a label key"))
                })?;
        let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
            ClientError::invalid_argument(
                &field,
                "label values must not contain control characters",
            )
        })?;
        h.insert(name, value);
    }
    if let Some(id) = client_id {
        let value = HeaderValue::from_bytes(id.as_bytes()).map_err(|_| {
            ClientError::invalid_argument(
                "client_id",
                "the client id must not contain control characters",
            )
        })?;
        h.insert(HeaderName::from_static(headers::CLIENT_ID), value);
    }
    Ok(h)
}

/// A new version: raw content, how it is encoded, and the optional query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    pub content: Bytes,
    /// Must fit the config's format (see `Format::media_types`), or
    /// `application/octet-stream`; the server answers 415 otherwise.
    pub content_type: String,
    /// `?description=`.
    pub description: Option<String>,
    /// `?validate_only=true`: parse and check against the schema, store nothing.
    pub validate_only: bool,
}

impl NewVersion {
    pub fn new(content: impl Into<Bytes>, content_type: impl Into<String>) -> Self {
        NewVersion {
            content: content.into(),
            content_type: content_type.into(),
            description: None,
            validate_only: false,
        }
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    pub fn validate_only(mut self, validate_only: bool) -> Self {
        self.validate_only = validate_only;
        self
    }
}

/// The answer to a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The content the caller's labels resolve to.
    Modified {
        content: Bytes,
        /// `X-Config-Version`.
        version: u64,
        /// `X-Config-Hash`: `sha256:<hex>`.
        hash: String,
        /// `X-Conflux-Revision`: the config's revision; pass it as `min_revision` to another
        /// node to never read an older state.
        revision: u64,
        /// `ETag`, for `If-None-Match` next time.
        etag: String,
        content_type: String,
    },
    /// 304: the `If-None-Match` ETag is still current.
    NotModified,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_options_render_headers() {
        assert!(WriteOptions::default().headers().unwrap().is_empty());
        let h = WriteOptions::default()
            .idempotency_key("req-42")
            .if_match(17)
            .headers()
            .unwrap();
        assert_eq!(h.get("x-idempotency-key").unwrap(), "req-42");
        assert_eq!(h.get("if-match").unwrap(), "17");
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn bad_idempotency_keys_are_refused() {
        for bad in ["", "a b", "line\nbreak", "ключ"] {
            let err = WriteOptions::default()
                .idempotency_key(bad)
                .headers()
                .unwrap_err();
            assert_eq!(err.field(), Some("idempotency_key"), "{bad:?}");
        }
    }

    #[test]
    fn labels_become_headers() {
        let opts = FetchOptions {
            labels: BTreeMap::from([
                ("canary".to_owned(), "true".to_owned()),
                ("city".to_owned(), "Zürich".to_owned()),
            ]),
            client_id: Some("host-7".to_owned()),
            if_none_match: Some("\"abc\"".to_owned()),
            ..FetchOptions::default()
        };
        let h = opts.headers().unwrap();
        assert_eq!(h.get("x-client-label-canary").unwrap(), "true");
        assert_eq!(
            h.get("x-client-label-city").unwrap().as_bytes(),
            "Zürich".as_bytes()
        );
        assert_eq!(h.get("x-client-id").unwrap(), "host-7");
        assert_eq!(h.get("if-none-match").unwrap(), "\"abc\"");
    }

    #[test]
    fn watch_timeouts_are_server_durations() {
        assert_eq!(duration_param(Duration::from_secs(30)), "30s");
        assert_eq!(duration_param(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_param(Duration::ZERO), "0s");
    }

    #[test]
    fn unsendable_labels_are_refused() {
        for (k, v) in [("bad key", "v"), ("", "v"), ("k", "a\nb"), ("a:b", "v")] {
            let labels = BTreeMap::from([(k.to_owned(), v.to_owned())]);
            let err = identity_headers(&labels, None).unwrap_err();
            assert_eq!(err.code(), "invalid_argument", "{k:?}={v:?}");
        }
        assert!(identity_headers(&BTreeMap::new(), Some("a\r\nX-Evil: 1")).is_err());
    }
}
