//! Secret scrubbing for everything that flows to an agent, and secret
//! detection in what an agent sends (SPEC §7, §8).
//!
//! A [`Scrubber`] is built once from a set of secrets. For each secret it
//! derives one pattern per [`Variant`] (the raw bytes and the encodings a
//! secret commonly travels in), deduplicates them and compiles them into one
//! multi-pattern searcher (Teddy for small sets, an Aho-Corasick automaton
//! otherwise) with leftmost-longest semantics. Every match is replaced by
//! `[REDACTED:<label>]`.
//!
//! Invariants:
//! - Every occurrence of any pattern in the input overlaps a replaced span:
//!   no pattern survives scrubbing whole.
//! - [`ScrubStream`] output for any chunking equals one-shot
//!   [`Scrubber::scrub`] of the concatenation, and the stream holds back at
//!   most `longest pattern - 1` bytes.
//! - Neither type prints secret-derived bytes in its `Debug` output.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, Match, MatchKind, PatternID, packed};
use base64::Engine as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::{Zeroize, Zeroizing};

/// Leak blocking considers only secrets of at least this many bytes (SPEC §7).
pub const LEAK_MIN_SECRET_LEN: usize = 8;

/// An in-base64 alignment variant is used only when its fixed core has at
/// least this many characters (SPEC §7): shorter cores match random base64.
pub const ALIGNED_MIN_CORE_CHARS: usize = 8;

/// Label reported when the matcher could not be built; see [`Scrubber`].
const FAILED_LABEL: &str = "scrubber";

/// One secret to scrub.
///
/// `label` is what the marker shows (`[REDACTED:<label>]`, e.g. `slack` or
/// `gmail.refresh_token`); `value` is the secret's bytes. Empty values are
/// ignored. `Debug` shows the label only, never the value.
#[derive(Clone, Copy)]
pub struct ScrubSecret<'a> {
    /// Shown in the marker; names the secret, never contains it.
    pub label: &'a str,
    /// The secret bytes; never printed.
    pub value: &'a [u8],
}

impl fmt::Debug for ScrubSecret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrubSecret")
            .field("label", &self.label)
            .field("value", &"[redacted]")
            .finish()
    }
}

/// An encoding of a secret that is matched.
///
/// Variants are data: [`ALL_VARIANTS`] is the table pattern generation walks,
/// and [`Variant::encode`] turns one variant and one secret into at most one
/// pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The raw bytes.
    Exact,
    /// Base64, standard alphabet, padded.
    Base64Std,
    /// Base64, standard alphabet, no padding.
    Base64StdUnpadded,
    /// Base64, URL-safe alphabet, padded.
    Base64Url,
    /// Base64, URL-safe alphabet, no padding.
    Base64UrlUnpadded,
    /// Every byte outside RFC 3986 unreserved (`A-Za-z0-9-._~`) as `%XX`, upper-case hex.
    PercentUpper,
    /// Every byte outside RFC 3986 unreserved as `%xx`, lower-case hex.
    PercentLower,
    /// JSON string content exactly as `serde_json` writes it (no quotes); UTF-8 secrets only.
    JsonEscaped,
    /// As [`Variant::JsonEscaped`] with `/` written as `\/`.
    JsonEscapedSlash,
    /// JSON string content with `"` and `\` escaped and every char outside
    /// printable ASCII (`' '..='~'`) as `\uxxxx` (lower-case hex, UTF-16
    /// surrogate pairs for astral chars); UTF-8 secrets only.
    JsonUnicode,
    /// Hex, lower case.
    HexLower,
    /// Hex, upper case.
    HexUpper,
    /// The characters of the standard-alphabet base64 of a longer string that
    /// depend only on the secret, when the secret starts at byte offset `k`
    /// (mod 3) of that string. Only `k` in `0..=2` is meaningful.
    Base64StdAligned(u8),
    /// As [`Variant::Base64StdAligned`] with the URL-safe alphabet.
    Base64UrlAligned(u8),
}

/// Every variant, including the three alignments for both base64 alphabets.
/// [`Scrubber::new`] and [`Scrubber::leak_detector`] derive patterns from this table.
pub const ALL_VARIANTS: &[Variant] = &[
    Variant::Exact,
    Variant::Base64Std,
    Variant::Base64StdUnpadded,
    Variant::Base64Url,
    Variant::Base64UrlUnpadded,
    Variant::PercentUpper,
    Variant::PercentLower,
    Variant::JsonEscaped,
    Variant::JsonEscapedSlash,
    Variant::JsonUnicode,
    Variant::HexLower,
    Variant::HexUpper,
    Variant::Base64StdAligned(0),
    Variant::Base64StdAligned(1),
    Variant::Base64StdAligned(2),
    Variant::Base64UrlAligned(0),
    Variant::Base64UrlAligned(1),
    Variant::Base64UrlAligned(2),
];

