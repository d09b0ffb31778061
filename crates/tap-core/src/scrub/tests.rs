use std::ops::Range;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use proptest::prelude::*;

use super::anchored::ANCHOR_LEN;
use super::engine::{Choice, Engine};
use super::scrubber::{Build, Matcher};
use super::*;

const TOKEN: &[u8] = b"s3cr3t-token-value";
/// Base64 of this differs between the standard and URL alphabets.
const SLASHY: &[u8] = b"s3cr3t>>?token";
/// Needs percent and JSON escaping, and is not ASCII.
const ESCAPY: &str = "p@ss/w\u{f6}rd\"\n~?";

fn one(label: &str, value: &[u8]) -> Scrubber {
    Scrubber::new([ScrubSecret { label, value }])
}

fn scrub(s: &Scrubber, input: &[u8]) -> Vec<u8> {
    s.scrub(input).0
}

/// Pushes `input` through a stream in chunks of the given sizes (cycled),
/// checking the held-back tail stays bounded; returns the stream's hits.
fn stream_into<S: ScrubSink>(s: &Arc<Scrubber>, input: &[u8], sizes: &[usize], out: &mut S) -> u64 {
    let mut stream = s.stream();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        stream.push(&rest[..n], out);
        assert!(stream.carry.len() <= s.window);
        rest = &rest[n..];
        i += 1;
    }
    stream.finish(out);
    assert!(stream.carry.is_empty());
    stream.hits()
}

fn stream_in_chunks(s: &Arc<Scrubber>, input: &[u8], sizes: &[usize]) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let hits = stream_into(s, input, sizes, &mut out);
    (out, hits)
}

/// A sink that keeps the output and counts what reached it as spans.
#[derive(Default)]
struct Recording {
    out: Vec<u8>,
    span_bytes: usize,
    copied_bytes: usize,
}

impl ScrubSink for Recording {
    fn bytes(&mut self, bytes: &[u8]) {
        self.copied_bytes += bytes.len();
        self.out.extend_from_slice(bytes);
    }

    fn span(&mut self, input: &[u8], range: Range<usize>) {
        assert!(!range.is_empty(), "empty span");
        self.span_bytes += range.len();
        self.out.extend_from_slice(&input[range]);
    }
}

fn stream_recorded(s: &Arc<Scrubber>, input: &[u8], sizes: &[usize]) -> Recording {
    let mut rec = Recording::default();
    stream_into(s, input, sizes, &mut rec);
    rec
}

