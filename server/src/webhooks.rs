//! Webhooks (contract section 7): turning committed changes into deliveries, and sending them
//! at least once.
//!
//! **Where deliveries come from (the outbox pattern).** Apply records, for every committed
//! change, the webhook events it raises in its audit record (`AuditEntry::events`, written to
//! the `audit_outbox` column family in the same RocksDB batch as the change). The leader's
//! outbox drain ([`crate::audit::drain_outbox`]) calls [`enqueue`] after it inserted a batch
//! into the audit log and before the batch is trimmed through Raft: one delivery row per
//! (event, subscribed webhook) in the metadata DB, with an id derived from the outbox key, the
//! event and the webhook id ([`delivery_id`]), inserted with `ON CONFLICT DO NOTHING`. A leader
//! that dies after the commit but before the drain leaves the record in every node's outbox
//! for the next leader; one that dies after enqueuing but before the trim makes the next
//! leader enqueue the same ids again, which inserts nothing. Nothing is lost, nothing is
//! queued twice.
//!
//! **Sending ([`run`]).** Every node runs the worker; only the Raft leader sends (the same
//! test as the audit drain and the retention sweeper). It claims due deliveries from the DB
//! with a lease (a claimed row is not due again for [`LEASE`], so a slow send is not
//! duplicated by the next poll, and a node that dies mid-send leaves its rows due again when
//! the lease lapses) and sends at most [`WORKERS`] at once. A POST carries the stored JSON
//! body byte for byte at every attempt, `X-Conflux-Event`, `X-Conflux-Delivery` (the stable
//! delivery id: receivers dedupe on it, since two leaders overlapping for a moment, or a
//! leader dying between the receiver's answer and recording it, send twice) and
//! `X-Conflux-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`. Connect timeout 5 s,
//! total 10 s; redirects are followed only when they keep the method and body (307/308) and
//! stay on the same scheme, host and port, at most 3 times; any other 3xx is a failed
//! attempt. A 2xx answer delivers; anything else retries after an exponential backoff with
//! jitter (1 s doubling, capped at 10 min, each delay drawn in its upper half) until 24 h
//! after the delivery was created, when the last attempt's failure makes it `failed`.
//! Settled deliveries are kept 7 days for the deliveries API, then purged by the leader.
//!
//! **Secrets are sealed with the node's KMS.** Decision: a webhook's secret is needed in the
//! clear to sign (it is an HMAC key), so it cannot be hashed like a token; it is
//! envelope-encrypted exactly like an encrypted config's content (AES-256-GCM under a fresh
//! data key wrapped by the KMS's current KEK, [`conflux_kms::Kms::seal`]) with associated
//! data binding the ciphertext to its webhook id, and only the sealed form (KEK id, wrapped
//! key, nonce, ciphertext) reaches the metadata DB. A database dump or a DB administrator
//! therefore learns no secret without the KEK; a sealed secret copied onto another webhook
//! fails authentication. Opening goes through the KMS's unwrapped-key cache, so signing costs
//! one KMS call per webhook per cache TTL at most. Not covered yet: `kms rewrap` does not
//! rewrap webhook secrets, so a KEK that sealed one must stay available (or the webhook be
//! registered again).
//!
//! `CONFLUX_TEST_WEBHOOK_RETRY_BASE_MS` replaces the 1 s base of the backoff, for tests only
//! (logged loudly when set), like the clock offset of [`crate::clock`].

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use conflux_api_types::{headers, rfc3339};
use conflux_domain::{Seal, WrappedKey};
use conflux_kms::{Kms, KmsError};
use conflux_metadata::{
    AttemptRecord, DeliveryOutcome, DueDelivery, MetadataError, NewDelivery, WebhookRecord,
};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore};

use crate::audit::{AuditEntry, outbox_key};
use crate::auth::MetadataLink;
use crate::clock::now_ms;
use crate::raft::Raft;

/// Deliveries sent at once by the leader.
pub const WORKERS: usize = 8;
/// How often the worker looks for due deliveries when nothing wakes it.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Connecting to a receiver.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt, from connecting to the end of the answer's headers.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery is not due again: well above one attempt's total time (and
/// the KMS calls opening its secret may take).
pub const LEASE: Duration = Duration::from_secs(30);
/// Deliveries are retried this long after their creation, then `failed`.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// The first retry delay (doubling from there).
pub const BASE_DELAY: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub const MAX_DELAY: Duration = Duration::from_secs(600);
/// Settled deliveries (and their attempts) are kept this long after their creation, for
/// `GET /api/v1/webhooks/{id}/deliveries`, then purged.
pub const KEEP_SETTLED: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the leader purges settled deliveries.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Redirects followed (same origin, 307/308 only).
const MAX_REDIRECTS: usize = 3;

