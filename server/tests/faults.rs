//! Faults that once cost availability or correctness, replayed over real processes: a leader
//! cut off by a real partition (nftables drops) while writes are in flight or forwarded to
//! it, a leadership
//! transfer whose request is cancelled, a node with a fast clock, entries of huge proposals,
//! and a static member that lost its disk.

mod common;

use std::time::{Duration, SystemTime};

use common::{applied, blocking, client, eventually, metric, push, setup_config};
use conflux_api_types::{PublishRequest, Strategy};
use conflux_client::{ClientError, NewVersion, WriteOptions};
use conflux_testkit::{Cluster, Member, TestNode};

fn others(cluster: &Cluster, leader: u64) -> Vec<u64> {
    cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect()
}

fn code(e: &ClientError) -> String {
    e.code().to_owned()
}

/// A leader cut off from its peers keeps taking writes into its log, where they can never
/// commit. The majority moves on, far enough that the cut-off node's tail is replaced by a
/// snapshot when it comes back; openraft never answers those writes. The batcher used to
/// hold its in-flight slots for them for good, so once that node led again it could not
/// commit anything until restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_cut_off_with_writes_in_flight_commits_again_when_it_leads_again() {
    let args = ["--snapshot-every", "100", "--write-timeout", "3s"];
    let cluster =
        Cluster::start_partitionable(3, args.map(String::from).to_vec()).expect("cluster starts");
    let old = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let oc = client(cluster.node(old));
    let id = setup_config(&oc, "cut.txt").await;

    let partition = cluster.isolate(old).expect("partition");
    // Writes sent to the cut-off leader enter its log but cannot commit.
    let stuck: Vec<_> = (0..8)
        .map(|i| {
            let oc = oc.clone();
            tokio::spawn(async move { push(&oc, id, &format!("stuck {i}")).await })
        })
        .collect();

    let new = cluster
        .wait_for_leader_among(&others(&cluster, old), Duration::from_secs(30))
        .expect("the majority elects a leader");
    let nc = client(cluster.node(new));
    let old_log = metric(cluster.node(old), "conflux_raft_last_log_index")
        .await
        .expect("the cut-off node exports its last log index");
    // Both nodes of the majority purge past it, so whichever of them leads after the heal
    // can only send a snapshot.
    let purged_past = |index: u64| {
        let cluster = &cluster;
        async move {
            for id in others(cluster, old) {
                let purged = metric(cluster.node(id), "conflux_raft_purged_index").await;
                if purged.is_none_or(|p| p <= index as f64) {
                    return false;
                }
            }
            true
        }
    };
    let mut rounds = 0;
    let mut write_until_purged_past = async |index: u64| {
        while !purged_past(index).await {
            rounds += 1;
            assert!(rounds <= 40, "the new leader never purged past {index}");
            let writers: Vec<_> = (0..8)
                .map(|w| {
                    let nc = nc.clone();
                    tokio::spawn(async move {
                        for i in 0..10 {
                            push(&nc, id, &format!("majority r{rounds} w{w} i{i}"))
                                .await
                                .unwrap();
                        }
                    })
                })
                .collect();
            for w in writers {
                w.await.unwrap();
            }
        }
    };
    write_until_purged_past(old_log as u64).await;
    // Until it purged, the leader kept sending entries to the cut-off node; those requests
    // may still sit in TCP's retransmission queue and arrive after the heal, carrying the
    // node forward by append. Purging once more past everything written so far leaves a
    // gap only a snapshot can fill.
    let written = metric(cluster.node(new), "conflux_raft_last_log_index")
        .await
        .expect("the leader exports its last log index");
    write_until_purged_past(written as u64).await;

    // Every write sent to the cut-off leader was answered, and none was acknowledged: their
    // outcome is unknown to the client, which may retry with its idempotency key.
    for s in stuck {
        let outcome = s.await.unwrap();
        let e = outcome.expect_err("a write to a cut-off leader cannot be acknowledged");
        assert_eq!(code(&e), "write_timeout", "{e}");
    }

    partition.heal().unwrap();
    let target = applied(&nc).await.unwrap();
    eventually(
        Duration::from_secs(60),
        "the healed node to catch up",
        || {
            let oc = oc.clone();
            async move { applied(&oc).await.is_some_and(|a| a >= target) }
        },
    )
    .await;
    assert!(
        cluster.node(old).log_contains("installed snapshot"),
        "the healed node should have caught up by snapshot (its log ended at {old_log}, the \
         leader purged past it):\n{}",
        cluster.node(old).log_tail(30)
    );

    // It leads again, and commits.
    nc.transfer_leader(Some(old))
        .await
        .expect("leadership moves back");
    assert_eq!(
        cluster
            .wait_for_leader(Duration::from_secs(30))
            .expect("an agreed leader"),
        old
    );
    for i in 0..10 {
        push(&oc, id, &format!("after the heal {i}"))
            .await
            .expect("the node that leads again commits writes");
    }
}

