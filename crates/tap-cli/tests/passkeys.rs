//! Passkey approvals end to end through the real `tap` binary (SPEC §11
//! Passkey, §14): members register WebAuthn credentials with a software
//! authenticator speaking the browser's JSON, and a `require_passkey` request
//! is approved only by a fresh assertion made for that one request, by an
//! eligible member of its own team. Deny needs no passkey.
//!
//! Every wait is bounded (`eventually`); nothing asserts on wall-clock time.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use tap_testkit::{FakeUpstream, Reply, Served, SoftPasskey, TapHome, closed_port, http_client};

const SECRET: &str = "passkey-guarded-secret-value-123";
const PASSWORD: &str = "a-long-member-password-1234";

struct Deployment {
    tap: TapHome,
    served: Served,
    init: Value,
    key: String,
    origin: String,
}

/// One credential `vault` requiring a passkey, an agent `bot` granted it, a
/// proxy with WebAuthn on `localhost` at a known port.
fn deployment(up: &FakeUpstream) -> Deployment {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    tap.add_credential("vault", SECRET, &["--allowed-host", &up.base()]);
    tap.ok(&["policy", "set", "vault", "--require-passkey"]);
    let key = tap.agent("bot", &["--credential", "vault"]);
    let port = closed_port();
    let origin = format!("http://localhost:{port}");
    let served = tap.serve_on(
        &format!("127.0.0.1:{port}"),
        &[
            ("TAP_WEBAUTHN_RP_ID", "localhost"),
            ("TAP_WEBAUTHN_ORIGIN", &origin),
        ],
    );
    Deployment {
        tap,
        served,
        init,
        key,
        origin,
    }
}

async fn post(served: &Served, path: &str, bearer: &str, body: &Value) -> Reply {
    served.post_json(path, Some(bearer), body).await
}

/// Registers a new passkey of `device` for the session; returns its id.
async fn register(served: &Served, session: &str, device: &mut SoftPasskey, name: &str) -> String {
    device.register_on(served, served, session, name).await
}

async fn begin(served: &Served, session: &str, txn: &str) -> Reply {
    post(
        served,
        &format!("/approve/{txn}/passkey/begin"),
        session,
        &json!({}),
    )
    .await
}

async fn finish(served: &Served, session: &str, txn: &str, assertion: &Value) -> Reply {
    post(
        served,
        &format!("/approve/{txn}/passkey/finish"),
        session,
        assertion,
    )
    .await
}

/// A write that needs approval; returns its txn id.
async fn pending_write(d: &Deployment, up: &FakeUpstream, path: &str) -> String {
    let r = d
        .served
        .forward(&d.key)
        .credential("vault")
        .target(&format!("{}{path}", up.base()))
        .method("POST")
        .header("Prefer", "respond-async")
        .header("Content-Type", "application/json")
        .body("{\"amount\": 10}")
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["txn_id"].as_str().unwrap().to_owned()
}

