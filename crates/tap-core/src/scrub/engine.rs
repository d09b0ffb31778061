//! [`Engine`]: the multi-pattern searcher a scrubber compiles, chosen by the
//! size of the pattern set, and the iterator over its matches.

use aho_corasick::{AhoCorasick, Input, Match, MatchKind, Span, packed};

use super::anchored::{ANCHOR_LEN, Anchored};

/// From this many patterns on (about 120 secrets with all their variants) only
/// the patterns' tails are indexed ([`Anchored`]): with a full automaton a
/// team of 10,000 credentials peaked at 195 MiB while it was built, with an
/// automaton over the tails at 101 MiB (docs/benchmarks.md).
const ANCHORED_MIN_PATTERNS: usize = 2048;

/// Which engine [`Engine::build`] compiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Choice {
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
pub(super) enum Engine {
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
    pub(super) fn build(patterns: &[&[u8]], choice: Choice) -> Option<Engine> {
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

    /// The leftmost-longest match starting at or after `from`.
    pub(super) fn find_at(&self, haystack: &[u8], from: usize) -> Option<Match> {
        if from > haystack.len() {
            return None;
        }
        match self {
            Engine::Packed(s) => s.find_in(haystack, Span::from(from..haystack.len())),
            Engine::Automaton(ac) => ac.find(Input::new(haystack).span(from..haystack.len())),
            Engine::Anchored(a) => a.find_at(haystack, from),
        }
    }
}
