//! The engine for large pattern sets: a hash table of the patterns' tails,
//! each hit verified against the whole pattern.

use aho_corasick::{Match, PatternID};
use zeroize::{Zeroize, Zeroizing};

/// Bytes of a pattern's tail that [`Anchored`] indexes (the whole pattern
/// when shorter; at most 8). Secrets end in their random part, so tails rarely collide,
/// and text that holds a tail without its secret costs one comparison.
pub(super) const ANCHOR_LEN: usize = 8;

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
pub(super) struct Anchored {
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
    pub(super) fn build(patterns: &[&[u8]], anchor_len: usize) -> Option<Anchored> {
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
    pub(super) fn find_at(&self, haystack: &[u8], from: usize) -> Option<Match> {
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
