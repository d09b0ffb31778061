use proptest::prelude::*;

use super::normalize::{is_plain_canonical, normalize_path, segments};
use super::*;

const NOW: i64 = 1_700_000_000;

fn target(url: &str) -> NormalizedTarget {
    NormalizedTarget::from_url(&url::Url::parse(url).unwrap())
}

fn pat(s: &str) -> UrlPattern {
    UrlPattern::parse(s).unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn compiled(p: Policy) -> CompiledPolicy {
    CompiledPolicy::new(&p).unwrap()
}

fn eval_with(
    method: &str,
    url: &str,
    policy: Option<&CompiledPolicy>,
    team_mode: ApprovalMode,
    grants: &[GrantView<'_>],
) -> Evaluation {
    let t = target(url);
    evaluate(&EvalInput {
        method,
        target: &t,
        policy,
        team_mode,
        grants,
        now: NOW,
    })
}

fn eval(method: &str, url: &str, policy: &CompiledPolicy) -> Evaluation {
    eval_with(method, url, Some(policy), ApprovalMode::Gated, &[])
}

/// `require_approval_urls: [/admin]` plus GET auto-approved: a request that
/// escapes the require rule would show up as `auto_approve_method`.
fn admin_guarded() -> CompiledPolicy {
    compiled(Policy {
        require_approval_urls: strings(&["/admin", "api.example.com/orgs/*/members"]),
        auto_approve_methods: strings(&["GET"]),
        ..Policy::default()
    })
}

/// Only `auto_approve_urls: [/public]`: anything that widens it would proceed.
fn public_only() -> CompiledPolicy {
    compiled(Policy {
        auto_approve_urls: strings(&["/public"]),
        ..Policy::default()
    })
}

fn assert_requires_approval_url(url: &str) {
    let e = eval("GET", url, &admin_guarded());
    assert_eq!(
        e.decision,
        Decision::Approval,
        "{url} escaped the require rule"
    );
    assert_eq!(e.reason, PolicyReason::RequireApprovalUrl, "{url}");
}

fn assert_not_auto_approved(url: &str) {
    let e = eval("GET", url, &public_only());
    assert_eq!(
        e.decision,
        Decision::Approval,
        "{url} widened the auto rule"
    );
    assert_eq!(e.reason, PolicyReason::RequireApprovalDefault, "{url}");
}

// ---------------------------------------------------------------- methods

#[test]
fn normalize_method_trims_upper_cases_and_defaults_to_get() {
    assert_eq!(normalize_method("get").unwrap(), "GET");
    assert_eq!(normalize_method(" GeT\t").unwrap(), "GET");
    assert_eq!(normalize_method("").unwrap(), "GET");
    assert_eq!(normalize_method("   ").unwrap(), "GET");
    assert_eq!(normalize_method("purge").unwrap(), "PURGE");
    assert_eq!(normalize_method("M-SEARCH").unwrap(), "M-SEARCH");
}

#[test]
fn normalize_method_refuses_trace_and_connect_in_any_case() {
    for m in ["TRACE", "trace", " Connect ", "CONNECT"] {
        assert!(
            matches!(
                normalize_method(m),
                Err(PolicyError::MethodNotAllowed { .. })
            ),
            "{m}"
        );
    }
}

#[test]
fn normalize_method_refuses_non_tokens() {
    for m in ["GET /", "G\u{e9}T", "GET\r\nX: y", "(GET)", "GE\"T", "G,ET"] {
        assert!(
            matches!(normalize_method(m), Err(PolicyError::InvalidMethod { .. })),
            "{m}"
        );
    }
}

#[test]
fn error_messages_are_lower_case_and_clipped() {
    let long = "X".repeat(500) + " ";
    let err = normalize_method(&format!("{long}Y")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("invalid method"));
    assert!(msg.len() < 200);
    assert_eq!(
        PolicyError::MinApprovalsTooLow.to_string(),
        "min_approvals must be at least 1"
    );
}

#[test]
fn only_get_and_head_are_reads() {
    assert!(is_read("GET"));
    assert!(is_read("HEAD"));
    for m in [
        "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "PURGE", "get", "",
    ] {
        assert!(!is_read(m), "{m}");
    }
}

// ---------------------------------------------------------------- team defaults

#[test]
fn gated_team_without_policy_lets_reads_proceed() {
    for m in ["GET", "HEAD"] {
        let e = eval_with(m, "https://a.test/x", None, ApprovalMode::Gated, &[]);
        assert_eq!(e.decision, Decision::Proceed);
        assert_eq!(e.reason, PolicyReason::TeamDefaultGatedRead);
        assert_eq!(e.rule, None);
    }
}

#[test]
fn gated_team_without_policy_gates_writes_and_unknown_methods() {
    for m in ["POST", "OPTIONS", "DELETE", "PURGE", "get"] {
        let e = eval_with(m, "https://a.test/x", None, ApprovalMode::Gated, &[]);
        assert_eq!(e.decision, Decision::Approval, "{m}");
        assert_eq!(e.reason, PolicyReason::TeamDefaultGatedWrite);
    }
}

#[test]
fn autonomous_team_without_policy_lets_everything_proceed() {
    let e = eval_with(
        "DELETE",
        "https://a.test/x",
        None,
        ApprovalMode::Autonomous,
        &[],
    );
    assert_eq!(e.decision, Decision::Proceed);
    assert_eq!(e.reason, PolicyReason::TeamDefaultAutonomous);
}

#[test]
fn approval_mode_defaults_to_gated_and_round_trips() {
    assert_eq!(ApprovalMode::default(), ApprovalMode::Gated);
    assert_eq!(
        "gated".parse::<ApprovalMode>().unwrap(),
        ApprovalMode::Gated
    );
    assert_eq!(
        " Autonomous ".parse::<ApprovalMode>().unwrap(),
        ApprovalMode::Autonomous
    );
    assert!("open".parse::<ApprovalMode>().is_err());
    assert_eq!(ApprovalMode::Autonomous.to_string(), "autonomous");
    assert_eq!(
        serde_json::to_string(&ApprovalMode::Gated).unwrap(),
        "\"gated\""
    );
    assert_eq!(
        serde_json::from_str::<ApprovalMode>("\"autonomous\"").unwrap(),
        ApprovalMode::Autonomous
    );
}

// ---------------------------------------------------------------- policy steps

#[test]
fn require_url_beats_auto_url_and_auto_method() {
    let p = compiled(Policy {
        require_approval_urls: strings(&["/admin"]),
        auto_approve_urls: strings(&["/admin/public", "/"]),
        auto_approve_methods: strings(&["GET", "POST"]),
        ..Policy::default()
    });
    let e = eval("GET", "https://a.test/admin/public/x", &p);
    assert_eq!(e.decision, Decision::Approval);
    assert_eq!(e.reason, PolicyReason::RequireApprovalUrl);
    assert_eq!(e.rule.as_deref(), Some("/admin"));
}

#[test]
fn auto_url_proceeds_for_any_method_and_names_the_pattern() {
    let p = compiled(Policy {
        auto_approve_urls: strings(&[" /v1/search "]),
        require_approval_methods: strings(&["POST"]),
        ..Policy::default()
    });
    let e = eval("POST", "https://a.test/v1/search?q=1", &p);
    assert_eq!(e.decision, Decision::Proceed);
    assert_eq!(e.reason, PolicyReason::AutoApproveUrl);
    assert_eq!(e.rule.as_deref(), Some("/v1/search"));
}

#[test]
fn auto_method_proceeds_and_head_counts_as_get() {
    let p = compiled(Policy {
        auto_approve_methods: strings(&["get"]),
        ..Policy::default()
    });
    for m in ["GET", "HEAD"] {
        let e = eval(m, "https://a.test/x", &p);
        assert_eq!(e.decision, Decision::Proceed, "{m}");
        assert_eq!(e.reason, PolicyReason::AutoApproveMethod);
        assert_eq!(e.rule.as_deref(), Some("GET"));
    }
    assert_eq!(
        eval("POST", "https://a.test/x", &p).reason,
        PolicyReason::RequireApprovalDefault
    );
}

#[test]
fn get_does_not_count_as_head() {
    let p = compiled(Policy {
        auto_approve_methods: strings(&["HEAD"]),
        ..Policy::default()
    });
    assert_eq!(
        eval("GET", "https://a.test/x", &p).decision,
        Decision::Approval
    );
}

#[test]
fn auto_method_beats_require_method() {
    let p = compiled(Policy {
        auto_approve_methods: strings(&["POST"]),
        require_approval_methods: strings(&["POST"]),
        ..Policy::default()
    });
    assert_eq!(
        eval("POST", "https://a.test/x", &p).reason,
        PolicyReason::AutoApproveMethod
    );
}

#[test]
fn require_method_needs_approval_and_names_the_method() {
    let p = compiled(Policy {
        require_approval_methods: strings(&["DELETE"]),
        ..Policy::default()
    });
    let e = eval("DELETE", "https://a.test/x", &p);
    assert_eq!(e.decision, Decision::Approval);
    assert_eq!(e.reason, PolicyReason::RequireApprovalMethod);
    assert_eq!(e.rule.as_deref(), Some("DELETE"));
}

#[test]
fn nothing_matching_needs_approval_by_default() {
    let p = compiled(Policy::default());
    let e = eval("GET", "https://a.test/x", &p);
    assert_eq!(e.decision, Decision::Approval);
    assert_eq!(e.reason, PolicyReason::RequireApprovalDefault);
    assert_eq!(e.rule, None);
}

#[test]
fn empty_policy_differs_from_no_policy() {
    // A stored policy row, even empty, replaces the team default.
    let p = compiled(Policy::default());
    assert_eq!(
        eval_with(
            "GET",
            "https://a.test/",
            Some(&p),
            ApprovalMode::Autonomous,
            &[]
        )
        .decision,
        Decision::Approval
    );
}

// ---------------------------------------------------------------- reasons

#[test]
fn policy_reasons_use_the_exact_spec_spellings() {
    let cases = [
        (
            PolicyReason::TeamDefaultGatedRead,
            "team_default_gated_read",
        ),
        (
            PolicyReason::TeamDefaultGatedWrite,
            "team_default_gated_write",
        ),
        (
            PolicyReason::TeamDefaultAutonomous,
            "team_default_autonomous",
        ),
        (PolicyReason::RequireApprovalUrl, "require_approval_url"),
        (PolicyReason::AutoApproveUrl, "auto_approve_url"),
        (PolicyReason::AutoApproveMethod, "auto_approve_method"),
        (
            PolicyReason::RequireApprovalMethod,
            "require_approval_method",
        ),
        (
            PolicyReason::RequireApprovalDefault,
            "require_approval_default",
        ),
        (PolicyReason::Grant("g_123".into()), "grant:g_123"),
    ];
    for (reason, s) in cases {
        assert_eq!(reason.as_str(), s);
        assert_eq!(reason.to_string(), s);
        assert_eq!(s.parse::<PolicyReason>().unwrap(), reason);
        assert_eq!(serde_json::to_string(&reason).unwrap(), format!("\"{s}\""));
    }
    assert!("grant:".parse::<PolicyReason>().is_err());
    assert!("auto".parse::<PolicyReason>().is_err());
}

#[test]
fn evaluation_serialises_as_policy_test_output() {
    let e = eval("DELETE", "https://a.test/x", &admin_guarded());
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "decision": "approval",
            "policy_reason": "require_approval_default",
            "rule": null
        })
    );
    assert_eq!(Decision::Proceed.to_string(), "proceed");
}

