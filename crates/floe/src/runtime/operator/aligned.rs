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
use crate::runtime::attempt::{AttemptControl, FailureCause};
use crate::runtime::failure;
use crate::runtime::plan::BuildCx;
use crate::runtime::{epoch_of, Time};
use crate::checkpoint::metadata::TaskId;
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
    input.unary_frontier(pact, &name, move |_cap, _info| {
        let mut align: Aligner<(Capability<Time>, Vec<O::In>)> = Aligner::new(start_epoch);
        let mut out = Collector::default();
        let mut failed = false;
        let mut ended = false;
        move |(input, frontier), output| {
            let control = &attempt.control;
            if failed || control.aborted() {
                failed = true;
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
            if result.is_ok() && reached == u64::MAX && !ended {
                ended = true;
                result = o.end_of_input();
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
    if !out.buf.is_empty() {
        output.session(cap).give_container(&mut out.buf);
        out.buf.clear();
    }
    Ok(())
}
