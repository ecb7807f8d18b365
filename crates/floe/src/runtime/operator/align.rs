//! Epoch alignment, shared by every operator that snapshots at a checkpoint's cut (the
//! keyed operator and the two-phase-commit sink).
//!
//! A batch of epoch `e` may be applied once the input frontier has reached `e`; later
//! epochs are held back. When the frontier passes epoch `n`, everything up to `n` was
//! applied and nothing after it: that is checkpoint `n`'s cut.

use crate::runtime::{epoch_of, Time};
use std::collections::BTreeMap;

/// The epoch the input frontier has reached: `u64::MAX` once the input is exhausted.
#[inline]
pub(crate) fn frontier_epoch(frontier: &[Time]) -> u64 {
    frontier.first().map(|t| epoch_of(*t)).unwrap_or(u64::MAX)
}

/// The current epoch of an operator and the batches it holds for later epochs.
pub(crate) struct Aligner<B> {
    cur: u64,
    held: BTreeMap<u64, Vec<B>>,
}

impl<B> Aligner<B> {
    pub fn new(start_epoch: u64) -> Self {
        Aligner {
            cur: start_epoch,
            held: BTreeMap::new(),
        }
    }

    /// The next epoch boundary the frontier (at epoch `reached`) has passed: the cut covers
    /// checkpoints `lo..=hi`; the returned batches, held for the epoch after it, are to be
    /// applied right after the cut. Call until `None`.
    pub fn next_cut(&mut self, reached: u64) -> Option<(u64, u64, Vec<B>)> {
        if self.cur >= reached {
            return None;
        }
        let next = self
            .held
            .keys()
            .next()
            .copied()
            .filter(|&e| e < reached)
            .unwrap_or(reached);
        let lo = self.cur;
        self.cur = next;
        Some((lo, next - 1, self.held.remove(&next).unwrap_or_default()))
    }

    /// True when a batch of `epoch` may be applied now; otherwise [`hold`](Self::hold) it.
    #[inline]
    pub fn ready(&self, epoch: u64) -> bool {
        epoch <= self.cur
    }

    /// Keeps a batch of a later epoch until the cut before it.
    pub fn hold(&mut self, epoch: u64, batch: B) {
        self.held.entry(epoch).or_default().push(batch);
    }

    /// Drops everything held (the task failed).
    pub fn clear(&mut self) {
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_each_passed_boundary_and_releases_held_batches_in_epoch_order() {
        let mut a = Aligner::new(1);
        assert!(a.ready(1));
        assert!(!a.ready(2));
        a.hold(3, "c");
        a.hold(2, "b");
        // The frontier reached epoch 2: the cut at 1, then epoch 2's batch.
        assert_eq!(a.next_cut(2), Some((1, 1, vec!["b"])));
        assert_eq!(a.next_cut(2), None, "epoch 2 is not complete");
        assert!(!a.ready(3), "held until the cut at 2");
        a.hold(3, "d");
        assert_eq!(a.next_cut(3), Some((2, 2, vec!["c", "d"])));
        assert!(a.ready(3));
        // The input ended: one cut covers every checkpoint from 3 on.
        assert_eq!(a.next_cut(u64::MAX), Some((3, u64::MAX - 1, vec![])));
        assert_eq!(a.next_cut(u64::MAX), None);
    }
}
