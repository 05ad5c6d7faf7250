//! TLS for the load tool's own connections (the raw HTTP/1.1 workers and the watchers) when
//! the target's API is on TLS: tokio-rustls with the client configuration of
//! `conflux-client` (ring, the CA bundle and client certificate given on the command line),
//! offering only `http/1.1` because these connections speak HTTP/1.1 by hand or upgrade to
//! WebSocket. A plain connection stays a bare `TcpStream` behind one enum match.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Result;
use conflux_client::TlsOptions;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// How the tool's raw connections reach an https target.
#[derive(Clone)]
pub struct BenchTls {
    connector: TlsConnector,
    /// The name the server's certificate must carry (the target's host).
    name: ServerName<'static>,
}

impl std::fmt::Debug for BenchTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchTls")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl BenchTls {
    /// For a target at `host` (a DNS name or an IP address).
    pub fn new(options: &TlsOptions, host: &str) -> Result<BenchTls> {
        let mut config = options.client_config(true)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(BenchTls {
            connector: TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from(host.to_owned())?,
        })
    }

    /// The TLS handshake over `tcp`.
    pub async fn connect(&self, tcp: TcpStream) -> Result<Io> {
        let stream = self.connector.connect(self.name.clone(), tcp).await?;
        Ok(Io::Tls(Box::new(stream)))
    }
}

/// A connection: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Io {
    /// `tcp` as is, or after a TLS handshake when `tls` is given.
    pub async fn over(tcp: TcpStream, tls: Option<&BenchTls>) -> Result<Io> {
        match tls {
            None => Ok(Io::Plain(tcp)),
            Some(t) => t.connect(tcp).await,
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