/// A follower forwards writes to its leader. When that leader is cut off it neither answers
/// nor closes the connection, so the follower used to hold every forwarded write until the
/// write timeout, long after the others had elected a new leader. Now it stops waiting when
/// it learns of the new leader: a write with an idempotency key is sent to the new leader
/// (the key makes a second copy harmless), one without is answered at once as of unknown
/// outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_forwarded_to_a_leader_that_is_cut_off_moves_to_the_new_leader() {
    // Far longer than the test may take: no answer here comes from the write timeout.
    let args = ["--write-timeout", "120s"];
    let cluster =
        Cluster::start_partitionable(3, args.map(String::from).to_vec()).expect("cluster starts");
    let old = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let follower = others(&cluster, old)[0];
    let fc = client(cluster.node(follower)).with_timeout(Duration::from_secs(60));
    let id = setup_config(&fc, "forwarded.txt").await;
    push(&fc, id, "before the cut").await.unwrap();

    let partition = cluster.isolate(old).expect("partition");
    // Both leave the follower for the old leader: no node can elect another for a second.
    let keyed = {
        let fc = fc.clone();
        tokio::spawn(async move {
            fc.create_version(
                id,
                NewVersion::new("keyed".to_owned(), "text/plain"),
                &WriteOptions::default().idempotency_key("moved-1"),
            )
            .await
        })
    };
    let unkeyed = {
        let fc = fc.clone();
        tokio::spawn(async move { push(&fc, id, "unkeyed").await })
    };

    let created = keyed
        .await
        .unwrap()
        .expect("the keyed write commits through the new leader while the old one is cut off");
    let e = unkeyed
        .await
        .unwrap()
        .expect_err("a write without a key cannot be sent twice");
    assert_eq!(code(&e), "write_timeout", "{e}");
    assert!(
        e.to_string().contains("leadership moved"),
        "the unkeyed write should be answered when the leader changed: {e}"
    );
    let new = cluster
        .wait_for_leader_among(&others(&cluster, old), Duration::from_secs(30))
        .expect("the majority has a leader");
    assert_ne!(new, old);
    // The keyed write is in the majority's state exactly once, and a retry with the same
    // key answers the same version.
    let again = fc
        .create_version(
            id,
            NewVersion::new("keyed".to_owned(), "text/plain"),
            &WriteOptions::default().idempotency_key("moved-1"),
        )
        .await
        .expect("a retry with the same key");
    assert_eq!(again.version_id, created.version_id);
    partition.heal().unwrap();
}

