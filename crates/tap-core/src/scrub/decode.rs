//! [`Decoder`]: finding a secret however it is escaped, by decoding the input
//! at the secret's position and comparing the decoded bytes with the secret.
//!
//! The exact engine ([`super::engine`]) finds fixed byte strings: the raw
//! secret and its whole encodings. Encoders do not agree on what to escape
//! (form encoding writes `~` as `%7E` and space as `+`, Python's `quote()`
//! keeps `/`, JavaScript's `encodeURI` keeps `&=+/`, Go writes `&<>` as
//! `\u0026\u003c\u003e`, HTML escapers pick named, decimal or hex entities,
//! MIME wraps base64 at 76 columns), so no finite list of variants covers
//! them. The decoder instead walks the input from a candidate start, taking at
//! each position either the literal byte or the escape sequence that starts
//! there, decoded, and compares the result with the secret (and with its
//! base64 encodings). A walk that reaches the end of a secret having taken at
//! least one escape (or line break) is an occurrence of that secret.
//!
//! Escapes decoded (any mix of them, and literal bytes, in one occurrence):
//! - `%XX`, either case of hex (percent encoding, any subset of bytes);
//! - `+` as a space, only when some secret contains a space (form encoding);
//! - `\"` `\\` `\/` `\'` `\b` `\f` `\n` `\r` `\t` and `\uXXXX`, either case,
//!   with UTF-16 surrogate pairs (JSON, JavaScript);
//! - `&#DDD;` (1 to 7 digits), `&#xHHH;` (1 to 6 hex digits, `x` or `X`) and
//!   the named entities of [`NAMED_ENTITIES`] (the ASCII ones), `;` required;
//! - a line break (`\n` or `\r\n`) inside a secret's base64 encoding, after the
//!   first character and then at most once per 16 characters (MIME, PEM).
//!
//! Not decoded (stated limits): nested encodings (a percent-encoded JSON
//! escape such as `%5Cu0041`, or `%252F`); `%uXXXX`; `\xHH`, octal and `\u{..}`
//! escapes; named entities outside the table (`&eacute;`), entities without
//! `;`, numeric entities with more leading zeros than the digit limits; line
//! breaks inside hex or percent forms, or folded with indentation; base64 of
//! an already escaped secret; compressed data. The exact engine still finds
//! every fixed variant of [`super::Variant`].
//!
//! A walk only starts where it can reach an escape within [`Decoder::reach`]
//! bytes (found with `memchr`), so input without `%`, `\`, `&` (nor `+` when
//! a secret holds a space, nor a line break after a base64 character) is never
//! walked: plain traffic costs a few `memchr` scans.
//!
//! Invariant: whether an occurrence starts at `s`, and where it ends, depends
//! only on the input bytes from `s` to `s + reach` (walks never look back), so
//! streaming with a hold-back of `reach - 1` bytes finds exactly what one-shot
//! scrubbing finds.

use memchr::memchr3;
use zeroize::Zeroizing;

/// Pattern bytes a base64 line must hold between two line breaks (the first
/// break may come after one character: a secret may start at a line's end).
const MIN_LINE: u16 = 16;

/// The most input bytes one escape takes per decoded byte (`&#x00007E;`).
pub(super) const MAX_ESCAPE_PER_BYTE: usize = 10;

/// Look-ahead an escape may read beyond the bytes it decodes to (a surrogate
/// pair is 12 bytes).
const LOOKAHEAD: usize = 12;

/// Steps one walk may take before it gives up. Ordinary walks take a few
/// steps; only inputs built to make both readings of many escapes match a
/// secret's prefix come near. A walk that hits the limit fails closed: the
/// bytes it covered are reported as an occurrence.
const WALK_STEP_LIMIT: usize = 1 << 16;

