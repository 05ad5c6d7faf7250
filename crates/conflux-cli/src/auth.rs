//! Who the CLI is (contract section 6): the bearer token it sends, the credentials file that
//! `conflux login` writes, passwords read without echo, and the commands `login`, `logout` and
//! `auth whoami`.
//!
//! **Which token.** The first of: `--token`, the content of `--token-file` (trimmed),
//! `CONFLUX_TOKEN`, and the session `conflux login` saved for the endpoint. No token at all
//! is not an error here: the server answers 401 and the CLI says how to log in.
//!
//! **The credentials file** is `$CONFLUX_CREDENTIALS`, else
//! `$XDG_CONFIG_HOME/conflux/credentials`, else `~/.config/conflux/credentials`: JSON
//! `{"version": 1, "credentials": [{"endpoint", "token", "expires_at"}]}` with one entry per
//! endpoint (as the client normalises it: `127.0.0.1:8080` is `http://127.0.0.1:8080`). It
//! is only ever replaced whole: written to a temporary file created with mode 0600 in the
//! same directory (made 0700 when the CLI creates it), synced, then renamed over the old
//! one, so a reader sees the old file or the new one and the token is never readable by
//! others, not even for a moment. Two logins at the same instant may lose one of the two
//! entries (the later rename wins); the losing one only has to log in again.
//!
//! Tokens and passwords never reach `Debug` output, log lines or error messages.

use std::ffi::OsString;
use std::fmt;
use std::io::{IsTerminal, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use conflux_client::ApiClient;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::error::CliError;
use crate::parse;
use crate::render::{LoggedIn, LoggedOut};
use crate::{Ctx, Output};

/// The format of the credentials file this CLI writes and reads.
pub const CREDENTIALS_VERSION: u32 = 1;
/// A credentials file larger than this is not one of ours.
const MAX_CREDENTIALS_BYTES: u64 = 1024 * 1024;
/// A password (or token file) longer than this is a mistake (a wrong file, say).
const MAX_SECRET_BYTES: u64 = 4096;

/// A bearer token from the command line or a file; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }

    /// The secret itself, to put in a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Tokens are visible ASCII without spaces (what a header value can carry).
    fn is_well_formed(&self) -> bool {
        !self.0.is_empty() && self.0.bytes().all(|b| b.is_ascii_graphic())
    }
}

// clap takes any string: a value refused by clap would be echoed in its error message.
impl From<String> for Token {
    fn from(s: String) -> Self {
        Token(s)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where the token sent came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenSource {
    Flag,
    File(PathBuf),
    Env,
    /// The session `conflux login` saved, which expires at the given time.
    Saved {
        file: PathBuf,
        expires_at: String,
    },
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Flag => f.write_str("--token"),
            TokenSource::File(path) => write!(f, "--token-file {}", path.display()),
            TokenSource::Env => f.write_str("CONFLUX_TOKEN"),
            TokenSource::Saved { file, expires_at } => write!(
                f,
                "the login saved in {} (expires at {expires_at})",
                file.display()
            ),
        }
    }
}

/// The token to send and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) token: Token,
    pub(crate) source: TokenSource,
}

/// What the process environment contributes; tests build their own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    /// `CONFLUX_TOKEN`.
    pub(crate) token: Option<Token>,
    /// Where the credentials file is (or would be); `None` when no location can be found.
    pub(crate) credentials: Option<PathBuf>,
}

impl Environment {
    pub(crate) fn from_process() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Environment {
            token: var("CONFLUX_TOKEN")
                .map(|v| Token(v.to_string_lossy().trim().to_owned()))
                .filter(|t| !t.0.is_empty()),
            credentials: credentials_path(
                var("CONFLUX_CREDENTIALS"),
                var("XDG_CONFIG_HOME"),
                var("HOME"),
            ),
        }
    }
}

/// `$CONFLUX_CREDENTIALS`, else `$XDG_CONFIG_HOME/conflux/credentials` (when absolute, as the
/// XDG spec requires), else `$HOME/.config/conflux/credentials`.
pub(crate) fn credentials_path(
    explicit: Option<OsString>,
    xdg_config_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(PathBuf::from(path));
    }
    let config = xdg_config_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("conflux").join("credentials"))
}

