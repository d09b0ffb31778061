//! Connectors (SPEC §6.3) end to end through the real `tap` binary: a direct
//! credential holding an OAuth 1.0a key set is signed per request over what
//! the upstream receives; the test recomputes every signature with its own
//! RFC 5849 base string and its own HMAC, never the proxy's code.
//!
//! Every wait is bounded; nothing asserts on wall-clock time.
// Helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha1::Digest as _;
use tap_testkit::{
    FakeUpstream, Recorded, Reply, Served, TapHome, expected_oauth1_signature,
    oauth_param as param, oauth_params, oauth_pct as pct,
};

const CONSUMER_KEY: &str = "ck-live-9djdj82h48djs9d2";
const CONSUMER_SECRET: &str = "cs/Consumer+Secret&kd94hf93k423kf44";
const TOKEN: &str = "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb";
const TOKEN_SECRET: &str = "ts=Token Secret~pfkkdhi9sl3r4s00";

/// The key set as SPEC §6.3 spells it (HMAC-SHA1 by default).
fn key_set() -> String {
    serde_json::json!({
        "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET,
        "access_token": TOKEN,
        "access_token_secret": TOKEN_SECRET,
    })
    .to_string()
}

/// The same key set with the `token` / `token_secret` spellings and HMAC-SHA256.
fn key_set_sha256() -> String {
    serde_json::json!({
        "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET,
        "token": TOKEN,
        "token_secret": TOKEN_SECRET,
        "signature_method": "HMAC-SHA256",
    })
    .to_string()
}

/// A deployment with OAuth 1.0a credentials `x` (HMAC-SHA1) and `x256`
/// (HMAC-SHA256) bound to the fake upstream, GET and POST auto-approved, and
/// an agent `bot` granted both.
fn setup(up: &FakeUpstream) -> (TapHome, String) {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("x", &key_set(), &["--allowed-host", &up.base()]);
    tap.add_credential("x256", &key_set_sha256(), &["--allowed-host", &up.base()]);
    for c in ["x", "x256"] {
        tap.ok(&["policy", "set", c, "--auto-approve-methods", "GET,POST"]);
    }
    let key = tap.agent("bot", &["--credential", "x,x256"]);
    // `tap cred show` names the scheme, never a value.
    let shown = tap.json(&["cred", "show", "x"]);
    assert_eq!(shown["value_shape"], "oauth1", "{shown}");
    let text = shown.to_string();
    for s in [CONSUMER_KEY, CONSUMER_SECRET, TOKEN, TOKEN_SECRET] {
        assert!(!text.contains(s), "{text}");
    }
    (tap, key)
}

// ------------------- an independent RFC 5849 verifier (tap-testkit oauth1)

