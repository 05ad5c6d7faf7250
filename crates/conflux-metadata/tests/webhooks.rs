//! Webhooks and their delivery queue, run unchanged against PostgreSQL and SQLite: both
//! backends must answer every case the same way.

mod common;

use std::collections::BTreeSet;

use anyhow::Result;
use common::Db;
use conflux_metadata::{
    AttemptRecord, DeliveryOutcome, DeliveryStatus, MetadataError, MetadataStore, NewDelivery,
    NewWebhook,
};

/// Generates one test per case and backend: `postgres::<case>` and `sqlite::<case>`.
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() -> anyhow::Result<()> {
                    super::$case(super::Db::postgres()?).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() -> anyhow::Result<()> {
                    super::$case(super::Db::sqlite()?).await
                }
            )*
        }
    };
}

both_backends!(
    webhooks_crud,
    enqueue_is_idempotent_and_skips_deleted_webhooks,
    claim_leases_and_attempts_settle,
    concurrent_claims_never_share_a_delivery,
    delete_webhook_drops_deliveries_and_attempts,
    list_deliveries_newest_first_with_attempts,
    purge_takes_old_settled_deliveries_only,
);

fn webhook(id: &str, tenant: Option<&str>, at: i64) -> NewWebhook {
    NewWebhook {
        id: id.to_owned(),
        name: format!("hook {id}"),
        url: format!("https://example.test/{id}"),
        events: vec!["version.created".into(), "release.changed".into()],
        tenant: tenant.map(str::to_owned),
        secret_sealed: format!("sealed-{id}"),
        created_at_ms: at,
        created_by: "user:admin".into(),
    }
}

fn delivery(id: &str, webhook_id: &str, at: i64) -> NewDelivery {
    NewDelivery {
        id: id.to_owned(),
        webhook_id: webhook_id.to_owned(),
        event: "version.created".into(),
        payload: format!("{{\"id\":\"{id}\"}}"),
        created_at_ms: at,
    }
}

fn attempt(at: i64, code: Option<i64>, error: Option<&str>) -> AttemptRecord {
    AttemptRecord {
        time_ms: at,
        status_code: code,
        error: error.map(str::to_owned),
        duration_ms: 3,
    }
}

async fn webhooks_crud(db: Db) -> Result<()> {
    let store = db.open().await?;
    let a = store
        .create_webhook(&webhook("a", Some("acme"), 10))
        .await?;
    store.create_webhook(&webhook("b", None, 11)).await?;
    let again = store.create_webhook(&webhook("a", None, 12)).await;
    assert!(
        matches!(again, Err(MetadataError::Conflict(_))),
        "{again:?}"
    );
    let mut comma = webhook("c", None, 13);
    comma.events = vec!["a,b".into()];
    assert!(matches!(
        store.create_webhook(&comma).await,
        Err(MetadataError::Invalid(_))
    ));

    assert_eq!(store.get_webhook("a").await?, Some(a.clone()));
    assert_eq!(store.get_webhook("zz").await?, None);
    let ids: Vec<String> = store
        .list_webhooks()
        .await?
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(
        store.get_webhook("b").await?.unwrap().tenant,
        None,
        "a global webhook has no tenant"
    );

    assert!(store.delete_webhook("a").await?);
    assert!(!store.delete_webhook("a").await?);
    assert_eq!(store.get_webhook("a").await?, None);
    Ok(())
}

async fn enqueue_is_idempotent_and_skips_deleted_webhooks(db: Db) -> Result<()> {
    let store = db.open().await?;
    store.create_webhook(&webhook("w", None, 1)).await?;
    let batch = [delivery("d1", "w", 100), delivery("d2", "w", 100)];
    assert_eq!(store.enqueue_deliveries(&batch).await?, 2);
    // A re-drain after a crash or a leader change sends the same ids again.
    assert_eq!(store.enqueue_deliveries(&batch).await?, 0);
    // A delivery for a webhook deleted meanwhile is dropped, not an error.
    let mixed = [delivery("d3", "w", 100), delivery("d4", "gone", 100)];
    assert_eq!(store.enqueue_deliveries(&mixed).await?, 1);
    assert_eq!(store.enqueue_deliveries(&[]).await?, 0);
    let ids: BTreeSet<String> = store
        .list_deliveries("w", 100)
        .await?
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, BTreeSet::from(["d1".into(), "d2".into(), "d3".into()]));
    for d in store.list_deliveries("w", 100).await? {
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.next_attempt_ms, Some(100));
        assert_eq!(d.attempt_count, 0);
    }
    Ok(())
}