impl Variant {
    /// The pattern this variant derives from `secret`, or `None` when the
    /// variant does not apply: an empty secret, a JSON variant of bytes that
    /// are not UTF-8, an alignment core shorter than
    /// [`ALIGNED_MIN_CORE_CHARS`] (or an alignment outside `0..=2`), or a
    /// non-exact variant whose encoding equals the raw bytes (it adds nothing).
    /// The result holds secret-derived bytes and is zeroed on drop.
    pub fn encode(self, secret: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if secret.is_empty() {
            return None;
        }
        let encoded = match self {
            Variant::Exact => return Some(Zeroizing::new(secret.to_vec())),
            Variant::Base64Std => base64_whole(&STANDARD, secret),
            Variant::Base64StdUnpadded => base64_whole(&STANDARD_NO_PAD, secret),
            Variant::Base64Url => base64_whole(&URL_SAFE, secret),
            Variant::Base64UrlUnpadded => base64_whole(&URL_SAFE_NO_PAD, secret),
            Variant::PercentUpper => percent(secret, HEX_UPPER),
            Variant::PercentLower => percent(secret, HEX_LOWER),
            Variant::JsonEscaped => json_escaped(secret)?,
            Variant::JsonEscapedSlash => json_escaped_slash(secret)?,
            Variant::JsonUnicode => json_unicode(secret)?,
            Variant::HexLower => Zeroizing::new(hex::encode(secret).into_bytes()),
            Variant::HexUpper => Zeroizing::new(hex::encode_upper(secret).into_bytes()),
            Variant::Base64StdAligned(k) => base64_aligned(&STANDARD_NO_PAD, secret, k)?,
            Variant::Base64UrlAligned(k) => base64_aligned(&URL_SAFE_NO_PAD, secret, k)?,
        };
        (encoded.as_slice() != secret).then_some(encoded)
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn base64_whole(engine: &GeneralPurpose, secret: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(engine.encode(secret).into_bytes())
}

/// The base64 characters fully determined by `secret` when it sits at byte
/// offset `k` of a 3-byte group. Character `i` covers bits `6i..6i+6`; the
/// secret covers bits `8k..8(k+n)`, so the characters wholly inside are
/// `ceil(8k/6)..floor(8(k+n)/6)`, whatever bytes surround the secret.
fn base64_aligned(engine: &GeneralPurpose, secret: &[u8], k: u8) -> Option<Zeroizing<Vec<u8>>> {
    if k > 2 {
        return None;
    }
    let k = usize::from(k);
    let mut shifted = Zeroizing::new(vec![0u8; k]);
    shifted.extend_from_slice(secret);
    let encoded = Zeroizing::new(engine.encode(shifted.as_slice()).into_bytes());
    let start = (8 * k).div_ceil(6);
    let end = 8 * (k + secret.len()) / 6;
    let core = encoded.get(start..end)?;
    (core.len() >= ALIGNED_MIN_CORE_CHARS).then(|| Zeroizing::new(core.to_vec()))
}

fn percent(secret: &[u8], digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(secret.len() * 3));
    for &b in secret {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'%',
                digits[usize::from(b >> 4)],
                digits[usize::from(b & 0x0f)],
            ]);
        }
    }
    out
}

fn json_escaped(secret: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(secret).ok()?;
    let quoted = Zeroizing::new(serde_json::to_string(text).ok()?);
    let inner = quoted.get(1..quoted.len().checked_sub(1)?)?;
    Some(Zeroizing::new(inner.as_bytes().to_vec()))
}

fn json_escaped_slash(secret: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let plain = json_escaped(secret)?;
    let mut out = Zeroizing::new(Vec::with_capacity(plain.len() + 8));
    for &b in plain.iter() {
        // serde_json never escapes `/`, so every `/` in its output is a literal one.
        if b == b'/' {
            out.extend_from_slice(b"\\/");
        } else {
            out.push(b);
        }
    }
    Some(out)
}

fn json_unicode(secret: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(secret).ok()?;
    let mut out = Zeroizing::new(Vec::with_capacity(secret.len() * 2));
    let mut units = [0u16; 2];
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            ' '..='~' => out.push(c as u8),
            _ => {
                for &unit in c.encode_utf16(&mut units).iter() {
                    out.extend_from_slice(b"\\u");
                    for shift in [12u16, 8, 4, 0] {
                        out.push(HEX_LOWER[usize::from((unit >> shift) & 0x0f)]);
                    }
                }
            }
        }
    }
    units.zeroize();
    Some(out)
}

