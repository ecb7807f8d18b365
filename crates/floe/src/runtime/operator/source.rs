//! Drives one source instance on a worker: batching, backpressure, and the source's part
//! of every checkpoint (its position, as [`Checkpointed`] state).
//!
//! Sources are not aligned: the worker's source loop calls [`SourceDriver::on_trigger`]
//! when checkpoints are triggered, which is the source's cut, and moves its input to the
//! next epoch, so that downstream operators see the barrier as the frontier passing it.

use super::{checkpoint, Checkpointed, SnapshotState};
use crate::api::data::Data;
use crate::checkpoint::metadata::{OperatorKind, TaskId};
use crate::checkpoint::restore::OperatorRestore;
use crate::connectors::{Source, SourceContext, SourceReader, SourceStatus, SourceWaker};
use crate::runtime::attempt::{Attempt, SourceStop};
use crate::runtime::failure;
use crate::runtime::plan::{BuildCx, Polled, SourceDriver};
use crate::runtime::{time_of, Time};
use crate::Result;
use std::collections::VecDeque;
use std::sync::Arc;
use timely::dataflow::{InputHandleVec, ProbeHandle, StreamVec};

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

pub(crate) struct SourceRunner<T: Data> {
    task: TaskId,
    name: String,
    handle: Option<InputHandleVec<Time, T>>,
    reader: Option<Box<dyn SourceReader<T>>>,
    /// Every subtask's restored position, in subtask order, until the reader is created.
    restored: Option<Vec<Vec<u8>>>,
    buf: Vec<T>,
    epoch: u64,
    /// Milliseconds since this epoch began on this worker: the low half of the timestamp.
    seq: u64,
    epoch_started: std::time::Instant,
    in_flight: VecDeque<(Time, std::time::Instant)>,
    batch_size: usize,
    finished: bool,
    /// The input ended; the source waits for the final checkpoint before it finishes.
    ended: bool,
    final_position: Option<Vec<u8>>,
    acked_upto: u64,
}

/// Instantiates source operator `op` on this worker: its subtask (when this worker runs
/// one, see the source's parallelism limit) restores its position and joins the worker's
/// source loop.
pub(crate) fn build_source<'s, T: Data>(
    cx: &mut BuildCx<'s, '_>,
    op: usize,
    source: &Arc<dyn Source<T>>,
) -> Result<StreamVec<'s, Time, T>> {
    let decl = &cx.plan.operators[op];
    let mut handle = InputHandleVec::<Time, T>::new();
    let stream = handle.to_stream(cx.scope);
    handle.advance_to(time_of(cx.start_epoch, 0));
    let subtask = cx.worker;
    let mut runner = SourceRunner {
        task: TaskId {
            uid: decl.uid.clone(),
            subtask,
        },
        name: cx.task_display(op),
        handle: Some(handle),
        reader: None,
        restored: None,
        buf: Vec::with_capacity(BATCH),
        epoch: cx.start_epoch,
        seq: 0,
        epoch_started: std::time::Instant::now(),
        in_flight: Default::default(),
        batch_size: 64,
        finished: false,
        ended: false,
        final_position: None,
        acked_upto: cx.start_epoch.saturating_sub(1),
    };
    if subtask >= decl.parallelism {
        // No instance of the source here: its end (the final watermark of an event-time
        // source) goes out with the first poll, so it never holds back the watermark
        // downstream.
        runner.buf = source.without_reader();
    } else {
        super::restore(cx, op, &mut runner)?;
        let ctx = SourceContext {
            subtask,
            parallelism: decl.parallelism,
            attempt: cx.attempt_number,
            restored: runner.restored.take(),
            waker: SourceWaker(std::thread::current()),
            task_info: cx.task_info(op),
        };
        // Failures while the source starts (e.g. connecting) are this task's failures.
        failure::set_current_task(&runner.name);
        runner.reader = Some(source.create(ctx)?);
    }
    runner.epoch_started = std::time::Instant::now();
    cx.drivers.push(Box::new(runner));
    Ok(stream)
}

impl<T: Data> Checkpointed for SourceRunner<T> {
    const KIND: OperatorKind = OperatorKind::Source;

    /// The positions of every subtask, for the reader to pick its own from (the snapshot
    /// may have another parallelism than the job now has).
    fn restore(&mut self, from: Option<OperatorRestore<'_>>) -> Result<()> {
        if let Some(from) = from {
            self.restored = Some(
                from.inline()?
                    .into_iter()
                    .map(|(_, p)| p.to_vec())
                    .collect(),
            );
        }
        Ok(())
    }

    fn snapshot(&mut self, _first: u64) -> Result<Option<SnapshotState>> {
        let position = match (&mut self.reader, &self.final_position) {
            (_, Some(p)) => Some(p.clone()),
            (Some(r), None) => Some(r.snapshot()?),
            // No reader: this worker runs no instance of the source (parallelism limit). It
            // acknowledges nothing, but its input still moves on (while it is open, waiting
            // for a final checkpoint, it would otherwise hold back every cut).
            (None, None) => None,
        };
        Ok(position.map(SnapshotState::Inline))
    }
}

impl<T: Data> SourceRunner<T> {
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
    fn input_ended(&mut self, attempt: &Attempt) -> Result<Polled> {
        if !attempt.registration.final_checkpoint() {
            self.finish()?;
            return Ok(Polled::Finished);
        }
        if let Some(r) = self.reader.as_mut() {
            self.final_position = Some(r.snapshot()?);
        }
        self.ended = true;
        attempt.registration.source_ended(&attempt.outbox);
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

impl<T: Data> SourceDriver for SourceRunner<T> {
    fn poll(&mut self, probe: &ProbeHandle<Time>, attempt: &Attempt) -> Result<Polled> {
        if self.finished {
            return Ok(Polled::Finished);
        }
        let stop = attempt.signals.source_stop();
        if stop == SourceStop::Finish {
            self.finish()?;
            return Ok(Polled::Finished);
        }
        if self.ended {
            self.wait_at_epoch_end();
            return Ok(Polled::Idle);
        }
        // Stop-with-savepoint: nothing after the savepoint's barrier is emitted.
        if let SourceStop::AfterSavepoint(id) = stop {
            if self.epoch > id {
                return Ok(Polled::Idle);
            }
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
            if !self.buf.is_empty() {
                let h = self.handle.as_mut().expect("open input");
                h.send_batch(&mut self.buf);
                self.buf.clear();
            }
            return self.input_ended(attempt);
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
            SourceStatus::Finished => self.input_ended(attempt),
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

    fn on_trigger(&mut self, upto: u64, attempt: &Attempt) -> Result<()> {
        let lo = self.epoch.max(self.acked_upto + 1);
        if upto < lo {
            return Ok(());
        }
        let task = self.task.clone();
        checkpoint(self, attempt, &task, lo, upto)?;
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
