//! [`Scrubber`]: a compiled set of secrets and their variants, and one-shot
//! scrubbing and leak detection with it.

use std::collections::HashSet;
use std::fmt;

use zeroize::Zeroizing;

use super::decode::{Cursor, Decoder, Found};
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
/// an [`Arc`]. Two matchers run side by side and their matches are merged
/// leftmost-longest: the exact engine (every fixed [`Variant`] of every
/// secret, and the extra renderings of [`Scrubber::with_renderings`]) and the
/// decoder (each secret and its base64 encodings however they are escaped:
/// percent, form, JSON, HTML, base64 line breaks; see the `decode` module for
/// what is and is not decoded). Secret bytes are kept in the sources (zeroed
/// on drop) and inside the compiled searcher (which cannot be zeroed; the
/// build copies are). `Debug` prints counts only. If the searcher cannot be
/// built the scrubber fails closed: every non-empty input is replaced by a
/// single `[REDACTED:scrubber]` and [`Scrubber::find`] reports `scrubber`.
///
/// [`Arc`]: std::sync::Arc
pub struct Scrubber {
    // pub(super): the stream reads `matcher` and `window`; tests build a
    // fail-closed scrubber field by field.
    pub(super) matcher: Matcher,
    /// The decoding matcher; `None` when disabled or nothing to decode.
    pub(super) decoder: Option<Decoder>,
    /// Distinct labels, in first-seen order.
    pub(super) labels: Vec<Box<str>>,
    /// `[REDACTED:<label>]` for each entry of `labels`.
    pub(super) markers: Vec<Box<str>>,
    /// Pattern id → index into `labels`.
    pub(super) pattern_label: Vec<usize>,
    /// Longest occurrence either matcher can find - 1: the most a stream
    /// ever holds back.
    pub(super) window: usize,
    /// Number of (non-empty, long-enough) secrets compiled in.
    pub(super) secrets: usize,
    /// What the scrubber was built from, to extend it with renderings.
    pub(super) build: Build,
}

/// One compiled-in byte string: a secret, or a rendering matched exactly.
#[derive(Clone)]
pub(super) struct Source {
    pub(super) label: usize,
    pub(super) value: Zeroizing<Vec<u8>>,
    /// Matched as these exact bytes only (no variant, no decoding).
    pub(super) exact_only: bool,
}

/// The inputs of a build, kept so [`Scrubber::with_renderings`] can rebuild.
#[derive(Clone)]
pub(super) struct Build {
    pub(super) sources: Vec<Source>,
    pub(super) variants: Vec<Variant>,
    pub(super) choice: Choice,
    pub(super) decode: bool,
}

