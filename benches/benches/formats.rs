//! Parsing and schema validation of new versions (done in apply on every node).

use conflux_benches::doc;
use conflux_domain::format::parse;
use conflux_domain::{CompiledSchema, Format};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_1kib");
    for format in Format::ALL {
        let content = doc(format, 1024);
        g.throughput(Throughput::Bytes(content.len() as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format),
            &content,
            |b, content| b.iter(|| parse(format, std::hint::black_box(content)).is_ok()),
        );
    }
    g.finish();

    let schema = CompiledSchema::compile(
        r#"{"type":"object","additionalProperties":{"type":"string","maxLength":64}}"#,
    )
    .unwrap();
    let content = doc(Format::Json, 1024);
    let value = parse(Format::Json, &content).unwrap().to_json().unwrap();
    c.bench_function("schema_validate_1kib", |b| {
        b.iter(|| schema.violations(std::hint::black_box(&value)).len())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
