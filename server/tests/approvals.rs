//! The approval workflow (contract section 7) against real nodes: release changes in an
//! approval-required environment become proposals that change nothing clients see until an
//! approval executes them; stale, double, self and external approvals; proposals that
//! survive restarts, snapshots and leader changes.

mod common;

use std::time::Duration;

use common::{client, eventually};
use conflux_api_types::{
    ApprovalSettings, BindingSpec, CreateToken, CreateWebhook, PublishRequest, PutReleases,
    ReleaseRule, RollbackMode, RollbackRequest, Strategy, UpdateEnvironment,
};
use conflux_client::{
    ApiClient, AuditQuery, ClientError, ConfigPath, FetchOptions, Fetched, ProposalQuery,
    WriteOptions,
};
use conflux_testkit::{Cluster, NodeSpec, TestNode};

const PATH: (&str, &str, &str) = ("acme", "shop", "prod");

fn w() -> WriteOptions {
    WriteOptions::default()
}

fn publish_body(content: &str) -> PublishRequest {
    PublishRequest {
        content: content.to_owned(),
        description: None,
        strategy: Strategy::Stable,
    }
}

/// Requires approval in acme/shop/prod.
async fn require_approval(admin: &ApiClient, min_approvals: u32) {
    let body = UpdateEnvironment {
        description: None,
        approval: Some(ApprovalSettings {
            required: true,
            min_approvals,
            allow_self_approval: false,
        }),
    };
    let env = admin
        .update_env(PATH.0, PATH.1, PATH.2, &body, &w())
        .await
        .unwrap();
    assert!(env.approval.required);
}

/// A client of `base` holding a new service token with `role` on tenant acme.
async fn principal(admin: &ApiClient, base: &str, name: &str, role: &str) -> (ApiClient, String) {
    let created = admin
        .create_token(&CreateToken {
            name: name.into(),
            expires_at: None,
            bindings: vec![BindingSpec {
                role: role.into(),
                scope: "acme".into(),
            }],
        })
        .await
        .unwrap();
    let c = ApiClient::builder(base)
        .bearer_token(created.token)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    (c, format!("token:{}", created.id))
}

/// Waits until `c`'s node knows the token (identity reaches every node within 2 s).
async fn wait_known(c: &ApiClient) {
    eventually(Duration::from_secs(10), "the token is known", || async {
        c.whoami().await.is_ok()
    })
    .await;
}

async fn served_version(c: &ApiClient, name: &str) -> u64 {
    let path = ConfigPath::new(PATH.0, PATH.1, PATH.2, name);
    match c.fetch(&path, &FetchOptions::default()).await.unwrap() {
        Fetched::Modified { version, .. } => version,
        Fetched::NotModified => panic!("no conditional fetch was made"),
    }
}

fn pending(e: ClientError) -> conflux_api_types::ProposalAccepted {
    match e {
        ClientError::PendingApproval(p) => p,
        other => panic!("expected a 202 proposal, got {other}"),
    }
}