/// Picks the token to send to `endpoint` (normalised): `--token`, then `--token-file`, then
/// `CONFLUX_TOKEN`, then the saved login. A token that cannot be sent is an error naming
/// where it came from (never the token).
pub(crate) fn resolve(
    flag: Option<&Token>,
    token_file: Option<&Path>,
    env: &Environment,
    endpoint: &str,
) -> Result<Option<Resolved>, CliError> {
    let resolved = if let Some(token) = flag {
        Some(Resolved {
            token: token.clone(),
            source: TokenSource::Flag,
        })
    } else if let Some(path) = token_file {
        Some(Resolved {
            token: read_token_file(path)?,
            source: TokenSource::File(path.to_owned()),
        })
    } else if let Some(token) = &env.token {
        Some(Resolved {
            token: token.clone(),
            source: TokenSource::Env,
        })
    } else if let Some(file) = &env.credentials {
        CredentialStore::new(file.clone())
            .get(endpoint)?
            .map(|c| Resolved {
                token: Token(c.token),
                source: TokenSource::Saved {
                    file: file.clone(),
                    expires_at: c.expires_at,
                },
            })
    } else {
        None
    };
    if let Some(r) = &resolved
        && !r.token.is_well_formed()
    {
        return Err(CliError::invalid_input(
            "token",
            format!(
                "the token from {} is not a bearer token (visible ASCII without spaces)",
                r.source
            ),
        ));
    }
    Ok(resolved)
}

fn read_token_file(path: &Path) -> Result<Token, CliError> {
    let bytes = read_bounded_file(path, MAX_SECRET_BYTES)
        .map_err(|e| CliError::io(format!("cannot read --token-file {}: {e}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        CliError::invalid_input("token-file", format!("{} is not text", path.display()))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::invalid_input(
            "token-file",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(Token(token.to_owned()))
}

/// Reads a whole file of at most `max` bytes.
fn read_bounded_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(buf)
}

// ---- the credentials file ----------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct CredentialsFile {
    version: u32,
    #[serde(default)]
    credentials: Vec<Credential>,
}

/// One saved login.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Credential {
    pub(crate) endpoint: String,
    pub(crate) token: String,
    pub(crate) expires_at: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("endpoint", &self.endpoint)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The credentials file at one path.
#[derive(Debug, Clone)]
pub(crate) struct CredentialStore {
    path: PathBuf,
}

impl CredentialStore {
    pub(crate) fn new(path: PathBuf) -> Self {
        CredentialStore { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, what: impl fmt::Display) -> CliError {
        CliError::io(format!("credentials file {}: {what}", self.path.display()))
    }

    /// The entries; none when the file does not exist.
    fn load(&self) -> Result<Vec<Credential>, CliError> {
        let bytes = match read_bounded_file(&self.path, MAX_CREDENTIALS_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(format!("cannot read it: {e}"))),
        };
        let file: CredentialsFile = serde_json::from_slice(&bytes).map_err(|e| {
            self.error(format!(
                "not a credentials file ({e}); remove it and log in again"
            ))
        })?;
        if file.version != CREDENTIALS_VERSION {
            return Err(self.error(format!(
                "format version {} is not {CREDENTIALS_VERSION}, which this conflux reads",
                file.version
            )));
        }
        Ok(file.credentials)
    }

    /// The saved login for `endpoint`, if any.
    pub(crate) fn get(&self, endpoint: &str) -> Result<Option<Credential>, CliError> {
        Ok(self.load()?.into_iter().find(|c| c.endpoint == endpoint))
    }

    /// Saves `credential`, replacing the one of its endpoint.
    pub(crate) fn put(&self, credential: Credential) -> Result<(), CliError> {
        let mut all = self.load()?;
        all.retain(|c| c.endpoint != credential.endpoint);
        all.push(credential);
        self.save(all)
    }

    /// Removes the login for `endpoint`; whether there was one.
    pub(crate) fn remove(&self, endpoint: &str) -> Result<bool, CliError> {
        let mut all = self.load()?;
        let before = all.len();
        all.retain(|c| c.endpoint != endpoint);
        if all.len() == before {
            return Ok(false);
        }
        self.save(all)?;
        Ok(true)
    }

    /// Replaces the file atomically (see the module documentation).
    fn save(&self, credentials: Vec<Credential>) -> Result<(), CliError> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| self.error(format!("cannot create {}: {e}", dir.display())))?;
        let file = CredentialsFile {
            version: CREDENTIALS_VERSION,
            credentials,
        };
        let mut bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| self.error(format!("cannot encode: {e}")))?;
        bytes.push(b'\n');
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "credentials".to_owned());
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // Make the rename itself durable.
            std::fs::File::open(&dir)?.sync_all()
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            self.error(format!("cannot write it: {e}"))
        })
    }
}

