//! The API listener on TLS, over real processes: the whole API (REST, long poll, WebSocket,
//! gRPC, forwarding, joining) through the client crate on a 3-node cluster, client
//! certificates required by `--api-tls-client-ca`, a client refusing a server certificate from
//! a foreign CA, certificate files replaced under a running node, and bad files at start-up.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{push, setup_config, ws_next};
use conflux_api_types::{PublishRequest, Strategy, WatchMessage};
use conflux_client::{ApiClient, ClientError, FetchOptions, Fetched, TlsOptions, WatchOptions};
use conflux_domain::ConfigPath;
use conflux_server::api::grpc::pb;
use conflux_testkit::tls::{ClientTls, NodeCert, TestCa};
use conflux_testkit::{Cluster, NodeSpec, TestNode};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// The client crate's options for `tls`.
fn options(tls: &ClientTls) -> TlsOptions {
    let mut o = TlsOptions::new().ca_cert_file(&tls.ca);
    if let Some((cert, key)) = &tls.identity {
        o = o.client_identity_files(cert, key);
    }
    o
}

/// A client of `node` with the cluster_admin `token`, reaching it as `tls` says.
fn tls_client(node: &TestNode, token: &str, tls: &ClientTls) -> ApiClient {
    ApiClient::builder(node.api_url())
        .bearer_token(token)
        .timeout(Duration::from_secs(10))
        .tls(options(tls))
        .build()
        .expect("client")
}

/// A node on its own with its API on TLS with `cert`, plus `extra` arguments.
fn tls_node(cert: &NodeCert, client: ClientTls, extra: &[String]) -> TestNode {
    let mut spec = NodeSpec::new(1).api_tls(cert, client);
    spec.extra_args.extend(extra.iter().cloned());
    TestNode::start(spec).expect("node starts")
}

/// Whether `e` is a failure to establish the connection (TLS refused), not an answer.
fn refused(e: &ClientError) -> bool {
    matches!(e, ClientError::Transport { .. })
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A WebSocket watch session over TLS. WebSocket upgrades are HTTP/1.1, so the client offers
/// only `http/1.1` in ALPN.
async fn wss_connect(node: &TestNode, token: &str, tls: &ClientTls) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut config = options(tls).client_config(true).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(node.api_addr())
        .await
        .unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let url = format!("wss://{}/api/v1/watch/ws", node.api_addr());
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::client_async(request, stream)
        .await
        .expect("WebSocket upgrade over TLS")
        .0
}

