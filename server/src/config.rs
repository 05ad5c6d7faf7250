//! Node configuration from flags, `CONFLUX_*` environment variables and a TOML file
//! (`--config`), in that order of precedence, over built-in defaults that make
//! `conflux server` with no flags a working single node.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_DATA_DIR: &str = "./conflux-data";
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_RAFT_ADDR: &str = "127.0.0.1:8081";
pub const DEFAULT_NODE_ID: u64 = 1;

/// `conflux server` flags. Every flag is optional so that the config file and the defaults
/// can fill in what the command line leaves out.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// TOML file with any of the keys below (node_id, data_dir, api_addr, raft_addr, ...).
    #[arg(long, env = "CONFLUX_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id in the cluster; fixed for the life of its data directory.
    #[arg(long, env = "CONFLUX_NODE_ID")]
    pub node_id: Option<u64>,
    /// Where RocksDB and snapshots live [default: ./conflux-data].
    #[arg(long, env = "CONFLUX_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP API listen address [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "CONFLUX_API_ADDR")]
    pub api_addr: Option<String>,
    /// Node-to-node Raft address recorded in the cluster membership [default: 127.0.0.1:8081].
    #[arg(long, env = "CONFLUX_RAFT_ADDR")]
    pub raft_addr: Option<String>,
    /// How long a write may wait for commit before answering 503, e.g. "10s".
    #[arg(long, env = "CONFLUX_WRITE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub write_timeout: Option<Duration>,
    /// How often the leader checks time-based retention rules, e.g. "60s".
    #[arg(long, env = "CONFLUX_RETENTION_INTERVAL", value_parser = humantime::parse_duration)]
    pub retention_interval: Option<Duration>,
    /// Build a snapshot (and purge the log before it) after this many applied entries.
    #[arg(long, env = "CONFLUX_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// Most concurrent watch subscriptions this node serves (all transports together).
    #[arg(long, env = "CONFLUX_MAX_WATCHERS")]
    pub max_watchers: Option<usize>,
    /// Most subscriptions one WebSocket connection may hold.
    #[arg(long, env = "CONFLUX_MAX_SUBSCRIPTIONS_PER_CONNECTION")]
    pub max_subscriptions_per_connection: Option<usize>,
    /// A member of a statically bootstrapped cluster, `<id>=<raft-addr>,<api-addr>`; give it
    /// once per member, this node included (in CONFLUX_PEERS, separate members with ';').
    #[arg(long = "peer", env = "CONFLUX_PEERS", value_delimiter = ';', value_parser = parse_peer, value_name = "ID=RAFT,API")]
    pub peers: Vec<Peer>,
    /// Join the cluster that the node at this API address belongs to.
    #[arg(
        long,
        env = "CONFLUX_JOIN",
        value_name = "API-ADDR",
        conflicts_with = "peers"
    )]
    pub join: Option<String>,
    /// PEM certificate of this node for the Raft listener (mutual TLS between nodes).
    #[arg(long, env = "CONFLUX_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CONFLUX_TLS_KEY", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
    /// PEM certificate of the CA that signs every member's certificate; peers presenting a
    /// certificate from another CA are refused.
    #[arg(long, env = "CONFLUX_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// PEM certificate (chain) of the API listener: REST, WebSocket and gRPC are served over
    /// TLS (HTTP/1.1 and HTTP/2). Re-read when the file changes, without a restart.
    #[arg(long, env = "CONFLUX_API_TLS_CERT", value_name = "PATH")]
    pub api_tls_cert: Option<PathBuf>,
    /// PEM private key of --api-tls-cert (re-read with it).
    #[arg(long, env = "CONFLUX_API_TLS_KEY", value_name = "PATH")]
    pub api_tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): API clients must present a certificate signed by one of them
    /// (needs --api-tls-cert). Re-read when the file changes.
    #[arg(long, env = "CONFLUX_API_TLS_CLIENT_CA", value_name = "PATH")]
    pub api_tls_client_ca: Option<PathBuf>,
    /// The metadata DB (users, tokens, role bindings, audit): `postgres://...`, required by
    /// every node of a multi-node cluster [default: SQLite in <data-dir>/metadata.db].
    #[arg(long, env = "CONFLUX_METADATA_URL", value_name = "URL")]
    pub metadata_url: Option<String>,
    /// File holding the initial cluster_admin token (32-256 printable ASCII characters), the
    /// same on every node; the first node that finds the metadata DB empty inserts it. Without
    /// it, a node that finds the DB empty makes a token and writes it to <data-dir>/admin.token.
    #[arg(long, env = "CONFLUX_BOOTSTRAP_TOKEN_FILE", value_name = "PATH")]
    pub bootstrap_token_file: Option<PathBuf>,
    /// Where the key-encryption key of encrypted configs lives: `local` (a key file) or
    /// `aws` (AWS KMS) [default: local].
    #[arg(long, env = "CONFLUX_KMS", value_name = "PROVIDER")]
    pub kms: Option<String>,
    /// `--kms local`: the current key file, 64 hex digits, mode 0600, the same on every node
    /// [default: <data-dir>/kek.key, created on a single node].
    #[arg(long, env = "CONFLUX_KMS_KEY_FILE", value_name = "PATH")]
    pub kms_key_file: Option<PathBuf>,
    /// `--kms local`: an earlier key file whose data keys are not all rewrapped yet; repeat
    /// for several (in CONFLUX_KMS_PREVIOUS_KEY_FILES, separate them with ';').
    #[arg(
        long = "kms-previous-key-file",
        env = "CONFLUX_KMS_PREVIOUS_KEY_FILES",
        value_delimiter = ';',
        value_name = "PATH"
    )]
    pub kms_previous_key_files: Vec<PathBuf>,
    /// `--kms aws`: key id, ARN, alias name or alias ARN of the current key-encryption key.
    #[arg(long, env = "CONFLUX_KMS_KEY_ID", value_name = "ID")]
    pub kms_key_id: Option<String>,
    /// `--kms aws`: a KMS-compatible endpoint URL instead of AWS's regional one.
    #[arg(long, env = "CONFLUX_KMS_ENDPOINT", value_name = "URL")]
    pub kms_endpoint: Option<String>,
    /// How long an unwrapped data key is kept in memory, e.g. "5m".
    #[arg(long, env = "CONFLUX_KMS_CACHE_TTL", value_parser = humantime::parse_duration)]
    pub kms_cache_ttl: Option<Duration>,
}

