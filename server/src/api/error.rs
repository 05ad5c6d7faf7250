//! The one place that maps errors to HTTP. Every variant of [`DomainError`] and of
//! [`ApiError`] is matched explicitly (no catch-all arm), so a new error cannot reach a
//! client with an unconsidered status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conflux_api_types::{ErrorBody, ErrorDetail};
use conflux_domain::{DomainError, Quota};

use conflux_metadata::MetadataError;

use crate::cluster::ClusterError;
use crate::raft::FailureKind;

/// Why a request was refused (401/403), attached to the response for the audit of denials.
#[derive(Debug, Clone)]
pub struct DeniedBecause(pub String);

/// Errors of the HTTP layer, including the domain's.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] DomainError),

    /// A cluster operation (forwarding to the leader, membership) failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),

    /// The body is not JSON, or not the JSON this endpoint takes.
    #[error("{message}")]
    InvalidJson {
        message: String,
        field: Option<String>,
    },

    /// A path segment or query parameter cannot be parsed.
    #[error("{message}")]
    InvalidRequest {
        code: &'static str,
        message: String,
        field: Option<String>,
    },

    /// A header value is not valid (not UTF-8, not a number...).
    #[error("header {header}: {message}")]
    InvalidHeader { header: String, message: String },

    #[error("{message}")]
    UnsupportedMediaType { message: String },

    /// A limit of this node (watchers, subscriptions per connection) is reached.
    #[error("{message}")]
    TooMany { code: &'static str, message: String },

    #[error("the request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },

    #[error("no route for {path}")]
    RouteNotFound { path: String },

    #[error("method {method} is not allowed here")]
    MethodNotAllowed { method: String },

    /// The node cannot serve this now (no leader, write timed out, revision not reached).
    /// The client should retry after `retry_after_secs`.
    #[error("{message}")]
    Unavailable {
        code: &'static str,
        message: String,
        retry_after_secs: u32,
    },

    /// No usable bearer token: missing, malformed, unknown, expired or revoked.
    #[error("{message}")]
    Unauthenticated { message: String },

    /// Login with a wrong password or an unknown user (the same answer for both).
    #[error("wrong username or password")]
    InvalidCredentials,

    /// Authenticated, but the caller's roles do not allow this.
    #[error("{message}")]
    Forbidden { message: String },

    /// Too many failed logins for one username.
    #[error("too many failed logins for this user; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u32 },

    /// The metadata DB (users, tokens, bindings, audit) failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),

    /// A fault of this node (storage, Raft core stopped). Never caused by the request.
    #[error("internal error: {message}")]
    Internal { message: String },
}

/// A KMS failure is this node's problem, never the request's: 503, and the client may retry
/// (another node, or later). A corrupted ciphertext is also a 503 with its own code: this
/// node's copy failed authentication, another node's copy may be intact, and garbage is never
/// served.
impl From<conflux_kms::KmsError> for ApiError {
    fn from(e: conflux_kms::KmsError) -> Self {
        ApiError::Unavailable {
            code: e.code(),
            message: e.to_string(),
            retry_after_secs: 1,
        }
    }
}

