//! The approval workflow in apply (contract section 7): release changes in an environment
//! that requires approval become proposals; approvals execute them when they reach
//! `min_approvals`, against the revision they were proposed for; every decision is
//! deterministic, survives a rebuild from `to_changes()`, and raises its webhook events.

use bytes::Bytes;
use conflux_domain::audit::{describe, webhook_events};
use conflux_domain::{
    ApprovalSettings, Command, ConfigId, ConfigPath, DomainError, Format, Proposal, ProposalAction,
    ProposalStatus, ProposedChange, PublishStrategy, QuotasPatch, ReleaseProposal, ReleaseRule,
    Response, RollbackMode, State,
};

const T0: u64 = 1_700_000_000_000;

struct World {
    state: State,
    rev: u64,
}

impl World {
    /// `acme/web/prod/app.json` in an environment with these approval settings, with
    /// version 1 released as the default.
    fn new(approval: ApprovalSettings) -> (World, ConfigId) {
        let mut w = World {
            state: State::new(),
            rev: 0,
        };
        w.ok(
            "admin",
            Command::CreateTenant {
                name: "acme".into(),
                display_name: None,
                quotas: QuotasPatch::default(),
            },
        );
        w.ok(
            "admin",
            Command::CreateApp {
                tenant: "acme".into(),
                name: "web".into(),
                description: None,
            },
        );
        w.ok(
            "admin",
            Command::CreateEnvironment {
                tenant: "acme".into(),
                app: "web".into(),
                name: "prod".into(),
                description: None,
                approval: None,
            },
        );
        let id = match w.ok(
            "admin",
            Command::CreateConfig {
                path: ConfigPath::new("acme", "web", "prod", "app.json"),
                format: Format::Json,
                schema: None,
                retention: None,
                description: None,
                encrypted: false,
            },
        ) {
            Response::Config(c) => c.id,
            other => panic!("{other:?}"),
        };
        w.ok("alice", publish(id, b"{\"v\":1}"));
        w.ok(
            "admin",
            Command::UpdateEnvironment {
                tenant: "acme".into(),
                app: "web".into(),
                name: "prod".into(),
                description: None,
                approval: Some(approval),
            },
        );
        (w, id)
    }

    fn apply(&mut self, author: &str, command: Command) -> Result<Response, DomainError> {
        self.rev += 1;
        let mut p = Proposal::new(T0 + self.rev * 1000, command);
        p.author = Some(author.to_owned());
        let bytes = rmp_serde::to_vec_named(&p).unwrap();
        let p: Proposal = rmp_serde::from_slice(&bytes).unwrap();
        let before: Vec<_> = self.state.to_changes().collect();
        let decision = self.state.apply(self.rev, &p);
        if decision.outcome.is_err() {
            let after: Vec<_> = self.state.to_changes().collect();
            assert_eq!(before, after, "a rejected command changed the state");
        }
        decision.outcome
    }

    fn ok(&mut self, author: &str, command: Command) -> Response {
        let shown = format!("{command:?}");
        self.apply(author, command)
            .unwrap_or_else(|e| panic!("{shown} failed: {e:?}"))
    }

    fn default_version(&self, id: ConfigId) -> u64 {
        let c = self.state.config(id).unwrap();
        c.rules.iter().find(|r| r.is_default()).unwrap().version_id
    }

    /// The state rebuilt from its own records equals it, digest included.
    fn check_rebuild(&self) {
        let mut rebuilt = State::new();
        for change in self.state.to_changes() {
            rebuilt.apply_change(change);
        }
        rebuilt.set_counters(self.state.counters());
        assert_eq!(rebuilt.digest(), self.state.digest());
        for p in self.state.proposals() {
            assert_eq!(rebuilt.proposal(p.id), Some(p));
        }
    }
}

fn required(min_approvals: u32) -> ApprovalSettings {
    ApprovalSettings {
        required: true,
        min_approvals,
        allow_self_approval: false,
    }
}

fn publish(id: ConfigId, content: &[u8]) -> Command {
    Command::Publish {
        config_id: id,
        content: Bytes::copy_from_slice(content),
        description: None,
        strategy: PublishStrategy::Stable,
        sealed: None,
    }
}

fn approve(id: u64) -> Command {
    Command::ApproveProposal {
        id,
        comment: Some("looks good".into()),
    }
}

fn rollback(id: ConfigId, version: u64, mode: RollbackMode, break_glass: bool) -> Command {
    Command::Rollback {
        config_id: id,
        version_id: version,
        mode,
        break_glass,
    }
}

fn proposed(r: Response) -> ReleaseProposal {
    match r {
        Response::Proposed { proposal, .. } => *proposal,
        other => panic!("expected a proposal, got {other:?}"),
    }
}

fn decided(r: Response) -> ReleaseProposal {
    match r {
        Response::Proposal { proposal, .. } => *proposal,
        other => panic!("expected a decided proposal, got {other:?}"),
    }
}

