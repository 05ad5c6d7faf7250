//! The behaviour suite of the metadata store, run unchanged against PostgreSQL (a fresh
//! database on a throwaway server) and SQLite (a file in a temporary directory): both backends
//! must answer every case the same way.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use common::{Db, audit, binding, token, user};
use conflux_metadata::{
    AuditQuery, BackendKind, MetadataError, MetadataStore, NewSession, PoolSettings, UserPatch,
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
    users_crud_and_conflict,
    disabling_or_new_password_ends_sessions,
    delete_user_takes_sessions_and_bindings,
    session_of_unknown_user_is_not_found,
    token_and_bindings_are_one_transaction,
    delete_token_removes_its_bindings,
    bindings_filters_and_delete,
    delete_bindings_under_is_a_path_prefix,
    load_identity_is_consistent_and_skips_expired,
    change_counter_moves_on_every_identity_change,
    purge_expired_sessions_and_tokens,
    bootstrap_race_has_one_winner,
    bootstrap_refuses_when_a_principal_exists,
    login_failures_within_window,
    audit_insert_is_idempotent,
    audit_filters_and_pagination,
    audit_visible_scopes,
    malformed_cursor_is_invalid,
    sql_looking_strings_are_stored_verbatim,
    migration_upgrade_keeps_rows,
    reconnecting_to_a_migrated_database,
    a_held_write_lock_times_out_as_unavailable,
);

fn session(id: &str, username: &str, expires: i64) -> NewSession {
    NewSession {
        id: id.to_owned(),
        username: username.to_owned(),
        secret_hash: format!("session-hash-{id}"),
        created_at_ms: 1,
        expires_at_ms: expires,
    }
}

async fn session_ids(store: &MetadataStore, now: i64) -> Result<Vec<String>> {
    let snap = store.load_identity(now).await?;
    Ok(snap.sessions.into_iter().map(|s| s.id).collect())
}

async fn users_crud_and_conflict(db: Db) -> Result<()> {
    let store = db.open().await?;
    let mut bob = user("bob", 10);
    bob.display_name = Some("Bob".into());
    let created = store.create_user(&bob).await?;
    assert_eq!(created.username, "bob");
    assert_eq!(created.display_name.as_deref(), Some("Bob"));
    assert!(!created.disabled);
    assert_eq!(created.updated_at_ms, 10);
    store.create_user(&user("alice", 11)).await?;

    let again = store.create_user(&user("bob", 12)).await;
    assert!(
        matches!(again, Err(MetadataError::Conflict(_))),
        "{again:?}"
    );

    assert_eq!(store.get_user("bob").await?, Some(created.clone()));
    assert_eq!(store.get_user("nobody").await?, None);
    let names: Vec<String> = store
        .list_users()
        .await?
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    // PATCH: only what is given changes; Some(None) clears the display name.
    let patched = store
        .update_user(
            "bob",
            &UserPatch {
                display_name: Some(None),
                ..UserPatch::default()
            },
            20,
        )
        .await?;
    assert_eq!(patched.display_name, None);
    assert_eq!(patched.password_hash, bob.password_hash);
    assert_eq!(patched.updated_at_ms, 20);
    assert_eq!(patched.created_at_ms, 10);
    let patched = store
        .update_user(
            "bob",
            &UserPatch {
                display_name: Some(Some("Robert".into())),
                ..UserPatch::default()
            },
            21,
        )
        .await?;
    assert_eq!(patched.display_name.as_deref(), Some("Robert"));
    assert_eq!(store.get_user("bob").await?, Some(patched));

    let missing = store.update_user("nobody", &UserPatch::default(), 22).await;
    assert!(
        matches!(missing, Err(MetadataError::NotFound(_))),
        "{missing:?}"
    );

    assert!(store.delete_user("bob").await?);
    assert!(!store.delete_user("bob").await?);
    assert_eq!(store.get_user("bob").await?, None);
    Ok(())
}