/// Environment variable of the test hook that shortens the retry base delay.
pub const RETRY_BASE_ENV: &str = "CONFLUX_TEST_WEBHOOK_RETRY_BASE_MS";

/// Wakes the worker when the drain enqueued something or a send finished.
static WAKE: Notify = Notify::const_new();

fn base_delay() -> Duration {
    static BASE: OnceLock<Duration> = OnceLock::new();
    *BASE.get_or_init(|| {
        match std::env::var(RETRY_BASE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(ms) => {
                tracing::warn!(
                    base_ms = ms,
                    "{RETRY_BASE_ENV} is set: webhook retries use a test base delay"
                );
                Duration::from_millis(ms.max(1))
            }
            None => BASE_DELAY,
        }
    })
}

// ---- enqueueing ----------------------------------------------------------------------------

/// The id of the delivery of `event` raised by the outbox record `key` to `webhook_id`: the
/// same inputs always give the same id, so enqueuing again stores nothing new.
pub fn delivery_id(key: &str, event: &str, webhook_id: &str) -> String {
    let mut h = Sha256::new();
    for part in [key, event, webhook_id] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// Whether `webhook` wants `event` of a change under `tenant`.
pub fn subscribes(webhook: &WebhookRecord, event: &str, tenant: Option<&str>) -> bool {
    webhook.events.iter().any(|e| e == event)
        && match &webhook.tenant {
            None => true,
            Some(t) => tenant == Some(t.as_str()),
        }
}

/// The body of a delivery: `{"id", "event", "time", "tenant", "config", "revision", "data"}`.
pub fn payload(id: &str, event: &str, entry: &AuditEntry) -> String {
    let data: serde_json::Value =
        serde_json::from_str(&entry.details).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "id": id,
        "event": event,
        "time": rfc3339(entry.time_ms),
        "tenant": entry.tenant,
        "config": entry.resource,
        "revision": entry.revision,
        "data": data,
    })
    .to_string()
}

/// The deliveries `entries` (outbox records: log index, position, record) raise for
/// `webhooks`.
pub fn deliveries_for(
    entries: &[(u64, u32, AuditEntry)],
    webhooks: &[WebhookRecord],
) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    for (index, position, entry) in entries {
        if entry.events.is_empty() {
            continue;
        }
        let key = outbox_key(*index, *position);
        for event in &entry.events {
            for w in webhooks {
                if !subscribes(w, event, entry.tenant.as_deref()) {
                    continue;
                }
                let id = delivery_id(&key, event, &w.id);
                out.push(NewDelivery {
                    payload: payload(&id, event, entry),
                    id,
                    webhook_id: w.id.clone(),
                    event: event.clone(),
                    created_at_ms: now_ms() as i64,
                });
            }
        }
    }
    out
}

/// Called by the leader's outbox drain after the batch is in the audit log and before it is
/// trimmed: queues one delivery per event and subscribed webhook. Idempotent; an error means
/// the batch stays in the outbox and is enqueued again next round.
pub async fn enqueue(
    link: &MetadataLink,
    entries: &[(u64, u32, AuditEntry)],
) -> Result<u64, MetadataError> {
    if entries.iter().all(|(_, _, e)| e.events.is_empty()) {
        return Ok(0);
    }
    let store = link.store()?;
    let webhooks = store.list_webhooks().await;
    link.observe(&webhooks);
    let deliveries = deliveries_for(entries, &webhooks?);
    if deliveries.is_empty() {
        return Ok(0);
    }
    let inserted = store.enqueue_deliveries(&deliveries).await;
    link.observe(&inserted);
    let inserted = inserted?;
    if inserted > 0 {
        WAKE.notify_one();
    }
    Ok(inserted)
}

// ---- secrets and signatures ----------------------------------------------------------------

/// A secret as stored: everything needed to open it with the KMS, and nothing usable without.
#[derive(Serialize, Deserialize)]
struct SealedSecret {
    /// Format version.
    v: u8,
    kek: String,
    /// The wrapped data key, hex.
    key: String,
    nonce: String,
    ciphertext: String,
}

