//! Checkpoints and savepoints in an S3-compatible object store (a real `s3s-fs` server per
//! test, `floe_testkit::s3`): stored objects checked on the server's disk, failover and
//! restore from S3 exactly once, savepoints to `s3://` restored at another parallelism,
//! create-only `_metadata`, wrong credentials, retention deletes.

mod common;

use floe::checkpoint::metadata::{load_snapshot, write_metadata, CheckpointMetadata, SnapshotKind};
use floe::prelude::*;
use floe::storage::{Location, StorageError};
use floe_testkit::s3::S3Server;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const N: u64 = 3000;

/// Object-store settings are per process (the last `storage::configure` wins, as a job
/// binary runs one job): tests with different servers take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}
const KEYS: u64 = 7;

fn configure(env: &StreamEnv, s3: &S3Server) {
    for kv in s3.settings() {
        let (k, v) = kv.split_once('=').unwrap();
        env.set_config(k, v).unwrap();
    }
}

/// Numbers through a keyed running count into an exactly-once file sink, checkpointed to
/// `ck`; the map fails once at record `fail_at` when `fail` is still set.
fn job(
    s3: &S3Server,
    ck: &str,
    out: &Path,
    fail_at: u64,
    fail: Arc<AtomicBool>,
    parallelism: u32,
) -> StreamEnv {
    let env = StreamEnv::new();
    configure(&env, s3);
    env.set_parallelism(parallelism);
    env.enable_checkpointing(Duration::from_millis(30));
    env.set_checkpoint_storage(ck);
    env.checkpoint_config()
        .set_externalized_checkpoint_retention(
            ExternalizedCheckpointRetention::RetainOnCancellation,
        )
        .set_num_retained(2);
    env.set_restart_strategy(RestartStrategy::fixed_delay(2, Duration::from_millis(10)));
    env.from_collection((0..N).collect())
        .uid("numbers")
        .try_map(move |v: u64| {
            std::thread::sleep(Duration::from_micros(300));
            if v == fail_at && fail.swap(false, Ordering::SeqCst) {
                bail!("record {v} fails once");
            }
            Ok((v % KEYS, 1i64))
        })
        .key_by(|t| t.0)
        .sum(1)
        .uid("count")
        .map(|(k, c): (u64, i64)| format!("{k}:{c}"))
        .sink_exactly_once(floe::connectors::file_sink::FileSink::for_row_format(out))
        .uid("out");
    env
}

/// Every committed line of `dir`, sorted.
fn committed(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("part-") {
            lines.extend(
                std::fs::read_to_string(e.path())
                    .unwrap()
                    .lines()
                    .map(String::from),
            );
        }
    }
    lines.sort();
    lines
}

/// What `job` commits when every record counts exactly once: `k:1 ..= k:n_k` per key.
fn expected(n: u64) -> Vec<String> {
    let mut v = Vec::new();
    for k in 0..KEYS {
        let count = (0..n).filter(|x| x % KEYS == k).count();
        v.extend((1..=count).map(|c| format!("{k}:{c}")));
    }
    v.sort();
    v
}

/// `chk-<n>` directories under `<bucket>/<prefix>/<job>` on the server's disk that hold a
/// `_metadata` object, and the names of the files in the newest.
fn stored_checkpoints(s3: &S3Server, prefix: &str) -> (Vec<u64>, Vec<String>) {
    let root = s3.object_path(prefix);
    let mut ids = Vec::new();
    let mut newest: Option<(u64, PathBuf)> = None;
    for job in std::fs::read_dir(&root).unwrap().flatten() {
        for c in std::fs::read_dir(job.path()).unwrap().flatten() {
            let name = c.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_prefix("chk-")
                .and_then(|n| n.parse::<u64>().ok())
            {
                if c.path().join("_metadata").is_file() {
                    ids.push(id);
                    if newest.as_ref().is_none_or(|(n, _)| *n < id) {
                        newest = Some((id, c.path()));
                    }
                }
            }
        }
    }
    ids.sort();
    let files = newest
        .map(|(_, p)| {
            let mut f: Vec<String> = std::fs::read_dir(p)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            f.sort();
            f
        })
        .unwrap_or_default();
    (ids, files)
}

