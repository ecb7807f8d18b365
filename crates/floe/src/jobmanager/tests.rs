//! The job manager driven end to end by a scripted executor: the test plays the tasks'
//! part (running, failing, finishing) and the fake acknowledges checkpoints, so every
//! lifecycle path runs through the real run loop, coordinator and files, without workers.

use super::*;
use crate::checkpoint::config::ExternalizedCheckpointRetention;
use crate::checkpoint::metadata::{OperatorKind, StateHandle};
use crate::runtime::plan::OperatorDecl;
use crate::runtime::protocol::ToExecutor;

/// Starts the executor of one attempt.
pub(super) type Deployer =
    dyn FnMut(&AttemptSpec, Sender<FromExecutor>) -> Box<dyn TaskExecutor> + Send;

const WAIT: Duration = Duration::from_secs(10);

/// Acknowledges every checkpoint at once (when `ack`), and finishes once the
/// stop-with-savepoint or the final checkpoint it was told about completes.
struct Fake {
    attempt: u32,
    tx: Sender<FromExecutor>,
    ack: bool,
    finish_after: Mutex<Option<u64>>,
    log: Arc<Mutex<Vec<ToExecutor>>>,
}

impl TaskExecutor for Fake {
    fn send(&self, cmd: ToExecutor) {
        self.log.lock_ok().push(cmd.clone());
        let attempt = self.attempt;
        match cmd {
            ToExecutor::TriggerCheckpoint { id, .. } if self.ack => {
                let _ = self.tx.send(FromExecutor::Ack {
                    attempt,
                    checkpoint_id: id,
                    task: task(),
                    state: StateHandle::Inline { data: vec![] },
                });
            }
            ToExecutor::StopSourcesAfter { id } | ToExecutor::FinalCheckpoint { id } => {
                *self.finish_after.lock_ok() = Some(id);
            }
            ToExecutor::CheckpointComplete { id } if *self.finish_after.lock_ok() == Some(id) => {
                let _ = self.tx.send(FromExecutor::Finished { attempt });
            }
            _ => {}
        }
    }
    fn shutdown(self: Box<Self>) {}
}

fn task() -> TaskId {
    TaskId {
        uid: "src".into(),
        subtask: 0,
    }
}

struct Harness {
    client: JobClient,
    attempts: Receiver<(u32, Sender<FromExecutor>)>,
    log: Arc<Mutex<Vec<ToExecutor>>>,
    dir: tempfile::TempDir,
}

fn harness(
    restart: RestartStrategy,
    retention: ExternalizedCheckpointRetention,
    ack: bool,
) -> Harness {
    // Only the checkpoints a test asks for.
    harness_with(restart, retention, ack, Duration::from_secs(3600))
}

fn harness_with(
    restart: RestartStrategy,
    retention: ExternalizedCheckpointRetention,
    ack: bool,
    interval: Duration,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan {
        job_name: "fake".into(),
        parallelism: 1,
        max_parallelism: 128,
        operators: vec![OperatorDecl {
            uid: "src".into(),
            explicit_uid: true,
            name: "Source: Fake".into(),
            state: Some(OperatorKind::Source),
            parallelism: 1,
            chain: 0,
        }],
        final_checkpoint: true,
        terminals: vec![],
    };
    let spec = JobSpec {
        cli_output: false,
        plan: Arc::new(plan),
        checkpoint: CheckpointConfig {
            interval: Some(interval),
            retention,
            ..Default::default()
        },
        restart,
        checkpoint_dir: Some(dir.path().join("chk").into()),
        restore: None,
        savepoint_dir: Some(dir.path().join("sp").into()),
        worker_processes: None,
        exception_history_size: 16,
    };
    let mut jm = JobManager::new(spec);
    let (attempts_tx, attempts) = crossbeam_channel::unbounded();
    let log = Arc::new(Mutex::new(Vec::new()));
    let fake_log = Arc::clone(&log);
    jm.workers = Workers::Scripted(Box::new(move |spec, tx| {
        attempts_tx.send((spec.attempt, tx.clone())).unwrap();
        Box::new(Fake {
            attempt: spec.attempt,
            tx,
            ack,
            finish_after: Mutex::new(None),
            log: Arc::clone(&fake_log),
        })
    }));
    let client = jm.spawn(None).unwrap();
    Harness {
        client,
        attempts,
        log,
        dir,
    }
}

impl Harness {
    /// The next attempt deploys; returns its channel, with its tasks reported running.
    fn attempt(&self, n: u32) -> Sender<FromExecutor> {
        let (a, tx) = self
            .attempts
            .recv_timeout(WAIT)
            .expect("an attempt deploys");
        assert_eq!(a, n);
        tx
    }

