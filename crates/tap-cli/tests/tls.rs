//! HTTPS upstreams: TAP verifies the upstream's certificate against the
//! system's trust store (`SSL_CERT_FILE` here points it at the test CA),
//! injects over TLS and scrubs the answer; an upstream it cannot verify gets
//! nothing, not even the request line.

use tap_testkit::{FakeUpstream, OTHER_CA_PEM, TEST_CA_PEM, TapHome};

const SECRET: &str = "tls-upstream-secret-value-0123";

fn setup(up: &FakeUpstream, trust_test_ca: bool) -> (TapHome, String) {
    let mut tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let ca = tap.root().join("ca.pem");
    // Trust either the CA that signed the upstream's certificate or an unrelated one.
    let pem = if trust_test_ca {
        TEST_CA_PEM
    } else {
        OTHER_CA_PEM
    };
    std::fs::write(&ca, pem).expect("write the CA file");
    tap = tap.env("SSL_CERT_FILE", ca.to_str().expect("UTF-8 temp path"));
    tap.init();
    tap.add_credential("svc", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "svc"]);
    (tap, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_https_upstream_gets_the_secret_and_the_answer_is_scrubbed() {
    let up = FakeUpstream::start_tls().await;
    assert!(up.base().starts_with("https://127.0.0.1:"), "{}", up.base());
    let (tap, key) = setup(&up, true);
    let served = tap.serve();
    for _ in 0..3 {
        // Three calls: the pooled TLS connection is reused.
        let r = served
            .forward(&key)
            .credential("svc")
            .target(&format!("{}/echo/tls", up.base()))
            .send()
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["authorization"], "Bearer [REDACTED:svc]");
        assert!(!r.text().contains(SECRET));
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 3);
    // Offered both by ALPN, TAP speaks HTTP/2 to the upstream (whose request
    // URI then carries scheme and authority).
    assert_eq!(seen[0].version, "HTTP/2.0");
    assert_eq!(seen[0].uri, format!("{}/echo/tls", up.base()));
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {SECRET}"))
    );
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_whose_certificate_does_not_verify_gets_nothing() {
    let up = FakeUpstream::start_tls().await;
    let (tap, key) = setup(&up, false);
    let served = tap.serve();
    let target = format!("{}/echo/untrusted", up.base());
    let r = served
        .forward(&key)
        .credential("svc")
        .target(&target)
        .send()
        .await;
    let body = r.assert_refused(502, "upstream_error");
    assert_eq!(body["target"], target, "{body}");
    assert!(!r.text().contains(SECRET));
    assert_eq!(up.count(), 0, "a request reached an unverified upstream");
    assert_eq!(served.terminate(), Some(0));
}
