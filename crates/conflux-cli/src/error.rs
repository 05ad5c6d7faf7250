//! The CLI's errors and how they are printed: one line, `error: <code>: <message>` plus
//! ` (field: <field>)` when one is known.

use conflux_client::ClientError;

#[derive(Debug)]
pub(crate) enum CliError {
    /// From the client: the server's answer, or no answer.
    Client(ClientError),
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

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage { .. } => 2,
            CliError::Client(_) | CliError::Input { .. } | CliError::Output { .. } => 1,
        }
    }

    /// The one line printed on stderr.
    pub(crate) fn line(&self) -> String {
        let (code, message, field) = match self {
            CliError::Client(e) => (
                e.code().to_owned(),
                e.message(),
                e.field().map(str::to_owned),
            ),
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
}
