use base64::Engine as _;
use sha1::Digest as _;
use tap_core::time::ManualClock;

use super::*;

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

fn keys(ck: &str, cs: &str, t: &str, ts: &str, method: Method) -> KeySet {
    KeySet {
        consumer_key: Secret::from(ck),
        consumer_secret: Secret::from(cs),
        token: Secret::from(t),
        token_secret: Secret::from(ts),
        method,
    }
}

/// HMAC (RFC 2104) written out here, so the signer's HMAC is checked against
/// a computation that does not share its code.
fn hmac_by_hand(block: usize, hash: fn(&[u8]) -> Vec<u8>, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > block {
        hash(key)
    } else {
        key.to_vec()
    };
    k.resize(block, 0);
    let ipad: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x36)
        .chain(msg.iter().copied())
        .collect();
    let inner = hash(&ipad);
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner).collect();
    hash(&opad)
}

fn sha1_hash(b: &[u8]) -> Vec<u8> {
    sha1::Sha1::digest(b).to_vec()
}

fn sha256_hash(b: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(b).to_vec()
}

#[test]
fn rfc5849_3_4_1_base_string_example() {
    // RFC 5849 §3.4.1.1: the example request and its signature base string.
    let u = url("http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b");
    let req = OutboundRequest {
        method: "POST",
        url: &u,
        content_type: Some("application/x-www-form-urlencoded"),
        headers: &[],
        body: b"c2&a3=2+q",
    };
    let oauth: [(&str, &[u8]); 5] = [
        ("oauth_consumer_key", b"9djdj82h48djs9d2"),
        ("oauth_token", b"kkk9d7dh3k39sjv7"),
        ("oauth_signature_method", b"HMAC-SHA1"),
        ("oauth_timestamp", b"137131201"),
        ("oauth_nonce", b"7d8f3e4a"),
    ];
    assert_eq!(
        base_string(&req, &oauth),
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q\
         %26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_\
         key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m\
         ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk\
         9d7dh3k39sjv7"
    );
}

#[test]
fn rfc5849_1_2_photos_request_signature() {
    // RFC 5849 §1.2: printer.example.com fetching a photo with its token.
    let k = keys(
        "dpf43f3p2l4k3l03",
        "kd94hf93k423kf44",
        "nnch734d00sl2jdk",
        "pfkkdhi9sl3r4s00",
        Method::HmacSha1,
    );
    let u = url("http://photos.example.net/photos?file=vacation.jpg&size=original");
    let req = OutboundRequest {
        method: "GET",
        url: &u,
        content_type: None,
        headers: &[],
        body: b"",
    };
    let header = authorization(&k, &req, 137131202, "chapoH");
    let text = String::from_utf8(header.expose().to_vec()).unwrap();
    assert_eq!(
        text,
        "OAuth oauth_consumer_key=\"dpf43f3p2l4k3l03\", oauth_nonce=\"chapoH\", \
         oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"137131202\", \
         oauth_token=\"nnch734d00sl2jdk\", \
         oauth_signature=\"MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D\""
    );
}

#[test]
fn signatures_match_an_independent_hmac_for_both_methods() {
    // Secrets with characters §3.6 encodes, so the key's encoding is exercised.
    let u = url("https://API.Example.com:8443/1.1/statuses/update.json?include_entities=true");
    let body = b"status=Hello%20Ladies%20%2b%20Gentlemen%2C%20a%20signed%20OAuth%20request%21";
    let req = OutboundRequest {
        method: "post",
        url: &u,
        content_type: Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
        headers: &[],
        body,
    };
    // The base string written out by hand from §3.4.1.
    let expected_base = "POST&https%3A%2F%2Fapi.example.com%3A8443%2F1.1%2Fstatuses%2Fupdate.json&\
        include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26\
        oauth_nonce%3Dkllo9940pd9333jh%26oauth_signature_method%3DMETHOD%26\
        oauth_timestamp%3D1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26\
        status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521";
    for (method, block, hash) in [
        (Method::HmacSha1, 64, sha1_hash as fn(&[u8]) -> Vec<u8>),
        (Method::HmacSha256, 64, sha256_hash),
    ] {
        let k = keys(
            "xvz1evFS4wEEPTGEFPHBog",
            "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw&",
            "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE +/",
            method,
        );
        let header = authorization(&k, &req, 1318622958, "kllo9940pd9333jh");
        let text = String::from_utf8(header.expose().to_vec()).unwrap();
        let base = expected_base.replace("METHOD", method.as_str());
        let key = "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw%26&\
                   LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE%20%2B%2F";
        let mac = hmac_by_hand(block, hash, key.as_bytes(), base.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac);
        let sig_param = format!("oauth_signature=\"{}\"", encode(sig.as_bytes()));
        assert!(text.contains(&sig_param), "{method:?}: {text}");
    }
}

