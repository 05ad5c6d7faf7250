//! Connections to the other members: one gRPC channel per peer address, shared by Raft
//! replication and by request forwarding, with the node's TLS identity when mTLS is on.
//!
//! A tonic `Channel` is one persistent HTTP/2 connection that multiplexes every RPC to that
//! peer; it reconnects by itself after failures, and its request queue is bounded.
//!
//! When the Raft listener is bound to a specific address, connections to peers leave from
//! that address too: on a host with several addresses, node-to-node traffic then comes from
//! the address the cluster knows the node by (what firewall rules expect), and test clusters
//! on distinct loopback addresses can be partitioned by address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::pb::raft_client::RaftClient;

/// Largest gRPC message a node sends or accepts. Version contents are at most 4 MiB, and
/// append-entries batches are split below this (see `network.rs`).
pub const MAX_RPC_BYTES: usize = 64 * 1024 * 1024;
/// Requests queued per channel before callers wait.
pub const CHANNEL_BUFFER: usize = 1024;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Peers {
    tls: Option<ClientTlsConfig>,
    /// Source address of connections to peers (`None`: the system picks).
    local_ip: Option<IpAddr>,
    channels: Mutex<HashMap<String, Channel>>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid peer address {addr}: {message}")]
pub struct BadAddress {
    pub addr: String,
    pub message: String,
}

/// Waits for an RPC at most `ttl`. The `grpc-timeout` header a request carries bounds only
/// the call itself: while its channel is still connecting, a request waits in the channel's
/// queue without a deadline, and a TLS handshake with a peer that has bound its port but does
/// not accept yet (a node still starting) never ends. This bounds the whole wait.
pub async fn within<T>(
    ttl: Duration,
    rpc: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(ttl, rpc).await {
        Ok(reply) => reply,
        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
            "no answer within {ttl:?}"
        ))),
    }
}

impl Peers {
    pub fn new(tls: Option<ClientTlsConfig>, local_ip: Option<IpAddr>) -> Arc<Self> {
        Arc::new(Peers {
            tls,
            local_ip: local_ip.filter(|ip| !ip.is_unspecified()),
            channels: Mutex::new(HashMap::new()),
        })
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// A client for the Raft service at `addr` (`host:port`), reusing the connection.
    pub fn client(&self, addr: &str) -> Result<RaftClient<Channel>, BadAddress> {
        let mut channels = self.channels.lock();
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let c = self.connect(addr)?;
                channels.insert(addr.to_owned(), c.clone());
                c
            }
        };
        Ok(RaftClient::new(channel)
            .max_decoding_message_size(MAX_RPC_BYTES)
            .max_encoding_message_size(MAX_RPC_BYTES))
    }

    fn connect(&self, addr: &str) -> Result<Channel, BadAddress> {
        let bad = |message: String| BadAddress {
            addr: addr.to_owned(),
            message,
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .buffer_size(CHANNEL_BUFFER)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .local_address(self.local_ip);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok(endpoint.connect_lazy())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::raft::pb::Payload;

    /// A peer that has bound its Raft port but does not accept yet (a node still setting up)
    /// leaves a TLS handshake hanging. Three nodes starting together on an empty metadata DB
    /// all sit in that state while asking each other whether they held data; before `within`
    /// they waited for each other forever.
    #[tokio::test]
    async fn a_call_to_a_peer_that_never_accepts_ends_at_its_deadline() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap().to_string();
        let tls = ClientTlsConfig::new().domain_name("localhost");
        let peers = Peers::new(Some(tls), None);
        let mut client = peers.client(&addr).unwrap();
        let ttl = Duration::from_millis(300);
        let started = Instant::now();
        let call = within(ttl, client.forward(Payload { data: Vec::new() }));
        let reply = tokio::time::timeout(Duration::from_secs(60), call)
            .await
            .expect("the call ends on its own");
        let status = reply.expect_err("nobody answered");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
        assert!(started.elapsed() >= ttl);
    }
}
