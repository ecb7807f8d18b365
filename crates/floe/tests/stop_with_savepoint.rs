//! A stop-with-savepoint commits its output (no checkpoint follows it), so it is also the
//! job's own checkpoint: a failure after its commit restores it, not the checkpoint before
//! it, whose replay would write the savepoint's output a second time.

use floe::connectors::{PreCommitWriter, SinkContext, TwoPhaseCommitSink};
use floe::prelude::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const N: u64 = 3000;

/// What the test sink made visible, and a switch that makes its next commit fail after it
/// committed (a crash between the rename and its acknowledgement).
#[derive(Default)]
struct Visible {
    records: Mutex<Vec<u64>>,
    batches: Mutex<HashSet<String>>,
    fail_after_next_commit: AtomicBool,
    commits: AtomicU64,
}

#[derive(Clone)]
struct TestSink(Arc<Visible>);

struct Writer {
    name: String,
    n: u64,
    staged: Vec<u64>,
}

impl PreCommitWriter<u64, (String, Vec<u64>)> for Writer {
    fn write_batch(&mut self, batch: &mut Vec<u64>) -> Result<()> {
        self.staged.append(batch);
        Ok(())
    }
    fn prepare_commit(&mut self, _checkpoint_id: u64) -> Result<Vec<(String, Vec<u64>)>> {
        if self.staged.is_empty() {
            return Ok(Vec::new());
        }
        self.n += 1;
        Ok(vec![(
            format!("{}-{}", self.name, self.n),
            std::mem::take(&mut self.staged),
        )])
    }
}

impl TwoPhaseCommitSink<u64> for TestSink {
    type Committable = (String, Vec<u64>);
    type Writer = Writer;
    fn name(&self) -> String {
        "TestSink".into()
    }
    fn create_writer(&self, ctx: &SinkContext) -> Result<Writer> {
        Ok(Writer {
            name: format!("{}-{}", ctx.attempt_token(), ctx.subtask),
            n: 0,
            staged: Vec::new(),
        })
    }
    fn commit(&self, committables: &[(String, Vec<u64>)]) -> Result<()> {
        let mut batches = self.0.batches.lock().unwrap();
        for (id, records) in committables {
            if batches.insert(id.clone()) {
                self.0.records.lock().unwrap().extend(records);
            }
        }
        if !committables.is_empty() {
            self.0.commits.fetch_add(1, Ordering::SeqCst);
            if self.0.fail_after_next_commit.swap(false, Ordering::SeqCst) {
                bail!("injected failure after the commit");
            }
        }
        Ok(())
    }
    fn recover(&self, _: &SinkContext, _: &[(String, Vec<u64>)]) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_failure_after_a_stop_with_savepoint_committed_restores_it_not_the_checkpoint_before() {
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let visible = Arc::new(Visible::default());
    let env = StreamEnv::new();
    env.enable_checkpointing(Duration::from_millis(40));
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    env.set_restart_strategy(RestartStrategy::fixed_delay(3, Duration::ZERO));
    env.from_collection((0..N).collect())
        .uid("numbers")
        .map(|v: u64| {
            std::thread::sleep(Duration::from_micros(300));
            v
        })
        .sink_exactly_once(TestSink(Arc::clone(&visible)))
        .uid("out");
    let job = env.execute_async("stop then fail").unwrap();
    // A few checkpoints committed first, so that an older checkpoint exists to go back to.
    while visible.commits.load(Ordering::SeqCst) < 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    visible.fail_after_next_commit.store(true, Ordering::SeqCst);
    let path = job.stop_with_savepoint(Some(sp.path())).unwrap();
    assert!(path.join("_metadata").is_file());
    // The failed commit restarts the job from the stop-with-savepoint's checkpoint copy;
    // it then runs to the end of its input.
    let r = job.wait().unwrap();
    assert_eq!(r.restarts, 1);
    let mut got = visible.records.lock().unwrap().clone();
    got.sort();
    let dups = got.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(dups, 0, "no record committed twice");
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "every record once");
    // The savepoint is the user's and stays; the job's checkpoints went with FINISHED.
    assert!(path.join("_metadata").is_file());
}
