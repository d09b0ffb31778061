#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use hyper_util::rt::TokioIo;

use super::*;

const SECRET: &str = "the-shared-signer-secret-0123";

type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// A loopback upstream recording method and headers of what it receives.
async fn recording_upstream() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let s2 = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = Arc::clone(&s2);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_owned()))
                            .collect();
                        seen.lock()
                            .unwrap()
                            .push((req.method().to_string(), headers));
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn start_signer(upstream: SocketAddr) -> SocketAddr {
    let vars = [
        ("TAP_SIGNER_SECRET", SECRET.to_owned()),
        ("TAP_SIGNER_ALLOWED_HOSTS", format!("http://{upstream}")),
        ("TAP_SIGNER_TIMEOUT_SECS", "5".to_owned()),
    ];
    let config = SignerConfig::from_vars(vars.into_iter().map(|(k, v)| (k.to_owned(), v))).unwrap();
    let client = Upstream::new(config.outbound.clone(), config.timeout).unwrap();
    let service = Arc::new(Service::new(config, client));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run(listener, service));
    addr
}

fn key_set() -> String {
    serde_json::json!({
        "consumer_key": "ck-unit",
        "consumer_secret": "cs-unit",
        "access_token": "at-unit",
        "access_token_secret": "ats-unit",
    })
    .to_string()
}

/// Sends one request to the signer; returns status and body.
async fn call(signer: SocketAddr, headers: &[(&str, &str)]) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(signer).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method("POST")
        .uri("/")
        .header("host", signer.to_string());
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let req = b.body(Full::new(Bytes::from_static(b"a=1"))).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn the_secret_is_compared_whole() {
    let s = Secret::new(SECRET.as_bytes().to_vec());
    assert!(secret_matches(&s, Some(&HeaderValue::from_static(SECRET))));
    let same_length = "the-shared-signer-secret-0124";
    assert!(!secret_matches(
        &s,
        Some(&HeaderValue::from_static(same_length))
    ));
    assert!(!secret_matches(
        &s,
        Some(&HeaderValue::from_static("the-shared"))
    ));
    assert!(!secret_matches(&s, Some(&HeaderValue::from_static(""))));
    assert!(!secret_matches(&s, None));
}

#[test]
fn refuses_to_start_without_a_secret_or_allowed_hosts() {
    let only = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
    assert!(matches!(
        SignerConfig::from_vars(only("TAP_SIGNER_ALLOWED_HOSTS", "api.x.com")),
        Err(ConfigError::NoSecret)
    ));
    assert!(matches!(
        SignerConfig::from_vars(only("TAP_SIGNER_SECRET", "s")),
        Err(ConfigError::NoHosts)
    ));
    let mut bad_cred = only("TAP_SIGNER_SECRET", "s");
    bad_cred.push(("TAP_SIGNER_ALLOWED_HOSTS".into(), "api.x.com".into()));
    let var = format!("{CREDENTIAL_ENV_PREFIX}X");
    bad_cred.push((var.clone(), "{\"a\":\"leaked-value\"}".into()));
    let e = SignerConfig::from_vars(bad_cred).unwrap_err().to_string();
    assert!(e.contains(&var) && !e.contains("leaked-value"), "{e}");
}

#[tokio::test]
async fn a_missing_or_wrong_secret_is_refused_and_nothing_is_sent() {
    let (up, seen) = recording_upstream().await;
    let signer = start_signer(up).await;
    let target = format!("http://{up}/x");
    let data = key_set();
    for secret in [None, Some("wrong"), Some("the-shared-signer-secret-0124")] {
        let mut h = vec![
            ("x-oauth-credential", "x"),
            ("x-oauth-target", target.as_str()),
            ("x-oauth-credential-data", data.as_str()),
        ];
        if let Some(s) = secret {
            h.push(("x-oauth-signer-secret", s));
        }
        let (status, body) = call(signer, &h).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("\"error_code\":\"unauthorized\""), "{body}");
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn control_headers_are_never_forwarded_and_the_request_is_signed() {
    let (up, seen) = recording_upstream().await;
    let signer = start_signer(up).await;
    let target = format!("http://{up}/1.1/statuses/update.json?x=1");
    let data = key_set();
    let (status, body) = call(
        signer,
        &[
            ("x-oauth-signer-secret", SECRET),
            ("x-oauth-credential", "x"),
            ("x-oauth-target", &target),
            ("x-oauth-credential-data", &data),
            ("x-oauth-other", "control"),
            ("x-tap-method", "put"),
            ("authorization", "Bearer replaced"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (method, headers) = &seen[0];
    assert_eq!(method, "PUT", "X-TAP-Method is the upstream method");
    for (n, v) in headers {
        assert!(
            !n.starts_with("x-oauth-") && !n.starts_with("x-tap-"),
            "{n}"
        );
        assert!(!v.contains(SECRET) && !v.contains("cs-unit"), "{n}: {v}");
    }
    let auth: Vec<_> = headers
        .iter()
        .filter(|(n, _)| n == "authorization")
        .collect();
    assert_eq!(auth.len(), 1, "{headers:?}");
    assert!(auth[0].1.starts_with("OAuth "), "{}", auth[0].1);
    assert!(auth[0].1.contains("oauth_consumer_key=\"ck-unit\""));
}

#[tokio::test]
async fn targets_outside_the_allowed_hosts_or_private_are_refused() {
    let (up, seen) = recording_upstream().await;
    let signer = start_signer(up).await;
    let data = key_set();
    for (target, code) in [
        ("https://evil.example/x", "host_not_allowed"),
        ("http://169.254.169.254/latest", "host_not_allowed"),
    ] {
        let (status, body) = call(
            signer,
            &[
                ("x-oauth-signer-secret", SECRET),
                ("x-oauth-credential", "x"),
                ("x-oauth-target", target),
                ("x-oauth-credential-data", &data),
            ],
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains(code), "{body}");
    }
    // A name the signer holds no key set for, and no data.
    let (status, body) = call(
        signer,
        &[
            ("x-oauth-signer-secret", SECRET),
            ("x-oauth-credential", "unknown"),
            ("x-oauth-target", &format!("http://{up}/x")),
        ],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(seen.lock().unwrap().is_empty());
}
