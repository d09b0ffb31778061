//! Scrubbing throughput: every byte of every upstream answer goes through it.
//!
//! 1 MiB of JSON-like text with no secret in it (the common case: the whole
//! body is searched and copied), one-shot and streamed in 16 KiB chunks, with
//! 1 and with 64 secrets (each expands into up to 18 encoded patterns). The
//! `team_10k` group measures the team-wide scrubber a store of 10,000
//! credentials builds, on the small inputs the proxy scrubs it with per
//! request (request headers and target for the audit row).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tap_core::scrub::{ScrubSecret, Scrubber};

const MIB: usize = 1 << 20;
const CHUNK: usize = 16 * 1024;

fn secret_values(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("cred{i}"),
                format!(
                    "sk_live_{i:04}_{:032x}",
                    (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15
                ),
            )
        })
        .collect()
}

fn scrubber(secrets: &[(String, String)]) -> Arc<Scrubber> {
    Arc::new(Scrubber::new(secrets.iter().map(|(l, v)| ScrubSecret {
        label: l,
        value: v.as_bytes(),
    })))
}

fn body() -> Vec<u8> {
    let record = br#"{"id":12345,"name":"item","tags":["alpha","beta"],"value":3.14159},"#;
    record.iter().copied().cycle().take(MIB).collect()
}

fn bench_throughput(c: &mut Criterion) {
    let input = body();
    let mut g = c.benchmark_group("scrub/1MiB");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.measurement_time(Duration::from_secs(4));
    for n in [1usize, 64] {
        let s = scrubber(&secret_values(n));
        g.bench_function(format!("one_shot/{n}_secrets"), |b| {
            b.iter(|| s.scrub(black_box(&input)));
        });
        let mut out = Vec::with_capacity(CHUNK * 2);
        g.bench_function(format!("stream_16KiB/{n}_secrets"), |b| {
            b.iter(|| {
                let mut stream = s.stream();
                let mut total = 0;
                for chunk in input.chunks(CHUNK) {
                    out.clear();
                    stream.push(black_box(chunk), &mut out);
                    total += out.len();
                }
                out.clear();
                stream.finish(&mut out);
                total + out.len()
            });
        });
    }
    // One secret present every 64 KiB: the replacement path.
    let secrets = secret_values(64);
    let s = scrubber(&secrets);
    let mut with_hits = input.clone();
    let needle = secrets[17].1.as_bytes();
    for pos in (1000..MIB - needle.len()).step_by(64 * 1024) {
        with_hits[pos..pos + needle.len()].copy_from_slice(needle);
    }
    g.bench_function("one_shot/64_secrets_16_hits", |b| {
        b.iter(|| s.scrub(black_box(&with_hits)));
    });
    g.finish();
}

fn bench_small_inputs(c: &mut Criterion) {
    let header = "Bearer-free header value: application/json; charset=utf-8";
    let target = "http://127.0.0.1:18080/small";
    let mut g = c.benchmark_group("scrub/small");
    g.measurement_time(Duration::from_secs(2));
    for n in [1usize, 64] {
        let s = scrubber(&secret_values(n));
        g.bench_function(format!("header/{n}_secrets"), |b| {
            b.iter(|| s.scrub_str(black_box(header)));
        });
    }
    g.finish();

    // The team-wide scrubber of a store with 10,000 credentials.
    let secrets = secret_values(10_000);
    let mut g = c.benchmark_group("scrub/team_10k");
    g.sample_size(10);
    g.bench_function("build", |b| {
        b.iter_batched(
            || (),
            |()| scrubber(black_box(&secrets)),
            BatchSize::PerIteration,
        );
    });
    let s = scrubber(&secrets);
    g.sample_size(50);
    g.bench_function("header", |b| b.iter(|| s.scrub_str(black_box(header))));
    g.bench_function("target", |b| b.iter(|| s.scrub_str(black_box(target))));
    // An agent's 64 KiB request body, searched for any team secret (leak blocking).
    let agent_body = &body()[..64 * 1024];
    g.throughput(Throughput::Bytes(agent_body.len() as u64));
    g.bench_function("body_64KiB", |b| {
        b.iter(|| s.find(black_box(agent_body)).is_some())
    });
    g.finish();
}

criterion_group!(benches, bench_throughput, bench_small_inputs);
criterion_main!(benches);