/// Named character references decoded (HTML5 names of ASCII characters, as
/// escapers emit them). Case-sensitive, as in HTML. Each escape is at most
/// [`MAX_ESCAPE_PER_BYTE`] bytes long (the stream's hold-back depends on it;
/// a test checks it).
pub(super) const NAMED_ENTITIES: &[(&[u8], u8)] = &[
    (b"amp", b'&'),
    (b"AMP", b'&'),
    (b"lt", b'<'),
    (b"LT", b'<'),
    (b"gt", b'>'),
    (b"GT", b'>'),
    (b"quot", b'"'),
    (b"QUOT", b'"'),
    (b"apos", b'\''),
    (b"sol", b'/'),
    (b"bsol", b'\\'),
    (b"colon", b':'),
    (b"semi", b';'),
    (b"comma", b','),
    (b"period", b'.'),
    (b"excl", b'!'),
    (b"num", b'#'),
    (b"dollar", b'$'),
    (b"percnt", b'%'),
    (b"lpar", b'('),
    (b"rpar", b')'),
    (b"ast", b'*'),
    (b"midast", b'*'),
    (b"plus", b'+'),
    (b"equals", b'='),
    (b"quest", b'?'),
    (b"commat", b'@'),
    (b"lsqb", b'['),
    (b"lbrack", b'['),
    (b"rsqb", b']'),
    (b"rbrack", b']'),
    (b"Hat", b'^'),
    (b"lowbar", b'_'),
    (b"grave", b'`'),
    (b"lcub", b'{'),
    (b"lbrace", b'{'),
    (b"rcub", b'}'),
    (b"rbrace", b'}'),
    (b"verbar", b'|'),
    (b"vert", b'|'),
    (b"Tab", b'\t'),
    (b"NewLine", b'\n'),
];

/// Longest name in [`NAMED_ENTITIES`]: `&NewLine;` is 9 bytes, within
/// [`MAX_ESCAPE_PER_BYTE`] (longer names such as `&VerticalLine;` are left out
/// for that reason).
const MAX_ENTITY_NAME: usize = 7;

/// One pattern the decoder compares decoded input with.
struct WalkPattern {
    bytes: Zeroizing<Vec<u8>>,
    /// Index into the scrubber's labels.
    label: usize,
}

/// The decoding matcher: the secrets and their base64 encodings, sorted, and
/// what starts a walk. Immutable; `Send + Sync`.
pub(super) struct Decoder {
    /// Sorted by bytes, deduplicated (the first label wins).
    pats: Vec<WalkPattern>,
    /// `first[c]`: the range of `pats` starting with byte `c`.
    first: Box<[(u32, u32); 256]>,
    /// Some pattern contains a space: `+` decodes to a space.
    plus: bool,
    /// The most input bytes an occurrence (plus look-ahead) spans.
    reach: usize,
}

/// A decoded occurrence: `start..end` of the input, and the label index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) label: usize,
}

/// A walk in progress.
#[derive(Clone, Copy)]
struct State {
    pos: usize,
    lo: u32,
    hi: u32,
    /// Pattern bytes matched so far.
    k: u32,
    /// An escape or line break was taken.
    escaped: bool,
    /// Pattern bytes since the last line break.
    since_break: u16,
    /// The last step was a line break (an occurrence does not end with one).
    after_break: bool,
}

impl Decoder {
    /// `None` when there is nothing to walk for or the set is too large to index.
    pub(super) fn build(mut pats: Vec<(Zeroizing<Vec<u8>>, usize)>) -> Option<Decoder> {
        pats.retain(|(p, _)| !p.is_empty());
        if pats.is_empty() || u32::try_from(pats.len()).is_err() {
            return None;
        }
        // Stable: among equal patterns the first (its label) stays first.
        pats.sort_by(|a, b| a.0.cmp(&b.0));
        pats.dedup_by(|later, earlier| later.0 == earlier.0);
        let pats: Vec<WalkPattern> = pats
            .into_iter()
            .map(|(bytes, label)| WalkPattern { bytes, label })
            .collect();
        let mut first = Box::new([(0u32, 0u32); 256]);
        for c in 0..=255u8 {
            let lo = pats.partition_point(|p| p.bytes[0] < c);
            let hi = pats.partition_point(|p| p.bytes[0] <= c);
            // Fits: the length was checked above.
            first[usize::from(c)] = (lo as u32, hi as u32);
        }
        let plus = pats.iter().any(|p| p.bytes.contains(&b' '));
        let longest = pats.iter().map(|p| p.bytes.len()).max().unwrap_or(0);
        let breaks = 2 * (longest / usize::from(MIN_LINE) + 1);
        let reach = longest
            .saturating_mul(MAX_ESCAPE_PER_BYTE)
            .saturating_add(breaks + LOOKAHEAD);
        Some(Decoder {
            pats,
            first,
            plus,
            reach,
        })
    }