/// A gRPC channel to `node` over TLS (tonic, ring).
async fn grpc_channel(node: &TestNode, tls: &ClientTls) -> tonic::transport::Channel {
    let mut config = tonic::transport::ClientTlsConfig::new().ca_certificate(
        tonic::transport::Certificate::from_pem(std::fs::read(&tls.ca).unwrap()),
    );
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(tonic::transport::Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ));
    }
    tonic::transport::Endpoint::from_shared(node.api_url())
        .unwrap()
        .tls_config(config)
        .unwrap()
        .connect()
        .await
        .expect("gRPC over TLS connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_api_works_over_tls_on_a_three_node_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "cluster").unwrap();
    let cert = ca.node_cert("node").unwrap();
    // Raft mTLS and API TLS with client certificates from the same CA: nodes join over the
    // API with their Raft certificate.
    let mut args = cert.args();
    args.extend(cert.api_args());
    args.extend(["--api-tls-client-ca".into(), cert.ca.display().to_string()]);
    let tls = cert.client_tls();
    let mut cluster = Cluster::start_tls(3, args, tls.clone()).expect("a TLS cluster forms");
    let token = cluster.token().to_owned();
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).unwrap();
    assert!(cluster.node(leader).api_url().starts_with("https://"));
    let follower = cluster.ids().into_iter().find(|i| *i != leader).unwrap();
    let lc = tls_client(cluster.node(leader), &token, &tls);
    let fc = tls_client(cluster.node(follower), &token, &tls);

    // Management writes on a follower are forwarded to the leader.
    let id = setup_config(&fc, "tls.txt").await;
    let v1 = push(&fc, id, "one over TLS").await.unwrap();
    assert_eq!(lc.get_version(id, v1).await.unwrap().version_id, v1);
    let published = fc
        .publish(
            id,
            &PublishRequest {
                content: "two over TLS".into(),
                description: None,
                strategy: Strategy::Stable,
            },
            &Default::default(),
        )
        .await
        .unwrap();

    // Fetch with ETag and 304, on the follower, at the publish's revision.
    let path = ConfigPath::new("acme", "shop", "prod", "tls.txt");
    let opts = FetchOptions {
        min_revision: Some(published.revision),
        ..Default::default()
    };
    let Fetched::Modified { content, etag, .. } = fc.fetch(&path, &opts).await.unwrap() else {
        panic!("expected content");
    };
    assert_eq!(&content[..], b"two over TLS");
    let again = FetchOptions {
        if_none_match: Some(etag),
        ..opts.clone()
    };
    assert!(matches!(
        fc.fetch(&path, &again).await.unwrap(),
        Fetched::NotModified
    ));

    // Long poll, WebSocket and gRPC see the next change.
    let poll = {
        let fc = fc.clone();
        let path = path.clone();
        let revision = published.revision;
        tokio::spawn(async move {
            fc.watch(
                &path,
                &WatchOptions {
                    revision,
                    timeout: Some(Duration::from_secs(20)),
                    ..Default::default()
                },
            )
            .await
        })
    };
    let mut ws = wss_connect(cluster.node(follower), &token, &tls).await;
    ws.send(Message::Text(
        format!(
            r#"{{"subscribe": [{{"key": "acme/shop/prod/tls.txt", "revision": {}}}]}}"#,
            published.revision
        )
        .into(),
    ))
    .await
    .unwrap();
    assert!(matches!(
        ws_next(&mut ws).await,
        WatchMessage::Subscribed { .. }
    ));
    let channel = grpc_channel(cluster.node(follower), &tls).await;
    let mut watch = {
        let mut req = tonic::Request::new(pb::WatchRequest {
            key: "acme/shop/prod/tls.txt".into(),
            revision: published.revision,
            version: None,
            client: None,
        });
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        pb::watch_client::WatchClient::new(channel.clone())
            .watch(req)
            .await
            .expect("gRPC watch over TLS")
            .into_inner()
    };
    let third = lc
        .publish(
            id,
            &PublishRequest {
                content: "three over TLS".into(),
                description: None,
                strategy: Strategy::Stable,
            },
            &Default::default(),
        )
        .await
        .unwrap();
    let event = poll.await.unwrap().unwrap().expect("a long-poll event");
    assert_eq!(event.version_id, Some(third.version_id));
    match ws_next(&mut ws).await {
        WatchMessage::Event(e) => assert_eq!(e.version_id, Some(third.version_id)),
        other => panic!("expected an event, got {other:?}"),
    }
    let e = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.version_id, Some(third.version_id));

    // gRPC fetch over TLS.
    let mut req = tonic::Request::new(pb::FetchRequest {
        key: "acme/shop/prod/tls.txt".into(),
        min_revision: third.revision,
        ..Default::default()
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let fetched = pb::config_client::ConfigClient::new(channel)
        .fetch(req)
        .await
        .expect("gRPC fetch over TLS")
        .into_inner();
    assert_eq!(&fetched.content[..], b"three over TLS");

    // Plain HTTP to the TLS port gets no answer.
    let plain = ApiClient::builder(format!("http://{}", cluster.node(leader).api_addr()))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(plain.health().await.is_err());

    // A fourth node joins through the leader's TLS API, presenting its Raft certificate.
    tokio::task::spawn_blocking(move || {
        cluster.join(4, leader).expect("node 4 joins over https");
        cluster
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_from_the_client_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "api").unwrap();
    let server = ca.node_cert("server").unwrap();
    let client_cert = ca.node_cert("client").unwrap();
    let rogue = TestCa::new(dir.path(), "rogue")
        .unwrap()
        .node_cert("rogue")
        .unwrap();
    let node = tls_node(
        &server,
        client_cert.client_tls(),
        &[
            "--api-tls-client-ca".into(),
            ca.ca_path().display().to_string(),
        ],
    );
    assert!(node.get_json("/health", None).is_ok());
    let token = node.token();

    let with_cert = tls_client(&node, &token, &client_cert.client_tls());
    with_cert
        .health()
        .await
        .expect("a certificate from the client CA is accepted");
    with_cert.list_tenants().await.unwrap();

    let without = tls_client(&node, &token, &ca.client_tls());
    let err = without.health().await.unwrap_err();
    assert!(refused(&err), "{err}");
    let foreign = ClientTls {
        ca: ca.ca_path().to_owned(),
        identity: Some((rogue.cert.clone(), rogue.key.clone())),
    };
    let err = tls_client(&node, &token, &foreign)
        .health()
        .await
        .unwrap_err();
    assert!(refused(&err), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refuses_a_server_certificate_from_a_foreign_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ours = TestCa::new(dir.path(), "ours").unwrap();
    let theirs = TestCa::new(dir.path(), "theirs").unwrap();
    let impostor = theirs.node_cert("impostor").unwrap();
    let node = tls_node(&impostor, theirs.client_tls(), &[]);
    assert!(node.get_json("/health", None).is_ok());

    let err = tls_client(&node, &node.token(), &ours.client_tls())
        .health()
        .await
        .unwrap_err();
    assert!(refused(&err), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    // Without a CA bundle the system trust store decides, and it does not know the test CA
    // (a machine without a usable trust store refuses to build such a client instead).
    match ApiClient::builder(node.api_url()).build() {
        Ok(c) => {
            let err = c.health().await.unwrap_err();
            assert!(refused(&err), "{err}");
        }
        Err(e) => assert_eq!(e.field(), Some("ca_cert"), "{e}"),
    }
    // The SDK refuses it as well.
    let sdk = conflux_client::ConfluxClient::new([node.api_url()])
        .with_ca_cert_pem(std::fs::read(ours.ca_path()).unwrap())
        .start_mode(conflux_client::StartMode::FailFast)
        .build()
        .await;
    assert!(sdk.is_err());
    let sdk = conflux_client::ConfluxClient::new([node.api_url()])
        .with_ca_cert_pem(std::fs::read(theirs.ca_path()).unwrap())
        .start_mode(conflux_client::StartMode::FailFast)
        .build()
        .await;
    assert!(sdk.is_ok(), "{sdk:?}");
}

/// Writes `from`'s certificate and key over `to`'s files the way an operator's tool would:
/// each file written aside and renamed into place, the certificate first (so for a moment
/// the pair does not match).
fn replace_files(from: &NodeCert, to: &NodeCert) {
    for (src, dst) in [(&from.cert, &to.cert), (&from.key, &to.key)] {
        let tmp = dst.with_extension("new");
        std::fs::copy(src, &tmp).unwrap();
        std::fs::rename(&tmp, dst).unwrap();
    }
}

/// A bundle trusting both CAs.
fn both(a: &Path, b: &Path, dir: &Path) -> ClientTls {
    let mut pem = std::fs::read(a).unwrap();
    pem.extend(std::fs::read(b).unwrap());
    let path = dir.join("both-ca.pem");
    std::fs::write(&path, pem).unwrap();
    ClientTls::trusting(&path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaced_certificate_files_are_served_on_the_next_connection_and_no_request_fails() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = TestCa::new(dir.path(), "old").unwrap();
    let new_ca = TestCa::new(dir.path(), "new").unwrap();
    let served = old_ca.node_cert("served").unwrap();
    let next = new_ca.node_cert("next").unwrap();
    let trust_both = both(old_ca.ca_path(), new_ca.ca_path(), dir.path());
    let node = tls_node(&served, trust_both.clone(), &[]);
    let token = node.token();
    let admin = tls_client(&node, &token, &trust_both);
    let id = setup_config(&admin, "reload.txt").await;
    push(&admin, id, "v").await.unwrap();
    let only_new = tls_client(&node, &token, &new_ca.client_tls());
    assert!(refused(&only_new.health().await.unwrap_err()));

    // Requests run across the swap: one client on its kept-alive connections, one with a new
    // connection (a new client) for every request, and a long poll in flight.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for fresh_connections in [false, true] {
        let (stop, failures, node_url, tls, token) = (
            stop.clone(),
            failures.clone(),
            node.api_url(),
            trust_both.clone(),
            token.clone(),
        );
        loops.push(tokio::spawn(async move {
            let build = || {
                ApiClient::builder(node_url.clone())
                    .bearer_token(token.clone())
                    .timeout(Duration::from_secs(10))
                    .tls(options(&tls))
                    .build()
                    .unwrap()
            };
            let mut client = build();
            let mut done = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if fresh_connections {
                    client = build();
                }
                if let Err(e) = client.list_tenants().await {
                    eprintln!("request failed across the swap: {e}");
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                done += 1;
            }
            done
        }));
    }
    let path = ConfigPath::new("acme", "shop", "prod", "reload.txt");
    let current = admin
        .watch(&path, &WatchOptions::default())
        .await
        .unwrap()
        .expect("revision 0 answers with the current state")
        .revision;
    let poll = {
        let admin = admin.clone();
        tokio::spawn(async move {
            admin
                .watch(
                    &path,
                    &WatchOptions {
                        revision: current,
                        timeout: Some(Duration::from_secs(4)),
                        ..Default::default()
                    },
                )
                .await
        })
    };

    // A garbage certificate first: the node keeps serving the old one and says why.
    let garbage = served.cert.with_extension("new");
    std::fs::write(&garbage, "not a certificate").unwrap();
    std::fs::rename(&garbage, &served.cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !node.log_contains("keeping the previous certificate") {
        assert!(Instant::now() < deadline, "no warning about the bad file");
        admin
            .health()
            .await
            .expect("the old certificate still serves");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused(&only_new.health().await.unwrap_err()));

    replace_files(&next, &served);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // A new client: a new connection, so a new handshake.
        match tls_client(&node, &token, &new_ca.client_tls())
            .health()
            .await
        {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the new certificate was not served: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Connections of the old certificate never come back once the new one is loaded.
    assert!(refused(
        &tls_client(&node, &token, &old_ca.client_tls())
            .health()
            .await
            .unwrap_err()
    ));
    assert!(node.log_contains("reloaded the API TLS certificate"));

    // Let the loops run on the new certificate for a moment, then stop them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for l in loops {
        assert!(l.await.unwrap() > 0);
    }
    // The long poll that was in flight across the swap ended normally (304).
    assert!(poll.await.unwrap().unwrap().is_none());
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests failed across the swap"
    );
}

/// Runs `conflux server` with `args` and returns its exit code and stderr.
fn start_fails(args: &[String]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(conflux_testkit::conflux_binary().unwrap())
        .arg("server")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

#[test]
fn bad_tls_files_stop_the_node_at_start_with_a_one_line_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca").unwrap();
    let good = ca.node_cert("good").unwrap();
    let other = ca.node_cert("other").unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello").unwrap();
    let missing = dir.path().join("missing.pem");
    let s = |p: &Path| p.display().to_string();
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec![
                "--api-tls-cert".into(),
                s(&missing),
                "--api-tls-key".into(),
                s(&good.key),
            ],
            vec![s(&missing), "No such file".into()],
        ),
        (
            vec![
                "--api-tls-cert".into(),
                s(&garbage),
                "--api-tls-key".into(),
                s(&good.key),
            ],
            vec![s(&garbage), "no PEM certificate".into()],
        ),
        (
            vec![
                "--api-tls-cert".into(),
                s(&good.cert),
                "--api-tls-key".into(),
                s(&garbage),
            ],
            vec![s(&garbage), "no PEM private key".into()],
        ),
        (
            vec![
                "--api-tls-cert".into(),
                s(&good.cert),
                "--api-tls-key".into(),
                s(&other.key),
            ],
            vec!["do not make a usable certificate and key".into()],
        ),
        (
            {
                let mut a = good.api_args();
                a.extend(["--api-tls-client-ca".into(), s(&garbage)]);
                a
            },
            vec![s(&garbage), "no PEM certificate".into()],
        ),
        (
            vec!["--api-tls-cert".into(), s(&good.cert)],
            vec!["api_tls_cert and api_tls_key go together".into()],
        ),
        (
            vec![
                "--tls-cert".into(),
                s(&good.cert),
                "--tls-key".into(),
                s(&good.key),
                "--tls-ca".into(),
                s(&garbage),
            ],
            vec![s(&garbage), "no PEM certificate".into()],
        ),
    ];
    for (args, expect) in cases {
        let (code, stderr) = start_fails(&args);
        assert_ne!(code, 0, "{args:?} started");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
        for e in expect {
            assert!(
                errors[0].contains(&e),
                "{args:?}: {:?} lacks {e:?}",
                errors[0]
            );
        }
    }
}

/// Runs the CLI with `args` and `env` (nothing else from the environment of whoever runs the
/// tests); returns the exit code, stdout and stderr.
async fn cli(args: &[String], env: &[(&str, String)]) -> (i32, String, String) {
    let out = tokio::process::Command::new(conflux_testkit::conflux_binary().unwrap())
        .args(args)
        .env_remove("CONFLUX_ENDPOINT")
        .env_remove("CONFLUX_CACERT")
        .env_remove("CONFLUX_CLIENT_CERT")
        .env_remove("CONFLUX_CLIENT_KEY")
        .env_remove("RUST_LOG")
        .env(
            "CONFLUX_CREDENTIALS",
            "/nonexistent/conflux-test/credentials",
        )
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_speaks_tls_with_flags_or_environment() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "api").unwrap();
    let server = ca.node_cert("server").unwrap();
    let client_cert = ca.node_cert("cli").unwrap();
    let tls = client_cert.client_tls();
    let node = tls_node(
        &server,
        tls.clone(),
        &[
            "--api-tls-client-ca".into(),
            ca.ca_path().display().to_string(),
        ],
    );
    let token = ("CONFLUX_TOKEN", node.token());
    let endpoint = ["--endpoint".to_owned(), node.api_url()];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend(endpoint.iter().cloned());
        a
    };

    // Flags.
    let mut args = with(&["admin", "tenant", "create", "acme"]);
    args.extend(tls.cli_args());
    let (code, _, err) = cli(&args, std::slice::from_ref(&token)).await;
    assert_eq!(code, 0, "{err}");

    // The same through CONFLUX_CACERT, CONFLUX_CLIENT_CERT and CONFLUX_CLIENT_KEY.
    let (cert, key) = tls.identity.clone().unwrap();
    let env = [
        token.clone(),
        ("CONFLUX_CACERT", tls.ca.display().to_string()),
        ("CONFLUX_CLIENT_CERT", cert.display().to_string()),
        ("CONFLUX_CLIENT_KEY", key.display().to_string()),
    ];
    let (code, out, err) = cli(
        &with(&["admin", "tenant", "list", "--output", "json"]),
        &env,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"acme\""), "{out}");

    // Without the client certificate, or trusting another CA: one error line, exit 1.
    let (code, _, err) = cli(
        &with(&["admin", "tenant", "list"]),
        &[
            token.clone(),
            ("CONFLUX_CACERT", tls.ca.display().to_string()),
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: unreachable: "), "{err}");
    let other = TestCa::new(dir.path(), "other").unwrap();
    let mut args = with(&["admin", "tenant", "list"]);
    args.extend(
        ClientTls {
            ca: other.ca_path().to_owned(),
            ..tls.clone()
        }
        .cli_args(),
    );
    let (code, _, err) = cli(&args, std::slice::from_ref(&token)).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");

    // An unreadable CA file is named.
    let (code, _, err) = cli(
        &with(&["admin", "tenant", "list", "--cacert", "/nonexistent/ca.pem"]),
        std::slice::from_ref(&token),
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}