async fn disabling_or_new_password_ends_sessions(db: Db) -> Result<()> {
    let store = db.open().await?;
    store.create_user(&user("carol", 1)).await?;
    store.create_user(&user("dave", 1)).await?;
    store.create_session(&session("s1", "carol", 1000)).await?;
    store.create_session(&session("s2", "carol", 1000)).await?;
    store.create_session(&session("d1", "dave", 1000)).await?;

    // A display-name change and enabling keep sessions.
    store
        .update_user(
            "carol",
            &UserPatch {
                display_name: Some(Some("C".into())),
                disabled: Some(false),
                ..UserPatch::default()
            },
            2,
        )
        .await?;
    assert_eq!(session_ids(&store, 5).await?, ["d1", "s1", "s2"]);

    let disabled = store
        .update_user(
            "carol",
            &UserPatch {
                disabled: Some(true),
                ..UserPatch::default()
            },
            3,
        )
        .await?;
    assert!(disabled.disabled);
    assert_eq!(session_ids(&store, 5).await?, ["d1"]);

    store
        .update_user(
            "dave",
            &UserPatch {
                password_hash: Some("new-hash".into()),
                ..UserPatch::default()
            },
            4,
        )
        .await?;
    assert!(session_ids(&store, 5).await?.is_empty());
    assert_eq!(
        store.get_user("dave").await?.map(|u| u.password_hash),
        Some("new-hash".to_owned())
    );
    Ok(())
}

async fn delete_user_takes_sessions_and_bindings(db: Db) -> Result<()> {
    let store = db.open().await?;
    store.create_user(&user("erin", 1)).await?;
    store.create_user(&user("erin2", 1)).await?;
    store.create_session(&session("e1", "erin", 1000)).await?;
    store
        .create_binding(&binding("b1", "user:erin", "viewer", "t", 1))
        .await?;
    store
        .create_binding(&binding("b2", "user:erin2", "viewer", "t", 2))
        .await?;
    assert!(store.delete_user("erin").await?);
    let snap = store.load_identity(5).await?;
    assert!(snap.sessions.is_empty());
    let ids: Vec<&str> = snap.bindings.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["b2"]);
    // The name is free again, with no leftover grants.
    store.create_user(&user("erin", 9)).await?;
    assert!(
        store
            .list_bindings(Some("user:erin"), None)
            .await?
            .is_empty()
    );
    Ok(())
}

async fn session_of_unknown_user_is_not_found(db: Db) -> Result<()> {
    let store = db.open().await?;
    let r = store.create_session(&session("x", "ghost", 1000)).await;
    assert!(matches!(r, Err(MetadataError::NotFound(_))), "{r:?}");
    store.create_user(&user("frank", 1)).await?;
    store.create_session(&session("x", "frank", 1000)).await?;
    let dup = store.create_session(&session("x", "frank", 1000)).await;
    assert!(matches!(dup, Err(MetadataError::Conflict(_))), "{dup:?}");
    assert!(store.delete_session("x").await?);
    assert!(!store.delete_session("x").await?);
    Ok(())
}

async fn token_and_bindings_are_one_transaction(db: Db) -> Result<()> {
    let store = db.open().await?;
    store
        .create_binding(&binding("taken", "user:x", "viewer", "t", 1))
        .await?;
    let counter = store.change_counter().await?;

    // The second binding's id exists: nothing of the token may remain.
    let r = store
        .create_token(
            &token("tok1", 5, None),
            &[
                binding("fresh", "ignored", "editor", "t/a", 5),
                binding("taken", "ignored", "viewer", "t", 5),
            ],
        )
        .await;
    assert!(matches!(r, Err(MetadataError::Conflict(_))), "{r:?}");
    assert_eq!(store.get_token("tok1").await?, None);
    assert_eq!(store.get_binding("fresh").await?, None);
    assert_eq!(store.change_counter().await?, counter);

    let rec = store
        .create_token(
            &token("tok1", 5, Some(99)),
            &[binding("fresh", "ignored", "editor", "t/a", 5)],
        )
        .await?;
    assert_eq!(rec.id, "tok1");
    assert_eq!(rec.expires_at_ms, Some(99));
    assert_eq!(store.get_token("tok1").await?, Some(rec.clone()));
    let b = store.get_binding("fresh").await?.expect("binding stored");
    assert_eq!(b.principal, "token:tok1");
    assert_eq!(b.role, "editor");
    assert_eq!(b.scope, "t/a");

    let dup = store.create_token(&token("tok1", 6, None), &[]).await;
    assert!(matches!(dup, Err(MetadataError::Conflict(_))), "{dup:?}");

    // Listed by created_at then id, never with the hash (TokenRecord has none).
    store.create_token(&token("a-tok", 5, None), &[]).await?;
    store.create_token(&token("early", 1, None), &[]).await?;
    let ids: Vec<String> = store
        .list_tokens()
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["early", "a-tok", "tok1"]);
    Ok(())
}

