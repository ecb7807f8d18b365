//! Drives one source instance on a worker: batching, backpressure, and the source's part
//! of every checkpoint.

use super::executor::ExecShared;
use super::plan::{Polled, SourceDriver};
use super::{time_of, Time};
use crate::checkpoint::metadata::{StateHandle, TaskId};
use crate::connectors::{SourceReader, SourceStatus};
use crate::runtime::protocol::FromExecutor;
use crate::Result;
use std::collections::VecDeque;
use timely::dataflow::{InputHandleVec, ProbeHandle};

/// Most records per batch handed to the dataflow.
pub(crate) const BATCH: usize = 4096;
/// Fewest records per batch.
const MIN_BATCH: usize = 8;
/// A batch that takes longer than this to pass every sink halves the batch size; one that
/// takes less than a fifth of it doubles the size. Checkpoint barriers wait for the batches
/// in flight, so this keeps alignment short for slow pipelines and batches large for fast ones.
const TARGET_BATCH_LATENCY: std::time::Duration = std::time::Duration::from_millis(25);
/// Distinct timestamps (milliseconds) with batches in flight (not yet through every sink)
/// per source instance before it waits.
pub(crate) const MAX_IN_FLIGHT: usize = 4;
/// The last millisecond of an epoch: where idle sources wait for the next checkpoint. An
/// epoch longer than 49 days (checkpointing off) stays there too, without backpressure.
const MAX_TICK: u64 = u32::MAX as u64;

pub(crate) struct SourceRunner<T: crate::api::data::Data> {
    pub task: TaskId,
    pub name: String,
    pub handle: Option<InputHandleVec<Time, T>>,
    pub reader: Option<Box<dyn SourceReader<T>>>,
    pub buf: Vec<T>,
    pub epoch: u64,
    /// Milliseconds since this epoch began on this worker: the low half of the timestamp.
    pub seq: u64,
    pub epoch_started: std::time::Instant,
    pub in_flight: VecDeque<(Time, std::time::Instant)>,
    pub batch_size: usize,
    pub finished: bool,
    /// The input ended; the source waits for the final checkpoint before it finishes.
    pub ended: bool,
    pub final_position: Option<Vec<u8>>,
    pub acked_upto: u64,
}

impl<T: crate::api::data::Data> SourceRunner<T> {
    fn finish(&mut self) -> Result<()> {
        if let Some(r) = self.reader.as_mut() {
            self.final_position = Some(r.snapshot()?);
        }
        self.finished = true;
        self.handle = None; // closing the input lets the frontier move past this source
        Ok(())
    }

    /// The input ended. Without a final checkpoint the source finishes now; with one it
    /// keeps its input open at the end of each epoch until that checkpoint completes, so
    /// the checkpoint still has a cut everywhere downstream.
    fn end_of_input(&mut self, shared: &ExecShared) -> Result<Polled> {
        if !shared.final_checkpoint() {
            self.finish()?;
            return Ok(Polled::Finished);
        }
        if let Some(r) = self.reader.as_mut() {
            self.final_position = Some(r.snapshot()?);
        }
        self.ended = true;
        shared.source_ended();
        self.wait_at_epoch_end();
        Ok(Polled::Idle)
    }

    /// Moves the input to the last tick of the epoch: a source with nothing to send never
    /// holds back other workers' batches.
    fn wait_at_epoch_end(&mut self) {
        if self.seq < MAX_TICK {
            self.seq = MAX_TICK;
            if let Some(h) = self.handle.as_mut() {
                h.advance_to(time_of(self.epoch, MAX_TICK));
            }
        }
    }
}

