//! [`ScrubStream`]: scrubbing a body that arrives in chunks, with a bounded
//! carry-over window between them.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroize;

use super::scrubber::{FAILED_MARKER, Matcher, Scrubber};
use super::sink::ScrubSink;

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
    pub(super) carry: Vec<u8>,
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

// Beside the stream it builds, so that the scrubber does not depend on this module.
impl Scrubber {
    /// A streaming scrubber sharing this one; see [`ScrubStream`].
    pub fn stream(self: &Arc<Self>) -> ScrubStream {
        ScrubStream {
            carry: Vec::with_capacity(self.window.saturating_mul(2)),
            scrubber: Arc::clone(self),
            hits: 0,
            saw_input: false,
        }
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
