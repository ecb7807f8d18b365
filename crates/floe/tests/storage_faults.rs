//! Checkpoint storage that fails under a running job, on a real filesystem: a small tmpfs
//! mounted by the test and remounted read-only (which, unlike `chmod`, stops root too).
//! A full disk is a tmpfs smaller than the job's state.
//! A checkpoint that cannot be written fails cleanly, the job keeps running while failures
//! stay within `tolerable-failed-checkpoints`, fails over it, and no `chk-*` without its
//! `_metadata` is left behind.

mod common;

use floe::prelude::*;
use floe::JobClient;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted over a temporary directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("cannot run mount");
        assert!(
            st.success(),
            "mounting a tmpfs failed: these tests need root (CAP_SYS_ADMIN) to break storage for real"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts read-only or read-write, retrying while a file is still open for writing.
    fn set_read_only(&self, ro: bool) {
        let opt = if ro { "remount,ro" } else { "remount,rw" };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = Command::new("mount")
                .args(["-o", opt])
                .arg(self.path())
                .output()
                .unwrap();
            if o.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mount -o {opt}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Every `chk-*` directory under `root`, asserting each is complete: `_metadata` present.
fn complete_checkpoints(root: &Path) -> Vec<PathBuf> {
    let v: Vec<PathBuf> = common::checkpoints(root)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    for p in &v {
        assert!(
            p.join("_metadata").is_file(),
            "{} is left without _metadata",
            p.display()
        );
    }
    v
}

const RECORDS: u64 = 8000;

/// Counts `RECORDS` numbers per `v % keys`: more keys, more state to write per checkpoint.
fn job(storage: &Path, tolerable: u32, keys: u64) -> JobClient {
    let env = StreamEnv::new();
    // A long interval leaves the test time to repair storage between two checkpoints.
    env.enable_checkpointing(Duration::from_millis(300));
    env.set_checkpoint_storage(storage.to_str().unwrap());
    env.checkpoint_config()
        .set_tolerable_checkpoint_failure_number(tolerable)
        .set_externalized_checkpoint_retention(
            ExternalizedCheckpointRetention::RetainOnCancellation,
        );
    env.set_restart_strategy(RestartStrategy::none());
    env.from_collection((0..RECORDS).collect())
        .uid("numbers")
        .map(move |v: u64| {
            std::thread::sleep(Duration::from_micros(800));
            (v % keys, 1i64)
        })
        .key_by(|t| t.0)
        .sum(1)
        .uid("sum")
        .discard();
    env.execute_async("storage faults").unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn read_only_storage_within_tolerable_failures_keeps_the_job_running() {
    let fs = Tmpfs::mount("16m");
    let client = job(fs.path(), 2, 7);
    wait_until("a checkpoint completed", || client.info().completed >= 1);
    fs.set_read_only(true);
    wait_until("two checkpoints failed", || client.info().failed >= 2);
    fs.set_read_only(false);
    let before = client.info().completed;
    wait_until("a checkpoint completed after the fault", || {
        client.info().completed > before || client.info().status.is_terminal()
    });
    let info = client.info();
    assert_eq!(info.failed, 2, "exactly the two failures while read-only");
    assert!(info.completed > before, "checkpoints complete again");
    client
        .wait()
        .expect("the job finishes: 2 failures are tolerable");
    complete_checkpoints(fs.path());
}

#[test]
fn read_only_storage_over_tolerable_failures_fails_the_job() {
    let fs = Tmpfs::mount("16m");
    let client = job(fs.path(), 2, 7);
    wait_until("a checkpoint completed", || client.info().completed >= 1);
    fs.set_read_only(true);
    wait_until("the job ended", || client.info().status.is_terminal());
    let info = client.info();
    assert_eq!(
        info.failed, 3,
        "the third consecutive failure is one too many"
    );
    let err = client.wait().unwrap_err().to_string();
    assert!(
        err.contains("Exceeded checkpoint tolerable failure threshold"),
        "{err}"
    );
    fs.set_read_only(false);
    // The checkpoint completed before the fault is retained, whole.
    assert!(!complete_checkpoints(fs.path()).is_empty());
}

#[test]
fn a_full_disk_fails_the_checkpoint_cleanly() {
    // Every number is its own key: the state outgrows 96 KiB after a few checkpoints.
    let fs = Tmpfs::mount("96k");
    let client = job(fs.path(), 0, RECORDS);
    wait_until("the job ended", || client.info().status.is_terminal());
    let info = client.info();
    assert!(
        info.completed >= 1,
        "checkpoints complete while the state fits"
    );
    assert_eq!(
        info.failed, 1,
        "tolerable-failed-checkpoints = 0: the first failure ends it"
    );
    let reason = info.latest_failed.unwrap().failure_message.unwrap();
    assert!(reason.contains("No space left on device"), "{reason}");
    let err = client.wait().unwrap_err().to_string();
    assert!(
        err.contains("Exceeded checkpoint tolerable failure threshold"),
        "{err}"
    );
    // The failed checkpoint's partial files are gone; what is left is whole.
    let kept = complete_checkpoints(fs.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    for job in std::fs::read_dir(fs.path()).unwrap().flatten() {
        for f in std::fs::read_dir(job.path()).unwrap().flatten() {
            assert!(f.path().is_dir(), "stray file {}", f.path().display());
        }
    }
}
