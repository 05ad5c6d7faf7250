//! The harness's network against the real kernel (needs root, iproute2 and nftables, as the
//! partition tests of the server do): namespaces reach each other over the bridge, a filter
//! drops exactly what it names and heals, and what a dead harness left behind is removed
//! while a live run's namespaces are not touched.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use conflux_chaos::net::{Filter, Net, remove_leftovers};
use nix::sched::{CloneFlags, setns};

/// Runs `f` on a thread that has entered node `node`'s network namespace.
fn in_namespace<T: Send + 'static>(
    net: &Net,
    node: u64,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let path = format!("/var/run/netns/{}", net.namespace(node));
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).expect("the namespace's file");
        setns(&ns, CloneFlags::CLONE_NEWNET).expect("entering the namespace");
        f()
    })
    .join()
    .expect("the namespace thread")
}

fn connects(net: &Net, from: u64, to: SocketAddr) -> bool {
    in_namespace(net, from, move || {
        TcpStream::connect_timeout(&to, Duration::from_millis(500)).is_ok()
    })
}

fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nodes_reach_each_other_until_a_filter_drops_them_and_nothing_is_left_afterwards() {
    let mut net = Net::create().unwrap();
    net.add_node(1).unwrap();
    net.add_node(2).unwrap();
    let ip1 = net.ip(1);
    // A listener in node 1's namespace, on its address; it accepts in the background.
    let listener = in_namespace(&net, 1, move || TcpListener::bind((ip1, 0)).unwrap());
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || for _ in listener.incoming() {});

    assert!(connects(&net, 2, addr), "node 2 reaches node 1");
    // The harness itself, on the bridge, reaches it too.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());

    net.set_filter(
        1,
        Filter {
            drop_from: vec![net.ip(2)],
            drop_to: vec![net.ip(2)],
            loss: None,
        },
    )
    .unwrap();
    assert!(
        !connects(&net, 2, addr),
        "the filter drops node 2's packets"
    );
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok(),
        "clients on the bridge are never cut off"
    );
    net.heal_all().unwrap();
    assert!(connects(&net, 2, addr), "healed");

    let names = [net.namespace(1), net.namespace(2)];
    assert!(names.iter().all(|n| namespaces().contains(n.as_str())));
    drop(net);
    let left = namespaces();
    assert!(names.iter().all(|n| !left.contains(n.as_str())), "{left}");
}

#[test]
fn leftovers_of_a_dead_harness_are_removed_and_a_live_one_is_kept() {
    // (Net::create removes leftovers itself, so the live run starts first.)
    let mut live = Net::create().unwrap();
    live.add_node(1).unwrap();
    // A process id that is certainly dead: a child that exited and was reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = format!("cfx-{dead}-1");
    let status = Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .unwrap();
    assert!(status.success());

    let removed = remove_leftovers();
    assert!(
        removed.iter().any(|r| r.contains(&stale)),
        "{removed:?} should name {stale}"
    );
    let left = namespaces();
    assert!(!left.contains(&stale), "{left}");
    assert!(
        left.contains(&live.namespace(1)),
        "a live run's namespace stays"
    );
}
