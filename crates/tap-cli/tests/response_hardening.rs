//! The answer path against a hostile or odd upstream, and refusals that carry
//! a secret: transfer codings that hide compressed bytes (decoded and scrubbed,
//! or withheld), secrets as header names, upstream `X-TAP-*` headers, secrets
//! split across chunk boundaries, routing overrides from the agent, and leak
//! attempts naming an unknown credential (nothing stored in clear).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tap_testkit::{
    FakeUpstream, LAST_CHUNK, RawAnswer, RawRequest, RawUpstream, TapHome, chunk, eventually, gzip,
};

/// Mixed case, valid as a header name (a token), long enough for leak blocking.
const SECRET: &str = "Sk-Live-9fQ2xZ7pL4mW8rT3vB6n";
const MARK: &str = "[REDACTED:svc]";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The forms of the secret that must never reach the agent or the store.
fn forms(secret: &str) -> Vec<String> {
    vec![
        secret.to_owned(),
        secret.to_ascii_lowercase(),
        STANDARD.encode(secret),
    ]
}

fn setup(base: &str) -> (TapHome, String) {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("svc", SECRET, &["--allowed-host", base]);
    let key = tap.agent("bot", &["--credential", "svc"]);
    (tap, key)
}

/// Waits (bounded) for the finish row of `request_id` and returns it.
async fn audit_row(tap: &TapHome, request_id: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(100, Duration::from_millis(100), || async {
        tap.logs(&["--limit", "100"])
            .into_iter()
            .find(|r| r["request_id"] == request_id && done(r))
    })
    .await
    .unwrap_or_else(|| panic!("no audit row for {request_id}: {:#?}", tap.logs(&[])))
}

