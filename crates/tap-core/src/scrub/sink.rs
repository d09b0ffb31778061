//! [`ScrubSink`]: where scrubbed output goes.

use std::ops::Range;

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