// ---------------------------------------------------------------- policy shape

#[test]
fn policy_missing_fields_default_and_min_approvals_is_one() {
    let p: Policy = serde_json::from_str("{}").unwrap();
    assert_eq!(p, Policy::default());
    assert_eq!(p.min_approvals, 1);
    assert_eq!(p.allowed_approvers, None);
    p.validate().unwrap();
}

#[test]
fn policy_serialises_with_snake_case_field_names() {
    let json = serde_json::to_value(Policy::default()).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "allowed_approvers",
            "approval_channel",
            "auto_approve_methods",
            "auto_approve_urls",
            "min_approvals",
            "require_approval_methods",
            "require_approval_urls",
            "require_passkey",
            "telegram_chat_id"
        ]
    );
    let p: Policy = serde_json::from_str(
        r#"{"allowed_approvers": [], "require_passkey": true, "min_approvals": 2}"#,
    )
    .unwrap();
    assert_eq!(p.allowed_approvers, Some(vec![]));
    assert!(p.require_passkey);
    assert_eq!(
        serde_json::from_value::<Policy>(serde_json::to_value(&p).unwrap()).unwrap(),
        p
    );
}

#[test]
fn validate_refuses_zero_min_approvals_bad_patterns_and_bad_methods() {
    let zero = Policy {
        min_approvals: 0,
        ..Policy::default()
    };
    assert_eq!(zero.validate(), Err(PolicyError::MinApprovalsTooLow));
    assert!(CompiledPolicy::new(&zero).is_err());

    let bad_url = Policy {
        require_approval_urls: strings(&["/a?b"]),
        ..Policy::default()
    };
    assert!(matches!(
        bad_url.validate(),
        Err(PolicyError::InvalidUrlPattern { .. })
    ));
    assert!(CompiledPolicy::new(&bad_url).is_err());

    let bad_method = Policy {
        auto_approve_methods: strings(&["GET POST"]),
        ..Policy::default()
    };
    assert!(matches!(
        bad_method.validate(),
        Err(PolicyError::InvalidMethod { .. })
    ));
    assert!(CompiledPolicy::new(&bad_method).is_err());
}

