//! An independent RFC 5849 verifier for tests: recomputes an OAuth 1.0a
//! signature from what an upstream recorded, with its own base string, its
//! own percent-encoding and its own HMAC (RFC 2104), never the signer's code.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::Digest as _;

use crate::Recorded;

/// RFC 3986 unreserved kept, every other byte `%XX` upper-case (RFC 5849 §3.6).
pub fn oauth_pct(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding of one name or value.
fn unform(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' {
            out.push(b' ');
        } else if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 2;
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    out
}

fn pairs(s: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (unform(k), unform(v)),
            None => (unform(p), Vec::new()),
        })
        .collect()
}

/// The `oauth_*` parameters of an `Authorization: OAuth ...` header, decoded.
pub fn oauth_params(header: &str) -> Vec<(String, String)> {
    let rest = header.strip_prefix("OAuth ").expect("OAuth scheme");
    rest.split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            let v = v.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
            (k.to_owned(), String::from_utf8(unform(v)).unwrap())
        })
        .collect()
}

/// One parameter; panics naming it when absent.
pub fn oauth_param<'p>(params: &'p [(String, String)], name: &str) -> &'p str {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {params:?}"))
}

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

/// The RFC 5849 §3.4 signature of the request `rec` (received at `base`,
/// e.g. `http://127.0.0.1:PORT`) under the given secrets, for the `oauth_*`
/// parameters `params` (its `oauth_signature` left out).
pub fn expected_oauth1_signature(
    base: &str,
    rec: &Recorded,
    params: &[(String, String)],
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let (path, query) = rec.uri.split_once('?').unwrap_or((&rec.uri, ""));
    let mut all = pairs(query);
    let form = rec
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if form {
        all.extend(pairs(std::str::from_utf8(&rec.body).unwrap()));
    }
    all.extend(
        params
            .iter()
            .filter(|(k, _)| k != "oauth_signature" && k != "realm")
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())),
    );
    let mut encoded: Vec<(String, String)> = all
        .iter()
        .map(|(k, v)| (oauth_pct(k), oauth_pct(v)))
        .collect();
    encoded.sort();
    let normalized: Vec<String> = encoded.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let base_string = format!(
        "{}&{}&{}",
        rec.method,
        oauth_pct(format!("{base}{path}").as_bytes()),
        oauth_pct(normalized.join("&").as_bytes())
    );
    let key = format!(
        "{}&{}",
        oauth_pct(consumer_secret.as_bytes()),
        oauth_pct(token_secret.as_bytes())
    );
    let hash: fn(&[u8]) -> Vec<u8> = match oauth_param(params, "oauth_signature_method") {
        "HMAC-SHA1" => |b| sha1::Sha1::digest(b).to_vec(),
        "HMAC-SHA256" => |b| sha2::Sha256::digest(b).to_vec(),
        other => panic!("unexpected method {other}"),
    };
    STANDARD.encode(hmac(hash, key.as_bytes(), base_string.as_bytes()))
}
