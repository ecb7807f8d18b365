//! The exactly-once file sink through real job runs: failure and restore from a retained
//! checkpoint, a commit lost in a crash redone on restore, another job's files left alone, rolling
//! by size, and output without checkpointing.

mod common;

use common::latest_checkpoint;
use floe::checkpoint::metadata::{load_snapshot, StateHandle};
use floe::connectors::file_sink::{FileSink, PendingFile};
use floe::prelude::*;
use std::path::Path;
use std::time::Duration;

const N: u64 = 3000;

/// Numbers `0..N` through a slow map into a file sink; with `fail_at`, the map fails there.
fn job(ck: &Path, out: &Path, fail_at: Option<u64>, part_size: u64) -> StreamEnv {
    let env = StreamEnv::new();
    env.enable_checkpointing(Duration::from_millis(20));
    env.set_checkpoint_storage(ck.to_str().unwrap());
    env.checkpoint_config()
        .set_externalized_checkpoint_retention(
            ExternalizedCheckpointRetention::RetainOnCancellation,
        );
    env.set_restart_strategy(RestartStrategy::none());
    env.from_collection((0..N).collect())
        .uid("numbers")
        .try_map(move |v: u64| {
            std::thread::sleep(Duration::from_micros(300));
            if Some(v) == fail_at {
                bail!("record {v} fails");
            }
            Ok(v)
        })
        .sink_exactly_once(FileSink::for_row_format(out).with_max_part_size(part_size))
        .uid("out");
    env
}

/// Committed lines (parsed) and the names of hidden files left in `dir`.
fn output(dir: &Path) -> (Vec<u64>, Vec<String>) {
    let (mut lines, mut hidden) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            hidden.push(name);
        } else {
            assert!(name.starts_with("part-"), "unexpected file {name}");
            for l in std::fs::read_to_string(e.path()).unwrap().lines() {
                lines.push(l.parse().unwrap());
            }
        }
    }
    lines.sort();
    (lines, hidden)
}

#[test]
fn a_failed_job_restored_from_its_checkpoint_commits_every_record_once() {
    let ck = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = job(ck.path(), out.path(), Some(2000), 1 << 20)
        .execute("fails")
        .unwrap_err()
        .to_string();
    assert!(err.contains("record 2000 fails"), "{err}");
    let (first, _) = output(out.path());
    assert!(
        !first.is_empty() && first.len() < 2000,
        "committed {}",
        first.len()
    );
    assert_eq!(
        first,
        (0..first.len() as u64).collect::<Vec<_>>(),
        "a prefix, once"
    );

    let chk = latest_checkpoint(ck.path());
    // A crash right after the checkpoint completed, before its files were renamed: undo
    // the commit of every file the checkpoint names as pending.
    let snap = load_snapshot(&chk).unwrap();
    let mut undone = 0;
    for st in &snap.metadata.operator("out").expect("sink state").subtasks {
        let StateHandle::Inline { data } = &st.handle else {
            panic!("sink state is inline")
        };
        for p in serde_json::from_slice::<Vec<PendingFile>>(data).unwrap() {
            std::fs::rename(
                out.path().join(&p.committed),
                out.path().join(&p.in_progress),
            )
            .unwrap();
            undone += 1;
        }
    }
    assert!(undone > 0, "the last checkpoint names its pending files");
    // A file the failed job staged after the checkpoint (names are
    // `part-<sink tag>-<job>-<attempt>-<subtask>-<n>`): it belongs to that job, not to the
    // one restoring its checkpoint, which must leave it alone — its records are replayed
    // from the checkpoint's positions and committed under the new job's names.
    let committed = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(".part-") || n.starts_with("part-"))
        .unwrap();
    let tag = committed
        .trim_start_matches('.')
        .split('-')
        .nth(1)
        .unwrap()
        .to_string();
    let stale = format!(".part-{tag}-0123456789abcdef-0-0-7.inprogress");
    std::fs::write(out.path().join(&stale), "999999\n").unwrap();

    let env = job(ck.path(), out.path(), None, 1 << 20);
    env.set_restore_path(&chk);
    env.execute("restored").unwrap();
    let (all, hidden) = output(out.path());
    assert_eq!(all, (0..N).collect::<Vec<_>>(), "every record exactly once");
    assert_eq!(hidden, vec![stale], "only the other job's file is left");
}