/// One `--peer`: a member of a static cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node_id: u64,
    pub raft_addr: String,
    pub api_addr: String,
}

/// Parses `<id>=<raft-addr>,<api-addr>`.
pub fn parse_peer(s: &str) -> Result<Peer, String> {
    let (id, addrs) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not <id>=<raft-addr>,<api-addr>"))?;
    let node_id: u64 = id
        .trim()
        .parse()
        .map_err(|_| format!("{id:?} is not a node id"))?;
    if node_id == 0 {
        return Err("node ids start at 1".into());
    }
    let (raft, api) = addrs
        .split_once(',')
        .ok_or_else(|| format!("{s:?} is not <id>=<raft-addr>,<api-addr>"))?;
    for a in [raft, api] {
        if !is_host_port(a) {
            return Err(format!("{a:?} is not host:port"));
        }
    }
    Ok(Peer {
        node_id,
        raft_addr: raft.trim().to_owned(),
        api_addr: api.trim().to_owned(),
    })
}

/// Whether `s` looks like `host:port` with a non-empty host and a valid port.
pub fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

/// The three PEM files of mutual TLS between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// The PEM files of the API listener's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates are required and must chain to this CA bundle.
    pub client_ca: Option<PathBuf>,
}

/// The same keys in a TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: Option<u64>,
    data_dir: Option<PathBuf>,
    api_addr: Option<String>,
    raft_addr: Option<String>,
    #[serde(default, with = "humantime_serde_opt")]
    write_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    retention_interval: Option<Duration>,
    snapshot_every: Option<u64>,
    max_watchers: Option<usize>,
    max_subscriptions_per_connection: Option<usize>,
    #[serde(default)]
    peers: Vec<String>,
    join: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    api_tls_cert: Option<PathBuf>,
    api_tls_key: Option<PathBuf>,
    api_tls_client_ca: Option<PathBuf>,
    metadata_url: Option<String>,
    bootstrap_token_file: Option<PathBuf>,
    kms: Option<String>,
    kms_key_file: Option<PathBuf>,
    #[serde(default)]
    kms_previous_key_files: Vec<PathBuf>,
    kms_key_id: Option<String>,
    kms_endpoint: Option<String>,
    #[serde(default, with = "humantime_serde_opt")]
    kms_cache_ttl: Option<Duration>,
}

