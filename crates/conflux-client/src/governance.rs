//! [`ApiClient`] methods of approvals and webhooks (contract section 7): proposals and the
//! decisions on them, webhook registration and the deliveries a webhook received.
//!
//! A release change (`put_releases`, `publish`, `rollback`) in an environment that requires
//! approval answers 202; those methods then fail with [`ClientError::PendingApproval`],
//! which carries the proposal to follow with [`ApiClient::get_proposal`].

use conflux_api_types::{
    CreateWebhook, DeliveryList, ProposalDecision, ProposalList, ProposalView, WebhookList,
    WebhookView,
};
use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::client::{ApiClient, Body, json_body};
use crate::error::ClientError;
use crate::path::ApiPath;

const PROPOSALS: &str = "/api/v1/mgt/proposals";
const WEBHOOKS: &str = "/api/v1/webhooks";

/// The filters of `GET /api/v1/mgt/proposals`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProposalQuery {
    pub config_id: Option<u64>,
    /// `pending`, `rejected`, `canceled`, `executed` or `failed`.
    pub status: Option<String>,
    /// At most this many (the server's default is 100, its maximum 1000).
    pub limit: Option<u32>,
    /// A previous page's `next_cursor`.
    pub cursor: Option<String>,
}

fn proposal_path(id: u64) -> ApiPath {
    ApiPath::new(PROPOSALS).num(id)
}

fn webhook_path(id: &str) -> Result<ApiPath, ClientError> {
    ApiPath::new(WEBHOOKS).seg("id", id)
}

impl ApiClient {
    // ---- proposals ----------------------------------------------------------------------

    /// Proposals the caller may see, newest first.
    pub async fn list_proposals(&self, query: &ProposalQuery) -> Result<ProposalList, ClientError> {
        let path = ApiPath::new(PROPOSALS)
            .query_opt("config_id", query.config_id.map(|c| c.to_string()))
            .query_opt("status", query.status.as_deref())
            .query_opt("limit", query.limit.map(|l| l.to_string()))
            .query_opt("cursor", query.cursor.as_deref());
        self.get(path).await
    }

    pub async fn get_proposal(&self, id: u64) -> Result<ProposalView, ClientError> {
        self.get(proposal_path(id)).await
    }

    /// Approves a proposal (publisher or above, never the proposer unless the environment
    /// allows self-approval). The approval that reaches the environment's `min_approvals`
    /// executes the change: the answer then shows `executed`, or `failed` with its reason.
    pub async fn approve_proposal(
        &self,
        id: u64,
        comment: Option<&str>,
    ) -> Result<ProposalView, ClientError> {
        self.decide(id, "approve", comment).await
    }

    pub async fn reject_proposal(
        &self,
        id: u64,
        comment: Option<&str>,
    ) -> Result<ProposalView, ClientError> {
        self.decide(id, "reject", comment).await
    }

    /// Withdraws a pending proposal (its proposer, or a tenant_admin).
    pub async fn cancel_proposal(
        &self,
        id: u64,
        comment: Option<&str>,
    ) -> Result<ProposalView, ClientError> {
        self.decide(id, "cancel", comment).await
    }

    async fn decide(
        &self,
        id: u64,
        action: &'static str,
        comment: Option<&str>,
    ) -> Result<ProposalView, ClientError> {
        let body = ProposalDecision {
            comment: comment.map(str::to_owned),
        };
        let path = proposal_path(id).lit(action);
        self.send(Method::POST, &path, HeaderMap::new(), json_body(&body)?)
            .await?
            .json()
    }

    // ---- webhooks -----------------------------------------------------------------------

    /// `POST /api/v1/webhooks` (tenant_admin for its tenant, cluster_admin for all).
    pub async fn create_webhook(&self, body: &CreateWebhook) -> Result<WebhookView, ClientError> {
        self.send(
            Method::POST,
            &ApiPath::new(WEBHOOKS),
            HeaderMap::new(),
            json_body(body)?,
        )
        .await?
        .json()
    }

    /// The webhooks the caller may see.
    pub async fn list_webhooks(&self) -> Result<WebhookList, ClientError> {
        self.get(ApiPath::new(WEBHOOKS)).await
    }

    pub async fn get_webhook(&self, id: &str) -> Result<WebhookView, ClientError> {
        self.get(webhook_path(id)?).await
    }

    /// Deletes a webhook; its pending deliveries are dropped.
    pub async fn delete_webhook(&self, id: &str) -> Result<(), ClientError> {
        self.send(
            Method::DELETE,
            &webhook_path(id)?,
            HeaderMap::new(),
            Body::Empty,
        )
        .await?
        .no_content()
    }

    /// A webhook's deliveries, newest first, with their attempts.
    pub async fn list_deliveries(&self, id: &str) -> Result<DeliveryList, ClientError> {
        self.get(webhook_path(id)?.lit("deliveries")).await
    }
}