fn secret_aad(webhook_id: &str) -> Vec<u8> {
    let mut aad = b"conflux/webhook-secret/v1/".to_vec();
    aad.extend_from_slice(webhook_id.as_bytes());
    aad
}

/// Seals a webhook's secret for the metadata DB.
pub async fn seal_secret(kms: &Kms, webhook_id: &str, secret: &[u8]) -> Result<String, KmsError> {
    let sealed = kms.seal(secret, &secret_aad(webhook_id), None).await?;
    let seal = sealed.sealed.seal;
    let stored = SealedSecret {
        v: 1,
        kek: seal.key.kek_id,
        key: hex::encode(&seal.key.ciphertext),
        nonce: hex::encode(&seal.nonce),
        ciphertext: hex::encode(&sealed.ciphertext),
    };
    Ok(serde_json::to_string(&stored).expect("strings serialise"))
}

/// Opens a sealed secret of webhook `webhook_id`.
pub async fn open_secret(kms: &Kms, webhook_id: &str, sealed: &str) -> Result<Vec<u8>, KmsError> {
    let corrupt = || KmsError::Corrupt {
        what: "webhook secret",
    };
    let stored: SealedSecret = serde_json::from_str(sealed).map_err(|_| corrupt())?;
    if stored.v != 1 {
        return Err(corrupt());
    }
    let unhex = |s: &str| hex::decode(s).map_err(|_| corrupt());
    let seal = Seal {
        key: WrappedKey {
            kek_id: stored.kek,
            ciphertext: unhex(&stored.key)?.into(),
        },
        nonce: unhex(&stored.nonce)?.into(),
    };
    let ciphertext = unhex(&stored.ciphertext)?;
    Ok(kms
        .open(&seal, &ciphertext, &secret_aad(webhook_id))
        .await?
        .plaintext)
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, body).finalize().into_bytes())
    )
}

/// The 32 bytes of a `sha256=<64 hex digits>` signature, or `None` if it is not one.
pub fn parse_signature(signature: &str) -> Option<Vec<u8>> {
    let hex_part = signature.trim().strip_prefix("sha256=")?;
    let bytes = hex::decode(hex_part).ok()?;
    (bytes.len() == 32).then_some(bytes)
}

/// Whether `signature` (raw 32 bytes) is the HMAC of `body` under `secret`, compared in
/// constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: &[u8]) -> bool {
    mac(secret, body).verify_slice(signature).is_ok()
}

// ---- retries ------------------------------------------------------------------------------

/// The delay before the next attempt after `attempts` failed ones (1, 2, ...): `base`
/// doubling per attempt, capped at [`MAX_DELAY`], scaled into its upper half by `jitter` in
/// `[0, 1]` (so retries of many deliveries spread out, and never come sooner than half the
/// nominal delay).
pub fn retry_delay(attempts: i64, base: Duration, jitter: f64) -> Duration {
    let exp = attempts.clamp(1, 40) - 1;
    let nominal = base
        .checked_mul(1u32 << exp.min(31))
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY);
    nominal.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// What a failed attempt at `now_ms` means for a delivery created at `created_ms`: retry
/// after `delay`, never past the 24-hour mark; give up once the mark has passed.
pub fn after_failure(now_ms: i64, created_ms: i64, delay: Duration) -> DeliveryOutcome {
    let give_up_at = created_ms.saturating_add(RETRY_FOR.as_millis() as i64);
    if now_ms >= give_up_at {
        return DeliveryOutcome::Failed;
    }
    DeliveryOutcome::Retry {
        next_attempt_ms: now_ms
            .saturating_add(delay.as_millis() as i64)
            .min(give_up_at),
    }
}

fn jitter() -> f64 {
    let b = crate::auth::token::random_bytes::<4>();
    f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX)
}

// ---- sending ------------------------------------------------------------------------------

/// Whether deliveries may go to `ip`. Link-local addresses (169.254.0.0/16, fe80::/10: the
/// cloud metadata services live there) and unspecified ones never: a tenant_admin must not
/// turn the leader into a reader of its host's instance credentials. Loopback and private
/// networks stay allowed, since on-premises receivers live there.
pub fn deliverable(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => !(v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unicast_link_local() || v6.is_unspecified()),
    }
}