    /// The most input bytes one occurrence (with its look-ahead) spans: a
    /// stream holds back `reach - 1` bytes.
    pub(super) fn reach(&self) -> usize {
        self.reach
    }

    pub(super) fn patterns(&self) -> usize {
        self.pats.len()
    }

    /// The longest occurrence starting exactly at `s` (`None` when there is
    /// none). Literal-only walks are not reported: the exact engine finds those.
    fn walk(&self, data: &[u8], s: usize, stack: &mut Vec<State>) -> Option<Found> {
        let &c = data.get(s)?;
        if !is_trigger(c) && self.first[usize::from(c)].0 == self.first[usize::from(c)].1 {
            return None;
        }
        stack.clear();
        stack.push(State {
            pos: s,
            lo: 0,
            hi: self.pats.len() as u32,
            k: 0,
            escaped: false,
            since_break: MIN_LINE,
            after_break: false,
        });
        let mut best: Option<Found> = None;
        let mut steps = 0usize;
        let mut furthest = s + 1;
        while let Some(st) = stack.pop() {
            steps += 1;
            furthest = furthest.max(st.pos);
            if steps > WALK_STEP_LIMIT {
                // Fail closed: report everything the walk covered.
                let label = self.pats[st.lo as usize].label;
                return Some(Found {
                    start: s,
                    end: furthest.min(data.len()).max(s + 1),
                    label,
                });
            }
            let k = st.k as usize;
            let head = &self.pats[st.lo as usize];
            if st.escaped
                && !st.after_break
                && head.bytes.len() == k
                && best.is_none_or(|b| st.pos > b.end)
            {
                best = Some(Found {
                    start: s,
                    end: st.pos,
                    label: head.label,
                });
            }
            let Some(&c) = data.get(st.pos) else {
                continue;
            };
            // A line break inside base64 (pushed first: explored last).
            if k > 0 && st.since_break >= MIN_LINE && !st.after_break {
                let len = match (c, data.get(st.pos + 1)) {
                    (b'\n', _) => 1,
                    (b'\r', Some(b'\n')) => 2,
                    _ => 0,
                };
                if len > 0 {
                    stack.push(State {
                        pos: st.pos + len,
                        escaped: true,
                        since_break: 0,
                        after_break: true,
                        ..st
                    });
                }
            }
            // An escape, decoded.
            if let Some((len, bytes)) = self.escape(data, st.pos) {
                let mut range = Some((st.lo, st.hi));
                for (i, &b) in bytes.iter().enumerate() {
                    range = range.and_then(|(lo, hi)| self.narrow(lo, hi, k + i, b));
                }
                if let Some((lo, hi)) = range {
                    stack.push(State {
                        pos: st.pos + len,
                        lo,
                        hi,
                        k: st.k + bytes.len() as u32,
                        escaped: true,
                        since_break: st.since_break.saturating_add(bytes.len() as u16),
                        after_break: false,
                    });
                }
            }
            // The literal byte (explored first).
            if let Some((lo, hi)) = self.narrow(st.lo, st.hi, k, c) {
                stack.push(State {
                    pos: st.pos + 1,
                    lo,
                    hi,
                    k: st.k + 1,
                    escaped: st.escaped,
                    since_break: st.since_break.saturating_add(1),
                    after_break: false,
                });
            }
        }
        best
    }