async fn delete_token_removes_its_bindings(db: Db) -> Result<()> {
    let store = db.open().await?;
    store
        .create_token(
            &token("t1", 1, None),
            &[
                binding("b1", "", "viewer", "a", 1),
                binding("b2", "", "editor", "b", 1),
            ],
        )
        .await?;
    store
        .create_token(
            &token("t2", 1, None),
            &[binding("b3", "", "viewer", "a", 1)],
        )
        .await?;
    assert!(store.delete_token("t1").await?);
    assert!(!store.delete_token("t1").await?);
    let left: Vec<String> = store
        .list_bindings(None, None)
        .await?
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(left, ["b3"]);
    assert_eq!(store.get_token("t1").await?, None);
    Ok(())
}

async fn bindings_filters_and_delete(db: Db) -> Result<()> {
    let store = db.open().await?;
    let b1 = store
        .create_binding(&binding("b1", "user:a", "viewer", "t", 3))
        .await?;
    let b2 = store
        .create_binding(&binding("b2", "user:a", "editor", "t/x", 2))
        .await?;
    let b3 = store
        .create_binding(&binding("b3", "user:b", "viewer", "t", 2))
        .await?;
    let dup = store
        .create_binding(&binding("b3", "user:c", "viewer", "t", 2))
        .await;
    assert!(matches!(dup, Err(MetadataError::Conflict(_))), "{dup:?}");

    assert_eq!(
        store.list_bindings(None, None).await?,
        [b2.clone(), b3.clone(), b1.clone()]
    );
    assert_eq!(
        store.list_bindings(Some("user:a"), None).await?,
        [b2.clone(), b1.clone()]
    );
    // Scope is an exact match, not a prefix.
    assert_eq!(
        store.list_bindings(None, Some("t")).await?,
        [b3.clone(), b1.clone()]
    );
    assert_eq!(store.list_bindings(Some("user:a"), Some("t")).await?, [b1]);
    assert_eq!(store.get_binding("b2").await?, Some(b2));
    assert!(store.delete_binding("b2").await?);
    assert!(!store.delete_binding("b2").await?);
    assert_eq!(store.get_binding("b2").await?, None);
    Ok(())
}

async fn delete_bindings_under_is_a_path_prefix(db: Db) -> Result<()> {
    let store = db.open().await?;
    for (id, scope) in [
        ("1", "t"),
        ("2", "t/a"),
        ("3", "t/a/e"),
        ("4", "tx"),
        ("5", "tx/a"),
        ("6", "*"),
        ("7", "t_"),
        ("8", "u/t"),
    ] {
        store
            .create_binding(&binding(id, "user:a", "viewer", scope, 1))
            .await?;
    }
    assert_eq!(store.delete_bindings_under("t/a").await?, 2);
    assert_eq!(store.delete_bindings_under("t").await?, 1);
    let left: BTreeSet<String> = store
        .list_bindings(None, None)
        .await?
        .into_iter()
        .map(|b| b.scope)
        .collect();
    let expected: BTreeSet<String> = ["tx", "tx/a", "*", "t_", "u/t"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(left, expected);
    let counter = store.change_counter().await?;
    assert_eq!(store.delete_bindings_under("t").await?, 0);
    assert_eq!(store.change_counter().await?, counter, "no change, no bump");
    Ok(())
}

async fn load_identity_is_consistent_and_skips_expired(db: Db) -> Result<()> {
    let store = db.open().await?;
    store.create_user(&user("gina", 1)).await?;
    store.create_session(&session("live", "gina", 200)).await?;
    store.create_session(&session("dead", "gina", 100)).await?;
    store.create_token(&token("forever", 1, None), &[]).await?;
    store
        .create_token(&token("later", 1, Some(200)), &[])
        .await?;
    store
        .create_token(
            &token("gone", 1, Some(100)),
            &[binding("gb", "", "viewer", "t", 1)],
        )
        .await?;

    let snap = store.load_identity(100).await?;
    assert_eq!(snap.counter, store.change_counter().await?);
    assert_eq!(snap.users.len(), 1);
    assert_eq!(snap.users[0].password_hash, "$argon2id$hash-of-gina");
    let sessions: Vec<&str> = snap.sessions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(sessions, ["live"]);
    assert_eq!(snap.sessions[0].secret_hash, "session-hash-live");
    assert_eq!(snap.sessions[0].username, "gina");
    let tokens: Vec<&str> = snap.tokens.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(tokens, ["forever", "later"]);
    assert_eq!(snap.tokens[1].secret_hash, "secret-hash-later");
    assert_eq!(snap.tokens[1].expires_at_ms, Some(200));
    // Debug output never shows a hash.
    let debug = format!("{snap:?}");
    assert!(
        !debug.contains("hash-of") && !debug.contains("secret-hash"),
        "{debug}"
    );

    // Snapshots taken while writers run always match their own counter: the number of
    // bindings equals the counter's distance from the start, as each write adds one.
    let base = store.change_counter().await?;
    let base_bindings = store.load_identity(0).await?.bindings.len() as i64;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                store
                    .create_binding(&binding(&format!("w{i}"), "user:gina", "viewer", "t", 5))
                    .await?;
            }
            Ok::<_, MetadataError>(())
        })
    };
    for _ in 0..40 {
        let snap = store.load_identity(0).await?;
        assert_eq!(
            snap.bindings.len() as i64 - base_bindings,
            snap.counter - base,
            "snapshot and counter disagree"
        );
    }
    writer.await??;
    Ok(())
}