/// A leadership transfer switches elections and heartbeats off on the leader and the
/// other voters; the request that started it may be dropped mid-way (client gone), and the
/// transfer must still run to its end and switch everything back on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_leadership_transfer_still_completes() {
    let cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let target = others(&cluster, leader)[0];
    let impatient = common::client(cluster.node(leader)).with_timeout(Duration::from_millis(300));
    // The transfer waits for the followers' leader lease (about a second) before the target
    // campaigns, so this client gives up while it is under way.
    let gave_up = impatient.transfer_leader(Some(target)).await;
    assert!(
        gave_up.is_err(),
        "the transfer answered within 300 ms: {gave_up:?}"
    );
    // The transfer went on without its request: the target leads, and every node agrees.
    eventually(
        Duration::from_secs(4),
        "the target to lead after the cancelled request",
        || {
            let c = client(cluster.node(target));
            async move { c.ready().await.is_ok_and(|r| r.leader_id == Some(target)) }
        },
    )
    .await;
    assert_eq!(
        cluster.wait_for_leader(Duration::from_secs(10)).unwrap(),
        target
    );
    // The old leader takes part in elections again: it can be given leadership back.
    let tc = client(cluster.node(target));
    tc.transfer_leader(Some(leader))
        .await
        .expect("the old leader can lead again");
    assert_eq!(
        cluster.wait_for_leader(Duration::from_secs(10)).unwrap(),
        leader
    );
    let lc = client(cluster.node(leader));
    let id = setup_config(&lc, "after-transfer.txt").await;
    push(&lc, id, "written after two transfers").await.unwrap();
}

fn millis(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?}: {e}"))
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Times in the replicated state come from the leader: a follower whose clock runs a week
/// ahead once stamped every write it received with its own time, and the state's clock
/// (which only moves forward) then stayed a week ahead for every later write too, expiring
/// idempotency keys and purging day-based retention early.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_with_a_fast_clock_does_not_move_the_cluster_clock() {
    const WEEK_MS: i64 = 7 * 24 * 60 * 60 * 1000;
    let mut cluster = Cluster::start(3).expect("cluster starts");
    // Node 3 runs with its clock a week ahead.
    let node = cluster.node_mut(3);
    node.spec
        .env
        .push(("CONFLUX_TEST_CLOCK_OFFSET_MS".into(), WEEK_MS.to_string()));
    node.terminate().unwrap();
    node.restart().unwrap();
    assert!(cluster.node(3).log_contains("clock is skewed on purpose"));
    let mut leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    if leader == 3 {
        client(cluster.node(3))
            .transfer_leader(Some(1))
            .await
            .unwrap();
        leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    }
    assert_ne!(leader, 3, "the node with the fast clock must not lead here");

    let skewed = client(cluster.node(3));
    let id = setup_config(&skewed, "clock.txt").await;
    let before = now_ms();
    let v1 = push(&skewed, id, "through the fast follower")
        .await
        .unwrap();
    let v2 = push(&client(cluster.node(leader)), id, "through the leader")
        .await
        .unwrap();
    let after = now_ms();
    for v in [v1, v2] {
        // Read on the leader, which applied both before acknowledging.
        let view = client(cluster.node(leader))
            .get_version(id, v)
            .await
            .unwrap();
        let created = millis(&view.created_at);
        // The API shows seconds; allow for that and for this machine's scheduling.
        assert!(
            created + 2_000 >= before && created <= after + 2_000,
            "version {v} created at {created}, the write happened between {before} and {after}"
        );
    }
}