    fn run(&self, n: u32, tx: &Sender<FromExecutor>) {
        tx.send(FromExecutor::Running {
            attempt: n,
            tasks: vec![task()],
        })
        .unwrap();
    }

    fn fail(&self, n: u32, tx: &Sender<FromExecutor>) {
        tx.send(FromExecutor::Failed {
            attempt: n,
            task: "Source: Fake (1/1)".into(),
            error: format!("failure {n}"),
            unrecoverable: None,
        })
        .unwrap();
    }

    fn savepoint(
        &self,
        stop: Option<StopKind>,
    ) -> Receiver<std::result::Result<PathBuf, SavepointError>> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.client
            .commands
            .send(JobCommand::TriggerSavepoint {
                target: None,
                stop,
                reply,
            })
            .unwrap();
        rx
    }

    fn await_status(&self, s: JobStatus) {
        let end = Instant::now() + WAIT;
        while self.client.status() != s {
            assert!(
                Instant::now() < end,
                "status {} != {s}",
                self.client.status()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn await_log(&self, f: impl Fn(&ToExecutor) -> bool) {
        let end = Instant::now() + WAIT;
        while !self.log.lock_ok().iter().any(&f) {
            assert!(Instant::now() < end, "{:?}", self.log.lock_ok());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

const NONE: ExternalizedCheckpointRetention =
    ExternalizedCheckpointRetention::NoExternalizedCheckpoints;

#[test]
fn restarts_are_counted_until_the_strategy_says_no() {
    let h = harness(RestartStrategy::fixed_delay(2, Duration::ZERO), NONE, true);
    for n in 0..2 {
        let tx = h.attempt(n);
        h.run(n, &tx);
        h.fail(n, &tx);
    }
    let tx = h.attempt(2);
    h.run(2, &tx);
    // A message of an earlier attempt is fenced off.
    h.fail(1, &tx);
    tx.send(FromExecutor::Finished { attempt: 2 }).unwrap();
    let info = Arc::clone(&h.client.info);
    let r = h.client.wait().unwrap();
    assert_eq!((r.status, r.restarts), (JobStatus::Finished, 2));
    let info = info.lock_ok();
    assert_eq!(info.exceptions.len(), 2);
    assert_eq!(info.exceptions[1].message, "failure 1");

    let h = harness(RestartStrategy::fixed_delay(1, Duration::ZERO), NONE, true);
    for n in 0..2 {
        let tx = h.attempt(n);
        h.run(n, &tx);
        h.fail(n, &tx);
    }
    let e = h.client.wait().unwrap_err().to_string();
    assert!(
        e.contains("FAILED: Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy(")
            && e.ends_with("last failure: failure 1"),
        "{e}"
    );
}

#[test]
fn a_task_failure_racing_a_stop_with_savepoint_aborts_it_and_the_job_restarts() {
    let h = harness(RestartStrategy::fixed_delay(1, Duration::ZERO), NONE, false);
    let tx = h.attempt(0);
    h.run(0, &tx);
    let reply = h.savepoint(Some(StopKind::Stop));
    h.await_log(|c| matches!(c, ToExecutor::StopSourcesAfter { .. }));
    h.fail(0, &tx);
    let e = reply.recv_timeout(WAIT).unwrap().unwrap_err();
    assert_eq!(
        e,
        SavepointError::Aborted(crate::checkpoint::coordinator::AbortReason::Failover)
    );
    // The new attempt is not stopping: a savepoint is taken, and the job finishes normally.
    let tx = h.attempt(1);
    h.run(1, &tx);
    h.await_status(JobStatus::Running);
    let again = h.savepoint(None);
    h.await_log(|c| matches!(c, ToExecutor::TriggerCheckpoint { id: 2, .. }));
    tx.send(FromExecutor::Finished { attempt: 1 }).unwrap();
    assert!(again.recv_timeout(WAIT).unwrap().is_err(), "ended first");
    let r = h.client.wait().unwrap();
    assert_eq!((r.status, r.restarts), (JobStatus::Finished, 1));
}

#[test]
fn a_savepoint_waits_for_deploying_tasks_is_refused_by_a_restart_and_cancel_ends_the_restart() {
    let h = harness(
        RestartStrategy::fixed_delay(5, Duration::from_secs(600)),
        NONE,
        true,
    );
    let tx = h.attempt(0);
    // Requested before the tasks run: deferred, then refused when the attempt fails.
    let deferred = h.savepoint(None);
    std::thread::sleep(Duration::from_millis(50));
    h.fail(0, &tx);
    assert_eq!(
        deferred.recv_timeout(WAIT).unwrap(),
        Err(SavepointError::TasksStopped)
    );
    h.await_status(JobStatus::Restarting);
    let e = h.savepoint(None).recv_timeout(WAIT).unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "job {} is RESTARTING; no tasks are running",
            h.client.job_id()
        )
    );
    h.client.cancel();
    let r = h.client.wait().unwrap();
    assert_eq!((r.status, r.restarts), (JobStatus::Canceled, 0));
    assert!(
        h.attempts.try_recv().is_err(),
        "no attempt after the cancel"
    );
}

#[test]
fn a_deferred_savepoint_starts_once_the_tasks_run() {
    let h = harness(RestartStrategy::none(), NONE, true);
    let tx = h.attempt(0);
    let deferred = h.savepoint(None);
    std::thread::sleep(Duration::from_millis(50));
    h.run(0, &tx);
    let path = deferred.recv_timeout(WAIT).unwrap().unwrap();
    assert!(path
        .join(crate::checkpoint::metadata::METADATA_FILE)
        .is_file());
    h.client.cancel();
    assert_eq!(h.client.wait().unwrap().status, JobStatus::Canceled);
}

#[test]
fn the_final_checkpoint_completes_before_the_job_finishes() {
    let h = harness(RestartStrategy::none(), NONE, true);
    let tx = h.attempt(0);
    h.run(0, &tx);
    tx.send(FromExecutor::EndOfInput { attempt: 0 }).unwrap();
    let r = h.client.wait().unwrap();
    assert_eq!((r.status, r.checkpoints), (JobStatus::Finished, 1));
    let log = h.log.lock_ok();
    let final_at = log
        .iter()
        .position(|c| matches!(c, ToExecutor::FinalCheckpoint { id: 1 }))
        .expect("final checkpoint");
    assert!(matches!(
        log[final_at + 1],
        ToExecutor::TriggerCheckpoint { id: 1, .. }
    ));
    assert!(log
        .iter()
        .any(|c| matches!(c, ToExecutor::CheckpointComplete { id: 1 })));
}

#[test]
fn cancel_with_savepoint_ends_canceled_with_canceled_retention_and_stop_finishes() {
    use ExternalizedCheckpointRetention as R;
    for (stop, retention, status, kept) in [
        (
            StopKind::Cancel,
            R::RetainOnCancellation,
            JobStatus::Canceled,
            true,
        ),
        (
            StopKind::Cancel,
            R::DeleteOnCancellation,
            JobStatus::Canceled,
            false,
        ),
        (
            StopKind::Stop,
            R::RetainOnCancellation,
            JobStatus::Finished,
            false,
        ),
    ] {
        let h = harness(RestartStrategy::none(), retention, true);
        let tx = h.attempt(0);
        h.run(0, &tx);
        let path = h.savepoint(Some(stop)).recv_timeout(WAIT).unwrap().unwrap();
        assert!(path
            .join(crate::checkpoint::metadata::METADATA_FILE)
            .is_file());
        let Harness { client, dir, .. } = h;
        let job_dir = dir.path().join("chk").join(client.job_id());
        assert_eq!(client.wait().unwrap().status, status, "{stop:?}");
        // The stop-with-savepoint is also the job's checkpoint chk-1; retention decides.
        assert_eq!(
            job_dir.join("chk-1").is_dir(),
            kept,
            "{stop:?} {retention:?}"
        );
        assert!(path.is_dir(), "the savepoint is the user's");
    }
}

#[test]
fn a_failover_records_the_checkpoint_it_restored() {
    let h = harness_with(
        RestartStrategy::fixed_delay(1, Duration::ZERO),
        NONE,
        true,
        Duration::from_millis(20),
    );
    let tx = h.attempt(0);
    h.run(0, &tx);
    let end = Instant::now() + WAIT;
    while h.client.info().latest_completed.is_none() {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(h.client.info().latest_restored.is_none());
    h.fail(0, &tx);
    let _attempt1 = h.attempt(1);
    let info = h.client.info();
    let completed = info.latest_completed.expect("completed");
    let restored = info.latest_restored.expect("restored");
    assert_eq!(restored.id, completed.id);
    assert!(!restored.is_savepoint);
    assert_eq!(
        restored.external_path,
        format!("file:{}", completed.external_path)
    );
    assert_eq!(info.restored, 1);
    h.client.cancel();
    assert_eq!(h.client.wait().unwrap().status, JobStatus::Canceled);
}