/// From this many patterns on (about 120 secrets with all their variants) only
/// the patterns' tails are indexed ([`Anchored`]): with a full automaton a
/// team of 10,000 credentials peaked at 195 MiB while it was built, with an
/// automaton over the tails at 101 MiB (docs/benchmarks.md).
const ANCHORED_MIN_PATTERNS: usize = 2048;

/// Bytes of a pattern's tail that [`Anchored`] indexes (the whole pattern
/// when shorter; at most 8). Secrets end in their random part, so tails rarely collide,
/// and text that holds a tail without its secret costs one comparison.
const ANCHOR_LEN: usize = 8;

/// Which engine [`Engine::build`] compiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    /// Packed when it can be built, else anchored for large sets, else the automaton.
    Auto,
    /// The full automaton whatever the size (tests compare the engines).
    #[cfg(test)]
    Automaton,
    /// The anchored engine with anchors of this many bytes, whatever the size
    /// (tests compare the engines).
    #[cfg(test)]
    Anchored(usize),
}

/// A compiled multi-pattern searcher with leftmost-longest semantics.
///
/// All engines report exactly the same matches; they differ only in speed
/// and memory. The packed (Teddy, SIMD) searcher handles up to 64 patterns
/// (the usual per-request set) at several GB/s; the automaton takes any
/// number at a few hundred MB/s; the anchored engine takes large sets in a
/// fraction of the automaton's memory.
enum Engine {
    /// Teddy; built only when the CPU and the pattern count allow it.
    Packed(packed::Searcher),
    /// Aho-Corasick automaton, for any number of patterns.
    Automaton(AhoCorasick),
    /// A hash table of the patterns' tails, each hit verified.
    Anchored(Box<Anchored>),
}

impl Engine {
    /// Compiles `patterns` (non-empty, deduplicated); `None` only when even the
    /// automaton cannot be built.
    fn build(patterns: &[&[u8]], choice: Choice) -> Option<Engine> {
        #[cfg(test)]
        match choice {
            Choice::Auto => {}
            Choice::Automaton => return Self::automaton(patterns),
            Choice::Anchored(anchor_len) => {
                return Anchored::build(patterns, anchor_len)
                    .map(|a| Engine::Anchored(Box::new(a)));
            }
        }
        if choice == Choice::Auto
            && let Some(searcher) = packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostLongest)
                .builder()
                .extend(patterns)
                .build()
        {
            return Some(Engine::Packed(searcher));
        }
        if patterns.len() >= ANCHORED_MIN_PATTERNS
            && let Some(a) = Anchored::build(patterns, ANCHOR_LEN)
        {
            return Some(Engine::Anchored(Box::new(a)));
        }
        Self::automaton(patterns)
    }

    fn automaton(patterns: &[&[u8]]) -> Option<Engine> {
        // No prefilter: its byte-frequency guesses assume prose, and on random
        // or base64 bodies it ran 4x slower than the bare automaton.
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .prefilter(false)
            .build(patterns)
            .ok()
            .map(Engine::Automaton)
    }

    /// Non-overlapping leftmost-longest matches in `haystack`, in order.
    fn find_iter<'e, 'h>(&'e self, haystack: &'h [u8]) -> Matches<'e, 'h> {
        match self {
            Engine::Packed(s) => Matches::Packed(s.find_iter(haystack)),
            Engine::Automaton(ac) => Matches::Automaton(ac.find_iter(haystack)),
            Engine::Anchored(a) => Matches::Anchored {
                engine: a,
                haystack,
                at: 0,
            },
        }
    }

    fn find(&self, haystack: &[u8]) -> Option<Match> {
        match self {
            Engine::Packed(s) => s.find(haystack),
            Engine::Automaton(ac) => ac.find(haystack),
            Engine::Anchored(a) => a.find_at(haystack, 0),
        }
    }
}

/// The engine for large pattern sets: each pattern's last [`ANCHOR_LEN`]
/// bytes (its anchor; the whole pattern when shorter) in a hash table, and
/// for each anchor the patterns ending in it. A search looks up the bytes
/// ending at each position of the input (one lookup per anchor length in use;
/// usually one, as team secrets and their encodings are longer than an
/// anchor) and compares the patterns of an anchor found whole. No automaton
/// is built: memory is the patterns' bytes, 16 bytes per table slot and two
/// `u32` per pattern. Patterns sharing a tail share an anchor and are all
/// compared at each of its hits: slower then, never wrong.
///
/// Invariant: reports exactly the leftmost-longest, non-overlapping matches
/// the full automaton reports (tests compare them on random pattern sets).
struct Anchored {
    /// The anchor lengths in use, ascending.
    lens: Vec<usize>,
    /// Anchor key → its group of patterns.
    table: AnchorTable,
    /// The patterns of group `g` are `by_anchor[first[g]..first[g + 1]]`.
    first: Vec<u32>,
    by_anchor: Vec<u32>,
    /// Every pattern's bytes, concatenated: pattern `i` ends at `ends[i]` and
    /// starts where pattern `i - 1` ends (at 0 for the first).
    bytes: Zeroizing<Vec<u8>>,
    ends: Vec<u32>,
    /// The longest pattern's length.
    longest: usize,
}

