//! Key groups: the unit in which keyed state is partitioned, snapshotted and rescaled.
//!
//! `key_group = xxh3_64(bincode(key)) % max_parallelism`. The hash is taken over the key's
//! canonical serialized bytes (bincode 1, little-endian fixed-width integers, length-prefixed
//! strings), never over `std::hash::Hash`, so the assignment is identical in every process, on
//! every platform and in every Floe release, and can be recomputed from a snapshot without
//! the job's Rust types. Subtasks own contiguous key-group ranges exactly as Flink's
//! `KeyGroupRangeAssignment` computes them.

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

/// Flink's default maximum parallelism for small jobs.
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;
/// Upper bound for max parallelism, as in Flink.
pub const UPPER_BOUND_MAX_PARALLELISM: u32 = 32768;

/// The stable hash of a key's serialized bytes.
#[inline]
pub fn hash_key_bytes(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// The key group a hash falls into.
///
/// ```
/// use floe::state::keygroup::*;
/// let kg = key_group_for_hash(hash_key_bytes(b"spark"), 128);
/// assert!(kg < 128);
/// ```
#[inline]
pub fn key_group_for_hash(hash: u64, max_parallelism: u32) -> u32 {
    (hash % max_parallelism as u64) as u32
}

/// The subtask that owns a key group (Flink's `computeOperatorIndexForKeyGroup`).
#[inline]
pub fn subtask_for_key_group(key_group: u32, max_parallelism: u32, parallelism: u32) -> u32 {
    ((key_group as u64 * parallelism as u64) / max_parallelism as u64) as u32
}

/// An inclusive range of key groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyGroupRange {
    /// First key group in the range.
    pub start: u32,
    /// Last key group in the range (inclusive).
    pub end: u32,
}

impl KeyGroupRange {
    /// True when `kg` is in the range.
    pub fn contains(&self, kg: u32) -> bool {
        kg >= self.start && kg <= self.end
    }
    /// Number of key groups in the range.
    pub fn len(&self) -> u32 {
        if self.end < self.start {
            0
        } else {
            self.end - self.start + 1
        }
    }
    /// True for an empty range.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The contiguous key-group range owned by `subtask` (Flink's
/// `computeKeyGroupRangeForOperatorIndex`).
///
/// ```
/// use floe::state::keygroup::*;
/// let r0 = key_group_range_for_subtask(128, 3, 0);
/// let r1 = key_group_range_for_subtask(128, 3, 1);
/// assert_eq!((r0.start, r0.end, r1.start), (0, 42, 43));
/// ```
pub fn key_group_range_for_subtask(
    max_parallelism: u32,
    parallelism: u32,
    subtask: u32,
) -> KeyGroupRange {
    let (m, p, i) = (max_parallelism as u64, parallelism as u64, subtask as u64);
    KeyGroupRange {
        start: (i * m).div_ceil(p) as u32,
        end: (((i + 1) * m - 1) / p) as u32,
    }
}

/// Serializes keys into a reused buffer and hashes them, without allocating per key.
#[derive(Default)]
pub struct KeyEncoder {
    buf: Vec<u8>,
}

impl KeyEncoder {
    /// The canonical bytes of `key`, valid until the next call.
    pub fn encode<K: Serialize>(&mut self, key: &K) -> &[u8] {
        self.buf.clear();
        // Serializing into a Vec cannot fail for serde-derived types except on maps with
        // non-string keys in formats that forbid them; bincode has no such restriction.
        bincode::serialize_into(&mut self.buf, key).expect("bincode serialization into a Vec");
        &self.buf
    }

    /// The stable hash of `key`.
    #[inline]
    pub fn hash<K: Serialize>(&mut self, key: &K) -> u64 {
        hash_key_bytes(self.encode(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_all_key_groups_and_agree_with_owner() {
        for p in 1..=17u32 {
            let mut next = 0;
            for i in 0..p {
                let r = key_group_range_for_subtask(128, p, i);
                assert_eq!(r.start, next);
                for kg in r.start..=r.end {
                    assert_eq!(subtask_for_key_group(kg, 128, p), i);
                }
                next = r.end + 1;
            }
            assert_eq!(next, 128);
        }
    }

    #[test]
    fn hash_is_stable_across_releases() {
        // Pinned values: if these change, every existing snapshot's key groups change.
        let mut e = KeyEncoder::default();
        assert_eq!(
            e.encode(&"spark"),
            &[5, 0, 0, 0, 0, 0, 0, 0, b's', b'p', b'a', b'r', b'k']
        );
        let s: String = "spark".into();
        let c: compact_str::CompactString = "spark".into();
        assert_eq!(e.hash(&s), e.hash(&c));
        assert_eq!(
            e.hash(&"spark"),
            hash_key_bytes(&[5, 0, 0, 0, 0, 0, 0, 0, b's', b'p', b'a', b'r', b'k'])
        );
        assert_eq!(e.hash(&7u64), hash_key_bytes(&7u64.to_le_bytes()));
    }
}