async fn change_counter_moves_on_every_identity_change(db: Db) -> Result<()> {
    let store = db.open().await?;
    let mut last = store.change_counter().await?;
    let mut step = |name: &str, now: i64| {
        assert!(
            now > last,
            "{name} did not move the counter ({last} -> {now})"
        );
        last = now;
    };
    store.create_user(&user("hal", 1)).await?;
    step("create_user", store.change_counter().await?);
    store
        .update_user(
            "hal",
            &UserPatch {
                disabled: Some(false),
                ..UserPatch::default()
            },
            2,
        )
        .await?;
    step("update_user", store.change_counter().await?);
    store.create_session(&session("s", "hal", 100)).await?;
    step("create_session", store.change_counter().await?);
    store.delete_session("s").await?;
    step("delete_session", store.change_counter().await?);
    store.create_token(&token("t", 1, None), &[]).await?;
    step("create_token", store.change_counter().await?);
    store
        .create_binding(&binding("b", "user:hal", "viewer", "x", 1))
        .await?;
    step("create_binding", store.change_counter().await?);
    store.delete_binding("b").await?;
    step("delete_binding", store.change_counter().await?);
    store
        .create_binding(&binding("b", "user:hal", "viewer", "x", 1))
        .await?;
    step("create_binding", store.change_counter().await?);
    store.delete_bindings_under("x").await?;
    step("delete_bindings_under", store.change_counter().await?);
    store.delete_token("t").await?;
    step("delete_token", store.change_counter().await?);
    store.delete_user("hal").await?;
    step("delete_user", store.change_counter().await?);
    store.create_token(&token("old", 1, Some(5)), &[]).await?;
    step("create_token", store.change_counter().await?);
    store.purge_expired(10).await?;
    step("purge_expired", store.change_counter().await?);

    // A change seen from another store (another node) on the same database.
    let other = db.open().await?;
    assert_eq!(other.change_counter().await?, last);
    // Failed changes and non-identity writes leave it alone.
    assert!(!store.delete_user("nobody").await?);
    assert!(store.create_user(&user("x", 1)).await.is_ok());
    let now = store.change_counter().await?;
    assert!(store.create_user(&user("x", 1)).await.is_err());
    store.record_login_failure("x", 1, 60_000).await?;
    store.insert_audit(&[audit("k", 1, None, None)]).await?;
    assert_eq!(store.change_counter().await?, now);
    Ok(())
}

