//! Secret scrubbing for everything that flows to an agent, and secret
//! detection in what an agent sends (SPEC §7, §8).
//!
//! A [`Scrubber`] is built once from a set of secrets. Two matchers run side
//! by side:
//! - the exact engine: for each secret one pattern per [`Variant`] (the raw
//!   bytes and the encodings a secret commonly travels in), deduplicated and
//!   compiled into one multi-pattern searcher (Teddy for small sets, an
//!   Aho-Corasick automaton or an anchored table otherwise), plus the exact
//!   renderings a request added ([`Scrubber::with_renderings`]);
//! - the decoder: the secret and its base64 encodings found however they are
//!   escaped (any mix of `%XX`, form `+`, JSON/JavaScript backslash escapes
//!   including `\uXXXX` surrogate pairs, HTML entities, base64 line breaks),
//!   by decoding the input at each candidate start and comparing with the
//!   secret; it only runs near an escape character, found with `memchr`. Its
//!   module documents what is not decoded (nested encodings among others).
//!
//! Matches of both are merged leftmost-longest and each is replaced by
//! `[REDACTED:<label>]`; [`Scrubber::find`] (leak blocking) uses the same
//! merged matches.
//!
//! Invariants:
//! - Every occurrence found by either matcher in the input overlaps a
//!   replaced span: no occurrence survives scrubbing whole.
//! - [`ScrubStream`] output for any chunking equals one-shot
//!   [`Scrubber::scrub`] of the concatenation, and the stream holds back at
//!   most `window` bytes: the longest exact pattern or the longest escaped
//!   form the decoder can match (10 input bytes per secret byte plus line
//!   breaks), minus one.
//! - Neither type prints secret-derived bytes in its `Debug` output.
//!
//! Known limit: the marker replaces an occurrence, so text right before or
//! after it that happens to end (start) with the rest of a secret containing
//! `[` or `]` could complete that secret with the marker's bracket.

mod anchored;
mod decode;
mod engine;
mod scrubber;
mod sink;
mod stream;
#[cfg(test)]
mod tests;
mod variants;

pub use scrubber::{LEAK_MIN_SECRET_LEN, ScrubSecret, Scrubber};
pub use sink::ScrubSink;
pub use stream::ScrubStream;
pub use variants::{ALIGNED_MIN_CORE_CHARS, ALL_VARIANTS, Variant};