/// A response head with `headers` (CRLF-joined lines), closing the connection.
fn head(status: &str, headers: &[&str]) -> Vec<u8> {
    let mut h = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for line in headers {
        h.push_str(line);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// `data` as chunks of `size` bytes, each one a separate write.
fn chunked_parts(data: &[u8], size: usize) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = data.chunks(size).map(chunk).collect();
    parts.push(LAST_CHUNK.to_vec());
    parts
}

/// The JSON body the upstreams below "reflect": the injected secret.
fn reflected(token: &str) -> String {
    serde_json::json!({"authorization": format!("Bearer {token}"), "padding": "x".repeat(3000)})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_transfer_coding_is_decoded_scrubbed_and_returned_plain() {
    let plain = reflected(SECRET);
    let packed = gzip(plain.as_bytes()).await;
    let up = RawUpstream::start(move |req: &RawRequest| -> RawAnswer {
        // Reflects only what the proxy injected: a wrong token gets a plain 401.
        if req.token() != SECRET {
            return vec![head("401 Unauthorized", &["Content-Length: 0"])];
        }
        let te = if req.target.starts_with("/close") {
            "Transfer-Encoding: gzip"
        } else {
            "Transfer-Encoding: gzip, chunked"
        };
        let mut parts = vec![head("200 OK", &["Content-Type: application/json", te])];
        if req.target.starts_with("/close") {
            // Delimited by the connection's close, in small writes.
            parts.extend(packed.chunks(7).map(<[u8]>::to_vec));
        } else {
            parts.extend(chunked_parts(&packed, 7));
        }
        parts
    })
    .await;
    let (tap, key) = setup(&up.base());
    let served = tap.serve();
    for path in ["/chunked", "/close"] {
        let r = served
            .forward(&key)
            .credential("svc")
            .target(&format!("{}{path}", up.base()))
            .send()
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.header("x-tap-error").is_none(), "{path}");
        assert!(r.header("content-encoding").is_none(), "{path}");
        assert!(
            r.header_all("transfer-encoding")
                .iter()
                .all(|v| !v.contains("gzip")),
            "{path}: {:?}",
            r.headers
        );
        let body = r.json();
        assert_eq!(body["authorization"], format!("Bearer {MARK}"), "{path}");
        assert_eq!(body["padding"], "x".repeat(3000), "{path}: decoded whole");
        for f in forms(SECRET) {
            assert!(!contains(&r.body, f.as_bytes()), "{path}: {f} leaked");
        }
        let row = audit_row(&tap, &r.request_id(), |r| !r["upstream_status"].is_null()).await;
        assert_eq!(row["upstream_status"], 200, "{row}");
        assert_eq!(row["response_scrubbed"], true, "{row}");
        assert!(row["error_code"].is_null(), "{row}");
    }
    assert_eq!(up.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_codings_are_withheld_with_502_unscannable_response() {
    let packed = gzip(reflected(SECRET).as_bytes()).await;
    // `?te=<Transfer-Encoding>&ce=<Content-Encoding>`, `+` for a space; the body holds the
    // secret in clear, so passing it through would leak it.
    let up = RawUpstream::start(move |req: &RawRequest| -> RawAnswer {
        let query = req.target.split_once('?').map_or("", |(_, q)| q);
        let param = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .map(|v| v.replace('+', " "))
        };
        let mut lines = vec!["Content-Type: application/json".to_owned()];
        if let Some(te) = param("te") {
            lines.push(format!("Transfer-Encoding: {te}"));
        }
        if let Some(ce) = param("ce") {
            lines.push(format!("Content-Encoding: {ce}"));
        }
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let body = if param("ce").as_deref() == Some("gzip") {
            packed.clone()
        } else {
            reflected(&req.token()).into_bytes()
        };
        let mut parts = vec![head("200 OK", &lines)];
        if param("te").is_some_and(|t| t.trim_end().ends_with("chunked")) {
            parts.extend(chunked_parts(&body, 64));
        } else {
            parts.push(body);
        }
        parts
    })
    .await;
    let (tap, key) = setup(&up.base());
    let served = tap.serve();
    let cases: &[(&str, &str, &str)] = &[
        // (query, field, value shown)
        (
            "te=x-custom,+chunked",
            "transfer_encoding",
            "x-custom, chunked",
        ),
        (
            "te=compress,+chunked",
            "transfer_encoding",
            "compress, chunked",
        ),
        ("te=br,+chunked", "transfer_encoding", "br, chunked"),
        ("te=x-custom", "transfer_encoding", "x-custom"),
        ("te=chunked,+gzip", "transfer_encoding", "chunked, gzip"),
        (
            "te=gzip,+gzip,+chunked",
            "transfer_encoding",
            "gzip, gzip, chunked",
        ),
        // A transfer coding on top of a content coding.
        (
            "te=gzip,+chunked&ce=gzip",
            "transfer_encoding",
            "gzip, chunked",
        ),
        ("ce=x-custom", "content_encoding", "x-custom"),
        ("ce=compress", "content_encoding", "compress"),
    ];
    for (query, field, value) in cases {
        let r = served
            .forward(&key)
            .credential("svc")
            .target(&format!("{}/coded?{query}", up.base()))
            .send()
            .await;
        let body = r.assert_refused(502, "unscannable_response");
        assert_eq!(body[*field], *value, "{query}: {body}");
        for f in forms(SECRET) {
            assert!(!contains(&r.body, f.as_bytes()), "{query}: {f} leaked");
        }
        assert!(r.header("content-encoding").is_none(), "{query}");
        let row = audit_row(&tap, &r.request_id(), |r| !r["error_code"].is_null()).await;
        assert_eq!(row["error_code"], "unscannable_response", "{query}: {row}");
        assert_eq!(row["upstream_status"], 200, "{query}: {row}");
    }
    assert_eq!(up.requests().len(), cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_header_names_and_upstream_tap_headers_never_reach_the_agent() {
    let up = RawUpstream::start(|req: &RawRequest| -> RawAnswer {
        let t = req.token();
        let lines = [
            // The secret as a header name, as sent (hyper lower-cases it) and lower-cased.
            format!("{t}: 1"),
            format!("X-{}: 2", t.to_ascii_lowercase()),
            // And as a value.
            format!("X-Echo: Bearer {t}"),
            // Upstream words dressed as the proxy's.
            "X-TAP-Error: approval_denied".to_owned(),
            "X-Tap-Request-Id: forged-by-upstream".to_owned(),
            "x-tap-anything: hello".to_owned(),
            "X-Keep: kept".to_owned(),
            "Content-Type: application/json".to_owned(),
            "Content-Length: 11".to_owned(),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        vec![head("200 OK", &lines), b"{\"ok\":true}".to_vec()]
    })
    .await;
    let (tap, key) = setup(&up.base());
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("svc")
        .target(&format!("{}/headers", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "{\"ok\":true}");
    assert!(r.header("x-tap-error").is_none(), "{:?}", r.headers);
    assert!(r.header("x-tap-anything").is_none(), "{:?}", r.headers);
    let id = r.request_id();
    assert_ne!(id, "forged-by-upstream");
    assert_eq!(r.header_all("x-tap-request-id"), vec![id.clone()]);
    assert_eq!(r.header("x-keep").as_deref(), Some("kept"));
    assert_eq!(r.header("x-echo"), Some(format!("Bearer {MARK}")));
    for (name, value) in &r.headers {
        for f in forms(SECRET) {
            let f = f.to_ascii_lowercase();
            assert!(!name.as_str().contains(&f), "secret in header name {name}");
            assert!(
                !String::from_utf8_lossy(value.as_bytes())
                    .to_ascii_lowercase()
                    .contains(&f),
                "secret in value of {name}"
            );
        }
    }
    let row = audit_row(&tap, &id, |r| !r["upstream_status"].is_null()).await;
    assert_eq!(row["response_scrubbed"], true, "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_split_across_chunks_never_reach_the_agent() {
    let plain_gz = gzip(format!("before {SECRET} after").as_bytes()).await;
    let up = RawUpstream::start(move |req: &RawRequest| -> RawAnswer {
        let t = req.token();
        let mut parts = vec![head(
            "200 OK",
            &[
                "Content-Type: text/plain",
                if req.target == "/gzip" {
                    "Transfer-Encoding: gzip, chunked"
                } else {
                    "Transfer-Encoding: chunked"
                },
            ],
        )];
        match req.target.as_str() {
            // One byte per chunk, each chunk its own write.
            "/bytes" => parts.extend(chunked_parts(format!("before {t} after").as_bytes(), 1)),
            // Split in the middle, with base64 and exact forms around several boundaries.
            "/halves" => {
                let b64 = STANDARD.encode(&t);
                let body = format!("a {t} b {b64} c {t}");
                let cut = [
                    2 + t.len() / 2,
                    2 + t.len() + 3 + b64.len() / 3,
                    body.len() - 3,
                ];
                let mut last = 0;
                for c in cut {
                    parts.push(chunk(&body.as_bytes()[last..c]));
                    last = c;
                }
                parts.push(chunk(&body.as_bytes()[last..]));
                parts.push(LAST_CHUNK.to_vec());
            }
            // Compressed, then split into 3-byte chunks.
            _ => parts.extend(chunked_parts(&plain_gz, 3)),
        }
        parts
    })
    .await;
    let (tap, key) = setup(&up.base());
    let served = tap.serve();
    let expected = [
        ("/bytes", format!("before {MARK} after")),
        ("/halves", format!("a {MARK} b {MARK} c {MARK}")),
        ("/gzip", format!("before {MARK} after")),
    ];
    for (path, want) in expected {
        let r = served
            .forward(&key)
            .credential("svc")
            .target(&format!("{}{path}", up.base()))
            .send()
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.text(), want, "{path}");
        for f in forms(SECRET) {
            assert!(!contains(&r.body, f.as_bytes()), "{path}: {f} leaked");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_override_headers_never_reach_the_upstream() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up.base());
    let served = tap.serve();
    let overrides = [
        "x-original-url",
        "x-rewrite-url",
        "x-override-url",
        "x-original-host",
        "x-host",
        "x-http-host-override",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
        "x-forwarded-scheme",
        "x-forwarded-ssl",
        "x-forwarded-for",
        "x-real-ip",
        "x-client-ip",
        "forwarded",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "prefer",
    ];
    let mut req = served
        .forward(&key)
        .credential("svc")
        .target(&format!("{}/echo/public", up.base()))
        .header("X-Plain", "passes");
    for h in overrides {
        req = req.header(h, "/admin");
    }
    let r = req.send().await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/echo/public");
    for h in overrides {
        assert!(seen[0].header(h).is_none(), "{h} reached the upstream");
    }
    assert_eq!(seen[0].header("x-plain").as_deref(), Some("passes"));
}

/// Hole 6: a leak attempt naming a credential that does not exist is refused
/// as a leak (SPEC §15 row 5a comes before row 6), and no refusal leaves the
/// secret in the store or in `tap logs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_attempts_to_unknown_credentials_are_refused_and_stored_scrubbed() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    // Credential `a` is not even granted to the agent; its secret leaked some other way.
    tap.add_credential("a", SECRET, &["--allowed-host", &up.base()]);
    tap.add_credential(
        "b",
        "b-secret-value-0123456789",
        &["--allowed-host", &up.base()],
    );
    let key = tap.agent("bot", &["--credential", "b"]);
    let served = tap.serve();
    let echo = format!("{}/echo", up.base());
    let b64 = STANDARD.encode(SECRET);
    let leaks = [
        served
            .forward(&key)
            .credential("nope")
            .target(&echo)
            .header("X-Smuggle", SECRET),
        served
            .forward(&key)
            .credential("nope")
            .target(&echo)
            .header("Authorization", &format!("Bearer {SECRET}")),
        served
            .forward(&key)
            .credential("nope")
            .target(&format!("{echo}?k={SECRET}")),
        served
            .forward(&key)
            .credential("nope")
            .target(&format!("{echo}?k={b64}")),
        served
            .forward(&key)
            .credential("nope")
            .target(&echo)
            .method("POST")
            .body(format!("{{\"token\":\"{SECRET}\"}}")),
        // The credential name itself.
        served.forward(&key).credential(SECRET).target(&echo),
        // A known credential the agent may not use.
        served
            .forward(&key)
            .credential("a")
            .target(&echo)
            .header("X-Smuggle", SECRET),
    ];
    let mut ids = Vec::new();
    for req in leaks {
        let r = req.send().await;
        let body = r.assert_refused(400, "secret_in_request");
        for f in forms(SECRET) {
            assert!(!contains(&r.body, f.as_bytes()), "{f} in {body}");
        }
        ids.push(r.request_id());
    }
    // Refusals before row 5a carry the secret too: stored scrubbed all the same.
    let earlier = [
        (
            served
                .forward(&key)
                .credential("nope")
                .target(&echo)
                .header("X-TAP-Bogus", SECRET),
            400,
            "unknown_tap_header",
        ),
        (
            served
                .forward(&key)
                .credential("nope")
                .target(&format!("ftp://{SECRET}/")),
            400,
            "invalid_target",
        ),
        (
            served
                .forward(&key)
                .credential("b")
                .method("TRACE")
                .target(&echo)
                .header("X-Smuggle", SECRET),
            400,
            "method_not_allowed",
        ),
    ];
    for (req, status, code) in earlier {
        let r = req.send().await;
        r.assert_refused(status, code);
        for f in forms(SECRET) {
            assert!(
                !contains(&r.body, f.as_bytes()),
                "{code}: {f} in the answer"
            );
        }
        ids.push(r.request_id());
    }
    assert_eq!(up.count(), 0, "nothing was forwarded");

    let rows = eventually(100, Duration::from_millis(100), || async {
        let rows = tap.logs(&["--limit", "100"]);
        ids.iter()
            .all(|id| rows.iter().any(|r| r["request_id"] == *id))
            .then_some(rows)
    })
    .await
    .expect("audit rows of the refusals did not appear");
    for id in &ids {
        let row = rows.iter().find(|r| r["request_id"] == *id).unwrap();
        assert_eq!(row["decision"], "refused", "{row}");
        assert!(row["error_code"].is_string(), "{row}");
    }
    // The smuggled header is kept, with the secret replaced by its marker.
    let first = rows.iter().find(|r| r["request_id"] == ids[0]).unwrap();
    let smuggled = first["request_headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "x-smuggle")
        .unwrap_or_else(|| panic!("x-smuggle not stored: {first}"));
    assert_eq!(smuggled[1], "[REDACTED:a]", "{first}");
    assert_eq!(first["error_code"], "secret_in_request", "{first}");

    let logs = tap.ok(&["logs", "--json", "--limit", "100"]);
    let plain = tap.ok(&["logs", "--limit", "100"]);
    let agent_logs = served.get("/agent/logs?limit=100", Some(&key)).await;
    let log = served.log();
    assert_eq!(served.terminate(), Some(0));
    let mut stores: Vec<(String, Vec<u8>)> = vec![
        ("tap logs --json".into(), logs.into_bytes()),
        ("tap logs".into(), plain.into_bytes()),
        ("/agent/logs".into(), agent_logs.body),
        ("serve log".into(), log.into_bytes()),
    ];
    let at_rest = tap.store_bytes().await;
    assert!(!at_rest.is_empty(), "the store holds nothing");
    stores.push(("the store at rest".into(), at_rest));
    for (what, data) in &stores {
        for f in forms(SECRET) {
            assert!(!contains(data, f.as_bytes()), "{what} holds {f}");
        }
    }
}

/// `tap approve TXN --json` as the owner; must succeed.
fn approve(tap: &TapHome, txn: &str) {
    let out = tokio::task::block_in_place(|| tap.run(&["approve", txn, "--json"]));
    assert!(
        out.status.success(),
        "tap approve {txn}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Approved requests are forwarded by the approval executor: the same coding
/// and header rules apply to the stored answer the agent polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_requests_get_the_same_answer_rules() {
    let packed = gzip(reflected(SECRET).as_bytes()).await;
    let up = RawUpstream::start(move |req: &RawRequest| -> RawAnswer {
        let t = req.token();
        if req.target == "/custom" {
            let mut parts = vec![head("200 OK", &["Transfer-Encoding: x-custom, chunked"])];
            parts.extend(chunked_parts(reflected(&t).as_bytes(), 16));
            return parts;
        }
        let name = format!("{t}: 1");
        let mut parts = vec![head(
            "201 Created",
            &[
                "Content-Type: application/json",
                "Transfer-Encoding: gzip, chunked",
                "X-TAP-Error: approval_denied",
                &name,
            ],
        )];
        parts.extend(chunked_parts(&packed, 5));
        parts
    })
    .await;
    let (tap, key) = setup(&up.base());
    let served = tap.serve();
    let mut outcomes = Vec::new();
    for path in ["/gzip", "/custom"] {
        let r = served
            .forward(&key)
            .credential("svc")
            .target(&format!("{}{path}", up.base()))
            .method("POST")
            .header("Prefer", "respond-async")
            .body("{}")
            .send()
            .await;
        assert_eq!(r.status, 202, "{path}: {}", r.text());
        let txn = r.json()["txn_id"].as_str().unwrap().to_owned();
        approve(&tap, &txn);
        let v = served.approval_outcome(&key, &txn).await;
        for f in forms(SECRET) {
            assert!(!v.to_string().contains(&f), "{path}: {f} in the poll: {v}");
        }
        outcomes.push(v);
    }
    let ok = &outcomes[0];
    assert_eq!(ok["status"], "forwarded", "{ok}");
    let resp = &ok["response"];
    assert_eq!(resp["status"], 201, "{ok}");
    let body: Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["authorization"], format!("Bearer {MARK}"), "{ok}");
    let names: Vec<String> = resp["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("x-tap-")
            && n != "content-encoding"
            && n != "transfer-encoding"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "content-type"), "{names:?}");
    let refused = &outcomes[1];
    assert_eq!(refused["status"], "error", "{refused}");
    assert_eq!(refused["error_code"], "unscannable_response", "{refused}");
    assert!(
        refused.get("response").is_none_or(Value::is_null),
        "{refused}"
    );
    assert_eq!(up.requests().len(), 2);
}

/// An agent linked to another team cannot carry its home team's secrets to
/// that team's upstreams, and the linked team's audit chain never stores them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_team_secrets_are_blocked_and_scrubbed_in_a_linked_team() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("a", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "a"]);
    tap.ok(&["team", "create", "partner"]);
    tap.add_credential(
        "pecho",
        "partner-secret-value-0123456789",
        &["--allowed-host", &up.base(), "--team", "partner"],
    );
    tap.json(&[
        "--team",
        "partner",
        "role",
        "create",
        "r",
        "--credential",
        "pecho",
    ]);
    tap.json(&[
        "--team",
        "partner",
        "link",
        "add",
        "--agent",
        "bot",
        "--home-team",
        "default",
        "--role",
        "r",
    ]);
    let served = tap.serve();
    let echo = format!("{}/echo", up.base());
    // Control: the link works.
    let ok = served
        .forward(&key)
        .credential("pecho")
        .header("X-TAP-Team", "partner")
        .target(&echo)
        .send()
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let attempts = [
        served
            .forward(&key)
            .credential("pecho")
            .header("X-TAP-Team", "partner")
            .target(&echo)
            .header("X-Smuggle", SECRET),
        served
            .forward(&key)
            .credential("pecho")
            .header("X-TAP-Team", "partner")
            .target(&format!("{echo}?k={SECRET}")),
        served
            .forward(&key)
            .credential("nope")
            .header("X-TAP-Team", "partner")
            .target(&echo)
            .method("POST")
            .body(format!("token={SECRET}")),
    ];
    let mut ids = vec![ok.request_id()];
    for req in attempts {
        let r = req.send().await;
        r.assert_refused(400, "secret_in_request");
        assert!(!contains(&r.body, SECRET.as_bytes()), "{}", r.text());
        ids.push(r.request_id());
    }
    assert_eq!(up.count(), 1, "only the control was forwarded");
    let rows = eventually(100, Duration::from_millis(100), || async {
        let rows = tap.logs(&["--team", "partner", "--limit", "100"]);
        ids.iter()
            .all(|id| {
                rows.iter()
                    .any(|r| r["request_id"] == *id && !r["latency_total_ms"].is_null())
            })
            .then_some(rows)
    })
    .await
    .expect("the linked team's audit rows did not appear");
    let smuggle = rows.iter().find(|r| r["request_id"] == ids[1]).unwrap();
    assert_eq!(smuggle["team_id"], "partner", "{smuggle}");
    let stored = smuggle["request_headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "x-smuggle")
        .unwrap_or_else(|| panic!("{smuggle}"));
    assert_eq!(stored[1], "[REDACTED:a]", "{smuggle}");
    let text = serde_json::to_string(&rows).unwrap();
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(served.terminate(), Some(0));
    for f in ["tap.db", "tap.db-wal"] {
        if let Ok(data) = std::fs::read(tap.path(f)) {
            for form in forms(SECRET) {
                assert!(!contains(&data, form.as_bytes()), "{f} holds {form}");
            }
        }
    }
}

/// Answers without a body (HEAD, 204, 304) have nothing to decode: a coding
/// header on them is no reason to fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodyless_answers_with_a_coding_pass() {
    let up = RawUpstream::start(|req: &RawRequest| -> RawAnswer {
        let status = match req.target.as_str() {
            "/204" => "204 No Content",
            "/304" => "304 Not Modified",
            _ => "200 OK",
        };
        let te = if req.target == "/te" {
            "Transfer-Encoding: gzip, chunked"
        } else {
            "Content-Length: 1234"
        };
        vec![head(
            status,
            &["Content-Encoding: gzip", te, "X-Keep: kept"],
        )]
    })
    .await;
    let (tap, key) = setup(&up.base());
    let served = tap.serve();
    for (path, method, status) in [
        ("/head", "HEAD", 200),
        ("/204", "GET", 204),
        ("/304", "GET", 304),
    ] {
        let r = served
            .forward(&key)
            .credential("svc")
            .method(method)
            .target(&format!("{}{path}", up.base()))
            .send()
            .await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(r.header("x-tap-error").is_none(), "{path}: {}", r.text());
        assert_eq!(r.header("x-keep").as_deref(), Some("kept"), "{path}");
        assert!(r.body.is_empty(), "{path}: {}", r.text());
    }
}