async fn status(d: &Deployment, txn: &str) -> Value {
    let r = d
        .served
        .get(&format!("/agent/approvals/{txn}"), Some(&d.key))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn seen(up: &FakeUpstream, path: &str) -> usize {
    up.requests()
        .iter()
        .filter(|r| r.uri.starts_with(path))
        .count()
}

fn owner(d: &Deployment) -> (String, String) {
    (
        d.init["owner_email"].as_str().unwrap().to_owned(),
        d.init["owner_password"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_passkey_assertion_approves_exactly_one_request() {
    let up = FakeUpstream::start().await;
    let d = deployment(&up);
    let (email, password) = owner(&d);
    let session = d.served.login(&email, &password).await;
    let mut laptop = SoftPasskey::new(&d.origin);

    // Before any passkey: the request waits, and begin says to register one.
    let txn1 = pending_write(&d, &up, "/pay/one").await;
    let r = begin(&d.served, &session, &txn1).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("/passkeys"), "{}", r.text());

    let id = register(&d.served, &session, &mut laptop, "laptop").await;
    let listed = d.served.get_bearer("/passkeys", &session).await;
    assert_eq!(listed.status, 200);
    let r = http_client()
        .get(format!("{}/passkeys", d.served.url))
        .bearer_auth(&session)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0]["last_used_at"].is_null());

    // Neither the terminal nor the plain web form can approve it.
    let out = tokio::task::block_in_place(|| d.tap.run(&["approve", &txn1, "--json"]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("passkey_required")
            || String::from_utf8_lossy(&out.stderr).contains("passkey_required"),
        "{out:?}"
    );
    let api = post(
        &d.served,
        &format!("/team/approvals/{txn1}/approve"),
        &session,
        &json!({}),
    )
    .await;
    api.assert_refused(403, "passkey_required");
    assert_eq!(status(&d, &txn1).await["status"], "pending");

    // The page offers the passkey ceremony instead of the plain form.
    let page = d
        .served
        .get_bearer(&format!("/approve/{txn1}"), &session)
        .await;
    assert!(
        page.text().contains("data-passkey-approve"),
        "{}",
        page.text()
    );
    assert!(
        !page
            .text()
            .contains(&format!("action=\"/approve/{txn1}/approve\""))
    );

    // A second request, so an assertion has somewhere to be replayed.
    let txn2 = pending_write(&d, &up, "/pay/two").await;

    let options1 = begin(&d.served, &session, &txn1).await;
    assert_eq!(options1.status, 200, "{}", options1.text());
    let assertion1 = laptop.assert(&options1.json()).unwrap();
    let ok = finish(&d.served, &session, &txn1, &assertion1).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["status"], "approved", "{}", ok.text());
    let v = d.served.approval_outcome(&d.key, &txn1).await;
    assert_eq!(v["status"], "forwarded", "{v}");
    assert_eq!(v["response"]["status"], 200, "{v}");
    assert_eq!(seen(&up, "/pay/one"), 1);

    // Replayed on the same request: the challenge was used.
    let again = finish(&d.served, &session, &txn1, &assertion1).await;
    again.assert_refused(400, "invalid_request");
    // Replayed on another request: its challenge differs.
    let options2 = begin(&d.served, &session, &txn2).await;
    assert_eq!(options2.status, 200);
    let replay = finish(&d.served, &session, &txn2, &assertion1).await;
    replay.assert_refused(403, "forbidden");
    assert_eq!(status(&d, &txn2).await["status"], "pending");

    // A stale challenge: a newer begin replaces it.
    let stale = begin(&d.served, &session, &txn2).await.json();
    let fresh = begin(&d.served, &session, &txn2).await.json();
    let stale_assertion = laptop.assert(&stale).unwrap();
    finish(&d.served, &session, &txn2, &stale_assertion)
        .await
        .assert_refused(403, "forbidden");
    // The fresh one was consumed by that failed attempt too: start again.
    let _ = fresh;
    let options = begin(&d.served, &session, &txn2).await.json();
    let good = laptop.assert(&options).unwrap();
    let ok = finish(&d.served, &session, &txn2, &good).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let outcome = d.served.approval_outcome(&d.key, &txn2).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
    assert_eq!(seen(&up, "/pay/two"), 1);

    // The vote is on record as a passkey approval, and the key was used.
    let detail = d
        .served
        .get_bearer(&format!("/team/approvals/{txn2}"), &session)
        .await;
    assert!(detail.text().contains("passkey"), "{}", detail.text());
    let r = http_client()
        .get(format!("{}/passkeys", d.served.url))
        .bearer_auth(&session)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert!(list[0]["last_used_at"].is_string(), "{list}");

    // Deny needs no passkey.
    let txn3 = pending_write(&d, &up, "/pay/three").await;
    let out = tokio::task::block_in_place(|| d.tap.run(&["deny", &txn3]));
    assert!(out.status.success(), "{out:?}");
    let outcome = d.served.approval_outcome(&d.key, &txn3).await;
    assert_eq!(outcome["status"], "denied", "{outcome}");
    assert_eq!(seen(&up, "/pay/three"), 0);

    // Removing the passkey: it no longer approves anything.
    let del = http_client()
        .delete(format!("{}/passkeys/{id}", d.served.url))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    let txn4 = pending_write(&d, &up, "/pay/four").await;
    begin(&d.served, &session, &txn4)
        .await
        .assert_refused(400, "invalid_request");
    assert!(!d.served.log().contains(SECRET), "secret in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_members_or_another_teams_passkey_approves_nothing() {
    let up = FakeUpstream::start().await;
    let d = deployment(&up);
    let (email, password) = owner(&d);
    for (who, role, team) in [
        ("admin2@example.com", "admin", None),
        ("viewer@example.com", "viewer", None),
        ("stranger@example.com", "owner", Some("other")),
    ] {
        if let Some(t) = team {
            d.tap.ok(&["team", "create", t]);
            let out = d.tap.run_stdin(
                &[
                    "member",
                    "add",
                    who,
                    "--role",
                    role,
                    "--team",
                    t,
                    "--password-stdin",
                ],
                format!("{PASSWORD}\n").as_bytes(),
            );
            assert!(out.status.success(), "{out:?}");
        } else {
            let out = d.tap.run_stdin(
                &["member", "add", who, "--role", role, "--password-stdin"],
                format!("{PASSWORD}\n").as_bytes(),
            );
            assert!(out.status.success(), "{out:?}");
        }
    }
    let owner_session = d.served.login(&email, &password).await;
    let admin = d.served.login("admin2@example.com", PASSWORD).await;
    let viewer = d.served.login("viewer@example.com", PASSWORD).await;
    let stranger = d.served.login("stranger@example.com", PASSWORD).await;
    let mut owner_key = SoftPasskey::new(&d.origin);
    let mut admin_key = SoftPasskey::new(&d.origin);
    let mut viewer_key = SoftPasskey::new(&d.origin);
    let mut stranger_key = SoftPasskey::new(&d.origin);
    register(&d.served, &owner_session, &mut owner_key, "owner").await;
    register(&d.served, &admin, &mut admin_key, "admin").await;
    register(&d.served, &viewer, &mut viewer_key, "viewer").await;
    register(&d.served, &stranger, &mut stranger_key, "stranger").await;

    let txn = pending_write(&d, &up, "/pay/x").await;

    // Another team's member: the request does not exist for them.
    begin(&d.served, &stranger, &txn)
        .await
        .assert_refused(404, "not_found");
    // A viewer may not decide.
    begin(&d.served, &viewer, &txn)
        .await
        .assert_refused(403, "forbidden");

    // The owner's assertion presented by the admin: the admin's ceremony
    // allows only the admin's credentials and has its own challenge.
    let owner_options = begin(&d.served, &owner_session, &txn).await.json();
    let owner_assertion = owner_key.assert(&owner_options).unwrap();
    let admin_options = begin(&d.served, &admin, &txn).await.json();
    assert!(
        owner_key.assert(&admin_options).is_none(),
        "the owner's device holds none of the admin's credentials"
    );
    finish(&d.served, &admin, &txn, &owner_assertion)
        .await
        .assert_refused(403, "forbidden");
    // The stranger's device answering the owner's challenge: refused too.
    let owner_options = begin(&d.served, &owner_session, &txn).await.json();
    assert!(stranger_key.assert(&owner_options).is_none());
    assert_eq!(status(&d, &txn).await["status"], "pending");
    assert_eq!(seen(&up, "/pay/x"), 0);

    // The admin's own passkey works.
    let admin_options = begin(&d.served, &admin, &txn).await.json();
    let a = admin_key.assert(&admin_options).unwrap();
    let ok = finish(&d.served, &admin, &txn, &a).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let outcome = d.served.approval_outcome(&d.key, &txn).await;
    assert_eq!(outcome["status"], "forwarded", "{outcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_webauthn_passkey_calls_answer_503() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let init = tap.init();
    tap.add_credential("vault", SECRET, &["--allowed-host", &up.base()]);
    tap.ok(&["policy", "set", "vault", "--require-passkey"]);
    let key = tap.agent("bot", &["--credential", "vault"]);
    let served = tap.serve();
    let session = served
        .login(
            init["owner_email"].as_str().unwrap(),
            init["owner_password"].as_str().unwrap(),
        )
        .await;
    post(&served, "/passkeys/register/begin", &session, &json!({}))
        .await
        .assert_refused(503, "passkey_unavailable");
    let r = served
        .forward(&key)
        .credential("vault")
        .target(&format!("{}/pay", up.base()))
        .method("POST")
        .body("{}")
        .send()
        .await;
    r.assert_refused(503, "passkey_unavailable");
    assert_eq!(up.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_signs_in_instead_of_the_password() {
    let up = FakeUpstream::start().await;
    let d = deployment(&up);
    let (email, password) = owner(&d);
    let session = d.served.login(&email, &password).await;
    let mut laptop = SoftPasskey::new(&d.origin);
    register(&d.served, &session, &mut laptop, "laptop").await;

    let anonymous = |path: &str, body: &Value| {
        let url = format!("{}{path}", d.served.url);
        let body = body.to_string();
        async move {
            let r = http_client()
                .post(url)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            Reply::read(r).await
        }
    };
    let begin = anonymous(
        "/login/passkey/begin",
        &json!({"email": email.to_uppercase()}),
    )
    .await;
    assert_eq!(begin.status, 200, "{}", begin.text());
    let options = begin.json();
    let ceremony = options["ceremony"].as_str().unwrap().to_owned();
    let assertion = laptop.assert(&options).unwrap();
    let path = format!("/login/passkey/finish?ceremony={ceremony}");
    let ok = anonymous(&path, &assertion).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let token = ok.json()["session_token"].as_str().unwrap().to_owned();
    assert!(
        ok.header_all("set-cookie")
            .iter()
            .any(|c| c.starts_with("tap_session=") && c.contains("HttpOnly"))
    );
    let team = d.served.get_bearer("/team", &token).await;
    assert_eq!(team.status, 200, "{}", team.text());
    // The ceremony is used up.
    anonymous(&path, &assertion)
        .await
        .assert_refused(401, "unauthorized");

    // An unknown e-mail gets options of the same shape, which never succeed.
    let decoy = anonymous(
        "/login/passkey/begin",
        &json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_eq!(decoy.status, 200, "{}", decoy.text());
    let dv = decoy.json();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v["publicKey"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(&dv), keys(&options), "{dv} vs {options}");
    assert_eq!(
        dv["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(laptop.assert(&dv).is_none());
    let again = anonymous("/login/passkey/begin", &json!({"email": email}))
        .await
        .json();
    let real = laptop.assert(&again).unwrap();
    anonymous(
        &format!(
            "/login/passkey/finish?ceremony={}",
            dv["ceremony"].as_str().unwrap()
        ),
        &real,
    )
    .await
    .assert_refused(401, "unauthorized");
}