    /// The sub-range of `lo..hi` (patterns sharing their first `k` bytes)
    /// whose byte `k` is `c`.
    #[inline]
    fn narrow(&self, lo: u32, hi: u32, k: usize, c: u8) -> Option<(u32, u32)> {
        if k == 0 {
            let (a, b) = self.first[usize::from(c)];
            return (a < b).then_some((a, b));
        }
        let slice = &self.pats[lo as usize..hi as usize];
        // A pattern of exactly `k` bytes sorts first in the range.
        let a = slice.partition_point(|p| p.bytes.len() <= k || p.bytes[k] < c);
        let b = slice.partition_point(|p| p.bytes.len() <= k || p.bytes[k] <= c);
        (a < b).then_some((lo + a as u32, lo + b as u32))
    }

    /// The escape starting at `pos`: its length in the input and the bytes it
    /// decodes to.
    fn escape(&self, data: &[u8], pos: usize) -> Option<(usize, Decoded)> {
        match *data.get(pos)? {
            b'%' => {
                let b = hex_value(data.get(pos + 1..pos + 3)?)?;
                Some((3, Decoded::byte(b as u8)))
            }
            b'+' if self.plus => Some((1, Decoded::byte(b' '))),
            b'\\' => json_escape(data, pos),
            b'&' => entity(data, pos),
            _ => None,
        }
    }

    /// A cursor finding occurrences left to right in `data`.
    pub(super) fn cursor(&self) -> Cursor<'_> {
        Cursor {
            decoder: self,
            next_escape: None,
            next_plus: None,
            next_break: None,
            stack: Vec::new(),
        }
    }
}

/// Bytes that may start an escape (`+` only counts when the decoder decodes it).
fn is_trigger(c: u8) -> bool {
    matches!(c, b'%' | b'\\' | b'&' | b'+')
}

/// Up to four decoded bytes (one UTF-8 character).
#[derive(Clone, Copy)]
struct Decoded {
    buf: [u8; 4],
    len: u8,
}

impl Decoded {
    fn byte(b: u8) -> Self {
        Decoded {
            buf: [b, 0, 0, 0],
            len: 1,
        }
    }

    fn char(c: char) -> Self {
        let mut buf = [0u8; 4];
        let len = c.encode_utf8(&mut buf).len() as u8;
        Decoded { buf, len }
    }

    fn iter(&self) -> std::slice::Iter<'_, u8> {
        self.buf[..usize::from(self.len)].iter()
    }

    fn len(&self) -> usize {
        usize::from(self.len)
    }
}

fn hex_digit(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

/// The value of a run of hex digits (all of `digits`).
fn hex_value(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0u32, |v, &d| Some(v * 16 + hex_digit(d)?))
}

fn json_escape(data: &[u8], pos: usize) -> Option<(usize, Decoded)> {
    let b = match *data.get(pos + 1)? {
        c @ (b'"' | b'\\' | b'/' | b'\'') => c,
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let unit = hex_value(data.get(pos + 2..pos + 6)?)?;
            if (0xD800..0xDC00).contains(&unit) {
                // A high surrogate counts only with its low half.
                if data.get(pos + 6..pos + 8)? != b"\\u" {
                    return None;
                }
                let low = hex_value(data.get(pos + 8..pos + 12)?)?;
                if !(0xDC00..0xE000).contains(&low) {
                    return None;
                }
                let c = char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?;
                return Some((12, Decoded::char(c)));
            }
            // Lone low surrogates are not characters: `from_u32` refuses them.
            return Some((6, Decoded::char(char::from_u32(unit)?)));
        }
        _ => return None,
    };
    Some((2, Decoded::byte(b)))
}