impl<T: crate::api::data::Data> SourceDriver for SourceRunner<T> {
    fn poll(&mut self, probe: &ProbeHandle<Time>, shared: &ExecShared) -> Result<Polled> {
        if self.finished {
            return Ok(Polled::Finished);
        }
        if shared.finish_sources() {
            self.finish()?;
            return Ok(Polled::Finished);
        }
        if self.ended {
            self.wait_at_epoch_end();
            return Ok(Polled::Idle);
        }
        // Stop-with-savepoint: nothing after the savepoint's barrier is emitted.
        let stop = shared.stop_at();
        if stop != 0 && self.epoch > stop {
            return Ok(Polled::Idle);
        }
        while let Some((t, sent)) = self.in_flight.front() {
            if probe.less_equal(t) {
                break;
            }
            let latency = sent.elapsed();
            if latency > TARGET_BATCH_LATENCY {
                self.batch_size = (self.batch_size / 2).max(MIN_BATCH);
            } else if latency < TARGET_BATCH_LATENCY / 5 {
                self.batch_size = (self.batch_size * 2).min(BATCH);
            }
            self.in_flight.pop_front();
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return Ok(Polled::Blocked);
        }
        let Some(reader) = self.reader.as_mut() else {
            return self.end_of_input(shared);
        };
        let status = reader.poll_next(&mut self.buf, self.batch_size)?;
        let emitted = !self.buf.is_empty();
        let h = self.handle.as_mut().expect("open input");
        // Every worker's sources advance with the wall clock, so the (global) probe compares
        // workers by time, not by how many batches each happened to send.
        let tick = (self.epoch_started.elapsed().as_millis() as u64).min(MAX_TICK - 1);
        if tick > self.seq && self.seq < MAX_TICK {
            self.seq = tick;
            h.advance_to(time_of(self.epoch, self.seq));
        }
        if emitted {
            h.send_batch(&mut self.buf);
            self.buf.clear();
            let t = time_of(self.epoch, self.seq);
            if self.seq < MAX_TICK && self.in_flight.back().is_none_or(|(last, _)| *last != t) {
                self.in_flight.push_back((t, std::time::Instant::now()));
            }
        }
        match status {
            SourceStatus::Finished => self.end_of_input(shared),
            SourceStatus::Ready => Ok(Polled::Emitted),
            SourceStatus::Idle if emitted => Ok(Polled::Emitted),
            SourceStatus::Idle => {
                // An idle source must never hold back the batches of other workers: its input
                // moves to the end of the epoch. Its later records in this epoch share that
                // time (processed at once, just not tracked for backpressure).
                self.wait_at_epoch_end();
                Ok(Polled::Idle)
            }
        }
    }

    fn on_trigger(&mut self, upto: u64, shared: &ExecShared) -> Result<()> {
        let lo = self.epoch.max(self.acked_upto + 1);
        if upto < lo {
            return Ok(());
        }
        let targets = shared.pending_in(lo, upto);
        let position = match (&mut self.reader, &self.final_position) {
            _ if targets.is_empty() => None,
            (_, Some(p)) => Some(p.clone()),
            (Some(r), None) => Some(r.snapshot()?),
            // No reader: this worker runs no instance of the source (parallelism limit). It
            // acknowledges nothing, but its input still moves on (while it is open, waiting
            // for a final checkpoint, it would otherwise hold back every cut).
            (None, None) => None,
        };
        if let Some(position) = position {
            for (id, _) in targets {
                shared.send(FromExecutor::Ack {
                    attempt: shared.attempt,
                    checkpoint_id: id,
                    task: self.task.clone(),
                    state: StateHandle::Inline {
                        data: position.clone(),
                    },
                });
            }
        }
        self.acked_upto = upto;
        if !self.finished {
            self.epoch = upto + 1;
            self.seq = 0;
            self.epoch_started = std::time::Instant::now();
            if let Some(h) = self.handle.as_mut() {
                h.advance_to(time_of(self.epoch, 0));
            }
        }
        Ok(())
    }

    fn task_name(&self) -> &str {
        &self.name
    }

    fn blocked(&self) -> bool {
        !self.finished && !self.ended && self.in_flight.len() >= MAX_IN_FLIGHT
    }
}
