//! The one error type of the client.
//!
//! An answer of the server that is not 2xx becomes [`ClientError::Api`] with the server's
//! stable code; everything that happens before an answer (connect, timeout) is
//! [`ClientError::Transport`]; an answer we cannot read is [`ClientError::Decode`]; and input
//! refused before anything is sent is [`ClientError::InvalidArgument`]. Every variant has a
//! stable snake_case [`ClientError::code`], so callers (and the CLI's one-line errors) never
//! need to match on messages.

use conflux_api_types::{ErrorBody, ProposalAccepted};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// At most this much of a non-JSON error body is kept as the message.
pub const MAX_ERROR_TEXT_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-2xx status. `code` is the server's stable code, or
    /// `http_<status>` when the body was not the API's error shape (a proxy's page, say).
    #[error("{code} (HTTP {status}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
        details: Vec<serde_json::Value>,
        /// `Retry-After` in seconds, when the server sent one (503s do).
        retry_after_secs: Option<u64>,
    },

    /// No answer: the endpoint could not be reached, or the request timed out.
    #[error("{} {endpoint}: {message}", if *.timed_out { "request timed out at" } else { "cannot reach" })]
    Transport {
        endpoint: String,
        timed_out: bool,
        message: String,
    },

    /// A 2xx answer that is not what the API promises (bad JSON, missing header).
    #[error("unexpected answer to {request}: {message}")]
    Decode { request: String, message: String },

    /// Refused before sending: the argument cannot be expressed as a request.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },

    /// A config's content could not be deserialised into the type asked for (the SDK's
    /// typed getters), or its format has no typed reading.
    #[error("{key}: {message}")]
    Content { key: String, message: String },

    /// The SDK's local fallback copy of a config is missing, unreadable or corrupt.
    #[error("fallback copy {path}: {message}")]
    Fallback { path: String, message: String },

    /// Not applied: the environment requires approval, so the server made the release
    /// change a proposal (HTTP 202) and changed nothing clients see. Follow it with
    /// [`crate::ApiClient::get_proposal`].
    #[error("the change awaits approval as proposal {} (status {})", .0.proposal_id, .0.status)]
    PendingApproval(ProposalAccepted),
}

impl ClientError {
    pub(crate) fn invalid_argument(field: impl Into<String>, message: impl Into<String>) -> Self {
        ClientError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn decode(request: impl Into<String>, message: impl Into<String>) -> Self {
        ClientError::Decode {
            request: request.into(),
            message: message.into(),
        }
    }

    /// A stable snake_case code: the server's for [`ClientError::Api`]; `timeout`,
    /// `unreachable`, `invalid_response`, `invalid_argument`, `content_undecodable` and
    /// `fallback_unavailable` for the others.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Api { code, .. } => code,
            ClientError::Transport {
                timed_out: true, ..
            } => "timeout",
            ClientError::Transport {
                timed_out: false, ..
            } => "unreachable",
            ClientError::Decode { .. } => "invalid_response",
            ClientError::InvalidArgument { .. } => "invalid_argument",
            ClientError::Content { .. } => "content_undecodable",
            ClientError::Fallback { .. } => "fallback_unavailable",
            ClientError::PendingApproval(_) => "pending_approval",
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::PendingApproval(_) => Some(202),
            ClientError::Transport { .. }
            | ClientError::Decode { .. }
            | ClientError::InvalidArgument { .. }
            | ClientError::Content { .. }
            | ClientError::Fallback { .. } => None,
        }
    }

    /// The human sentence, without the code.
    pub fn message(&self) -> String {
        match self {
            ClientError::Api { message, .. } => message.clone(),
            ClientError::InvalidArgument { message, .. } => message.clone(),
            ClientError::Transport { .. }
            | ClientError::Decode { .. }
            | ClientError::Content { .. }
            | ClientError::Fallback { .. }
            | ClientError::PendingApproval(_) => self.to_string(),
        }
    }

    /// The request field the error is about, when known.
    pub fn field(&self) -> Option<&str> {
        match self {
            ClientError::Api { field, .. } => field.as_deref(),
            ClientError::InvalidArgument { field, .. } => Some(field),
            ClientError::Transport { .. }
            | ClientError::Decode { .. }
            | ClientError::Content { .. }
            | ClientError::Fallback { .. }
            | ClientError::PendingApproval(_) => None,
        }
    }

    /// HTTP 503: no leader, not ready, a write that timed out inside the cluster, or a
    /// `min_revision` not reached. Worth retrying after [`ClientError::retry_after_secs`].
    pub fn is_unavailable(&self) -> bool {
        self.status() == Some(503)
    }

    /// Whether retrying the same request (with the same idempotency key, for writes) may
    /// succeed: a 503, or no answer at all.
    pub fn is_retryable(&self) -> bool {
        self.is_unavailable() || matches!(self, ClientError::Transport { .. })
    }

    /// Whether the server said 404 (unknown entity, or `not_published`).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The `Retry-After` the server sent with an error, in seconds.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ClientError::Api {
                retry_after_secs, ..
            } => *retry_after_secs,
            ClientError::Transport { .. }
            | ClientError::Decode { .. }
            | ClientError::InvalidArgument { .. }
            | ClientError::Content { .. }
            | ClientError::Fallback { .. }
            | ClientError::PendingApproval(_) => None,
        }
    }

    /// Builds the error for a non-2xx answer from its status, headers and body.
    pub(crate) fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let retry_after_secs = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => ClientError::Api {
                status: status.as_u16(),
                code: error.code,
                message: error.message,
                field: error.field,
                details: error.details,
                retry_after_secs,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text = truncate(text.trim(), MAX_ERROR_TEXT_BYTES);
                let message = if text.is_empty() {
                    status
                        .canonical_reason()
                        .unwrap_or("no error body")
                        .to_owned()
                } else {
                    text.to_owned()
                };
                ClientError::Api {
                    status: status.as_u16(),
                    code: format!("http_{}", status.as_u16()),
                    message,
                    field: None,
                    details: Vec::new(),
                    retry_after_secs,
                }
            }
        }
    }

    /// Maps a reqwest failure (no answer, or the body could not be read).
    pub(crate) fn transport(endpoint: &str, e: &reqwest::Error) -> Self {
        ClientError::Transport {
            endpoint: endpoint.to_owned(),
            timed_out: e.is_timeout(),
            message: error_chain(e),
        }
    }
}

