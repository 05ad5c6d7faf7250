//! The per-request cost of identity on the fetch path: authenticating a bearer token against
//! the in-memory identity (a SHA-256 digest and a map look-up), and the authorization decision
//! for one environment.

use conflux_domain::access::allows_env;
use conflux_domain::{Grant, Role, Scope};
use conflux_metadata::{BindingRecord, IdentitySnapshot, TokenEntry};
use conflux_server::auth::Identity;
use conflux_server::auth::token::{SERVICE_PREFIX, digest_hex, issue};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// An identity of `n` service tokens, each bound as reader on one environment.
fn identity(n: usize) -> (Identity, Vec<String>) {
    let mut tokens = Vec::new();
    let mut secrets = Vec::new();
    let mut bindings = Vec::new();
    for i in 0..n {
        let t = issue(SERVICE_PREFIX);
        tokens.push(TokenEntry {
            id: t.id.clone(),
            name: format!("svc-{i}"),
            secret_hash: digest_hex(&t.token),
            expires_at_ms: None,
        });
        bindings.push(BindingRecord {
            id: format!("b{i}"),
            principal: format!("token:{}", t.id),
            role: "reader".into(),
            scope: format!("t{}/app/prod", i % 50),
            created_at_ms: 0,
            created_by: "bench".into(),
        });
        secrets.push(t.token);
    }
    let snapshot = IdentitySnapshot {
        counter: 1,
        users: Vec::new(),
        sessions: Vec::new(),
        tokens,
        bindings,
    };
    (Identity::from_snapshot(&snapshot), secrets)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("authenticate");
    for n in [10usize, 10_000] {
        let (id, secrets) = identity(n);
        let token = secrets[n / 2].clone();
        g.bench_with_input(BenchmarkId::new("known_token", n), &token, |b, t| {
            b.iter(|| id.authenticate(std::hint::black_box(t), 0).is_some())
        });
        let unknown = issue(SERVICE_PREFIX).token;
        g.bench_with_input(BenchmarkId::new("unknown_token", n), &unknown, |b, t| {
            b.iter(|| id.authenticate(std::hint::black_box(t), 0).is_none())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("authorize");
    let scope = |s: &str| Scope::parse("scope", s).unwrap();
    for grants in [1usize, 8] {
        let list: Vec<Grant> = (0..grants)
            .map(|i| Grant {
                role: Role::Reader,
                scope: scope(&format!("t{i}/app/prod")),
            })
            .collect();
        let last = format!("t{}", grants - 1);
        g.bench_with_input(BenchmarkId::new("allows_env", grants), &list, |b, l| {
            b.iter(|| allows_env(std::hint::black_box(l), Role::Reader, &last, "app", "prod"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
