//! Policy evaluation and URL normalisation: run once per forwarded request.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tap_core::policy::{
    ApprovalMode, CompiledPolicy, EvalInput, GrantView, NormalizedTarget, Policy, evaluate,
};

const NOW: i64 = 1_700_000_000;

/// One evaluation case: name, method, target, policy (None = team default), grants.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a NormalizedTarget,
    Option<&'a CompiledPolicy>,
    &'a [GrantView<'a>],
);

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn target(url: &str) -> NormalizedTarget {
    NormalizedTarget::from_url(&url::Url::parse(url).expect("bench url parses"))
}

/// A policy of the size an operator writes: a few require rules, a few auto
/// rules, methods on both sides.
fn typical_policy() -> CompiledPolicy {
    CompiledPolicy::new(&Policy {
        auto_approve_methods: strings(&["GET"]),
        require_approval_methods: strings(&["POST", "PUT", "PATCH", "DELETE"]),
        auto_approve_urls: strings(&[
            "/v1/search",
            "api.example.com/v1/channels/*/history",
            "https://api.example.com/v1/users/*/profile",
            "/v1/reactions",
        ]),
        require_approval_urls: strings(&[
            "/admin",
            "api.example.com/v1/orgs/*/members",
            "/v1/billing",
            "/v1/keys",
        ]),
        ..Policy::default()
    })
    .expect("bench policy compiles")
}

fn bench_evaluate(c: &mut Criterion) {
    let policy = typical_policy();
    let get = target("https://api.example.com/v1/messages?channel=C024BE91L&limit=50");
    let auto = target("https://api.example.com/v1/channels/C024BE91L/history");
    let require = target("https://api.example.com/v1/orgs/acme/members/U2147483697");
    let post = target("https://api.example.com/v1/chat.postMessage");
    let methods = strings(&["POST"]);
    let grants: Vec<GrantView<'_>> = (0..8)
        .map(|i| GrantView {
            id: if i == 7 { "g-7" } else { "g-other" },
            methods: &methods,
            route_scope: if i == 7 {
                "/v1/chat.postMessage"
            } else {
                "/v1/other"
            },
            expires_at: NOW + 3600,
            uses_left: None,
        })
        .collect();

    let mut g = c.benchmark_group("policy/evaluate");
    let cases: [Case<'_>; 5] = [
        ("team_default_read", "GET", &get, None, &[]),
        ("auto_method", "GET", &get, Some(&policy), &[]),
        ("auto_url", "GET", &auto, Some(&policy), &[]),
        ("require_url", "GET", &require, Some(&policy), &[]),
        (
            "approval_then_8_grants",
            "POST",
            &post,
            Some(&policy),
            &grants,
        ),
    ];
    for (name, method, t, p, gs) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                evaluate(black_box(&EvalInput {
                    method,
                    target: t,
                    policy: p,
                    team_mode: ApprovalMode::Gated,
                    grants: gs,
                    now: NOW,
                }))
            });
        });
    }
    g.finish();
}

fn bench_normalise(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy/normalise");
    let urls = [
        ("plain", "http://127.0.0.1:18080/small"),
        (
            "api_with_query",
            "https://api.example.com/v1/conversations.history?channel=C024BE91L&limit=200&cursor=dXNlcjpVMDYxTkZUVDI=",
        ),
        (
            "escapes_and_dots",
            "https://api.example.com/v1/./files/%2e%2e/users/%41lice/../bob;type=a/items/%7Euser/",
        ),
    ];
    for (name, raw) in urls {
        let url = url::Url::parse(raw).expect("bench url parses");
        g.bench_function(name, |b| {
            b.iter(|| NormalizedTarget::from_url(black_box(&url)));
        });
    }
    g.finish();
}

criterion_group!(benches, bench_evaluate, bench_normalise);
criterion_main!(benches);
