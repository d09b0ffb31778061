//! Response scrubbing (SPEC §7): the secret comes back as `[REDACTED:<name>]`
//! in every form the upstream may reflect it, streamed or not, in headers too.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use tap_testkit::{FakeUpstream, TapHome};

/// Characters that percent-encode and base64 forms that differ between
/// alphabets and with/without padding.
const SECRET: &str = "sk/live+Qz7:pL2=mW9xR4!c???>>>q";
const MARK: &str = "[REDACTED:svc]";

fn setup(up: &FakeUpstream) -> (TapHome, String) {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("svc", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "svc"]);
    (tap, key)
}

fn forms() -> Vec<(&'static str, String)> {
    let pct = |upper: bool| {
        SECRET
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else if upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                }
            })
            .collect::<String>()
    };
    vec![
        ("exact", SECRET.to_owned()),
        ("b64", STANDARD.encode(SECRET)),
        ("b64_unpadded", STANDARD_NO_PAD.encode(SECRET)),
        ("b64url", URL_SAFE.encode(SECRET)),
        ("b64url_unpadded", URL_SAFE_NO_PAD.encode(SECRET)),
        ("pct_upper", pct(true)),
        ("pct_lower", pct(false)),
    ]
}

#[test]
fn the_secret_exercises_every_variant() {
    let f = forms();
    let distinct: std::collections::HashSet<&String> = f.iter().map(|(_, v)| v).collect();
    assert_eq!(distinct.len(), f.len(), "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_secret_is_redacted_in_body_and_headers() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("svc")
        .target(&format!("{}/echo", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-echo").as_deref(), Some("Bearer [REDACTED:svc]"));
    let body = r.json();
    assert_eq!(body["authorization"], "Bearer [REDACTED:svc]", "{body}");
    assert!(!r.text().contains(SECRET));
    assert_eq!(
        up.requests()[0].header("authorization"),
        Some(format!("Bearer {SECRET}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_forms_are_redacted() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("svc")
        .target(&format!("{}/reflect", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let text = r.text();
    for (field, value) in forms() {
        assert_eq!(body[field], MARK, "{field}: {body}");
        assert!(!text.contains(&value), "{field} form survives: {text}");
    }
    // Inside a longer base64 string (`someone:<secret>`), at least the secret's core is cut.
    let in_basic = body["in_basic"].as_str().unwrap();
    assert!(in_basic.contains(MARK), "{in_basic}");
    assert!(!in_basic.contains(&STANDARD.encode(format!("someone:{SECRET}"))));
    assert_eq!(r.header("x-reflect").as_deref(), Some(MARK));
    assert_eq!(r.header("x-reflect-b64").as_deref(), Some(MARK));
    for (name, value) in &r.headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        for (form, secret) in forms() {
            assert!(!v.contains(&secret), "{form} in header {name}: {v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_megabyte_is_scrubbed_across_chunk_boundaries() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();
    let n: usize = 1 << 20;
    let r = served
        .forward(&key)
        .credential("svc")
        .target(&format!("{}/big?bytes={n}&secret=$auth", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-tap-error").is_none());
    // Where the fake places the secret: across 1000-byte chunk boundaries, every 100 000 bytes.
    let l = SECRET.len();
    let mut expected_hits = 0;
    let mut pos = 1000 - l / 2;
    while pos + l < n {
        expected_hits += 1;
        pos += 100_000;
    }
    assert!(expected_hits > 5);
    let body = &r.body;
    let text = String::from_utf8_lossy(body);
    assert!(!text.contains(SECRET), "secret survived streaming");
    assert_eq!(text.matches(MARK).count(), expected_hits);
    assert_eq!(
        body.len(),
        n - expected_hits * l + expected_hits * MARK.len(),
        "length math"
    );
    // Everything but the markers is the filler, in place.
    assert!(text.replace(MARK, "").bytes().all(|b| b == b'x'));
    let first = 1000 - l / 2;
    assert_eq!(&body[first..first + MARK.len()], MARK.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_returned_not_followed_and_location_is_scrubbed() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();

    // A redirect to an allowed path of the same upstream is still not followed.
    let to = format!("{}/echo", up.base());
    let r = served
        .forward(&key)
        .credential("svc")
        .target(&format!("{}/redirect?to={to}", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 302, "{}", r.text());
    assert!(r.header("x-tap-error").is_none());
    assert_eq!(r.header("location").as_deref(), Some(to.as_str()));
    assert_eq!(up.count(), 1, "the redirect was followed");

    // A Location carrying the secret comes back scrubbed.
    let r = served
        .forward(&key)
        .credential("svc")
        .target(&format!(
            "{}/redirect?to=http://elsewhere.test/cb/$auth",
            up.base()
        ))
        .send()
        .await;
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("http://elsewhere.test/cb/{MARK}").as_str())
    );
    assert_eq!(up.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_answers_are_decoded_scrubbed_and_returned_plain() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();
    for coding in ["gzip", "deflate", "br", "zstd"] {
        let r = served
            .forward(&key)
            .credential("svc")
            .target(&format!("{}/coded?c={coding}", up.base()))
            .send()
            .await;
        assert_eq!(r.status, 200, "{coding}: {}", r.text());
        assert!(
            r.header("content-encoding").is_none(),
            "{coding}: still encoded"
        );
        let body = r.json();
        assert_eq!(body["authorization"], format!("Bearer {MARK}"), "{coding}");
        assert!(!r.text().contains(SECRET), "{coding}: secret leaked");
    }
    let seen = up.requests();
    assert!(
        seen.iter()
            .all(|q| q.header("accept-encoding").as_deref() == Some("identity"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_answer_is_aborted_and_audited_as_unscannable() {
    let up = FakeUpstream::start().await;
    let (tap, key) = setup(&up);
    let served = tap.serve();
    let client = tap_testkit::http_client();
    let resp = client
        .post(format!("{}/forward", served.url))
        .header("X-TAP-Key", &key)
        .header("X-TAP-Credential", "svc")
        .header("X-TAP-Target", format!("{}/gzip", up.base()))
        .send()
        .await;
    // Either the head never completes or the body breaks off: no undecoded byte is delivered whole.
    if let Ok(resp) = resp {
        let body = resp.bytes().await;
        assert!(
            body.is_err() || body.as_ref().is_ok_and(|b| b.is_empty()),
            "{body:?}"
        );
    }
    let logged = tap_testkit::eventually(50, std::time::Duration::from_millis(100), || async {
        tap.logs(&[])
            .into_iter()
            .find(|r| r["error_code"] == "unscannable_response")
            .map(|_| ())
    })
    .await;
    assert!(logged.is_some(), "no audit row with unscannable_response");
}
