//! Request extractors that turn every kind of malformed input into an [`ApiError`] with a
//! stable code, instead of axum's plain-text rejections.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use conflux_api_types::headers;
use conflux_domain::{ClientLabels, ContentHash, IdempotencyKey, Revision};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::MAX_BODY_BYTES;
use super::error::ApiError;

/// Idempotency keys are at most this long.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Largest body a node reads and throws away to answer 413 on a connection that stays
/// usable; a larger one gets its 413 at once and the connection is closed.
const MAX_DRAINED_BYTES: u64 = 64 * 1024 * 1024;

/// Middleware of the routes that take a body: reads the whole body before the handler runs.
///
/// Any answer given before the body is read (413, or an extractor that rejects the path, query
/// or headers first) would leave the rest of the body on the connection, and hyper then
/// closes it; a keep-alive client would send its next request into a closing connection, or
/// fail to finish writing the body it is sending. Reading first keeps the connection usable.
/// A body over [`MAX_BODY_BYTES`] is read to its end and dropped (up to
/// [`MAX_DRAINED_BYTES`]; beyond that the node answers at once with `Connection: close`).
pub async fn read_body_first(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_DRAINED_BYTES) {
        return too_large(true);
    }
    let (parts, body) = req.into_parts();
    let mut chunks = body.into_data_stream();
    let mut kept: Vec<Bytes> = Vec::new();
    let mut total: u64 = 0;
    while let Some(chunk) = chunks.next().await {
        let Ok(chunk) = chunk else {
            return ApiError::InvalidRequest {
                code: "invalid_body",
                message: "the request body could not be read".into(),
                field: None,
            }
            .into_response();
        };
        total += chunk.len() as u64;
        if total > MAX_DRAINED_BYTES {
            return too_large(true);
        }
        if total <= MAX_BODY_BYTES as u64 {
            kept.push(chunk);
        }
    }
    if total > MAX_BODY_BYTES as u64 {
        return too_large(false);
    }
    // Most bodies arrive as one chunk: hand it on without a copy.
    let body = match kept.len() {
        1 => kept.swap_remove(0),
        _ => Bytes::from(kept.concat()),
    };
    next.run(Request::from_parts(parts, Body::from(body))).await
}

fn too_large(close_connection: bool) -> Response {
    let mut response = ApiError::PayloadTooLarge {
        limit: MAX_BODY_BYTES,
    }
    .into_response();
    if close_connection {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        }
    } else {
        ApiError::InvalidRequest {
            code: "invalid_body",
            message: e.body_text(),
            field: None,
        }
    }
}

/// A JSON body: requires `Content-Type: application/json` and reports parse errors with the
/// path of the offending field. Keeps the raw bytes for idempotency fingerprints.
#[derive(Debug)]
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType {
                message: "this endpoint takes a JSON body; send Content-Type: application/json"
                    .into(),
            });
        }
        let raw = Bytes::from_request(req, state).await.map_err(body_error)?;
        if raw.is_empty() {
            return Err(ApiError::InvalidJson {
                message: "the request body is empty".into(),
                field: None,
            });
        }
        Ok(JsonBody {
            value: parse_json(&raw)?,
            raw,
        })
    }
}

/// Parses JSON, naming the path of the offending field in errors.
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != ".").then_some(path);
        let message = match &field {
            Some(f) => format!("{f}: {inner}"),
            None => format!("invalid JSON body: {inner}"),
        };
        ApiError::InvalidJson { message, field }
    })
}

/// A raw body with its `Content-Type` (version contents).
#[derive(Debug)]
pub struct RawBody {
    pub content_type: String,
    pub bytes: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = match req.headers().get(header::CONTENT_TYPE) {
            None => {
                return Err(ApiError::UnsupportedMediaType {
                    message: "a Content-Type header is required for version content".into(),
                });
            }
            Some(v) => v
                .to_str()
                .map_err(|_| ApiError::InvalidHeader {
                    header: "Content-Type".into(),
                    message: "not valid ASCII".into(),
                })?
                .to_owned(),
        };
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        Ok(RawBody {
            content_type,
            bytes,
        })
    }
}

/// Path parameters, with parse failures (not a number, invalid UTF-8) as 400 `invalid_path`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e: PathRejection| ApiError::InvalidRequest {
                code: "invalid_path",
                message: e.body_text(),
                field: None,
            })
    }
}