/// HMAC (RFC 2104) over a 64-byte-block hash.
fn hmac(hash: fn(&[u8]) -> Vec<u8>, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 {
        hash(key)
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(msg.to_vec()).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(hash(&inner)).collect();
    hash(&outer)
}

/// The signature RFC 5849 §3.4 gives the request the upstream recorded,
/// under the test's own copy of the key set.
fn expected_signature(up: &FakeUpstream, rec: &Recorded, params: &[(String, String)]) -> String {
    expected_oauth1_signature(&up.base(), rec, params, CONSUMER_SECRET, TOKEN_SECRET)
}

/// Checks the one `Authorization` header the upstream got: OAuth, the key
/// set's key and token, a numeric timestamp, and a signature that verifies.
/// Returns the nonce.
fn verify(up: &FakeUpstream, rec: &Recorded, method: &str) -> String {
    let auth = rec.header_all("authorization");
    assert_eq!(auth.len(), 1, "exactly one Authorization: {auth:?}");
    let params = oauth_params(&auth[0]);
    assert_eq!(param(&params, "oauth_consumer_key"), CONSUMER_KEY);
    assert_eq!(param(&params, "oauth_token"), TOKEN);
    assert_eq!(param(&params, "oauth_signature_method"), method);
    assert!(param(&params, "oauth_timestamp").parse::<u64>().unwrap() > 0);
    let nonce = param(&params, "oauth_nonce").to_owned();
    assert!(nonce.len() >= 16, "{nonce}");
    assert_eq!(
        param(&params, "oauth_signature"),
        expected_signature(up, rec, &params),
        "signature does not verify for {} {}",
        rec.method,
        rec.uri
    );
    nonce
}

async fn post_form(served: &Served, key: &str, cred: &str, target: &str, body: &str) -> Reply {
    served
        .forward(key)
        .credential(cred)
        .target(target)
        .method("POST")
        .header("Content-Type", "application/x-www-form-urlencoded")
        // An agent's own Authorization is replaced, never sent beside the signature.
        .header("Authorization", "Bearer agent-made-this-up")
        .body(body.to_owned())
        .send()
        .await
}

fn assert_no_secret(r: &Reply) {
    let text = r.text();
    for s in [CONSUMER_KEY, CONSUMER_SECRET, TOKEN, TOKEN_SECRET] {
        assert!(!text.contains(s), "secret in the answer: {text}");
        assert!(!text.contains(&pct(s.as_bytes())), "encoded secret: {text}");
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth1_key_sets_sign_exactly_what_the_upstream_receives() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    // Every log line the proxy can write: the key set never shows.
    let served = tap.serve_with(&[("RUST_LOG", "trace")]);

    // A form post: query and body parameters (with '+', '%2b', '!' and a
    // repeated name) are all in the base string.
    let target = format!(
        "{}/echo/statuses/update.json?include_entities=true&q=a+b%21&dup=2",
        up.base()
    );
    let body = "status=Hello%20Ladies%20%2b%20Gentlemen%2C%20a%20signed%20OAuth%20request%21&dup=1";
    let r = post_form(&served, &key, "x", &target, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-tap-error").is_none());
    // The upstream echoes the header: key and token come back redacted.
    let echoed = r.json();
    let auth = echoed["authorization"].as_str().unwrap();
    assert!(auth.starts_with("OAuth "), "{auth}");
    assert!(
        auth.contains("oauth_consumer_key=\"[REDACTED:x.consumer_key]\""),
        "{auth}"
    );
    assert!(
        auth.contains("oauth_token=\"[REDACTED:x.access_token]\""),
        "{auth}"
    );
    assert_no_secret(&r);

    // A GET with HMAC-SHA256 and the token/token_secret spellings.
    let r = served
        .forward(&key)
        .credential("x256")
        .target(&format!(
            "{}/echo/photos?file=vacation.jpg&size=original",
            up.base()
        ))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_secret(&r);

    // A JSON body is not part of the base string (RFC 5849 §3.4.1.3.1).
    let r = served
        .forward(&key)
        .credential("x")
        .target(&format!("{}/echo/json", up.base()))
        .method("POST")
        .header("Content-Type", "application/json")
        .body(r#"{"status":"a=b&c=d"}"#)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let seen = up.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].body, body.as_bytes(), "the body goes as sent");
    let n1 = verify(&up, &seen[0], "HMAC-SHA1");
    let n2 = verify(&up, &seen[1], "HMAC-SHA256");
    let n3 = verify(&up, &seen[2], "HMAC-SHA1");
    assert!(n1 != n2 && n2 != n3 && n1 != n3, "nonces repeat");
    let log = served.log();
    assert!(log.contains("TRACE"), "the check ran on a trace-level log");
    for s in [CONSUMER_KEY, CONSUMER_SECRET, TOKEN, TOKEN_SECRET] {
        assert!(!log.contains(s), "secret in the proxy log");
        assert!(
            !log.contains(&pct(s.as_bytes())),
            "encoded secret in the proxy log"
        );
    }
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_echoing_the_key_set_are_scrubbed() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    // The API knows the shared secrets; a careless one echoes them.
    let leaked = serde_json::json!({
        "consumer_secret": CONSUMER_SECRET,
        "token_secret": TOKEN_SECRET,
        "b64": STANDARD.encode(CONSUMER_SECRET),
        "pct": pct(TOKEN_SECRET.as_bytes()),
        "key": CONSUMER_KEY,
        "token": TOKEN,
    });
    up.answer("/account", leaked.to_string());
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("x")
        .target(&format!("{}/account", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = r.json();
    assert_eq!(v["consumer_secret"], "[REDACTED:x.consumer_secret]", "{v}");
    assert_eq!(v["token_secret"], "[REDACTED:x.access_token_secret]", "{v}");
    assert_eq!(v["b64"], "[REDACTED:x.consumer_secret]", "{v}");
    assert_eq!(v["pct"], "[REDACTED:x.access_token_secret]", "{v}");
    assert_eq!(v["key"], "[REDACTED:x.consumer_key]", "{v}");
    assert_eq!(v["token"], "[REDACTED:x.access_token]", "{v}");
    assert_no_secret(&r);
    verify(&up, &up.requests()[0], "HMAC-SHA1");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_signed_or_sent_when_the_request_is_refused() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    tap.add_credential(
        "rsa",
        &serde_json::json!({
            "consumer_key": CONSUMER_KEY,
            "consumer_secret": CONSUMER_SECRET,
            "access_token": TOKEN,
            "access_token_secret": TOKEN_SECRET,
            "signature_method": "RSA-SHA1",
        })
        .to_string(),
        &["--allowed-host", &up.base()],
    );
    tap.ok(&["agent", "grant", "bot", "rsa"]);
    let served = tap.serve();

    // Outside the host binding.
    let r = served
        .forward(&key)
        .credential("x")
        .target("http://127.0.0.2:9/echo")
        .send()
        .await;
    r.assert_refused(403, "host_not_allowed");
    // A signature method the signer does not support: named, never signed.
    let r = served
        .forward(&key)
        .credential("rsa")
        .target(&format!("{}/echo", up.base()))
        .send()
        .await;
    let body = r.assert_refused(400, "credential_field_missing");
    assert_eq!(body["field"], "signature_method", "{body}");
    assert_no_secret(&r);

    // The policy asks for approval (DELETE is not auto-approved); a denial forwards nothing.
    let r = served
        .forward(&key)
        .credential("x")
        .target(&format!("{}/echo/1", up.base()))
        .method("DELETE")
        .header("Prefer", "respond-async")
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    let out = tokio::task::block_in_place(|| tap.run(&["deny", &txn, "--json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let poll = served
        .get(&format!("/agent/approvals/{txn}"), Some(&key))
        .await;
    assert_eq!(poll.json()["status"], "denied", "{}", poll.text());
    assert_eq!(up.count(), 0, "nothing reached the upstream");

    // Approved, the same request is signed when it is finally sent.
    let r = served
        .forward(&key)
        .credential("x")
        .target(&format!("{}/echo/2?hard=true", up.base()))
        .method("DELETE")
        .header("Prefer", "respond-async")
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    let out = tokio::task::block_in_place(|| tap.run(&["approve", &txn, "--json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let forwarded = tap_testkit::eventually(150, std::time::Duration::from_millis(100), || async {
        (up.count() == 1).then_some(())
    })
    .await;
    assert!(forwarded.is_some(), "the approved request was never sent");
    verify(&up, &up.requests()[0], "HMAC-SHA1");
    assert_eq!(served.terminate(), Some(0));
}

// ------------------------------------------------------------ AWS SigV4

const AWS_KEY_ID: &str = "AKIDTAPTEST0000EXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYTAPTESTKEY";
const AWS_TOKEN: &str = "FwoGZXIvYXdzEPT//////////wEaDTAPsessionTOKEN+example/value==";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(b).to_vec()
}

/// The SigV4 signature of the recorded request, computed from the SigV4
/// specification by the test: canonical request, string to sign, derived key.
fn expected_sigv4(rec: &Recorded, signed_headers: &str, amz_date: &str) -> String {
    let (path, query) = rec.uri.split_once('?').unwrap_or((&rec.uri, ""));
    // The test's query needs no re-encoding: sorting is all SigV4 asks here.
    let mut q: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    q.sort();
    let canonical_headers: String = signed_headers
        .split(';')
        .map(|h| format!("{h}:{}\n", rec.header(h).unwrap().trim()))
        .collect();
    let creq = format!(
        "{}\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        rec.method,
        q.join("&"),
        hex(&sha256(&rec.body))
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/eu-central-1/sqs/aws4_request");
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&sha256(creq.as_bytes()))
    );
    let mut key = format!("AWS4{AWS_SECRET}").into_bytes();
    for part in [date, "eu-central-1", "sqs", "aws4_request"] {
        key = hmac(sha256, &key, part.as_bytes());
    }
    hex(&hmac(sha256, &key, sts.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_keys_are_signed_with_sigv4_over_the_exact_body() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let value = serde_json::json!({
        "access_key_id": AWS_KEY_ID,
        "secret_access_key": AWS_SECRET,
        "session_token": AWS_TOKEN,
        "region": "eu-central-1",
        "service": "sqs",
    });
    tap.add_credential("aws", &value.to_string(), &["--allowed-host", &up.base()]);
    tap.ok(&["policy", "set", "aws", "--auto-approve-methods", "GET,POST"]);
    let key = tap.agent("bot", &["--credential", "aws"]);
    assert_eq!(
        tap.json(&["cred", "show", "aws"])["value_shape"],
        "aws_sigv4"
    );
    up.answer(
        "/leak",
        serde_json::json!({"secret": AWS_SECRET, "token": AWS_TOKEN, "id": AWS_KEY_ID}).to_string(),
    );
    let served = tap.serve_with(&[("RUST_LOG", "trace")]);
    let body = "Action=SendMessage&MessageBody=hello%20world&Version=2012-11-05";
    let r = served
        .forward(&key)
        .credential("aws")
        .target(&format!(
            "{}/echo/123456789012/queue?Version=2012-11-05&Action=SendMessage",
            up.base()
        ))
        .method("POST")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Amz-Target", "AmazonSQS.SendMessage")
        // Replaced by the signer's own, never signed as the agent sent it.
        .header("X-Amz-Date", "20000101T000000Z")
        .body(body)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    for s in [AWS_KEY_ID, AWS_SECRET, AWS_TOKEN] {
        assert!(!text.contains(s), "secret in the answer: {text}");
    }
    let r = served
        .forward(&key)
        .credential("aws")
        .target(&format!("{}/leak", up.base()))
        .send()
        .await;
    let v = r.json();
    assert_eq!(v["secret"], "[REDACTED:aws.secret_access_key]", "{v}");
    assert_eq!(v["token"], "[REDACTED:aws.session_token]", "{v}");
    assert_eq!(v["id"], "[REDACTED:aws.access_key_id]", "{v}");

    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    for rec in &seen {
        let auth = rec.header_all("authorization");
        assert_eq!(auth.len(), 1, "{auth:?}");
        let auth = &auth[0];
        let rest = auth.strip_prefix("AWS4-HMAC-SHA256 Credential=").unwrap();
        let (cred, rest) = rest.split_once(", SignedHeaders=").unwrap();
        let (signed_headers, sig) = rest.split_once(", Signature=").unwrap();
        let amz_date = rec.header("x-amz-date").unwrap();
        assert_ne!(amz_date, "20000101T000000Z");
        assert_eq!(rec.header_all("x-amz-date").len(), 1);
        assert_eq!(
            cred,
            format!(
                "{AWS_KEY_ID}/{}/eu-central-1/sqs/aws4_request",
                &amz_date[..8]
            )
        );
        assert_eq!(
            rec.header("x-amz-security-token").as_deref(),
            Some(AWS_TOKEN)
        );
        for h in ["host", "x-amz-date", "x-amz-security-token"] {
            assert!(
                signed_headers.split(';').any(|s| s == h),
                "{signed_headers}"
            );
        }
        assert_eq!(
            sig,
            expected_sigv4(rec, signed_headers, &amz_date),
            "{auth}"
        );
    }
    // The form post: body as sent, its content type and the agent's x-amz-* header signed.
    assert_eq!(seen[0].body, body.as_bytes());
    let auth = seen[0].header("authorization").unwrap();
    assert!(
        auth.contains(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        ),
        "{auth}"
    );
    let log = served.log();
    assert!(log.contains("TRACE"), "the check ran on a trace-level log");
    for s in [AWS_KEY_ID, AWS_SECRET, AWS_TOKEN] {
        assert!(!log.contains(s), "secret in the proxy log");
    }
    assert_eq!(served.terminate(), Some(0));
}

// ------------------------------------------------------ X/Twitter hybrid

const BEARER: &str = "AAAAAAAAAAAAAAAAAAAAAHybrid%2FBearer%3DTokenForXAppOnly";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_key_sets_follow_x_tap_auth_mode() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let mut hybrid: Value = serde_json::from_str(&key_set()).unwrap();
    hybrid["bearer_token"] = BEARER.into();
    tap.add_credential("xh", &hybrid.to_string(), &["--allowed-host", &up.base()]);
    tap.ok(&["policy", "set", "xh", "--auto-approve-methods", "GET"]);
    tap.ok(&["agent", "grant", "bot", "xh"]);
    let served = tap.serve();
    let get = |cred: &str, mode: Option<&str>, path: &str| {
        let mut f = served
            .forward(&key)
            .credential(cred)
            .target(&format!("{}{path}", up.base()));
        if let Some(m) = mode {
            f = f.header("X-TAP-Auth-Mode", m);
        }
        f.send()
    };

    // bearer: the app-only token, nothing signed; echoed, it is redacted.
    let r = get("xh", Some("Bearer"), "/echo/app").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["authorization"],
        "Bearer [REDACTED:xh.bearer_token]"
    );
    assert!(!r.text().contains(BEARER));
    // oauth1, and auto (the default): signed with the key set.
    let r = get("xh", Some("oauth1"), "/echo/user").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get("xh", None, "/echo/auto").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // bearer on a key set without a bearer_token: named, nothing sent.
    let r = get("x", Some("bearer"), "/echo/none").await;
    let body = r.assert_refused(400, "credential_field_missing");
    assert_eq!(body["field"], "bearer_token", "{body}");

    let seen = up.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen[0].header_all("authorization"),
        vec![format!("Bearer {BEARER}")]
    );
    verify(&up, &seen[1], "HMAC-SHA1");
    verify(&up, &seen[2], "HMAC-SHA1");

    // The mode is kept for a request that waits for approval.
    let r = served
        .forward(&key)
        .credential("xh")
        .target(&format!("{}/echo/later", up.base()))
        .method("DELETE")
        .header("X-TAP-Auth-Mode", "bearer")
        .header("Prefer", "respond-async")
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
    let out = tokio::task::block_in_place(|| tap.run(&["approve", &txn, "--json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = tap_testkit::eventually(150, std::time::Duration::from_millis(100), || async {
        up.requests().into_iter().nth(3)
    })
    .await
    .expect("the approved request was never sent");
    assert_eq!(sent.method, "DELETE");
    assert_eq!(
        sent.header_all("authorization"),
        vec![format!("Bearer {BEARER}")]
    );
    assert_eq!(served.terminate(), Some(0));
}
