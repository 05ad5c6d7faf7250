//! go-plugin, the plugin side: how Terraform starts the provider and talks to it.
//!
//! 1. Terraform runs the binary with `TF_PLUGIN_MAGIC_COOKIE` (proof that a plugin host
//!    started it), `PLUGIN_PROTOCOL_VERSIONS` (which must include 6), the port range
//!    `PLUGIN_MIN_PORT`..`PLUGIN_MAX_PORT` and, for AutoMTLS, its client certificate in
//!    `PLUGIN_CLIENT_CERT`.
//! 2. The provider listens on loopback, makes a one-run server certificate, and prints one
//!    line on stdout: `1|6|tcp|127.0.0.1:PORT|grpc|<server certificate DER, base64 without
//!    padding>`.
//! 3. Terraform connects with TLS (pinning that certificate, presenting its own) and calls
//!    the provider service and go-plugin's side services ([`services`]).
//! 4. `GRPCController/Shutdown` or SIGTERM ends the run; interrupts (Ctrl-C reaches the
//!    whole process group) are left to Terraform, which stops its plugins itself.

mod services;
pub mod tls;

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::transport::server::Connected;

use crate::error::{Error, Result};
use crate::proto::{health, plugin as gp, tfplugin6};
use crate::server::ProviderService;
pub use services::Shutdown;

pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// go-plugin's own protocol version (the first field of the handshake line).
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// The Terraform plugin protocol this provider speaks.
pub const PROTOCOL_VERSION: u32 = 6;
/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight calls get to finish after a shutdown request before the process exits.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Accepted connections waiting for the gRPC server (Terraform opens one).
const ACCEPT_QUEUE: usize = 16;

/// What Terraform told the plugin through its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub min_port: u16,
    pub max_port: u16,
    /// PEM of Terraform's client certificate; `None` means plain-text gRPC.
    pub client_cert: Option<String>,
}

impl Handshake {
    /// Reads and checks the handshake variables (`env` is `std::env::var` in production).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Handshake> {
        if env(MAGIC_COOKIE_KEY).as_deref() != Some(MAGIC_COOKIE_VALUE) {
            return Err(Error::NotLaunchedByTerraform(MAGIC_COOKIE_KEY));
        }
        if let Some(offered) = env("PLUGIN_PROTOCOL_VERSIONS") {
            let speaks_6 = offered
                .split(',')
                .any(|v| v.trim().parse::<u32>() == Ok(PROTOCOL_VERSION));
            if !speaks_6 {
                return Err(Error::UnsupportedProtocol { offered });
            }
        }
        let port = |var: &'static str, default: u16| -> Result<u16> {
            match env(var) {
                None => Ok(default),
                Some(v) if v.trim().is_empty() => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| Error::Env {
                    var,
                    message: format!("{v:?} is not a port number"),
                }),
            }
        };
        let min_port = port("PLUGIN_MIN_PORT", 0)?;
        let max_port = port("PLUGIN_MAX_PORT", 0)?;
        if min_port > max_port {
            return Err(Error::Env {
                var: "PLUGIN_MIN_PORT",
                message: format!("{min_port} is above PLUGIN_MAX_PORT {max_port}"),
            });
        }
        Ok(Handshake {
            min_port,
            max_port,
            client_cert: env("PLUGIN_CLIENT_CERT").filter(|c| !c.trim().is_empty()),
        })
    }

    /// Binds a loopback port in the allowed range (any free port when none is given).
    pub async fn listen(&self) -> Result<TcpListener> {
        if self.max_port == 0 {
            return Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?);
        }
        let mut last = None;
        for port in self.min_port..=self.max_port {
            match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
                Ok(l) => return Ok(l),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map(Error::Io).unwrap_or_else(|| Error::Env {
            var: "PLUGIN_MIN_PORT",
            message: "the port range is empty".to_owned(),
        }))
    }
}

/// The line that tells Terraform where to connect.
pub fn handshake_line(addr: SocketAddr, server_cert_der: Option<&[u8]>) -> String {
    let cert = server_cert_der
        .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
        .unwrap_or_default();
    format!("{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|tcp|{addr}|grpc|{cert}")
}