/// Resolves receivers' host names and keeps only addresses [`deliverable`] allows, so a name
/// that points at a link-local address (or is changed to, after registration) is refused at
/// connect time.
#[derive(Debug)]
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<std::net::SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| deliverable(a.ip()))
                .collect();
            if allowed.is_empty() && !all.is_empty() {
                return Err(format!(
                    "{host} resolves only to link-local or unspecified addresses, which webhooks \
                     may not reach"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Refuses a URL whose host is an IP literal [`deliverable`] does not allow (names are
/// checked by the resolver when connecting).
pub fn check_target(url: &reqwest::Url) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = literal.parse::<std::net::IpAddr>() else {
        return Ok(());
    };
    if deliverable(ip) {
        Ok(())
    } else {
        Err(format!(
            "{ip} is a link-local or unspecified address, which webhooks may not reach"
        ))
    }
}

/// The HTTP client of deliveries: ring TLS with the system trust store, the timeouts, and the
/// same-origin redirect policy.
pub fn http_client() -> Result<reqwest::Client, String> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| {
            first.scheme() == attempt.url().scheme()
                && first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        let keeps_body = matches!(attempt.status().as_u16(), 307 | 308);
        if same_origin && keeps_body && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    conflux_client::tls::reqwest_builder(&conflux_client::TlsOptions::new(), true)
        .map_err(|e| e.to_string())?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .redirect(policy)
        .dns_resolver(Arc::new(GuardedResolver))
        .user_agent(concat!("conflux-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// An error and its causes on one line (reqwest's top-level message alone says little).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out.chars().take(500).collect()
}

/// One POST of a delivery: the receiver's status, and an error unless it was 2xx.
async fn send(
    http: &reqwest::Client,
    due: &DueDelivery,
    secret: &[u8],
) -> (Option<u16>, Option<String>) {
    // A URL registered before this check existed, or an address literal in a redirect's
    // origin (redirects never leave the origin), is refused here as well.
    if let Err(why) = reqwest::Url::parse(&due.url)
        .map_err(|e| e.to_string())
        .and_then(|u| check_target(&u))
    {
        return (None, Some(format!("refused: {why}")));
    }
    let body = due.payload.clone().into_bytes();
    let signature = sign(secret, &body);
    let sent = http
        .post(&due.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(headers::EVENT, &due.event)
        .header(headers::DELIVERY, &due.id)
        .header(headers::SIGNATURE, signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status();
            // The body is not needed; dropping the answer closes or reuses the connection.
            drop(resp);
            if status.is_success() {
                (Some(status.as_u16()), None)
            } else {
                (
                    Some(status.as_u16()),
                    Some(format!("the receiver answered HTTP {status}")),
                )
            }
        }
        Err(e) => {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else if e.is_redirect() {
                "redirect refused"
            } else {
                "request failed"
            };
            (
                e.status().map(|s| s.as_u16()),
                Some(format!("{what}: {}", describe(&e))),
            )
        }
    }
}

/// Sends one claimed delivery and records the attempt.
async fn deliver(http: reqwest::Client, link: Arc<MetadataLink>, kms: Arc<Kms>, due: DueDelivery) {
    let at_ms = now_ms() as i64;
    let started = Instant::now();
    let (status_code, error) = match open_secret(&kms, &due.webhook_id, &due.secret_sealed).await {
        Ok(secret) => send(&http, &due, &secret).await,
        Err(e) => (None, Some(format!("cannot open the webhook's secret: {e}"))),
    };
    let duration_ms = started.elapsed().as_millis() as i64;
    let attempts = due.attempt_count + 1;
    let outcome = match &error {
        None => DeliveryOutcome::Delivered {
            at_ms: now_ms() as i64,
        },
        Some(_) => after_failure(
            now_ms() as i64,
            due.created_at_ms,
            retry_delay(attempts, base_delay(), jitter()),
        ),
    };
    match &outcome {
        DeliveryOutcome::Delivered { .. } => {
            tracing::debug!(delivery = %due.id, webhook = %due.webhook_id, event = %due.event, "webhook delivered")
        }
        DeliveryOutcome::Retry { next_attempt_ms } => tracing::info!(
            delivery = %due.id,
            webhook = %due.webhook_id,
            attempt = attempts,
            retry_in_ms = next_attempt_ms - now_ms() as i64,
            error = error.as_deref().unwrap_or_default(),
            "webhook delivery failed; will retry"
        ),
        DeliveryOutcome::Failed => tracing::warn!(
            delivery = %due.id,
            webhook = %due.webhook_id,
            attempts,
            error = error.as_deref().unwrap_or_default(),
            "webhook delivery failed for 24 hours; giving up"
        ),
    }
    let attempt = AttemptRecord {
        time_ms: at_ms,
        status_code: status_code.map(i64::from),
        error,
        duration_ms,
    };
    let recorded = match link.store() {
        Ok(store) => store.record_attempt(&due.id, &attempt, outcome).await,
        Err(e) => Err(e),
    };
    link.observe(&recorded);
    if let Err(e) = recorded {
        // The claim lapses and the delivery is sent again: at least once.
        tracing::warn!(delivery = %due.id, error = %e, "cannot record a webhook delivery attempt");
    }
}

/// The delivery worker of a node, until `stop` resolves: while this node leads, claims due
/// deliveries and sends them, [`WORKERS`] at a time.
pub async fn run(
    raft: Raft,
    node_id: u64,
    link: Arc<MetadataLink>,
    kms: Arc<Kms>,
    stop: impl std::future::Future<Output = ()>,
) {
    let http = match http_client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are not delivered by this node");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(WORKERS));
    let mut last_purge: Option<Instant> = None;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = WAKE.notified() => {}
            _ = tokio::time::sleep(POLL_EVERY) => {}
        }
        if raft.metrics().borrow().current_leader != Some(node_id) {
            continue;
        }
        let free = slots.available_permits();
        if free == 0 {
            continue;
        }
        let Ok(store) = link.store() else { continue };
        let now = now_ms() as i64;
        if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
            last_purge = Some(Instant::now());
            let purged = store
                .purge_settled_deliveries(now - KEEP_SETTLED.as_millis() as i64)
                .await;
            link.observe(&purged);
            match purged {
                Ok(0) => {}
                Ok(n) => tracing::info!(deliveries = n, "purged settled webhook deliveries"),
                Err(e) => tracing::debug!(error = %e, "webhook deliveries not purged this time"),
            }
        }
        let claimed = store
            .claim_deliveries(now, now + LEASE.as_millis() as i64, free as u32)
            .await;
        link.observe(&claimed);
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "webhook deliveries wait for the metadata DB");
                continue;
            }
        };
        for due in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (http, link, kms) = (http.clone(), link.clone(), kms.clone());
            tokio::spawn(async move {
                deliver(http, link, kms, due).await;
                drop(permit);
                // A slot is free: look for more right away.
                WAKE.notify_one();
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_unspecified_targets_are_refused_others_allowed() {
        let refused = [
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "fe80::1",
            "::",
            "::ffff:169.254.169.254",
        ];
        for ip in refused {
            assert!(!deliverable(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.10",
            "::1",
            "2001:db8::1",
            "8.8.8.8",
        ] {
            assert!(deliverable(ip.parse().unwrap()), "{ip} must be allowed");
        }
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(check_target(&url("http://169.254.169.254/x")).is_err());
        assert!(check_target(&url("http://[fe80::1]:8080/")).is_err());
        assert!(check_target(&url("http://127.0.0.1:9/hook")).is_ok());
        assert!(check_target(&url("https://hooks.example.com/")).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_link_local_answers() {
        use reqwest::dns::Resolve;
        let resolve =
            |host: &'static str| GuardedResolver.resolve(host.parse().expect("a host name"));
        let local: Vec<_> = resolve("localhost").await.unwrap().collect();
        assert!(!local.is_empty() && local.iter().all(|a| a.ip().is_loopback()));
        let refused = resolve("169.254.169.254").await.err().expect("refused");
        assert!(refused.to_string().contains("link-local"), "{refused}");
    }

    fn entry(tenant: Option<&str>, events: &[&str]) -> AuditEntry {
        AuditEntry {
            time_ms: 1_700_000_000_000,
            actor: "user:alice".into(),
            action: "version.create".into(),
            resource: "acme/shop/prod/app.json".into(),
            tenant: tenant.map(str::to_owned),
            app: None,
            env: None,
            outcome: "success".into(),
            reason: None,
            revision: Some(42),
            request_id: String::new(),
            source_ip: String::new(),
            user_agent: String::new(),
            details: r#"{"version_id":3}"#.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn hook(id: &str, tenant: Option<&str>, events: &[&str]) -> WebhookRecord {
        WebhookRecord {
            id: id.into(),
            name: id.into(),
            url: "http://127.0.0.1:1/".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            tenant: tenant.map(str::to_owned),
            secret_sealed: String::new(),
            created_at_ms: 0,
            created_by: "user:a".into(),
        }
    }

    #[test]
    fn delivery_ids_are_stable_and_distinct() {
        let a = delivery_id("raft:5:0", "version.created", "w1");
        assert_eq!(a, delivery_id("raft:5:0", "version.created", "w1"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, delivery_id("raft:5:1", "version.created", "w1"));
        assert_ne!(a, delivery_id("raft:5:0", "release.changed", "w1"));
        assert_ne!(a, delivery_id("raft:5:0", "version.created", "w2"));
        // Length-prefixed parts: moving a boundary changes the id.
        assert_ne!(delivery_id("ab", "c", "d"), delivery_id("a", "bc", "d"));
    }

    #[test]
    fn fan_out_by_event_and_tenant() {
        let hooks = [
            hook("all", None, &["version.created", "release.changed"]),
            hook("acme", Some("acme"), &["release.changed"]),
            hook(
                "other",
                Some("other"),
                &["release.changed", "version.created"],
            ),
        ];
        let entries = vec![
            (
                7,
                0,
                entry(Some("acme"), &["version.created", "release.changed"]),
            ),
            (7, 1, entry(Some("acme"), &[])),
        ];
        let out = deliveries_for(&entries, &hooks);
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|d| (d.webhook_id.as_str(), d.event.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("all", "version.created"),
                ("all", "release.changed"),
                ("acme", "release.changed")
            ]
        );
        // The same records give the same ids (a re-drain enqueues nothing new).
        let again = deliveries_for(&entries, &hooks);
        let ids = |v: &[NewDelivery]| v.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&out), ids(&again));
        let body: serde_json::Value = serde_json::from_str(&out[0].payload).unwrap();
        assert_eq!(body["id"], out[0].id.as_str());
        assert_eq!(body["event"], "version.created");
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["config"], "acme/shop/prod/app.json");
        assert_eq!(body["revision"], 42);
        assert_eq!(body["data"]["version_id"], 3);
        assert_eq!(body["time"], rfc3339(1_700_000_000_000));
    }

    #[test]
    fn signatures() {
        let secret = b"0123456789abcdef";
        let body = br#"{"a":1}"#;
        let sig = sign(secret, body);
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), 7 + 64);
        let raw = parse_signature(&sig).unwrap();
        assert!(verify(secret, body, &raw));
        assert!(!verify(b"another secret!!", body, &raw));
        assert!(!verify(secret, br#"{"a":2}"#, &raw));
        for bad in [
            "",
            "sha256=",
            "sha1=00",
            "sha256=zz",
            &sig[..sig.len() - 2],
            &sig[7..],
        ] {
            assert!(parse_signature(bad).is_none(), "{bad}");
        }
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_cap() {
        let base = Duration::from_secs(1);
        assert_eq!(retry_delay(1, base, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(1, base, 0.0), Duration::from_millis(500));
        assert_eq!(retry_delay(2, base, 1.0), Duration::from_secs(2));
        assert_eq!(retry_delay(5, base, 1.0), Duration::from_secs(16));
        assert_eq!(retry_delay(11, base, 1.0), MAX_DELAY);
        assert_eq!(retry_delay(1_000, base, 1.0), MAX_DELAY);
        assert_eq!(retry_delay(1_000, base, 0.0), MAX_DELAY / 2);
        let d = retry_delay(3, base, 0.3);
        assert!(
            d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
            "{d:?}"
        );
    }

    #[test]
    fn gives_up_after_a_day() {
        let day = RETRY_FOR.as_millis() as i64;
        let d = Duration::from_secs(60);
        assert_eq!(
            after_failure(1_000, 0, d),
            DeliveryOutcome::Retry {
                next_attempt_ms: 61_000
            }
        );
        // The last retry lands on the 24-hour mark, not past it.
        assert_eq!(
            after_failure(day - 10, 0, d),
            DeliveryOutcome::Retry {
                next_attempt_ms: day
            }
        );
        assert_eq!(after_failure(day, 0, d), DeliveryOutcome::Failed);
    }
}
