//! Webhooks and the durable queue of their deliveries (contract section 7).
//!
//! - A **webhook** is a registration: URL, subscribed events, an optional tenant, and its
//!   secret as an opaque sealed blob (the server encrypts it with its KMS before it gets here;
//!   this crate never sees a usable secret).
//! - A **delivery** is one event for one webhook. Its id is chosen by the producer and derived
//!   from where the event came from, so [`MetadataStore::enqueue_deliveries`] can be called any
//!   number of times for the same events and stores each once (`ON CONFLICT DO NOTHING`): a
//!   leader that crashes after enqueuing but before trimming its outbox, or a new leader
//!   draining the same outbox again, duplicates nothing.
//! - **Claiming** ([`MetadataStore::claim_deliveries`]) picks due pending deliveries and moves
//!   their due time to the end of a lease in the same transaction, so another worker (or a
//!   second node that still believes it leads) does not send them again while the first is
//!   at it; a worker that dies mid-send leaves them due again when the lease lapses (at least
//!   once, never lost).
//! - **Recording** an attempt ([`MetadataStore::record_attempt`]) appends to the attempt log
//!   and moves the delivery to `delivered`, `failed` or its next due time in one transaction.
//!
//! Deleting a webhook deletes its deliveries and their attempts in the same transaction;
//! settled deliveries are purged by age ([`MetadataStore::purge_settled_deliveries`]).

use std::fmt;

use sqlx::Row;

use crate::error::from_sqlx;
use crate::{MetadataError, MetadataStore, with_pool};

/// Most deliveries [`MetadataStore::list_deliveries`] returns.
pub const DELIVERY_LIST_MAX: u32 = 500;

const REDACTED: &str = "<redacted>";

/// A webhook to register.
#[derive(Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub id: String,
    pub name: String,
    pub url: String,
    /// Event names (`version.created`, ...); none contains a comma.
    pub events: Vec<String>,
    /// `None`: events of every tenant.
    pub tenant: Option<String>,
    /// The secret as the server sealed it (never the secret itself).
    pub secret_sealed: String,
    pub created_at_ms: i64,
    pub created_by: String,
}

/// A stored webhook.
pub type WebhookRecord = NewWebhook;

impl fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("tenant", &self.tenant)
            .field("secret_sealed", &REDACTED)
            .field("created_at_ms", &self.created_at_ms)
            .field("created_by", &self.created_by)
            .finish()
    }
}

/// One event for one webhook, to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Deterministic: the same event for the same webhook always gets the same id.
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    /// The JSON body, sent as is at every attempt.
    pub payload: String,
    /// Also the first due time.
    pub created_at_ms: i64,
}

/// A delivery claimed for sending, with what sending needs from its webhook.
#[derive(Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub payload: String,
    pub created_at_ms: i64,
    /// Attempts made before this one.
    pub attempt_count: i64,
    pub url: String,
    pub secret_sealed: String,
}

impl fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DueDelivery")
            .field("id", &self.id)
            .field("webhook_id", &self.webhook_id)
            .field("event", &self.event)
            .field("created_at_ms", &self.created_at_ms)
            .field("attempt_count", &self.attempt_count)
            .field("url", &self.url)
            .field("secret_sealed", &REDACTED)
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up (retries exhausted).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, sqlx::Error> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(sqlx::Error::Decode(
                format!("unknown delivery status {other:?}").into(),
            )),
        }
    }
}

/// One try to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub time_ms: i64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What an attempt decided for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered {
        at_ms: i64,
    },
    /// Try again at this time.
    Retry {
        next_attempt_ms: i64,
    },
    /// Give up.
    Failed,
}

/// A delivery with its attempts (oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub payload: String,
    pub status: DeliveryStatus,
    pub created_at_ms: i64,
    pub next_attempt_ms: Option<i64>,
    pub delivered_at_ms: Option<i64>,
    pub attempt_count: i64,
    pub attempts: Vec<AttemptRecord>,
}

const WEBHOOK_COLUMNS: &str =
    "id, name, url, events, tenant, secret_sealed, created_at_ms, created_by";

macro_rules! webhook_from_row {
    ($r:expr) => {{
        let r = $r;
        let events: String = r.try_get("events")?;
        Ok::<_, sqlx::Error>(NewWebhook {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            url: r.try_get("url")?,
            events: split_events(&events),
            tenant: r.try_get("tenant")?,
            secret_sealed: r.try_get("secret_sealed")?,
            created_at_ms: r.try_get("created_at_ms")?,
            created_by: r.try_get("created_by")?,
        })
    }};
}

