//! Release-rule resolution: the per-request work of the fetch path.

use std::collections::BTreeMap;

use conflux_domain::{ClientLabels, ReleaseRule, order_rules, resolve_ordered};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn rules(n: usize) -> Vec<ReleaseRule> {
    let mut rules = vec![ReleaseRule::default_to(1)];
    for i in 1..n {
        let labels: BTreeMap<String, String> = [
            ("region".to_owned(), format!("r{i}")),
            ("tier".to_owned(), "gold".to_owned()),
        ]
        .into();
        let percent = (i % 3 == 0).then_some(10);
        rules.push(ReleaseRule {
            labels,
            percent,
            version_id: 2,
            priority: (i % 5) as i32,
        });
    }
    rules
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("resolve");
    for n in [3usize, 16, 64] {
        let rules = rules(n);
        let order = order_rules(&rules);
        let client = ClientLabels::from_pairs(
            [("region", "nowhere"), ("tier", "gold"), ("host", "web-17")],
            Some("web-17"),
        )
        .unwrap();
        g.bench_with_input(BenchmarkId::new("rules_default_wins", n), &n, |b, _| {
            b.iter(|| {
                resolve_ordered(7, &rules, &order, std::hint::black_box(&client))
                    .map(|r| r.rule.version_id)
            })
        });
    }
    g.bench_function("labels_from_headers", |b| {
        b.iter(|| {
            ClientLabels::from_pairs(
                std::hint::black_box([("Region", "eu-west"), ("Canary", "true")]),
                Some("host-1"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