fn api_code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String) {
    let e = r.expect_err("the request should have been refused");
    (e.status().unwrap_or(0), e.code().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_proposal_made_on_one_node_is_approved_on_another_and_served_everywhere() {
    let mut cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != leader).collect();
    let (a, b) = (followers[0], followers[1]);
    let admin = client(cluster.node(a));
    let id = common::setup_config(&admin, "app.txt").await;
    admin.publish(id, &publish_body("v1"), &w()).await.unwrap();
    require_approval(&admin, 1).await;
    let (alice, alice_name) =
        principal(&admin, &cluster.node(a).api_url(), "alice", "publisher").await;
    let (bob, bob_name) = principal(&admin, &cluster.node(b).api_url(), "bob", "publisher").await;
    wait_known(&alice).await;
    wait_known(&bob).await;

    // Proposed on one follower: the version exists, nothing is released anywhere.
    let proposal = pending(
        alice
            .publish(id, &publish_body("v2"), &w())
            .await
            .unwrap_err(),
    );
    assert_eq!(proposal.status, "pending");
    assert_eq!(proposal.version_id, Some(2));
    for node in cluster.nodes() {
        assert_eq!(served_version(&client(node), "app.txt").await, 1);
    }
    let (status, code) = api_code(alice.approve_proposal(proposal.proposal_id, None).await);
    assert_eq!((status, code.as_str()), (403, "self_approval_forbidden"));

    // The proposal survives a snapshot and a restart of the node that took it.
    client(cluster.node(leader)).snapshot().await.unwrap();
    cluster.node_mut(a).terminate().unwrap();
    cluster.node_mut(a).restart().unwrap();
    wait_known(&alice).await;
    let seen = alice.get_proposal(proposal.proposal_id).await.unwrap();
    assert_eq!(seen.status, "pending");
    assert_eq!(seen.proposer, alice_name);

    // Approved on the other follower: executed in the same command, served everywhere.
    let done = bob
        .approve_proposal(proposal.proposal_id, Some("ship it"))
        .await
        .unwrap();
    assert_eq!(done.status, "executed", "{done:?}");
    assert_eq!(done.approvals[0].approver, bob_name);
    assert_eq!(served_version(&bob, "app.txt").await, 2, "read-your-writes");
    for node in cluster.nodes() {
        let c = client(node);
        eventually(
            Duration::from_secs(10),
            "v2 served on every node",
            || async { served_version(&c, "app.txt").await == 2 },
        )
        .await;
    }
    let steps: Vec<String> = done.history.iter().map(|h| h.action.clone()).collect();
    assert_eq!(steps, ["created", "approved", "executed"]);

    // Who approved what is answerable from the audit log.
    eventually(
        Duration::from_secs(20),
        "the approval is audited",
        || async {
            let page = admin
                .audit(&AuditQuery {
                    action: Some("proposal.approve".into()),
                    ..Default::default()
                })
                .await
                .unwrap();
            page.records.iter().any(|r| {
                r.actor == bob_name
                    && r.details["proposal_id"] == proposal.proposal_id
                    && r.details["status"] == "executed"
            })
        },
    )
    .await;

    // A leader change with a proposal pending: the new leader executes it.
    let second = pending(
        alice
            .rollback(
                id,
                &RollbackRequest {
                    version_id: 1,
                    mode: RollbackMode::StableOnly,
                },
                &w(),
            )
            .await
            .unwrap_err(),
    );
    cluster.node_mut(leader).kill9().unwrap();
    cluster
        .wait_for_leader_among(&followers, Duration::from_secs(30))
        .unwrap();
    let done = bob
        .approve_proposal(second.proposal_id, None)
        .await
        .unwrap();
    assert_eq!(done.status, "executed");
    assert_eq!(served_version(&bob, "app.txt").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_double_and_pending_proposals_and_break_glass() {
    let node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let admin = client(&node);
    let id = common::setup_config(&admin, "app.txt").await;
    admin.publish(id, &publish_body("v1"), &w()).await.unwrap();
    admin.publish(id, &publish_body("v2"), &w()).await.unwrap();
    require_approval(&admin, 2).await;
    let base = node.api_url();
    let (alice, _) = principal(&admin, &base, "alice", "publisher").await;
    let (bob, _) = principal(&admin, &base, "bob", "publisher").await;
    let (carol, _) = principal(&admin, &base, "carol", "publisher").await;
    let (viewer, _) = principal(&admin, &base, "vic", "viewer").await;
    let (tenant_admin, _) = principal(&admin, &base, "tia", "tenant_admin").await;
    wait_known(&tenant_admin).await;

    let rules = PutReleases {
        releases: vec![ReleaseRule::default_to(1)],
        comment: Some("back to v1".into()),
    };
    let p = pending(alice.put_releases(id, &rules, &w()).await.unwrap_err());
    // One pending proposal per config.
    let (status, code) = api_code(bob.put_releases(id, &rules, &w()).await);
    assert_eq!((status, code.as_str()), (409, "proposal_pending"));
    // A viewer may see it, not decide on it; a stranger may not cancel it.
    assert_eq!(
        viewer.get_proposal(p.proposal_id).await.unwrap().status,
        "pending"
    );
    let (status, _) = api_code(viewer.approve_proposal(p.proposal_id, None).await);
    assert_eq!(status, 403);
    let (status, code) = api_code(bob.cancel_proposal(p.proposal_id, None).await);
    assert_eq!((status, code.as_str()), (403, "forbidden"));

    // Two approvals needed; one approver counts once.
    let one = bob.approve_proposal(p.proposal_id, None).await.unwrap();
    assert_eq!(one.status, "pending");
    let (status, code) = api_code(bob.approve_proposal(p.proposal_id, None).await);
    assert_eq!((status, code.as_str()), (409, "already_approved"));

    // Break glass: a tenant_admin's emergency rollback applies at once...
    let rollback = RollbackRequest {
        version_id: 2,
        mode: RollbackMode::Emergency,
    };
    let applied = tenant_admin.rollback(id, &rollback, &w()).await.unwrap();
    assert_eq!(applied.releases, vec![ReleaseRule::default_to(2)]);
    // ... while a publisher's is a proposal like any other (refused here: one is pending).
    let (status, code) = api_code(alice.rollback(id, &rollback, &w()).await);
    assert_eq!((status, code.as_str()), (409, "proposal_pending"));

    // The pending proposal was made against an older revision: the approval that reaches
    // min_approvals fails it as stale and changes nothing.
    let stale = carol.approve_proposal(p.proposal_id, None).await.unwrap();
    assert_eq!(stale.status, "failed");
    assert!(
        stale.reason.as_deref().unwrap().starts_with("stale"),
        "{stale:?}"
    );
    assert_eq!(served_version(&admin, "app.txt").await, 2);
    let (status, code) = api_code(carol.approve_proposal(p.proposal_id, None).await);
    assert_eq!((status, code.as_str()), (409, "proposal_finished"));

    // The break-glass rollback carries its mark in the audit log.
    eventually(Duration::from_secs(20), "break glass audited", || async {
        let page = admin
            .audit(&AuditQuery {
                action: Some("config.rollback".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        page.records
            .iter()
            .any(|r| r.details["break_glass"] == true && r.outcome == "success")
    })
    .await;

    // Lists filter by config and status.
    let failed = admin
        .list_proposals(&ProposalQuery {
            config_id: Some(id),
            status: Some("failed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.proposals.len(), 1);
    let (status, code) = api_code(
        admin
            .list_proposals(&ProposalQuery {
                status: Some("approved-ish".into()),
                ..Default::default()
            })
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "invalid_argument"));
    // The proposer cancels a new one.
    let q = pending(alice.put_releases(id, &rules, &w()).await.unwrap_err());
    let canceled = alice
        .cancel_proposal(q.proposal_id, Some("wrong rule"))
        .await
        .unwrap();
    assert_eq!(canceled.status, "canceled");
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_external_approver_signs_with_a_webhook_secret() {
    let node = TestNode::start(NodeSpec::new(1)).expect("node starts");
    let admin = client(&node);
    let id = common::setup_config(&admin, "app.txt").await;
    admin.publish(id, &publish_body("v1"), &w()).await.unwrap();
    require_approval(&admin, 1).await;
    let secret = "a-long-enough-shared-secret";
    admin
        .create_webhook(&CreateWebhook {
            name: "change-board".into(),
            url: "http://127.0.0.1:9/hook".into(),
            events: vec!["proposal.created".into()],
            secret: secret.into(),
            tenant: Some("acme".into()),
        })
        .await
        .unwrap();
    let p = pending(
        admin
            .publish(id, &publish_body("v2"), &w())
            .await
            .unwrap_err(),
    );

    let http = conflux_client::tls::reqwest_builder(&Default::default(), false)
        .unwrap()
        .build()
        .unwrap();
    let url = format!(
        "{}/api/v1/mgt/proposals/{}/approve",
        node.api_url(),
        p.proposal_id
    );
    let body = br#"{"comment":"CAB-1234 approved"}"#.to_vec();
    let send = |signature: Option<String>| {
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(s) = signature {
            req = req.header("x-conflux-signature-256", s);
        }
        req.send()
    };
    // No token and no signature, a signature made with another secret, a malformed one.
    assert_eq!(send(None).await.unwrap().status(), 401);
    let wrong = sign("not-the-shared-secret-at-all", &body);
    assert_eq!(send(Some(wrong)).await.unwrap().status(), 401);
    assert_eq!(send(Some("sha256=zz".into())).await.unwrap().status(), 401);
    assert_eq!(
        admin.get_proposal(p.proposal_id).await.unwrap().status,
        "pending"
    );

    let good = sign(secret, &body);
    let answer = send(Some(good.clone())).await.unwrap();
    assert_eq!(answer.status(), 200);
    let view: conflux_api_types::ProposalView = answer.json().await.unwrap();
    assert_eq!(view.status, "executed");
    assert!(view.approvals[0].approver.starts_with("webhook:"));
    assert_eq!(
        view.approvals[0].comment.as_deref(),
        Some("CAB-1234 approved")
    );
    assert_eq!(served_version(&admin, "app.txt").await, 2);

    // The same callback replayed: nothing changes, and the answer says why.
    let replay = send(Some(good)).await.unwrap();
    assert_eq!(replay.status(), 409);
    let text = replay.text().await.unwrap();
    assert!(
        text.contains("proposal_finished") && text.contains("executed"),
        "{text}"
    );
    assert_eq!(served_version(&admin, "app.txt").await, 2);
}
