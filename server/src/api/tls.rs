//! TLS on the API listener (REST, WebSocket and gRPC on one port): a rustls server
//! configuration (ring, ALPN `h2` and `http/1.1`), optionally requiring client certificates
//! from a CA bundle, re-read when its files change, and an axum [`Listener`] that hands
//! axum finished TLS streams.
//!
//! Reloading: a new connection takes the current configuration; at most once a second that
//! lookup also compares the files' (mtime, size, inode) with those last loaded, and rebuilds
//! the whole configuration when one changed. A configuration that does not build (a key that
//! does not match its certificate, a half-written file) is logged once and the previous one
//! stays in use; it is tried again when the files change again. Existing connections keep the
//! session they negotiated, so a reload drops nothing.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use conflux_client::tls::{parse_certs, parse_key, provider, read_pem_file, root_store};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::server::TlsStream;

use crate::config::ApiTlsFiles;

/// How often a new connection may trigger a look at the certificate files.
pub const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for axum to take them.
const ACCEPTED_QUEUE: usize = 256;

/// What identifies one version of a file without reading it.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// The API listener's TLS configuration, reloaded from its files.
#[derive(Debug)]
pub struct ApiTls {
    files: ApiTlsFiles,
    current: ArcSwap<ServerConfig>,
    reload: Mutex<ReloadState>,
}

#[derive(Debug)]
struct ReloadState {
    checked: Instant,
    /// Stamps of the files the current configuration was built from.
    loaded: Vec<Stamp>,
    /// Stamps of files that failed to build (warned about once).
    rejected: Option<Vec<Stamp>>,
}

impl ApiTls {
    /// Loads the files at start-up; an error (one line, naming the file) stops the node.
    pub fn load(files: &ApiTlsFiles) -> Result<Arc<ApiTls>, String> {
        let loaded = stamps(files);
        let config = build(files)?;
        Ok(Arc::new(ApiTls {
            files: files.clone(),
            current: ArcSwap::from_pointee(config),
            reload: Mutex::new(ReloadState {
                checked: Instant::now(),
                loaded,
                rejected: None,
            }),
        }))
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_certs(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The configuration for a new connection, after reloading it if its files changed.
    pub fn config(&self) -> Arc<ServerConfig> {
        // A connection never waits for another's check.
        if let Some(mut state) = self.reload.try_lock()
            && state.checked.elapsed() >= RELOAD_CHECK_EVERY
        {
            state.checked = Instant::now();
            self.check(&mut state);
        }
        self.current.load_full()
    }

    fn check(&self, state: &mut ReloadState) {
        // Stamps taken before reading: a change during the read is seen at the next check.
        let now = stamps(&self.files);
        if now == state.loaded || state.rejected.as_ref() == Some(&now) {
            return;
        }
        match build(&self.files) {
            Ok(config) => {
                self.current.store(Arc::new(config));
                state.loaded = now;
                state.rejected = None;
                tracing::info!(cert = %self.files.cert.display(), "reloaded the API TLS certificate");
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "the changed API TLS files are not usable; keeping the previous certificate"
                );
                state.rejected = Some(now);
            }
        }
    }
}

fn stamps(files: &ApiTlsFiles) -> Vec<Stamp> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| stamp(p))
    .collect()
}

/// With the file's name in front of a parse error.
fn in_file(path: &Path) -> impl Fn(String) -> String + '_ {
    move |m| format!("{}: {m}", path.display())
}

fn build(files: &ApiTlsFiles) -> Result<ServerConfig, String> {
    let certs = parse_certs(&read_pem_file(&files.cert)?).map_err(in_file(&files.cert))?;
    let key = parse_key(&read_pem_file(&files.key)?).map_err(in_file(&files.key))?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = root_store(&read_pem_file(ca)?).map_err(in_file(ca))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{} and {} do not make a usable certificate and key: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    // gRPC needs HTTP/2; browsers and simple clients may only speak HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// An axum [`Listener`](axum::serve::Listener) of TLS connections: a task accepts TCP
/// connections and runs each handshake in a task of its own (a slow client holds up nobody),
/// handing finished streams to axum. It stops when axum drops it.
#[derive(Debug)]
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, tls: Arc<ApiTls>) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        let acceptor = tokio::spawn(accept_loop(listener, tls, tx));
        Ok(TlsListener {
            accepted,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<ApiTls>,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = tx.closed() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting an API connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.config());
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(c) => c,
            // The accept task ended (it only does when this listener is dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
