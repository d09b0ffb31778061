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