async fn purge_expired_sessions_and_tokens(db: Db) -> Result<()> {
    let store = db.open().await?;
    store.create_user(&user("ivy", 1)).await?;
    store.create_session(&session("old", "ivy", 50)).await?;
    store.create_session(&session("new", "ivy", 500)).await?;
    store
        .create_token(
            &token("old", 1, Some(50)),
            &[binding("ob", "", "viewer", "t", 1)],
        )
        .await?;
    store
        .create_token(
            &token("new", 1, Some(500)),
            &[binding("nb", "", "viewer", "t", 1)],
        )
        .await?;
    store.create_token(&token("never", 1, None), &[]).await?;
    assert_eq!(store.purge_expired(50).await?, 2);
    assert_eq!(store.purge_expired(50).await?, 0);
    assert_eq!(store.get_token("old").await?, None);
    assert!(store.get_token("new").await?.is_some());
    assert!(store.get_token("never").await?.is_some());
    assert_eq!(store.get_binding("ob").await?, None);
    assert!(store.get_binding("nb").await?.is_some());
    assert_eq!(session_ids(&store, 0).await?, ["new"]);
    Ok(())
}

async fn bootstrap_race_has_one_winner(db: Db) -> Result<()> {
    // Eight nodes: eight stores with their own pools, racing on one empty database.
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(db.open().await?);
    }
    let mut tasks = Vec::new();
    for (i, store) in stores.iter().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .bootstrap(
                    &token(&format!("boot{i}"), 100, None),
                    &format!("bb{i}"),
                    100,
                )
                .await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await?? {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one bootstrap must win");
    let tokens = stores[0].list_tokens().await?;
    assert_eq!(tokens.len(), 1);
    let bindings = stores[0].list_bindings(None, None).await?;
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].principal, format!("token:{}", tokens[0].id));
    assert_eq!(bindings[0].role, "cluster_admin");
    assert_eq!(bindings[0].scope, "*");
    assert_eq!(bindings[0].created_by, "user:admin");
    // Later bootstraps find it there.
    assert!(
        !stores[3]
            .bootstrap(&token("late", 200, None), "late-b", 200)
            .await?
    );
    for s in &stores {
        s.close().await;
    }
    Ok(())
}

async fn bootstrap_refuses_when_a_principal_exists(db: Db) -> Result<()> {
    let store = db.open().await?;
    let counter = store.change_counter().await?;
    store.create_user(&user("root", 1)).await?;
    assert!(!store.bootstrap(&token("b", 1, None), "bb", 1).await?);
    assert!(store.list_tokens().await?.is_empty());
    assert!(store.list_bindings(None, None).await?.is_empty());
    assert_eq!(store.change_counter().await?, counter + 1);
    Ok(())
}

async fn login_failures_within_window(db: Db) -> Result<()> {
    let store = db.open().await?;
    let w = 60_000;
    for (i, at) in [1_000, 2_000, 3_000, 4_000, 5_000].into_iter().enumerate() {
        assert_eq!(store.record_login_failure("jo", at, w).await?, i as u32 + 1);
    }
    store.record_login_failure("other", 5_000, w).await?;
    assert_eq!(store.login_failures("jo", 5_000, w).await?, 5);
    // (now - window, now]: at 61_000 the failure at 1_000 has left the window.
    assert_eq!(store.login_failures("jo", 61_000, w).await?, 4);
    // (2_500, 62_500]: 3_000, 4_000, 5_000 and this one.
    assert_eq!(store.record_login_failure("jo", 62_500, w).await?, 4);
    assert_eq!(store.login_failures("jo", 200_000, w).await?, 0);
    store.record_login_failure("jo", 200_000, w).await?;
    store.clear_login_failures("jo").await?;
    assert_eq!(store.login_failures("jo", 200_000, w).await?, 0);
    Ok(())
}

async fn audit_insert_is_idempotent(db: Db) -> Result<()> {
    let store = db.open().await?;
    assert_eq!(store.insert_audit(&[]).await?, 0);
    let a = audit("raft:1", 10, Some("t"), None);
    let b = audit("raft:2", 11, Some("t"), None);
    assert_eq!(store.insert_audit(&[a.clone(), b.clone()]).await?, 2);
    // A retried drain: the same keys again, plus one new, in one batch; and a key twice.
    let c = audit("node:3:17", 12, None, None);
    assert_eq!(
        store
            .insert_audit(&[a.clone(), b.clone(), c.clone(), c.clone()])
            .await?,
        1
    );
    let page = store.query_audit(&AuditQuery::default()).await?;
    assert_eq!(page.records.len(), 3);
    assert_eq!(page.next_cursor, None);
    let newest = &page.records[0];
    assert_eq!(newest.time_ms, 12);
    assert_eq!(newest.tenant, None);
    assert_eq!(newest.details, c.details);
    assert_eq!(newest.revision, Some(7));
    assert_eq!(newest.request_id, "req-node:3:17");
    Ok(())
}