impl ApiError {
    pub fn invalid_request(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::InvalidRequest {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal {
            message: e.to_string(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Domain(e) => domain_status(e),
            ApiError::Cluster(e) => cluster_status(e),
            ApiError::InvalidJson { .. }
            | ApiError::InvalidRequest { .. }
            | ApiError::InvalidHeader { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthenticated { .. } | ApiError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Metadata(e) => metadata_status(e),
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn detail(&self) -> ErrorDetail {
        let (code, field, details): (&str, Option<String>, Vec<serde_json::Value>) = match self {
            ApiError::Domain(e) => (e.code(), e.field().map(str::to_owned), domain_details(e)),
            ApiError::Cluster(e) => (cluster_code(e), None, Vec::new()),
            ApiError::InvalidJson { field, .. } => ("invalid_json", field.clone(), Vec::new()),
            ApiError::InvalidRequest { code, field, .. } => (code, field.clone(), Vec::new()),
            ApiError::InvalidHeader { header, .. } => {
                ("invalid_header", Some(header.clone()), Vec::new())
            }
            ApiError::UnsupportedMediaType { .. } => (
                "unsupported_media_type",
                Some("Content-Type".to_owned()),
                Vec::new(),
            ),
            ApiError::PayloadTooLarge { .. } => ("payload_too_large", None, Vec::new()),
            ApiError::TooMany { code, .. } => (code, None, Vec::new()),
            ApiError::RouteNotFound { .. } => ("not_found", None, Vec::new()),
            ApiError::MethodNotAllowed { .. } => ("method_not_allowed", None, Vec::new()),
            ApiError::Unavailable { code, .. } => (code, None, Vec::new()),
            ApiError::Unauthenticated { .. } => ("unauthenticated", None, Vec::new()),
            ApiError::InvalidCredentials => ("invalid_credentials", None, Vec::new()),
            ApiError::Forbidden { .. } => ("forbidden", None, Vec::new()),
            ApiError::TooManyAttempts { .. } => ("too_many_attempts", None, Vec::new()),
            ApiError::Metadata(e) => (metadata_code(e), None, Vec::new()),
            ApiError::Internal { .. } => ("internal", None, Vec::new()),
        };
        ErrorDetail {
            code: code.to_owned(),
            message: self.to_string(),
            field,
            details,
        }
    }
}

fn metadata_status(e: &MetadataError) -> StatusCode {
    match e {
        MetadataError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        MetadataError::Conflict(_) => StatusCode::CONFLICT,
        MetadataError::NotFound(_) => StatusCode::NOT_FOUND,
        MetadataError::Invalid(_) => StatusCode::BAD_REQUEST,
        MetadataError::Migration(_) | MetadataError::Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn metadata_code(e: &MetadataError) -> &'static str {
    match e {
        MetadataError::Unavailable(_) => "metadata_unavailable",
        MetadataError::Conflict(_) => "already_exists",
        MetadataError::NotFound(_) => "not_found",
        MetadataError::Invalid(_) => "invalid_argument",
        MetadataError::Migration(_) | MetadataError::Other(_) => "internal",
    }
}

fn cluster_status(e: &ClusterError) -> StatusCode {
    match e {
        ClusterError::NoLeader
        | ClusterError::OutcomeUnknown(_)
        | ClusterError::Stopped(_)
        | ClusterError::NotAppliedHere { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ClusterError::Rejected { kind, .. } => match kind {
            FailureKind::MemberNotFound => StatusCode::NOT_FOUND,
            FailureKind::MemberConflict
            | FailureKind::LastVoter
            | FailureKind::MembershipChangeRejected => StatusCode::CONFLICT,
            FailureKind::NotAVoter => StatusCode::BAD_REQUEST,
            FailureKind::WriteTimeout
            | FailureKind::NodeStopped
            | FailureKind::CatchUpTimeout
            | FailureKind::TransferFailed => StatusCode::SERVICE_UNAVAILABLE,
        },
    }
}

fn cluster_code(e: &ClusterError) -> &'static str {
    match e {
        ClusterError::NoLeader => "not_leader",
        ClusterError::OutcomeUnknown(_) => "write_timeout",
        ClusterError::Stopped(_) => "node_stopped",
        ClusterError::NotAppliedHere { .. } => "revision_not_reached",
        ClusterError::Rejected { kind, .. } => kind.code(),
    }
}

fn domain_status(e: &DomainError) -> StatusCode {
    match e {
        DomainError::InvalidName { .. }
        | DomainError::InvalidArgument { .. }
        | DomainError::InvalidLabel { .. }
        | DomainError::InvalidReleaseRules { .. }
        | DomainError::UnknownVersion { .. }
        | DomainError::InvalidSchema { .. } => StatusCode::BAD_REQUEST,
        DomainError::NotFound { .. } | DomainError::NotPublished { .. } => StatusCode::NOT_FOUND,
        DomainError::AlreadyExists { .. }
        | DomainError::HasChildren { .. }
        | DomainError::RevisionMismatch { .. }
        | DomainError::ProposalPending { .. }
        | DomainError::ProposalFinished { .. }
        | DomainError::AlreadyApproved { .. } => StatusCode::CONFLICT,
        DomainError::SelfApproval { .. } | DomainError::NotProposer { .. } => StatusCode::FORBIDDEN,
        DomainError::QuotaExceeded { quota, .. } => match quota {
            Quota::MaxConfigBytes => StatusCode::PAYLOAD_TOO_LARGE,
            Quota::MaxApps | Quota::MaxConfigs | Quota::MaxVersionsPerConfig => {
                StatusCode::TOO_MANY_REQUESTS
            }
        },
        DomainError::ContentInvalid { .. }
        | DomainError::SchemaViolation { .. }
        | DomainError::IdempotencyKeyReused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        DomainError::TenantSuspended { .. } => StatusCode::FORBIDDEN,
    }
}

/// Structured details that help a client act on an error.
fn domain_details(e: &DomainError) -> Vec<serde_json::Value> {
    use serde_json::json;
    match e {
        DomainError::SchemaViolation { violations } => violations
            .iter()
            .map(|v| json!({"pointer": v.pointer, "message": v.message}))
            .collect(),
        DomainError::ContentInvalid {
            format,
            line,
            column,
            ..
        } => {
            vec![json!({"format": format, "line": line, "column": column})]
        }
        DomainError::RevisionMismatch { expected, actual } => {
            vec![json!({"expected": expected, "actual": actual})]
        }
        DomainError::ProposalPending { proposal_id, .. } => {
            vec![json!({"proposal_id": proposal_id})]
        }
        DomainError::ProposalFinished {
            proposal_id,
            status,
        } => vec![json!({"proposal_id": proposal_id, "status": status})],
        DomainError::QuotaExceeded {
            quota,
            limit,
            requested,
        } => {
            vec![json!({"quota": quota.as_str(), "limit": limit, "requested": requested})]
        }
        DomainError::InvalidName { .. }
        | DomainError::InvalidArgument { .. }
        | DomainError::InvalidLabel { .. }
        | DomainError::InvalidReleaseRules { .. }
        | DomainError::UnknownVersion { .. }
        | DomainError::InvalidSchema { .. }
        | DomainError::NotFound { .. }
        | DomainError::AlreadyExists { .. }
        | DomainError::HasChildren { .. }
        | DomainError::IdempotencyKeyReused { .. }
        | DomainError::TenantSuspended { .. }
        | DomainError::NotPublished { .. }
        | DomainError::SelfApproval { .. }
        | DomainError::AlreadyApproved { .. }
        | DomainError::NotProposer { .. } => Vec::new(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let denied_because = self.to_string();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self, "request failed with a server fault");
        }
        let retry_after = match &self {
            ApiError::Unavailable {
                retry_after_secs, ..
            }
            | ApiError::TooManyAttempts { retry_after_secs } => Some(*retry_after_secs),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            response
                .extensions_mut()
                .insert(DeniedBecause(denied_because));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The same errors on the gRPC face of the API: the status code follows the HTTP status, and
/// the message carries the stable code (`<code>: <message>`).
impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let detail = e.detail();
        let message = format!("{}: {}", detail.code, detail.message);
        let code = match status {
            StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::UNPROCESSABLE_ENTITY => tonic::Code::InvalidArgument,
            StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
            StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
            StatusCode::NOT_FOUND => tonic::Code::NotFound,
            StatusCode::CONFLICT => tonic::Code::FailedPrecondition,
            StatusCode::TOO_MANY_REQUESTS => tonic::Code::ResourceExhausted,
            StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
            StatusCode::METHOD_NOT_ALLOWED => tonic::Code::Unimplemented,
            _ => tonic::Code::Internal,
        };
        tonic::Status::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use conflux_kms::KmsError;

    use super::*;

    /// A KMS failure is never a 500 and never garbage: 503 with the failure's own code.
    #[test]
    fn kms_failures_are_503_with_their_code() {
        for (e, code) in [
            (
                KmsError::Unavailable("connection refused".into()),
                "kms_unavailable",
            ),
            (
                KmsError::Key {
                    kek_id: "k".into(),
                    message: "disabled".into(),
                },
                "kms_key_error",
            ),
            (KmsError::Corrupt { what: "content" }, "content_corrupt"),
        ] {
            let e = ApiError::from(e);
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.detail().code, code);
        }
    }
}
