//! Policy matching (tap-core `policy`): URL patterns and whole policies built
//! from arbitrary strings, evaluated against arbitrary targets, never panic.
//!
//! Input: NUL-separated fields: pattern, method, target URL, grant scope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tap_core::policy::{
    ApprovalMode, CompiledPolicy, EvalInput, GrantView, NormalizedTarget, Policy, UrlPattern,
    evaluate, normalize_method,
};
use tap_core::target::TargetUrl;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\0');
    let pattern = fields.next().unwrap_or_default();
    let method = fields.next().unwrap_or("GET");
    let target = fields.next().unwrap_or("https://api.example.com/v1/items");
    let scope = fields.next().unwrap_or_default();

    let Ok(url) = TargetUrl::parse(target) else {
        return;
    };
    let t = NormalizedTarget::from_url(url.url());
    if let Ok(p) = UrlPattern::parse(pattern) {
        let _ = p.matches_auto(&t);
        let _ = p.as_str();
    }
    let Ok(method) = normalize_method(method) else {
        return;
    };
    let policy = Policy {
        auto_approve_methods: vec!["GET".into()],
        require_approval_methods: vec![method.clone()],
        auto_approve_urls: vec![pattern.to_owned()],
        require_approval_urls: vec![scope.to_owned()],
        ..Policy::default()
    };
    let compiled = CompiledPolicy::new(&policy).ok();
    let methods = vec![method.clone()];
    let grants = [GrantView {
        id: "g",
        methods: &methods,
        route_scope: scope,
        expires_at: i64::MAX,
        uses_left: None,
    }];
    for team_mode in [ApprovalMode::Gated, ApprovalMode::Autonomous] {
        let _ = evaluate(&EvalInput {
            method: &method,
            target: &t,
            policy: compiled.as_ref(),
            team_mode,
            grants: &grants,
            now: 0,
        });
    }
});