async fn audit_filters_and_pagination(db: Db) -> Result<()> {
    let store = db.open().await?;
    let mut records = Vec::new();
    for i in 0..57 {
        // Many records share a time: the id breaks ties.
        let mut r = audit(&format!("raft:{i}"), 1_000 + (i / 3), Some("t"), None);
        if i % 2 == 0 {
            r.actor = "user:bob".into();
        }
        if i % 5 == 0 {
            r.action = "config.delete".into();
            r.tenant = Some("u".into());
        }
        records.push(r);
    }
    assert_eq!(store.insert_audit(&records).await?, 57);

    // Walk everything 10 at a time: each row exactly once, newest first.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .query_audit(&AuditQuery {
                limit: Some(10),
                cursor: cursor.clone(),
                ..AuditQuery::default()
            })
            .await?;
        assert!(page.records.len() <= 10);
        seen.extend(page.records.iter().map(|r| (r.time_ms, r.id)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 57);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, no repeats");

    // The last full page has no cursor when nothing remains.
    let all = store
        .query_audit(&AuditQuery {
            limit: Some(57),
            ..AuditQuery::default()
        })
        .await?;
    assert_eq!(all.records.len(), 57);
    assert_eq!(all.next_cursor, None);

    // Limits are clamped: 0 -> 1, default 100, at most 1000.
    let one = store
        .query_audit(&AuditQuery {
            limit: Some(0),
            ..AuditQuery::default()
        })
        .await?;
    assert_eq!(one.records.len(), 1);
    assert!(one.next_cursor.is_some());

    let count = |q: AuditQuery| {
        let store = store.clone();
        async move {
            let page = store.query_audit(&q).await?;
            assert_eq!(page.next_cursor, None);
            Ok::<_, MetadataError>(page.records)
        }
    };
    let bob = count(AuditQuery {
        actor: Some("user:bob".into()),
        ..AuditQuery::default()
    })
    .await?;
    assert_eq!(bob.len(), 29);
    assert!(bob.iter().all(|r| r.actor == "user:bob"));
    let deletes = count(AuditQuery {
        action: Some("config.delete".into()),
        ..AuditQuery::default()
    })
    .await?;
    assert_eq!(deletes.len(), 12);
    let tenant_u = count(AuditQuery {
        tenant: Some("u".into()),
        ..AuditQuery::default()
    })
    .await?;
    assert_eq!(tenant_u.len(), 12);
    // Inclusive time bounds: times 1_002..=1_004 hold records 6..=14.
    let window = count(AuditQuery {
        since_ms: Some(1_002),
        until_ms: Some(1_004),
        ..AuditQuery::default()
    })
    .await?;
    assert_eq!(window.len(), 9);
    assert!(window.iter().all(|r| (1_002..=1_004).contains(&r.time_ms)));
    let combined = count(AuditQuery {
        tenant: Some("t".into()),
        actor: Some("user:bob".into()),
        since_ms: Some(1_002),
        until_ms: Some(1_004),
        ..AuditQuery::default()
    })
    .await?;
    // Records 6..=14 that are even and not multiples of 5: 6, 8, 12, 14.
    assert_eq!(combined.len(), 4);
    Ok(())
}