#[test]
fn normalized_upper_cases_methods_and_trims_everything() {
    let p = Policy {
        auto_approve_methods: strings(&[" get", "GET", "post "]),
        require_approval_urls: strings(&[" /admin ", "/admin"]),
        allowed_approvers: Some(strings(&[" a@x.test "])),
        approval_channel: Some("  ".into()),
        telegram_chat_id: Some(" -100 ".into()),
        ..Policy::default()
    };
    let n = p.normalized().unwrap();
    assert_eq!(n.auto_approve_methods, ["GET", "POST"]);
    assert_eq!(n.require_approval_urls, ["/admin"]);
    assert_eq!(n.allowed_approvers, Some(strings(&["a@x.test"])));
    assert_eq!(n.approval_channel, None);
    assert_eq!(n.telegram_chat_id.as_deref(), Some("-100"));
    assert_eq!(n.normalized().unwrap(), n);
    let compiled = CompiledPolicy::new(&p).unwrap();
    assert_eq!(compiled.policy(), &p);
}

// ---------------------------------------------------------------- normalisation

#[test]
fn target_lower_cases_scheme_and_host_and_drops_default_port() {
    let t = target("HTTPS://API.Example.COM:443/A/b?q=1#f");
    assert_eq!(t.scheme(), "https");
    assert_eq!(t.host(), "api.example.com");
    assert_eq!(t.port(), None);
    assert_eq!(t.path(), "/A/b");
    assert_eq!(t.as_display(), "https://api.example.com/A/b");
    let t = target("http://a.test:8080");
    assert_eq!(t.port(), Some(8080));
    assert_eq!(t.as_display(), "http://a.test:8080/");
}

#[test]
fn path_normalisation_follows_the_upstream_reading() {
    let cases = [
        ("/a/%68%65llo", "/a/hello"),
        ("/%7e%7E/%2d%5F%2E", "/~~/-_."),
        ("/a/%3b/%3f%2f", "/a/%3B/%3F%2F"),
        ("/a//b///c/", "/a/b/c/"),
        ("/a/./b/../c", "/a/c"),
        ("/a/%2e/b/%2E%2e/c", "/a/c"),
        ("/a/.%2E/b", "/b"),
        ("/a/b/..", "/a/"),
        ("/caf\u{e9}", "/caf%C3%A9"),
        ("/a|b^c", "/a%7Cb%5Ec"),
        ("/a/%zz", "/a/%25zz"),
        ("/a/b;c=d", "/a/b;c=d"),
    ];
    for (raw, want) in cases {
        let t = target(&format!("https://a.test{raw}"));
        assert_eq!(t.path(), want, "{raw}");
    }
}

#[test]
fn unsafe_escapes_are_flagged() {
    for raw in [
        "/a%2Fb", "/a%2fb", "/a%5Cb", "/a%5cb", "/a%00", "/a%zz", "/a%", "/a%4", "/a%FF",
        "/a%C0%AF", "/a%C3",
    ] {
        let t = target(&format!("https://a.test{raw}"));
        assert!(t.has_unsafe_escape(), "{raw}");
        assert!(!t.is_auto_matchable(), "{raw}");
    }
    for raw in ["/a%20b", "/caf%C3%A9", "/a%3Bb", "/a%25"] {
        let t = target(&format!("https://a.test{raw}"));
        assert!(!t.has_unsafe_escape(), "{raw}");
    }
}

#[test]
fn double_escapes_and_param_dot_segments_are_not_auto_matchable() {
    for raw in [
        "/a%252Fb",
        "/a/%252e%252e/b",
        "/a/..;/b",
        "/a/.;x/b",
        "/a/;x/b",
        "/a/..%3Bx/b",
    ] {
        let t = target(&format!("https://a.test{raw}"));
        assert!(!t.has_unsafe_escape(), "{raw}");
        assert!(!t.is_auto_matchable(), "{raw}");
    }
    assert!(target("https://a.test/a;b/c;d=e").is_auto_matchable());
}

// ---------------------------------------------------------------- patterns

#[test]
fn pattern_matches_end_on_a_segment_boundary() {
    let p = pat("/admin");
    for url in ["/admin", "/admin/", "/admin/x", "/admin/x/y?q"] {
        let t = target(&format!("https://a.test{url}"));
        assert!(p.matches_auto(&t), "{url}");
        assert!(p.matches_require(&t), "{url}");
    }
    for url in ["/administrator", "/adminx", "/admin.json", "/", "/x/admin"] {
        let t = target(&format!("https://a.test{url}"));
        assert!(!p.matches_auto(&t), "{url}");
        assert!(!p.matches_require(&t), "{url}");
    }
}

#[test]
fn slash_pattern_matches_everything() {
    let p = pat("/");
    for url in [
        "https://a.test",
        "https://b.test/x/y",
        "http://c.test:81/z/",
    ] {
        assert!(p.matches_auto(&target(url)), "{url}");
        assert!(p.matches_require(&target(url)), "{url}");
    }
}

#[test]
fn trailing_slash_in_a_pattern_is_not_significant() {
    let p = pat("/admin/");
    assert!(p.matches_require(&target("https://a.test/admin")));
    assert!(p.matches_auto(&target("https://a.test/admin/x")));
}