/// Query parameters, with parse failures as 400 `invalid_query`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| ApiError::InvalidRequest {
                code: "invalid_query",
                message: e.body_text(),
                field: None,
            })
    }
}

/// `X-Idempotency-Key` and `If-Match` of a write, plus what identifies the request for the
/// idempotency fingerprint.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    idempotency_key: Option<String>,
    pub if_match: Option<Revision>,
    method: Method,
    path_and_query: String,
}

impl WriteOptions {
    /// The same request without `X-Idempotency-Key` and `If-Match`, for a handler that
    /// proposes several commands of its own.
    pub fn without_idempotency(&self) -> WriteOptions {
        WriteOptions {
            idempotency_key: None,
            if_match: None,
            ..self.clone()
        }
    }

    /// The idempotency key bound to this request's principal, method, path and body: the
    /// same key sent by someone else is a reuse, never a replay of their result.
    pub fn idempotency(&self, principal: &str, body: &[u8]) -> Option<IdempotencyKey> {
        let key = self.idempotency_key.as_ref()?;
        let mut material =
            Vec::with_capacity(body.len() + self.path_and_query.len() + principal.len() + 16);
        material.extend_from_slice(principal.as_bytes());
        material.push(b'\n');
        material.extend_from_slice(self.method.as_str().as_bytes());
        material.push(b' ');
        material.extend_from_slice(self.path_and_query.as_bytes());
        material.push(b'\n');
        material.extend_from_slice(body);
        Some(IdempotencyKey {
            key: key.clone(),
            fingerprint: ContentHash::of(&material),
        })
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| ApiError::InvalidHeader {
            header: name.to_owned(),
            message: "not valid visible ASCII".into(),
        }),
    }
}

/// Parses `If-Match: 42`, `If-Match: "42"` or `If-Match: W/"42"`.
pub fn parse_if_match(headers: &HeaderMap) -> Result<Option<Revision>, ApiError> {
    let Some(raw) = header_str(headers, header::IF_MATCH.as_str())? else {
        return Ok(None);
    };
    let trimmed = raw.trim().trim_start_matches("W/").trim_matches('"');
    trimmed
        .parse::<Revision>()
        .map(Some)
        .map_err(|_| ApiError::InvalidHeader {
            header: "If-Match".into(),
            message: format!("{raw:?} is not a revision number"),
        })
}

impl<S: Send + Sync> FromRequestParts<S> for WriteOptions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let key = header_str(&parts.headers, headers::IDEMPOTENCY_KEY)?;
        if let Some(k) = key
            && (k.is_empty()
                || k.len() > MAX_IDEMPOTENCY_KEY_LEN
                || !k.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ApiError::InvalidHeader {
                header: "X-Idempotency-Key".into(),
                message: format!("must be 1-{MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
            });
        }
        Ok(WriteOptions {
            idempotency_key: key.map(str::to_owned),
            if_match: parse_if_match(&parts.headers)?,
            method: parts.method.clone(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
        })
    }
}

/// Client labels from `X-Client-Label-*` headers and `X-Client-Id`, plus optional extra
/// pairs (the resolve simulator's `?label.<k>=<v>`).
pub fn client_labels<'a>(
    headers: &'a HeaderMap,
    extra: impl IntoIterator<Item = (&'a str, &'a str)>,
    extra_client_id: Option<&str>,
) -> Result<ClientLabels, ApiError> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(headers::CLIENT_LABEL_PREFIX) {
            // Label values may be any UTF-8 text (e.g. a city name); invalid UTF-8 is refused.
            let value =
                std::str::from_utf8(value.as_bytes()).map_err(|_| ApiError::InvalidHeader {
                    header: name.as_str().to_owned(),
                    message: "label values must be valid UTF-8".into(),
                })?;
            pairs.push((key, value));
        }
    }
    pairs.extend(extra);
    let client_id = match (extra_client_id, headers.get(headers::CLIENT_ID)) {
        (Some(id), _) => Some(id),
        (None, Some(v)) => {
            Some(
                std::str::from_utf8(v.as_bytes()).map_err(|_| ApiError::InvalidHeader {
                    header: "X-Client-Id".into(),
                    message: "must be valid UTF-8".into(),
                })?,
            )
        }
        (None, None) => None,
    };
    Ok(ClientLabels::from_pairs(pairs, client_id)?)
}
