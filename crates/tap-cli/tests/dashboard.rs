//! The admin dashboard through the real `tap` binary (issue 20): an owner
//! manages credentials (the value write-only, never on any page), agents
//! (the key shown once and working at once), roles, policies with the dry
//! run, grants; a viewer sees no form that changes anything and a forged
//! POST from a viewer's session, CSRF token and all, is refused by the same
//! role check as the API and changes nothing; forms without the session's
//! token are refused; stored markup renders inert.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use tap_testkit::{
    FakeUpstream, Reply, Served, TapHome, cookie_pair, form_body, get_page, page_csrf, post_form,
    sign_in,
};

const FIRST: &str = "dashboard-first-secret-4711";
const SECOND: &str = "dashboard-second-secret-0815";
const PASSWORD: &str = "a-long-member-password-1234";
const XSS: &str = "<script>alert(1)</script>";

fn assert_page(r: &Reply) {
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{:?}",
        r.header("content-type")
    );
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
}

/// `GET` a page that must be there; its HTML.
async fn page(served: &Served, path: &str, cookie: &str) -> String {
    let r = get_page(served, path, Some(cookie)).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_page(&r);
    r.text()
}

/// A form post with the page token; the answer.
async fn post(
    served: &Served,
    path: &str,
    cookie: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> Reply {
    let mut all = vec![("csrf", csrf)];
    all.extend_from_slice(fields);
    post_form(served, path, cookie, &form_body(&all)).await
}

/// A post that must succeed with a redirect to `to`.
async fn post_ok(
    served: &Served,
    path: &str,
    cookie: &str,
    csrf: &str,
    fields: &[(&str, &str)],
    to: &str,
) {
    let r = post(served, path, cookie, csrf, fields).await;
    assert_eq!(r.status, 303, "{path}: {}", r.text());
    assert_eq!(r.header("location").as_deref(), Some(to), "{path}");
}

/// The `tap_…` agent key on a page.
fn key_on(html: &str) -> String {
    let at = html
        .find("tap_")
        .unwrap_or_else(|| panic!("no key: {html}"));
    html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// The `action`s of every POST form on a page.
fn post_actions(html: &str) -> Vec<String> {
    html.match_indices("<form")
        .filter_map(|(i, _)| {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            if !tag.contains("method=\"post\"") {
                return None;
            }
            let a = tag.find("action=\"")? + 8;
            Some(tag[a..a + tag[a..].find('"').unwrap()].to_owned())
        })
        .collect()
}

async fn api(served: &Served, token: &str, path: &str) -> Reply {
    served.get_bearer(path, token).await
}

async fn forward_status(served: &Served, key: &str, up: &FakeUpstream) -> u16 {
    served
        .forward(key)
        .credential("echo")
        .target(&format!("{}/items", up.base()))
        .send()
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_manages_credentials_and_agents_and_never_sees_a_value() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let token = init["admin_token"].as_str().unwrap().to_owned();
    let served = tap.serve();
    let cookie = sign_in(
        &served,
        init["owner_email"].as_str().unwrap(),
        init["owner_password"].as_str().unwrap(),
    )
    .await;
    let mut seen = Vec::new();

    // Signed out, the dashboard sends the browser to the sign-in form.
    let r = get_page(&served, "/dashboard/credentials", None).await;
    assert_eq!(r.status, 303);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/login?next=/dashboard")
    );

    let home = page(&served, "/dashboard", &cookie).await;
    assert!(home.contains("href=\"/dashboard\""), "nav entry: {home}");
    let csrf = page_csrf(&home);
    seen.push(home);

    // Create a credential with its value.
    let q = "?team=default";
    post_ok(
        &served,
        &format!("/dashboard/credentials{q}"),
        &cookie,
        &csrf,
        &[
            ("name", "echo"),
            ("description", "the echo service"),
            ("allowed_hosts", &up.base()),
            ("value", FIRST),
        ],
        "/dashboard/credentials/echo?team=default",
    )
    .await;
    let api_view = api(&served, &token, "/team/credentials/echo").await.json();
    assert_eq!(api_view["value_set"], true, "{api_view}");
    assert_eq!(api_view["allowed_hosts"][0], up.base());

    // The flash after the redirect, once.
    let r = post(
        &served,
        &format!("/dashboard/credentials/echo/value{q}"),
        &cookie,
        &csrf,
        &[("value", SECOND)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let flash = cookie_pair(&r, "tap_flash");
    let detail = page(
        &served,
        "/dashboard/credentials/echo?team=default",
        &format!("{cookie}; {flash}"),
    )
    .await;
    assert!(
        detail.contains("The value of echo was replaced."),
        "{detail}"
    );
    assert!(
        detail.contains("type=\"password\" name=\"value\""),
        "{detail}"
    );
    seen.push(detail);

    // Bind another host through the edit form.
    post_ok(
        &served,
        &format!("/dashboard/credentials/echo{q}"),
        &cookie,
        &csrf,
        &[
            ("description", "the echo service"),
            ("allowed_hosts", &format!("{}\napi.example.com", up.base())),
        ],
        "/dashboard/credentials/echo?team=default",
    )
    .await;
    let api_view = api(&served, &token, "/team/credentials/echo").await.json();
    assert_eq!(
        api_view["allowed_hosts"],
        serde_json::json!([up.base(), "api.example.com"]),
        "{api_view}"
    );

    // The check: value, host binding, policy; nothing is sent.
    let before = up.count();
    let check = page(
        &served,
        &format!(
            "/dashboard/credentials/echo/test?team=default&method=GET&target={}",
            tap_testkit::form_enc(&format!("{}/items", up.base()))
        ),
        &cookie,
    )
    .await;
    assert!(check.contains("<b>ok</b> value"), "{check}");
    assert!(check.contains("<b>ok</b> host"), "{check}");
    assert!(check.contains("would proceed without approval"), "{check}");
    let elsewhere = page(
        &served,
        "/dashboard/credentials/echo/test?team=default&method=POST&target=https%3A%2F%2Fevil.test%2F",
        &cookie,
    )
    .await;
    assert!(elsewhere.contains("<b>problem</b> host"), "{elsewhere}");
    assert!(elsewhere.contains("would wait for a human"), "{elsewhere}");
    assert_eq!(up.count(), before, "a check sends nothing");
    seen.extend([check, elsewhere]);

    // An agent: the key is shown once, and works at once with the new value.
    let r = post(
        &served,
        &format!("/dashboard/agents{q}"),
        &cookie,
        &csrf,
        &[
            ("id", "bot"),
            ("description", "a bot"),
            ("credential", "echo"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_page(&r);
    let key = key_on(&r.text());
    assert_eq!(forward_status(&served, &key, &up).await, 200);
    let sent = up.requests().pop().unwrap();
    assert!(
        sent.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == &format!("Bearer {SECOND}")),
        "{:?}",
        sent.headers
    );
    let agent = page(&served, "/dashboard/agents/bot?team=default", &cookie).await;
    assert!(!agent.contains(&key), "the key is shown once");
    seen.push(agent);

    // Roles and grants through their forms.
    post_ok(
        &served,
        &format!("/dashboard/roles{q}"),
        &cookie,
        &csrf,
        &[("name", "readers"), ("credential", "echo")],
        "/dashboard/roles?team=default",
    )
    .await;
    post_ok(
        &served,
        &format!("/dashboard/agents/bot{q}"),
        &cookie,
        &csrf,
        &[("description", "a bot"), ("role", "readers")],
        "/dashboard/agents/bot?team=default",
    )
    .await;
    let a = api(&served, &token, "/team/agents/bot").await.json();
    assert_eq!(a["roles"], serde_json::json!(["readers"]), "{a}");
    assert_eq!(a["credentials"], serde_json::json!([]), "{a}");
    assert_eq!(
        forward_status(&served, &key, &up).await,
        200,
        "via the role"
    );
    post_ok(
        &served,
        &format!("/dashboard/grants{q}"),
        &cookie,
        &csrf,
        &[
            ("credential", "echo"),
            ("methods", "POST"),
            ("route_scope", "/items"),
            ("ttl_minutes", "30"),
        ],
        "/dashboard/grants?team=default",
    )
    .await;
    let grants = api(&served, &token, "/team/grants").await.json();
    let grant = grants.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post_ok(
        &served,
        &format!("/dashboard/grants/{grant}/revoke{q}"),
        &cookie,
        &csrf,
        &[],
        "/dashboard/grants?team=default",
    )
    .await;
    let grants = api(&served, &token, "/team/grants").await.json();
    assert_eq!(grants[0]["revoked"], true, "{grants}");

    // Disable, enable, rotate.
    post_ok(
        &served,
        &format!("/dashboard/agents/bot/disable{q}"),
        &cookie,
        &csrf,
        &[],
        "/dashboard/agents/bot?team=default",
    )
    .await;
    assert_eq!(forward_status(&served, &key, &up).await, 401);
    post_ok(
        &served,
        &format!("/dashboard/agents/bot/enable{q}"),
        &cookie,
        &csrf,
        &[],
        "/dashboard/agents/bot?team=default",
    )
    .await;
    assert_eq!(forward_status(&served, &key, &up).await, 200);
    let r = post(
        &served,
        &format!("/dashboard/agents/bot/rotate{q}"),
        &cookie,
        &csrf,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new_key = key_on(&r.text());
    assert_ne!(new_key, key);
    assert_eq!(forward_status(&served, &key, &up).await, 401);
    assert_eq!(forward_status(&served, &new_key, &up).await, 200);

    // Every page listed so far, and every list: never a value.
    for path in [
        "/dashboard/credentials",
        "/dashboard/agents",
        "/dashboard/roles",
        "/dashboard/policies",
        "/dashboard/policies/echo",
        "/dashboard/grants",
        "/dashboard/members",
        "/dashboard/links",
        "/dashboard/channels",
        "/dashboard/tokens",
    ] {
        seen.push(page(&served, &format!("{path}{q}"), &cookie).await);
    }
    for html in &seen {
        assert!(!html.contains(FIRST) && !html.contains(SECOND), "{html}");
    }

    // Deleting asks first; then the agent and the credential are gone.
    let confirm = page(
        &served,
        "/dashboard/agents/bot/delete?team=default",
        &cookie,
    )
    .await;
    assert!(
        post_actions(&confirm).contains(&"/dashboard/agents/bot/delete?team=default".to_owned()),
        "{confirm}"
    );
    post_ok(
        &served,
        &format!("/dashboard/agents/bot/delete{q}"),
        &cookie,
        &csrf,
        &[("confirm", "yes")],
        "/dashboard/agents?team=default",
    )
    .await;
    assert_eq!(api(&served, &token, "/team/agents/bot").await.status, 404);
    assert_eq!(forward_status(&served, &new_key, &up).await, 401);
    // A role still names the credential: 409, shown as a page.
    let r = post(
        &served,
        &format!("/dashboard/credentials/echo/delete{q}"),
        &cookie,
        &csrf,
        &[],
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    post_ok(
        &served,
        &format!("/dashboard/roles/readers/delete{q}"),
        &cookie,
        &csrf,
        &[],
        "/dashboard/roles?team=default",
    )
    .await;
    page(
        &served,
        "/dashboard/credentials/echo/delete?team=default",
        &cookie,
    )
    .await;
    post_ok(
        &served,
        &format!("/dashboard/credentials/echo/delete{q}"),
        &cookie,
        &csrf,
        &[("confirm", "yes")],
        "/dashboard/credentials?team=default",
    )
    .await;
    assert_eq!(
        api(&served, &token, "/team/credentials/echo").await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_control_and_a_forged_post_changes_nothing() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let token = init["admin_token"].as_str().unwrap().to_owned();
    tap.add_credential("echo", FIRST, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let out = tap.run_stdin(
        &[
            "member",
            "add",
            "viewer@example.com",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    let served = tap.serve();
    let viewer = sign_in(&served, "viewer@example.com", PASSWORD).await;
    let owner = sign_in(
        &served,
        init["owner_email"].as_str().unwrap(),
        init["owner_password"].as_str().unwrap(),
    )
    .await;

    // Every page reads, and offers nothing that changes anything: the only
    // POST form is the sign-out.
    let mut csrf = String::new();
    for path in [
        "/dashboard",
        "/dashboard/credentials",
        "/dashboard/credentials/echo",
        "/dashboard/agents",
        "/dashboard/agents/bot",
        "/dashboard/roles",
        "/dashboard/policies",
        "/dashboard/policies/echo",
        "/dashboard/grants",
        "/dashboard/members",
        "/dashboard/links",
        "/dashboard/channels",
    ] {
        let html = page(&served, &format!("{path}?team=default"), &viewer).await;
        assert_eq!(post_actions(&html), vec!["/logout"], "{path}: {html}");
        assert!(html.contains("(read-only)"), "{path}");
        assert!(!html.contains("Delete"), "{path}: {html}");
        csrf = page_csrf(&html);
    }
    // Admin tokens are for admins, as on the API.
    let r = get_page(&served, "/dashboard/tokens?team=default", Some(&viewer)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // The dry run reads, so a viewer may use it.
    let dry = page(
        &served,
        &format!(
            "/dashboard/policies/echo?team=default&method=POST&target={}",
            tap_testkit::form_enc(&format!("{}/items", up.base()))
        ),
        &viewer,
    )
    .await;
    assert!(dry.contains("approval: would wait"), "{dry}");

    // Forged posts from the viewer's own session with its own valid token:
    // the operations refuse them (403, the API's `forbidden`), nothing changes.
    for (path, fields) in [
        (
            "/dashboard/credentials",
            vec![("name", "stolen"), ("allowed_hosts", "evil.test")],
        ),
        ("/dashboard/credentials/echo/value", vec![("value", SECOND)]),
        (
            "/dashboard/credentials/echo",
            vec![("allowed_hosts", "evil.test")],
        ),
        ("/dashboard/credentials/echo/delete", vec![]),
        (
            "/dashboard/agents",
            vec![("id", "mole"), ("credential", "echo")],
        ),
        ("/dashboard/agents/bot/disable", vec![]),
        ("/dashboard/agents/bot/rotate", vec![]),
        (
            "/dashboard/policies/echo",
            vec![("auto_approve_methods", "POST")],
        ),
        (
            "/dashboard/members",
            vec![("email", "friend@example.com"), ("role", "owner")],
        ),
        (
            "/dashboard/settings",
            vec![("default_approval_mode", "autonomous")],
        ),
    ] {
        let r = post(
            &served,
            &format!("{path}?team=default"),
            &viewer,
            &csrf,
            &fields,
        )
        .await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(
            r.text().contains("this needs the admin role"),
            "{path}: {}",
            r.text()
        );
        assert!(r.header("set-cookie").is_none(), "{path}: no flash");
    }
    let creds = api(&served, &token, "/team/credentials").await.json();
    assert_eq!(creds.as_array().unwrap().len(), 1, "{creds}");
    assert_eq!(creds[0]["allowed_hosts"][0], up.base(), "{creds}");
    assert_eq!(api(&served, &token, "/team/agents/mole").await.status, 404);
    assert_eq!(
        api(&served, &token, "/team/agents/bot").await.json()["enabled"],
        true
    );
    let policy = api(&served, &token, "/team/policies/echo").await.json();
    assert_eq!(policy["policy"], Value::Null, "{policy}");
    assert_eq!(
        api(&served, &token, "/team").await.json()["default_approval_mode"],
        "gated"
    );
    let members = api(&served, &token, "/team/members").await.json();
    assert_eq!(members.as_array().unwrap().len(), 2, "{members}");
    // The key and the value are untouched: the agent still sends FIRST.
    assert_eq!(forward_status(&served, &key, &up).await, 200);
    let sent = up.requests().pop().unwrap();
    assert!(
        sent.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == &format!("Bearer {FIRST}")),
        "{:?}",
        sent.headers
    );

    // The owner's forms need the owner's own token: none, a wrong one, or the
    // viewer's are refused before anything happens.
    let owner_csrf = page_csrf(&page(&served, "/dashboard?team=default", &owner).await);
    assert_ne!(owner_csrf, csrf, "tokens are bound to the session");
    for bad in ["", "0000", csrf.as_str()] {
        let body = if bad.is_empty() {
            form_body(&[("name", "sneaky"), ("allowed_hosts", "evil.test")])
        } else {
            form_body(&[
                ("csrf", bad),
                ("name", "sneaky"),
                ("allowed_hosts", "evil.test"),
            ])
        };
        let r = post_form(
            &served,
            "/dashboard/credentials?team=default",
            &owner,
            &body,
        )
        .await;
        assert_eq!(r.status, 403, "csrf {bad:?}: {}", r.text());
        assert!(r.text().contains("The form expired"), "{}", r.text());
    }
    // Another site's page posting with the owner's cookie: refused at the door.
    let r = tap_testkit::http_client()
        .post(format!("{}/dashboard/credentials?team=default", served.url))
        .header("Cookie", &owner)
        .header("Origin", "https://evil.test")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("csrf", &owner_csrf),
            ("name", "sneaky"),
            ("allowed_hosts", "evil.test"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        api(&served, &token, "/team/credentials/sneaky")
            .await
            .status,
        404
    );
    // And with its own token the owner's form works.
    post_ok(
        &served,
        "/dashboard/credentials?team=default",
        &owner,
        &owner_csrf,
        &[("name", "fine"), ("allowed_hosts", "api.example.com")],
        "/dashboard/credentials/fine?team=default",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_dry_run_live_and_stored_markup_renders_inert() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let token = init["admin_token"].as_str().unwrap().to_owned();
    let served = tap.serve();
    let cookie = sign_in(
        &served,
        init["owner_email"].as_str().unwrap(),
        init["owner_password"].as_str().unwrap(),
    )
    .await;
    let csrf = page_csrf(&page(&served, "/dashboard", &cookie).await);
    let q = "?team=default";

    // A stored-XSS attempt through the description.
    post_ok(
        &served,
        &format!("/dashboard/credentials{q}"),
        &cookie,
        &csrf,
        &[
            ("name", "echo"),
            ("description", XSS),
            ("allowed_hosts", &up.base()),
        ],
        "/dashboard/credentials/echo?team=default",
    )
    .await;
    assert_eq!(
        api(&served, &token, "/team/credentials/echo").await.json()["description"],
        XSS
    );
    for path in ["/dashboard/credentials", "/dashboard/credentials/echo"] {
        let html = page(&served, &format!("{path}{q}"), &cookie).await;
        assert!(!html.contains(XSS), "{path}: {html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: {html}"
        );
    }
    // Markup in a flash (a name typed back) is escaped too.
    let r = post(
        &served,
        &format!("/dashboard/agents{q}"),
        &cookie,
        &csrf,
        &[("id", "<b>x</b>")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.text().contains("<b>x</b>"), "{}", r.text());

    // The team default (gated) before a policy.
    let target = tap_testkit::form_enc(&format!("{}/admin/users", up.base()));
    let dry = |method: &str| {
        format!("/dashboard/policies/echo?team=default&method={method}&target={target}")
    };
    let html = page(&served, &dry("GET"), &cookie).await;
    assert!(
        html.contains("proceed: would proceed without approval (team_default_gated_read)"),
        "{html}"
    );

    // A policy through the form, then the dry run answers by its rules.
    post_ok(
        &served,
        &format!("/dashboard/policies/echo{q}"),
        &cookie,
        &csrf,
        &[
            ("auto_approve_methods", "GET"),
            ("require_approval_urls", "/admin"),
            ("min_approvals", "1"),
        ],
        "/dashboard/policies/echo?team=default",
    )
    .await;
    let p = api(&served, &token, "/team/policies/echo").await.json();
    assert_eq!(
        p["policy"]["auto_approve_methods"],
        serde_json::json!(["GET"]),
        "{p}"
    );
    assert_eq!(p["policy"]["allowed_approvers"], Value::Null, "{p}");
    let html = page(&served, &dry("GET"), &cookie).await;
    assert!(
        html.contains("(require_approval_url, rule /admin)"),
        "{html}"
    );
    let items = tap_testkit::form_enc(&format!("{}/items", up.base()));
    let html = page(
        &served,
        &format!("/dashboard/policies/echo?team=default&method=get&target={items}"),
        &cookie,
    )
    .await;
    assert!(
        html.contains("proceed: would proceed without approval (auto_approve_method"),
        "{html}"
    );
    let html = page(
        &served,
        &format!("/dashboard/policies/echo?team=default&method=POST&target={items}"),
        &cookie,
    )
    .await;
    assert!(html.contains("(require_approval_default)"), "{html}");
    let html = page(
        &served,
        "/dashboard/policies/echo?team=default&method=GET&target=not%20a%20url",
        &cookie,
    )
    .await;
    assert!(html.contains("invalid target"), "{html}");
    // The same answer as the CLI's dry run.
    let cli = tap.json(&[
        "policy",
        "test",
        "echo",
        "--method",
        "POST",
        "--target",
        &format!("{}/items", up.base()),
    ]);
    assert_eq!(cli["policy_reason"], "require_approval_default", "{cli}");
    assert_eq!(up.count(), 0, "a dry run sends nothing");

    // Clearing goes back to the team default.
    post_ok(
        &served,
        &format!("/dashboard/policies/echo/clear{q}"),
        &cookie,
        &csrf,
        &[],
        "/dashboard/policies/echo?team=default",
    )
    .await;
    assert_eq!(
        api(&served, &token, "/team/policies/echo").await.json()["policy"],
        Value::Null
    );
}