#[test]
fn star_is_exactly_one_non_empty_segment() {
    let p = pat("/repos/*/issues");
    for url in ["/repos/a/issues", "/repos/a/issues/1"] {
        assert!(
            p.matches_auto(&target(&format!("https://a.test{url}"))),
            "{url}"
        );
    }
    for url in [
        "/repos/issues",
        "/repos//issues",
        "/repos/a/b/issues",
        "/repos/a",
    ] {
        let t = target(&format!("https://a.test{url}"));
        assert!(!p.matches_auto(&t), "{url}");
        assert!(!p.matches_require(&t), "{url}");
    }
}

#[test]
fn host_patterns_need_that_host_case_insensitively_and_any_port() {
    let p = pat("API.Example.com/v1");
    assert!(p.matches_auto(&target("https://api.example.com/v1/x")));
    assert!(p.matches_auto(&target("http://api.example.com:8443/v1")));
    for url in [
        "https://example.com/v1",
        "https://x.api.example.com/v1",
        "https://api.example.com.evil.test/v1",
        "https://evilapi.example.com/v1",
    ] {
        assert!(!p.matches_auto(&target(url)), "{url}");
        assert!(!p.matches_require(&target(url)), "{url}");
    }
}

#[test]
fn host_pattern_with_port_needs_that_effective_port() {
    let p = pat("api.example.com:443/v1");
    assert!(p.matches_auto(&target("https://api.example.com/v1")));
    assert!(!p.matches_auto(&target("https://api.example.com:8443/v1")));
    assert!(!p.matches_auto(&target("http://api.example.com/v1")));
    assert!(pat("[::1]:8080/x").matches_auto(&target("http://[::1]:8080/x")));
}

#[test]
fn idna_hosts_compare_in_punycode() {
    let p = pat("b\u{fc}cher.de/x");
    assert!(p.matches_auto(&target("https://xn--bcher-kva.de/x")));
    assert!(p.matches_auto(&target("https://B\u{dc}CHER.de/x")));
}

#[test]
fn scheme_in_a_pattern_binds_auto_but_not_require() {
    let p = pat("https://api.example.com/x");
    assert!(p.matches_auto(&target("https://api.example.com/x")));
    assert!(!p.matches_auto(&target("http://api.example.com/x")));
    assert!(p.matches_require(&target("http://api.example.com/x")));
}

#[test]
fn pattern_paths_are_normalised_like_targets() {
    assert!(pat("/%61dmin/./x//").matches_auto(&target("https://a.test/admin/x")));
    assert!(pat("/caf\u{e9}").matches_auto(&target("https://a.test/caf%c3%a9")));
    assert!(pat("/a\\b").matches_auto(&target("https://a.test/a/b")));
    assert_eq!(pat(" /a ").as_str(), "/a");
}

#[test]
fn invalid_patterns_are_refused() {
    for p in [
        "",
        "   ",
        "/a b",
        "/a\tb",
        "/a?x=1",
        "/a#f",
        "ftp://h/a",
        "https:///a",
        "https://",
        "user@h/a",
        "*.example.com/a",
        "h:99999/a",
        "h:/a",
        "h:8x/a",
        "::1/a",
        "[::1/a",
        "/a%zz",
        "/a%",
        "/a*b",
        "/**",
        "exa mple.com/a",
        "a..b%/x",
    ] {
        assert!(
            matches!(
                UrlPattern::parse(p),
                Err(PolicyError::InvalidUrlPattern { .. })
            ),
            "{p:?} parsed"
        );
    }
    let long = format!("/{}", "a".repeat(MAX_PATTERN_LEN));
    assert!(UrlPattern::parse(&long).is_err());
}

// ---------------------------------------------------------------- THREATS §F: require escapes

#[test]
fn trailing_slash_does_not_escape_require() {
    assert_requires_approval_url("https://api.example.com/admin/");
}

#[test]
fn repeated_slashes_do_not_escape_require() {
    assert_requires_approval_url("https://api.example.com//admin");
    assert_requires_approval_url("https://api.example.com///admin//x");
    assert_requires_approval_url("https://api.example.com/orgs//acme//members");
}

#[test]
fn dot_segments_do_not_escape_require() {
    assert_requires_approval_url("https://api.example.com/./admin");
    assert_requires_approval_url("https://api.example.com/public/../admin");
    assert_requires_approval_url("https://api.example.com/public/./../admin/x");
    assert_requires_approval_url("https://api.example.com/../../admin");
}

#[test]
fn encoded_dot_segments_do_not_escape_require() {
    for seg in ["%2e%2e", "%2E%2E", "%2e.", ".%2E"] {
        assert_requires_approval_url(&format!("https://api.example.com/public/{seg}/admin"));
    }
    assert_requires_approval_url("https://api.example.com/public/%252e%252e/admin");
    assert_requires_approval_url("https://api.example.com/public/%C0%AE%C0%AE/admin");
    assert_requires_approval_url("https://api.example.com/public/%E0%80%AE%E0%80%AE/admin");
}

#[test]
fn encoded_slashes_do_not_escape_require() {
    for sep in ["%2F", "%2f", "%5C", "%5c", "%252F", "%C0%AF", "%C1%9C"] {
        assert_requires_approval_url(&format!("https://api.example.com/public{sep}..{sep}admin"));
        assert_requires_approval_url(&format!("https://api.example.com/admin{sep}x"));
    }
    assert_requires_approval_url("https://api.example.com/public\\..\\admin");
    assert_requires_approval_url("https://api.example.com/orgs%2Facme%2Fmembers");
    assert_requires_approval_url("https://api.example.com/%2Fadmin");
    assert_requires_approval_url("https://api.example.com/x/..%2F%2F..%2Fadmin");
}

#[test]
fn encoded_slash_then_dots_is_caught_under_every_resolution() {
    // Decoded and resolved without merging slashes this is /a/b; merged first
    // it is /b; unresolved it starts with /a. Each reading is checked.
    let t = target("https://a.test/a%2F%2F..%2Fb");
    assert!(pat("/a/b").matches_require(&t));
    assert!(pat("/b").matches_require(&t));
    assert!(pat("/a").matches_require(&t));
    assert!(!pat("/a").matches_auto(&t));
}

