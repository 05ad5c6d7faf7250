//! The delay fault's TCP proxy. It runs inside one node's network namespace, accepts the
//! connections that an nftables `redirect` there sends it (peers' new connections to the
//! node's Raft port, see [`crate::net::Net::start_delay`]), dials the node's real listener
//! from inside the namespace, and holds every chunk of bytes it reads, in each direction, for
//! a seeded random delay before passing it on.
//!
//! Bytes keep their order within a connection: each direction is a delay line, where a chunk
//! leaves no earlier than the one read before it (a proxy that reordered bytes within a TCP
//! stream would corrupt it, which no real network does). Each connection draws its own base
//! delay, so messages on different connections can overtake each other: that is the only
//! reordering there is. Bytes read before one side closed are still delivered to the other
//! side, late, like packets in flight.
//!
//! Each proxy is one std thread that has entered the namespace (`setns`) and runs a
//! current-thread tokio runtime, so every socket it makes lives there. Stopping (or dropping)
//! the proxy ends the runtime, which closes every socket it holds, and joins the thread.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::{Bytes, BytesMut};
use nix::sched::{CloneFlags, setns};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The most the proxy reads at once: one chunk, held and passed on as a whole.
const CHUNK: usize = 16 * 1024;
/// Chunks held per direction of a connection before the proxy stops reading, so a fast
/// sender meets back pressure as it would on a slow network, not an unbounded buffer.
const IN_FLIGHT: usize = 256;
/// How long dialling the node's real listener may take; a node that is down or paused
/// loses the connection, as it would without the proxy.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a proxy holds bytes: each connection draws a base delay from `base_ms`, and
/// each chunk adds up to `jitter_ms` more. The same seed gives the same delays to the same
/// connection number (connections are numbered in the order the proxy accepts them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelaySpec {
    pub base_ms: Range<u64>,
    pub jitter_ms: u64,
    pub seed: u64,
}

impl DelaySpec {
    /// The delays of connection number `connection`: `[client to node, node to client]`,
    /// with one base (a connection's path is one path) and independent jitter per direction.
    pub fn connection(&self, connection: u64) -> [ChunkDelays; 2] {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(connection);
        let base = Duration::from_millis(rng.random_range(self.base_ms.clone()));
        [(); 2].map(|()| ChunkDelays {
            base,
            jitter_ms: self.jitter_ms,
            rng: ChaCha8Rng::seed_from_u64(rng.random()),
        })
    }
}

/// The delays of one direction of one connection, chunk after chunk (never ends).
#[derive(Debug, Clone)]
pub struct ChunkDelays {
    base: Duration,
    jitter_ms: u64,
    rng: ChaCha8Rng,
}

impl ChunkDelays {
    /// The connection's base delay: every chunk is held at least this long.
    pub fn base(&self) -> Duration {
        self.base
    }
}

impl Iterator for ChunkDelays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.base + Duration::from_millis(self.rng.random_range(0..=self.jitter_ms)))
    }
}

/// What a proxy has passed on so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: u64,
    /// Bytes delivered, both directions together.
    pub bytes: u64,
}

impl std::ops::Add for ProxyStats {
    type Output = ProxyStats;

