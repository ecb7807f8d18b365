//! The one driver of operators whose input is aligned at checkpoint cuts (the keyed
//! operator, the two-phase-commit sink, and any window or timer operator to come).
//!
//! Alignment is done by the frontier. A batch of epoch `e` is applied once the input
//! frontier has reached `e` (all earlier epochs are complete); batches of later epochs are
//! held back with their capabilities ([`Aligner`]). When the frontier passes epoch `n`,
//! every record of every epoch `<= n` has been applied and none later: that is checkpoint
//! `n`'s cut, where the operator's [`Checkpointed::snapshot`] is taken. When the input
//! ends, [`Checkpointed::end_of_input`] runs once.

use super::align::{frontier_epoch, Aligner};
use super::{checkpoint, Checkpointed};
use crate::api::data::Data;
use crate::api::functions::Collector;
use crate::checkpoint::metadata::TaskId;
use crate::runtime::attempt::{AttemptControl, FailureCause};
use crate::runtime::failure;
use crate::runtime::plan::BuildCx;
use crate::runtime::{epoch_of, time_of, Time};
use crate::Result;
use std::sync::Arc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::generic::{Operator, OutputBuilderSession};
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

/// A stateful operator whose input is aligned by epochs: what it does with a batch.
pub(crate) trait Aligned: Checkpointed + 'static {
    /// Its input records.
    type In: Data;
    /// Its output records.
    type Out: Data;

    /// Applies one batch (leaving it empty) of an epoch no later than the next cut;
    /// output goes into `out`. May stop early, without error, once `control` is aborted.
    fn process(
        &mut self,
        batch: &mut Vec<Self::In>,
        out: &mut Collector<Self::Out>,
        control: &AttemptControl,
    ) -> Result<()>;

    /// The operator emits without input (timers): the driver keeps a capability at the
    /// epoch being applied, calls [`on_activation`](Self::on_activation) on every
    /// activation and [`flush`](Self::flush) when the input ends.
    const EMITS_WITHOUT_INPUT: bool = false;

    /// Called on every activation, after the input, when [`EMITS_WITHOUT_INPUT`]: output
    /// belongs to the epoch being applied. Returns how soon to be activated again
    /// (processing-time timers).
    ///
    /// [`EMITS_WITHOUT_INPUT`]: Self::EMITS_WITHOUT_INPUT
    fn on_activation(
        &mut self,
        _out: &mut Collector<Self::Out>,
        _control: &AttemptControl,
    ) -> Result<Option<std::time::Duration>> {
        Ok(None)
    }

    /// The input ended on every channel (before [`Checkpointed::end_of_input`]): the last
    /// output, e.g. every event-time timer firing at the end of time.
    fn flush(&mut self, _out: &mut Collector<Self::Out>) -> Result<()> {
        Ok(())
    }
}

type Output<'a, U> = OutputBuilderSession<'a, Time, CapacityContainerBuilder<Vec<U>>>;

