//! The member pages through the real `tap` binary (SPEC §11 Web): sign-in
//! with its CSRF cookie, a failed sign-in shown again, the inbox listing what
//! waits for this member (and only that) with its refresh fragment, recent
//! decisions, the team switcher, sign-out, and escaping of agent-chosen text.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use tap_testkit::{
    FakeUpstream, Reply, Served, TapHome, cookie_pair, eventually, form_enc, form_field, get_page,
    post_form, set_cookies, sign_in,
};

const SECRET: &str = "web-pages-secret-value-456";
const PASSWORD: &str = "a-long-member-password-1234";

fn assert_page_headers(r: &Reply) {
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_shows_the_form_again_on_failure_and_guards_it_with_a_cookie() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    let served = tap.serve();
    let email = init["owner_email"].as_str().unwrap();
    let password = init["owner_password"].as_str().unwrap();

    // `/` sends strangers to the form.
    let root = get_page(&served, "/", None).await;
    assert!(root.status == 303 || root.status == 307, "{}", root.status);
    assert_eq!(root.header("location").as_deref(), Some("/login"));
    let form = get_page(&served, "/login", None).await;
    assert_eq!(form.status, 200);
    assert_page_headers(&form);
    let html = form.text();
    assert!(html.contains("action=\"/login\""), "{html}");
    assert!(html.contains("type=\"password\""), "{html}");
    let csrf_cookie = cookie_pair(&form, "tap_login_csrf");
    let set = set_cookies(&form).join("; ");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let csrf = form_field(&html, "/login", "csrf");

    // Without the cookie the form's token is worthless (login CSRF).
    let r = post_form(
        &served,
        "/login",
        "",
        &format!(
            "email={}&password={}&csrf={}",
            form_enc(email),
            form_enc(password),
            form_enc(&csrf)
        ),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("action=\"/login\""),
        "form again: {}",
        r.text()
    );
    assert!(
        set_cookies(&r)
            .iter()
            .all(|c| !c.starts_with("tap_session="))
    );

    // A wrong password: the form again, with a message and the e-mail kept.
    let r = post_form(
        &served,
        "/login",
        &csrf_cookie,
        &format!(
            "email={}&password=wrong&csrf={}",
            form_enc(email),
            form_enc(&csrf)
        ),
    )
    .await;
    assert_eq!(r.status, 401);
    let html = r.text();
    assert!(html.contains("Wrong e-mail or password"), "{html}");
    assert!(html.contains("action=\"/login\""), "{html}");
    assert!(html.contains(&format!("value=\"{email}\"")), "{html}");
    assert!(
        set_cookies(&r)
            .iter()
            .all(|c| !c.starts_with("tap_session="))
    );

    // A hostile `next` is ignored.
    let form = get_page(&served, "/login", None).await;
    let csrf_cookie = cookie_pair(&form, "tap_login_csrf");
    let csrf = form_field(&form.text(), "/login", "csrf");
    let r = post_form(
        &served,
        "/login",
        &csrf_cookie,
        &format!(
            "email={}&password={}&next={}&csrf={}",
            form_enc(email),
            form_enc(password),
            form_enc("//evil.test/steal"),
            form_enc(&csrf)
        ),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location").as_deref(), Some("/inbox"));
    let session = cookie_pair(&r, "tap_session");
    let set = set_cookies(&r).join("; ");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );

    // Signed in, `/` and `/login` go to the inbox.
    let root = get_page(&served, "/", Some(&session)).await;
    assert_eq!(root.header("location").as_deref(), Some("/inbox"));
    let again = get_page(&served, "/login", Some(&session)).await;
    assert_eq!(again.header("location").as_deref(), Some("/inbox"));

    // Sign-out needs the page's token; then the session is gone.
    let inbox = get_page(&served, "/inbox", Some(&session)).await;
    assert_eq!(inbox.status, 200);
    let logout_csrf = form_field(&inbox.text(), "/logout", "csrf");
    let r = post_form(&served, "/logout", &session, "csrf=forged").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        get_page(&served, "/inbox", Some(&session)).await.status,
        200
    );
    let r = post_form(
        &served,
        "/logout",
        &session,
        &format!("csrf={}", form_enc(&logout_csrf)),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/login"));
    let after = get_page(&served, "/inbox", Some(&session)).await;
    assert_eq!(after.status, 303);
    assert_eq!(
        after.header("location").as_deref(),
        Some("/login?next=/inbox")
    );
}

