//! Node-to-node Raft RPC, client side: openraft's `RaftNetwork` over the gRPC service of
//! `proto/conflux/raft/v1/raft.proto`.
//!
//! Requests and responses travel as codec-encoded openraft types inside an opaque payload.
//! Every call has a deadline (openraft's TTL for the RPC); an unreachable peer is reported as
//! `Unreachable`, after which openraft waits according to [`PeerClient::backoff`] (exponential,
//! capped) before it tries again. An append-entries request of several entries whose encoding
//! exceeds [`MAX_APPEND_BYTES`] is refused with `PayloadTooLarge` so openraft retries with half
//! the entries; a single entry always fits the transport, because the batcher bounds the
//! encoded size of an entry's proposals.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::pb::Payload;
use super::peers::{Peers, within};

/// Encoded bytes of one append-entries message above which it is split (when it carries more
/// than one entry). openraft gives an append one heartbeat interval (100 ms) to complete,
/// including the follower's write: a message of tens of megabytes would time out, and be
/// retried unchanged, forever.
pub const MAX_APPEND_BYTES: usize = 8 * 1024 * 1024;
use super::{NodeId, NodeInfo, TypeConfig};
use crate::storage::codec;

/// Creates one [`PeerClient`] per replication target.
#[derive(Debug, Clone)]
pub struct Network {
    node_id: NodeId,
    peers: Arc<Peers>,
}

impl Network {
    pub fn new(node_id: NodeId, peers: Arc<Peers>) -> Self {
        Network { node_id, peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            me: self.node_id,
            target,
            node: node.clone(),
            peers: self.peers.clone(),
        }
    }
}

/// The Raft connection to one peer.
#[derive(Debug)]
pub struct PeerClient {
    me: NodeId,
    target: NodeId,
    node: NodeInfo,
    peers: Arc<Peers>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RpcFailure(String);

type RpcResult<T, E> = Result<T, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        action: RPCTypes,
        req: &Req,
        entries: u64,
        ttl: Duration,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let data = codec::encode(req);
        if entries > 1 && data.len() > MAX_APPEND_BYTES {
            // openraft retries an append with this many entries. An entry holds at most one
            // proposal larger than the batcher's limit, so a single entry always goes.
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint((entries / 2).max(1)),
            ));
        }
        let mut client = self
            .peers
            .client(&self.node.raft_addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut request = tonic::Request::new(Payload { data });
        request.set_timeout(ttl);
        let reply = match action {
            RPCTypes::AppendEntries => within(ttl, client.append_entries(request)).await,
            RPCTypes::Vote => within(ttl, client.vote(request)).await,
            RPCTypes::InstallSnapshot => within(ttl, client.install_snapshot(request)).await,
        };
        let payload = reply
            .map_err(|status| self.status_error(action, ttl, status))?
            .into_inner();
        let decoded: Result<Resp, RaftError<NodeId, E>> =
            codec::decode(&payload.data).map_err(|e| {
                RPCError::Network(NetworkError::new(&RpcFailure(format!(
                    "undecodable reply: {e}"
                ))))
            })?;
        decoded.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }

    fn status_error<E: std::error::Error>(
        &self,
        action: RPCTypes,
        ttl: Duration,
        status: tonic::Status,
    ) -> RPCError<NodeId, NodeInfo, RaftError<NodeId, E>> {
        match status.code() {
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => RPCError::Timeout(Timeout {
                action,
                id: self.me,
                target: self.target,
                timeout: ttl,
            }),
            tonic::Code::Unavailable | tonic::Code::Unknown => {
                let why = RpcFailure(format!(
                    "node {} at {}: {}",
                    self.target,
                    self.node.raft_addr,
                    status.message()
                ));
                RPCError::Unreachable(Unreachable::new(&why))
            }
            _ => RPCError::Network(NetworkError::new(&RpcFailure(format!(
                "node {} answered {:?}: {}",
                self.target,
                status.code(),
                status.message()
            )))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        let entries = rpc.entries.len() as u64;
        self.call(RPCTypes::AppendEntries, &rpc, entries, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(RPCTypes::InstallSnapshot, &rpc, 1, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(RPCTypes::Vote, &rpc, 1, option.hard_ttl()).await
    }

    /// Exponential backoff for an unreachable peer: 50 ms, doubling, at most 2 s.
    fn backoff(&self) -> Backoff {
        Backoff::new(
            (0u32..).map(|i| Duration::from_millis(50u64.saturating_mul(1 << i.min(6)).min(2000))),
        )
    }
}
