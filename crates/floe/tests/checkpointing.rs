//! Checkpoint timeout, tolerable failures and retention, through real job runs.

mod common;

use common::{chk_dirs, only_job_dir};
use floe::prelude::*;
use std::path::Path;
use std::time::Duration;

#[derive(Clone)]
struct Slow(Duration);
impl KeyedFlatMapFunction<u64, u64, u64> for Slow {
    fn flat_map(
        &mut self,
        v: u64,
        _ctx: &mut KeyedContext<u64>,
        out: &mut Collector<u64>,
    ) -> Result<()> {
        std::thread::sleep(self.0);
        out.collect(v);
        Ok(())
    }
}

#[test]
fn expired_checkpoints_are_aborted_removed_and_fail_the_job_over_the_threshold() {
    let ck = tempfile::tempdir().unwrap();
    let env = StreamEnv::new();
    env.enable_checkpointing(Duration::from_millis(20));
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    env.checkpoint_config()
        .set_checkpoint_timeout(Duration::from_millis(30))
        .set_tolerable_checkpoint_failure_number(1)
        .set_externalized_checkpoint_retention(
            ExternalizedCheckpointRetention::RetainOnCancellation,
        );
    env.set_restart_strategy(RestartStrategy::none());
    // Each record blocks the keyed operator for 400 ms, so no checkpoint barrier can pass
    // within the 30 ms timeout.
    env.from_collection((0..50u64).collect())
        .key_by(|v| *v)
        .flat_map(Slow(Duration::from_millis(400)))
        .uid("slow")
        .discard();
    let err = env.execute("timeouts").unwrap_err().to_string();
    assert!(
        err.contains("Exceeded checkpoint tolerable failure threshold"),
        "{err}"
    );
    assert!(err.contains("NoRestartBackoffTimeStrategy"), "{err}");
    assert!(
        chk_dirs(ck.path()).is_empty(),
        "expired checkpoints leave no files: {:?}",
        chk_dirs(ck.path())
    );
}

fn failing_job(ck: &Path, retention: ExternalizedCheckpointRetention, retained: u32) -> StreamEnv {
    let env = StreamEnv::new();
    env.enable_checkpointing(Duration::from_millis(15));
    env.set_checkpoint_storage(ck.to_str().unwrap());
    env.checkpoint_config()
        .set_externalized_checkpoint_retention(retention)
        .set_num_retained(retained);
    env.set_restart_strategy(RestartStrategy::none());
    env.from_collection((0..400u64).collect())
        .uid("numbers")
        .try_map(|v: u64| {
            std::thread::sleep(Duration::from_millis(1));
            if v == 399 {
                bail!("last record fails");
            }
            Ok((v % 7, 1i64))
        })
        .key_by(|t| t.0)
        .sum(1)
        .uid("sum")
        .discard();
    env
}

#[test]
fn failed_job_keeps_num_retained_checkpoints_with_retention() {
    let ck = tempfile::tempdir().unwrap();
    let err = failing_job(
        ck.path(),
        ExternalizedCheckpointRetention::DeleteOnCancellation,
        3,
    )
    .execute("retain on failure")
    .unwrap_err();
    assert!(err.to_string().contains("last record fails"));
    let dirs = chk_dirs(ck.path());
    assert_eq!(
        dirs.len(),
        3,
        "num-retained = 3 keeps the three newest: {dirs:?}"
    );
    for d in &dirs {
        assert!(only_job_dir(ck.path()).join(d).join("_metadata").is_file());
    }
}

#[test]
fn a_failed_job_keeps_its_latest_checkpoint_even_without_retention() {
    // NO_EXTERNALIZED_CHECKPOINTS deletes checkpoints at the end of the job, but a job that
    // failed for good keeps the newest one: it is the only state left to resume from.
    let ck = tempfile::tempdir().unwrap();
    assert!(failing_job(
        ck.path(),
        ExternalizedCheckpointRetention::NoExternalizedCheckpoints,
        3
    )
    .execute("delete on failure")
    .is_err());
    let dirs = chk_dirs(ck.path());
    assert_eq!(dirs.len(), 1, "only the latest is kept: {dirs:?}");
    let job = only_job_dir(ck.path());
    let latest = floe::checkpoint::metadata::latest_complete_checkpoint(&job).unwrap();
    assert_eq!(latest, floe::storage::Location::Local(job.join(&dirs[0])));
}

#[test]
fn retention_table_matches_flink() {
    use ExternalizedCheckpointRetention::*;
    use JobStatus::*;
    for (r, finished, canceled, failed) in [
        (NoExternalizedCheckpoints, false, false, false),
        (DeleteOnCancellation, false, false, true),
        (RetainOnCancellation, false, true, true),
    ] {
        assert_eq!(r.keeps_on(Finished), finished);
        assert_eq!(r.keeps_on(Canceled), canceled);
        assert_eq!(r.keeps_on(Failed), failed);
    }
}

#[test]
fn restore_continues_counts_and_rejects_unknown_state() {
    let ck = tempfile::tempdir().unwrap();
    assert!(failing_job(
        ck.path(),
        ExternalizedCheckpointRetention::RetainOnCancellation,
        1
    )
    .execute("first")
    .is_err());
    let job_dir = std::fs::read_dir(ck.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let chk = std::fs::read_dir(&job_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();

    // A job without operator "sum" cannot take its state...
    let env = StreamEnv::new();
    env.set_restore_path(&chk);
    env.from_collection(vec![1u64])
        .uid("numbers")
        .map(|v| (v, 1i64))
        .key_by(|t| t.0)
        .sum(1)
        .uid("other")
        .discard();
    let err = env.execute("mismatch").unwrap_err().to_string();
    assert!(
        err.contains("Cannot map checkpoint/savepoint state for operator 'sum' (Keyed Aggregation, states 'aggregate')"),
        "{err}"
    );
    // ...unless told to skip it.
    let env = StreamEnv::from_arg_list(["-n", "-s", chk.to_str().unwrap()]).unwrap();
    let out = env
        .from_collection(vec![1u64])
        .uid("numbers")
        .map(|v| (v, 1i64))
        .key_by(|t| t.0)
        .sum(1)
        .uid("other")
        .collect();
    env.execute("skip").unwrap();
    // The source position was restored too: the collection was already consumed past index 0.
    assert!(out.take().is_empty());
    assert!(
        chk.join("_metadata").is_file(),
        "restoring never deletes the snapshot"
    );
}