#[test]
fn publish_becomes_a_proposal_that_an_approval_executes() {
    let (mut w, id) = World::new(required(1));
    let revision_before = w.state.config(id).unwrap().revision;
    let r = w.ok("alice", publish(id, b"{\"v\":2}"));
    let Response::Proposed { proposal, version } = r else {
        panic!("publish in an approval-required environment must propose");
    };
    // The version exists (creating versions needs no approval); nothing is released.
    assert_eq!(version.unwrap().version, 2);
    assert_eq!(w.default_version(id), 1);
    assert_eq!(proposal.status, ProposalStatus::Pending);
    assert_eq!(proposal.proposer, "alice");
    assert!(proposal.base_revision > revision_before);
    assert_eq!(
        proposal.change,
        ProposedChange::Publish {
            version_id: 2,
            strategy: PublishStrategy::Stable
        }
    );
    w.check_rebuild();

    let done = decided(w.ok("bob", approve(proposal.id)));
    assert_eq!(done.status, ProposalStatus::Executed);
    assert_eq!(w.default_version(id), 2);
    let steps: Vec<_> = done.history.iter().map(|h| h.action).collect();
    assert_eq!(
        steps,
        [
            ProposalAction::Created,
            ProposalAction::Approved,
            ProposalAction::Executed
        ]
    );
    assert_eq!(done.approvals[0].approver, "bob");
    assert_eq!(done.approvals[0].comment.as_deref(), Some("looks good"));
    assert!(w.state.pending_proposal(id).is_none());
    w.check_rebuild();

    // A replayed approval (an external callback sent twice) changes nothing and says so.
    let again = w.apply("carol", approve(proposal.id)).unwrap_err();
    assert_eq!(again.code(), "proposal_finished");
    assert!(again.to_string().contains("executed"), "{again}");
}

#[test]
fn set_releases_and_stable_rollback_propose_and_one_pending_proposal_per_config() {
    let (mut w, id) = World::new(required(1));
    w.ok(
        "alice",
        Command::CreateVersion {
            config_id: id,
            content: Bytes::from_static(b"{\"v\":2}"),
            description: None,
            sealed: None,
        },
    );
    let first = proposed(w.ok(
        "alice",
        Command::SetReleases {
            config_id: id,
            rules: vec![ReleaseRule::default_to(2)],
            comment: Some("v2".into()),
        },
    ));
    assert_eq!(w.default_version(id), 1);

    let second = w
        .apply("bob", rollback(id, 1, RollbackMode::StableOnly, false))
        .unwrap_err();
    assert_eq!(second.code(), "proposal_pending");
    assert!(
        second.to_string().contains(&first.id.to_string()),
        "{second}"
    );

    // Invalid rules are refused at once, not turned into a proposal that can only fail.
    let cancel = Command::CancelProposal {
        id: first.id,
        comment: None,
        by_admin: false,
    };
    let canceled = decided(w.ok("alice", cancel));
    assert_eq!(canceled.status, ProposalStatus::Canceled);
    let bad = w
        .apply(
            "alice",
            Command::SetReleases {
                config_id: id,
                rules: vec![ReleaseRule::default_to(9)],
                comment: None,
            },
        )
        .unwrap_err();
    assert_eq!(bad.code(), "unknown_version");

    let rb = proposed(w.ok("alice", rollback(id, 2, RollbackMode::StableOnly, false)));
    assert_eq!(
        decided(w.ok("bob", approve(rb.id))).status,
        ProposalStatus::Executed
    );
    assert_eq!(w.default_version(id), 2);
    w.check_rebuild();
}

#[test]
fn self_approval_double_approval_and_min_approvals() {
    let (mut w, id) = World::new(required(2));
    let p = proposed(w.ok("alice", publish(id, b"{\"v\":2}")));

    let own = w.apply("alice", approve(p.id)).unwrap_err();
    assert_eq!(own.code(), "self_approval_forbidden");

    let one = decided(w.ok("bob", approve(p.id)));
    assert_eq!(one.status, ProposalStatus::Pending, "one of two approvals");
    assert_eq!(w.default_version(id), 1);
    let twice = w.apply("bob", approve(p.id)).unwrap_err();
    assert_eq!(twice.code(), "already_approved");

    let two = decided(w.ok("carol", approve(p.id)));
    assert_eq!(two.status, ProposalStatus::Executed);
    let approvers: Vec<_> = two.approvals.iter().map(|a| a.approver.as_str()).collect();
    assert_eq!(approvers, ["bob", "carol"]);
    assert_eq!(w.default_version(id), 2);
}

#[test]
fn self_approval_is_allowed_when_the_environment_says_so() {
    let (mut w, id) = World::new(ApprovalSettings {
        allow_self_approval: true,
        ..required(1)
    });
    let p = proposed(w.ok("alice", publish(id, b"{\"v\":2}")));
    assert_eq!(
        decided(w.ok("alice", approve(p.id))).status,
        ProposalStatus::Executed
    );
}