#[test]
fn encoded_separator_inside_a_segment_is_still_read_case_insensitively() {
    // An upstream that keeps `%2F` inside a segment and ignores case reads
    // /%2F/A as two segments, the second being `a`.
    let p = pat("/*/%61");
    assert!(p.matches_require(&target("https://a.test/%2F/a")));
    assert!(p.matches_require(&target("https://a.test/%2f/A")));
    assert!(pat("/*/a").matches_require(&target("https://a.test/;x/%2F/a")));
    assert!(!p.matches_auto(&target("https://a.test/%2F/a")));
}

#[test]
fn encoded_letters_do_not_escape_require() {
    assert_requires_approval_url("https://api.example.com/%61dmin");
    assert_requires_approval_url("https://api.example.com/%61%64%6D%69%6E");
    assert_requires_approval_url("https://api.example.com/%2561dmin");
}

#[test]
fn case_changes_do_not_escape_require() {
    for url in [
        "https://api.example.com/ADMIN",
        "https://api.example.com/Admin/users",
        "HTTPS://API.EXAMPLE.COM/aDmIn",
        "https://API.example.com/ORGS/acme/MEMBERS",
        "https://api.example.com/%41DMIN",
    ] {
        assert_requires_approval_url(url);
    }
}

#[test]
fn matrix_params_do_not_escape_require() {
    for url in [
        "https://api.example.com/admin;jsessionid=1",
        "https://api.example.com/admin;/x",
        "https://api.example.com/public/..;/admin",
        "https://api.example.com/public;x/..;/admin",
        "https://api.example.com/admin%3Bx",
        "https://api.example.com/admin%00.json",
        "https://api.example.com/orgs/acme;a=b/members",
    ] {
        assert_requires_approval_url(url);
    }
}

#[test]
fn query_and_fragment_do_not_escape_require() {
    for url in [
        "https://api.example.com/admin?next=/public",
        "https://api.example.com/admin#/public",
        "https://api.example.com/admin?",
        "https://api.example.com/admin/?a=%2F..%2Fpublic",
        "https://api.example.com/admin%3F/x",
        "https://api.example.com/admin%23x",
        "https://api.example.com/admin%253Fx",
    ] {
        assert_requires_approval_url(url);
    }
}

#[test]
fn host_spellings_do_not_escape_a_host_bound_require() {
    for url in [
        "https://API.EXAMPLE.COM/orgs/a/members",
        "https://api.example.com./orgs/a/members",
        "https://api.example.com:443/orgs/a/members",
        "http://api.example.com/orgs/a/members",
        "https://api.example.com:8443/orgs/a/members",
    ] {
        assert_requires_approval_url(url);
    }
}

#[test]
fn require_does_not_match_across_a_segment_boundary() {
    for url in [
        "https://api.example.com/administrator",
        "https://api.example.com/adminx/y",
        "https://api.example.com/x/admin",
    ] {
        let e = eval("GET", url, &admin_guarded());
        assert_eq!(e.reason, PolicyReason::AutoApproveMethod, "{url}");
    }
}

#[test]
fn non_ascii_lookalikes_are_different_paths() {
    // Not a bypass: the upstream reads these as different paths too.
    for url in [
        "https://api.example.com/\u{e1}dmin",
        "https://api.example.com/admi\u{0131}",
    ] {
        assert_eq!(
            eval("GET", url, &admin_guarded()).reason,
            PolicyReason::AutoApproveMethod,
            "{url}"
        );
    }
    let p = compiled(Policy {
        require_approval_urls: strings(&["/\u{e9}t\u{e9}"]),
        auto_approve_methods: strings(&["GET"]),
        ..Policy::default()
    });
    for url in [
        "https://a.test/\u{e9}t\u{e9}/x",
        "https://a.test/%C3%A9t%c3%a9",
        "https://a.test/%25C3%25A9t%C3%A9",
    ] {
        assert_eq!(
            eval("GET", url, &p).reason,
            PolicyReason::RequireApprovalUrl,
            "{url}"
        );
    }
}

// ---------------------------------------------------------------- THREATS §F: auto widening

#[test]
fn prefix_without_segment_boundary_does_not_widen_auto() {
    assert_not_auto_approved("https://a.test/publicity");
    assert_not_auto_approved("https://a.test/public.json");
    assert_not_auto_approved("https://a.test/publ");
}

#[test]
fn dot_segments_do_not_widen_auto() {
    assert_not_auto_approved("https://a.test/public/../admin");
    assert_not_auto_approved("https://a.test/public/%2e%2e/admin");
    assert_not_auto_approved("https://a.test/public/%2E%2E/%2e%2e/admin");
    assert_not_auto_approved("https://a.test/public/%252e%252e/admin");
    assert_not_auto_approved("https://a.test/public/%C0%AE%C0%AE/admin");
}

#[test]
fn encoded_separators_and_nul_do_not_widen_auto() {
    for url in [
        "https://a.test/public%2F..%2Fadmin",
        "https://a.test/public/..%2Fadmin",
        "https://a.test/public/..%2fadmin",
        "https://a.test/public/..%5Cadmin",
        "https://a.test/public/%5C..%5C..%5Cadmin",
        "https://a.test/public/x%00",
        "https://a.test/public/%252F",
        "https://a.test/public/%C0%AF",
        "https://a.test/%2Fpublic",
    ] {
        assert_not_auto_approved(url);
    }
}

#[test]
fn invalid_escapes_do_not_widen_auto() {
    for url in [
        "https://a.test/public/%zz",
        "https://a.test/public/%",
        "https://a.test/public/%2",
        "https://a.test/public/%2%46",
        "https://a.test/public/%FF",
    ] {
        assert_not_auto_approved(url);
    }
}

#[test]
fn matrix_dot_segments_do_not_widen_auto() {
    assert_not_auto_approved("https://a.test/public/..;/admin");
    assert_not_auto_approved("https://a.test/public/..;x=y/admin");
    assert_not_auto_approved("https://a.test/public/.;/x");
    assert_not_auto_approved("https://a.test/public;/../admin");
    // Auto patterns compare exact segments: matrix params fail closed.
    assert_not_auto_approved("https://a.test/public;v=1/x");
}

#[test]
fn case_changes_do_not_widen_auto() {
    assert_not_auto_approved("https://a.test/PUBLIC");
    assert_not_auto_approved("https://a.test/Public/x");
    assert_not_auto_approved("https://a.test/%50ublic");
}