/// `e`'s causes joined with `: `. reqwest's own top line repeats the URL, which the variant
/// already names, so it is only used when there is no cause.
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

fn truncate(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn api_error_body_is_parsed() {
        let body =
            br#"{"error": {"code": "content_invalid", "message": "bad toml", "field": "content",
            "details": [{"format": "toml", "line": 2, "column": 5}]}}"#;
        let e =
            ClientError::from_response(StatusCode::UNPROCESSABLE_ENTITY, &HeaderMap::new(), body);
        assert_eq!(e.code(), "content_invalid");
        assert_eq!(e.status(), Some(422));
        assert_eq!(e.field(), Some("content"));
        assert_eq!(e.message(), "bad toml");
        let ClientError::Api { details, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(details[0]["line"], 2);
        assert!(!e.is_unavailable());
        assert!(!e.is_retryable());
        assert_eq!(e.to_string(), "content_invalid (HTTP 422): bad toml");
    }

    #[test]
    fn minimal_error_body_is_parsed() {
        let body = br#"{"error": {"code": "tenant_not_found", "message": "tenant 'x' not found"}}"#;
        let e = ClientError::from_response(StatusCode::NOT_FOUND, &HeaderMap::new(), body);
        assert_eq!(e.code(), "tenant_not_found");
        assert_eq!(e.field(), None);
        assert!(e.is_not_found());
    }

    #[test]
    fn foreign_bodies_become_http_codes() {
        let e = ClientError::from_response(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>upstream down</html>\n",
        );
        assert_eq!(e.code(), "http_502");
        assert_eq!(e.message(), "<html>upstream down</html>");
        // JSON of another shape is not ours either.
        let e = ClientError::from_response(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"msg": "x"}"#,
        );
        assert_eq!(e.code(), "http_400");
        assert_eq!(e.message(), r#"{"msg": "x"}"#);
        // An empty body gets the reason phrase.
        let e = ClientError::from_response(StatusCode::NOT_FOUND, &HeaderMap::new(), b"");
        assert_eq!(e.message(), "Not Found");
        // Long bodies are cut, on a character boundary.
        let long = "é".repeat(MAX_ERROR_TEXT_BYTES);
        let e =
            ClientError::from_response(StatusCode::BAD_REQUEST, &HeaderMap::new(), long.as_bytes());
        assert!(e.message().len() <= MAX_ERROR_TEXT_BYTES);
        assert!(e.message().starts_with('é'));
    }

    #[test]
    fn unavailable_keeps_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        let body = br#"{"error": {"code": "not_leader", "message": "no leader"}}"#;
        let e = ClientError::from_response(StatusCode::SERVICE_UNAVAILABLE, &headers, body);
        assert!(e.is_unavailable());
        assert!(e.is_retryable());
        assert_eq!(e.retry_after_secs(), Some(3));
        // An HTTP-date Retry-After is not kept as seconds.
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        let e = ClientError::from_response(StatusCode::SERVICE_UNAVAILABLE, &headers, b"");
        assert_eq!(e.retry_after_secs(), None);
        assert_eq!(e.code(), "http_503");
    }

    #[test]
    fn codes_of_local_errors() {
        let e = ClientError::invalid_argument("labels.Bad Key", "not a header name");
        assert_eq!(e.code(), "invalid_argument");
        assert_eq!(e.status(), None);
        assert_eq!(e.to_string(), "labels.Bad Key: not a header name");
        let e = ClientError::Transport {
            endpoint: "http://h:1".into(),
            timed_out: true,
            message: "operation timed out".into(),
        };
        assert_eq!(e.code(), "timeout");
        assert!(e.is_retryable());
        assert!(!e.is_unavailable());
        assert_eq!(
            e.to_string(),
            "request timed out at http://h:1: operation timed out"
        );
        let e = ClientError::decode("GET /health", "missing field `status`");
        assert_eq!(e.code(), "invalid_response");
    }
}
