use super::*;
use tap_core::model::{ApprovalStatus, Vote};

fn record() -> AuditRecord {
    AuditRecord {
        request_id: "req-1".into(),
        team_id: "acme".into(),
        agent_id: "bot".into(),
        credential_names: vec!["echo".into()],
        method: "POST".into(),
        target_url: "https://api.example.com/pay".into(),
        decision: "approval".into(),
        policy_reason: Some("require_approval_method".into()),
        approval_status: Some("forwarded".into()),
        approvers: vec!["owner@example.com".into()],
        upstream_status: Some(201),
        latency_total_ms: Some(4000.0),
        latency_approval_ms: Some(3000.0),
        latency_upstream_ms: Some(500.0),
        response_scrubbed: true,
        request_body: Some("<script>alert(1)</script>".into()),
        timestamp: "2026-12-06T00:10:30.000Z".into(),
        ..Default::default()
    }
}

#[test]
fn time_bounds_widen_dates_and_minutes_and_refuse_other_text() {
    assert_eq!(
        time_bound("2026-12-06", false).as_deref(),
        Some("2026-12-06T00:00:00Z")
    );
    assert_eq!(
        time_bound("2026-12-06", true).as_deref(),
        Some("2026-12-06T23:59:59.999Z")
    );
    assert_eq!(
        time_bound("2026-12-06T09:30", true).as_deref(),
        Some("2026-12-06T09:30:59.999Z")
    );
    assert_eq!(
        time_bound("2026-12-06T09:30:00Z", false).as_deref(),
        Some("2026-12-06T09:30:00Z")
    );
    assert_eq!(time_bound("yesterday", false), None);
    assert_eq!(time_bound("2026-12-06' OR 1=1", false), None);
    assert_eq!(time_bound("2026", false), None);
}

#[test]
fn until_keeps_requests_up_to_the_end_of_the_given_minute() {
    let w = Wanted::parse(&AuditParams {
        until: Some("2026-12-06T00:10".into()),
        ..Default::default()
    });
    assert!(w.problems.is_empty());
    assert!(w.keeps(&record()));
    let mut later = record();
    later.timestamp = "2026-12-06T00:11:00.000Z".into();
    assert!(!w.keeps(&later));
    let bad = Wanted::parse(&AuditParams {
        since: Some("soon".into()),
        page: Some("x".into()),
        ..Default::default()
    });
    assert_eq!(bad.problems.len(), 2, "{:?}", bad.problems);
}

#[test]
fn outcomes_are_counted_as_metrics_counts_them() {
    let mut r = record();
    assert_eq!(outcome(&r), "ok");
    r.upstream_status = None;
    r.error_code = Some("approval_denied".into());
    assert_eq!(outcome(&r), "approval");
    r.decision = "refused".into();
    assert_eq!(outcome(&r), "refused");
    r.error_code = None;
    r.decision = "approval".into();
    assert_eq!(outcome(&r), "pending");
}

#[test]
fn the_timeline_names_who_approved_after_how_long_and_the_upstream_answer() {
    let approval = Approval {
        txn_id: "req-1".into(),
        team_internal_id: 1,
        agent_team_internal_id: 1,
        agent_id: "bot".into(),
        credential: "echo".into(),
        credential_version: 0,
        method: "POST".into(),
        target: "https://api.example.com/pay".into(),
        request: String::new(),
        request_hash: String::new(),
        status: ApprovalStatus::Forwarded,
        policy_reason: "require_approval_method".into(),
        min_approvals: 1,
        channels: vec!["web".into()],
        created_at: 1_000_000,
        expires_at: 2_000_000,
        decided_at: Some(1_003_000),
        error_code: None,
        response: None,
        votes: vec![Vote {
            email: "owner@example.com".into(),
            decision: "approve".into(),
            channel: "web".into(),
            at: 1_003_000,
        }],
    };
    let s = steps(&record(), Some(&approval));
    let names: Vec<_> = s.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "Authenticated",
            "Policy",
            "Approval",
            "Upstream",
            "Scrubbing",
            "Finished"
        ]
    );
    let approval_step = s[2].lines.join("\n");
    assert!(
        approval_step.contains("approved by owner@example.com via web")
            && approval_step.contains("(3.0 s after the request)"),
        "{approval_step}"
    );
    assert_eq!(s[3].lines, ["HTTP 201 in 500.0 ms"]);
    assert!(s[4].lines[0].contains("redacted"));
    // Without the stored approval the record's approvers still show.
    let s = steps(&record(), None);
    assert!(
        s[2].lines
            .join(" ")
            .contains("approved by owner@example.com")
    );
}

#[test]
fn a_refusal_before_policy_shows_no_upstream_call() {
    let r = AuditRecord {
        decision: "refused".into(),
        error_code: Some("secret_in_request".into()),
        ..record()
    };
    let r = AuditRecord {
        upstream_status: None,
        approval_status: None,
        approvers: vec![],
        policy_reason: None,
        ..r
    };
    let s = steps(&r, None);
    assert_eq!(s[1].state, "failed");
    assert!(s.iter().all(|s| s.name != "Approval"));
    assert_eq!(s[2].lines, ["not called"]);
    assert_eq!(s.last().map(|s| s.state), Some("failed"));
}

#[test]
fn the_time_bar_splits_the_total_into_proxy_approval_and_upstream() {
    let segs = segments(&record());
    let parts: Vec<_> = segs.iter().map(|s| (s.class, s.x, s.width)).collect();
    assert_eq!(
        parts,
        [
            ("seg-proxy", 0, 125),
            ("seg-approval", 125, 750),
            ("seg-upstream", 875, 125)
        ]
    );
    let none = AuditRecord {
        latency_total_ms: None,
        ..record()
    };
    assert!(segments(&none).is_empty());
}

#[test]
fn agent_text_in_the_timeline_is_escaped() {
    let mut r = record();
    r.agent_id = "<img src=x onerror=alert(1)>".into();
    let html = TimelinePage {
        title: "Request",
        nav: None,
        team: "acme".into(),
        request_id: r.request_id.clone(),
        method: r.method.clone(),
        target: r.target_url.clone(),
        outcome: outcome(&r),
        steps: steps(&r, None),
        segments: segments(&r),
        headers: vec![("x-note".into(), "\"><script>alert(2)</script>".into())],
        body: r.request_body.clone(),
        back_url: "/dashboard/audit?team=acme".into(),
    }
    .render()
    .unwrap();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    assert!(!html.contains("style="), "{html}");
}
