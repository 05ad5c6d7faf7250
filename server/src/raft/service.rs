//! Node-to-node Raft RPC, server side: the gRPC service on `--raft-addr` that hands
//! append-entries, votes and snapshot chunks to openraft, and forwarded requests to the
//! [`crate::cluster::Cluster`].

use tonic::{Request, Response, Status};

use super::pb::Payload;
use super::pb::raft_server;
use super::{ForwardRequest, Raft, TypeConfig, election};
use crate::cluster::Cluster;
use crate::storage::codec;

pub struct RaftService {
    raft: Raft,
    cluster: Cluster,
}

impl std::fmt::Debug for RaftService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftService")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl RaftService {
    pub fn new(raft: Raft, cluster: Cluster) -> Self {
        RaftService { raft, cluster }
    }

    pub fn into_server(self) -> raft_server::RaftServer<Self> {
        raft_server::RaftServer::new(self)
            .max_decoding_message_size(super::peers::MAX_RPC_BYTES)
            .max_encoding_message_size(super::peers::MAX_RPC_BYTES)
    }
}

fn decode<T: serde::de::DeserializeOwned>(req: Request<Payload>) -> Result<T, Status> {
    codec::decode(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable request: {e}")))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<Payload>, Status> {
    Ok(Response::new(Payload {
        data: codec::encode(value),
    }))
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> = decode(req)?;
        let answer = self.raft.append_entries(rpc).await;
        if answer.as_ref().is_ok_and(election::from_leader) {
            self.cluster.elections().heard_from_leader();
        }
        reply(&answer)
    }

    async fn vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: openraft::raft::VoteRequest<u64> = decode(req)?;
        let answer = self.raft.vote(rpc.clone()).await;
        if let Ok(response) = &answer {
            self.cluster.elections().answered_vote(&rpc, response);
        }
        reply(&answer)
    }

    async fn install_snapshot(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: openraft::raft::InstallSnapshotRequest<TypeConfig> = decode(req)?;
        let answer = self.raft.install_snapshot(rpc).await;
        if answer.is_ok() {
            self.cluster.elections().heard_from_leader();
        }
        reply(&answer)
    }

    async fn forward(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let forwarded: ForwardRequest = decode(req)?;
        reply(&self.cluster.handle_forwarded(forwarded).await)
    }
}
