//! The scrubber (tap-core `scrub`): a secret in any supported encoding,
//! between arbitrary bytes, pushed through a stream in arbitrary chunks.
//! Properties: streaming equals one-shot scrubbing; the secret is found; its
//! encoded bytes do not survive; no form the detector supports survives.
//!
//! Input: `[secret_len, encoder, pad, chunk_seed, ...secret, ...prefix \0 suffix]`.
#![no_main]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use tap_core::scrub::{ScrubSecret, Scrubber};

const LABEL: &str = "x";

fn percent(s: &[u8], keep: &[u8], upper: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in s {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b);
        } else if upper {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.extend_from_slice(format!("%{b:02x}").as_bytes());
        }
    }
    out
}

fn json(s: &str, slash: bool, all_unicode: bool) -> Vec<u8> {
    let mut out = String::new();
    let mut units = [0u16; 2];
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if slash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            c if all_unicode || u32::from(c) < 0x20 => {
                for u in c.encode_utf16(&mut units).iter() {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.into_bytes()
}

fn html(s: &str, how: u8) -> Vec<u8> {
    let mut out = String::new();
    for c in s.chars() {
        match how {
            0 => out.push_str(&format!("&#{};", u32::from(c))),
            1 => out.push_str(&format!("&#x{:x};", u32::from(c))),
            _ => match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            },
        }
    }
    out.into_bytes()
}

fn mime(raw: &[u8], crlf: bool) -> Vec<u8> {
    let b64 = STANDARD.encode(raw);
    let sep: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    b64.as_bytes().chunks(76).collect::<Vec<_>>().join(sep)
}

/// Where `needle` starts in `haystack`.
fn positions(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() {
        return Vec::new();
    }
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let [len, encoder, pad, seed, rest @ ..] = data else {
        return;
    };
    let len = usize::from(*len % 40) + 8;
    if rest.len() < len {
        return;
    }
    let (secret, rest) = rest.split_at(len);
    let secret = String::from_utf8_lossy(secret).into_owned();
    let (prefix, suffix) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let s = secret.as_str();
    let b = s.as_bytes();
    let mime_kind = matches!(encoder % 14, 12 | 13);
    let encoded = match encoder % 14 {
        0 => b.to_vec(),
        1 => percent(b, b"-_.~", true),
        2 => percent(b, b"-_.~/", true),
        3 => url::form_urlencoded::byte_serialize(b)
            .collect::<String>()
            .into_bytes(),
        4 => percent(b, b";,/?:@&=+$-_.!~*'()#", true),
        5 => b
            .iter()
            .flat_map(|c| format!("%{c:02x}").into_bytes())
            .collect(),
        6 => json(s, false, false),
        7 => json(s, true, false),
        8 => json(s, false, true),
        9 => html(s, 0),
        10 => html(s, 1),
        11 => html(s, 2),
        k => {
            let raw = [&vec![b'-'; usize::from(*pad % 3)][..], b, b"!?"].concat();
            mime(&raw, k == 12)
        }
    };
    let scrubber = Arc::new(Scrubber::new([ScrubSecret {
        label: LABEL,
        value: b,
    }]));
    let input = [prefix, &encoded[..], suffix].concat();
    let (once, hits) = scrubber.scrub(&input);
    assert!(hits >= 1, "the encoded secret was not found");

    let mut stream = scrubber.stream();
    let mut streamed = Vec::new();
    let mut at = 0;
    let mut x = u32::from(*seed) | 1;
    while at < input.len() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = (x >> 16) as usize % 64 + 1;
        let end = (at + n).min(input.len());
        stream.push(&input[at..end], &mut streamed);
        at = end;
    }
    stream.finish(&mut streamed);
    assert_eq!(streamed, once, "streaming differs from one-shot scrubbing");
    assert_eq!(stream.hits(), hits);

    // A marker can complete a secret that has `[` or `]` in it (or is part
    // of a marker) with its own bytes: a documented limit. An encoded secret
    // left in the output must therefore overlap a marker.
    let marker = format!("[REDACTED:{LABEL}]");
    if !mime_kind {
        let markers: Vec<usize> = positions(&once, marker.as_bytes());
        for at in positions(&once, &encoded) {
            assert!(
                markers
                    .iter()
                    .any(|&m| m < at + encoded.len() && at < m + marker.len()),
                "the encoded secret survived"
            );
        }
    }
    if !s.contains(['[', ']']) && !marker.contains(s) {
        assert_eq!(scrubber.find(&once), None, "a supported form survived");
    }
});