async fn claim_leases_and_attempts_settle(db: Db) -> Result<()> {
    let store = db.open().await?;
    store.create_webhook(&webhook("w", None, 1)).await?;
    store
        .enqueue_deliveries(&[delivery("early", "w", 100), delivery("late", "w", 500)])
        .await?;

    // Only what is due, with what sending needs.
    let due = store.claim_deliveries(200, 10_000, 10).await?;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, "early");
    assert_eq!(due[0].url, "https://example.test/w");
    assert_eq!(due[0].secret_sealed, "sealed-w");
    assert_eq!(due[0].payload, "{\"id\":\"early\"}");
    assert_eq!(due[0].attempt_count, 0);
    // Claimed: not claimable again until the lease lapses.
    assert!(store.claim_deliveries(300, 10_000, 10).await?.is_empty());
    let lapsed = store.claim_deliveries(10_000, 20_000, 10).await?;
    let ids: BTreeSet<&str> = lapsed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["early", "late"]));

    // A failed attempt schedules the next one.
    assert!(
        store
            .record_attempt(
                "early",
                &attempt(10_001, Some(503), Some("HTTP 503")),
                DeliveryOutcome::Retry {
                    next_attempt_ms: 12_000
                },
            )
            .await?
    );
    assert!(store.claim_deliveries(11_999, 30_000, 10).await?.is_empty());
    let again = store.claim_deliveries(12_000, 30_000, 10).await?;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt_count, 1);
    // Success settles it; a second settlement (another sender) records nothing.
    assert!(
        store
            .record_attempt(
                "early",
                &attempt(12_001, Some(200), None),
                DeliveryOutcome::Delivered { at_ms: 12_001 },
            )
            .await?
    );
    assert!(
        !store
            .record_attempt(
                "early",
                &attempt(12_002, Some(200), None),
                DeliveryOutcome::Delivered { at_ms: 12_002 },
            )
            .await?
    );
    // Giving up.
    assert!(
        store
            .record_attempt(
                "late",
                &attempt(12_003, None, Some("connection refused")),
                DeliveryOutcome::Failed,
            )
            .await?
    );
    assert!(
        !store
            .record_attempt("nope", &attempt(1, None, None), DeliveryOutcome::Failed)
            .await?
    );
    assert!(
        store
            .claim_deliveries(i64::MAX / 2, i64::MAX / 2, 10)
            .await?
            .is_empty()
    );

    let list = store.list_deliveries("w", 10).await?;
    let early = list.iter().find(|d| d.id == "early").unwrap();
    assert_eq!(early.status, DeliveryStatus::Delivered);
    assert_eq!(early.delivered_at_ms, Some(12_001));
    assert_eq!(early.next_attempt_ms, None);
    assert_eq!(early.attempt_count, 2);
    assert_eq!(
        early.attempts,
        [
            attempt(10_001, Some(503), Some("HTTP 503")),
            attempt(12_001, Some(200), None)
        ]
    );
    let late = list.iter().find(|d| d.id == "late").unwrap();
    assert_eq!(late.status, DeliveryStatus::Failed);
    assert_eq!(
        late.attempts,
        [attempt(12_003, None, Some("connection refused"))]
    );
    Ok(())
}

/// Two nodes (two pools) claiming at once never get the same delivery.
async fn concurrent_claims_never_share_a_delivery(db: Db) -> Result<()> {
    let a = db.open().await?;
    let b = db.open().await?;
    a.create_webhook(&webhook("w", None, 1)).await?;
    let batch: Vec<NewDelivery> = (0..200)
        .map(|i| delivery(&format!("d{i:03}"), "w", 100))
        .collect();
    a.enqueue_deliveries(&batch).await?;
    async fn drain(store: MetadataStore) -> Result<Vec<String>> {
        let mut got = Vec::new();
        loop {
            let due = store.claim_deliveries(1_000, 1_000_000, 7).await?;
            if due.is_empty() {
                return Ok(got);
            }
            got.extend(due.into_iter().map(|d| d.id));
        }
    }
    let (x, y) = tokio::join!(
        tokio::spawn(drain(a.clone())),
        tokio::spawn(drain(b.clone()))
    );
    let (x, y) = (x??, y??);
    let all: BTreeSet<&String> = x.iter().chain(&y).collect();
    assert_eq!(x.len() + y.len(), 200, "claimed twice or lost");
    assert_eq!(all.len(), 200);
    Ok(())
}