fn split_events(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

impl MetadataStore {
    /// Registers a webhook; `Conflict` if the id exists, `Invalid` if an event name contains
    /// a comma.
    pub async fn create_webhook(&self, w: &NewWebhook) -> Result<WebhookRecord, MetadataError> {
        if w.events.iter().any(|e| e.contains(',') || e.is_empty()) {
            return Err(MetadataError::Invalid(
                "webhook event names are non-empty and contain no comma".into(),
            ));
        }
        let events = w.events.join(",");
        with_pool!(self, |pool, _d| {
            sqlx::query(
                "INSERT INTO webhooks (id, name, url, events, tenant, secret_sealed, \
                 created_at_ms, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&w.id)
            .bind(&w.name)
            .bind(&w.url)
            .bind(&events)
            .bind(&w.tenant)
            .bind(&w.secret_sealed)
            .bind(w.created_at_ms)
            .bind(&w.created_by)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(|e| from_sqlx("creating webhook", e))
        })?;
        Ok(w.clone())
    }

    /// Every webhook, oldest first.
    pub async fn list_webhooks(&self) -> Result<Vec<WebhookRecord>, MetadataError> {
        with_pool!(self, |pool, _d| {
            let res: Result<Vec<WebhookRecord>, sqlx::Error> = async {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at_ms, id"
                )))
                .fetch_all(pool)
                .await?;
                rows.iter().map(|r| webhook_from_row!(r)).collect()
            }
            .await;
            res.map_err(|e| from_sqlx("listing webhooks", e))
        })
    }

    pub async fn get_webhook(&self, id: &str) -> Result<Option<WebhookRecord>, MetadataError> {
        with_pool!(self, |pool, _d| {
            let res: Result<Option<WebhookRecord>, sqlx::Error> = async {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(pool)
                .await?;
                row.map(|r| webhook_from_row!(r)).transpose()
            }
            .await;
            res.map_err(|e| from_sqlx("reading webhook", e))
        })
    }

    /// Deletes a webhook with its deliveries and their attempts; `false` if it did not exist.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, MetadataError> {
        with_pool!(self, |pool, d| {
            let res: Result<bool, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(
                    "DELETE FROM webhook_attempts WHERE delivery_id IN \
                     (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let gone = sqlx::query("DELETE FROM webhooks WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(gone > 0)
            }
            .await;
            res.map_err(|e| from_sqlx("deleting webhook", e))
        })
    }

    /// Enqueues deliveries as `pending`, due at their creation time, in one transaction. A
    /// delivery whose id exists is skipped, and so is one whose webhook no longer exists (it
    /// was deleted after the caller read it). Returns how many were new.
    pub async fn enqueue_deliveries(&self, batch: &[NewDelivery]) -> Result<u64, MetadataError> {
        if batch.is_empty() {
            return Ok(0);
        }
        with_pool!(self, |pool, d| {
            let res: Result<u64, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                let mut inserted = 0;
                for n in batch {
                    inserted += sqlx::query(
                        "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, \
                         created_at_ms, next_attempt_ms, attempt_count) \
                         SELECT $1, $2, $3, $4, 'pending', $5, $5, 0 \
                         WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = $2) \
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&n.id)
                    .bind(&n.webhook_id)
                    .bind(&n.event)
                    .bind(&n.payload)
                    .bind(n.created_at_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                Ok(inserted)
            }
            .await;
            res.map_err(|e| from_sqlx("enqueuing webhook deliveries", e))
        })
    }

    /// Claims up to `limit` pending deliveries due at `now_ms` (oldest due first): their due
    /// time moves to `lease_until_ms` in the same transaction, so no other claim returns them
    /// before the lease lapses or [`MetadataStore::record_attempt`] settles them.
    pub async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, MetadataError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        with_pool!(self, |pool, d| {
            let res: Result<Vec<DueDelivery>, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                let sql = format!(
                    "SELECT d.id, d.webhook_id, d.event, d.payload, d.created_at_ms, \
                     d.attempt_count, w.url, w.secret_sealed \
                     FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                     WHERE d.status = 'pending' AND d.next_attempt_ms <= $1 \
                     ORDER BY d.next_attempt_ms, d.id LIMIT $2{}",
                    d.claim_lock
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(now_ms)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(DueDelivery {
                        id: r.try_get("id")?,
                        webhook_id: r.try_get("webhook_id")?,
                        event: r.try_get("event")?,
                        payload: r.try_get("payload")?,
                        created_at_ms: r.try_get("created_at_ms")?,
                        attempt_count: r.try_get("attempt_count")?,
                        url: r.try_get("url")?,
                        secret_sealed: r.try_get("secret_sealed")?,
                    });
                }
                for due in &out {
                    sqlx::query("UPDATE webhook_deliveries SET next_attempt_ms = $1 WHERE id = $2")
                        .bind(lease_until_ms)
                        .bind(&due.id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(out)
            }
            .await;
            res.map_err(|e| from_sqlx("claiming webhook deliveries", e))
        })
    }

    /// Records one attempt of a pending delivery and what it decided. `false` (nothing
    /// recorded) if the delivery is gone (its webhook was deleted) or no longer pending
    /// (another sender settled it first).
    pub async fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: &AttemptRecord,
        outcome: DeliveryOutcome,
    ) -> Result<bool, MetadataError> {
        let (status, next, delivered) = match outcome {
            DeliveryOutcome::Delivered { at_ms } => (DeliveryStatus::Delivered, None, Some(at_ms)),
            DeliveryOutcome::Retry { next_attempt_ms } => {
                (DeliveryStatus::Pending, Some(next_attempt_ms), None)
            }
            DeliveryOutcome::Failed => (DeliveryStatus::Failed, None, None),
        };
        with_pool!(self, |pool, d| {
            let res: Result<bool, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                let changed = sqlx::query(
                    "UPDATE webhook_deliveries SET status = $1, next_attempt_ms = $2, \
                     delivered_at_ms = $3, attempt_count = attempt_count + 1 \
                     WHERE id = $4 AND status = 'pending'",
                )
                .bind(status.as_str())
                .bind(next)
                .bind(delivered)
                .bind(delivery_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO webhook_attempts (delivery_id, time_ms, status_code, error, \
                     duration_ms) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(delivery_id)
                .bind(attempt.time_ms)
                .bind(attempt.status_code)
                .bind(&attempt.error)
                .bind(attempt.duration_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }
            .await;
            res.map_err(|e| from_sqlx("recording a webhook delivery attempt", e))
        })
    }

    /// Deletes settled (`delivered` or `failed`) deliveries created before `before_ms`, with
    /// their attempts; pending ones stay whatever their age. Returns how many went.
    pub async fn purge_settled_deliveries(&self, before_ms: i64) -> Result<u64, MetadataError> {
        with_pool!(self, |pool, d| {
            let res: Result<u64, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_write).await?;
                sqlx::query(
                    "DELETE FROM webhook_attempts WHERE delivery_id IN \
                     (SELECT id FROM webhook_deliveries \
                      WHERE status <> 'pending' AND created_at_ms < $1)",
                )
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
                let gone = sqlx::query(
                    "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at_ms < $1",
                )
                .bind(before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(gone)
            }
            .await;
            res.map_err(|e| from_sqlx("purging settled webhook deliveries", e))
        })
    }

    /// A webhook's newest `limit` deliveries (at most [`DELIVERY_LIST_MAX`]), newest first,
    /// each with its attempts oldest first, read from one snapshot.
    pub async fn list_deliveries(
        &self,
        webhook_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, MetadataError> {
        let limit = i64::from(limit.clamp(1, DELIVERY_LIST_MAX));
        with_pool!(self, |pool, d| {
            let res: Result<Vec<DeliveryRecord>, sqlx::Error> = async {
                let mut tx = pool.begin_with(d.begin_snapshot).await?;
                let rows = sqlx::query(
                    "SELECT id, webhook_id, event, payload, status, created_at_ms, \
                     next_attempt_ms, delivered_at_ms, attempt_count FROM webhook_deliveries \
                     WHERE webhook_id = $1 ORDER BY created_at_ms DESC, id DESC LIMIT $2",
                )
                .bind(webhook_id)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let status: String = r.try_get("status")?;
                    out.push(DeliveryRecord {
                        id: r.try_get("id")?,
                        webhook_id: r.try_get("webhook_id")?,
                        event: r.try_get("event")?,
                        payload: r.try_get("payload")?,
                        status: DeliveryStatus::parse(&status)?,
                        created_at_ms: r.try_get("created_at_ms")?,
                        next_attempt_ms: r.try_get("next_attempt_ms")?,
                        delivered_at_ms: r.try_get("delivered_at_ms")?,
                        attempt_count: r.try_get("attempt_count")?,
                        attempts: Vec::new(),
                    });
                }
                let attempts = sqlx::query(
                    "SELECT a.delivery_id, a.time_ms, a.status_code, a.error, a.duration_ms \
                     FROM webhook_attempts a WHERE a.delivery_id IN \
                     (SELECT id FROM webhook_deliveries WHERE webhook_id = $1 \
                      ORDER BY created_at_ms DESC, id DESC LIMIT $2) \
                     ORDER BY a.id",
                )
                .bind(webhook_id)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                let index: std::collections::HashMap<String, usize> = out
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (d.id.clone(), i))
                    .collect();
                for a in &attempts {
                    let delivery: String = a.try_get("delivery_id")?;
                    if let Some(&i) = index.get(&delivery) {
                        out[i].attempts.push(AttemptRecord {
                            time_ms: a.try_get("time_ms")?,
                            status_code: a.try_get("status_code")?,
                            error: a.try_get("error")?,
                            duration_ms: a.try_get("duration_ms")?,
                        });
                    }
                }
                Ok(out)
            }
            .await;
            res.map_err(|e| from_sqlx("listing webhook deliveries", e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        assert_eq!(
            split_events("version.created,release.changed"),
            ["version.created", "release.changed"]
        );
        assert!(split_events("").is_empty());
    }

    #[test]
    fn debug_hides_the_sealed_secret() {
        let w = NewWebhook {
            id: "w1".into(),
            name: "n".into(),
            url: "http://x".into(),
            events: vec!["version.created".into()],
            tenant: None,
            secret_sealed: "SEALED-BLOB".into(),
            created_at_ms: 1,
            created_by: "user:a".into(),
        };
        assert!(!format!("{w:?}").contains("SEALED"));
    }
}
