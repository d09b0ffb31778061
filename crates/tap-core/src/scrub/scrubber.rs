//! [`Scrubber`]: a compiled set of secrets and their variants, and one-shot
//! scrubbing and leak detection with it.

use std::collections::HashSet;
use std::fmt;

use zeroize::Zeroizing;

use super::engine::{Choice, Engine};
use super::sink::ScrubSink;
use super::variants::{ALL_VARIANTS, Variant};

/// Leak blocking considers only secrets of at least this many bytes (SPEC §7).
pub const LEAK_MIN_SECRET_LEN: usize = 8;

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

/// Marker written in fail-closed mode.
pub(super) const FAILED_MARKER: &str = "[REDACTED:scrubber]";

/// The compiled matcher, or the fail-closed state when compiling failed.
pub(super) enum Matcher {
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
///
/// [`Arc`]: std::sync::Arc
pub struct Scrubber {
    // pub(super): the stream reads `matcher` and `window`; tests build a
    // fail-closed scrubber field by field.
    pub(super) matcher: Matcher,
    /// Distinct labels, in first-seen order.
    pub(super) labels: Vec<Box<str>>,
    /// `[REDACTED:<label>]` for each entry of `labels`.
    pub(super) markers: Vec<Box<str>>,
    /// Pattern id → index into `labels`.
    pub(super) pattern_label: Vec<usize>,
    /// Longest pattern length - 1: the most a stream ever holds back.
    pub(super) window: usize,
    /// Number of (non-empty, long-enough) secrets compiled in.
    pub(super) secrets: usize,
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

    pub(super) fn build<'a>(
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
    pub(super) fn scrub_decided<S: ScrubSink + ?Sized>(
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
