//! Runs a job's dataflow on timely-dataflow worker threads.
//!
//! - [`protocol`]: the messages between the job manager and a task executor.
//! - [`executor`]: one execution attempt: spawns the timely workers and joins them.
//! - [`attempt`]: what an attempt's executor and workers share, in named parts (control
//!   and failure causes, checkpoint signals, registration, committers, outbox).
//! - [`operator`]: stateful operators — the [`operator::Checkpointed`] contract, the one
//!   aligned driver, and the source, keyed and two-phase-commit-sink operators.
//! - [`operators`]: stateless operators, plain sinks and the built-in keyed aggregations.
//! - [`nodes`]: the job graph's nodes, as the API records them and workers build them.
//! - [`snapshot`]: the snapshot writer thread that turns state deltas into checkpoint files.
//! - [`plan`]: the job graph as built by the API, instantiated once per worker and attempt.
//! - [`process`]: running an attempt in a worker process.
//! - [`network`]: the sockets between the worker processes of an attempt (handshake, nonce).
//! - [`event`]: event time on the dataflow: stream elements with timestamps, watermarks.
//! - [`watermarks`]: watermark strategies run per source split or per subtask.
//! - [`workers`]: where an attempt's worker processes run (this host or task managers).
//!
//! Timestamps are `epoch << 32 | seq`. The epoch of a record is the id of the first
//! checkpoint that includes it: sources move to epoch `n + 1` when checkpoint `n` is
//! triggered, so "the input frontier passed epoch `n`" is exactly barrier alignment for
//! checkpoint `n`. `seq` advances once per source batch so the probe can bound the data in
//! flight (backpressure) without making checkpoint epochs fine-grained.

pub(crate) mod attempt;
pub(crate) mod event;
pub(crate) mod executor;
pub(crate) mod network;
pub(crate) mod nodes;
pub(crate) mod operator;
pub(crate) mod operators;
pub mod plan;
pub mod process;
pub(crate) mod protocol;
pub(crate) mod snapshot;
pub(crate) mod watermarks;
pub mod workers;

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