fn kms_settings(args: &ServerArgs, file: &FileConfig) -> Result<KmsSettings, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        field: "kms",
        message,
    };
    let kind = args.kms.clone().or(file.kms.clone());
    let key_file = args.kms_key_file.clone().or(file.kms_key_file.clone());
    let previous_key_files = match args.kms_previous_key_files.is_empty() {
        false => args.kms_previous_key_files.clone(),
        true => file.kms_previous_key_files.clone(),
    };
    let key_id = args.kms_key_id.clone().or(file.kms_key_id.clone());
    let endpoint = args.kms_endpoint.clone().or(file.kms_endpoint.clone());
    let provider = match kind.as_deref().unwrap_or("local") {
        "local" => {
            if key_id.is_some() || endpoint.is_some() {
                return Err(invalid(
                    "--kms-key-id and --kms-endpoint are for --kms aws".into(),
                ));
            }
            KmsProvider::Local {
                key_file,
                previous_key_files,
            }
        }
        "aws" => {
            if key_file.is_some() || !previous_key_files.is_empty() {
                return Err(invalid(
                    "--kms-key-file and --kms-previous-key-file are for --kms local".into(),
                ));
            }
            let key_id = key_id.ok_or_else(|| {
                invalid("--kms aws needs --kms-key-id (a key id, ARN or alias)".into())
            })?;
            KmsProvider::Aws { key_id, endpoint }
        }
        other => {
            return Err(invalid(format!(
                "unknown KMS provider {other:?}; use local or aws"
            )));
        }
    };
    let cache_ttl = args
        .kms_cache_ttl
        .or(file.kms_cache_ttl)
        .unwrap_or(conflux_kms::DEFAULT_CACHE_TTL);
    if cache_ttl.is_zero() {
        return Err(ConfigError::Invalid {
            field: "kms_cache_ttl",
            message: "must be positive".into(),
        });
    }
    Ok(KmsSettings {
        provider,
        cache_ttl,
    })
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The resolved configuration a node runs with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub api_addr: String,
    pub raft_addr: String,
    pub write_timeout: Duration,
    pub min_revision_wait: Duration,
    pub retention_interval: Duration,
    pub snapshot_every: u64,
    pub max_watchers: usize,
    pub max_subscriptions_per_connection: usize,
    /// Static members (empty: standalone or joining).
    pub peers: Vec<Peer>,
    pub join: Option<String>,
    pub tls: Option<TlsFiles>,
    /// TLS of the API listener; `None`: plain HTTP.
    pub api_tls: Option<ApiTlsFiles>,
    /// `postgres://...`; `None`: SQLite in the data directory (single node only).
    pub metadata_url: Option<String>,
    pub bootstrap_token_file: Option<PathBuf>,
    pub kms: KmsSettings,
}