async fn delete_webhook_drops_deliveries_and_attempts(db: Db) -> Result<()> {
    let store = db.open().await?;
    store.create_webhook(&webhook("w", None, 1)).await?;
    store.create_webhook(&webhook("keep", None, 2)).await?;
    store
        .enqueue_deliveries(&[delivery("d1", "w", 10), delivery("k1", "keep", 10)])
        .await?;
    store.claim_deliveries(10, 20, 10).await?;
    store
        .record_attempt(
            "d1",
            &attempt(11, Some(500), Some("HTTP 500")),
            DeliveryOutcome::Retry {
                next_attempt_ms: 50,
            },
        )
        .await?;
    assert!(store.delete_webhook("w").await?);
    assert!(store.list_deliveries("w", 10).await?.is_empty());
    // Nothing of it is claimable any more; the other webhook's queue is untouched.
    let due = store.claim_deliveries(1_000, 2_000, 10).await?;
    assert_eq!(
        due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["k1"]
    );
    // A late result of an attempt in flight when the webhook went is dropped.
    assert!(
        !store
            .record_attempt(
                "d1",
                &attempt(60, Some(200), None),
                DeliveryOutcome::Delivered { at_ms: 60 }
            )
            .await?
    );
    // The same id can be registered again, with an empty queue.
    store.create_webhook(&webhook("w", None, 3)).await?;
    assert!(store.list_deliveries("w", 10).await?.is_empty());
    Ok(())
}

async fn list_deliveries_newest_first_with_attempts(db: Db) -> Result<()> {
    let store = db.open().await?;
    store.create_webhook(&webhook("w", None, 1)).await?;
    let batch: Vec<NewDelivery> = (0..5)
        .map(|i| delivery(&format!("d{i}"), "w", 100 + i))
        .collect();
    store.enqueue_deliveries(&batch).await?;
    for _ in 0..3 {
        let due = store.claim_deliveries(1_000, 1_000, 10).await?;
        for d in due {
            store
                .record_attempt(
                    &d.id,
                    &attempt(500, Some(502), None),
                    DeliveryOutcome::Retry {
                        next_attempt_ms: 900,
                    },
                )
                .await?;
        }
    }
    let list = store.list_deliveries("w", 3).await?;
    assert_eq!(
        list.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["d4", "d3", "d2"]
    );
    for d in &list {
        assert_eq!(d.attempts.len(), 3, "{d:?}");
        assert_eq!(d.attempt_count, 3);
    }
    Ok(())
}

async fn purge_takes_old_settled_deliveries_only(db: Db) -> Result<()> {
    let store = db.open().await?;
    store.create_webhook(&webhook("w", None, 1)).await?;
    store
        .enqueue_deliveries(&[
            delivery("old-done", "w", 10),
            delivery("old-failed", "w", 10),
            delivery("old-pending", "w", 10),
            delivery("new-done", "w", 1_000),
        ])
        .await?;
    store.claim_deliveries(2_000, 2_000, 10).await?;
    for (id, outcome) in [
        ("old-done", DeliveryOutcome::Delivered { at_ms: 11 }),
        ("old-failed", DeliveryOutcome::Failed),
        ("new-done", DeliveryOutcome::Delivered { at_ms: 1_001 }),
        (
            "old-pending",
            DeliveryOutcome::Retry {
                next_attempt_ms: 3_000,
            },
        ),
    ] {
        store
            .record_attempt(id, &attempt(11, Some(200), None), outcome)
            .await?;
    }
    assert_eq!(store.purge_settled_deliveries(500).await?, 2);
    assert_eq!(store.purge_settled_deliveries(500).await?, 0);
    let left: BTreeSet<String> = store
        .list_deliveries("w", 10)
        .await?
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        left,
        BTreeSet::from(["old-pending".into(), "new-done".into()])
    );
    Ok(())
}
