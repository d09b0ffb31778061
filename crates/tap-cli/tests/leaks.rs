//! A canary secret, used for successes, refusals and a leak attempt, must
//! appear nowhere an operator or agent can read: serve log, `tap logs`, error
//! bodies, the SQLite file and its WAL.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tap_testkit::{FakeUpstream, TapHome, eventually};

/// Upper-case and digits, like an AWS access key id: survives upper-casing.
const CANARY: &str = "CANARY7F3A9C1E5B2D8F4A6C0E";
/// A second team secret that is a valid (lower-case) header name.
const LOWER: &str = "canary-lower-0d9e8f7a6b5c4d3e";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The canaries and the encodings an agent tried to smuggle.
fn forms() -> Vec<String> {
    [CANARY, LOWER]
        .iter()
        .flat_map(|c| {
            [
                (*c).to_owned(),
                STANDARD.encode(c),
                URL_SAFE_NO_PAD.encode(c),
                hex(c),
            ]
        })
        .collect()
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn assert_clean(what: &str, data: &[u8]) {
    for f in forms() {
        assert!(
            !contains(data, f.as_bytes()),
            "{what} holds the canary (form {f})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_appears_nowhere() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("canary", CANARY, &["--allowed-host", &up.base()]);
    tap.add_credential("lower", LOWER, &["--allowed-host", "api.lower.test"]);
    let key = tap.agent("bot", &["--credential", "canary"]);
    let served = tap.serve();
    let echo = format!("{}/echo", up.base());
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut ids = Vec::new();

    // Successes that reflect the secret.
    for path in ["/echo", "/reflect", "/redirect?to=http://x.test/$auth"] {
        let r = served
            .forward(&key)
            .credential("canary")
            .target(&format!("{}{path}", up.base()))
            .send()
            .await;
        assert!(r.status == 200 || r.status == 302, "{path}: {}", r.text());
        assert_clean(&format!("answer of {path}"), &r.body);
        for (n, v) in &r.headers {
            assert_clean(&format!("header {n} of {path}"), v.as_bytes());
        }
        ids.push(r.request_id());
    }
    // Refusals.
    // A gated write: held for approval (202) or, without an approval path, refused.
    let w = served
        .forward(&key)
        .credential("canary")
        .target(&echo)
        .method("POST")
        .header("Prefer", "respond-async")
        .body("{\"note\":\"a write\"}")
        .send()
        .await;
    assert!(w.status == 202 || w.status == 503, "{}", w.text());
    assert_clean("answer to a gated write", &w.body);
    ids.push(w.request_id());
    let refusals = [
        served
            .forward(&key)
            .credential("canary")
            .target(&format!("{}/compress", up.base())),
        served.forward(&key).credential("nope").target(&echo),
        served
            .forward(&key)
            .credential("canary")
            .target("http://other.test/"),
    ];
    for req in refusals {
        let r = req.send().await;
        assert!(r.header("x-tap-error").is_some(), "{}", r.text());
        ids.push(r.request_id());
        bodies.push(r.body);
    }
    // Leak attempts: the canary in a header, the body, the URL, base64 in the URL,
    // and in a target that does not even parse.
    let leaks = [
        served
            .forward(&key)
            .credential("canary")
            .target(&echo)
            .header("X-Smuggle", CANARY),
        served
            .forward(&key)
            .credential("canary")
            .target(&echo)
            .body(format!("token={CANARY}")),
        served
            .forward(&key)
            .credential("canary")
            .target(&format!("{echo}?t={CANARY}")),
        served
            .forward(&key)
            .credential("canary")
            .target(&format!("{echo}?t={}", STANDARD.encode(CANARY))),
        served
            .forward(&key)
            .credential("canary")
            .target(&format!("{echo}?t={}", hex(CANARY))),
        served
            .forward(&key)
            .credential("canary")
            .target(&format!("ftp://{CANARY}/")),
        served
            .forward(&key)
            .credential("canary")
            .method(CANARY)
            .target(&echo),
        served.forward(&key).credential(CANARY).target(&echo),
        served
            .forward(&key)
            .credential("canary")
            .header("X-TAP-Team", CANARY)
            .target(&echo),
        served
            .forward(&key)
            .credential("canary")
            .header(LOWER, "1")
            .target(&echo),
        served
            .forward(&key)
            .credential("canary")
            .header("X-Other", LOWER)
            .target(&echo),
    ];
    for req in leaks {
        let r = req.send().await;
        assert!(r.status >= 400, "{}", r.text());
        ids.push(r.request_id());
        bodies.push(r.body);
    }
    for (i, b) in bodies.iter().enumerate() {
        assert_clean(&format!("error body {i}"), b);
    }
    assert_eq!(up.count(), 4, "3 successes and the gzip answer");

    // Every request is in the audit trail, which holds no copy of the canary.
    let logs = eventually(100, Duration::from_millis(100), || async {
        let text = tap.ok(&["logs", "--json", "--limit", "100"]);
        let complete = ids.iter().all(|id| text.contains(id.as_str()))
            && text.lines().all(|l| {
                !l.contains("\"decision\":\"proceed\"") || l.contains("\"upstream_status\":")
            });
        complete.then_some(text)
    })
    .await
    .expect("audit rows did not appear");
    assert_clean("tap logs --json", logs.as_bytes());
    assert_clean("tap logs", tap.ok(&["logs"]).as_bytes());
    assert_clean(
        "tap cred show",
        tap.ok(&["cred", "show", "canary", "--json"]).as_bytes(),
    );
    assert_clean(
        "tap cred list",
        tap.ok(&["cred", "list", "--json"]).as_bytes(),
    );
    let agent_logs = served.get("/agent/logs?limit=100", Some(&key)).await;
    assert_clean("/agent/logs", &agent_logs.body);
    assert_clean(
        "/agent/services",
        &served.get("/agent/services", Some(&key)).await.body,
    );

    for f in ["tap.db", "tap.db-wal"] {
        if let Ok(data) = std::fs::read(tap.path(f)) {
            assert_clean(f, &data);
        }
    }
    assert_clean("serve log (running)", served.log().as_bytes());
    let log = served.log();
    assert_eq!(served.terminate(), Some(0));
    assert_clean("serve log", log.as_bytes());
    for f in ["tap.db", "tap.db-wal", "tap.db-shm"] {
        if let Ok(data) = std::fs::read(tap.path(f)) {
            assert_clean(f, &data);
        }
    }
}

/// Values of a credential holding many secrets (a JSON object: every field is
/// one). 400 of them with their encodings are ~2,450 patterns: the team's
/// leak detector and audit scrubber then use the anchored engine (from 2,048).
fn bulk_secrets() -> Vec<String> {
    (0..400u64)
        .map(|i| {
            let mixed = (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            format!("bulk_{i:03}_{mixed:016x}{:08x}", mixed >> 20)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_with_hundreds_of_secrets_blocks_each_one_and_nothing_else() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let bulk = bulk_secrets();
    let fields: serde_json::Map<String, serde_json::Value> = bulk
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i:03}"), v.clone().into()))
        .collect();
    tap.add_credential(
        "bulk",
        &serde_json::Value::Object(fields).to_string(),
        &["--allowed-host", &up.base()],
    );
    tap.add_credential("canary", CANARY, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "canary"]);
    let served = tap.serve();
    let echo = format!("{}/echo", up.base());

    // Any of the secrets, in a header, the body (base64) or the URL (hex), is a leak.
    let mut refused = Vec::new();
    for i in [0, 1, 149, 398, 399] {
        let s = &bulk[i];
        for req in [
            served
                .forward(&key)
                .credential("canary")
                .target(&echo)
                .header("X-Smuggle", &format!("x{s}x")),
            served
                .forward(&key)
                .credential("canary")
                .target(&echo)
                .body(format!("t={}", STANDARD.encode(s))),
            served
                .forward(&key)
                .credential("canary")
                .target(&format!("{echo}?t={}", hex(s))),
        ] {
            let r = req.send().await;
            r.assert_refused(400, "secret_in_request");
            assert!(!contains(&r.body, s.as_bytes()), "{}", r.text());
            refused.push(r.request_id());
        }
    }
    assert_eq!(up.count(), 0, "a leak attempt reached the upstream");

    // Near misses are not secrets: the tail without its head, the head without
    // its tail, one byte changed in the middle.
    let s = &bulk[77];
    let changed = format!("{}Z{}", &s[..10], &s[11..]);
    for near in [&s[1..], &s[..s.len() - 1], changed.as_str()] {
        let r = served
            .forward(&key)
            .credential("canary")
            .target(&echo)
            .header("X-Note", near)
            .send()
            .await;
        assert_eq!(r.status, 200, "{near}: {}", r.text());
    }
    assert_eq!(up.count(), 3);
    assert_eq!(served.terminate(), Some(0));

    // The refused requests are audited, scrubbed of the secret they carried.
    let logs = tap.ok(&["logs", "--json", "--limit", "100"]);
    for id in &refused {
        assert!(logs.contains(id.as_str()), "no audit row for {id}");
    }
    for i in [0, 1, 149, 398, 399] {
        let marker = format!("[REDACTED:bulk.k{i:03}]");
        assert!(logs.contains(&marker), "no {marker}: {logs}");
    }
    for s in &bulk {
        assert!(!logs.contains(s.as_str()), "the audit trail holds {s}");
    }
}