    fn add(self, other: ProxyStats) -> ProxyStats {
        ProxyStats {
            connections: self.connections + other.connections,
            bytes: self.bytes + other.bytes,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    bytes: AtomicU64,
}

/// A running proxy. [`DelayProxy::stop`] or dropping it closes its sockets and joins its
/// thread.
#[derive(Debug)]
pub struct DelayProxy {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl DelayProxy {
    /// Starts a proxy in namespace `namespace` (`/var/run/netns/<name>`) listening on
    /// `listen` and passing connections on to `upstream`. Returns once it listens.
    pub fn start(
        namespace: &str,
        listen: SocketAddr,
        upstream: SocketAddr,
        spec: DelaySpec,
    ) -> Result<DelayProxy> {
        let path = format!("/var/run/netns/{namespace}");
        let ns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        let counters = Arc::new(Counters::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name(listen))
            .spawn(move || {
                // Everything that can fail happens before the proxy reports that it listens.
                let setup = || -> Result<(tokio::runtime::Runtime, std::net::TcpListener)> {
                    setns(&ns, CloneFlags::CLONE_NEWNET).context("entering the namespace")?;
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let listener = std::net::TcpListener::bind(listen)
                        .with_context(|| format!("listening on {listen}"))?;
                    listener.set_nonblocking(true)?;
                    Ok((runtime, listener))
                };
                match setup() {
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                    Ok((runtime, listener)) => {
                        let _ = ready_tx.send(Ok(()));
                        runtime.block_on(serve(listener, upstream, spec, thread_counters, stop_rx));
                        // Dropping the runtime drops every relay task and so closes its sockets.
                    }
                }
            })
            .context("starting the proxy thread")?;
        let mut proxy = DelayProxy {
            stop: Some(stop_tx),
            thread: Some(thread),
            counters,
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(proxy),
            Ok(Err(e)) => {
                proxy.shut_down();
                Err(e.context(format!("starting the delay proxy in {namespace}")))
            }
            Err(_) => {
                proxy.shut_down();
                Err(anyhow!(
                    "the delay proxy thread of {namespace} ended at start"
                ))
            }
        }
    }

    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            connections: self.counters.connections.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
        }
    }

    /// Closes every connection it holds, ends its thread and returns what it passed on.
    pub fn stop(mut self) -> ProxyStats {
        self.shut_down();
        self.stats()
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The proxy thread's name (at most 15 bytes, the kernel's limit): `cfxdelay<a>.<b>` after
/// the last two bytes of its address, so it can be found in `/proc/<pid>/task/*/comm`.
pub fn thread_name(listen: SocketAddr) -> String {
    match listen {
        SocketAddr::V4(a) => {
            let o = a.ip().octets();
            format!("cfxdelay{}.{}", o[2], o[3])
        }
        SocketAddr::V6(_) => "cfxdelay".to_owned(),
    }
}

async fn serve(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    spec: DelaySpec,
    counters: Arc<Counters>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let mut next = 0;
    loop {
        tokio::select! {
            // A stop, or the handle dropped.
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    let delays = spec.connection(next);
                    next += 1;
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(relay(client, upstream, delays, counters.clone()));
                }
                // Out of file descriptors, say: try again shortly rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
}

/// One proxied connection: a delay line each way.
async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    [to_node, to_client]: [ChunkDelays; 2],
    counters: Arc<Counters>,
) {
    let Ok(Ok(node)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await
    else {
        // Dropping the client's socket tells the peer that the node is unreachable.
        return;
    };
    // Delay is the proxy's job; Nagle's algorithm would only add its own.
    let _ = client.set_nodelay(true);
    let _ = node.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (node_read, node_write) = node.into_split();
    tokio::join!(
        delay_line(client_read, node_write, to_node, &counters),
        delay_line(node_read, client_write, to_client, &counters),
    );
}

/// Reads chunks from `from` as they come and writes each to `to` once its delay has passed
/// and every chunk before it has been written.
async fn delay_line(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut delays: ChunkDelays,
    counters: &Counters,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(IN_FLIGHT);
    let read = async move {
        let mut buf = BytesMut::new();
        loop {
            buf.reserve(CHUNK);
            match from.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let due = Instant::now() + delays.next().unwrap_or_default();
                    if tx.send((due, buf.split().freeze())).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` lets the writer finish what it holds, then close.
    };
    let write = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                // The other side is gone; dropping `rx` stops the reader at its next chunk.
                return;
            }
            counters
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        // The sender closed (or reset): pass that on after what it sent before.
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> DelaySpec {
        DelaySpec {
            base_ms: 20..150,
            jitter_ms: 30,
            seed,
        }
    }

    #[test]
    fn the_same_seed_and_connection_give_the_same_delays() {
        let take = |s: &DelaySpec, c| -> Vec<Duration> {
            let [up, down] = s.connection(c);
            up.take(20).chain(down.take(20)).collect()
        };
        assert_eq!(take(&spec(7), 3), take(&spec(7), 3));
        assert_ne!(take(&spec(7), 3), take(&spec(8), 3));
        assert_ne!(take(&spec(7), 3), take(&spec(7), 4));
    }

    #[test]
    fn every_chunk_waits_its_connections_base_plus_at_most_the_jitter() {
        let s = spec(1);
        let mut bases = Vec::new();
        for c in 0..500 {
            let [up, down] = s.connection(c);
            let base = up.base();
            assert_eq!(base, down.base(), "one base per connection");
            assert!((20..150).contains(&(base.as_millis() as u64)), "{base:?}");
            bases.push(base.as_millis() as u64);
            let (ups, downs): (Vec<_>, Vec<_>) = (up.take(50).collect(), down.take(50).collect());
            for d in ups.iter().chain(&downs) {
                assert!(
                    *d >= base && *d <= base + Duration::from_millis(30),
                    "{d:?}"
                );
            }
            assert_ne!(ups, downs, "the directions jitter independently");
        }
        // Uniform over the range: both ends are reached and the mean is near the middle.
        assert!(*bases.iter().min().unwrap() < 30, "{bases:?}");
        assert!(*bases.iter().max().unwrap() >= 140, "{bases:?}");
        let mean = bases.iter().sum::<u64>() as f64 / bases.len() as f64;
        assert!((75.0..95.0).contains(&mean), "mean base {mean}");
    }

    #[test]
    fn a_range_of_one_value_is_a_fixed_delay() {
        let s = DelaySpec {
            base_ms: 40..41,
            jitter_ms: 0,
            seed: 3,
        };
        let [up, _] = s.connection(0);
        assert!(up.take(10).all(|d| d == Duration::from_millis(40)));
    }

    #[test]
    fn thread_names_fit_the_kernels_limit() {
        let name = thread_name("10.127.249.250:7900".parse().unwrap());
        assert_eq!(name, "cfxdelay249.250");
        assert!(name.len() <= 15);
    }
}
