//! The harness's network against the real kernel (needs root, iproute2 and nftables, as the
//! partition tests of the server do): namespaces reach each other over the bridge, a filter
//! drops exactly what it names and heals, the delay proxy holds a delayed node's traffic and
//! goes without a trace, and what a dead harness left behind is removed while a live run's
//! namespaces are not touched.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conflux_chaos::delay::{DelaySpec, thread_name};
use conflux_chaos::net::{DELAY_PROXY_PORT, Filter, Net, remove_leftovers};
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

/// An echo server on `port` of node `node`'s address: it sends back whatever it reads and
/// logs every chunk it read, in the order they arrived over all its connections.
fn echo_server(net: &Net, node: u64, port: u16) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let ip = net.ip(node);
    let listener = in_namespace(net, node, move || TcpListener::bind((ip, port)).unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let server_log = log.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let log = server_log.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    log.lock().unwrap().push(buf[..n].to_vec());
                    if stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    log
}

/// A connection from node `from`'s namespace (the socket stays there when the thread goes).
fn connect(net: &Net, from: u64, to: SocketAddr) -> TcpStream {
    let stream = in_namespace(net, from, move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(2)).unwrap()
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends `message` and reads back as many bytes.
fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(message)?;
    let mut echoed = vec![0; message.len()];
    stream.read_exact(&mut echoed)?;
    Ok(echoed)
}

fn ruleset(net: &Net, node: u64) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.namespace(node),
            "nft",
            "list",
            "ruleset",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names of this process's threads.
fn threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn a_delayed_node_gets_every_byte_late_and_in_order_and_heals_back_to_direct() {
    const PORT: u16 = 5000;
    let mut net = Net::create().unwrap();
    net.add_node(1).unwrap();
    net.add_node(2).unwrap();
    let (ip1, ip2) = (net.ip(1), net.ip(2));
    echo_server(&net, 1, PORT);
    let addr = SocketAddr::from((ip1, PORT));
    let mut before = connect(&net, 2, addr);
    assert_eq!(round_trip(&mut before, b"hello").unwrap(), b"hello");

    let spec = DelaySpec {
        base_ms: 60..100,
        jitter_ms: 20,
        seed: 11,
    };
    // The first connection the proxy accepts is number 0.
    let base = spec.connection(0)[0].base();
    net.start_delay(1, PORT, &[ip2], spec).unwrap();
    let rules = ruleset(&net, 1);
    assert!(
        rules.contains(&format!("tcp dport {PORT} redirect to :{DELAY_PROXY_PORT}")),
        "{rules}"
    );
    let proxy_thread = thread_name(SocketAddr::from((ip1, DELAY_PROXY_PORT)));
    assert!(threads().contains(&proxy_thread), "{:?}", threads());
    assert!(
        round_trip(&mut before, b"again").is_err(),
        "a connection made before the delay is reset (it would go on directly)"
    );

    let mut conn = connect(&net, 2, addr);
    let mut sent = 0;
    for (i, size) in [1, 100, 1500, 16 * 1024, 70_000, 300_000, 5, 40_000]
        .into_iter()
        .enumerate()
    {
        let message: Vec<u8> = (0..size).map(|j| ((i * 7 + j) % 251) as u8).collect();
        let t = Instant::now();
        let echoed = round_trip(&mut conn, &message).unwrap();
        let rtt = t.elapsed();
        assert!(
            echoed == message,
            "message {i} ({size} bytes) came back changed"
        );
        // Held at least the base each way (never an upper bound: the machine is noisy).
        assert!(
            rtt >= 2 * base,
            "message {i}: round trip {rtt:?}, base {base:?}"
        );
        sent += 2 * size as u64;
    }
    // (The proxy counts a chunk once its write returned, which may be just after the echo
    // was read.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while net.delay_stats(1).unwrap().bytes < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = net.delay_stats(1).unwrap();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.bytes, sent, "every byte went through the proxy");

    // The harness's own address is no peer: it goes directly.
    let mut host = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    assert_eq!(round_trip(&mut host, b"host").unwrap(), b"host");
    assert_eq!(net.delay_stats(1).unwrap().connections, 1);

    let stats = net.stop_delay(1).unwrap().unwrap();
    assert_eq!(stats.bytes, sent);
    let rules = ruleset(&net, 1);
    assert!(!rules.contains("redirect"), "{rules}");
    assert!(!threads().contains(&proxy_thread), "{:?}", threads());
    assert!(
        round_trip(&mut conn, b"x").is_err(),
        "the proxied connection is gone with the proxy"
    );
    // A new connection works with no proxy to go through: it goes directly.
    let mut after = connect(&net, 2, addr);
    assert_eq!(round_trip(&mut after, b"direct").unwrap(), b"direct");
    assert_eq!(net.stop_delay(1).unwrap(), None);
}

#[test]
fn messages_on_different_connections_overtake_each_other_and_drop_stops_the_proxy() {
    const PORT: u16 = 5001;
    let mut net = Net::create().unwrap();
    net.add_node(3).unwrap();
    net.add_node(4).unwrap();
    let (ip3, ip4) = (net.ip(3), net.ip(4));
    let log = echo_server(&net, 3, PORT);
    let addr = SocketAddr::from((ip3, PORT));
    // A seed whose first connection is much slower than its second, by more than any noise.
    let spec = (0..)
        .map(|seed| DelaySpec {
            base_ms: 0..1000,
            jitter_ms: 10,
            seed,
        })
        .find(|s| {
            s.connection(0)[0].base() >= s.connection(1)[0].base() + Duration::from_millis(500)
        })
        .unwrap();
    net.start_delay(3, PORT, &[ip4], spec).unwrap();
    let accepted = |n| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while net.delay_stats(3).unwrap().connections < n {
            assert!(Instant::now() < deadline, "the proxy did not accept");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let mut slow = connect(&net, 4, addr);
    accepted(1);
    let mut fast = connect(&net, 4, addr);
    accepted(2);
    slow.write_all(b"slow").unwrap();
    fast.write_all(b"fast").unwrap();
    let mut echoed = [0; 4];
    fast.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"fast");
    slow.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"slow");
    assert_eq!(
        *log.lock().unwrap(),
        [b"fast".to_vec(), b"slow".to_vec()],
        "sent second, arrived first"
    );

    let proxy_thread = thread_name(SocketAddr::from((ip3, DELAY_PROXY_PORT)));
    assert!(threads().contains(&proxy_thread));
    drop(net);
    assert!(!threads().contains(&proxy_thread), "{:?}", threads());
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
