//! The `provider "conflux"` block: where Conflux is and how to talk to it.

use std::time::Duration;

use conflux_client::ApiClient;

use crate::api::{Api, DEFAULT_MAX_RETRIES};
use crate::protocol::diag::{Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Block, Schema};
use crate::protocol::value::{Obj, Type};
use crate::validate;

/// Used when neither `endpoint` nor `CONFLUX_ENDPOINT` is set: a node's default address.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";
pub const ENDPOINT_ENV: &str = "CONFLUX_ENDPOINT";
pub const TOKEN_ENV: &str = "CONFLUX_TOKEN";
/// At most this many retries can be configured.
const MAX_RETRIES_LIMIT: i64 = 20;

pub fn schema() -> Schema {
    Schema::new(
        Block::new("Conflux, a distributed configuration center.")
            .attr(Attribute::optional(
                "endpoint",
                Type::String,
                "URL of any Conflux node (http://host:port). Defaults to CONFLUX_ENDPOINT, then http://127.0.0.1:8080.",
            ))
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
    for attr in ["endpoint", "token", "timeout", "max_retries"] {
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
    }
}
