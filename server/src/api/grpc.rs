//! gRPC face of the fetch plane on the API listener: `conflux.v1.Config/Fetch` and
//! `conflux.v1.Watch/Watch` (server stream), with the HTTP endpoints' semantics.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::AppState;
use super::access::{Caller, access_lost};
use super::error::ApiError;
use super::watch::{labels_from_map, subscribe};
use crate::watch::Watcher;
use conflux_api_types::WatchEventKind;
use conflux_domain::ConfigPath;

/// Generated code of `proto/conflux/v1/conflux.proto`.
#[allow(missing_debug_implementations, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("conflux.v1");
}

use pb::watch_event::Kind;

#[derive(Clone, Debug)]
pub struct FetchService(pub AppState);

#[derive(Clone, Debug)]
pub struct WatchService(pub AppState);

fn identity(client: Option<pb::ClientIdentity>) -> Result<conflux_domain::ClientLabels, ApiError> {
    let client = client.unwrap_or_default();
    let labels = client.labels.into_iter().collect();
    let id = (!client.client_id.is_empty()).then_some(client.client_id);
    labels_from_map(&labels, id.as_deref())
}

/// The caller `access::authenticate` attached to the HTTP request (tonic keeps its
/// extensions).
fn caller_of<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("this call needs `authorization: Bearer <token>`"))
}

#[tonic::async_trait]
impl pb::config_server::Config for FetchService {
    async fn fetch(
        &self,
        req: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let caller = caller_of(&req)?;
        let req = req.into_inner();
        let key = ConfigPath::parse(&req.key)
            .map_err(ApiError::from)?
            .to_string();
        let labels = identity(req.client)?;
        let min_revision = (req.min_revision > 0).then_some(req.min_revision);
        let (served, version) = super::fetch::resolve_fetch(
            &self.0,
            &caller.subject,
            &key,
            &labels,
            min_revision,
            req.linearizable,
        )
        .await?;
        let content = super::sealing::served_plaintext(&self.0, &version).await?;
        Ok(Response::new(pb::FetchResponse {
            content,
            version: version.version,
            hash: version.hash.to_str().unwrap_or_default().to_owned(),
            revision: served.revision,
            content_type: served.format.content_type().to_owned(),
        }))
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::watch_server::Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let caller = caller_of(&req)?;
        let req = req.into_inner();
        let key = ConfigPath::parse(&req.key)
            .map_err(ApiError::from)?
            .to_string();
        let labels = identity(req.client)?;
        let label_aware =
            req.version.is_some() || !labels.is_empty() || labels.client_id().is_some();
        let watcher = Watcher {
            key,
            revision: req.revision,
            version: req.version.map(Some),
            labels,
            label_aware,
        };
        let lost = access_lost(&self.0, &caller, watcher.key.clone());
        let events = subscribe(&self.0, &caller, watcher).await?;
        let events = events.map(|e| {
            Ok(pb::WatchEvent {
                key: e.key,
                revision: e.revision,
                version_id: e.version_id,
                kind: match e.event {
                    WatchEventKind::Updated => Kind::Updated as i32,
                    WatchEventKind::Deleted => Kind::Deleted as i32,
                },
            })
        });
        // Revoked while streaming: one final error status, then the stream ends.
        let ending = futures::stream::once(lost).map(|e| Err(Status::from(e)));
        let stream = futures::stream::select(events, ending).scan(false, |ended, item| {
            if *ended {
                return futures::future::ready(None);
            }
            *ended = item.is_err();
            futures::future::ready(Some(item))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
