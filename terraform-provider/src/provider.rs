//! The `provider "conflux"` block: where Conflux is and how to talk to it.

use std::time::Duration;

use conflux_client::{ApiClient, TlsOptions};

use crate::api::{Api, DEFAULT_MAX_RETRIES};
use crate::protocol::diag::{Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type};
use crate::validate;

/// Used when neither `endpoint` nor `CONFLUX_ENDPOINT` is set: a node's default address.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";
pub const ENDPOINT_ENV: &str = "CONFLUX_ENDPOINT";
pub const TOKEN_ENV: &str = "CONFLUX_TOKEN";
pub const CACERT_ENV: &str = "CONFLUX_CACERT";
pub const CLIENT_CERT_ENV: &str = "CONFLUX_CLIENT_CERT";
pub const CLIENT_KEY_ENV: &str = "CONFLUX_CLIENT_KEY";
/// The TLS attributes and their environment fallbacks.
const TLS_ATTRS: [(&str, &str); 3] = [
    ("ca_cert", CACERT_ENV),
    ("client_cert", CLIENT_CERT_ENV),
    ("client_key", CLIENT_KEY_ENV),
];
/// At most this many retries can be configured.
const MAX_RETRIES_LIMIT: i64 = 20;

pub fn schema() -> Schema {
    Schema::new(
        Block::new("Conflux, a distributed configuration center.")
            .attr(Attribute::optional(
                "endpoint",
                Type::String,
                "URL of any Conflux node (http://host:port, or https://host:port for a node with API TLS). Defaults to CONFLUX_ENDPOINT, then http://127.0.0.1:8080.",
            ))
            .attr(Attribute::optional(
                "ca_cert",
                Type::String,
                "CA certificate(s) an https endpoint's certificate must chain to: PEM text (e.g. file(\"ca.pem\")) or the path of a PEM file. Without it, the system trust store. Defaults to CONFLUX_CACERT.",
            ))
            .attr(Attribute::optional(
                "client_cert",
                Type::String,
                "Client certificate for nodes that require one (--api-tls-client-ca): PEM text or the path of a PEM file; needs client_key. Defaults to CONFLUX_CLIENT_CERT.",
            ))
            .attr(
                Attribute::optional(
                    "client_key",
                    Type::String,
                    "Private key of client_cert: PEM text or the path of a PEM file. Defaults to CONFLUX_CLIENT_KEY.",
                )
                .sensitive(),
            )
            .attr(
                Attribute::optional(
                    "token",
                    Type::String,
                    "API token, sent as `Authorization: Bearer <token>`; every request needs one (a service token, a session token, or a node's bootstrap token from <data-dir>/admin.token). Defaults to CONFLUX_TOKEN.",
                )
                .sensitive(),
            )
            .attr(Attribute::optional(
                "timeout",
                Type::String,
                "Timeout of each request, such as \"30s\" or \"2m\". Default 30s.",
            ))
            .attr(Attribute::optional(
                "max_retries",
                Type::Number,
                "Retries of a request answered 503 (no leader) or timed out, with exponential backoff. Default 5.",
            )),
    )
}

pub fn validate(config: &Obj, diags: &mut Diagnostics) {
    if let Some(t) = config.known_str("timeout")
        && let Err(e) = parse_timeout(t)
    {
        diags.push(Diagnostic::error("Invalid timeout", e).at(config.attr_path("timeout")));
    }
    validate::int_range(config, "max_retries", 0, MAX_RETRIES_LIMIT, diags);
    if let Some(e) = config.known_str("endpoint")
        && let Err(err) = ApiClient::new(e)
    {
        diags.push(
            Diagnostic::error("Invalid endpoint", err.to_string()).at(config.attr_path("endpoint")),
        );
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as \"30s\": {e}"))?;
    if d.is_zero() {
        return Err("the timeout must be more than zero".to_owned());
    }
    Ok(d)
}