#[test]
fn query_and_fragment_do_not_widen_auto() {
    assert_not_auto_approved("https://a.test/admin?/public");
    assert_not_auto_approved("https://a.test/admin?x=/public");
    assert_not_auto_approved("https://a.test/admin#/public");
}

#[test]
fn non_ascii_does_not_widen_auto() {
    assert_not_auto_approved("https://a.test/p\u{fa}blic");
    assert_not_auto_approved("https://a.test/\u{ff50}ublic");
}

#[test]
fn canonical_spellings_of_the_same_path_still_auto_approve() {
    let p = public_only();
    for url in [
        "https://a.test/public",
        "https://a.test/public/",
        "https://a.test/public/x?y=1#z",
        "https://a.test/%70ublic/x",
        "https://a.test//public//x",
        "https://a.test/x/../public",
    ] {
        assert_eq!(
            eval("GET", url, &p).reason,
            PolicyReason::AutoApproveUrl,
            "{url}"
        );
    }
}

#[test]
fn host_bound_auto_does_not_widen_to_other_hosts() {
    let p = compiled(Policy {
        auto_approve_urls: strings(&["api.example.com/public"]),
        ..Policy::default()
    });
    for url in [
        "https://evil.test/public",
        "https://api.example.com.evil.test/public",
        "https://api.example.com./public",
        "https://xapi.example.com/public",
    ] {
        assert_eq!(eval("GET", url, &p).decision, Decision::Approval, "{url}");
    }
    assert_eq!(
        eval("GET", "https://API.example.com/public", &p).decision,
        Decision::Proceed
    );
}

// ---------------------------------------------------------------- grants

fn grant<'a>(methods: &'a [String], scope: &'a str) -> GrantView<'a> {
    GrantView {
        id: "g1",
        methods,
        route_scope: scope,
        expires_at: NOW + 60,
        uses_left: None,
    }
}

fn write_gated() -> CompiledPolicy {
    compiled(Policy {
        auto_approve_methods: strings(&["GET"]),
        require_approval_urls: strings(&["/admin"]),
        ..Policy::default()
    })
}

#[test]
fn grant_turns_approval_into_proceed() {
    let methods = strings(&["post"]);
    let grants = [grant(&methods, "/v1/issues")];
    let p = write_gated();
    let e = eval_with(
        "POST",
        "https://a.test/v1/issues/1",
        Some(&p),
        ApprovalMode::Gated,
        &grants,
    );
    assert_eq!(e.decision, Decision::Proceed);
    assert_eq!(e.reason, PolicyReason::Grant("g1".into()));
    assert_eq!(e.reason.to_string(), "grant:g1");
    assert_eq!(e.rule.as_deref(), Some("/v1/issues"));
}

#[test]
fn grant_applies_to_the_team_default_too() {
    let methods = strings(&["DELETE"]);
    let grants = [grant(&methods, "/x")];
    let e = eval_with(
        "DELETE",
        "https://a.test/x",
        None,
        ApprovalMode::Gated,
        &grants,
    );
    assert_eq!(e.reason, PolicyReason::Grant("g1".into()));
}

#[test]
fn grant_get_covers_head() {
    let methods = strings(&["GET"]);
    let grants = [grant(&methods, "/x")];
    let p = compiled(Policy::default());
    let e = eval_with(
        "HEAD",
        "https://a.test/x",
        Some(&p),
        ApprovalMode::Gated,
        &grants,
    );
    assert_eq!(e.decision, Decision::Proceed);
}

#[test]
fn grant_does_not_replace_a_proceed() {
    let methods = strings(&["GET"]);
    let grants = [grant(&methods, "/x")];
    let p = write_gated();
    let e = eval_with(
        "GET",
        "https://a.test/x",
        Some(&p),
        ApprovalMode::Gated,
        &grants,
    );
    assert_eq!(e.reason, PolicyReason::AutoApproveMethod);
}

#[test]
fn expired_grant_does_not_apply() {
    let methods = strings(&["POST"]);
    let p = write_gated();
    for expires_at in [NOW, NOW - 1] {
        let grants = [GrantView {
            expires_at,
            ..grant(&methods, "/x")
        }];
        let e = eval_with(
            "POST",
            "https://a.test/x",
            Some(&p),
            ApprovalMode::Gated,
            &grants,
        );
        assert_eq!(
            e.reason,
            PolicyReason::RequireApprovalDefault,
            "{expires_at}"
        );
    }
}

#[test]
fn used_up_grant_does_not_apply_but_remaining_uses_do() {
    let methods = strings(&["POST"]);
    let p = write_gated();
    let used_up = [GrantView {
        uses_left: Some(0),
        ..grant(&methods, "/x")
    }];
    let e = eval_with(
        "POST",
        "https://a.test/x",
        Some(&p),
        ApprovalMode::Gated,
        &used_up,
    );
    assert_eq!(e.decision, Decision::Approval);
    let one_left = [GrantView {
        uses_left: Some(1),
        ..grant(&methods, "/x")
    }];
    let e = eval_with(
        "POST",
        "https://a.test/x",
        Some(&p),
        ApprovalMode::Gated,
        &one_left,
    );
    assert_eq!(e.decision, Decision::Proceed);
}

#[test]
fn grant_for_another_method_does_not_apply() {
    let methods = strings(&["POST"]);
    let grants = [grant(&methods, "/x")];
    let p = write_gated();
    let e = eval_with(
        "DELETE",
        "https://a.test/x",
        Some(&p),
        ApprovalMode::Gated,
        &grants,
    );
    assert_eq!(e.reason, PolicyReason::RequireApprovalDefault);
    let head_only = strings(&["HEAD"]);
    let grants = [grant(&head_only, "/x")];
    let strict = compiled(Policy::default());
    let e = eval_with(
        "GET",
        "https://a.test/x",
        Some(&strict),
        ApprovalMode::Gated,
        &grants,
    );
    assert_eq!(e.decision, Decision::Approval);
}

#[test]
fn grant_for_another_route_or_a_bad_scope_does_not_apply() {
    let methods = strings(&["POST"]);
    let p = write_gated();
    for scope in ["/y", "/x/y", "other.test/x", "/x?bad", ""] {
        let grants = [grant(&methods, scope)];
        let e = eval_with(
            "POST",
            "https://a.test/x",
            Some(&p),
            ApprovalMode::Gated,
            &grants,
        );
        assert_eq!(e.decision, Decision::Approval, "{scope:?}");
    }
}