/// The table key of an anchor (1 to 8 bytes): its bytes as a number, with its
/// length in the top byte when shorter than 8. An 8-byte anchor whose last
/// byte equals a shorter anchor's length may share that one's key: the two
/// then share a group, and comparing whole patterns tells them apart.
#[inline]
fn anchor_key(anchor: &[u8]) -> u64 {
    if let Ok(b) = <[u8; 8]>::try_from(anchor) {
        return u64::from_le_bytes(b);
    }
    let n = anchor.len().min(7);
    let mut b = [0u8; 8];
    b[..n].copy_from_slice(&anchor[..n]);
    u64::from_le_bytes(b) | ((n as u64) << 56)
}

/// One slot of an [`AnchorTable`].
#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    /// [`FREE`] when the slot is unused.
    group: u32,
}

const FREE: u32 = u32::MAX;

/// Anchor keys to group numbers: open addressing with linear probing, at most
/// 5/8 full, so a lookup ends at a free slot. Keys are secret bytes: zeroed
/// on drop.
struct AnchorTable {
    slots: Vec<Slot>,
    /// 64 minus log2 of the slot count: the hash's top bits pick the home slot.
    shift: u32,
}

impl AnchorTable {
    /// A table for up to `n` keys; `None` when that cannot be sized.
    fn with_capacity(n: usize) -> Option<Self> {
        let size = (n.checked_mul(8)? / 5 + 1)
            .checked_next_power_of_two()?
            .max(8);
        Some(Self {
            slots: vec![
                Slot {
                    key: 0,
                    group: FREE
                };
                size
            ],
            shift: 64 - size.trailing_zeros(),
        })
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        // Fibonacci hashing: the product's top bits.
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let slot = self.slots[i];
            if slot.group == FREE {
                return None;
            }
            if slot.key == key {
                return Some(slot.group);
            }
            i = (i + 1) & mask;
        }
    }

    /// The group of `key`; `new` (stored) when the key was absent. The caller
    /// inserts at most the capacity it asked for.
    fn get_or_insert(&mut self, key: u64, new: u32) -> u32 {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let slot = &mut self.slots[i];
            if slot.group == FREE {
                *slot = Slot { key, group: new };
                return new;
            }
            if slot.key == key {
                return slot.group;
            }
            i = (i + 1) & mask;
        }
    }
}

impl Drop for AnchorTable {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            slot.key.zeroize();
        }
    }
}

impl Anchored {
    /// `None` for sets it cannot index (over `u32` sizes, an empty pattern,
    /// anchors over 8 bytes): the caller falls back to the automaton.
    fn build(patterns: &[&[u8]], anchor_len: usize) -> Option<Anchored> {
        if patterns.len() >= PatternID::LIMIT
            || !(1..=8).contains(&anchor_len)
            || patterns.iter().any(|p| p.is_empty())
        {
            return None;
        }
        let total: usize = patterns.iter().map(|p| p.len()).sum();
        u32::try_from(total).ok()?;
        u32::try_from(patterns.len()).ok().filter(|&n| n < FREE)?;
        let mut table = AnchorTable::with_capacity(patterns.len())?;
        let mut lens: Vec<usize> = Vec::new();
        let mut groups = 0u32;
        let mut group_of = Vec::with_capacity(patterns.len());
        for p in patterns {
            let tail = &p[p.len().saturating_sub(anchor_len)..];
            if !lens.contains(&tail.len()) {
                lens.push(tail.len());
            }
            let g = table.get_or_insert(anchor_key(tail), groups);
            if g == groups {
                groups += 1;
            }
            group_of.push(g);
        }
        lens.sort_unstable();
        // Group pattern ids by anchor (a counting sort). Sizes fit `u32`: checked above.
        let mut first = vec![0u32; groups as usize + 1];
        for &g in &group_of {
            first[g as usize + 1] += 1;
        }
        for i in 1..first.len() {
            first[i] += first[i - 1];
        }
        let mut next = first.clone();
        let mut by_anchor = vec![0u32; patterns.len()];
        for (pattern, &g) in group_of.iter().enumerate() {
            by_anchor[next[g as usize] as usize] = pattern as u32;
            next[g as usize] += 1;
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(total));
        let mut ends = Vec::with_capacity(patterns.len());
        for p in patterns {
            bytes.extend_from_slice(p);
            ends.push(bytes.len() as u32);
        }
        Some(Anchored {
            lens,
            table,
            first,
            by_anchor,
            bytes,
            ends,
            longest: patterns.iter().map(|p| p.len()).max().unwrap_or(0),
        })
    }

