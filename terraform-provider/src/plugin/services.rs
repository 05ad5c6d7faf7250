//! go-plugin's side services, which Terraform's plugin client talks to next to the provider:
//! the health check it pings, the controller whose `Shutdown` asks the plugin to exit, the
//! stdio stream and the connection broker. The provider forwards no stdio and brokers no
//! connections, so those two streams stay open and silent until shutdown.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::health::{self, health_check_response::ServingStatus};
use crate::proto::plugin as gp;

/// The name go-plugin's health check asks about.
pub const GRPC_SERVICE_NAME: &str = "plugin";

/// A handle on the plugin's shutdown signal: triggered once, observed by many.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        let (tx, rx) = watch::channel(false);
        Shutdown { tx, rx }
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has been triggered.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An error means the sender is gone, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A stream that yields nothing and ends at shutdown.
fn silent_until_shutdown<T: Send + 'static>(shutdown: Shutdown) -> BoxStream<T> {
    Box::pin(
        futures::stream::once(async move { shutdown.wait().await }).filter_map(|()| async { None }),
    )
}

#[derive(Debug, Clone)]
pub struct Health;

#[tonic::async_trait]
impl health::health_server::Health for Health {
    async fn check(
        &self,
        request: Request<health::HealthCheckRequest>,
    ) -> Result<Response<health::HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        let status = if service.is_empty() || service == GRPC_SERVICE_NAME {
            ServingStatus::Serving
        } else {
            ServingStatus::ServiceUnknown
        };
        Ok(Response::new(health::HealthCheckResponse {
            status: status as i32,
        }))
    }
}

#[derive(Debug, Clone)]
pub struct Controller {
    pub shutdown: Shutdown,
}

#[tonic::async_trait]
impl gp::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<gp::Empty>) -> Result<Response<gp::Empty>, Status> {
        self.shutdown.trigger();
        Ok(Response::new(gp::Empty {}))
    }
}

#[derive(Debug, Clone)]
pub struct Stdio {
    pub shutdown: Shutdown,
}

#[tonic::async_trait]
impl gp::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = BoxStream<gp::StdioData>;

    async fn stream_stdio(
        &self,
        _: Request<gp::Empty>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(silent_until_shutdown(self.shutdown.clone())))
    }
}

#[derive(Debug, Clone)]
pub struct Broker {
    pub shutdown: Shutdown,
}

#[tonic::async_trait]
impl gp::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = BoxStream<gp::ConnInfo>;

    async fn start_stream(
        &self,
        request: Request<Streaming<gp::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        // Nothing is brokered: drain what the host sends until it hangs up.
        let mut inbound = request.into_inner();
        tokio::spawn(async move { while let Some(Ok(_)) = inbound.next().await {} });
        Ok(Response::new(silent_until_shutdown(self.shutdown.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::health::health_server::Health as _;
    use crate::proto::plugin::grpc_controller_server::GrpcController as _;
    use crate::proto::plugin::grpc_stdio_server::GrpcStdio as _;

    #[tokio::test]
    async fn health_answers_for_the_plugin_service() {
        let ask = |s: &str| {
            Request::new(health::HealthCheckRequest {
                service: s.to_owned(),
            })
        };
        let r = Health.check(ask("plugin")).await.unwrap().into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32);
        let r = Health.check(ask("other")).await.unwrap().into_inner();
        assert_eq!(r.status, ServingStatus::ServiceUnknown as i32);
    }

    #[tokio::test]
    async fn shutdown_ends_the_open_streams() {
        let shutdown = Shutdown::default();
        let stdio = Stdio {
            shutdown: shutdown.clone(),
        };
        let mut stream = stdio
            .stream_stdio(Request::new(gp::Empty {}))
            .await
            .unwrap()
            .into_inner();
        let controller = Controller {
            shutdown: shutdown.clone(),
        };
        assert!(!shutdown.is_triggered());
        controller
            .shutdown(Request::new(gp::Empty {}))
            .await
            .unwrap();
        assert!(shutdown.is_triggered());
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .unwrap();
        assert!(next.is_none());
    }
}
