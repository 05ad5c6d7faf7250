//! Conflux watchers for the watch and connections scenarios.
//!
//! Each watcher is one connection with one subscription: a WebSocket (the default: an event
//! is one small frame, with no request to re-issue) or an HTTP/1.1 long poll driven by a bare
//! hyper client connection. Connections come from rotating loopback source addresses
//! ([`crate::targets::next_source_addr`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

use crate::targets::{Receipt, WatchSet};
use crate::tls::{BenchTls, Io};

/// How watchers talk to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    WebSocket,
    LongPoll,
}

/// A connection to `server` from the `i`-th source address, over TLS when `tls` is given.
async fn tcp(server: SocketAddr, i: usize, tls: Option<&BenchTls>) -> Result<Io> {
    let source = crate::targets::next_source_addr();
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let stream = socket
        .connect(server)
        .await
        .with_context(|| format!("connecting watcher {i}"))?;
    stream.set_nodelay(true)?;
    Io::over(stream, tls).await
}

/// Opens a long-poll connection to `server` from the `i`-th source address.
async fn connect(
    server: SocketAddr,
    i: usize,
    tls: Option<&BenchTls>,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = tcp(server, i, tls).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One long poll; answers the event's revision, or `None` on 304.
async fn poll(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    server: SocketAddr,
    path: &str,
    token: &str,
    revision: u64,
    timeout_s: u64,
) -> Result<Option<u64>> {
    let req = hyper::Request::get(format!(
        "/api/v1/watch/config/{path}?revision={revision}&timeout={timeout_s}s"
    ))
    .header(hyper::header::HOST, server.to_string())
    .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
    .body(Empty::<Bytes>::new())?;
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    match status.as_u16() {
        304 => Ok(None),
        200 => {
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            Ok(v["revision"].as_u64())
        }
        other => bail!("watch answered {other}: {}", String::from_utf8_lossy(&body)),
    }
}

/// One WebSocket watcher: subscribes to `path` from `revision`, counts itself ready when the
/// node confirms the subscription, and reports every event.
#[allow(clippy::too_many_arguments)]
async fn ws_watcher(
    server: SocketAddr,
    tls: Option<&BenchTls>,
    i: usize,
    path: &str,
    token: &str,
    revision: u64,
    due: Instant,
    set: &WatchSet,
) -> Result<()> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    let stream = tcp(server, i, tls).await?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "{}://{server}/api/v1/watch/ws",
            if tls.is_some() { "wss" } else { "ws" }
        ))?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    let sub = format!(r#"{{"subscribe": [{{"key": "{path}", "revision": {revision}}}]}}"#);
    ws.send(Message::Text(sub.into())).await?;
    while let Some(msg) = ws.next().await {
        if let Message::Text(t) = msg? {
            let at = Instant::now();
            if t.contains("\"error\"") {
                bail!("watch error: {t}");
            } else if let Some(revision) = revision_of(&t) {
                set.receipt(Receipt {
                    watcher: i as u32,
                    revision,
                    at,
                });
            } else if t.contains("\"subscribed\"") {
                set.ready_since(due);
            }
        }
    }
    Ok(())
}

/// The `"revision"` of an event message, read without building a JSON tree: 10,000 watchers
/// receive every event, and the load generator shares the cores with the node.
fn revision_of(text: &str) -> Option<u64> {
    let start = text.find("\"revision\"")? + "\"revision\"".len();
    let rest = text[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Opens watchers `first..first + count` of `path` from revision `revision`, watcher `i` on
/// `servers[i % servers.len()]` (long polls re-poll after each event); their tasks belong to
/// `set`, which receives every receipt.
#[allow(clippy::too_many_arguments)]
pub async fn spawn_watchers(
    transport: Transport,
    tls: Option<&BenchTls>,
    servers: &[SocketAddr],
    path: &str,
    token: &str,
    revision: u64,
    first: usize,
    count: usize,
    due: Option<Instant>,
    set: &WatchSet,
) {
    let path: Arc<str> = Arc::from(path);
    let token: Arc<str> = Arc::from(token);
    for i in first..first + count {
        let server = servers[i % servers.len()];
        let (path, token, set2, tls) = (path.clone(), token.clone(), set.clone(), tls.cloned());
        let due = due.unwrap_or_else(Instant::now);
        if transport == Transport::WebSocket {
            set.spawn(async move {
                if ws_watcher(server, tls.as_ref(), i, &path, &token, revision, due, &set2)
                    .await
                    .is_err()
                {
                    set2.failed();
                }
            });
        } else {
            set.spawn(async move {
                let mut sender = match connect(server, i, tls.as_ref()).await {
                    Ok(s) => s,
                    Err(_) => {
                        set2.failed();
                        return;
                    }
                };
                // A long poll has no confirmation: the connection is the subscription.
                set2.ready_since(due);
                let mut seen = revision;
                loop {
                    match poll(&mut sender, server, &path, &token, seen, 300).await {
                        Ok(Some(r)) => {
                            set2.receipt(Receipt {
                                watcher: i as u32,
                                revision: r,
                                at: Instant::now(),
                            });
                            seen = r;
                        }
                        Ok(None) => {}
                        Err(_) => {
                            set2.failed();
                            return;
                        }
                    }
                }
            });
        }
        // Let the accept queue drain.
        if i % 500 == 499 {
            tokio::task::yield_now().await;
        }
    }
}

/// Waits until the node reports at least `want` open subscriptions; answers how many.
pub async fn wait_subscriptions(api_url: &str, want: usize, timeout: Duration) -> Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let have = metric(api_url, "conflux_watch_subscriptions")
            .await
            .unwrap_or(0.0) as usize;
        if have >= want {
            return Ok(have);
        }
        if Instant::now() > deadline {
            bail!("only {have} of {want} watch subscriptions registered within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One value of the node's `/metrics` (plain HTTP only).
pub async fn metric(api_url: &str, name: &str) -> Option<f64> {
    let uri: hyper::Uri = format!("{api_url}/metrics").parse().ok()?;
    let addr: SocketAddr = format!("{}:{}", uri.host()?, uri.port_u16()?)
        .parse()
        .ok()?;
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = hyper::Request::get(uri.path())
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    let text = String::from_utf8(body.to_vec()).ok()?;
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::revision_of;

    #[test]
    fn the_revision_is_read_from_event_messages_only() {
        let event = r#"{"key":"a/b/c/d","revision":1234,"version_id":3,"event":"updated"}"#;
        assert_eq!(revision_of(event), Some(1234));
        assert_eq!(revision_of(r#"{"revision" : 7}"#), Some(7));
        assert_eq!(revision_of(r#"{"subscribed":["a/b/c/d"]}"#), None);
        assert_eq!(revision_of(r#"{"revision":"x"}"#), None);
    }
}
