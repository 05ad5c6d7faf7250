//! `GET /api/v1/mgt/kms` (which KEKs wrap how many data keys) and
//! `POST /api/v1/mgt/kms/rewrap` (rewrap every data key under the current KEK).
//!
//! A rewrap runs on the node that receives it, in batches: read the sealed versions whose
//! key another KEK wrapped, rewrap them through the KMS, propose one `RewrapKeys` command per
//! batch. The command replaces a key only if it is still the one the batch read, so a batch
//! that is retried, races another rewrap or outlives a leader change changes nothing twice;
//! a request that stops half-way leaves every version readable, and the next one carries on
//! from what is left. cluster_admin only (the cluster routes' layer checks and audits it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use conflux_api_types::{KmsRewrapped, KmsStatus};
use conflux_domain::{Command, Response as Outcome, Rewrap, WrappedKey};

use super::AppState;
use super::access::Caller;
use super::error::ApiError;
use super::extract::WriteOptions;
use super::mgt::{ApiResult, ok, unexpected};

/// Keys per `RewrapKeys` command: small entries, and progress survives an interruption.
const BATCH: usize = 64;
/// How long a rewrap keeps retrying a batch the cluster could not take (no leader, a
/// leader change); after that it answers the error and a later request carries on.
const RETRY_FOR: Duration = Duration::from_secs(30);

fn wrapped_by_kek(app: &AppState) -> BTreeMap<String, u64> {
    app.plane().read(|s| {
        let mut by = BTreeMap::new();
        for v in s.sealed_versions() {
            if let Some(seal) = &v.seal {
                *by.entry(seal.key.kek_id.clone()).or_default() += 1;
            }
        }
        by
    })
}

fn status(app: &AppState) -> KmsStatus {
    KmsStatus {
        current_kek_id: app.kms().current_kek_id().to_owned(),
        data_keys_by_kek: wrapped_by_kek(app),
    }
}

pub async fn get_status(State(app): State<AppState>) -> ApiResult {
    ok(status(&app))
}

pub async fn rewrap(State(app): State<AppState>, caller: Caller, opts: WriteOptions) -> ApiResult {
    // Every batch is its own command: a client's idempotency key would make the second
    // batch replay the first one's answer.
    let opts = opts.without_idempotency();
    let current = app.kms().current_kek_id().to_owned();
    let mut rewrapped = 0;
    loop {
        let stale: Vec<(u64, u64, WrappedKey)> = app.plane().read(|s| {
            s.sealed_versions()
                .filter_map(|v| {
                    let key = &v.seal.as_ref()?.key;
                    (key.kek_id != current).then(|| (v.config_id, v.version, key.clone()))
                })
                .take(BATCH)
                .collect()
        });
        if stale.is_empty() {
            break;
        }
        let mut keys = Vec::with_capacity(stale.len());
        for (config_id, version, from) in stale {
            if let Some(to) = app.kms().rewrap(&from).await? {
                keys.push(Rewrap {
                    config_id,
                    version,
                    from,
                    to,
                });
            }
        }
        let done = propose_batch(&app, &caller, &opts, keys).await?;
        if done == 0 {
            // Nothing this node read was still current when applied, and this node has
            // applied its own entry since: another rewrap is running. Let it finish.
            return Err(ApiError::Unavailable {
                code: "rewrap_in_progress",
                message: "another rewrap changed the same keys; try again when it is done".into(),
                retry_after_secs: 1,
            });
        }
        rewrapped += done;
    }
    let status = status(&app);
    ok(KmsRewrapped {
        rewrapped,
        remaining: status
            .data_keys_by_kek
            .iter()
            .filter(|(kek, _)| **kek != status.current_kek_id)
            .map(|(_, n)| n)
            .sum(),
        status,
    })
}

async fn propose_batch(
    app: &AppState,
    caller: &Caller,
    opts: &WriteOptions,
    keys: Vec<Rewrap>,
) -> Result<u64, ApiError> {
    let started = Instant::now();
    loop {
        let command = Command::RewrapKeys { keys: keys.clone() };
        match app.propose(caller, opts, &[], command).await {
            Ok(applied) => match applied.response {
                Outcome::Rewrapped { rewrapped, .. } => return Ok(rewrapped),
                other => return Err(unexpected("rewrap", &other)),
            },
            Err(e)
                if e.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE
                    && started.elapsed() < RETRY_FOR =>
            {
                tracing::info!(error = %e, "rewrap batch not taken; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