async fn audit_visible_scopes(db: Db) -> Result<()> {
    let store = db.open().await?;
    let mut recs = vec![
        audit("none", 1, None, None),
        audit("t", 2, Some("t"), None),
        audit("t/a", 3, Some("t"), Some("a")),
        audit("t/b", 4, Some("t"), Some("b")),
        audit("tx", 5, Some("tx"), None),
    ];
    let mut env = audit("t/a/e", 6, Some("t"), Some("a"));
    env.env = Some("e".into());
    recs.push(env);
    store.insert_audit(&recs).await?;

    let visible = |scopes: Option<Vec<&'static str>>| {
        let store = store.clone();
        async move {
            let page = store
                .query_audit(&AuditQuery {
                    visible_scopes: scopes.map(|s| s.into_iter().map(String::from).collect()),
                    ..AuditQuery::default()
                })
                .await?;
            let mut keys: Vec<String> = page.records.into_iter().map(|r| r.request_id).collect();
            keys.sort();
            Ok::<_, MetadataError>(
                keys.into_iter()
                    .map(|k| k.trim_start_matches("req-").to_owned())
                    .collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(visible(None).await?.len(), 6);
    assert_eq!(visible(Some(vec!["*"])).await?.len(), 6);
    assert_eq!(visible(Some(vec!["t/a", "*"])).await?.len(), 6);
    assert!(visible(Some(vec![])).await?.is_empty());
    assert_eq!(
        visible(Some(vec!["t"])).await?,
        ["t", "t/a", "t/a/e", "t/b"]
    );
    assert_eq!(visible(Some(vec!["t/a"])).await?, ["t/a", "t/a/e"]);
    assert_eq!(visible(Some(vec!["t/a/e"])).await?, ["t/a/e"]);
    assert_eq!(visible(Some(vec!["t/b", "tx"])).await?, ["t/b", "tx"]);
    assert!(visible(Some(vec!["nope", "t//x"])).await?.is_empty());
    // Combined with a tenant filter.
    let page = store
        .query_audit(&AuditQuery {
            tenant: Some("tx".into()),
            visible_scopes: Some(vec!["t".into()]),
            ..AuditQuery::default()
        })
        .await?;
    assert!(page.records.is_empty());
    Ok(())
}

async fn malformed_cursor_is_invalid(db: Db) -> Result<()> {
    let store = db.open().await?;
    for bad in [
        "garbage",
        "",
        "c1.x.y",
        "c1.5",
        "'; DROP TABLE audit_log;--",
    ] {
        let r = store
            .query_audit(&AuditQuery {
                cursor: Some(bad.into()),
                ..AuditQuery::default()
            })
            .await;
        match r {
            Err(MetadataError::Invalid(m)) => assert!(m.contains("cursor"), "{m}"),
            other => panic!("cursor {bad:?}: {other:?}"),
        }
    }
    Ok(())
}

async fn sql_looking_strings_are_stored_verbatim(db: Db) -> Result<()> {
    let store = db.open().await?;
    let evil = "alice'; DROP TABLE users;--";
    let mut u = user(evil, 1);
    u.display_name = Some("\"); DELETE FROM sessions; -- ünïcødé %_".into());
    store.create_user(&u).await?;
    let got = store.get_user(evil).await?.expect("stored");
    assert_eq!(got.username, evil);
    assert_eq!(got.display_name, u.display_name);
    store
        .create_binding(&binding(
            "b'1",
            &format!("user:{evil}"),
            "viewer",
            "t%/_a",
            1,
        ))
        .await?;
    assert_eq!(
        store
            .list_bindings(Some(&format!("user:{evil}")), None)
            .await?[0]
            .scope,
        "t%/_a"
    );
    // '%' and '_' are not wildcards in the prefix delete.
    assert_eq!(store.delete_bindings_under("t_").await?, 0);
    assert_eq!(store.delete_bindings_under("t%").await?, 1);
    let mut a = audit(evil, 1, Some(evil), None);
    a.details = serde_json::json!({ "sql": evil, "nested": { "q": "' OR 1=1 --" } });
    store.insert_audit(&[a.clone()]).await?;
    let page = store
        .query_audit(&AuditQuery {
            tenant: Some(evil.into()),
            actor: Some("user:alice".into()),
            ..AuditQuery::default()
        })
        .await?;
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].tenant.as_deref(), Some(evil));
    assert_eq!(page.records[0].details, a.details);
    assert_eq!(store.list_users().await?.len(), 1, "users table intact");
    Ok(())
}

