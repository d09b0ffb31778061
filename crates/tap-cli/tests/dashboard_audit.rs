//! The dashboard's audit browser and status page through the real `tap`
//! binary: sign-in by the form, filters that narrow the rows, a timeline
//! naming the approver and the upstream answer, an agent's `<script>` body
//! rendered inert, an export equal to the admin API's, the role checks of the
//! API (viewers read, approvers are refused), and status numbers that move
//! with real requests and agree with `/metrics`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tap_testkit::{FakeUpstream, Reply, Served, TapHome, eventually, form_enc, form_field};

const SECRET: &str = "dashboard-audit-secret-4711";
const OTHER_SECRET: &str = "dashboard-other-secret-0815";
const PASSWORD: &str = "a-long-member-password-1234";

fn assert_page_headers(r: &Reply) {
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
}

/// The request ids of the audit list's rows, in page order.
fn row_ids(html: &str) -> Vec<String> {
    html.split("<tr data-request=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_owned())
        .collect()
}

fn add_member(tap: &TapHome, email: &str, role: &str) {
    let out = tap.run_stdin(
        &["member", "add", email, "--role", role, "--password-stdin"],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
}

async fn get_ok(served: &Served, key: &str, credential: &str, target: &str) -> String {
    let r = served
        .forward(key)
        .credential(credential)
        .target(target)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.request_id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_browser_filters_shows_a_timeline_and_exports_what_the_api_exports() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let owner_email = init["owner_email"].as_str().unwrap().to_owned();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    tap.add_credential("other", OTHER_SECRET, &["--allowed-host", &up.base()]);
    let bot = tap.agent("bot", &["--credential", "echo"]);
    let bot2 = tap.agent("bot2", &["--credential", "other"]);
    add_member(&tap, "viewer@example.com", "viewer");
    add_member(&tap, "appr@example.com", "approver");
    tap.ok(&[
        "member",
        "assign",
        "appr@example.com",
        "--credential",
        "echo",
    ]);
    let served = tap.serve();
    let owner = served
        .sign_in_form(&owner_email, init["owner_password"].as_str().unwrap())
        .await;

    // Without a session: to the sign-in form, coming back here.
    let r = served.page("/dashboard/audit", None).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/login?next=/dashboard/audit")
    );

    let read1 = get_ok(&served, &bot, "echo", &format!("{}/read/one", up.base())).await;
    let read2 = get_ok(&served, &bot2, "other", &format!("{}/read/two", up.base())).await;
    // A leak attempt: refused, audited.
    let leak = served
        .forward(&bot)
        .credential("echo")
        .target(&format!("{}/leak", up.base()))
        .method("POST")
        .body(format!("{{\"token\":\"{SECRET}\"}}"))
        .send()
        .await;
    leak.assert_refused(400, "secret_in_request");
    let leak = leak.request_id();
    // A write with a hostile body waits for approval; the owner approves it.
    let w = served
        .forward(&bot)
        .credential("echo")
        .target(&format!("{}/pay", up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .body("<script>alert('xss')</script>")
        .send()
        .await;
    assert_eq!(w.status, 202, "{}", w.text());
    let txn = w.json()["txn_id"].as_str().unwrap().to_owned();
    let page = served.page(&format!("/approve/{txn}"), Some(&owner)).await;
    let csrf = form_field(&page.text(), &format!("/approve/{txn}/approve"), "csrf");
    let r = served
        .post_form(
            &format!("/approve/{txn}/approve"),
            &owner,
            &format!("csrf={}", form_enc(&csrf)),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let timeline = eventually(100, Duration::from_millis(100), || async {
        let p = served
            .page(&format!("/dashboard/audit/{txn}"), Some(&owner))
            .await;
        (p.status == 200 && p.text().contains("HTTP 200")).then_some(p)
    })
    .await
    .expect("the approved request's timeline shows the upstream answer");
    assert_page_headers(&timeline);
    let html = timeline.text();
    assert!(
        html.contains(&format!("approved by {owner_email} via web")),
        "{html}"
    );
    for step in [
        "Authenticated",
        "Policy",
        "Approval",
        "Upstream",
        "Scrubbing",
    ] {
        assert!(html.contains(&format!("<b>{step}</b>")), "{step}: {html}");
    }
    assert!(html.contains("reason team_default_gated_write"), "{html}");
    // The agent's markup is text, never markup.
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(&#39;xss&#39;)&#60;/script&#62;"),
        "{html}"
    );
    assert!(!html.contains(SECRET));

    // The list: every request, newest first, the chain intact.
    let list = served.page("/dashboard/audit", Some(&owner)).await;
    assert_eq!(list.status, 200);
    assert_page_headers(&list);
    let html = list.text();
    assert_eq!(
        row_ids(&html),
        [txn.as_str(), leak.as_str(), read2.as_str(), read1.as_str()],
        "{html}"
    );
    assert!(html.contains("id=\"chain\" class=\"chain ok\""), "{html}");
    assert!(html.contains("rows verify"), "{html}");
    assert!(!html.contains(SECRET) && !html.contains(OTHER_SECRET));
    assert!(!html.contains("<script>alert"), "{html}");

    // Filters narrow the rows.
    let ids = |q: &'static str| {
        let served = &served;
        let owner = &owner;
        async move {
            let p = served
                .page(&format!("/dashboard/audit?{q}"), Some(owner))
                .await;
            assert_eq!(p.status, 200, "{q}: {}", p.text());
            row_ids(&p.text())
        }
    };
    assert_eq!(ids("agent=bot2").await, [read2.as_str()]);
    assert_eq!(ids("credential=other").await, [read2.as_str()]);
    assert_eq!(
        ids("agent=bot&credential=echo").await,
        [txn.as_str(), leak.as_str(), read1.as_str()]
    );
    assert_eq!(ids("outcome=secret_in_request").await, [leak.as_str()]);
    assert_eq!(ids("outcome=refused").await, [leak.as_str()]);
    assert_eq!(
        ids("outcome=ok&agent=bot").await,
        [txn.as_str(), read1.as_str()]
    );
    assert_eq!(
        ids("agent=&credential=&outcome=").await.len(),
        4,
        "empty fields mean any"
    );
    assert!(ids("since=2999-01-01").await.is_empty());
    assert!(ids("until=2000-01-01T00:00").await.is_empty());
    assert_eq!(ids("since=2000-01-01&until=2999-12-31").await.len(), 4);
    let bad = served
        .page("/dashboard/audit?since=%3Cb%3Esoon", Some(&owner))
        .await;
    assert_eq!(bad.status, 200);
    assert!(bad.text().contains("is not a time"), "{}", bad.text());
    assert!(bad.text().contains("&#60;b&#62;soon"), "{}", bad.text());

    // The export is the admin API's export of the same filter, as a download.
    let token = served
        .login(&owner_email, init["owner_password"].as_str().unwrap())
        .await;
    for q in ["", "agent=bot", "credential=other", "status=refused"] {
        let mine = served
            .page(&format!("/dashboard/audit/export?{q}"), Some(&owner))
            .await;
        assert_eq!(mine.status, 200, "{q}: {}", mine.text());
        assert_eq!(
            mine.header("content-type").as_deref(),
            Some("application/x-ndjson")
        );
        assert!(
            mine.header("content-disposition")
                .unwrap()
                .starts_with("attachment; filename=\"tap-audit-"),
            "{:?}",
            mine.header("content-disposition")
        );
        let api = served
            .get_bearer(&format!("/team/audit/export?{q}"), &token)
            .await;
        assert_eq!(api.status, 200);
        assert_eq!(mine.text(), api.text(), "{q}");
        assert!(!mine.text().is_empty());
    }
    let lines: Vec<serde_json::Value> = served
        .page("/dashboard/audit/export?agent=bot2", Some(&owner))
        .await
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["request_id"], read2.as_str());

    // A viewer reads everything and is offered nothing that changes anything.
    let viewer = served.sign_in_form("viewer@example.com", PASSWORD).await;
    for path in [
        "/dashboard/audit".to_owned(),
        format!("/dashboard/audit/{txn}"),
        "/dashboard/status".to_owned(),
    ] {
        let p = served.page(&path, Some(&viewer)).await;
        assert_eq!(p.status, 200, "{path}: {}", p.text());
        let html = p.text();
        assert_eq!(
            html.matches("method=\"post\"").count(),
            1,
            "only the sign-out form on {path}: {html}"
        );
        assert!(html.contains("action=\"/logout\""));
    }
    let v = served
        .page("/dashboard/audit?agent=bot2", Some(&viewer))
        .await;
    assert_eq!(row_ids(&v.text()), [read2.as_str()]);
    // Nothing under /dashboard/audit takes a POST, forged or not.
    for path in [
        "/dashboard/audit",
        "/dashboard/audit/export",
        "/dashboard/status",
    ] {
        let r = served.post_form(path, &viewer, "csrf=forged").await;
        assert!(matches!(r.status, 403 | 405), "{path}: {}", r.status);
    }

    // An approver has no audit rights (SPEC §4: viewer or above): refused, as by the API.
    let approver = served.sign_in_form("appr@example.com", PASSWORD).await;
    for path in [
        "/dashboard/audit".to_owned(),
        "/dashboard/audit/export".to_owned(),
        format!("/dashboard/audit/{txn}"),
    ] {
        let r = served.page(&path, Some(&approver)).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.text().contains("viewer role"), "{}", r.text());
        assert!(!r.text().contains(&read1));
    }
    let appr_token = served.login("appr@example.com", PASSWORD).await;
    assert_eq!(
        served
            .get_bearer("/team/audit/export", &appr_token)
            .await
            .status,
        403
    );

    // Unknown and malformed ids are the same "not found".
    for id in ["no-such-request", "%3Cscript%3E"] {
        let r = served
            .page(&format!("/dashboard/audit/{id}"), Some(&owner))
            .await;
        assert_eq!(r.status, 404, "{id}");
        assert!(!r.text().contains("<script>"));
    }
    // A team the member is not in: refused, not another team's rows.
    let r = served
        .page("/dashboard/audit?team=nobodys-team", Some(&owner))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
}

/// The number shown in `<dd id="{id}">`.
fn figure(html: &str, id: &str) -> u64 {
    let key = format!("id=\"{id}\">");
    let at = html.find(&key).unwrap_or_else(|| panic!("no {id}: {html}")) + key.len();
    html[at..at + html[at..].find('<').unwrap()]
        .parse()
        .unwrap()
}

/// The sum of a counter family's samples with `outcome="..."` in `/metrics` text.
fn metric_sum(text: &str, name: &str, outcome: Option<&str>) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| outcome.is_none_or(|o| l.contains(&format!("outcome=\"{o}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_numbers_move_with_real_requests_and_agree_with_metrics() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let email = init["owner_email"].as_str().unwrap().to_owned();
    let password = init["owner_password"].as_str().unwrap().to_owned();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let bot = tap.agent("bot", &["--credential", "echo"]);
    add_member(&tap, "appr@example.com", "approver");
    let served = tap.serve();
    let owner = served.sign_in_form(&email, &password).await;

    let r = served.page("/dashboard/status", None).await;
    assert_eq!(r.status, 303);
    let before = served.page("/dashboard/status", Some(&owner)).await;
    assert_eq!(before.status, 200);
    assert_page_headers(&before);
    let html = before.text();
    for id in [
        "total-ok",
        "pending-approvals",
        "scrub-hits",
        "leak-blocks",
        "upstream-errors",
    ] {
        assert_eq!(figure(&html, id), 0, "{id}");
    }
    // No bar in the per-minute chart yet (its bars' titles say "N min ago: ...").
    assert!(!html.contains(" min ago: "), "{html}");
    assert!(!html.contains("style="), "no inline style: {html}");

    // Two answers, one with the secret reflected (scrubbed), a leak attempt,
    // and one write left waiting.
    get_ok(&served, &bot, "echo", &format!("{}/plain", up.base())).await;
    get_ok(&served, &bot, "echo", &format!("{}/reflect", up.base())).await;
    served
        .forward(&bot)
        .credential("echo")
        .target(&format!("{}/leak", up.base()))
        .method("POST")
        .body(SECRET)
        .send()
        .await
        .assert_refused(400, "secret_in_request");
    let w = served
        .forward(&bot)
        .credential("echo")
        .target(&format!("{}/pay", up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .body("{}")
        .send()
        .await;
    assert_eq!(w.status, 202, "{}", w.text());

    let after = eventually(100, Duration::from_millis(100), || async {
        let h = served.page("/dashboard/status", Some(&owner)).await.text();
        (figure(&h, "total-ok") == 2 && figure(&h, "leak-blocks") == 1).then_some(h)
    })
    .await
    .expect("the status page counts the requests");
    assert_eq!(figure(&after, "scrub-hits"), 1, "{after}");
    assert_eq!(figure(&after, "pending-approvals"), 1, "{after}");
    assert!(figure(&after, "total-refused") + figure(&after, "total-error") >= 1);
    assert!(
        after.contains(" min ago: 1 ok</title>") || after.contains(" min ago: 2 ok</title>"),
        "{after}"
    );

    // The same counters as /metrics.
    let token = served.login(&email, &password).await;
    let m = served.get_bearer("/metrics", &token).await.text();
    assert_eq!(metric_sum(&m, "tap_requests_total", Some("ok")), 2, "{m}");
    for (id, outcome) in [
        ("total-ok", "ok"),
        ("total-refused", "refused"),
        ("total-error", "error"),
        ("total-approval", "approval"),
    ] {
        assert_eq!(
            figure(&after, id),
            metric_sum(&m, "tap_requests_total", Some(outcome)),
            "{id}: {m}"
        );
    }
    assert_eq!(
        figure(&after, "scrub-hits"),
        metric_sum(&m, "tap_scrubbed_responses_total", None)
    );
    assert_eq!(
        figure(&after, "leak-blocks"),
        metric_sum(&m, "tap_leak_blocks_total", None)
    );
    assert_eq!(
        figure(&after, "pending-approvals"),
        metric_sum(&m, "tap_pending_approvals", None)
    );

    // As for /metrics, any member may look.
    let approver = served.sign_in_form("appr@example.com", PASSWORD).await;
    let a = served.page("/dashboard/status", Some(&approver)).await;
    assert_eq!(a.status, 200);
    assert_eq!(figure(&a.text(), "total-ok"), 2);
}