#[test]
fn a_job_checkpointed_to_s3_fails_over_and_restores_from_s3_exactly_once() {
    let _one = serial();
    let s3 = S3Server::start().unwrap();
    let out = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(true));
    let ck = s3.url("ck");
    job(&s3, &ck, out.path(), 2000, Arc::clone(&fail), 2)
        .execute("s3 failover")
        .unwrap();
    assert!(
        !fail.load(Ordering::SeqCst),
        "the injected failure happened"
    );
    assert_eq!(
        committed(out.path()),
        expected(N),
        "every record exactly once"
    );
    let (ids, _) = stored_checkpoints(&s3, "ck");
    assert_eq!(
        ids,
        Vec::<u64>::new(),
        "a FINISHED job's checkpoints are deleted on S3"
    );
}

#[test]
fn a_job_restored_with_s_from_an_s3_checkpoint_at_another_parallelism_commits_the_rest_once() {
    let _one = serial();
    let s3 = S3Server::start().unwrap();
    let out = tempfile::tempdir().unwrap();
    let env = job(
        &s3,
        &s3.url("ck"),
        out.path(),
        2000,
        Arc::new(AtomicBool::new(true)),
        2,
    );
    env.set_restart_strategy(RestartStrategy::none());
    let err = env.execute("fails").unwrap_err().to_string();
    assert!(err.contains("record 2000 fails once"), "{err}");
    let first = committed(out.path());
    assert!(!first.is_empty(), "a checkpoint completed and committed");
    let job_dir = std::fs::read_dir(s3.object_path("ck"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let (ids, files) = stored_checkpoints(&s3, "ck");
    assert_eq!(
        ids.len(),
        2,
        "num-retained = 2 on S3 too (older ones deleted): {ids:?}"
    );
    assert!(files.contains(&"_metadata".to_string()), "{files:?}");
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".state")).count(),
        2,
        "one keyed state file per subtask of 'count': {files:?}"
    );
    // The job directory in the bucket means its latest checkpoint, as a local one does.
    let ck = s3.url("ck");
    let snap = load_snapshot(Location::parse(&format!("{ck}/{job_dir}")).unwrap()).unwrap();
    assert_eq!(snap.metadata.checkpoint_id, *ids.last().unwrap());
    assert_eq!(
        snap.dir.to_string(),
        format!("{ck}/{job_dir}/chk-{}", ids.last().unwrap())
    );
    let env = job(
        &s3,
        &s3.url("ck2"),
        out.path(),
        0,
        Arc::new(AtomicBool::new(false)),
        3,
    );
    env.set_restore_path(format!("{}/{job_dir}", s3.url("ck")));
    env.execute("restored").unwrap();
    assert_eq!(
        committed(out.path()),
        expected(N),
        "every record exactly once"
    );
}

#[test]
fn a_savepoint_to_s3_restores_at_another_parallelism() {
    let _one = serial();
    let s3 = S3Server::start().unwrap();
    let out = tempfile::tempdir().unwrap();
    let env = job(
        &s3,
        &s3.url("ck"),
        out.path(),
        0,
        Arc::new(AtomicBool::new(false)),
        2,
    );
    let client = env.execute_async("to savepoint").unwrap();
    common::wait_until(Duration::from_secs(30), "some output committed", || {
        !committed(out.path()).is_empty()
    });
    let sp = client
        .stop_with_savepoint(Some(Path::new(&s3.url("sp"))))
        .unwrap();
    let sp = sp.to_string_lossy().into_owned();
    assert!(sp.starts_with("s3://floe/sp/savepoint-"), "{sp}");
    client.wait().unwrap();
    let snap = load_snapshot(Location::parse(&sp).unwrap()).unwrap();
    assert_eq!(snap.metadata.kind, SnapshotKind::Savepoint);
    let on_disk = s3.object_path(sp.strip_prefix("s3://floe/").unwrap());
    assert!(on_disk.join("_metadata").is_file(), "{}", on_disk.display());
    let env = job(
        &s3,
        &s3.url("ck"),
        out.path(),
        0,
        Arc::new(AtomicBool::new(false)),
        1,
    );
    env.set_restore_path(&sp);
    env.execute("from savepoint").unwrap();
    assert_eq!(
        committed(out.path()),
        expected(N),
        "every record exactly once"
    );
}