/// Runs the plugin: handshake, serve until Terraform asks it to stop.
pub async fn serve(handshake: Handshake) -> Result<()> {
    let listener = handshake.listen().await?;
    let addr = listener.local_addr()?;
    let tls = handshake
        .client_cert
        .as_deref()
        .map(tls::plugin_tls)
        .transpose()?;

    let shutdown = Shutdown::default();
    let (conn_tx, mut conn_rx) = mpsc::channel::<Conn>(ACCEPT_QUEUE);
    let acceptor = tls
        .as_ref()
        .map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone()));
    tokio::spawn(accept_loop(listener, acceptor, conn_tx, shutdown.clone()));
    tokio::spawn(watch_signals(shutdown.clone()));

    // Only now is the plugin ready: Terraform connects as soon as it reads the line.
    {
        use std::io::Write;
        let line = handshake_line(addr, tls.as_ref().map(|t| t.server_cert_der.as_slice()));
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }

    let incoming = futures::stream::poll_fn(move |cx| {
        conn_rx
            .poll_recv(cx)
            .map(|c| c.map(Ok::<_, std::io::Error>))
    });
    let provider = ProviderService::new();
    let server = tonic::transport::Server::builder()
        .add_service(tfplugin6::provider_server::ProviderServer::new(provider))
        .add_service(health::health_server::HealthServer::new(services::Health))
        .add_service(gp::grpc_controller_server::GrpcControllerServer::new(
            services::Controller {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(gp::grpc_stdio_server::GrpcStdioServer::new(
            services::Stdio {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(gp::grpc_broker_server::GrpcBrokerServer::new(
            services::Broker {
                shutdown: shutdown.clone(),
            },
        ))
        .serve_with_incoming_shutdown(incoming, {
            let s = shutdown.clone();
            async move { s.wait().await }
        });
    tokio::select! {
        served = server => served?,
        () = async { shutdown.wait().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {}
    }
    Ok(())
}

/// Accepts connections and completes their TLS handshakes, each in its own task so a slow
/// or broken client cannot hold up the others.
async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    conns: mpsc::Sender<Conn>,
    shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.wait() => return,
        };
        let Ok((tcp, _)) = accepted else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let conns = conns.clone();
        match &acceptor {
            None => {
                let _ = conns.send(Conn::Plain(tcp)).await;
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = conns.send(Conn::Tls(Box::new(tls))).await;
                        }
                        Ok(Err(e)) => eprintln!("[WARN] plugin TLS handshake failed: {e}"),
                        Err(_) => eprintln!("[WARN] plugin TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// SIGTERM stops the plugin; SIGINT is ignored (Terraform handles interrupts and then stops
/// its plugins through the controller).
async fn watch_signals(shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { shutdown.trigger(); return; }
            _ = int.recv() => {}
        }
    }
}

/// One accepted connection, with or without TLS.
#[derive(Debug)]
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn the_magic_cookie_is_required() {
        assert!(matches!(
            Handshake::from_env(env(&[])),
            Err(Error::NotLaunchedByTerraform(_))
        ));
        assert!(Handshake::from_env(env(&[(MAGIC_COOKIE_KEY, "nope")])).is_err());
    }

    #[test]
    fn protocol_6_must_be_offered() {
        let h = Handshake::from_env(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "5"),
        ]));
        assert!(matches!(h, Err(Error::UnsupportedProtocol { .. })));
        let h = Handshake::from_env(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "5,6"),
            ("PLUGIN_MIN_PORT", "10000"),
            ("PLUGIN_MAX_PORT", "25000"),
            ("PLUGIN_CLIENT_CERT", "-----BEGIN CERTIFICATE-----"),
        ]))
        .unwrap();
        assert_eq!((h.min_port, h.max_port), (10000, 25000));
        assert!(h.client_cert.is_some());
    }

    #[test]
    fn bad_port_ranges_are_refused() {
        for (min, max) in [("x", "10"), ("20", "10")] {
            let h = Handshake::from_env(env(&[
                (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
                ("PLUGIN_MIN_PORT", min),
                ("PLUGIN_MAX_PORT", max),
            ]));
            assert!(matches!(h, Err(Error::Env { .. })), "{min}..{max}");
        }
    }

    #[test]
    fn the_handshake_line_has_six_fields() {
        let addr: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        assert_eq!(
            handshake_line(addr, Some(&[0xde, 0xad, 0xbe, 0xef])),
            "1|6|tcp|127.0.0.1:4242|grpc|3q2+7w"
        );
        assert_eq!(handshake_line(addr, None), "1|6|tcp|127.0.0.1:4242|grpc|");
    }

    #[tokio::test]
    async fn listens_inside_the_port_range() {
        let h = Handshake {
            min_port: 0,
            max_port: 0,
            client_cert: None,
        };
        let l = h.listen().await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let h = Handshake {
            min_port: port,
            max_port: port,
            client_cert: None,
        };
        let l = h.listen().await.unwrap();
        assert_eq!(l.local_addr().unwrap().port(), port);
    }
}