fn entity(data: &[u8], pos: usize) -> Option<(usize, Decoded)> {
    let rest = data.get(pos + 1..)?;
    if rest.first() == Some(&b'#') {
        let (digits_at, radix, max) = match rest.get(1) {
            Some(b'x' | b'X') => (2, 16, 6),
            _ => (1, 10, 7),
        };
        let digits = rest.get(digits_at..)?;
        let n = digits
            .iter()
            .take(max + 1)
            .take_while(|d| (**d as char).is_digit(radix))
            .count();
        if n == 0 || n > max || digits.get(n) != Some(&b';') {
            return None;
        }
        let v = digits[..n]
            .iter()
            .try_fold(0u32, |v, &d| Some(v * radix + (d as char).to_digit(radix)?))?;
        return Some((1 + digits_at + n + 1, Decoded::char(char::from_u32(v)?)));
    }
    let n = rest
        .iter()
        .take(MAX_ENTITY_NAME + 1)
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    if n == 0 || n > MAX_ENTITY_NAME || rest.get(n) != Some(&b';') {
        return None;
    }
    let name = &rest[..n];
    let &(_, b) = NAMED_ENTITIES.iter().find(|(e, _)| *e == name)?;
    Some((n + 2, Decoded::byte(b)))
}

fn is_base64_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_' | b'=')
}

/// Finds occurrences left to right; remembers where the next escape is, so a
/// search over a whole input scans it with `memchr` once.
pub(super) struct Cursor<'d> {
    decoder: &'d Decoder,
    /// Cached `(searched from, found at)` for `%`, `\`, `&`.
    next_escape: Option<(usize, Option<usize>)>,
    /// The same for `+` (only when the decoder decodes it).
    next_plus: Option<(usize, Option<usize>)>,
    /// The same for a line break after a base64 character.
    next_break: Option<(usize, Option<usize>)>,
    stack: Vec<State>,
}

/// The cached answer when still valid for `from`, else a new search.
fn cached(
    slot: &mut Option<(usize, Option<usize>)>,
    from: usize,
    search: impl FnOnce(usize) -> Option<usize>,
) -> Option<usize> {
    if let Some((searched, found)) = *slot
        && searched <= from
        && found.is_none_or(|f| f >= from)
    {
        return found;
    }
    let found = search(from);
    *slot = Some((from, found));
    found
}

impl Cursor<'_> {
    /// The first position at or after `from` where a walk could take an escape.
    fn next_trigger(&mut self, data: &[u8], from: usize) -> Option<usize> {
        let tail = |at: usize| data.get(at..).unwrap_or_default();
        let escape = cached(&mut self.next_escape, from, |at| {
            memchr3(b'%', b'\\', b'&', tail(at)).map(|i| at + i)
        });
        let plus = if self.decoder.plus {
            cached(&mut self.next_plus, from, |at| {
                memchr::memchr(b'+', tail(at)).map(|i| at + i)
            })
        } else {
            None
        };
        // One needle (the fastest scan): a `\r\n` break is found by its `\n`,
        // whose candidate starts cover those of the `\r` before it.
        let brk = cached(&mut self.next_break, from, |mut at| {
            while let Some(i) = memchr::memchr(b'\n', tail(at)) {
                let t = at + i;
                let before = match t.checked_sub(1).map(|i| data[i]) {
                    Some(b'\r') => t.checked_sub(2).map(|i| data[i]),
                    b => b,
                };
                if before.is_some_and(is_base64_char) {
                    return Some(t);
                }
                at = t + 1;
            }
            None
        });
        [escape, plus, brk].into_iter().flatten().min()
    }

    /// The leftmost occurrence starting in `from..=last` (longest at that
    /// start). Calls must come with non-decreasing `from`.
    pub(super) fn first(&mut self, data: &[u8], from: usize, last: usize) -> Option<Found> {
        let reach = self.decoder.reach;
        let last = last.min(data.len().saturating_sub(1));
        let mut s = from;
        while s <= last {
            let t = self.next_trigger(data, s)?;
            // A walk from `s` must take an escape, which starts before `s + reach`.
            if t >= s + reach {
                s = t + 1 - reach;
                continue;
            }
            if let Some(found) = self.decoder.walk(data, s, &mut self.stack) {
                return Some(found);
            }
            s += 1;
        }
        None
    }
}
