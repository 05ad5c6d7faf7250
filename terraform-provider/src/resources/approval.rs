//! Release changes in environments that require approval (contract section 7), shared by
//! `conflux_release` and `conflux_release_policy`.
//!
//! There, `PUT releases`, `publish` and a `stable_only` rollback answer 202: the change became
//! a proposal and nothing changed for clients yet (the client reports
//! `ClientError::PendingApproval`). The resource then waits for the proposal: it polls
//! `GET /api/v1/mgt/proposals/{id}` (after 1 s, then every 2 s) until it is no longer
//! pending, for at most the operation's timeout from the resource's `timeouts` block
//! (Terraform's convention: `create`, `update`, `delete` as durations, "20m" by default).
//! `executed` finishes the operation normally; any other end, the timeout, or Terraform
//! asking the provider to stop (Ctrl-C) is an error naming the proposal (see
//! `client_errors::proposal_*`).

use std::time::Duration;

use conflux_api_types::{ProposalAccepted, ProposalView};
use conflux_client::ClientError;

use super::Outcome;
use crate::api::Api;
use crate::client_errors;
use crate::protocol::diag::{Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Block};
use crate::protocol::value::{Obj, Type};

/// The wait for a proposal when the `timeouts` block does not set one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// The first look at a new proposal, then the interval between looks.
const FIRST_POLL: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_secs(2);

/// An operation that may wait for a proposal: names the attribute of the `timeouts` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// The `timeouts` block of a resource whose `ops` may wait for an approval.
pub fn timeouts_block(ops: &[Operation]) -> Block {
    ops.iter().fold(
        Block::new(
            "How long an operation waits for the approval of its proposal in an environment \
             that requires approval (default \"20m\"). Durations like \"90s\", \"20m\", \"1h30m\".",
        ),
        |b, op| {
            b.attr(Attribute::optional(
                op.name(),
                Type::String,
                match op {
                    Operation::Create => "How long a create waits for approval.",
                    Operation::Update => "How long an update waits for approval.",
                    Operation::Delete => "How long a destroy waits for approval.",
                },
            ))
        },
    )
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{text:?} is not a duration like \"90s\", \"20m\" or \"1h30m\": {e}")
    })?;
    if d.is_zero() {
        return Err(format!("{text:?}: the timeout must be more than zero"));
    }
    Ok(d)
}

/// Plan-time check of the `timeouts` block.
pub fn validate_timeouts(config: &Obj, ops: &[Operation], diags: &mut Diagnostics) {
    let Ok(Some(t)) = config.opt_obj("timeouts") else {
        return;
    };
    for op in ops {
        if let Some(text) = t.known_str(op.name())
            && let Err(e) = parse_duration(text)
        {
            diags.push(Diagnostic::error("Invalid timeout", e).at(t.attr_path(op.name())));
        }
    }
}

/// The timeout of `op` in `obj`'s `timeouts` block, or the default.
pub fn timeout(obj: &Obj, op: Operation) -> Outcome<Duration> {
    let Some(t) = obj.opt_obj("timeouts")? else {
        return Ok(DEFAULT_TIMEOUT);
    };
    match t.opt_str(op.name())? {
        None => Ok(DEFAULT_TIMEOUT),
        Some(text) => parse_duration(text).map_err(|e| {
            Diagnostic::error("Invalid timeout", e)
                .at(t.attr_path(op.name()))
                .into()
        }),
    }
}

/// The `timeouts` block as the state keeps it: what the configuration said.
pub fn keep_timeouts(state: Obj, like: &Obj) -> Obj {
    state.with("timeouts", like.get("timeouts").clone())
}

/// Whether a proposal is still waiting for its decision.
fn is_pending(p: &ProposalView) -> bool {
    matches!(p.status.as_str(), "pending" | "approved")
}

/// Waits until `accepted`'s proposal is decided, at most `limit`. `Ok` when it executed;
/// otherwise the error diagnostic of `action` ("publish conflux_release") naming it.
pub async fn wait_executed(
    api: &Api,
    action: &str,
    accepted: &ProposalAccepted,
    limit: Duration,
) -> Outcome<ProposalView> {
    let id = accepted.proposal_id;
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = FIRST_POLL;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(client_errors::proposal_timeout(action, id, limit).into());
        }
        tokio::select! {
            () = tokio::time::sleep(pause.min(deadline - now)) => {}
            () = api.stopped() => {
                return Err(client_errors::proposal_stopped(action, id).into());
            }
        }
        pause = POLL;
        let p = match api.retry(|| api.client.get_proposal(id)).await {
            Ok(p) => p,
            // Reads of the proposal that fail for a while (a leader change) are retried by
            // `retry`; anything else ends the wait.
            Err(e) => {
                let mut d: Diagnostics = client_errors::diagnostic(
                    &format!("read proposal {id} of {action}"),
                    &e,
                    &Block::default(),
                    &[],
                )
                .into();
                d.push(client_errors::proposal_timeout_note(id));
                return Err(d);
            }
        };
        if is_pending(&p) {
            continue;
        }
        if p.status == "executed" {
            return Ok(p);
        }
        return Err(client_errors::proposal_ended(action, &p).into());
    }
}

/// Runs a release write; when it became a proposal, waits for it as [`wait_executed`] does.
/// `Ok(Some(t))`: the write applied at once with answer `t`; `Ok(None)`: its proposal
/// executed (read the result back). Other errors are `Err(Left)` for the caller to map.
pub async fn write_or_wait<T>(
    api: &Api,
    action: &str,
    limit: Duration,
    result: Result<T, ClientError>,
) -> Result<Option<T>, WriteError> {
    match result {
        Ok(t) => Ok(Some(t)),
        Err(ClientError::PendingApproval(accepted)) => {
            wait_executed(api, action, &accepted, limit)
                .await
                .map_err(WriteError::Proposal)?;
            Ok(None)
        }
        Err(e) => Err(WriteError::Api(e)),
    }
}

/// Why [`write_or_wait`] failed.
#[derive(Debug)]
pub enum WriteError {
    /// The write itself failed: the caller maps it with its resource's schema.
    Api(ClientError),
    /// Its proposal did not execute (diagnostics ready).
    Proposal(Diagnostics),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::value::Value;

    fn timeouts_value(pairs: &[(&str, &str)]) -> Value {
        let mut o = Obj::new();
        for (k, v) in pairs {
            o.set(k, Value::string(*v));
        }
        o.into_value()
    }

    #[test]
    fn timeouts_default_and_parse() {
        let none = Obj::new();
        assert_eq!(timeout(&none, Operation::Create).unwrap(), DEFAULT_TIMEOUT);
        let o = Obj::new().with(
            "timeouts",
            timeouts_value(&[("create", "90s"), ("update", "1h30m")]),
        );
        assert_eq!(
            timeout(&o, Operation::Create).unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            timeout(&o, Operation::Update).unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(timeout(&o, Operation::Delete).unwrap(), DEFAULT_TIMEOUT);
    }

    #[test]
    fn bad_timeouts_fail_the_plan_at_their_attribute() {
        let o = Obj::new().with(
            "timeouts",
            timeouts_value(&[("create", "soon"), ("update", "0s")]),
        );
        let mut d = Diagnostics::default();
        validate_timeouts(&o, &[Operation::Create, Operation::Update], &mut d);
        let at: Vec<String> =
            d.0.iter()
                .map(|x| x.attribute.as_ref().unwrap().to_string())
                .collect();
        assert_eq!(at, ["timeouts.create", "timeouts.update"]);
    }
}
