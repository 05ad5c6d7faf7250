//! The CLI's errors and how they are printed: one line, `error: <code>: <message>` plus
//! ` (field: <field>)` when one is known.
//!
//! Refusals get a sentence saying what to do, after the server's own message: 401
//! `unauthenticated` (log in or pass a token, naming where the token sent came from), 403
//! (`conflux auth whoami` lists one's bindings), 429 (when to try again) and 503
//! `metadata_unavailable` (what does and does not work meanwhile).

use conflux_client::ClientError;

use crate::auth::TokenSource;

#[derive(Debug)]
pub(crate) enum CliError {
    /// From the client: the server's answer, or no answer.
    Client(ClientError),
    /// A 401 `unauthenticated`, with where the token sent came from (`None`: none was sent).
    Unauthenticated {
        error: Box<ClientError>,
        token: Option<String>,
    },
    /// Flags that parse but do not fit together; exit code 2 like clap's own usage errors.
    Usage { message: String },
    /// Local input that cannot be used (a file that cannot be read, a schema that is not
    /// JSON, content that is not UTF-8).
    Input {
        code: &'static str,
        field: Option<&'static str>,
        message: String,
    },
    /// The result could not be rendered or written.
    Output { message: String },
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError::Client(e)
    }
}

impl CliError {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
        }
    }

    pub(crate) fn invalid_input(field: &'static str, message: impl Into<String>) -> Self {
        CliError::Input {
            code: "invalid_argument",
            field: Some(field),
            message: message.into(),
        }
    }

    pub(crate) fn io(message: impl Into<String>) -> Self {
        CliError::Input {
            code: "io_error",
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn output(message: impl Into<String>) -> Self {
        CliError::Output {
            message: message.into(),
        }
    }

    /// Adds where the token came from to a 401 `unauthenticated`; other errors unchanged.
    pub(crate) fn with_token_source(self, source: Option<&TokenSource>) -> Self {
        match self {
            CliError::Client(error)
                if error.status() == Some(401) && error.code() == "unauthenticated" =>
            {
                CliError::Unauthenticated {
                    error: Box::new(error),
                    token: source.map(ToString::to_string),
                }
            }
            other => other,
        }
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage { .. } => 2,
            CliError::Client(_)
            | CliError::Unauthenticated { .. }
            | CliError::Input { .. }
            | CliError::Output { .. } => 1,
        }
    }

    /// The one line printed on stderr.
    pub(crate) fn line(&self) -> String {
        let (code, message, field) = match self {
            CliError::Client(e) => (
                e.code().to_owned(),
                explained(e),
                e.field().map(str::to_owned),
            ),
            CliError::Unauthenticated { error, token } => {
                let what = match token {
                    None => "not logged in (no token was sent)".to_owned(),
                    Some(source) => format!(
                        "token rejected (expired, revoked or unknown; it came from {source})"
                    ),
                };
                (
                    error.code().to_owned(),
                    format!("{what}: {LOGIN_HINT}; the server said: {}", error.message()),
                    None,
                )
            }
            CliError::Usage { message } => ("invalid_argument".to_owned(), message.clone(), None),
            CliError::Input {
                code,
                field,
                message,
            } => (
                (*code).to_owned(),
                message.clone(),
                field.map(str::to_owned),
            ),
            CliError::Output { message } => ("output_error".to_owned(), message.clone(), None),
        };
        let mut line = format!("error: {code}: {}", one_line(&message));
        if let Some(field) = field {
            line.push_str(&format!(" (field: {})", one_line(&field)));
        }
        line
    }
}

const LOGIN_HINT: &str = "run `conflux login` or pass --token";

/// The server's message, with what to do about the refusals people meet.
fn explained(e: &ClientError) -> String {
    let message = e.message();
    match (e.status(), e.code()) {
        (Some(401), "unauthenticated") => {
            format!("not logged in or token rejected: {LOGIN_HINT}; the server said: {message}")
        }
        (Some(403), _) => format!(
            "permission denied: {message} (`conflux auth whoami` lists the role bindings of the token sent)"
        ),
        (Some(429), _) => match e.retry_after_secs() {
            Some(secs) => format!("{message} (try again in {secs} s)"),
            None => format!("{message} (try again in a minute)"),
        },
        (Some(503), "metadata_unavailable") => format!(
            "{message} (the metadata database is unreachable: logins and user, token and role-binding changes wait until it is back; fetches and config changes go on)"
        ),
        _ => message,
    }
}