async fn write(served: &Served, key: &str, up: &FakeUpstream, path: &str) -> String {
    let r = served
        .forward(key)
        .credential("echo")
        .target(&format!("{}{path}", up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .body("{}")
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["txn_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_lists_what_waits_for_this_member_and_refreshes() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    tap.add_credential(
        "other",
        "other-secret-value-789",
        &["--allowed-host", &up.base()],
    );
    let key = tap.agent("bot", &["--credential", "echo"]);
    for (who, role) in [
        ("viewer@example.com", "viewer"),
        ("appr@example.com", "approver"),
    ] {
        let out = tap.run_stdin(
            &["member", "add", who, "--role", role, "--password-stdin"],
            format!("{PASSWORD}\n").as_bytes(),
        );
        assert!(out.status.success(), "{out:?}");
    }
    // The approver is assigned `other`, not `echo`.
    tap.ok(&[
        "member",
        "assign",
        "appr@example.com",
        "--credential",
        "other",
    ]);
    tap.ok(&["team", "create", "second"]);
    // The owner is a member of both teams.
    let out = tap.run_stdin(
        &[
            "member",
            "add",
            init["owner_email"].as_str().unwrap(),
            "--role",
            "admin",
            "--team",
            "second",
            "--password-stdin",
        ],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    let served = tap.serve();
    let owner = sign_in(
        &served,
        init["owner_email"].as_str().unwrap(),
        init["owner_password"].as_str().unwrap(),
    )
    .await;
    let viewer = sign_in(&served, "viewer@example.com", PASSWORD).await;
    let approver = sign_in(&served, "appr@example.com", PASSWORD).await;

    let empty = get_page(&served, "/inbox", Some(&owner)).await;
    assert_eq!(empty.status, 200);
    assert_page_headers(&empty);
    let html = empty.text();
    assert!(html.contains("Nothing is waiting"), "{html}");
    assert!(html.contains("/static/tap.js"), "{html}");
    assert!(
        html.contains("data-refresh=\"/inbox?fragment=1\""),
        "{html}"
    );
    // Two teams: a switcher.
    assert!(html.contains("href=\"/inbox?team=second\""), "{html}");

    let txn = write(&served, &key, &up, "/echo/<b>inbox</b>").await;
    // The refresh fragment picks it up without a full page.
    let got = eventually(50, Duration::from_millis(100), || async {
        let f = get_page(&served, "/inbox?fragment=1", Some(&owner)).await;
        f.text().contains(&txn).then_some(f)
    })
    .await
    .expect("the pending request appears in the fragment");
    let frag = got.text();
    assert!(!frag.contains("<html"), "a fragment, not a page: {frag}");
    assert!(frag.contains(&format!("href=\"/approve/{txn}\"")), "{frag}");
    assert!(frag.contains("POST") && frag.contains("bot") && frag.contains("echo"));
    // The target as it will be forwarded (normalised: no markup survives).
    assert!(frag.contains("/echo/%3Cb%3Einbox%3C/b%3E"), "{frag}");
    assert!(!frag.contains("<b>inbox"), "{frag}");
    assert!(!frag.contains(SECRET));

    // Only members who may decide it see it waiting.
    let f = get_page(&served, "/inbox?fragment=1", Some(&viewer)).await;
    assert!(
        !f.text().contains(&format!("data-txn=\"{txn}\"")),
        "{}",
        f.text()
    );
    let f = get_page(&served, "/inbox?fragment=1", Some(&approver)).await;
    assert!(
        !f.text().contains(&format!("data-txn=\"{txn}\"")),
        "{}",
        f.text()
    );
    // The other team's view is empty.
    let f = get_page(&served, "/inbox?fragment=1&team=second", Some(&owner)).await;
    assert!(!f.text().contains(&txn), "{}", f.text());
    // Without a session, the fragment is refused.
    assert_eq!(
        get_page(&served, "/inbox?fragment=1", None).await.status,
        401
    );

    // Decided on the approval page: it moves to the recent decisions.
    let page = get_page(&served, &format!("/approve/{txn}"), Some(&owner)).await;
    let csrf = form_field(&page.text(), &format!("/approve/{txn}/approve"), "csrf");
    let r = post_form(
        &served,
        &format!("/approve/{txn}/approve"),
        &owner,
        &format!("csrf={}", form_enc(&csrf)),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let after = eventually(50, Duration::from_millis(100), || async {
        let f = get_page(&served, "/inbox?fragment=1", Some(&owner))
            .await
            .text();
        (!f.contains(&format!("data-txn=\"{txn}\"")) && f.contains("forwarded")).then_some(f)
    })
    .await
    .expect("the decision shows in recent decisions");
    assert!(
        after.contains(&format!("href=\"/approve/{txn}\"")),
        "{after}"
    );
    assert!(after.contains("Nothing is waiting"), "{after}");

    // The static script and stylesheet are served with their types.
    let js = get_page(&served, "/static/tap.js", None).await;
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    let css = get_page(&served, "/static/tap.css", None).await;
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    let _: Option<Value> = None;
}
