//! Agent key lookup: the keyed hash of the presented key, then a map lookup
//! (what `authenticate` does per request), with 1 and 10,000 agents.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tap_core::crypto::{KeyMac, ct_eq, generate_agent_key};

fn bench_lookup(c: &mut Criterion) {
    let mac = KeyMac::generate().expect("random source");
    let mut g = c.benchmark_group("keys");
    let key = generate_agent_key().expect("random source");
    g.bench_function("digest", |b| b.iter(|| mac.digest(black_box(&key))));
    for agents in [1usize, 10_000] {
        let mut keys = Vec::with_capacity(agents);
        let mut by_hash: HashMap<String, usize> = HashMap::with_capacity(agents);
        for i in 0..agents {
            let k = generate_agent_key().expect("random source");
            by_hash.insert(mac.digest(&k), i);
            keys.push(k);
        }
        let presented = &keys[agents / 2];
        g.bench_function(format!("digest_and_lookup/{agents}_agents"), |b| {
            b.iter(|| {
                let digest = mac.digest(black_box(presented));
                let found = by_hash.get_key_value(&digest);
                found.is_some_and(|(stored, _)| ct_eq(stored.as_bytes(), digest.as_bytes()))
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
