//! Runs a job's dataflow on timely-dataflow worker threads.
//!
//! - [`protocol`]: the messages between the job manager and a task executor.
//! - [`executor`]: one execution attempt: timely workers, failure capture, teardown.
//! - [`source`]: drives a source on a worker: batches, backpressure, checkpoint positions.
//! - [`keyed`]: the keyed operator: exchange by key group, epoch alignment, snapshots.
//! - [`operators`]: stateless operators and sinks.
//! - [`committing`]: the two-phase-commit sink operator (exactly-once output).
//! - [`snapshot`]: the snapshot writer thread that turns state deltas into checkpoint files.
//! - [`plan`]: the job graph as built by the API, instantiated once per worker and attempt.
//!
//! Timestamps are `epoch << 32 | seq`. The epoch of a record is the id of the first
//! checkpoint that includes it: sources move to epoch `n + 1` when checkpoint `n` is
//! triggered, so "the input frontier passed epoch `n`" is exactly barrier alignment for
//! checkpoint `n`. `seq` advances once per source batch so the probe can bound the data in
//! flight (backpressure) without making checkpoint epochs fine-grained.

pub(crate) mod align;
pub mod committing;
pub mod executor;
pub mod keyed;
pub mod operators;
pub mod plan;
pub mod process;
pub mod protocol;
pub mod snapshot;
pub mod source;

pub(crate) mod failure;

/// A timely timestamp: `epoch << 32 | seq`.
pub type Time = u64;

/// The epoch part of a timestamp.
#[inline]
pub fn epoch_of(t: Time) -> u64 {
    t >> 32
}

/// A timestamp from its parts.
#[inline]
pub fn time_of(epoch: u64, seq: u64) -> Time {
    (epoch << 32) | (seq & 0xffff_ffff)
}