// ---- passwords ---------------------------------------------------------------------------

/// Reads a password from stdin (`--password-stdin`): its first line, without the line end.
/// Nothing else is trimmed: spaces may be part of a password.
pub(crate) async fn password_from_stdin() -> Result<String, CliError> {
    let mut buf = Vec::new();
    tokio::io::stdin()
        .take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| CliError::io(format!("cannot read the password from stdin: {e}")))?;
    if buf.len() as u64 > MAX_SECRET_BYTES {
        return Err(CliError::invalid_input(
            "password",
            format!("the password on stdin is longer than {MAX_SECRET_BYTES} bytes"),
        ));
    }
    first_line(buf)
}

fn first_line(buf: Vec<u8>) -> Result<String, CliError> {
    let text = String::from_utf8(buf)
        .map_err(|_| CliError::invalid_input("password", "the password is not UTF-8"))?;
    let line = text.split('\n').next().unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        return Err(CliError::invalid_input("password", "the password is empty"));
    }
    Ok(line.to_owned())
}

/// Asks for a password on the terminal without echo; with `confirm`, twice.
pub(crate) async fn password_from_terminal(confirm: bool) -> Result<String, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "stdin is not a terminal, so the password cannot be asked for: pass --password-stdin and write it to stdin",
        ));
    }
    tokio::task::spawn_blocking(move || {
        let ask = |prompt: &str| {
            rpassword::prompt_password(prompt)
                .map_err(|e| CliError::io(format!("cannot read the password: {e}")))
        };
        let password = ask("Password: ")?;
        if password.is_empty() {
            return Err(CliError::invalid_input("password", "the password is empty"));
        }
        if confirm && ask("Repeat password: ")? != password {
            return Err(CliError::invalid_input(
                "password",
                "the two passwords differ",
            ));
        }
        Ok(password)
    })
    .await
    .map_err(|e| CliError::io(format!("cannot read the password: {e}")))?
}

/// The password: from stdin with `--password-stdin`, else asked on the terminal.
pub(crate) async fn password(from_stdin: bool, confirm: bool) -> Result<String, CliError> {
    if from_stdin {
        password_from_stdin().await
    } else {
        password_from_terminal(confirm).await
    }
}

fn username_from_terminal() -> Result<String, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "give --username (stdin is not a terminal to ask for it)",
        ));
    }
    eprint!("Username: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::io(format!("cannot read the username: {e}")))?;
    parse::username(line.trim()).map_err(|e| CliError::invalid_input("username", e))
}

// ---- commands ----------------------------------------------------------------------------

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The user to log in as (asked for on the terminal when not given).
    #[arg(long, short = 'u', value_parser = parse::username, value_name = "USERNAME")]
    pub username: Option<String>,
    /// Read the password from stdin (its first line) instead of asking on the terminal.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuthCommand {
    /// Who the token sent is (user:<name> or token:<id>) and its role bindings.
    Whoami,
}

/// `conflux login`: a session for a user, saved for this endpoint.
pub(crate) async fn login(
    client: &ApiClient,
    ctx_output: crate::OutputFormat,
    env: &super::auth::Environment,
    args: LoginArgs,
) -> Result<Output, CliError> {
    let store = env.credentials.clone().map(CredentialStore::new).ok_or_else(|| {
        CliError::invalid_input(
            "credentials",
            "no place for the credentials file: set CONFLUX_CREDENTIALS, XDG_CONFIG_HOME or HOME",
        )
    })?;
    let username = match args.username {
        Some(u) => u,
        None => tokio::task::spawn_blocking(username_from_terminal)
            .await
            .map_err(|e| CliError::io(format!("cannot read the username: {e}")))??,
    };
    let password = password(args.password_stdin, false).await?;
    let session = client.login(&username, &password).await?;
    store.put(Credential {
        endpoint: client.endpoint().to_owned(),
        token: session.token,
        expires_at: session.expires_at.clone(),
    })?;
    let done = LoggedIn {
        endpoint: client.endpoint().to_owned(),
        principal: format!("user:{username}"),
        expires_at: session.expires_at,
        credentials_file: store.path().display().to_string(),
    };
    crate::render::render(&done, ctx_output)
        .map(Output::Text)
        .map_err(CliError::output)
}