/// A match of either matcher: `start..end` of the input and its label index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Hit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) label: usize,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field("secrets", &self.secrets)
            .field("patterns", &self.pattern_label.len())
            .field(
                "decoded_patterns",
                &self.decoder.as_ref().map_or(0, Decoder::patterns),
            )
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
    /// A scrubber for `secrets` with every variant of [`ALL_VARIANTS`], and
    /// the decoder finding each secret (and its base64 encodings) however it
    /// is escaped.
    /// Empty secrets are ignored. When two secrets derive the same pattern the
    /// first secret's label wins.
    pub fn new<'a>(secrets: impl IntoIterator<Item = ScrubSecret<'a>>) -> Scrubber {
        Self::build(secrets, 1, ALL_VARIANTS, Choice::Auto)
    }

    /// A detector for outbound leak blocking ([`Scrubber::find`]): like
    /// [`Scrubber::new`] (escaped forms included) but only
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
        Self::build_decoding(secrets, min_len, variants, choice, true)
    }

    /// As [`Scrubber::build`]; `decode: false` leaves the decoder out (tests
    /// compare the exact engine with a brute-force reference).
    pub(super) fn build_decoding<'a>(
        secrets: impl IntoIterator<Item = ScrubSecret<'a>>,
        min_len: usize,
        variants: &[Variant],
        choice: Choice,
        decode: bool,
    ) -> Scrubber {
        let mut labels: Vec<Box<str>> = Vec::new();
        let mut sources = Vec::new();
        for secret in secrets {
            if secret.value.is_empty() || secret.value.len() < min_len {
                continue;
            }
            sources.push(Source {
                label: label_index(&mut labels, secret.label),
                value: Zeroizing::new(secret.value.to_vec()),
                exact_only: false,
            });
        }
        Self::compile(
            labels,
            Build {
                sources,
                variants: variants.to_vec(),
                choice,
                decode,
            },
        )
    }

    /// A scrubber matching everything this one matches and, in addition, each
    /// of `renderings` as exact bytes (no variants, no decoding, whatever its
    /// length): the byte strings the proxy itself produced for one request
    /// from a secret, such as the form-encoded value it put in a query
    /// parameter or a token it minted. Empty renderings are ignored. A
    /// rendering equal to a pattern already compiled in keeps the earlier label.
    ///
    /// Builds a new matcher: meant for the per-request scrubber, costing about
    /// as much as building a one-credential scrubber.
    pub fn with_renderings<'a>(
        &self,
        renderings: impl IntoIterator<Item = ScrubSecret<'a>>,
    ) -> Scrubber {
        let mut labels = self.labels.clone();
        let mut build = self.build.clone();
        for r in renderings {
            if r.value.is_empty() {
                continue;
            }
            build.sources.push(Source {
                label: label_index(&mut labels, r.label),
                value: Zeroizing::new(r.value.to_vec()),
                exact_only: true,
            });
        }
        Self::compile(labels, build)
    }

    /// A scrubber matching everything this one matches and, in addition,
    /// each of `secrets` with every variant and the decoder, as
    /// [`Scrubber::new`] would: for secrets that exist for one request only,
    /// such as an access token minted for it. Empty secrets are ignored.
    pub fn with_secrets<'a>(&self, secrets: impl IntoIterator<Item = ScrubSecret<'a>>) -> Scrubber {
        let mut labels = self.labels.clone();
        let mut build = self.build.clone();
        for s in secrets {
            if s.value.is_empty() {
                continue;
            }
            build.sources.push(Source {
                label: label_index(&mut labels, s.label),
                value: Zeroizing::new(s.value.to_vec()),
                exact_only: false,
            });
        }
        Self::compile(labels, build)
    }

    fn compile(labels: Vec<Box<str>>, build: Build) -> Scrubber {
        let mut patterns: Vec<(Zeroizing<Vec<u8>>, usize)> = Vec::new();
        let mut walked: Vec<(Zeroizing<Vec<u8>>, usize)> = Vec::new();
        let mut count = 0;
        for source in &build.sources {
            if source.exact_only {
                patterns.push((source.value.clone(), source.label));
                continue;
            }
            count += 1;
            for variant in &build.variants {
                if let Some(pattern) = variant.encode(&source.value) {
                    if build.decode && variant.is_decoded_form() {
                        walked.push((pattern.clone(), source.label));
                    }
                    patterns.push((pattern, source.label));
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

        let decoder = Decoder::build(walked);
        let longest = kept.iter().map(|p| p.len()).max().unwrap_or(0);
        let window = longest
            .max(decoder.as_ref().map_or(0, Decoder::reach))
            .saturating_sub(1);
        let matcher = if kept.is_empty() {
            Matcher::Empty
        } else {
            Engine::build(&kept, build.choice).map_or(Matcher::Failed, Matcher::Ready)
        };
        Scrubber {
            matcher,
            decoder,
            labels,
            markers,
            pattern_label,
            window,
            secrets: count,
            build,
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
        for m in self.hits(engine, input.as_bytes()) {
            let start = input.floor_char_boundary(m.start).max(last);
            let end = input.ceil_char_boundary(m.end).max(last);
            out.push_str(&input[last..start]);
            out.push_str(self.marker_of(m.label));
            hits += 1;
            last = end;
        }
        out.push_str(&input[last..]);
        (out, hits)
    }

    /// The label of the leftmost secret found in `input` in any form either
    /// matcher finds, for leak blocking; `None` when the input holds none.
    pub fn find(&self, input: &[u8]) -> Option<&str> {
        match &self.matcher {
            Matcher::Empty => None,
            Matcher::Failed => (!input.is_empty()).then_some(FAILED_LABEL),
            Matcher::Ready(engine) => {
                let m = self.hits(engine, input).next()?;
                self.labels.get(m.label).map(|l| &**l)
            }
        }
    }

    fn marker_of(&self, label: usize) -> &str {
        self.markers.get(label).map_or(FAILED_MARKER, |m| &**m)
    }

    /// Matches of both matchers in `data`, merged: leftmost first, the longest
    /// at one start (the exact engine's on a tie), non-overlapping.
    pub(super) fn hits<'s, 'h>(&'s self, engine: &'s Engine, data: &'h [u8]) -> Hits<'s, 'h> {
        Hits {
            scrubber: self,
            engine,
            data,
            pos: 0,
            exact: None,
            cursor: self.decoder.as_ref().map(Decoder::cursor),
        }
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
        for m in self.hits(engine, data) {
            if m.start >= safe {
                break;
            }
            plain(out, last, m.start);
            out.bytes(self.marker_of(m.label).as_bytes());
            *hits += 1;
            last = m.end;
        }
        let done = last.max(safe);
        plain(out, last, done);
        done
    }
}

/// The index of `label` in `labels`, appended when new.
fn label_index(labels: &mut Vec<Box<str>>, label: &str) -> usize {
    match labels.iter().position(|l| **l == *label) {
        Some(i) => i,
        None => {
            labels.push(label.into());
            labels.len() - 1
        }
    }
}

/// Iterator over [`Scrubber::hits`].
pub(super) struct Hits<'s, 'h> {
    scrubber: &'s Scrubber,
    engine: &'s Engine,
    data: &'h [u8],
    /// Where the next match may start.
    pos: usize,
    /// The exact engine's next match, once searched (`Some(None)`: none left).
    exact: Option<Option<aho_corasick::Match>>,
    cursor: Option<Cursor<'s>>,
}

impl Iterator for Hits<'_, '_> {
    type Item = Hit;

    fn next(&mut self) -> Option<Hit> {
        if self.pos > self.data.len() {
            return None;
        }
        let exact = match self.exact {
            Some(Some(m)) if m.start() >= self.pos => Some(m),
            Some(None) => None,
            _ => {
                let m = self.engine.find_at(self.data, self.pos);
                self.exact = Some(m);
                m
            }
        };
        let exact = exact.map(|m| Hit {
            start: m.start(),
            end: m.end(),
            label: self
                .scrubber
                .pattern_label
                .get(m.pattern().as_usize())
                .copied()
                .unwrap_or(usize::MAX),
        });
        // A decoded occurrence wins when it starts further left, or at the
        // same start when it is longer.
        let last = exact.map_or(self.data.len(), |e| e.start);
        let decoded = self
            .cursor
            .as_mut()
            .and_then(|c| c.first(self.data, self.pos, last))
            .map(|Found { start, end, label }| Hit { start, end, label });
        let hit = match (exact, decoded) {
            (Some(e), Some(d)) if d.start < e.start || (d.start == e.start && d.end > e.end) => d,
            (Some(e), _) => e,
            (None, d) => d?,
        };
        self.pos = hit.end.max(hit.start + 1);
        Some(hit)
    }
}