#[test]
fn grant_scope_matches_strictly() {
    let methods = strings(&["POST"]);
    let grants = [grant(&methods, "/public")];
    let p = write_gated();
    for url in [
        "https://a.test/public/..%2Fprivate",
        "https://a.test/public/..;/private",
        "https://a.test/PUBLIC",
        "https://a.test/publicity",
    ] {
        let e = eval_with("POST", url, Some(&p), ApprovalMode::Gated, &grants);
        assert_eq!(e.decision, Decision::Approval, "{url}");
    }
}

#[test]
fn grant_never_overrides_a_require_url_hit() {
    let methods = strings(&["GET", "POST"]);
    let grants = [grant(&methods, "/")];
    let p = write_gated();
    let e = eval_with(
        "POST",
        "https://a.test/admin",
        Some(&p),
        ApprovalMode::Gated,
        &grants,
    );
    assert_eq!(e.reason, PolicyReason::RequireApprovalUrl);
}

#[test]
fn grant_never_applies_with_require_passkey() {
    let methods = strings(&["POST"]);
    let grants = [grant(&methods, "/")];
    let p = compiled(Policy {
        require_passkey: true,
        ..Policy::default()
    });
    let e = eval_with(
        "POST",
        "https://a.test/x",
        Some(&p),
        ApprovalMode::Gated,
        &grants,
    );
    assert_eq!(e.reason, PolicyReason::RequireApprovalDefault);
}

#[test]
fn grant_never_applies_with_several_approvers() {
    let methods = strings(&["POST"]);
    let grants = [grant(&methods, "/")];
    let p = compiled(Policy {
        require_approval_methods: strings(&["POST"]),
        min_approvals: 2,
        ..Policy::default()
    });
    let e = eval_with(
        "POST",
        "https://a.test/x",
        Some(&p),
        ApprovalMode::Gated,
        &grants,
    );
    assert_eq!(e.reason, PolicyReason::RequireApprovalMethod);
}

#[test]
fn first_covering_grant_wins() {
    let post = strings(&["POST"]);
    let grants = [
        GrantView {
            id: "expired",
            expires_at: NOW,
            ..grant(&post, "/")
        },
        GrantView {
            id: "second",
            ..grant(&post, "/")
        },
        GrantView {
            id: "third",
            ..grant(&post, "/")
        },
    ];
    let e = eval_with(
        "POST",
        "https://a.test/x",
        None,
        ApprovalMode::Gated,
        &grants,
    );
    assert_eq!(e.reason, PolicyReason::Grant("second".into()));
}

// ---------------------------------------------------------------- cost

#[test]
#[ignore = "timing; run with --release --ignored"]
fn evaluation_takes_well_under_ten_microseconds() {
    let p = compiled(Policy {
        require_approval_urls: (0..10).map(|i| format!("/admin{i}/*/x")).collect(),
        auto_approve_urls: (0..10)
            .map(|i| format!("api.example.com/v{i}/items"))
            .collect(),
        require_approval_methods: strings(&["DELETE"]),
        ..Policy::default()
    });
    let t = target("https://api.example.com/v9/items/42/comments?x=1");
    let methods = strings(&["POST"]);
    let grants: Vec<GrantView<'_>> = (0..5).map(|_| grant(&methods, "/v9/items")).collect();
    let n = 100_000u32;
    let start = std::time::Instant::now();
    for _ in 0..n {
        let e = evaluate(&EvalInput {
            method: std::hint::black_box("DELETE"),
            target: &t,
            policy: Some(&p),
            team_mode: ApprovalMode::Gated,
            grants: &grants,
            now: NOW,
        });
        std::hint::black_box(e);
    }
    let per = start.elapsed() / n;
    assert!(per < std::time::Duration::from_micros(10), "{per:?}");

    // An approval turned into a proceed by the last of five grants.
    let t = target("https://api.example.com/other/Thing/1");
    let grants: Vec<GrantView<'_>> = (0..5)
        .map(|i| grant(&methods, if i < 4 { "/nope" } else { "/other" }))
        .collect();
    let start = std::time::Instant::now();
    for _ in 0..n {
        let e = evaluate(&EvalInput {
            method: std::hint::black_box("POST"),
            target: &t,
            policy: Some(&p),
            team_mode: ApprovalMode::Gated,
            grants: &grants,
            now: NOW,
        });
        assert_eq!(e.decision, Decision::Proceed);
    }
    let per_grant = start.elapsed() / n;
    assert!(
        per_grant < std::time::Duration::from_micros(10),
        "{per_grant:?}"
    );

    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(target(std::hint::black_box(
            "https://API.example.com/v9/Items/%2e%2e/42;x/..%2Fc?x=1",
        )));
    }
    eprintln!(
        "evaluate: {per:?}, with grants: {per_grant:?}, parse + normalise: {:?}",
        start.elapsed() / n
    );
}

// ---------------------------------------------------------------- properties

/// Path pieces that exercise every normalisation rule.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_~.-]{1,4}",
        Just("/".to_owned()),
        Just("//".to_owned()),
        Just("/./".to_owned()),
        Just("/../".to_owned()),
        Just("\\".to_owned()),
        Just(";".to_owned()),
        Just("*".to_owned()),
        Just("%".to_owned()),
        Just("\u{e9}".to_owned()),
        Just(" ".to_owned()),
        "%[0-9a-fA-F]{2}",
        "%2[eEfF]",
        "%5[cC]",
        "%[cC][01]%[aA][eEfF]",
        "%25[0-9a-fA-F]{2}",
        "[!$&'()+,=:@|^{}\\[\\]`\"<>]",
    ]
}

fn raw_path() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..16).prop_map(|v| v.concat())
}

/// Pattern-ish paths from a small alphabet so that matches actually occur.
fn small_path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("a"),
        Just("A"),
        Just("b"),
        Just("%61"),
        Just("a;x"),
        Just(".."),
        Just("."),
        Just(""),
        Just("%2F"),
        Just("%2e%2e"),
        Just("..;"),
        Just("%252F"),
        Just("%5c"),
        Just("%00"),
        Just("A;X"),
        Just("%2e"),
        Just("%C0%AF"),
    ];
    prop::collection::vec(seg, 0..6).prop_map(|v| format!("/{}", v.join("/")))
}