/// Instantiates `o`, the subtask of operator `op` on this worker, behind `pact`.
pub(crate) fn build_aligned<'s, O, P>(
    cx: &BuildCx<'s, '_>,
    op: usize,
    input: StreamVec<'s, Time, O::In>,
    pact: P,
    mut o: O,
) -> StreamVec<'s, Time, O::Out>
where
    O: Aligned,
    P: ParallelizationContract<Time, Vec<O::In>>,
{
    let attempt = Arc::clone(cx.attempt);
    if let Some(c) = o.committer() {
        attempt.committers.add(c);
    }
    let task = TaskId {
        uid: cx.plan.operators[op].uid.clone(),
        subtask: cx.worker,
    };
    let display = cx.task_display(op);
    let start_epoch = cx.start_epoch;
    let name = cx.plan.operators[op].name.clone();
    let scope = cx.scope;
    input.unary_frontier(pact, &name, move |cap, info| {
        let mut align: Aligner<(Capability<Time>, Vec<O::In>)> = Aligner::new(start_epoch);
        // Operators that emit without input hold a capability at their input frontier:
        // what they emit belongs to the epoch being applied.
        let mut held = O::EMITS_WITHOUT_INPUT.then(|| {
            let mut cap = cap;
            cap.downgrade(&time_of(start_epoch, 0));
            cap
        });
        let activator = scope.activator_for(info.address);
        let mut out = Collector::default();
        let mut failed = false;
        let mut ended = false;
        move |(input, frontier), output| {
            let control = &attempt.control;
            if failed || control.aborted() {
                failed = true;
                held = None;
                align.clear();
                input.for_each(|_, d| d.clear());
                return;
            }
            failure::set_current_task(&display);
            let reached = frontier_epoch(&frontier.frontier());
            let mut result: Result<()> = Ok(());
            // Cross every epoch boundary the frontier passed, snapshotting at each cut.
            while let Some((lo, hi, batches)) = align.next_cut(reached) {
                result = checkpoint(&mut o, &attempt, &task, lo, hi);
                for (cap, mut data) in batches {
                    if result.is_ok() {
                        result = apply(&mut o, &mut data, &cap, &mut out, output, control);
                    }
                }
                if result.is_err() {
                    break;
                }
            }
            input.for_each(|cap, data| {
                if result.is_err() {
                    data.clear();
                    return;
                }
                // Messages without a time make no progress claim; timely never sends them here.
                let Some(c) = cap.retain_least(output.output_index()) else {
                    data.clear();
                    return;
                };
                let e = epoch_of(*c.time());
                if align.ready(e) {
                    result = apply(&mut o, data, &c, &mut out, output, control);
                } else {
                    align.hold(e, (c, std::mem::take(data)));
                }
            });
            if let Some(cap) = held.as_mut() {
                if result.is_ok() {
                    result = o.on_activation(&mut out, control).map(|next| {
                        if let Some(d) = next {
                            activator.activate_after(d);
                        }
                    });
                    emit(&mut out, cap, output);
                }
                // Held at the input frontier, never below it: the probe after the sinks
                // (backpressure) sees no batch in flight that is not.
                if let Some(t) = frontier.frontier().first() {
                    if t > cap.time() {
                        cap.downgrade(t);
                    }
                }
            }
            if result.is_ok() && reached == u64::MAX && !ended {
                ended = true;
                if let Some(cap) = held.take() {
                    result = o.flush(&mut out);
                    emit(&mut out, &cap, output);
                }
                if result.is_ok() {
                    result = o.end_of_input();
                }
            }
            if let Err(e) = result {
                failed = true;
                align.clear();
                control.fail(&display, format!("{e:#}"), FailureCause::User);
            }
        }
    })
}

#[inline]
fn apply<O: Aligned>(
    o: &mut O,
    batch: &mut Vec<O::In>,
    cap: &Capability<Time>,
    out: &mut Collector<O::Out>,
    output: &mut Output<'_, O::Out>,
    control: &AttemptControl,
) -> Result<()> {
    o.process(batch, out, control)?;
    emit(out, cap, output);
    Ok(())
}

