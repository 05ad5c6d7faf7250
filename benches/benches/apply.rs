//! The state-machine transition for a 1 KiB version creation (parse, schema, quota,
//! retention), without storage.

use bytes::Bytes;
use conflux_benches::{create_version, json_doc, state_with_config};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let content = Bytes::from(json_doc(1024));
    for (name, schema) in [
        ("apply_create_version_1kib", None),
        (
            "apply_create_version_1kib_with_schema",
            Some(r#"{"type":"object","additionalProperties":{"type":"string"}}"#),
        ),
    ] {
        c.bench_function(name, |b| {
            b.iter_batched_ref(
                || state_with_config(schema),
                |(state, rev)| {
                    for i in 0..100u64 {
                        let d = state.apply(*rev + i, &create_version(&content, 2_000 + i));
                        assert!(d.outcome.is_ok());
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