/// The API handle for a provider configuration; `env` reads environment variables.
pub fn configure(config: &Obj, env: impl Fn(&str) -> Option<String>) -> Result<Api, Diagnostics> {
    let mut diags = Diagnostics::default();
    validate(config, &mut diags);
    for attr in [
        "endpoint",
        "token",
        "timeout",
        "max_retries",
        "ca_cert",
        "client_cert",
        "client_key",
    ] {
        if config.get(attr).is_unknown() {
            diags.push(
                Diagnostic::error(
                    "Provider configuration not known yet",
                    format!("{attr} depends on a value known only after apply; the conflux provider needs it to plan"),
                )
                .at(config.attr_path(attr)),
            );
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    let endpoint = config
        .opt_str("endpoint")?
        .map(str::to_owned)
        .or_else(|| env(ENDPOINT_ENV).filter(|e| !e.is_empty()))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let token = config
        .opt_str("token")?
        .map(str::to_owned)
        .or_else(|| env(TOKEN_ENV).filter(|t| !t.is_empty()));
    let mut builder = ApiClient::builder(&endpoint).user_agent(concat!(
        "terraform-provider-conflux/",
        env!("CARGO_PKG_VERSION")
    ));
    if let Some(t) = &token {
        builder = builder.bearer_token(t);
    }
    builder = builder.tls(tls_options(config, &env)?);
    if let Some(t) = config.opt_str("timeout")? {
        builder = builder.timeout(parse_timeout(t).map_err(|e| {
            Diagnostic::error("Invalid timeout", e).at(config.attr_path("timeout"))
        })?);
    }
    let client = builder.build().map_err(|e| {
        if e.field() == Some("token") {
            return Diagnostic::error(
                "Invalid token",
                format!(
                    "the token (from the provider block or {TOKEN_ENV}): {}",
                    e.message()
                ),
            )
            .at(config.attr_path("token"));
        }
        if let Some(attr) = e
            .field()
            .and_then(|f| TLS_ATTRS.iter().find(|(a, _)| *a == f))
        {
            return Diagnostic::error(
                "Invalid TLS setting",
                format!(
                    "{} (from the provider block or {}): {}",
                    attr.0,
                    attr.1,
                    e.message()
                ),
            )
            .at(config.attr_path(attr.0));
        }
        Diagnostic::error(
            "Invalid endpoint",
            format!("{endpoint:?} (from the provider block or {ENDPOINT_ENV}): {e}"),
        )
        .at(config.attr_path("endpoint"))
    })?;
    let max_retries = config
        .opt_u64("max_retries")?
        .map_or(DEFAULT_MAX_RETRIES, |r| {
            u32::try_from(r).unwrap_or(u32::MAX)
        });
    Ok(Api::new(client, max_retries))
}

/// `ca_cert`, `client_cert` and `client_key` from the block, else their environment
/// variables: PEM text when it holds a PEM header, else the path of a PEM file (read when the
/// client is built, so an unreadable file is a diagnostic on its attribute).
fn tls_options(
    config: &Obj,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<TlsOptions, Diagnostics> {
    let mut values = Vec::new();
    for (attr, var) in TLS_ATTRS {
        let v = config
            .opt_str(attr)?
            .map(str::to_owned)
            .or_else(|| env(var).filter(|v| !v.is_empty()));
        values.push(v);
    }
    let pem = |v: &str| v.contains("-----BEGIN ");
    let mut tls = TlsOptions::new();
    if let Some(ca) = &values[0] {
        tls = if pem(ca) {
            tls.ca_cert_pem(ca.as_bytes())
        } else {
            tls.ca_cert_file(ca)
        };
    }
    match (&values[1], &values[2]) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            tls = match (pem(cert), pem(key)) {
                (true, true) => tls.client_identity(cert.as_bytes(), key.as_bytes()),
                (false, false) => tls.client_identity_files(cert, key),
                // One inline, one a file: read the file here.
                _ => {
                    let load = |v: &str, attr: &str| -> Result<Vec<u8>, Diagnostics> {
                        if pem(v) {
                            return Ok(v.as_bytes().to_vec());
                        }
                        std::fs::read(v).map_err(|e| {
                            Diagnostic::error(
                                "Invalid TLS setting",
                                format!("{attr}: cannot read {v}: {e}"),
                            )
                            .at(config.attr_path(attr))
                            .into()
                        })
                    };
                    tls.client_identity(load(cert, "client_cert")?, load(key, "client_key")?)
                }
            };
        }
        (Some(_), None) | (None, Some(_)) => {
            let missing = if values[1].is_none() {
                "client_cert"
            } else {
                "client_key"
            };
            return Err(Diagnostic::error(
                "Invalid TLS setting",
                "client_cert and client_key go together (in the provider block or CONFLUX_CLIENT_CERT and CONFLUX_CLIENT_KEY)",
            )
            .at(config.attr_path(missing))
            .into());
        }
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::value::Value;

    #[test]
    fn endpoint_comes_from_the_block_then_the_environment_then_the_default() {
        let none = |_: &str| None;
        let api = configure(&Obj::of(&[]), none).unwrap();
        assert_eq!(api.client.endpoint(), DEFAULT_ENDPOINT);
        let env = |k: &str| (k == ENDPOINT_ENV).then(|| "http://10.1.1.1:9000".to_owned());
        let api = configure(&Obj::of(&[]), env).unwrap();
        assert_eq!(api.client.endpoint(), "http://10.1.1.1:9000");
        let api = configure(
            &Obj::of(&[("endpoint", Value::string("http://127.0.0.1:7000"))]),
            env,
        )
        .unwrap();
        assert_eq!(api.client.endpoint(), "http://127.0.0.1:7000");
    }

    #[test]
    fn token_timeout_and_retries() {
        let env = |k: &str| (k == TOKEN_ENV).then(|| "from-env".to_owned());
        let api = configure(
            &Obj::of(&[
                ("timeout", Value::string("2m")),
                ("max_retries", Value::int(1)),
            ]),
            env,
        )
        .unwrap();
        assert_eq!(api.client.timeout(), Duration::from_secs(120));
        assert_eq!(api.max_retries, 1);
        assert!(schema().block.attribute("token").unwrap().sensitive);
    }

    #[test]
    fn bad_settings_name_their_attribute() {
        let none = |_: &str| None;
        let err = configure(&Obj::of(&[("timeout", Value::string("soon"))]), none).unwrap_err();
        assert_eq!(err.0[0].attribute.as_ref().unwrap().to_string(), "timeout");
        let err = configure(&Obj::of(&[("max_retries", Value::int(99))]), none).unwrap_err();
        assert_eq!(
            err.0[0].attribute.as_ref().unwrap().to_string(),
            "max_retries"
        );
        let err = configure(&Obj::of(&[("token", Value::string("two words"))]), none).unwrap_err();
        assert_eq!(err.0[0].attribute.as_ref().unwrap().to_string(), "token");
        let err = configure(&Obj::of(&[("endpoint", Value::Unknown)]), none).unwrap_err();
        assert_eq!(err.0[0].attribute.as_ref().unwrap().to_string(), "endpoint");
        let err = configure(
            &Obj::of(&[("ca_cert", Value::string("/nonexistent/ca.pem"))]),
            none,
        )
        .unwrap_err();
        assert_eq!(err.0[0].attribute.as_ref().unwrap().to_string(), "ca_cert");
        assert!(
            err.0[0].detail.contains("/nonexistent/ca.pem"),
            "{:?}",
            err.0[0]
        );
        let env = |k: &str| (k == CLIENT_KEY_ENV).then(|| "/nonexistent/key.pem".to_owned());
        let err = configure(&Obj::of(&[]), env).unwrap_err();
        assert_eq!(
            err.0[0].attribute.as_ref().unwrap().to_string(),
            "client_cert"
        );
        let err = configure(
            &Obj::of(&[(
                "ca_cert",
                Value::string("-----BEGIN CERTIFICATE-----\ngarbage"),
            )]),
            none,
        )
        .unwrap_err();
        assert_eq!(err.0[0].attribute.as_ref().unwrap().to_string(), "ca_cert");
    }
}
