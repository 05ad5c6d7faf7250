//! Building request URLs so that a caller-supplied name can never leave its path segment.
//!
//! Every name (tenant, app, environment, config) is percent-encoded with everything but the
//! RFC 3986 unreserved characters escaped, so `/`, `?`, `#` and `%` inside a name stay data.
//! The dot segments `.` and `..` are refused outright: URL parsers normalise them (even in
//! their `%2e` spellings), so no encoding can carry them to the server intact. Neither can be
//! a valid name, and neither can the empty string, which is refused too.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;

use crate::error::ClientError;

/// Characters escaped in a path segment: all but `A-Za-z0-9-._~`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The path (and query) of one API request, built segment by segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiPath {
    path: String,
    query: Vec<(&'static str, String)>,
}

impl ApiPath {
    /// Starts from a fixed prefix such as `/api/v1/mgt`; it is trusted and not encoded.
    pub(crate) fn new(prefix: &'static str) -> Self {
        debug_assert!(prefix.starts_with('/') && !prefix.ends_with('/'));
        ApiPath {
            path: prefix.to_owned(),
            query: Vec::new(),
        }
    }

    /// Appends a fixed segment (`tenants`, `configs`...).
    pub(crate) fn lit(mut self, segment: &'static str) -> Self {
        self.path.push('/');
        self.path.push_str(segment);
        self
    }

    /// Appends a caller-supplied name, percent-encoded. `field` names it in errors.
    pub(crate) fn seg(mut self, field: &str, value: &str) -> Result<Self, ClientError> {
        if value.is_empty() || value == "." || value == ".." {
            return Err(ClientError::invalid_argument(
                field,
                format!("{value:?} cannot be used as a path segment"),
            ));
        }
        self.path.push('/');
        self.path
            .extend(utf8_percent_encode(value, SEGMENT).map(|s| s.to_owned()));
        Ok(self)
    }

    /// Appends a number (config id, version).
    pub(crate) fn num(mut self, n: u64) -> Self {
        self.path.push('/');
        self.path.push_str(&n.to_string());
        self
    }

    /// Adds a query parameter; values are form-encoded when the URL is built.
    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    /// Adds a query parameter when `value` is `Some`.
    pub(crate) fn query_opt<V: Into<String>>(self, key: &'static str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.query(key, v),
            None => self,
        }
    }

    /// The encoded path, without the query; used in error messages.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The full URL below `base` (`scheme://host[:port][/prefix]`, no trailing slash).
    pub(crate) fn url(&self, base: &str) -> Result<Url, ClientError> {
        let mut url = Url::parse(&format!("{base}{}", self.path))
            .map_err(|e| ClientError::invalid_argument("url", e.to_string()))?;
        if !self.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &self.query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }
}

/// Validates an endpoint and returns its base: `scheme://host[:port][/prefix]` without a
/// trailing slash. `host:port` without a scheme means `http://host:port`; `https://` needs
/// the server on TLS (`--api-tls-cert`).
pub(crate) fn parse_endpoint(endpoint: &str) -> Result<String, ClientError> {
    let endpoint = endpoint.trim();
    let invalid = |message: String| ClientError::invalid_argument("endpoint", message);
    if endpoint.is_empty() {
        return Err(invalid("the endpoint is empty".to_owned()));
    }
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    let url =
        Url::parse(&with_scheme).map_err(|e| invalid(format!("{endpoint:?} is not a URL: {e}")))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(invalid(format!(
                "{endpoint:?}: unsupported scheme {other:?}; use http:// or https://"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("{endpoint:?} has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!(
            "{endpoint:?} must not have a query or fragment"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!("{endpoint:?} must not carry credentials")));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:8080";

    #[test]
    fn segments_are_percent_encoded() {
        let p = ApiPath::new("/api/v1/mgt")
            .lit("tenants")
            .seg("tenant", "a/../b?c#d%e f")
            .unwrap();
        assert_eq!(p.path(), "/api/v1/mgt/tenants/a%2F..%2Fb%3Fc%23d%25e%20f");
        let url = p.url(BASE).unwrap();
        // The URL parser keeps the escapes: the name stays one segment.
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/api/v1/mgt/tenants/a%2F..%2Fb%3Fc%23d%25e%20f"
        );
        assert_eq!(url.path_segments().unwrap().count(), 5);
        assert_eq!(url.query(), None);
    }

    #[test]
    fn valid_names_are_unchanged_and_unicode_is_encoded() {
        let p = ApiPath::new("/api/v1/fetch")
            .lit("config")
            .seg("name", "database.toml")
            .unwrap()
            .seg("name", "A_b-c~1")
            .unwrap()
            .seg("name", "é")
            .unwrap();
        assert_eq!(
            p.path(),
            "/api/v1/fetch/config/database.toml/A_b-c~1/%C3%A9"
        );
    }

    #[test]
    fn dot_and_empty_segments_are_refused() {
        for bad in ["", ".", ".."] {
            let err = ApiPath::new("/api").seg("app", bad).unwrap_err();
            assert_eq!(err.code(), "invalid_argument");
            assert_eq!(err.field(), Some("app"));
        }
        // Longer dot runs are ordinary names to a URL parser.
        let p = ApiPath::new("/api").seg("name", "...").unwrap();
        assert_eq!(p.url(BASE).unwrap().path(), "/api/...");
    }

    #[test]
    fn query_values_are_encoded() {
        let url = ApiPath::new("/api/v1/mgt")
            .lit("configs")
            .num(7)
            .lit("versions")
            .query("description", "a&b=c d")
            .query_opt("validate_only", Some("true"))
            .query_opt::<String>("cursor", None)
            .url(BASE)
            .unwrap();
        assert_eq!(url.path(), "/api/v1/mgt/configs/7/versions");
        assert_eq!(
            url.query(),
            Some("description=a%26b%3Dc+d&validate_only=true")
        );
    }

    #[test]
    fn endpoints_are_normalised() {
        assert_eq!(parse_endpoint("http://127.0.0.1:8080").unwrap(), BASE);
        assert_eq!(parse_endpoint("http://127.0.0.1:8080/").unwrap(), BASE);
        assert_eq!(parse_endpoint(" 127.0.0.1:8080 ").unwrap(), BASE);
        assert_eq!(
            parse_endpoint("localhost:9000").unwrap(),
            "http://localhost:9000"
        );
        assert_eq!(
            parse_endpoint("http://gw.example/conflux/").unwrap(),
            "http://gw.example/conflux"
        );
        assert_eq!(
            parse_endpoint("https://127.0.0.1:8443/").unwrap(),
            "https://127.0.0.1:8443"
        );
        let p = ApiPath::new("/health");
        assert_eq!(
            p.url("http://gw.example/conflux").unwrap().as_str(),
            "http://gw.example/conflux/health"
        );
    }

    #[test]
    fn bad_endpoints_are_refused() {
        for bad in [
            "",
            "ftp://h",
            "http://",
            "http://h:1/?x=1",
            "http://u:p@h:1",
            "http://h:99999",
        ] {
            let err = parse_endpoint(bad).unwrap_err();
            assert_eq!(err.field(), Some("endpoint"), "{bad}");
        }
    }
}