/// `conflux logout`: ends the session on the server and forgets the saved login. A session
/// the server no longer knows (expired, revoked) is forgotten all the same.
pub(crate) async fn logout(ctx: &Ctx) -> Result<Output, CliError> {
    let endpoint = ctx.client.endpoint().to_owned();
    let Some(Resolved { source, .. }) = &ctx.token else {
        return ctx.render(&LoggedOut {
            endpoint,
            session_ended: false,
            credentials_removed: false,
        });
    };
    let session_ended = match ctx.client.logout().await {
        Ok(()) => true,
        Err(e) if e.status() == Some(401) => false,
        Err(e) => return Err(e.into()),
    };
    let credentials_removed = match source {
        TokenSource::Saved { file, .. } => CredentialStore::new(file.clone()).remove(&endpoint)?,
        TokenSource::Flag | TokenSource::File(_) | TokenSource::Env => false,
    };
    if !session_ended && !credentials_removed {
        // Nothing happened: the token given was refused. Say so rather than "logged out".
        return Err(CliError::usage(format!(
            "the token from {source} was refused by the server, and there is no saved login for {endpoint} to remove"
        )));
    }
    ctx.render(&LoggedOut {
        endpoint,
        session_ended,
        credentials_removed,
    })
}

pub(crate) async fn execute(ctx: &Ctx, command: AuthCommand) -> Result<Output, CliError> {
    match command {
        AuthCommand::Whoami => ctx.render(&ctx.client.whoami().await?),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn env(token: Option<&str>, credentials: Option<PathBuf>) -> Environment {
        Environment {
            token: token.map(Token::new),
            credentials,
        }
    }

    fn saved(endpoint: &str, token: &str) -> Credential {
        Credential {
            endpoint: endpoint.into(),
            token: token.into(),
            expires_at: "2030-01-01T00:00:00.000Z".into(),
        }
    }

    const EP: &str = "http://127.0.0.1:8080";

    #[test]
    fn token_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        CredentialStore::new(creds.clone())
            .put(saved(EP, "from-login"))
            .unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  from-file\n").unwrap();
        let flag = Token::new("from-flag");
        let all = env(Some("from-env"), Some(creds.clone()));

        let pick = |flag: Option<&Token>, file: Option<&Path>, env: &Environment| {
            resolve(flag, file, env, EP)
                .unwrap()
                .map(|r| (r.token.expose().to_owned(), r.source))
        };
        assert_eq!(
            pick(Some(&flag), Some(&file), &all),
            Some(("from-flag".into(), TokenSource::Flag))
        );
        assert_eq!(
            pick(None, Some(&file), &all),
            Some(("from-file".into(), TokenSource::File(file.clone())))
        );
        assert_eq!(
            pick(None, None, &all),
            Some(("from-env".into(), TokenSource::Env))
        );
        let (token, source) = pick(None, None, &env(None, Some(creds.clone()))).unwrap();
        assert_eq!(token, "from-login");
        assert!(
            matches!(&source, TokenSource::Saved { file, .. } if *file == creds),
            "{source:?}"
        );
        assert!(
            source.to_string().contains("expires at 2030-01-01"),
            "{source}"
        );
        // The saved login is per endpoint.
        let other = resolve(
            None,
            None,
            &env(None, Some(creds.clone())),
            "http://10.0.0.1:8080",
        );
        assert!(other.unwrap().is_none());
        // Nothing anywhere: no token (the server will say 401).
        assert!(pick(None, None, &env(None, None)).is_none());
        assert!(pick(None, None, &env(None, Some(dir.path().join("none")))).is_none());
    }

    #[test]
    fn bad_tokens_name_their_source_not_their_value() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(Some(&Token::new("two words")), None, &env(None, None), EP).unwrap_err();
        assert!(
            err.line().contains("the token from --token"),
            "{}",
            err.line()
        );
        assert!(!err.line().contains("two words"), "{}", err.line());

        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let err = resolve(None, Some(&empty), &env(None, None), EP).unwrap_err();
        assert!(
            err.line().ends_with("is empty (field: token-file)"),
            "{}",
            err.line()
        );

        let missing = dir.path().join("missing");
        let err = resolve(None, Some(&missing), &env(None, None), EP).unwrap_err();
        assert!(
            err.line()
                .starts_with("error: io_error: cannot read --token-file"),
            "{}",
            err.line()
        );

        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t with-a-space").unwrap();
        let err = resolve(None, Some(&secret), &env(None, None), EP).unwrap_err();
        assert!(!err.line().contains("s3cr3t"), "{}", err.line());
    }

    #[test]
    fn credentials_file_is_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("config").join("conflux");
        let path = conf.join("credentials");
        let store = CredentialStore::new(path.clone());
        assert_eq!(store.get(EP).unwrap(), None);
        assert!(!store.remove(EP).unwrap());

        store.put(saved(EP, "one")).unwrap();
        store.put(saved("http://10.0.0.1:8080", "two")).unwrap();
        store.put(saved(EP, "three")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&conf), 0o700);
        assert_eq!(store.get(EP).unwrap().unwrap().token, "three");
        assert_eq!(
            store.get("http://10.0.0.1:8080").unwrap().unwrap().token,
            "two"
        );
        // Only the file itself is left in the directory: no temporary files.
        let names: Vec<_> = std::fs::read_dir(&conf)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("credentials")]);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["credentials"].as_array().unwrap().len(), 2);
        assert_eq!(json["credentials"][1]["endpoint"], EP);

        // A file made readable by others is replaced by a private one on the next write.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(store.remove("http://10.0.0.1:8080").unwrap());
        assert_eq!(mode(&path), 0o600);
        assert!(store.get("http://10.0.0.1:8080").unwrap().is_none());
        assert!(format!("{:?}", store.get(EP).unwrap()).contains("<redacted>"));
        assert!(!format!("{:?}", store.get(EP).unwrap()).contains("three"));
    }

    #[test]
    fn damaged_credentials_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "{not json").unwrap();
        let err = CredentialStore::new(path.clone()).get(EP).unwrap_err();
        assert!(
            err.line().contains("remove it and log in again"),
            "{}",
            err.line()
        );
        std::fs::write(&path, r#"{"version": 9, "credentials": []}"#).unwrap();
        let err = CredentialStore::new(path).get(EP).unwrap_err();
        assert!(err.line().contains("format version 9"), "{}", err.line());
    }

    #[test]
    fn where_the_credentials_file_is() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            credentials_path(os("/x/creds"), os("/xdg"), os("/home/u")),
            Some(PathBuf::from("/x/creds"))
        );
        assert_eq!(
            credentials_path(None, os("/xdg"), os("/home/u")),
            Some(PathBuf::from("/xdg/conflux/credentials"))
        );
        // A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
        assert_eq!(
            credentials_path(None, os("rel"), os("/home/u")),
            Some(PathBuf::from("/home/u/.config/conflux/credentials"))
        );
        assert_eq!(credentials_path(None, None, None), None);
    }

    #[test]
    fn passwords_are_the_first_line_as_typed() {
        assert_eq!(
            first_line(b"  pass word \n".to_vec()).unwrap(),
            "  pass word "
        );
        assert_eq!(first_line(b"pw\r\nsecond".to_vec()).unwrap(), "pw");
        assert_eq!(first_line(b"pw".to_vec()).unwrap(), "pw");
        assert!(first_line(b"\n".to_vec()).is_err());
        assert!(first_line(vec![0xff]).is_err());
    }

    #[test]
    fn tokens_are_redacted_from_debug() {
        let t = Token::new("s3cr3t");
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        let e = env(Some("s3cr3t"), None);
        assert!(!format!("{e:?}").contains("s3cr3t"));
    }
}