fn small_pattern() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("a"),
        Just("A"),
        Just("b"),
        Just("*"),
        Just("%61"),
        Just("a;x")
    ];
    let host = prop_oneof![
        Just(""),
        Just("h.test"),
        Just("H.TEST:443"),
        Just("https://h.test")
    ];
    (host, prop::collection::vec(seg, 0..4)).prop_map(|(h, v)| format!("{h}/{}", v.join("/")))
}

fn url_of(path: &str) -> url::Url {
    url::Url::parse(&format!("https://h.test{path}")).unwrap()
}

proptest! {
    #[test]
    fn normalising_is_idempotent(raw in raw_path()) {
        let once = normalize_path(&raw).path;
        prop_assert_eq!(&normalize_path(&once).path, &once);
        let path = format!("/{}", raw.trim_start_matches(['/', '\\']));
        let t1 = NormalizedTarget::from_url(&url_of(&path));
        let t2 = NormalizedTarget::from_url(&url::Url::parse(&t1.as_display()).unwrap());
        prop_assert_eq!(t1.path(), t2.path());
        prop_assert_eq!(t1.host(), t2.host());
        prop_assert_eq!(t1.port(), t2.port());
        prop_assert_eq!(t1.scheme(), t2.scheme());
    }

    #[test]
    fn plain_canonical_paths_are_fixed_points(raw in raw_path()) {
        if is_plain_canonical(&raw) {
            let n = normalize_path(&raw);
            prop_assert_eq!(&n.path, &raw);
            prop_assert!(!n.invalid_escape);
        }
        let n = normalize_path(&raw);
        if !n.path.contains('%') {
            prop_assert!(is_plain_canonical(&n.path), "{}", n.path);
        }
    }

    #[test]
    fn no_dot_segment_or_double_slash_survives(raw in raw_path()) {
        let path = normalize_path(&raw).path;
        prop_assert!(path.starts_with('/'));
        prop_assert!(!path.contains("//"), "{}", path);
        prop_assert!(!segments(&path).any(|s| s == "." || s == ".."), "{}", path);
        let t = target(&format!("https://h.test/{}", raw.trim_start_matches(['/', '\\'])));
        prop_assert!(!t.path().contains("//"));
        prop_assert!(!segments(t.path()).any(|s| s == "." || s == ".."));
    }

    #[test]
    fn escapes_in_the_path_are_canonical(raw in raw_path()) {
        let path = normalize_path(&raw).path;
        let bytes = path.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'%' {
                let hex = path.get(i + 1..i + 3).unwrap_or("");
                prop_assert!(hex.len() == 2 && hex.bytes().all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(&h)), "{}", path);
                let v = u8::from_str_radix(hex, 16).unwrap();
                prop_assert!(!(v.is_ascii_alphanumeric() || b"-._~".contains(&v)), "{}", path);
            }
        }
    }

    #[test]
    fn decoding_unreserved_escapes_is_stable(
        plain in prop::collection::vec("[a-zA-Z0-9_~.-]{1,6}", 1..6),
        mask in prop::collection::vec(any::<(bool, bool)>(), 36),
    ) {
        let plain = format!("/{}", plain.join("/"));
        let mut encoded = String::new();
        for (c, (enc, lower)) in plain.chars().zip(mask.iter().cycle()) {
            if *enc && c != '/' {
                let e = format!("%{:02X}", c as u32);
                encoded.push_str(&if *lower { e.to_ascii_lowercase() } else { e });
            } else {
                encoded.push(c);
            }
        }
        let a = target(&format!("https://h.test{plain}"));
        let b = target(&format!("https://h.test{encoded}"));
        prop_assert_eq!(a.path(), b.path());
        prop_assert_eq!(a.is_auto_matchable(), b.is_auto_matchable());
    }

    #[test]
    fn auto_match_implies_require_match(p in small_pattern(), path in small_path()) {
        let pattern = UrlPattern::parse(&p).unwrap();
        let t = NormalizedTarget::from_url(&url_of(&path));
        if pattern.matches_auto(&t) {
            prop_assert!(pattern.matches_require(&t), "{} {}", p, path);
        }
    }

    #[test]
    fn grant_scopes_match_exactly_like_auto_patterns(p in small_pattern(), path in small_path()) {
        let t = NormalizedTarget::from_url(&url_of(&path));
        let compiled = UrlPattern::parse(&p).unwrap().matches_auto(&t);
        prop_assert_eq!(pattern::grant_scope_matches(&p, &t), compiled);
    }

    #[test]
    fn case_changes_never_escape_require(p in small_pattern(), path in small_path()) {
        let pattern = UrlPattern::parse(&p).unwrap();
        let t = NormalizedTarget::from_url(&url_of(&path));
        if pattern.matches_require(&t) {
            for changed in [path.to_ascii_uppercase(), path.to_ascii_lowercase()] {
                let t2 = NormalizedTarget::from_url(&url_of(&changed));
                prop_assert!(pattern.matches_require(&t2), "{} {}", p, changed);
            }
        }
    }

    #[test]
    fn inserted_noise_never_escapes_require(
        p in small_pattern(),
        path in small_path(),
        // Noise the WHATWG parser removes wherever it stands. (`//` is not
        // such noise: a following `..` pops the empty segment instead.)
        noise in prop_oneof![Just("/./"), Just("/zz/../"), Just("/%2e/"), Just("/zz/%2E%2E/")],
        at in any::<prop::sample::Index>(),
    ) {
        let pattern = UrlPattern::parse(&p).unwrap();
        let t = NormalizedTarget::from_url(&url_of(&path));
        if pattern.matches_require(&t) {
            let slashes: Vec<usize> = path.match_indices('/').map(|(i, _)| i).collect();
            let i = slashes[at.index(slashes.len())];
            let noisy = format!("{}{}{}", &path[..i], noise, &path[i + 1..]);
            let t2 = NormalizedTarget::from_url(&url_of(&noisy));
            prop_assert!(pattern.matches_require(&t2), "{} {} {}", p, noisy, t2.path());
        }
    }

    #[test]
    fn normalising_never_panics(raw in ".{0,64}") {
        let _ = normalize_path(&raw);
        let _ = UrlPattern::parse(&raw);
        let _ = normalize_method(&raw);
    }
}