/// The batcher once bounded an entry by its version contents only: proposals with small
/// contents and megabytes of other fields made one entry larger than the Raft transport
/// accepts, refused forever in a hot loop, and nothing committed any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_of_many_huge_proposals_still_replicate() {
    let cluster = Cluster::start(3).expect("cluster starts");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    let lc = client(cluster.node(leader));
    let id = setup_config(&lc, "huge.txt").await;
    // 40 proposals of 3 MiB each queue up together: one entry of 120 MiB if only contents
    // counted. (The description is rejected in apply, so every one of them goes through
    // Raft first.)
    let description = "d".repeat(3 * 1024 * 1024);
    let requests: Vec<_> = (0..40)
        .map(|i| {
            let lc = common::client(cluster.node(leader)).with_timeout(Duration::from_secs(60));
            let body = PublishRequest {
                content: format!("small content {i}"),
                description: Some(description.clone()),
                strategy: Strategy::Stable,
            };
            tokio::spawn(async move { lc.publish(id, &body, &WriteOptions::default()).await })
        })
        .collect();
    // Each is answered: refused in apply, or (if the appends of such entries outlast a
    // heartbeat on a starved machine and a new leader is elected meanwhile) with an unknown
    // outcome. None hangs, and none is accepted.
    let mut refused = 0;
    for r in requests {
        let e = r
            .await
            .unwrap()
            .expect_err("a 3 MiB description is refused");
        match code(&e).as_str() {
            "invalid_argument" => refused += 1,
            "write_timeout" | "not_leader" => {}
            other => panic!("unexpected answer {other}: {e}"),
        }
    }
    assert!(refused > 0, "no huge proposal went through Raft to apply");
    // The cluster still commits, and every node applies what it commits.
    let v = push(&lc, id, "after the huge ones").await.unwrap();
    let target = applied(&lc).await.unwrap();
    for node in cluster.ids() {
        let c = client(cluster.node(node));
        eventually(
            Duration::from_secs(30),
            "every node to apply the huge entries",
            || {
                let c = c.clone();
                async move { applied(&c).await.is_some_and(|a| a >= target) }
            },
        )
        .await;
        assert_eq!(c.get_config(id).await.unwrap().latest_version, v);
    }
}

/// A static member that comes back with an empty data directory although the cluster knows
/// it held data refuses to start (it would vote with an empty log). A member that simply
/// starts later than the others, for the first time, is welcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_static_member_that_lost_its_disk_refuses_to_start() {
    let members: Vec<Member> = (1..=3).map(|id| Member::reserve(id).unwrap()).collect();
    let token = conflux_testkit::random_token();
    let mut args = conflux_testkit::metadata_args().unwrap();
    let kms_dir = tempfile::TempDir::new().unwrap();
    args.extend(conflux_testkit::kms_args(kms_dir.path()).unwrap());
    for m in &members {
        args.push("--peer".to_owned());
        args.push(m.peer_arg());
    }
    // Two members form the cluster and take writes; the third starts late, for the first
    // time, and joins in.
    let first: Vec<TestNode> = members[..2]
        .iter()
        .map(|m| TestNode::start(m.spec(&args, &token)).unwrap())
        .collect();
    let c1 = client(&first[0]);
    eventually(Duration::from_secs(30), "a leader", || {
        let c1 = c1.clone();
        async move { c1.ready().await.is_ok_and(|r| r.ready) }
    })
    .await;
    let id = setup_config(&c1, "disk.txt").await;
    push(&c1, id, "before the late start").await.unwrap();
    let late = blocking({
        let spec = members[2].spec(&args, &token);
        move || TestNode::start(spec)
    })
    .await
    .expect("a member starting for the first time is accepted");
    let c3 = client(&late);
    let target = applied(&c1).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the late member to catch up",
        || {
            let c3 = c3.clone();
            async move { applied(&c3).await.is_some_and(|a| a >= target) }
        },
    )
    .await;
    // Once it has caught up, the cluster records that it holds data.
    eventually(
        Duration::from_secs(30),
        "the late member to be recorded",
        || {
            let recorded = late.log_contains("recorded as a member that holds data");
            async move { recorded }
        },
    )
    .await;
    let data_dir = late.data_dir();

    // Its disk is lost: the same member, same addresses, empty data directory.
    drop(late);
    std::fs::remove_dir_all(&data_dir).ok();
    let refused = blocking({
        let spec = members[2].spec(&args, &token);
        move || TestNode::start(spec)
    })
    .await
    .expect_err("a member that lost its data must not start");
    let message = format!("{refused:#}");
    assert!(
        message.contains("already a member of this cluster") && message.contains("--join"),
        "{message}"
    );
    // The cluster is unharmed.
    push(&c1, id, "after the refused start").await.unwrap();
}