/// Line breaks and other control characters (from a server or a proxy's HTML page) and runs
/// of white space become single spaces, so the error stays on one readable line.
fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let e = CliError::invalid_input("schema-file", "not JSON:\nline 1");
        assert_eq!(
            e.line(),
            "error: invalid_argument: not JSON: line 1 (field: schema-file)"
        );
        assert_eq!(e.exit_code(), 1);
        let e = CliError::usage("--percent only applies to --strategy canary");
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.line(),
            "error: invalid_argument: --percent only applies to --strategy canary"
        );
        assert_eq!(CliError::io("x").line(), "error: io_error: x");
    }

    #[test]
    fn server_errors_keep_code_and_field() {
        let e = CliError::from(ClientError::Api {
            status: 400,
            code: "invalid_name".into(),
            message: "app: \"Billing\" starts with 'B'".into(),
            field: Some("app".into()),
            details: vec![],
            retry_after_secs: None,
        });
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.line(),
            "error: invalid_name: app: \"Billing\" starts with 'B' (field: app)"
        );
        let e = CliError::from(ClientError::Api {
            status: 502,
            code: "http_502".into(),
            message: "<html>\n  <body>bad\r\n gateway</body>\n</html>".into(),
            field: None,
            details: vec![],
            retry_after_secs: None,
        });
        assert_eq!(
            e.line(),
            "error: http_502: <html> <body>bad gateway</body> </html>"
        );
    }

    fn api(status: u16, code: &str, message: &str, retry_after_secs: Option<u64>) -> ClientError {
        ClientError::Api {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
            details: vec![],
            retry_after_secs,
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        let e = CliError::from(api(401, "unauthenticated", "no bearer token", None));
        assert_eq!(
            e.clone_line_with(None),
            "error: unauthenticated: not logged in (no token was sent): run `conflux login` or pass --token; the server said: no bearer token"
        );
        assert_eq!(
            e.clone_line_with(Some(&TokenSource::Env)),
            "error: unauthenticated: token rejected (expired, revoked or unknown; it came from CONFLUX_TOKEN): run `conflux login` or pass --token; the server said: no bearer token"
        );
        assert!(
            e.line()
                .contains("not logged in or token rejected: run `conflux login`"),
            "{}",
            e.line()
        );
        // A wrong password is not "not logged in".
        let e = CliError::from(api(
            401,
            "invalid_credentials",
            "wrong username or password",
            None,
        ))
        .with_token_source(None);
        assert_eq!(
            e.line(),
            "error: invalid_credentials: wrong username or password"
        );
        let e = CliError::from(api(
            403,
            "forbidden",
            "publish on acme/web/prod needs publisher",
            None,
        ));
        assert_eq!(
            e.line(),
            "error: forbidden: permission denied: publish on acme/web/prod needs publisher (`conflux auth whoami` lists the role bindings of the token sent)"
        );
        let e = CliError::from(api(
            429,
            "too_many_attempts",
            "too many failed logins",
            Some(42),
        ));
        assert_eq!(
            e.line(),
            "error: too_many_attempts: too many failed logins (try again in 42 s)"
        );
        let e = CliError::from(api(
            503,
            "metadata_unavailable",
            "metadata DB down",
            Some(1),
        ));
        assert!(
            e.line()
                .contains("logins and user, token and role-binding changes wait")
        );
        let e = CliError::from(api(503, "not_leader", "no leader", Some(1)));
        assert_eq!(e.line(), "error: not_leader: no leader");
    }

    impl CliError {
        fn clone_line_with(&self, source: Option<&TokenSource>) -> String {
            let CliError::Client(ClientError::Api {
                status,
                code,
                message,
                retry_after_secs,
                ..
            }) = self
            else {
                panic!("{self:?}")
            };
            CliError::from(api(*status, code, message, *retry_after_secs))
                .with_token_source(source)
                .line()
        }
    }
}