/// Where the key-encryption keys of encrypted configs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsProvider {
    /// Key files: `key_file` (`None`: `<data-dir>/kek.key`) wraps, every file unwraps.
    Local {
        key_file: Option<PathBuf>,
        previous_key_files: Vec<PathBuf>,
    },
    /// AWS KMS (or a compatible endpoint).
    Aws {
        key_id: String,
        endpoint: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsSettings {
    pub provider: KmsProvider,
    pub cache_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl NodeConfig {
    /// Defaults of the embedded single node.
    pub fn embedded() -> Self {
        NodeConfig {
            node_id: DEFAULT_NODE_ID,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            api_addr: DEFAULT_API_ADDR.to_owned(),
            raft_addr: DEFAULT_RAFT_ADDR.to_owned(),
            write_timeout: Duration::from_secs(10),
            min_revision_wait: Duration::from_secs(5),
            retention_interval: Duration::from_secs(60),
            snapshot_every: 10_000,
            max_watchers: 200_000,
            max_subscriptions_per_connection: 1000,
            peers: Vec::new(),
            join: None,
            tls: None,
            api_tls: None,
            metadata_url: None,
            bootstrap_token_file: None,
            kms: KmsSettings {
                provider: KmsProvider::Local {
                    key_file: None,
                    previous_key_files: Vec::new(),
                },
                cache_ttl: conflux_kms::DEFAULT_CACHE_TTL,
            },
        }
    }

    /// The metadata DB this node uses: `--metadata-url`, or SQLite in its data directory.
    pub fn metadata_url(&self) -> String {
        match &self.metadata_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("metadata.db").display()),
        }
    }

    /// Whether this node is (or will be) one of several: static peers or a join.
    pub fn is_clustered(&self) -> bool {
        !self.peers.is_empty() || self.join.is_some()
    }

    pub fn from_args(args: &ServerArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let d = NodeConfig::embedded();
        let peers = match (args.peers.is_empty(), file.peers.is_empty()) {
            (false, _) => args.peers.clone(),
            (true, false) => file
                .peers
                .iter()
                .map(|p| parse_peer(p))
                .collect::<Result<_, _>>()
                .map_err(|message| ConfigError::Invalid {
                    field: "peers",
                    message,
                })?,
            (true, true) => Vec::new(),
        };
        let kms = kms_settings(args, &file)?;
        let node_id = args.node_id.or(file.node_id).unwrap_or(d.node_id);
        // A static member's own --peer entry supplies its addresses when not given directly.
        let own = peers.iter().find(|p| p.node_id == node_id);
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
            args.tls_ca.clone().or(file.tls_ca),
        ) {
            (Some(cert), Some(key), Some(ca)) => Some(TlsFiles { cert, key, ca }),
            (None, None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    field: "tls",
                    message: "tls_cert, tls_key and tls_ca go together".into(),
                });
            }
        };
        let api_tls = match (
            args.api_tls_cert.clone().or(file.api_tls_cert),
            args.api_tls_key.clone().or(file.api_tls_key),
            args.api_tls_client_ca.clone().or(file.api_tls_client_ca),
        ) {
            (Some(cert), Some(key), client_ca) => Some(ApiTlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None, None) => None,
            (None, None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: "api_tls_client_ca",
                    message: "needs api_tls_cert and api_tls_key (client certificates are \
                              asked for over TLS)"
                        .into(),
                });
            }
            _ => {
                return Err(ConfigError::Invalid {
                    field: "api_tls",
                    message: "api_tls_cert and api_tls_key go together".into(),
                });
            }
        };
        let config = NodeConfig {
            kms,
            node_id,
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or(d.data_dir),
            api_addr: args
                .api_addr
                .clone()
                .or(file.api_addr)
                .or_else(|| own.map(|p| p.api_addr.clone()))
                .unwrap_or(d.api_addr),
            raft_addr: args
                .raft_addr
                .clone()
                .or(file.raft_addr)
                .or_else(|| own.map(|p| p.raft_addr.clone()))
                .unwrap_or(d.raft_addr),
            write_timeout: args
                .write_timeout
                .or(file.write_timeout)
                .unwrap_or(d.write_timeout),
            min_revision_wait: d.min_revision_wait,
            retention_interval: args
                .retention_interval
                .or(file.retention_interval)
                .unwrap_or(d.retention_interval),
            snapshot_every: args
                .snapshot_every
                .or(file.snapshot_every)
                .unwrap_or(d.snapshot_every),
            max_watchers: args
                .max_watchers
                .or(file.max_watchers)
                .unwrap_or(d.max_watchers),
            max_subscriptions_per_connection: args
                .max_subscriptions_per_connection
                .or(file.max_subscriptions_per_connection)
                .unwrap_or(d.max_subscriptions_per_connection),
            join: args.join.clone().or(file.join),
            peers,
            tls,
            api_tls,
            metadata_url: args.metadata_url.clone().or(file.metadata_url),
            bootstrap_token_file: args
                .bootstrap_token_file
                .clone()
                .or(file.bootstrap_token_file),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(ConfigError::Invalid {
                field: "node_id",
                message: "node ids start at 1".into(),
            });
        }
        if self.write_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                field: "write_timeout",
                message: "must be positive".into(),
            });
        }
        if self.retention_interval < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                field: "retention_interval",
                message: "must be at least 1s".into(),
            });
        }
        if !self.peers.is_empty() {
            if self.join.is_some() {
                return Err(ConfigError::Invalid {
                    field: "join",
                    message: "a node either has static peers or joins".into(),
                });
            }
            let Some(own) = self.peers.iter().find(|p| p.node_id == self.node_id) else {
                return Err(ConfigError::Invalid {
                    field: "peers",
                    message: format!(
                        "node {} is not in the peer list; list every member, this node included",
                        self.node_id
                    ),
                });
            };
            if own.raft_addr != self.raft_addr || own.api_addr != self.api_addr {
                return Err(ConfigError::Invalid {
                    field: "peers",
                    message: format!(
                        "this node's peer entry ({},{}) differs from --raft-addr/--api-addr ({},{})",
                        own.raft_addr, own.api_addr, self.raft_addr, self.api_addr
                    ),
                });
            }
            let mut ids: Vec<u64> = self.peers.iter().map(|p| p.node_id).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.len() != self.peers.len() {
                return Err(ConfigError::Invalid {
                    field: "peers",
                    message: "a node id is listed twice".into(),
                });
            }
        }
        let sqlite = self
            .metadata_url
            .as_deref()
            .is_none_or(|url| url.starts_with("sqlite:"));
        if self.join.is_some() && self.bootstrap_token_file.is_none() {
            return Err(ConfigError::Invalid {
                field: "bootstrap_token_file",
                message: "--join needs --bootstrap-token-file: the cluster_admin token a \
                          joining node asks for membership with"
                    .into(),
            });
        }
        if self.is_clustered() && sqlite {
            return Err(ConfigError::Invalid {
                field: "metadata_url",
                message: "a cluster node (--peer or --join) needs a PostgreSQL metadata DB \
                          shared by all nodes (--metadata-url postgres://...); SQLite serves a \
                          single embedded node only"
                    .into(),
            });
        }
        if self.snapshot_every < 100 {
            return Err(ConfigError::Invalid {
                field: "snapshot_every",
                message: "must be at least 100".into(),
            });
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("conflux.toml");
        std::fs::write(
            &file,
            "node_id = 3\napi_addr = \"127.0.0.1:9000\"\nwrite_timeout = \"2s\"\n",
        )
        .unwrap();
        let args = ServerArgs {
            config: Some(file),
            api_addr: Some("127.0.0.1:9100".into()),
            ..Default::default()
        };
        let c = NodeConfig::from_args(&args).unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(c.api_addr, "127.0.0.1:9100");
        assert_eq!(c.write_timeout, Duration::from_secs(2));
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn bad_files_are_reported_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("conflux.toml");
        std::fs::write(&file, "nodeid = 3\n").unwrap();
        let err = NodeConfig::from_args(&ServerArgs {
            config: Some(file.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("conflux.toml"), "{err}");
        let err = NodeConfig::from_args(&ServerArgs {
            node_id: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("node_id"), "{err}");
    }

    #[test]
    fn api_tls_files_come_in_pairs_from_flags_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("conflux.toml");
        std::fs::write(&file, "api_tls_key = \"/etc/k.pem\"\n").unwrap();
        let c = NodeConfig::from_args(&ServerArgs {
            config: Some(file.clone()),
            api_tls_cert: Some("/etc/c.pem".into()),
            ..Default::default()
        })
        .unwrap();
        let tls = c.api_tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("/etc/c.pem"));
        assert_eq!(tls.key, PathBuf::from("/etc/k.pem"));
        assert_eq!(tls.client_ca, None);
        let err = NodeConfig::from_args(&ServerArgs {
            api_tls_cert: Some("/etc/c.pem".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("api_tls: "), "{err}");
        let err = NodeConfig::from_args(&ServerArgs {
            api_tls_client_ca: Some("/etc/ca.pem".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("api_tls_client_ca: "), "{err}");
        assert!(
            NodeConfig::from_args(&ServerArgs::default())
                .unwrap()
                .api_tls
                .is_none()
        );
    }

    #[test]
    fn a_cluster_node_refuses_sqlite_metadata() {
        let peer = parse_peer("1=127.0.0.1:8081,127.0.0.1:8080").unwrap();
        let clustered = |metadata_url: Option<&str>| ServerArgs {
            peers: vec![peer.clone()],
            metadata_url: metadata_url.map(str::to_owned),
            ..Default::default()
        };
        for url in [None, Some("sqlite:///tmp/m.db")] {
            let err = NodeConfig::from_args(&clustered(url)).unwrap_err();
            assert!(err.to_string().starts_with("metadata_url: "), "{err}");
        }
        let joining = ServerArgs {
            join: Some("127.0.0.1:8080".into()),
            ..Default::default()
        };
        assert!(NodeConfig::from_args(&joining).is_err());
        let c = NodeConfig::from_args(&clustered(Some("postgres://db/conflux"))).unwrap();
        assert_eq!(c.metadata_url(), "postgres://db/conflux");
        let single = NodeConfig::from_args(&ServerArgs::default()).unwrap();
        assert!(single.metadata_url().starts_with("sqlite://"));
        assert!(single.metadata_url().ends_with("metadata.db"));
    }
}