    fn pattern(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// The leftmost-longest match starting at or after `from`.
    ///
    /// Positions are visited in order of the anchors' end. A pattern ending
    /// at `e` starts at or after `e - longest`, so once the end is more than
    /// `longest` bytes past the best start found, nothing later can start at
    /// or before it.
    fn find_at(&self, haystack: &[u8], from: usize) -> Option<Match> {
        // (start, end, pattern) of the best match so far.
        let mut best: Option<(usize, usize, usize)> = None;
        for end in from + 1..=haystack.len() {
            if best.is_some_and(|(start, _, _)| end > start + self.longest) {
                break;
            }
            for &len in &self.lens {
                let Some(at) = end.checked_sub(len).filter(|&at| at >= from) else {
                    // Longer anchors do not fit either.
                    break;
                };
                let Some(g) = self.table.get(anchor_key(&haystack[at..end])) else {
                    continue;
                };
                let g = g as usize;
                for &pattern in &self.by_anchor[self.first[g] as usize..self.first[g + 1] as usize]
                {
                    let pattern = pattern as usize;
                    let p = self.pattern(pattern);
                    let Some(start) = end.checked_sub(p.len()) else {
                        continue;
                    };
                    if start < from || haystack.get(start..end) != Some(p) {
                        continue;
                    }
                    let better = best.is_none_or(|(s, e, _)| start < s || (start == s && end > e));
                    if better {
                        best = Some((start, end, pattern));
                    }
                }
            }
        }
        // Pattern ids are below `PatternID::LIMIT` (checked when built).
        best.map(|(start, end, pattern)| Match::new(PatternID::new_unchecked(pattern), start..end))
    }
}

/// Iterator over an [`Engine`]'s matches; an enum, so no allocation per search.
enum Matches<'e, 'h> {
    Packed(packed::FindIter<'e, 'h>),
    Automaton(aho_corasick::FindIter<'e, 'h>),
    Anchored {
        engine: &'e Anchored,
        haystack: &'h [u8],
        /// Where the next match may start.
        at: usize,
    },
}

impl Iterator for Matches<'_, '_> {
    type Item = Match;

    fn next(&mut self) -> Option<Match> {
        match self {
            Matches::Packed(it) => it.next(),
            Matches::Automaton(it) => it.next(),
            Matches::Anchored {
                engine,
                haystack,
                at,
            } => {
                let m = engine.find_at(haystack, *at)?;
                // Patterns are never empty; `max` keeps the search moving regardless.
                *at = m.end().max(*at + 1);
                Some(m)
            }
        }
    }
}

/// The compiled matcher, or the fail-closed state when compiling failed.
enum Matcher {
    /// No secrets: data passes through unchanged.
    Empty,
    /// The searcher over every deduplicated pattern.
    Ready(Engine),
    /// Building the searcher failed (only for absurdly large pattern sets).
    /// Fail closed: any non-empty input becomes one `[REDACTED:scrubber]`.
    Failed,
}

/// A compiled set of secrets and their variants.
///
/// Invariants: immutable after construction, `Send + Sync`, cheap to share in
/// an [`Arc`]. Pattern bytes are kept only inside the compiled searcher
/// (which cannot be zeroed; the build copies are). `Debug` prints counts
/// only. If the searcher cannot be built the scrubber fails closed: every
/// non-empty input is replaced by a single `[REDACTED:scrubber]` and
/// [`Scrubber::find`] reports `scrubber`.
pub struct Scrubber {
    matcher: Matcher,
    /// Distinct labels, in first-seen order.
    labels: Vec<Box<str>>,
    /// `[REDACTED:<label>]` for each entry of `labels`.
    markers: Vec<Box<str>>,
    /// Pattern id → index into `labels`.
    pattern_label: Vec<usize>,
    /// Longest pattern length - 1: the most a stream ever holds back.
    window: usize,
    /// Number of (non-empty, long-enough) secrets compiled in.
    secrets: usize,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field("secrets", &self.secrets)
            .field("patterns", &self.pattern_label.len())
            .field(
                "engine",
                &match self.matcher {
                    Matcher::Empty => "none",
                    Matcher::Ready(Engine::Packed(_)) => "packed",
                    Matcher::Ready(Engine::Automaton(_)) => "automaton",
                    Matcher::Ready(Engine::Anchored(_)) => "anchored",
                    Matcher::Failed => "failed",
                },
            )
            .finish()
    }
}