#[test]
fn an_emergency_rollback_breaks_glass_and_the_pending_proposal_goes_stale() {
    let (mut w, id) = World::new(required(1));
    let p = proposed(w.ok("alice", publish(id, b"{\"v\":2}")));

    // Break glass: applies at once, and its audit subject carries the mark.
    let command = rollback(id, 1, RollbackMode::Emergency, true);
    assert!(describe(&w.state, &command).unwrap().break_glass);
    assert!(matches!(w.ok("admin", command), Response::Config(_)));
    let revision_after_rollback = w.state.config(id).unwrap().revision;

    let failed = decided(w.ok("bob", approve(p.id)));
    assert_eq!(failed.status, ProposalStatus::Failed);
    let reason = failed.reason.as_deref().unwrap();
    assert!(reason.starts_with("stale"), "{reason}");
    assert_eq!(w.default_version(id), 1, "a stale proposal changes nothing");
    assert_eq!(
        w.state.config(id).unwrap().revision,
        revision_after_rollback
    );
    w.check_rebuild();

    // Without the mark (a publisher's emergency rollback), it is a proposal like any other.
    let proposal = proposed(w.ok("alice", rollback(id, 2, RollbackMode::Emergency, false)));
    assert_eq!(proposal.status, ProposalStatus::Pending);
}

#[test]
fn only_the_proposer_or_an_admin_cancels_and_reject_finishes() {
    let (mut w, id) = World::new(required(1));
    let p = proposed(w.ok("alice", publish(id, b"{\"v\":2}")));
    let cancel = |by_admin| Command::CancelProposal {
        id: p.id,
        comment: None,
        by_admin,
    };
    assert_eq!(
        w.apply("bob", cancel(false)).unwrap_err().code(),
        "forbidden"
    );
    let rejected = decided(w.ok(
        "bob",
        Command::RejectProposal {
            id: p.id,
            comment: Some("not today".into()),
        },
    ));
    assert_eq!(rejected.status, ProposalStatus::Rejected);
    assert_eq!(
        rejected.history.last().unwrap().comment.as_deref(),
        Some("not today")
    );
    assert_eq!(
        w.apply("admin", cancel(true)).unwrap_err().code(),
        "proposal_finished"
    );

    let q = proposed(w.ok("alice", rollback(id, 1, RollbackMode::StableOnly, false)));
    let by_admin = Command::CancelProposal {
        id: q.id,
        comment: None,
        by_admin: true,
    };
    assert_eq!(
        decided(w.ok("admin", by_admin)).status,
        ProposalStatus::Canceled
    );
    assert_eq!(
        w.apply("bob", approve(999)).unwrap_err().code(),
        "proposal_not_found"
    );
}

#[test]
fn finished_proposals_are_kept_up_to_the_limit_and_go_with_their_config() {
    let (mut w, id) = World::new(required(1));
    let limit = conflux_domain::proposal::MAX_FINISHED_PROPOSALS_PER_CONFIG;
    let mut ids = Vec::new();
    for _ in 0..limit + 3 {
        let p = proposed(w.ok("alice", rollback(id, 1, RollbackMode::StableOnly, false)));
        w.ok(
            "bob",
            Command::RejectProposal {
                id: p.id,
                comment: None,
            },
        );
        ids.push(p.id);
    }
    let kept: Vec<_> = w.state.proposals_of(id).map(|p| p.id).collect();
    assert_eq!(kept, ids[3..], "the oldest finished proposals are dropped");
    w.check_rebuild();

    let pending = proposed(w.ok("alice", rollback(id, 1, RollbackMode::StableOnly, false)));
    w.ok("admin", Command::DeleteConfig { id });
    assert!(w.state.proposal(pending.id).is_none());
    assert_eq!(w.state.proposals().count(), 0);
    w.check_rebuild();
}

#[test]
fn approvals_raise_their_webhook_events() {
    let (mut w, id) = World::new(required(1));
    let command = publish(id, b"{\"v\":2}");
    let outcome = w.apply("alice", command.clone());
    assert_eq!(
        webhook_events(&command, &outcome),
        ["version.created", "proposal.created"]
    );
    let p = proposed(outcome.unwrap());
    let command = approve(p.id);
    let outcome = w.apply("bob", command.clone());
    assert_eq!(
        webhook_events(&command, &outcome),
        ["proposal.approved", "proposal.executed", "release.changed"]
    );
    let replay = w.apply("bob", command.clone());
    assert!(webhook_events(&command, &replay).is_empty());
}

#[test]
fn counters_leave_out_the_proposal_id_until_the_first_proposal() {
    // So that a state without proposals encodes (and digests) as it did before proposals
    // existed, and nodes of both versions agree during a rolling upgrade.
    let encoded_counters = |w: &World| {
        let encoded = rmp_serde::to_vec_named(&w.state.counters()).unwrap();
        String::from_utf8_lossy(&encoded).contains("next_proposal_id")
    };
    let (mut w, id) = World::new(required(1));
    assert!(!encoded_counters(&w));
    w.ok("alice", publish(id, b"{\"v\":2}"));
    assert!(encoded_counters(&w));
    assert_eq!(w.state.counters().next_proposal_id, 2);
}