async fn migration_upgrade_keeps_rows(db: Db) -> Result<()> {
    // A database made by version 1 of the schema, with rows in it.
    match db.kind {
        BackendKind::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await?;
            sqlx::migrate!("./migrations/postgres")
                .run_to(1, &pool)
                .await?;
            seed_v1(&pool).await?;
            let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(&pool)
                .await?;
            assert_eq!(applied, 1);
            pool.close().await;
        }
        BackendKind::Sqlite => {
            let options = db
                .url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()?
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await?;
            sqlx::migrate!("./migrations/sqlite")
                .run_to(1, &pool)
                .await?;
            seed_v1(&pool).await?;
            pool.close().await;
        }
    }

    let store = db.open().await?;
    let kept = store
        .get_user("legacy")
        .await?
        .expect("the v1 user survives");
    assert_eq!(kept.password_hash, "legacy-hash");
    assert_eq!(kept.created_at_ms, 42);
    let page = store.query_audit(&AuditQuery::default()).await?;
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].details, serde_json::json!({ "v": 1 }));
    // Version 2's table works.
    assert_eq!(store.record_login_failure("legacy", 100, 60_000).await?, 1);
    assert_eq!(store.change_counter().await?, 3);
    Ok(())
}

/// Rows written the way version 1 of the schema stores them.
macro_rules! seed_v1_body {
    ($pool:expr) => {{
        sqlx::query(
            "INSERT INTO users (username, password_hash, display_name, disabled, created_at_ms, \
             updated_at_ms) VALUES ('legacy', 'legacy-hash', NULL, FALSE, 42, 42)",
        )
        .execute($pool)
        .await?;
        sqlx::query(
            "INSERT INTO audit_log (record_key, time_ms, actor, action, resource, outcome, \
             request_id, source_ip, user_agent, details) \
             VALUES ('raft:1', 5, 'user:legacy', 'a', 'r', 'success', 'q', 'ip', 'ua', '{\"v\": 1}')",
        )
        .execute($pool)
        .await?;
        sqlx::query("UPDATE identity_state SET change_counter = 3")
            .execute($pool)
            .await?;
        Ok(())
    }};
}

trait SeedV1 {
    async fn seed(&self) -> Result<()>;
}

impl SeedV1 for sqlx::PgPool {
    async fn seed(&self) -> Result<()> {
        seed_v1_body!(self)
    }
}

impl SeedV1 for sqlx::SqlitePool {
    async fn seed(&self) -> Result<()> {
        seed_v1_body!(self)
    }
}

async fn seed_v1(pool: &impl SeedV1) -> Result<()> {
    pool.seed().await
}

async fn reconnecting_to_a_migrated_database(db: Db) -> Result<()> {
    let first = db.open().await?;
    first.create_user(&user("kim", 1)).await?;
    first.close().await;
    let closed = first.ping().await;
    assert!(
        matches!(closed, Err(MetadataError::Unavailable(_))),
        "{closed:?}"
    );
    // Opening again applies nothing new and finds the data.
    let second = db.open().await?;
    second.ping().await?;
    assert!(second.get_user("kim").await?.is_some());
    Ok(())
}

async fn a_held_write_lock_times_out_as_unavailable(db: Db) -> Result<()> {
    // Statement timeout (PostgreSQL) / busy timeout (SQLite) of 300 ms: a write stuck behind
    // another writer's lock gives up instead of hanging.
    let store = db
        .open_with(&PoolSettings {
            statement_timeout: Duration::from_millis(300),
            ..PoolSettings::default()
        })
        .await?;
    let counter = store.change_counter().await?;
    let lock_held = |store: MetadataStore| async move {
        let started = Instant::now();
        let r = store.create_user(&user("blocked", 1)).await;
        assert!(matches!(r, Err(MetadataError::Unavailable(_))), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        // Readers are not blocked by a writer.
        assert_eq!(store.change_counter().await?, counter);
        assert!(store.load_identity(0).await?.users.is_empty());
        Ok::<_, anyhow::Error>(())
    };
    match db.kind {
        BackendKind::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await?;
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE identity_state SET change_counter = change_counter WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            lock_held(store.clone()).await?;
            tx.rollback().await?;
            pool.close().await;
        }
        BackendKind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await?;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query("UPDATE identity_state SET change_counter = change_counter WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            lock_held(store.clone()).await?;
            tx.rollback().await?;
            pool.close().await;
        }
    }
    store.create_user(&user("blocked", 1)).await?;
    Ok(())
}