impl Scrubber {
    /// A scrubber for `secrets` with every variant of [`ALL_VARIANTS`].
    /// Empty secrets are ignored. When two secrets derive the same pattern the
    /// first secret's label wins.
    pub fn new<'a>(secrets: impl IntoIterator<Item = ScrubSecret<'a>>) -> Scrubber {
        Self::build(secrets, 1, ALL_VARIANTS, Choice::Auto)
    }

    /// A detector for outbound leak blocking: like [`Scrubber::new`] but only
    /// secrets of at least [`LEAK_MIN_SECRET_LEN`] bytes are considered.
    pub fn leak_detector<'a>(secrets: impl IntoIterator<Item = ScrubSecret<'a>>) -> Scrubber {
        Self::build(secrets, LEAK_MIN_SECRET_LEN, ALL_VARIANTS, Choice::Auto)
    }

    fn build<'a>(
        secrets: impl IntoIterator<Item = ScrubSecret<'a>>,
        min_len: usize,
        variants: &[Variant],
        choice: Choice,
    ) -> Scrubber {
        let mut labels: Vec<Box<str>> = Vec::new();
        let mut patterns: Vec<(Zeroizing<Vec<u8>>, usize)> = Vec::new();
        let mut count = 0;
        for secret in secrets {
            if secret.value.is_empty() || secret.value.len() < min_len {
                continue;
            }
            count += 1;
            let label = match labels.iter().position(|l| **l == *secret.label) {
                Some(i) => i,
                None => {
                    labels.push(secret.label.into());
                    labels.len() - 1
                }
            };
            for variant in variants {
                if let Some(pattern) = variant.encode(secret.value) {
                    patterns.push((pattern, label));
                }
            }
        }

        // Keep the first occurrence of each pattern: the first label wins.
        let mut seen: HashSet<&[u8]> = HashSet::with_capacity(patterns.len());
        let mut kept: Vec<&[u8]> = Vec::with_capacity(patterns.len());
        let mut pattern_label: Vec<usize> = Vec::with_capacity(patterns.len());
        for (pattern, label) in &patterns {
            if seen.insert(pattern.as_slice()) {
                kept.push(pattern.as_slice());
                pattern_label.push(*label);
            }
        }
        let markers = labels
            .iter()
            .map(|l| format!("[REDACTED:{l}]").into_boxed_str())
            .collect();

        let window = kept
            .iter()
            .map(|p| p.len())
            .max()
            .unwrap_or(0)
            .saturating_sub(1);
        let matcher = if kept.is_empty() {
            Matcher::Empty
        } else {
            Engine::build(&kept, choice).map_or(Matcher::Failed, Matcher::Ready)
        };
        Scrubber {
            matcher,
            labels,
            markers,
            pattern_label,
            window,
            secrets: count,
        }
    }

    /// True when no secret was compiled in: scrubbing is the identity.
    pub fn is_empty(&self) -> bool {
        matches!(self.matcher, Matcher::Empty)
    }

    /// Scrubs a whole input at once; returns the output and the number of
    /// replacements. Matches are leftmost-longest and non-overlapping; every
    /// occurrence of a pattern overlaps some replaced span.
    pub fn scrub(&self, input: &[u8]) -> (Vec<u8>, u64) {
        let mut out = Vec::with_capacity(input.len());
        let hits = self.scrub_into(input, &mut out);
        (out, hits)
    }

    /// [`Scrubber::scrub`] into a sink: the unchanged parts of `input` reach it
    /// as spans, so a caller holding `input` as shared bytes passes them on
    /// without a copy. Returns the number of replacements.
    pub fn scrub_into<S: ScrubSink + ?Sized>(&self, input: &[u8], out: &mut S) -> u64 {
        match &self.matcher {
            Matcher::Empty => {
                out.span(input, 0..input.len());
                0
            }
            Matcher::Failed if input.is_empty() => 0,
            Matcher::Failed => {
                out.bytes(FAILED_MARKER.as_bytes());
                1
            }
            Matcher::Ready(engine) => {
                let mut hits = 0;
                self.scrub_decided(engine, input, Some((input, 0)), 0, out, &mut hits);
                hits
            }
        }
    }

    /// Scrubs a string (header values, JSON strings); the output is valid
    /// UTF-8. Matches are the same as [`Scrubber::scrub`]'s; a match that cuts
    /// through a multi-byte character (only possible for secrets that are not
    /// themselves valid UTF-8) is widened to the whole characters it touches,
    /// so slightly more than the match may be replaced, never less.
    pub fn scrub_str(&self, input: &str) -> (String, u64) {
        let engine = match &self.matcher {
            Matcher::Empty => return (input.to_owned(), 0),
            Matcher::Failed if input.is_empty() => return (String::new(), 0),
            Matcher::Failed => return (FAILED_MARKER.to_owned(), 1),
            Matcher::Ready(engine) => engine,
        };
        let mut out = String::with_capacity(input.len());
        let mut hits = 0;
        let mut last = 0;
        for m in engine.find_iter(input.as_bytes()) {
            let start = input.floor_char_boundary(m.start()).max(last);
            let end = input.ceil_char_boundary(m.end()).max(last);
            out.push_str(&input[last..start]);
            out.push_str(self.marker(m.pattern().as_usize()));
            hits += 1;
            last = end;
        }
        out.push_str(&input[last..]);
        (out, hits)
    }

    /// The label of the leftmost secret found in `input`, for leak blocking;
    /// `None` when the input holds no pattern.
    pub fn find(&self, input: &[u8]) -> Option<&str> {
        match &self.matcher {
            Matcher::Empty => None,
            Matcher::Failed => (!input.is_empty()).then_some(FAILED_LABEL),
            Matcher::Ready(engine) => {
                let m = engine.find(input)?;
                self.label(m.pattern().as_usize())
            }
        }
    }

    /// A streaming scrubber sharing this one; see [`ScrubStream`].
    pub fn stream(self: &Arc<Self>) -> ScrubStream {
        ScrubStream {
            carry: Vec::with_capacity(self.window.saturating_mul(2)),
            scrubber: Arc::clone(self),
            hits: 0,
            saw_input: false,
        }
    }

    fn label(&self, pattern: usize) -> Option<&str> {
        let index = *self.pattern_label.get(pattern)?;
        self.labels.get(index).map(|l| &**l)
    }

    fn marker(&self, pattern: usize) -> &str {
        self.pattern_label
            .get(pattern)
            .and_then(|&i| self.markers.get(i))
            .map_or(FAILED_MARKER, |m| &**m)
    }

    /// Writes the scrubbed form of every part of `data` that is already
    /// decided, given that at most `held` more bytes of context could change
    /// a decision (`held` = `window` while streaming, 0 at the end), and
    /// returns how many bytes of `data` were consumed. The rest (at most
    /// `held` bytes) must be presented again, followed by later input.
    ///
    /// Why this is exact: a match starting at `s` with `s + held < len` is
    /// final, since every pattern starting at or before `s` fits in `data`, so
    /// no later byte can produce a match further left or a longer one at `s`.
    /// For the same reason no pattern starts anywhere in `last..len - held`
    /// once the final matches are taken, so those bytes pass through.
    /// Scrubs `data` up to where a match could still continue beyond it
    /// (`held` bytes from the end); returns how far it got. `chunk` is `Some`
    /// when `data` is `chunk[offset..]` of the chunk being pushed: unchanged
    /// parts then go to the sink as spans of it.
    fn scrub_decided<S: ScrubSink + ?Sized>(
        &self,
        engine: &Engine,
        data: &[u8],
        chunk: Option<(&[u8], usize)>,
        held: usize,
        out: &mut S,
        hits: &mut u64,
    ) -> usize {
        let plain = |out: &mut S, from: usize, to: usize| {
            if from < to {
                match chunk {
                    Some((c, offset)) => out.span(c, offset + from..offset + to),
                    None => out.bytes(&data[from..to]),
                }
            }
        };
        let safe = data.len().saturating_sub(held);
        let mut last = 0;
        for m in engine.find_iter(data) {
            if m.start() >= safe {
                break;
            }
            plain(out, last, m.start());
            out.bytes(self.marker(m.pattern().as_usize()).as_bytes());
            *hits += 1;
            last = m.end();
        }
        let done = last.max(safe);
        plain(out, last, done);
        done
    }
}

