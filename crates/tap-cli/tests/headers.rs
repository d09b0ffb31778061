//! Header hygiene and credential injection: what reaches the upstream, and what never does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tap_testkit::{FakeUpstream, TapHome};

const SECRET: &str = "s3cr3t-value-for-header-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_headers_are_filtered_and_authorization_injected_once() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();

    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo/path?q=1", up.base()))
        .method("get")
        .header("X-TAP-Team", "default")
        .header("X-TAP-Auth-Mode", "auto")
        .header("Authorization", "Bearer agent-own-token")
        .header("Authorization", "Basic YWdlbnQ6b3du")
        .header("X-OAuth-Foo", "sidecar-control")
        .header("X-OAuth-Credential-Data", "forged")
        .header("X-HTTP-Method-Override", "DELETE")
        .header("X-HTTP-Method", "DELETE")
        .header("X-Method-Override", "DELETE")
        .header("Connection", "x-hop-custom, keep-alive")
        .header("X-Hop-Custom", "must-not-pass")
        .header("Proxy-Authorization", "Basic cHJveHk6cHc=")
        .header("Host", "evil.test")
        .header("Forwarded", "for=1.2.3.4")
        .header("X-Forwarded-For", "1.2.3.4")
        .header("Prefer", "respond-async")
        .header("X-Original-URL", "/admin")
        .header("X-Rewrite-URL", "/admin")
        .header("Accept-Encoding", "gzip, br")
        .header("X-Custom-Thing", "hello from the agent")
        .header("Content-Type", "text/plain")
        .body("agent body, verbatim")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-tap-error").is_none());
    r.request_id();

    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    let got = &seen[0];
    assert_eq!(got.method, "GET", "upper-cased, override ignored");
    assert_eq!(got.uri, "/echo/path?q=1");
    assert_eq!(
        got.header_all("authorization"),
        vec![format!("Bearer {SECRET}")],
        "exactly one Authorization, the injected one"
    );
    for absent in [
        "x-oauth-foo",
        "x-oauth-credential-data",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-hop-custom",
        "proxy-authorization",
        "forwarded",
        "x-forwarded-for",
        // Addressed to the proxy (RFC 7240); some upstreams act on it.
        "prefer",
        // Routing overrides some upstream frameworks obey.
        "x-original-url",
        "x-rewrite-url",
    ] {
        assert!(
            got.header(absent).is_none(),
            "{absent} reached the upstream: {:?}",
            got.headers
        );
    }
    assert!(
        got.headers.iter().all(|(n, _)| !n.starts_with("x-tap-")),
        "X-TAP-* reached the upstream: {:?}",
        got.headers
    );
    assert!(
        got.header_all("connection")
            .iter()
            .all(|v| !v.contains("x-hop-custom")),
        "{:?}",
        got.headers
    );
    assert_eq!(
        got.header_all("host"),
        vec![up.addr.to_string()],
        "Host is the target's"
    );
    assert_eq!(got.header_all("accept-encoding"), vec!["identity"]);
    assert_eq!(
        got.header_all("x-custom-thing"),
        vec!["hello from the agent"]
    );
    assert_eq!(got.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(got.body, b"agent body, verbatim");
    // The key never leaves the proxy.
    assert!(
        got.headers.iter().all(|(_, v)| !v.contains(&key)),
        "agent key forwarded"
    );
    assert_eq!(served.terminate(), Some(0));

    // Control: the same client does put these headers on the wire, so their
    // absence above is the proxy's doing.
    tap_testkit::http_client()
        .get(format!("{}/direct", up.base()))
        .header("Connection", "x-hop-custom, keep-alive")
        .header("X-Hop-Custom", "must-not-pass")
        .header("Host", "evil.test")
        .header("X-OAuth-Foo", "sidecar-control")
        .send()
        .await
        .unwrap();
    let direct = up.requests().pop().unwrap();
    assert_eq!(direct.uri, "/direct");
    assert_eq!(
        direct.header("x-hop-custom").as_deref(),
        Some("must-not-pass")
    );
    assert_eq!(direct.header("host").as_deref(), Some("evil.test"));
    assert_eq!(
        direct.header("x-oauth-foo").as_deref(),
        Some("sidecar-control")
    );
    assert!(
        direct
            .header("connection")
            .is_some_and(|c| c.contains("x-hop-custom"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_inject_json_fields() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential(
        "apikey",
        r#"{"key":"k-json-field-secret-9"}"#,
        &[
            "--allowed-host",
            &up.base(),
            "--bind",
            "X-Api-Key={value.key}",
        ],
    );
    tap.add_credential(
        "basic",
        r#"{"user":"alice","pass":"p4ss-w0rd-xyz-77"}"#,
        &[
            "--allowed-host",
            &up.base(),
            "--auth-header-format",
            "Basic {base64(value.user:value.pass)}",
        ],
    );
    let key = tap.agent("bot", &["--credential", "apikey,basic"]);
    let served = tap.serve();

    // Header binding: the agent's own X-Api-Key is replaced, never duplicated.
    let r = served
        .forward(&key)
        .credential("apikey")
        .target(&format!("{}/echo", up.base()))
        .header("X-Api-Key", "agent-supplied")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    assert!(!body.contains("k-json-field-secret-9"), "{body}");
    assert!(body.contains("[REDACTED:apikey.key]"), "{body}");
    let got = &up.requests()[0];
    assert_eq!(got.header_all("x-api-key"), vec!["k-json-field-secret-9"]);
    assert!(got.header("authorization").is_none(), "{:?}", got.headers);

    // Basic composite.
    let r = served
        .forward(&key)
        .credential("basic")
        .target(&format!("{}/echo", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let expected = format!("Basic {}", STANDARD.encode("alice:p4ss-w0rd-xyz-77"));
    let got = &up.requests()[1];
    assert_eq!(got.header_all("authorization"), vec![expected.clone()]);
    let body = r.text();
    assert!(!body.contains(&expected), "composite echoed whole: {body}");
    assert!(!body.contains("p4ss-w0rd-xyz-77"), "{body}");
    assert!(body.contains("[REDACTED:basic."), "{body}");
    let echoed = r.header("x-echo").unwrap_or_default();
    assert!(!echoed.contains(&expected[6..]), "x-echo: {echoed}");
}