#[test]
fn part_files_roll_by_size_and_never_exceed_it_by_more_than_a_flush() {
    let ck = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    job(ck.path(), out.path(), None, 1000)
        .execute("rolling")
        .unwrap();
    let (all, hidden) = output(out.path());
    assert_eq!(all, (0..N).collect::<Vec<_>>());
    assert!(hidden.is_empty(), "{hidden:?}");
    let sizes: Vec<u64> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    let total: u64 = sizes.iter().sum();
    assert!(
        sizes.len() as u64 >= total / 1000,
        "{} files for {total} bytes",
        sizes.len()
    );
    // A batch is encoded before the size check: a part exceeds the limit by < one batch.
    assert!(sizes.iter().all(|&s| s < 1000 + 4096 * 5), "{sizes:?}");
}

#[test]
fn a_source_limited_to_one_instance_still_lets_the_final_checkpoint_complete() {
    // At parallelism 2 the collection source has no reader on the second worker: that
    // worker's input must still move through the epochs while the job waits for its final
    // checkpoint.
    let ck = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let env = StreamEnv::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(50));
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    env.checkpoint_config()
        .set_checkpoint_timeout(Duration::from_secs(30));
    env.set_restart_strategy(RestartStrategy::none());
    env.from_collection((0..500u64).collect())
        .uid("numbers")
        .key_by(|v| *v)
        .reduce(|a, _| a)
        .uid("ids")
        .sink_exactly_once(FileSink::for_row_format(out.path()))
        .uid("out");
    let started = std::time::Instant::now();
    let r = env.execute("limited source").unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(r.checkpoints >= 1, "the final checkpoint completed");
    let (all, hidden) = output(out.path());
    assert_eq!(all, (0..500u64).collect::<Vec<_>>());
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn without_checkpointing_output_is_committed_when_the_job_finishes() {
    let out = tempfile::tempdir().unwrap();
    let env = StreamEnv::new();
    env.set_parallelism(2);
    env.from_collection((0..500u64).collect())
        .map(|v| v * 2)
        .sink_exactly_once(FileSink::for_row_format(out.path()));
    env.execute("no checkpoints").unwrap();
    let (all, hidden) = output(out.path());
    assert_eq!(all, (0..500u64).map(|v| v * 2).collect::<Vec<_>>());
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn stop_with_savepoint_commits_its_output_and_a_resume_continues_without_repeats() {
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let env = job(ck.path(), out.path(), None, 1 << 20);
    let client = env.execute_async("stopped").unwrap();
    // Let a few checkpoints commit, then stop in the middle of the input.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while output(out.path()).0.len() < 300 {
        assert!(std::time::Instant::now() < until, "no output committed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let savepoint = client.stop_with_savepoint(Some(sp.path())).unwrap();
    let r = client.wait().unwrap();
    assert_eq!(r.status, JobStatus::Finished);
    // Everything up to the savepoint is committed when the job reports FINISHED.
    let (first, hidden) = output(out.path());
    assert!(hidden.is_empty(), "uncommitted after stop: {hidden:?}");
    assert!(first.len() < N as usize, "stopped before the end");
    assert_eq!(first, (0..first.len() as u64).collect::<Vec<_>>());

    let env = job(ck.path(), out.path(), None, 1 << 20);
    env.set_restore_path(&savepoint);
    env.execute("resumed").unwrap();
    let (all, hidden) = output(out.path());
    assert_eq!(all, (0..N).collect::<Vec<_>>(), "every record exactly once");
    assert!(hidden.is_empty(), "{hidden:?}");
}