/// Where scrubbed output goes. Unchanged parts of the input being scrubbed
/// arrive as spans of it (by position), everything else (markers, held-back
/// bytes of an earlier chunk) as bytes; in call order, their concatenation is
/// the output.
pub trait ScrubSink {
    /// Output bytes from outside the current input.
    fn bytes(&mut self, bytes: &[u8]);
    /// `input[range]`, unchanged; `input` is the slice given to the call.
    fn span(&mut self, input: &[u8], range: Range<usize>);
}

impl ScrubSink for Vec<u8> {
    fn bytes(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn span(&mut self, input: &[u8], range: Range<usize>) {
        self.extend_from_slice(&input[range]);
    }
}

/// Marker written in fail-closed mode.
const FAILED_MARKER: &str = "[REDACTED:scrubber]";

/// Incremental scrubbing of a body that arrives in chunks of any size.
///
/// Invariants: the concatenated output of every [`ScrubStream::push`] and the
/// final [`ScrubStream::finish`] equals [`Scrubber::scrub`] of the
/// concatenated input, whatever the chunking; the stream holds back at most
/// `longest pattern - 1` bytes (memory is bounded whatever the body size);
/// held-back bytes are zeroed when the stream is dropped. `Debug` prints no
/// held-back bytes.
pub struct ScrubStream {
    scrubber: Arc<Scrubber>,
    /// Undecided tail of the input; never longer than `scrubber.window` between calls.
    carry: Vec<u8>,
    hits: u64,
    /// Fail-closed mode only: some non-empty input arrived since the last finish.
    saw_input: bool,
}

impl fmt::Debug for ScrubStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrubStream")
            .field("scrubber", &self.scrubber)
            .field("held_back", &self.carry.len())
            .field("hits", &self.hits)
            .finish()
    }
}

