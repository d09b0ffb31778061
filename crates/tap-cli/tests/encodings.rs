//! Issue 12 holes 3 and 4 through the real binary: an upstream that reflects
//! the injected secret in encodings nobody enumerated (partial
//! percent-encoding as Python's quote() and JS encodeURI write it, form
//! encoding, Go's JSON escapes, every character `\u`-escaped, HTML entities,
//! MIME base64 wrapped at 76 columns, the URL with the proxy's own query
//! rendering) never shows it to the agent; an agent that sends the secret in
//! one of those forms is refused as `secret_in_request` and the form is
//! stored nowhere.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tap_testkit::{FakeUpstream, TapHome, eventually};
use tap_testkit::{RawAnswer, RawUpstream};

/// Reserved characters on purpose: `/ + ~ & < > = "` and a space.
const SECRET: &str = "sk_live/4f+Aq~Zt&x<y>=z \"9Q-v2";

fn pct(s: &str, keep: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || keep.as_bytes().contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Every encoding of issue 12 an upstream might reflect.
fn reflections(secret: &str) -> Vec<(&'static str, String)> {
    let go_json = serde_json::to_string(secret)
        .unwrap()
        .replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e");
    let every_u: String = secret
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let html_named = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let html_dec: String = secret.chars().map(|c| format!("&#{};", c as u32)).collect();
    let html_hex: String = secret
        .chars()
        .map(|c| format!("&#x{:x};", c as u32))
        .collect();
    let form: String = pct(secret, "-._*").replace("%20", "+");
    // A MIME body: the secret inside a longer payload, base64 wrapped at 76.
    let payload = format!("{}{secret}{}", "p".repeat(61), "q".repeat(40));
    let b64 = STANDARD.encode(payload);
    let mime: String = b64
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    vec![
        ("python quote()", pct(secret, "_.-~/")),
        ("encodeURI", pct(secret, "-_.!~*'();/?:@&=+$,#")),
        ("form", form),
        ("go json", go_json),
        ("every char \\u", every_u),
        ("html named", html_named),
        ("html decimal", html_dec),
        ("html hex", html_hex),
        ("mime base64", mime),
    ]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_reflecting_the_secret_in_any_encoding_never_shows_it() {
    let raw = RawUpstream::start(|req| -> RawAnswer {
        // The upstream learns the secret from what the proxy injected, and
        // echoes its own URL too (where the proxy put the query rendering).
        let token = req.token();
        let secret = if token.is_empty() { SECRET.to_owned() } else { token };
        let mut body = format!("url: {}\n", req.target);
        for (name, form) in reflections(&secret) {
            body.push_str(&format!("{name}: {form}\n"));
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        vec![head.into_bytes(), body.into_bytes()]
    })
    .await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("hdr", SECRET, &["--allowed-host", &raw.base()]);
    tap.add_credential(
        "qry",
        SECRET,
        &[
            "--allowed-host",
            &raw.base(),
            "--bind-query",
            "api_key={value}",
        ],
    );
    let key = tap.agent("bot", &["--credential", "hdr,qry"]);
    let served = tap.serve();
    for cred in ["hdr", "qry"] {
        let r = served
            .forward(&key)
            .credential(cred)
            .target(&format!("{}/reflect?x=1", raw.base()))
            .method("GET")
            .send()
            .await;
        assert_eq!(r.status, 200, "{cred}: {}", r.text());
        let text = r.text();
        assert!(
            !contains(&r.body, SECRET.as_bytes()),
            "{cred}: raw secret in {text}"
        );
        for (name, form) in reflections(SECRET) {
            assert!(
                !contains(&r.body, form.as_bytes()),
                "{cred}: {name} form {form:?} reached the agent: {text}"
            );
        }
        if cred == "qry" {
            let seen = raw.requests().pop().unwrap();
            assert!(seen.target.contains("api_key="), "{}", seen.target);
            let url_line = text.lines().next().unwrap();
            assert!(
                url_line.contains("[REDACTED"),
                "the echoed URL with the proxy's own query rendering is scrubbed: {url_line}"
            );
        }
        for (name, _) in reflections(SECRET) {
            let at = text
                .find(&format!("{name}: "))
                .unwrap_or_else(|| panic!("{name} line missing: {text}"));
            // The MIME block spans lines; every other form is one line.
            let rest = &text[at..];
            let shown = if name == "mime base64" {
                rest
            } else {
                rest.lines().next().unwrap_or_default()
            };
            assert!(
                shown.contains("[REDACTED"),
                "{cred}: {name} not redacted: {shown}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sending_an_encoded_secret_is_refused_and_it_is_stored_nowhere() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("a", SECRET, &["--allowed-host", &up.base()]);
    tap.add_credential(
        "b",
        "b-secret-value-0123456789",
        &["--allowed-host", &up.base()],
    );
    let key = tap.agent("bot", &["--credential", "b"]);
    let served = tap.serve();
    let quoted = pct(SECRET, "_.-~/");
    let escaped: String = SECRET
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let mut ids = Vec::new();
    for (what, req) in [
        (
            "quote() in the query",
            served
                .forward(&key)
                .credential("b")
                .target(&format!("{}/echo?k={quoted}", up.base())),
        ),
        (
            "quote() in a header",
            served
                .forward(&key)
                .credential("b")
                .target(&format!("{}/echo", up.base()))
                .header("X-Note", &quoted),
        ),
        (
            "\\u-escaped in a JSON body",
            served
                .forward(&key)
                .credential("b")
                .target(&format!("{}/echo", up.base()))
                .method("POST")
                .header("Content-Type", "application/json")
                .body(format!("{{\"t\":\"{escaped}\"}}")),
        ),
    ] {
        let r = req.send().await;
        r.assert_refused(400, "secret_in_request");
        assert!(!contains(&r.body, quoted.as_bytes()), "{what}");
        ids.push(r.request_id());
    }
    assert_eq!(up.count(), 0, "nothing reached the upstream");
    // Every refusal is audited, and no form of the secret is in the store.
    let rows = eventually(100, Duration::from_millis(100), || async {
        let rows = tokio::task::block_in_place(|| tap.logs(&["--limit", "100"]));
        ids.iter()
            .all(|id| rows.iter().any(|r| r["request_id"] == id.as_str()))
            .then_some(rows)
    })
    .await
    .expect("audit rows of the refusals");
    let dump = serde_json::to_string(&rows).unwrap();
    for form in [SECRET, quoted.as_str(), escaped.as_str()] {
        assert!(!dump.contains(form), "{form:?} in tap logs");
    }
    drop(served);
    let stored = tap.store_bytes().await;
    assert!(!stored.is_empty());
    for form in [SECRET, quoted.as_str(), escaped.as_str()] {
        assert!(
            !contains(&stored, form.as_bytes()),
            "{form:?} in the database file"
        );
    }
}