#[test]
fn unchanged_input_reaches_a_sink_as_spans_not_copies() {
    let s = Arc::new(one("tok", TOKEN));
    let mut body = b"x".repeat(256 * 1024);
    body.extend_from_slice(TOKEN);
    body.extend_from_slice(&b"y".repeat(256 * 1024));
    let rec = stream_recorded(&s, &body, &[64 * 1024]);
    assert_eq!(rec.out, s.scrub(&body).0);
    // Only the seams between chunks (held-back bytes) and the marker are copied.
    let chunks = body.len().div_ceil(64 * 1024);
    assert!(
        rec.copied_bytes <= chunks * 2 * s.window + 64,
        "{} bytes copied",
        rec.copied_bytes
    );
    let mut whole = Recording::default();
    assert_eq!(s.scrub_into(&body, &mut whole), 1);
    assert_eq!(whole.out, rec.out);
    assert_eq!(whole.span_bytes, body.len() - TOKEN.len());
    // The identity scrubber hands the whole chunk over as one span.
    let empty = Arc::new(Scrubber::new(std::iter::empty::<ScrubSecret<'_>>()));
    let rec = stream_recorded(&empty, &body, &[body.len()]);
    assert_eq!((rec.span_bytes, rec.copied_bytes), (body.len(), 0));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_variant_has_its_known_answer_and_is_redacted() {
    let esc = ESCAPY.as_bytes();
    let cases: &[(Variant, &[u8], &str)] = &[
        (Variant::Exact, TOKEN, "s3cr3t-token-value"),
        (Variant::Base64Std, TOKEN, "czNjcjN0LXRva2VuLXZhbHVl"),
        (Variant::Base64Std, SLASHY, "czNjcjN0Pj4/dG9rZW4="),
        (Variant::Base64StdUnpadded, SLASHY, "czNjcjN0Pj4/dG9rZW4"),
        (Variant::Base64Url, SLASHY, "czNjcjN0Pj4_dG9rZW4="),
        (Variant::Base64UrlUnpadded, SLASHY, "czNjcjN0Pj4_dG9rZW4"),
        (Variant::PercentUpper, esc, "p%40ss%2Fw%C3%B6rd%22%0A~%3F"),
        (Variant::PercentLower, esc, "p%40ss%2fw%c3%b6rd%22%0a~%3f"),
        (Variant::JsonEscaped, esc, "p@ss/w\u{f6}rd\\\"\\n~?"),
        (Variant::JsonEscapedSlash, esc, "p@ss\\/w\u{f6}rd\\\"\\n~?"),
        (Variant::JsonUnicode, esc, "p@ss/w\\u00f6rd\\\"\\u000a~?"),
        (
            Variant::JsonUnicode,
            "key\u{1f600}value".as_bytes(),
            "key\\ud83d\\ude00value",
        ),
        (
            Variant::HexLower,
            TOKEN,
            "7333637233742d746f6b656e2d76616c7565",
        ),
        (
            Variant::HexUpper,
            TOKEN,
            "7333637233742D746F6B656E2D76616C7565",
        ),
        (
            Variant::Base64StdAligned(0),
            TOKEN,
            "czNjcjN0LXRva2VuLXZhbHVl",
        ),
        (
            Variant::Base64StdAligned(1),
            TOKEN,
            "MzY3IzdC10b2tlbi12YWx1Z",
        ),
        (
            Variant::Base64StdAligned(2),
            TOKEN,
            "zM2NyM3QtdG9rZW4tdmFsdW",
        ),
        (Variant::Base64StdAligned(0), SLASHY, "czNjcjN0Pj4/dG9rZW"),
        (Variant::Base64StdAligned(1), SLASHY, "MzY3IzdD4+P3Rva2Vu"),
        (Variant::Base64StdAligned(2), SLASHY, "zM2NyM3Q+Pj90b2tlb"),
        (Variant::Base64UrlAligned(0), SLASHY, "czNjcjN0Pj4_dG9rZW"),
        (Variant::Base64UrlAligned(1), SLASHY, "MzY3IzdD4-P3Rva2Vu"),
        (Variant::Base64UrlAligned(2), SLASHY, "zM2NyM3Q-Pj90b2tlb"),
    ];
    for &(variant, secret, expected) in cases {
        let encoded = variant.encode(secret);
        assert_eq!(
            encoded.as_deref().map(Vec::as_slice),
            Some(expected.as_bytes()),
            "{variant:?}"
        );
        let scrubber = one("k", secret);
        let (out, hits) = scrubber.scrub(format!("<<{expected}>>").as_bytes());
        assert_eq!(out, b"<<[REDACTED:k]>>", "{variant:?}");
        assert_eq!(hits, 1);
    }
}

#[test]
fn variant_table_lists_every_variant_and_alignment() {
    // Exhaustive on purpose: a new variant does not compile until it is
    // placed in the table (and given a known answer above).
    let listed = |v: Variant| match v {
        Variant::Exact
        | Variant::Base64Std
        | Variant::Base64StdUnpadded
        | Variant::Base64Url
        | Variant::Base64UrlUnpadded
        | Variant::PercentUpper
        | Variant::PercentLower
        | Variant::JsonEscaped
        | Variant::JsonEscapedSlash
        | Variant::JsonUnicode
        | Variant::HexLower
        | Variant::HexUpper => ALL_VARIANTS.contains(&v),
        Variant::Base64StdAligned(k) | Variant::Base64UrlAligned(k) => {
            (k <= 2) == ALL_VARIANTS.contains(&v)
        }
    };
    for k in 0..4 {
        assert!(listed(Variant::Base64StdAligned(k)));
        assert!(listed(Variant::Base64UrlAligned(k)));
    }
    assert!(ALL_VARIANTS.iter().all(|&v| listed(v)));
    assert_eq!(ALL_VARIANTS.len(), 18);
}

#[test]
fn variants_equal_to_the_raw_bytes_are_skipped() {
    let plain = b"plain-token_1.0~";
    assert!(Variant::PercentUpper.encode(plain).is_none());
    assert!(Variant::PercentLower.encode(plain).is_none());
    assert!(Variant::JsonEscaped.encode(plain).is_none());
    assert!(Variant::JsonUnicode.encode(plain).is_none());
    assert!(Variant::Exact.encode(plain).is_some());
    assert!(Variant::Exact.encode(b"").is_none());
}

#[test]
fn json_variants_need_utf8_secrets() {
    let bytes = b"\xff\xfebinary-secret";
    assert!(Variant::JsonEscaped.encode(bytes).is_none());
    assert!(Variant::JsonEscapedSlash.encode(bytes).is_none());
    assert!(Variant::JsonUnicode.encode(bytes).is_none());
    assert!(Variant::HexLower.encode(bytes).is_some());
}

#[test]
fn alignment_variants_need_a_core_of_eight_chars() {
    // 5 bytes: at most 6 fully determined characters at any alignment.
    for v in ALL_VARIANTS {
        if matches!(
            v,
            Variant::Base64StdAligned(_) | Variant::Base64UrlAligned(_)
        ) {
            assert!(v.encode(b"short").is_none(), "{v:?}");
        }
    }
    // 6 bytes: 8 characters at alignment 0, 7 at alignments 1 and 2.
    assert_eq!(
        Variant::Base64StdAligned(0)
            .encode(b"sixsix")
            .as_deref()
            .map(Vec::as_slice),
        Some(&b"c2l4c2l4"[..])
    );
    assert!(Variant::Base64StdAligned(1).encode(b"sixsix").is_none());
    assert!(Variant::Base64StdAligned(2).encode(b"sixsix").is_none());
    assert!(Variant::Base64StdAligned(3).encode(TOKEN).is_none());
}

#[test]
fn short_secrets_still_get_exact_percent_json_hex_and_whole_base64() {
    let s = one("pin", b"1/2");
    for enc in ["1/2", "1%2F2", "1%2f2", "312f32", "312F32", "MS8y", "1\\/2"] {
        let input = format!("x{enc}x");
        assert_eq!(scrub(&s, input.as_bytes()), b"x[REDACTED:pin]x", "{enc}");
    }
}

#[test]
fn secret_inside_longer_base64_blob_is_redacted_at_every_alignment() {
    let engines: [&GeneralPurpose; 2] = [&STANDARD, &URL_SAFE];
    for secret in [TOKEN, SLASHY] {
        let s = one("blob", secret);
        for engine in engines {
            for prefix_len in 0..7u8 {
                for suffix_len in 0..4u8 {
                    let mut raw: Vec<u8> = (0..prefix_len).map(|i| i.wrapping_mul(77)).collect();
                    raw.extend_from_slice(secret);
                    raw.extend((0..suffix_len).map(|i| 0xf0 | i));
                    let blob = engine.encode(&raw);
                    let input = format!("{{\"data\":\"{blob}\"}}");
                    let (out, hits) = s.scrub(input.as_bytes());
                    assert!(hits >= 1, "prefix {prefix_len} suffix {suffix_len}");
                    assert!(contains(&out, b"[REDACTED:blob]"));
                    assert_eq!(s.find(input.as_bytes()), Some("blob"));
                }
            }
        }
    }
}

#[test]
fn match_split_across_chunks_at_every_offset_is_redacted() {
    let s = Arc::new(Scrubber::new([
        ScrubSecret {
            label: "tok",
            value: TOKEN,
        },
        ScrubSecret {
            label: "esc",
            value: ESCAPY.as_bytes(),
        },
    ]));
    let input = [
        &b"head "[..],
        TOKEN,
        b" b64 czNjcjN0LXRva2VuLXZhbHVl pct p%40ss%2Fw%C3%B6rd%22%0A~%3F end ",
        TOKEN,
    ]
    .concat();
    let (expected, expected_hits) = s.scrub(&input);
    assert_eq!(expected_hits, 4);
    assert!(!contains(&expected, TOKEN));
    for i in 0..=input.len() {
        for j in i..=input.len() {
            let mut stream = s.stream();
            let mut out = Vec::new();
            stream.push(&input[..i], &mut out);
            stream.push(&input[i..j], &mut out);
            stream.push(&input[j..], &mut out);
            stream.finish(&mut out);
            assert_eq!(out, expected, "split at {i} and {j}");
            assert_eq!(stream.hits(), expected_hits);
        }
    }
}

#[test]
fn one_byte_chunks_match_one_shot() {
    let s = Arc::new(one("tok", TOKEN));
    let input = [&b"a"[..], TOKEN, TOKEN, b"s3cr3t-token-valu", TOKEN, b"z"].concat();
    let (expected, hits) = s.scrub(&input);
    assert_eq!(
        expected,
        b"a[REDACTED:tok][REDACTED:tok]s3cr3t-token-valu[REDACTED:tok]z"
    );
    assert_eq!(stream_in_chunks(&s, &input, &[1]), (expected, hits));
}

#[test]
fn overlapping_prefixes_longest_match_wins() {
    let s = Arc::new(Scrubber::new([
        ScrubSecret {
            label: "short",
            value: b"abcdefgh",
        },
        ScrubSecret {
            label: "long",
            value: b"abcdefghij",
        },
    ]));
    let cases: [(&[u8], &[u8]); 3] = [
        (b"xxabcdefghijyy", b"xx[REDACTED:long]yy"),
        (b"xxabcdefghiQ", b"xx[REDACTED:short]iQ"),
        (b"abcdefghabcdefghij", b"[REDACTED:short][REDACTED:long]"),
    ];
    for (input, expected) in cases {
        assert_eq!(scrub(&s, input), expected);
        for size in 1..input.len() {
            assert_eq!(stream_in_chunks(&s, input, &[size]).0, expected);
        }
    }
}

#[test]
fn identical_patterns_keep_the_first_label() {
    let s = Scrubber::new([
        ScrubSecret {
            label: "first",
            value: TOKEN,
        },
        ScrubSecret {
            label: "second",
            value: TOKEN,
        },
    ]);
    assert_eq!(scrub(&s, TOKEN), b"[REDACTED:first]");
    assert_eq!(s.find(b"czNjcjN0LXRva2VuLXZhbHVl"), Some("first"));
    assert_eq!(s.pattern_label.len(), one("x", TOKEN).pattern_label.len());
}

#[test]
fn find_reports_the_leftmost_secret() {
    let s = Scrubber::new([
        ScrubSecret {
            label: "a",
            value: b"alpha-secret",
        },
        ScrubSecret {
            label: "b",
            value: b"bravo-secret",
        },
    ]);
    assert_eq!(s.find(b"..bravo-secret..alpha-secret"), Some("b"));
    assert_eq!(s.find(b"..YWxwaGEtc2VjcmV0..bravo-secret"), Some("a"));
    assert_eq!(s.find(b"nothing here"), None);
}

#[test]
fn non_utf8_bodies_are_scrubbed_bytewise() {
    let binary_secret: &[u8] = b"\xff\x00\x80binary";
    let s = Arc::new(Scrubber::new([
        ScrubSecret {
            label: "tok",
            value: TOKEN,
        },
        ScrubSecret {
            label: "bin",
            value: binary_secret,
        },
    ]));
    let input = [&b"\xff\xfe"[..], TOKEN, b"\x80\x00", binary_secret, b"\xc3"].concat();
    let expected = b"\xff\xfe[REDACTED:tok]\x80\x00[REDACTED:bin]\xc3";
    assert_eq!(scrub(&s, &input), expected);
    assert_eq!(stream_in_chunks(&s, &input, &[3]).0, expected);
    assert_eq!(scrub(&s, b"<ff008062696e617279>"), b"<[REDACTED:bin]>");
}

#[test]
fn scrub_str_keeps_utf8_and_replaces_whole_matches() {
    let s = one("tok", TOKEN);
    assert_eq!(
        s.scrub_str("Bearer s3cr3t-token-value \u{fc}ber"),
        ("Bearer [REDACTED:tok] \u{fc}ber".to_owned(), 1)
    );
    let s = one("esc", ESCAPY.as_bytes());
    assert_eq!(
        s.scrub_str(&format!("\u{e9}{ESCAPY}\u{e9}")),
        ("\u{e9}[REDACTED:esc]\u{e9}".to_owned(), 1)
    );
}

#[test]
fn scrub_str_widens_matches_that_cut_a_character() {
    // 0xA9 is the second byte of "é" (C3 A9); 0xC3 the first.
    let s = Scrubber::new([
        ScrubSecret {
            label: "tail",
            value: b"\xa9ab",
        },
        ScrubSecret {
            label: "head",
            value: b"zz\xc3",
        },
    ]);
    assert_eq!(
        s.scrub_str("caf\u{e9}ab!"),
        ("caf[REDACTED:tail]!".to_owned(), 1)
    );
    assert_eq!(
        s.scrub_str("<zz\u{e9}>"),
        ("<[REDACTED:head]>".to_owned(), 1)
    );
    // The byte API replaces exactly the match.
    assert_eq!(
        scrub(&s, "caf\u{e9}ab!".as_bytes()),
        b"caf\xc3[REDACTED:tail]!"
    );
}

#[test]
fn leak_detector_ignores_seven_byte_secrets_but_finds_eight_byte_ones() {
    let secrets = [
        ScrubSecret {
            label: "seven",
            value: b"abc/de7",
        },
        ScrubSecret {
            label: "eight",
            value: b"abc/def8",
        },
    ];
    let d = Scrubber::leak_detector(secrets);
    assert_eq!(d.find(b"GET /x?q=abc%2Fdef8"), Some("eight"));
    assert_eq!(d.find(b"GET /x?q=abc%2fdef8"), Some("eight"));
    assert_eq!(d.find(b"Authorization: Basic YWJjL2RlZjg="), Some("eight"));
    assert_eq!(d.find(b"token=YWJjL2RlZjg"), Some("eight"));
    assert_eq!(d.find(b"abc/de7"), None);
    assert_eq!(d.find(b"abc%2Fde7"), None);
    assert_eq!(d.find(b"YWJjL2RlNw=="), None);
    assert_eq!(Scrubber::new(secrets).find(b"abc%2Fde7"), Some("seven"));

    let only_short = Scrubber::leak_detector([ScrubSecret {
        label: "s",
        value: b"1234567",
    }]);
    assert!(only_short.is_empty());
}

#[test]
fn debug_prints_counts_never_secrets() {
    let s = Arc::new(Scrubber::new([
        ScrubSecret {
            label: "tok",
            value: TOKEN,
        },
        ScrubSecret {
            label: "esc",
            value: ESCAPY.as_bytes(),
        },
    ]));
    let mut stream = s.stream();
    let mut out = Vec::new();
    stream.push(b"prefix s3cr3t-tok", &mut out);
    let printed = format!(
        "{s:?} {stream:?} {:?}",
        ScrubSecret {
            label: "tok",
            value: TOKEN
        }
    );
    for leak in ["s3cr3t", "czNjcjN0", "7333637233", "p@ss", "cEBzcy93"] {
        assert!(!printed.contains(leak), "{printed}");
    }
    assert!(printed.contains("patterns"), "{printed}");
    assert!(printed.contains("secrets: 2"), "{printed}");
}

#[test]
fn empty_scrubber_passes_data_through() {
    for s in [
        Scrubber::new([]),
        Scrubber::new([ScrubSecret {
            label: "none",
            value: b"",
        }]),
    ] {
        assert!(s.is_empty());
        let input = b"any \xff bytes";
        assert_eq!(s.scrub(input), (input.to_vec(), 0));
        assert_eq!(s.scrub_str("t\u{e9}xt"), ("t\u{e9}xt".to_owned(), 0));
        assert_eq!(s.find(input), None);
        let s = Arc::new(s);
        let mut stream = s.stream();
        let mut out = Vec::new();
        stream.push(b"abc", &mut out);
        assert_eq!(out, b"abc");
        stream.push(b"def", &mut out);
        stream.finish(&mut out);
        assert_eq!(out, b"abcdef");
        assert_eq!(stream.hits(), 0);
    }
}

#[test]
fn carry_stays_below_the_longest_pattern() {
    let s = Arc::new(Scrubber::new([
        ScrubSecret {
            label: "tok",
            value: TOKEN,
        },
        ScrubSecret {
            label: "esc",
            value: ESCAPY.as_bytes(),
        },
    ]));
    let longest = [TOKEN, ESCAPY.as_bytes()]
        .iter()
        .flat_map(|v| ALL_VARIANTS.iter().filter_map(|variant| variant.encode(v)))
        .map(|p| p.len())
        .max()
        .unwrap();
    let reach = s.decoder.as_ref().map_or(0, |d| d.reach());
    assert!(reach > longest);
    assert_eq!(s.window, reach - 1);
    // A long body of near misses: every byte could start a match.
    let body: Vec<u8> = b"s3cr3t-token-valu"
        .iter()
        .copied()
        .cycle()
        .take(1 << 18)
        .collect();
    for size in [1usize, 7, 4096, 65536] {
        let mut stream = s.stream();
        let mut out = Vec::new();
        let mut pushed = 0;
        for chunk in body.chunks(size) {
            stream.push(chunk, &mut out);
            pushed += chunk.len();
            assert!(stream.carry.len() <= s.window);
            assert!(stream.carry.capacity() <= 2 * s.window);
            assert_eq!(out.len() + stream.carry.len(), pushed);
        }
        stream.finish(&mut out);
        assert_eq!(out, body);
    }
}

#[test]
fn stream_starts_over_after_finish() {
    let s = Arc::new(one("tok", TOKEN));
    let mut stream = s.stream();
    let mut out = Vec::new();
    stream.push(b"one s3cr3t-tok", &mut out);
    stream.finish(&mut out);
    stream.push(b"en-value two ", &mut out);
    stream.push(TOKEN, &mut out);
    stream.finish(&mut out);
    assert_eq!(out, b"one s3cr3t-token-value two [REDACTED:tok]");
    assert_eq!(stream.hits(), 1);
}

#[test]
fn failed_matcher_fails_closed() {
    let s = Arc::new(Scrubber {
        matcher: Matcher::Failed,
        decoder: None,
        labels: Vec::new(),
        markers: Vec::new(),
        pattern_label: Vec::new(),
        window: 0,
        secrets: 1,
        build: Build {
            sources: Vec::new(),
            variants: Vec::new(),
            choice: Choice::Auto,
            decode: true,
        },
    });
    assert!(!s.is_empty());
    assert_eq!(s.scrub(b"anything"), (b"[REDACTED:scrubber]".to_vec(), 1));
    assert_eq!(s.scrub(b""), (Vec::new(), 0));
    assert_eq!(s.scrub_str("x"), ("[REDACTED:scrubber]".to_owned(), 1));
    assert_eq!(s.find(b"x"), Some("scrubber"));
    assert_eq!(
        stream_in_chunks(&s, b"anything", &[3]),
        (b"[REDACTED:scrubber]".to_vec(), 1)
    );
}

#[test]
fn many_secrets_use_the_automaton_and_still_redact() {
    let values: Vec<String> = (0..64)
        .map(|i| format!("sk-live-{i:04}/secret+value"))
        .collect();
    let s = Arc::new(Scrubber::new(values.iter().enumerate().map(|(i, v)| {
        ScrubSecret {
            label: if i % 2 == 0 { "even" } else { "odd" },
            value: v.as_bytes(),
        }
    })));
    assert!(matches!(s.matcher, Matcher::Ready(Engine::Automaton(_))));
    let input = format!("a {} b {} c", values[7], STANDARD.encode(&values[10]));
    let expected = b"a [REDACTED:odd] b [REDACTED:even] c";
    assert_eq!(scrub(&s, input.as_bytes()), expected);
    assert_eq!(stream_in_chunks(&s, input.as_bytes(), &[5]).0, expected);
    assert_eq!(s.find(input.as_bytes()), Some("odd"));
}

#[test]
fn a_team_sized_set_uses_the_anchored_engine_and_still_redacts() {
    // Shared heads and tails of up to the anchor length: anchors collide.
    let values: Vec<String> = (0..600)
        .map(|i| format!("sk-live-{i:04}-secret-value/tail+"))
        .collect();
    let s = Arc::new(Scrubber::new(values.iter().enumerate().map(|(i, v)| {
        ScrubSecret {
            label: if i % 2 == 0 { "even" } else { "odd" },
            value: v.as_bytes(),
        }
    })));
    assert!(matches!(s.matcher, Matcher::Ready(Engine::Anchored(_))));
    let input = format!(
        "a {} b {} c {} d",
        values[7],
        STANDARD.encode(&values[10]),
        &values[599][1..]
    );
    let expected = b"a [REDACTED:odd] b [REDACTED:even] c k-live-0599-secret-value/tail+ d";
    assert_eq!(scrub(&s, input.as_bytes()), expected);
    assert_eq!(stream_in_chunks(&s, input.as_bytes(), &[5]).0, expected);
    assert_eq!(s.find(input.as_bytes()), Some("odd"));
    assert_eq!(s.find(&input.as_bytes()[input.len() - 40..]), None);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_few_secrets_use_the_packed_engine() {
    let s = Scrubber::new([
        ScrubSecret {
            label: "tok",
            value: TOKEN,
        },
        ScrubSecret {
            label: "esc",
            value: ESCAPY.as_bytes(),
        },
    ]);
    assert!(matches!(s.matcher, Matcher::Ready(Engine::Packed(_))));
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn scrubber_is_send_and_sync() {
    assert_send_sync::<Scrubber>();
    assert_send_sync::<Arc<Scrubber>>();
    assert_send_sync::<ScrubStream>();
}

/// Secrets as (label, value) pairs.
type Secrets = Vec<(String, Vec<u8>)>;

/// What brute-force scrubbing produced.
struct Reference {
    out: Vec<u8>,
    /// Replaced input spans, in order.
    spans: Vec<(usize, usize)>,
    /// The deduplicated pattern table.
    patterns: Vec<Vec<u8>>,
}

/// Leftmost-longest replacement by brute force, over the same deduplicated
/// pattern table; returns the output and the replaced spans.
fn reference(secrets: &[(String, Vec<u8>)], input: &[u8]) -> Reference {
    let mut patterns: Vec<(Vec<u8>, &str)> = Vec::new();
    for (label, value) in secrets {
        for v in ALL_VARIANTS {
            if let Some(p) = v.encode(value)
                && !patterns.iter().any(|(q, _)| *q == *p)
            {
                patterns.push((p.to_vec(), label));
            }
        }
    }
    let mut out = Vec::new();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < input.len() {
        let best = patterns
            .iter()
            .filter(|(p, _)| input[i..].starts_with(p))
            .max_by_key(|(p, _)| p.len());
        match best {
            Some((p, label)) => {
                out.extend_from_slice(format!("[REDACTED:{label}]").as_bytes());
                spans.push((i, i + p.len()));
                i += p.len();
            }
            None => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    Reference {
        out,
        spans,
        patterns: patterns.into_iter().map(|(p, _)| p).collect(),
    }
}

fn secret_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => prop::sample::select(b"ab/+=%\"\\~".to_vec()),
        1 => any::<u8>(),
    ]
}

fn case() -> impl Strategy<Value = (Secrets, Vec<u8>, Vec<usize>)> {
    let secrets = prop::collection::vec(prop::collection::vec(secret_byte(), 1..24), 1..5)
        .prop_map(|values| {
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("s{}", i % 3), v))
                .collect::<Vec<_>>()
        });
    // Segments: filler, or (secret, variant, kept length) embedding a
    // possibly truncated variant to create near misses.
    let segments = prop::collection::vec(
        (
            any::<bool>(),
            any::<usize>(),
            any::<usize>(),
            any::<u8>(),
            prop::collection::vec(secret_byte(), 0..6),
        ),
        0..16,
    );
    let chunks = prop_oneof![
        Just(vec![1usize]),
        prop::collection::vec(1usize..48, 1..12),
        prop::collection::vec(1usize..4096, 1..4),
    ];
    (secrets, segments, chunks).prop_map(|(secrets, segments, chunks)| {
        let mut text = Vec::new();
        for (embed, s, v, cut, filler) in segments {
            if embed {
                let (_, value) = &secrets[s % secrets.len()];
                if let Some(p) = ALL_VARIANTS[v % ALL_VARIANTS.len()].encode(value) {
                    // Mostly whole, sometimes cut short by a few bytes.
                    let keep = p
                        .len()
                        .saturating_sub(usize::from(cut % 8).saturating_sub(4));
                    text.extend_from_slice(&p[..keep]);
                }
            }
            text.extend_from_slice(&filler);
        }
        (secrets, text, chunks)
    })
}

proptest! {
    #[test]
    fn any_chunking_equals_one_shot_and_the_reference((secrets, text, chunks) in case()) {
        // The exact engine alone: the decoder finds more than the reference.
        let s = Arc::new(Scrubber::build_decoding(
            secrets.iter().map(|(label, value)| ScrubSecret { label, value }),
            1,
            ALL_VARIANTS,
            Choice::Auto,
            false,
        ));
        let Reference { out: expected, spans, patterns } = reference(&secrets, &text);
        let (once, hits) = s.scrub(&text);
        prop_assert_eq!(&once, &expected);
        prop_assert_eq!(hits, spans.len() as u64);
        let (streamed, stream_hits) = stream_in_chunks(&s, &text, &chunks);
        prop_assert_eq!(&streamed, &expected);
        prop_assert_eq!(stream_hits, hits);
        prop_assert_eq!(&stream_recorded(&s, &text, &chunks).out, &expected);
        // The automaton engine must agree with the packed one exactly.
        let automaton = Arc::new(Scrubber::build_decoding(
            secrets.iter().map(|(label, value)| ScrubSecret { label, value }),
            1,
            ALL_VARIANTS,
            Choice::Automaton,
            false,
        ));
        prop_assert!(matches!(automaton.matcher, Matcher::Ready(Engine::Automaton(_))));
        prop_assert_eq!(&automaton.scrub(&text).0, &expected);
        prop_assert_eq!(&stream_in_chunks(&automaton, &text, &chunks).0, &expected);
        // So must the anchored engine, with anchors long and short (short ones
        // make many patterns share an anchor).
        for anchor_len in [1, 3, ANCHOR_LEN] {
            let anchored = Arc::new(Scrubber::build_decoding(
                secrets.iter().map(|(label, value)| ScrubSecret { label, value }),
                1,
                ALL_VARIANTS,
                Choice::Anchored(anchor_len),
                false,
            ));
            prop_assert!(matches!(anchored.matcher, Matcher::Ready(Engine::Anchored(_))));
            prop_assert_eq!(&anchored.scrub(&text), &(expected.clone(), hits));
            prop_assert_eq!(&stream_in_chunks(&anchored, &text, &chunks).0, &expected);
            prop_assert_eq!(
                anchored.find(&text),
                automaton.find(&text),
                "anchor length {}", anchor_len
            );
        }
        // No occurrence of any pattern survives whole.
        for p in &patterns {
            for j in 0..text.len() {
                if text[j..].starts_with(p) {
                    prop_assert!(spans.iter().any(|&(a, b)| a < j + p.len() && j < b));
                }
            }
        }
        if let Ok(text) = std::str::from_utf8(&text)
            && secrets.iter().all(|(_, v)| std::str::from_utf8(v).is_ok())
        {
            let (out, str_hits) = s.scrub_str(text);
            prop_assert_eq!(out.as_bytes(), &expected[..]);
            prop_assert_eq!(str_hits, hits);
        }
    }

    #[test]
    fn aligned_core_appears_in_any_surrounding_base64(
        secret in prop::collection::vec(any::<u8>(), 7..40),
        prefix in prop::collection::vec(any::<u8>(), 0..10),
        suffix in prop::collection::vec(any::<u8>(), 0..10),
    ) {
        let k = u8::try_from(prefix.len() % 3).unwrap();
        let raw = [&prefix[..], &secret, &suffix].concat();
        for (engine, variant) in [
            (&STANDARD, Variant::Base64StdAligned(k)),
            (&URL_SAFE_NO_PAD, Variant::Base64UrlAligned(k)),
        ] {
            if let Some(core) = variant.encode(&secret) {
                prop_assert!(core.len() >= ALIGNED_MIN_CORE_CHARS);
                prop_assert!(contains(engine.encode(&raw).as_bytes(), &core));
            }
        }
        // With 9 or more bytes every alignment has a core.
        if secret.len() >= 9 {
            prop_assert!(Variant::Base64StdAligned(k).encode(&secret).is_some());
        }
    }
}

// ---- Decoding: a secret found however it is escaped (issue 12, holes 3 and 4).

/// Percent-encodes every byte outside `keep` (and outside ASCII alphanumerics).
fn percent_keeping(secret: &[u8], keep: &[u8], upper: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in secret {
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

fn form_encoded(secret: &[u8]) -> Vec<u8> {
    url::form_urlencoded::byte_serialize(secret)
        .collect::<String>()
        .into_bytes()
}

fn json_text(secret: &str) -> String {
    let q = serde_json::to_string(secret).unwrap();
    q[1..q.len() - 1].to_owned()
}

/// Every character as `\uXXXX` (surrogate pairs for astral ones).
fn json_all_unicode(secret: &str, upper: bool) -> Vec<u8> {
    let mut out = String::new();
    let mut units = [0u16; 2];
    for c in secret.chars() {
        for u in c.encode_utf16(&mut units).iter() {
            if upper {
                out.push_str(&format!("\\u{u:04X}"));
            } else {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out.into_bytes()
}

fn html_named(secret: &str) -> Vec<u8> {
    let mut out = String::new();
    for c in secret.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

fn html_numeric(secret: &str, hex: bool) -> Vec<u8> {
    let mut out = String::new();
    for c in secret.chars() {
        if hex {
            out.push_str(&format!("&#x{:X};", u32::from(c)));
        } else {
            out.push_str(&format!("&#{};", u32::from(c)));
        }
    }
    out.into_bytes()
}

/// MIME base64 of `prefix + secret + suffix`, wrapped at 76 columns.
fn mime_base64(raw: &[u8], crlf: bool) -> Vec<u8> {
    let b64 = STANDARD.encode(raw);
    let sep = if crlf { "\r\n" } else { "\n" };
    b64.as_bytes()
        .chunks(76)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect::<Vec<_>>()
        .join(sep)
        .into_bytes()
}

/// Every encoder of the property test: name and encoding of a UTF-8 secret.
/// An encoder of the property test: its name and the function.
type Encoder = (&'static str, fn(&str) -> Vec<u8>);

fn encoders() -> Vec<Encoder> {
    vec![
        ("exact", |s| s.as_bytes().to_vec()),
        ("form", |s| form_encoded(s.as_bytes())),
        ("python_quote", |s| {
            percent_keeping(s.as_bytes(), b"_.-~/", true)
        }),
        ("js_encode_uri", |s| {
            percent_keeping(s.as_bytes(), b";,/?:@&=+$-_.!~*'()#", true)
        }),
        ("js_encode_uri_component", |s| {
            percent_keeping(s.as_bytes(), b"-_.!~*'()", true)
        }),
        ("percent_lower", |s| {
            percent_keeping(s.as_bytes(), b"-_.~", false)
        }),
        ("percent_every_byte", |s| {
            s.bytes()
                .flat_map(|b| format!("%{b:02X}").into_bytes())
                .collect()
        }),
        ("json", |s| json_text(s).into_bytes()),
        ("json_go", |s| {
            json_text(s)
                .replace('&', "\\u0026")
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .into_bytes()
        }),
        ("json_php", |s| {
            let mut out = Variant::JsonUnicode
                .encode(s.as_bytes())
                .map_or_else(|| s.as_bytes().to_vec(), |v| v.to_vec());
            out = String::from_utf8(out)
                .unwrap()
                .replace('/', "\\/")
                .into_bytes();
            out
        }),
        ("json_all_unicode", |s| json_all_unicode(s, false)),
        ("json_all_unicode_upper", |s| json_all_unicode(s, true)),
        ("html_named", |s| html_named(s)),
        ("html_decimal", |s| html_numeric(s, false)),
        ("html_hex", |s| html_numeric(s, true)),
        ("mime_base64_crlf", |s| mime_base64(s.as_bytes(), true)),
        ("mime_base64_lf", |s| mime_base64(s.as_bytes(), false)),
    ]
}

/// A secret with every kind of reserved character, and a non-ASCII one.
const NASTY: &str = "p@ss w0rd~/?&=+#%41<\"'>\\é€😀";

#[test]
fn every_encoder_of_the_issue_is_redacted_whole() {
    let s = Arc::new(one("k", NASTY.as_bytes()));
    for (name, encode) in encoders() {
        let encoded = encode(NASTY);
        let input = [&b"{\"q\":\"x="[..], &encoded, b"&y=1\"}"].concat();
        let (out, hits) = s.scrub(&input);
        assert!(hits >= 1, "{name}");
        assert!(
            !contains(&out, &encoded),
            "{name}: {}",
            String::from_utf8_lossy(&out)
        );
        assert!(contains(&out, b"[REDACTED:k]"), "{name}");
        assert_eq!(s.find(&input), Some("k"), "{name}");
        assert_eq!(s.find(&out), None, "{name}");
        // Byte-exact: only the encoded secret is replaced.
        if !name.starts_with("mime") {
            assert_eq!(out, b"{\"q\":\"x=[REDACTED:k]&y=1\"}", "{name}");
        }
        for size in [1usize, 3, 17] {
            assert_eq!(
                stream_in_chunks(&s, &input, &[size]).0,
                out,
                "{name} {size}"
            );
        }
    }
}

#[test]
fn known_answers_for_the_holes_of_issue_12() {
    let s = one("tok", b"a b~c/d=e&f<g>h");
    let cases: &[&[u8]] = &[
        // Form encoding: `~` as %7E, space as `+`.
        b"a+b%7Ec%2Fd%3De%26f%3Cg%3Eh",
        // Python quote(): `/` kept.
        b"a%20b~c/d%3De%26f%3Cg%3Eh",
        // encodeURI: `/`, `=`, `&` kept.
        b"a%20b~c/d=e&f%3Cg%3Eh",
        // Go's JSON escapes.
        b"a b~c/d=e\\u0026f\\u003cg\\u003eh",
        // HTML, named, decimal, hex, mixed.
        b"a b~c/d=e&amp;f&lt;g&gt;h",
        b"a&#32;b&#126;c&#47;d&#61;e&#38;f&#60;g&#62;h",
        b"a&#x20;b&#x7e;c&#X2F;d&#x3D;e&#x26;f&#x3c;g&#x3E;h",
        b"a+b&#126;c\\/d%3de\\u0026f&lt;g\\u003Eh",
    ];
    for &case in cases {
        let input = [&b"<"[..], case, b">"].concat();
        assert_eq!(
            scrub(&s, &input),
            b"<[REDACTED:tok]>",
            "{}",
            String::from_utf8_lossy(case)
        );
    }
    // Fully \u-escaped, with a surrogate pair.
    let s = one("emoji", "key\u{1f600}value".as_bytes());
    let input = b"\\u006b\\u0065\\u0079\\uD83D\\uDE00\\u0076\\u0061\\u006c\\u0075\\u0065";
    assert_eq!(scrub(&s, input), b"[REDACTED:emoji]");
}

#[test]
fn mime_base64_wrapped_at_76_columns_is_redacted_at_every_alignment() {
    let secret = b"sk_live_0123456789abcdef0123456789abcdef";
    let s = Arc::new(one("b64", secret));
    for prefix_len in 0..80usize {
        for crlf in [false, true] {
            let mut raw: Vec<u8> = (0..prefix_len).map(|i| (i * 37) as u8).collect();
            raw.extend_from_slice(secret);
            raw.extend_from_slice(&[0xf0, 0x0f, 0x55]);
            let blob = mime_base64(&raw, crlf);
            let (out, hits) = s.scrub(&blob);
            assert!(hits >= 1, "prefix {prefix_len} crlf {crlf}");
            assert_eq!(s.find(&out), None, "prefix {prefix_len} crlf {crlf}");
            assert_eq!(stream_in_chunks(&s, &blob, &[7]).0, out);
        }
    }
}

#[test]
fn a_trigger_byte_just_before_the_secret_does_not_hide_it() {
    // `%` followed by the hex-looking head of the secret reads as an escape
    // from the `%`; the walk from the secret's own start still finds it.
    let s = one("hex", b"ab12/cd=ef");
    for input in [&b"%ab12/cd%3Def"[..], b"&ab12/cd%3Def", b"\\ab12/cd%3Def"] {
        let out = scrub(&s, input);
        assert_eq!(s.find(&out), None, "{}", String::from_utf8_lossy(input));
        assert!(contains(&out, b"[REDACTED:hex]"));
    }
}

#[test]
fn leak_detector_refuses_quoted_and_unicode_escaped_secrets() {
    let d = Scrubber::leak_detector([ScrubSecret {
        label: "c",
        value: b"abc/def+ghi=",
    }]);
    for input in [
        &b"GET /x?q=abc/def%2Bghi%3D"[..],
        b"{\"v\":\"\\u0061\\u0062\\u0063\\u002f\\u0064\\u0065\\u0066\\u002b\\u0067\\u0068\\u0069\\u003d\"}",
        b"v=abc%2fdef%2bghi%3d",
        b"<a href=\"?t=abc&#x2F;def&#43;ghi&equals;\">",
        b"{\"v\":\"abc\\/def+ghi=\"}",
    ] {
        assert_eq!(d.find(input), Some("c"), "{}", String::from_utf8_lossy(input));
    }
    assert_eq!(d.find(b"abc/def ghi="), None);
    assert_eq!(d.find(b"abc%2Fdef%2Bghi%3E"), None);
}

#[test]
fn plain_text_with_escapes_but_no_secret_passes_unchanged() {
    let s = Arc::new(one("tok", NASTY.as_bytes()));
    let input = "a%20b \\u0041 &amp; &#x41; + line\r\nnext\n%zz &bogus; \\q %".as_bytes();
    assert_eq!(s.scrub(input), (input.to_vec(), 0));
    assert_eq!(stream_in_chunks(&s, input, &[1]).0, input);
}

#[test]
fn renderings_are_matched_exactly_and_keep_the_secrets() {
    let base = one("cred", b"secret value");
    // A rendering the decoder cannot derive: a lossily decoded non-UTF-8 value.
    let s = base.with_renderings([ScrubSecret {
        label: "cred",
        value: "x\u{fffd}y".as_bytes(),
    }]);
    assert_eq!(scrub(&s, "<x\u{fffd}y>".as_bytes()), b"<[REDACTED:cred]>");
    assert_eq!(scrub(&s, b"<secret+value>"), b"<[REDACTED:cred]>");
    assert_eq!(
        scrub(&base, "<x\u{fffd}y>".as_bytes()),
        "<x\u{fffd}y>".as_bytes()
    );
    // A rendering under a new label, however short, exact only.
    let s = base.with_renderings([ScrubSecret {
        label: "cred.token",
        value: b"t0k",
    }]);
    assert_eq!(scrub(&s, b"t0k t%30k"), b"[REDACTED:cred.token] t%30k");
    assert_eq!(s.secrets, base.secrets);
}

/// A secret for the property tests: printable ASCII (all reserved
/// characters) and now and then a non-ASCII character.
fn secret_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            8 => (0x20u8..0x7f).prop_map(char::from),
            1 => prop::sample::select(vec!['é', '€', 'ß', '\u{1f600}', '\u{a0}']),
        ],
        8..32,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn filler() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => 0x20u8..0x7f,
            1 => prop::sample::select(b"%&\\+;#\r\n".to_vec()),
        ],
        0..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_supported_form_survives_any_chunking(
        secret in secret_text(),
        which in any::<prop::sample::Index>(),
        prefix in filler(),
        suffix in filler(),
        chunks in prop::collection::vec(1usize..40, 1..6),
        b64_pad in 0usize..3,
    ) {
        let s = Arc::new(one("k", secret.as_bytes()));
        let all = encoders();
        let (name, encode) = all[which.index(all.len())];
        let is_mime = name.starts_with("mime");
        let encoded = if is_mime {
            // Inside a longer blob, at each alignment.
            let raw = [&vec![b'x'; b64_pad][..], secret.as_bytes(), b"!?"].concat();
            mime_base64(&raw, name.ends_with("crlf"))
        } else {
            encode(&secret)
        };
        let input = [&prefix[..], &encoded, &suffix].concat();
        let (once, hits) = s.scrub(&input);
        prop_assert!(hits >= 1, "{}", name);
        let (streamed, stream_hits) = stream_in_chunks(&s, &input, &chunks);
        prop_assert_eq!(&streamed, &once);
        prop_assert_eq!(stream_hits, hits);
        // Independent of the detector: the encoded bytes do not survive.
        if !is_mime {
            prop_assert!(!contains(&once, &encoded), "{}", name);
        }
        // No form the detector knows survives.
        prop_assert_eq!(s.find(&once), None, "{}", name);
    }

    #[test]
    fn bytes_without_the_secret_pass_unchanged(
        secret in secret_text(),
        text in prop::collection::vec(
            prop_oneof![
                3 => 0x20u8..0x7f,
                1 => prop::sample::select(b"%&\\+;#\r\nVWXYZ".to_vec()),
            ],
            0..200,
        ),
        chunks in prop::collection::vec(1usize..40, 1..6),
    ) {
        // Nothing in the text can spell a secret byte: no byte of it, no hex
        // digit (`%XX`, `&#x..;`), no letter of an escape or entity name.
        let text: Vec<u8> = text
            .into_iter()
            .filter(|b| {
                let in_secret = secret.as_bytes().contains(b);
                let spells = b.is_ascii_alphanumeric() && !matches!(b, b'V'..=b'Z')
                    || *b == b'+' && secret.contains(' ');
                !in_secret && !spells
            })
            .collect();
        let s = Arc::new(one("k", secret.as_bytes()));
        prop_assert_eq!(s.scrub(&text), (text.clone(), 0));
        prop_assert_eq!(&stream_in_chunks(&s, &text, &chunks).0, &text);
        prop_assert_eq!(s.find(&text), None);
    }
}

#[test]
fn every_escape_fits_the_hold_back_bound() {
    use super::decode::{MAX_ESCAPE_PER_BYTE, NAMED_ENTITIES};
    for (name, _) in NAMED_ENTITIES {
        assert!(
            name.len() + 2 <= MAX_ESCAPE_PER_BYTE,
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    // The longest numeric forms of a one-byte character.
    for longest in ["&#0000126;", "&#x00007E;"] {
        assert_eq!(longest.len(), MAX_ESCAPE_PER_BYTE);
        assert_eq!(
            scrub(&one("t", b"~~~~"), format!("~~~{longest}").as_bytes()),
            b"[REDACTED:t]"
        );
    }
    for too_long in ["&#00000126;", "&#x000007E;", "&VerticalLine;"] {
        let input = format!("||{too_long}");
        assert_eq!(scrub(&one("t", b"||~"), input.as_bytes()), input.as_bytes());
    }
}