impl ScrubStream {
    /// Appends scrubbed output for everything that can be decided; holds back
    /// at most (longest pattern - 1) bytes. With an empty scrubber the chunk
    /// is appended unchanged and nothing is held back.
    pub fn push<S: ScrubSink + ?Sized>(&mut self, chunk: &[u8], out: &mut S) {
        let Self {
            scrubber,
            carry,
            hits,
            saw_input,
        } = self;
        let engine = match &scrubber.matcher {
            Matcher::Empty => {
                if !chunk.is_empty() {
                    out.span(chunk, 0..chunk.len());
                }
                return;
            }
            Matcher::Failed => {
                *saw_input |= !chunk.is_empty();
                return;
            }
            Matcher::Ready(engine) => engine,
        };
        let window = scrubber.window;
        let mut rest = chunk;
        // The seam: join the held-back tail with at most `window` new bytes, so
        // only that much is copied; the bulk of the chunk is searched in place.
        while !carry.is_empty() && !rest.is_empty() {
            let held = carry.len();
            let take = rest.len().min(window);
            carry.extend_from_slice(&rest[..take]);
            let done = scrubber.scrub_decided(engine, carry, None, window, out, hits);
            if done >= held {
                carry.clear();
                rest = &rest[done - held..];
            } else {
                carry.drain(..done);
                rest = &rest[take..];
            }
        }
        if !rest.is_empty() {
            let offset = chunk.len() - rest.len();
            let done =
                scrubber.scrub_decided(engine, rest, Some((chunk, offset)), window, out, hits);
            carry.extend_from_slice(&rest[done..]);
        }
    }

    /// Flushes the held-back tail, scrubbed. The stream is then empty and may
    /// start a new body.
    pub fn finish<S: ScrubSink + ?Sized>(&mut self, out: &mut S) {
        match &self.scrubber.matcher {
            Matcher::Empty => {}
            Matcher::Failed => {
                if self.saw_input {
                    out.bytes(FAILED_MARKER.as_bytes());
                    self.hits += 1;
                    self.saw_input = false;
                }
            }
            Matcher::Ready(engine) => {
                self.scrubber
                    .scrub_decided(engine, &self.carry, None, 0, out, &mut self.hits);
                self.carry.zeroize();
            }
        }
    }

    /// Replacements made so far by this stream.
    pub fn hits(&self) -> u64 {
        self.hits
    }
}

impl Drop for ScrubStream {
    fn drop(&mut self) {
        self.carry.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn stream_into<S: ScrubSink>(
        s: &Arc<Scrubber>,
        input: &[u8],
        sizes: &[usize],
        out: &mut S,
    ) -> u64 {
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
                        let mut raw: Vec<u8> =
                            (0..prefix_len).map(|i| i.wrapping_mul(77)).collect();
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
        assert_eq!(s.window, longest - 1);
        // A long body of near misses: every byte could start a match.
        let body: Vec<u8> = b"s3cr3t-token-valu"
            .iter()
            .copied()
            .cycle()
            .take(1 << 20)
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
            labels: Vec::new(),
            markers: Vec::new(),
            pattern_label: Vec::new(),
            window: 0,
            secrets: 1,
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
            let s = Arc::new(Scrubber::new(
                secrets.iter().map(|(label, value)| ScrubSecret { label, value }),
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
            let automaton = Arc::new(Scrubber::build(
                secrets.iter().map(|(label, value)| ScrubSecret { label, value }),
                1,
                ALL_VARIANTS,
                Choice::Automaton,
            ));
            prop_assert!(matches!(automaton.matcher, Matcher::Ready(Engine::Automaton(_))));
            prop_assert_eq!(&automaton.scrub(&text).0, &expected);
            prop_assert_eq!(&stream_in_chunks(&automaton, &text, &chunks).0, &expected);
            // So must the anchored engine, with anchors long and short (short ones
            // make many patterns share an anchor).
            for anchor_len in [1, 3, ANCHOR_LEN] {
                let anchored = Arc::new(Scrubber::build(
                    secrets.iter().map(|(label, value)| ScrubSecret { label, value }),
                    1,
                    ALL_VARIANTS,
                    Choice::Anchored(anchor_len),
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
}