#[test]
fn percent_encoding_follows_3_6() {
    assert_eq!(encode(b"AZaz09-._~"), "AZaz09-._~");
    assert_eq!(encode(b"a b+c/d=e&f*"), "a%20b%2Bc%2Fd%3De%26f%2A");
    assert_eq!(encode("é".as_bytes()), "%C3%A9");
    assert_eq!(encode(b"\xff\x00"), "%FF%00");
}

#[test]
fn body_parameters_are_signed_only_for_form_bodies() {
    let u = url("https://api.example.com/x");
    let base = |ct: Option<&'static str>| {
        base_string(
            &OutboundRequest {
                method: "POST",
                url: &u,
                content_type: ct,
                headers: &[],
                body: b"a=1",
            },
            &[],
        )
    };
    assert!(base(Some("application/x-www-form-urlencoded")).ends_with("&a%3D1"));
    assert!(base(Some("application/json")).ends_with("&"));
    assert!(base(None).ends_with("&"));
}

#[test]
fn malformed_escapes_and_bare_names_do_not_panic() {
    let u = url("https://api.example.com/x?%zz&%4&flag&=v&&a=%41");
    let req = OutboundRequest {
        method: "GET",
        url: &u,
        content_type: Some("application/x-www-form-urlencoded"),
        headers: &[],
        body: b"%%%&=&b=%f",
    };
    let b = base_string(&req, &[]);
    assert!(b.contains("a%3DA"), "{b}");
    assert!(b.contains("flag%3D"), "{b}");
}

#[test]
fn each_signature_has_a_fresh_nonce_and_the_clock_s_timestamp() {
    let v = CredentialValue::parse(
        br#"{"consumer_key":"ck","consumer_secret":"cs","token":"t","token_secret":"ts","signature_method":"HMAC-SHA256"}"#,
    )
    .unwrap();
    let signer = OAuth1Signer::from_value(&v).unwrap();
    let clock = ManualClock::new(1_700_000_000_123);
    let u = url("https://api.example.com/x");
    let req = OutboundRequest {
        method: "GET",
        url: &u,
        content_type: None,
        headers: &[],
        body: b"",
    };
    let a = signer.sign(&req, &clock).unwrap();
    let b = signer.sign(&req, &clock).unwrap();
    assert_eq!(a[0].0, "authorization");
    let (a, b) = (
        String::from_utf8(a[0].1.expose().to_vec()).unwrap(),
        String::from_utf8(b[0].1.expose().to_vec()).unwrap(),
    );
    assert_ne!(a, b, "nonces repeat");
    assert!(a.contains("oauth_timestamp=\"1700000000\""), "{a}");
    assert!(a.contains("oauth_signature_method=\"HMAC-SHA256\""), "{a}");
}

#[test]
fn key_set_errors_name_fields_never_values_and_debug_hides_secrets() {
    let missing = CredentialValue::parse(
        br#"{"consumer_key":"ck-visible?","consumer_secret":"cs-hidden","token":"t"}"#,
    )
    .unwrap();
    assert_eq!(
        OAuth1Signer::from_value(&missing).unwrap_err(),
        SignError::FieldMissing("access_token_secret")
    );
    let bad = CredentialValue::parse(
        br#"{"consumer_key":"ck","consumer_secret":"cs","token":"t","token_secret":"ts","signature_method":"RSA-SHA1"}"#,
    )
    .unwrap();
    assert!(matches!(
        OAuth1Signer::from_value(&bad).unwrap_err(),
        SignError::Unsupported {
            field: "signature_method",
            ..
        }
    ));
    let ok = CredentialValue::parse(
        br#"{"consumer_key":"ck-0001","consumer_secret":"cs-0002","access_token":"t-0003","access_token_secret":"ts-0004"}"#,
    )
    .unwrap();
    let dbg = format!("{:?}", OAuth1Signer::from_value(&ok).unwrap());
    for s in ["ck-0001", "cs-0002", "t-0003", "ts-0004"] {
        assert!(!dbg.contains(s), "{dbg}");
    }
}