#[test]
fn a_second_metadata_writer_is_refused_with_a_typed_error_and_nothing_is_overwritten() {
    let _one = serial();
    let s3 = S3Server::start().unwrap();
    let conf = {
        let mut c = floe::config::Configuration::new();
        for kv in s3.settings() {
            c.set_dynamic(&kv).unwrap();
        }
        c
    };
    floe::storage::configure(&conf).unwrap();
    let dir = Location::parse(&s3.url("race/chk-1")).unwrap();
    let meta = |job_name: &str| {
        CheckpointMetadata::new(
            "0123456789abcdef0123456789abcdef",
            job_name,
            1,
            SnapshotKind::Checkpoint,
            1,
            128,
            vec![],
        )
    };
    write_metadata(&dir, &meta("first")).unwrap();
    let err = write_metadata(&dir, &meta("second")).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<StorageError>(),
            Some(StorageError::AlreadyExists(_))
        ),
        "{err:#}"
    );
    assert_eq!(load_snapshot(&dir).unwrap().metadata.job_name, "first");
    // Locally too: the second link is refused.
    let local = tempfile::tempdir().unwrap();
    write_metadata(local.path(), &meta("first")).unwrap();
    let err = write_metadata(local.path(), &meta("second")).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<StorageError>(),
            Some(StorageError::AlreadyExists(_))
        ),
        "{err:#}"
    );
    assert_eq!(
        load_snapshot(local.path()).unwrap().metadata.job_name,
        "first"
    );
}

#[test]
fn a_wrong_secret_key_fails_the_job_in_one_line_naming_the_location() {
    let _one = serial();
    let s3 = S3Server::start().unwrap();
    let out = tempfile::tempdir().unwrap();
    let env = job(
        &s3,
        &s3.url("ck"),
        out.path(),
        0,
        Arc::new(AtomicBool::new(false)),
        1,
    );
    env.set_config("s3.secret-key", "wrong").unwrap();
    let err = format!("{:#}", env.execute("wrong key").unwrap_err());
    assert!(err.contains("s3://floe/ck/"), "{err}");
    assert!(err.contains("is not writable"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn an_object_above_the_multipart_threshold_is_uploaded_in_parts_and_reads_back_whole() {
    let _one = serial();
    let s3 = S3Server::start().unwrap();
    let mut conf = floe::config::Configuration::new();
    for kv in s3.settings() {
        conf.set_dynamic(&kv).unwrap();
    }
    floe::storage::configure(&conf).unwrap();
    let loc = Location::parse(&s3.url("big/x.state")).unwrap();
    let bytes: Vec<u8> = (0..floe::storage::MULTIPART_THRESHOLD as u32 + 3_000_000)
        .map(|i| (i % 251) as u8)
        .collect();
    floe::storage::write(&loc, bytes.clone()).unwrap();
    assert_eq!(floe::storage::size(&loc).unwrap(), Some(bytes.len() as u64));
    assert_eq!(std::fs::read(s3.object_path("big/x.state")).unwrap(), bytes);
    assert_eq!(floe::storage::read(&loc).unwrap(), bytes);
    assert_eq!(
        floe::storage::delete_all(&Location::parse(&s3.url("big")).unwrap()).unwrap(),
        1
    );
    assert_eq!(floe::storage::size(&loc).unwrap(), None);
}