#[inline]
fn emit<U: Data>(out: &mut Collector<U>, cap: &Capability<Time>, output: &mut Output<'_, U>) {
    if !out.buf.is_empty() {
        output.session(cap).give_container(&mut out.buf);
        out.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::metadata::{OperatorKind, StateHandle};
    use crate::checkpoint::restore::OperatorRestore;
    use crate::runtime::attempt::{Attempt, CheckpointSignals, Committers, Outbox, Registration};
    use crate::runtime::operator::SnapshotState;
    use crate::runtime::plan::{OperatorDecl, Plan};
    use crate::runtime::protocol::FromExecutor;
    use crate::runtime::time_of;
    use crate::sync::LockExt;
    use std::sync::Mutex;
    use timely::dataflow::channels::pact::Pipeline;
    use timely::dataflow::operators::Probe;
    use timely::dataflow::{InputHandleVec, ProbeHandle};

    #[derive(Debug, PartialEq, Eq)]
    enum Event {
        Batch(Vec<u64>),
        Snapshot(u64),
        End,
    }

    /// Sums what it sees; its snapshot is the running sum.
    struct Fake {
        sum: u64,
        log: Arc<Mutex<Vec<Event>>>,
    }

    impl Checkpointed for Fake {
        const KIND: OperatorKind = OperatorKind::Sink;
        fn restore(&mut self, _from: Option<OperatorRestore<'_>>) -> Result<()> {
            Ok(())
        }
        fn snapshot(&mut self, first: u64) -> Result<Option<SnapshotState>> {
            self.log.lock_ok().push(Event::Snapshot(first));
            Ok(Some(SnapshotState::Inline(self.sum.to_le_bytes().to_vec())))
        }
        fn end_of_input(&mut self) -> Result<()> {
            self.log.lock_ok().push(Event::End);
            Ok(())
        }
    }

    impl Aligned for Fake {
        type In = u64;
        type Out = u64;
        fn process(
            &mut self,
            batch: &mut Vec<u64>,
            out: &mut Collector<u64>,
            _control: &AttemptControl,
        ) -> Result<()> {
            self.sum += batch.iter().sum::<u64>();
            self.log.lock_ok().push(Event::Batch(batch.clone()));
            out.buf.append(batch);
            Ok(())
        }
    }

    #[test]
    fn the_cut_is_taken_after_every_record_of_its_epoch_and_before_any_later_one() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = crossbeam_channel::unbounded();
        let (snap_tx, _snap_rx) = crossbeam_channel::unbounded();
        let attempt = Arc::new(Attempt {
            job_id: "job".into(),
            control: AttemptControl::new(0, 1),
            signals: CheckpointSignals::new(1),
            registration: Registration::new(1, false),
            committers: Committers::default(),
            outbox: Outbox::new(0, tx, snap_tx),
        });
        let plan = Plan {
            job_name: "t".into(),
            parallelism: 1,
            max_parallelism: 128,
            operators: vec![OperatorDecl {
                uid: "fake".into(),
                explicit_uid: true,
                name: "Fake".into(),
                state: Some(OperatorKind::Sink),
                parallelism: 1,
                chain: 0,
            }],
            final_checkpoint: false,
            terminals: Vec::new(),
        };
        let log2 = Arc::clone(&log);
        let a2 = Arc::clone(&attempt);
        timely::execute_directly(move |worker| {
            let probe = ProbeHandle::new();
            let mut input = InputHandleVec::<Time, u64>::new();
            let mut drivers = Vec::new();
            worker.dataflow::<Time, _, _>(|scope| {
                let cx = BuildCx {
                    scope,
                    plan: &plan,
                    worker: 0,
                    peers: 1,
                    attempt_number: 0,
                    attempt: &a2,
                    restore: None,
                    savepoints: &[],
                    start_epoch: 1,
                    probe: &probe,
                    drivers: &mut drivers,
                    built: crate::runtime::plan::Built::new(),
                };
                let fake = Fake {
                    sum: 0,
                    log: Arc::clone(&log2),
                };
                build_aligned(&cx, 0, input.to_stream(scope), Pipeline, fake).probe_with(&probe);
            });
            let settle = |worker: &mut timely::worker::Worker, probe: &ProbeHandle<Time>, t| {
                while probe.less_than(&t) {
                    worker.step();
                }
            };
            input.send(1);
            input.send(2);
            // Checkpoint 1 is triggered: the source side moves to epoch 2.
            a2.signals
                .trigger(1, std::path::PathBuf::from("chk-1").into());
            input.advance_to(time_of(2, 0));
            input.send(10);
            settle(worker, &probe, time_of(2, 0));
            // The frontier reached epoch 2: the cut at 1 is taken, after epoch 1's records.
            assert_eq!(
                log2.lock_ok()[..2],
                [Event::Batch(vec![1, 2]), Event::Snapshot(1)]
            );
            input.advance_to(time_of(3, 0));
            settle(worker, &probe, time_of(3, 0));
            drop(input);
            while !probe.done() {
                worker.step();
            }
        });
        assert_eq!(
            *log.lock_ok(),
            vec![
                Event::Batch(vec![1, 2]),
                Event::Snapshot(1),
                Event::Batch(vec![10]),
                Event::End
            ],
            "no checkpoint 2 was triggered, so no cut is taken for it"
        );
        let acks: Vec<_> = rx.try_iter().collect();
        assert_eq!(acks.len(), 1, "{acks:?}");
        match &acks[0] {
            FromExecutor::Ack {
                checkpoint_id: 1,
                state: StateHandle::Inline { data },
                task,
                ..
            } => {
                assert_eq!(data, &3u64.to_le_bytes().to_vec());
                assert_eq!(task.uid, "fake");
            }
            other => panic!("{other:?}"),
        }
    }
}
