//! The store when the database is not there: a closed port, a PostgreSQL server that stops
//! and comes back, bad URLs. Calls must fail fast with `Unavailable` (never hang) and recover
//! without re-creating the store.

use std::time::{Duration, Instant};

use anyhow::Result;
use conflux_metadata::{MetadataError, MetadataStore, NewUser, PoolSettings};
use conflux_testkit::TestPostgres;

/// How long a call may take to report an outage with the default settings (2 s acquire
/// timeout), with room for a busy machine.
const FAIL_FAST: Duration = Duration::from_secs(6);

fn user(name: &str) -> NewUser {
    NewUser {
        username: name.to_owned(),
        password_hash: "h".to_owned(),
        display_name: None,
        created_at_ms: 1,
    }
}

#[tokio::test]
async fn closed_port_is_unavailable_fast() -> Result<()> {
    // A port nobody listens on: bound and released by this test.
    let port = conflux_testkit::free_port()?;
    let started = Instant::now();
    let r = MetadataStore::connect(
        &format!("postgres://postgres@127.0.0.1:{port}/conflux"),
        &PoolSettings::default(),
    )
    .await;
    assert!(matches!(r, Err(MetadataError::Unavailable(_))), "{r:?}");
    assert!(
        started.elapsed() < FAIL_FAST,
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn bad_urls_are_invalid_or_unavailable() -> Result<()> {
    let settings = PoolSettings::default();
    for url in ["mysql://x/y", "", "http://example.com"] {
        let r = MetadataStore::connect(url, &settings).await;
        assert!(matches!(r, Err(MetadataError::Invalid(_))), "{url}: {r:?}");
    }
    let r = MetadataStore::connect("postgres://u:sekrit@127.0.0.1:notaport/db", &settings).await;
    match r {
        Err(MetadataError::Invalid(m)) => assert!(!m.contains("sekrit"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A SQLite file in a directory that does not exist cannot be opened.
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/missing/metadata.db", dir.path().display());
    let r = MetadataStore::connect(&url, &settings).await;
    assert!(matches!(r, Err(MetadataError::Unavailable(_))), "{r:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_is_survived_by_the_same_store() -> Result<()> {
    // Its own server: stopping the shared one would break the other tests.
    let pg = tokio::task::spawn_blocking(TestPostgres::start).await??;
    let url = pg.fresh_database()?;
    let store = MetadataStore::connect(&url, &PoolSettings::default()).await?;
    store.create_user(&user("before")).await?;
    // Fill the pool with several connections that the restart will break.
    let mut reads = Vec::new();
    for _ in 0..4 {
        let s = store.clone();
        reads.push(tokio::spawn(async move { s.load_identity(0).await }));
    }
    for r in reads {
        r.await??;
    }

    let pg = std::sync::Arc::new(pg);
    let stopper = pg.clone();
    tokio::task::spawn_blocking(move || stopper.stop()).await??;

    for call in 0..3 {
        let started = Instant::now();
        let r = match call {
            0 => store.change_counter().await.map(|_| ()),
            1 => store.create_user(&user("during")).await.map(|_| ()),
            _ => store.ping().await,
        };
        assert!(
            matches!(r, Err(MetadataError::Unavailable(_))),
            "call {call}: {r:?}"
        );
        assert!(
            started.elapsed() < FAIL_FAST,
            "call {call} took {:?}",
            started.elapsed()
        );
    }

    let starter = pg.clone();
    tokio::task::spawn_blocking(move || starter.start_again()).await??;
    // The same store reconnects by itself: dead connections are tested and replaced.
    store.ping().await?;
    assert!(store.get_user("before").await?.is_some());
    store.create_user(&user("after")).await?;
    assert_eq!(store.list_users().await?.len(), 2);
    store.close().await;
    Ok(())
}
