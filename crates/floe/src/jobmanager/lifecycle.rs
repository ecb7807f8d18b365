//! The job's lifecycle as a state machine: the [`Phase`]s a job goes through, the
//! [`Event`]s that move it between them, and the [`Effect`]s each move asks of the job
//! manager. [`Lifecycle::on`] is pure (no processes, files, clocks or channels: time comes
//! in with the event), so every scheduling rule — when to restart, what a cancel during a
//! restart does, how a stop-with-savepoint ends — is decided and tested here; the run loop
//! in `mod.rs` only turns executor messages and commands into events and performs effects.
//!
//! ```text
//!   Deploying --TasksRunning--> Running --EndOfInput--> FinalCheckpoint
//!      |                          |  ^                      |
//!      |                StopTriggered  SavepointAborted     |
//!      |                          v  |                      |
//!      |                        Stopping                    |
//!      |                                                    |
//!      +-- any live phase: TaskFailed --> Restarting{until} --RestartDelayElapsed--> Deploying
//!      |                                  (or Terminal(FAILED) when the strategy says no)
//!      +-- any live phase: TasksFinished --> Terminal(FINISHED, or CANCELED for cancel -s)
//!      +-- any phase: Cancel --> Terminal(CANCELED)
//! ```

use super::restart::RestartBackoff;
use crate::checkpoint::coordinator::CheckpointId;
use crate::job::JobStatus;
use crate::runtime::protocol::{bounded_message, Unrecoverable};
use std::time::Instant;

/// How a job ends after its stop-with-savepoint completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopKind {
    /// `flink stop`: the job ends FINISHED.
    Stop,
    /// `flink cancel -s`, REST `cancel-job: true`: the job ends CANCELED, and CANCELED's
    /// retention applies.
    Cancel,
}

impl StopKind {
    /// The job's terminal status once its tasks finished after the savepoint.
    pub fn terminal_status(self) -> JobStatus {
        match self {
            StopKind::Stop => JobStatus::Finished,
            StopKind::Cancel => JobStatus::Canceled,
        }
    }
}

/// Where the job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The attempt's tasks are starting; savepoints requested now wait until they run.
    Deploying,
    /// Every task runs; checkpoints and savepoints are taken.
    Running,
    /// Every source's input ended; the final checkpoint is under way, after which the
    /// tasks finish.
    FinalCheckpoint,
    /// A stop- or cancel-with-savepoint is under way (or completed, and the tasks are
    /// finishing).
    Stopping {
        /// The savepoint's id.
        savepoint: CheckpointId,
        /// How the job ends after it.
        kind: StopKind,
    },
    /// Between attempts: the restart strategy's delay runs until `until`.
    Restarting {
        /// When the next attempt deploys.
        until: Instant,
    },
    /// The job ended.
    Terminal {
        /// FINISHED, CANCELED or FAILED.
        status: JobStatus,
        /// Why it FAILED.
        error: Option<String>,
    },
}

/// A task failure, as the executor reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskFailure {
    /// The failing task, as Flink names it (`Map (1/1)`, `Checkpoint Coordinator`).
    pub task: String,
    /// The error.
    pub error: String,
    /// Set when restarting cannot help.
    pub unrecoverable: Option<Unrecoverable>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Every task of the current attempt runs.
    TasksRunning,
    /// Every source of the current attempt read all of its input.
    EndOfInput,
    /// Every task of the current attempt finished.
    TasksFinished,
    /// A task of the current attempt failed (or it could not be deployed, or the checkpoint
    /// coordinator failed the job).
    TaskFailed(TaskFailure),
    /// A stop- or cancel-with-savepoint was triggered.
    StopTriggered {
        /// The savepoint's id.
        savepoint: CheckpointId,
        /// How the job ends after it.
        kind: StopKind,
    },
    /// A checkpoint or savepoint was aborted.
    SnapshotAborted(CheckpointId),
    /// The job is to be cancelled (a command, the cancel flag, a signal).
    Cancel,
    /// The restart delay is over.
    RestartDelayElapsed,
}

/// What the job manager must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Record and log a status transition.
    Transition(JobStatus),
    /// Deploy the tasks of attempt `attempt` (0: from the `-s` snapshot, if any; later ones
    /// from the job's latest restore point).
    Deploy {
        /// Attempt number.
        attempt: u32,
    },
    /// The tasks run: log them, start checkpointing and the savepoints that waited.
    StartCheckpointing,
    /// Trigger the final checkpoint.
    TriggerFinalCheckpoint,
    /// Stop the attempt's tasks and abort its pending checkpoints; savepoints that waited
    /// for the tasks are refused.
    StopTasks,
    /// Log a task failure and add it to the exception history.
    ReportFailure {
        /// The task.
        task: String,
        /// The attempt it failed in.
        attempt: u32,
        /// The task state it failed in (`RUNNING`, `INITIALIZING`).
        from: &'static str,
        /// The error (bounded).
        error: String,
    },
    /// Tell the CLI and the exit report how the job ends.
    Announce(JobStatus),
    /// Log the job's failure as Flink's `JobException`.
    JobException(String),
    /// Keep or delete the job's checkpoints for its terminal status.
    ApplyRetention(JobStatus),
}

/// Whether a savepoint request can be served now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Trigger it.
    Start,
    /// The tasks are deploying: trigger it once they run.
    Defer,
    /// Another stop-with-savepoint is under way.
    StopInProgress,
    /// No tasks until the restart delay is over.
    Restarting,
    /// The job ended.
    Ended,
}

/// One job's lifecycle: its phase, its attempt number and its restart strategy's state.
pub(crate) struct Lifecycle {
    phase: Phase,
    attempt: u32,
    backoff: Box<dyn RestartBackoff>,
}

impl Lifecycle {
    /// A job that has not started; [`Lifecycle::start`] deploys it.
    pub(crate) fn new(backoff: Box<dyn RestartBackoff>) -> Self {
        Lifecycle {
            phase: Phase::Deploying,
            attempt: 0,
            backoff,
        }
    }

    /// Its first attempt is `attempt` (a job manager taking the job back from
    /// high-availability storage continues after its predecessor's attempts).
    pub(crate) fn starting_at(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The job is submitted: CREATED → RUNNING and the first attempt deploys.
    pub(crate) fn start(&mut self) -> Vec<Effect> {
        self.phase = Phase::Deploying;
        vec![
            Effect::Transition(JobStatus::Running),
            Effect::Deploy {
                attempt: self.attempt,
            },
        ]
    }

    /// The current phase.
    pub(crate) fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The current (or last) attempt: also the number of restarts so far, counted from
    /// [`Lifecycle::starting_at`]'s attempt.
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the job ended.
    pub(crate) fn is_terminal(&self) -> bool {
        matches!(self.phase, Phase::Terminal { .. })
    }

    /// Whether the attempt's tasks are deployed or running (so executor messages count).
    pub(crate) fn is_live(&self) -> bool {
        !matches!(
            self.phase,
            Phase::Restarting { .. } | Phase::Terminal { .. }
        )
    }

    /// Whether a savepoint request can be served now.
    pub(crate) fn admit_savepoint(&self) -> Admission {
        match self.phase {
            Phase::Deploying => Admission::Defer,
            Phase::Running | Phase::FinalCheckpoint => Admission::Start,
            Phase::Stopping { .. } => Admission::StopInProgress,
            Phase::Restarting { .. } => Admission::Restarting,
            Phase::Terminal { .. } => Admission::Ended,
        }
    }

    /// Moves the job on `event` (at time `now`) and returns what the job manager must do.
    pub(crate) fn on(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        match (&self.phase, event) {
            (Phase::Terminal { .. }, _) => Vec::new(),
            (Phase::Restarting { .. }, Event::RestartDelayElapsed) => {
                self.attempt += 1;
                self.phase = Phase::Deploying;
                vec![
                    Effect::Transition(JobStatus::Running),
                    Effect::Deploy {
                        attempt: self.attempt,
                    },
                ]
            }
            (Phase::Restarting { .. }, Event::Cancel) => self.end(JobStatus::Canceled, None),
            // Messages of the attempt that failed: it is gone.
            (Phase::Restarting { .. }, _) => Vec::new(),
            (_, Event::RestartDelayElapsed) => Vec::new(),
            (Phase::Deploying, Event::TasksRunning) => {
                self.phase = Phase::Running;
                vec![Effect::StartCheckpointing]
            }
            (_, Event::TasksRunning) => Vec::new(),
            (phase, Event::EndOfInput) => {
                if *phase == Phase::Running {
                    self.phase = Phase::FinalCheckpoint;
                }
                vec![Effect::TriggerFinalCheckpoint]
            }
            (Phase::Running | Phase::FinalCheckpoint, Event::StopTriggered { savepoint, kind }) => {
                self.phase = Phase::Stopping { savepoint, kind };
                Vec::new()
            }
            (_, Event::StopTriggered { .. }) => Vec::new(),
            (Phase::Stopping { savepoint, .. }, Event::SnapshotAborted(id)) if *savepoint == id => {
                // The sources resume: the job goes on.
                self.phase = Phase::Running;
                Vec::new()
            }
            (_, Event::SnapshotAborted(_)) => Vec::new(),
            (phase, Event::TasksFinished) => {
                let status = match phase {
                    Phase::Stopping { kind, .. } => kind.terminal_status(),
                    _ => JobStatus::Finished,
                };
                let mut effects = vec![Effect::StopTasks];
                effects.extend(self.end(status, None));
                effects
            }
            (_, Event::Cancel) => {
                let mut effects = vec![Effect::StopTasks];
                effects.extend(self.end(JobStatus::Canceled, None));
                effects
            }
            (_, Event::TaskFailed(failure)) => self.failed(failure, now),
        }
    }

    fn failed(&mut self, failure: TaskFailure, now: Instant) -> Vec<Effect> {
        let attempt = self.attempt;
        let error = bounded_message(failure.error);
        let mut effects = vec![
            Effect::StopTasks,
            Effect::ReportFailure {
                task: failure.task,
                attempt,
                from: if failure.unrecoverable.is_some() {
                    "INITIALIZING"
                } else {
                    "RUNNING"
                },
                error: error.clone(),
            },
        ];
        if let Some(why) = failure.unrecoverable {
            effects.extend(self.end(
                JobStatus::Failed,
                Some(format!("{error} (not restarted: {why})")),
            ));
            return effects;
        }
        self.backoff.notify_failure(now);
        if self.backoff.can_restart() {
            self.phase = Phase::Restarting {
                until: now + self.backoff.backoff_time(),
            };
            effects.push(Effect::Transition(JobStatus::Restarting));
        } else {
            let error = format!(
                "Recovery is suppressed by {}; last failure: {error}",
                self.backoff
            );
            effects.extend(self.end(JobStatus::Failed, Some(error)));
        }
        effects
    }

    /// The job ends in `status`: announce it, pass through CANCELLING or FAILING as Flink
    /// does, and apply retention.
    fn end(&mut self, status: JobStatus, error: Option<String>) -> Vec<Effect> {
        let mut effects = vec![Effect::Announce(status)];
        match status {
            JobStatus::Canceled => effects.push(Effect::Transition(JobStatus::Cancelling)),
            JobStatus::Failed => {
                let e = error.clone().unwrap_or_default();
                effects.push(Effect::JobException(e));
                effects.push(Effect::Transition(JobStatus::Failing));
            }
            _ => {}
        }
        effects.push(Effect::Transition(status));
        effects.push(Effect::ApplyRetention(status));
        self.phase = Phase::Terminal { status, error };
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobmanager::restart::RestartStrategy;
    use std::time::Duration;

    fn failure(task: &str) -> Event {
        Event::TaskFailed(TaskFailure {
            task: task.into(),
            error: "boom".into(),
            unrecoverable: None,
        })
    }

    fn running(strategy: RestartStrategy) -> Lifecycle {
        let mut l = Lifecycle::new(strategy.backoff_with_seed(7));
        assert_eq!(
            l.start(),
            [
                Effect::Transition(JobStatus::Running),
                Effect::Deploy { attempt: 0 }
            ]
        );
        assert_eq!(
            l.on(Event::TasksRunning, Instant::now()),
            [Effect::StartCheckpointing]
        );
        l
    }

    fn restart(l: &mut Lifecycle, now: Instant) {
        let until = match l.phase() {
            Phase::Restarting { until } => *until,
            p => panic!("not restarting: {p:?}"),
        };
        assert!(until >= now);
        let next = l.attempt() + 1;
        assert_eq!(
            l.on(Event::RestartDelayElapsed, until),
            [
                Effect::Transition(JobStatus::Running),
                Effect::Deploy { attempt: next }
            ]
        );
        assert_eq!(
            l.on(Event::TasksRunning, until),
            [Effect::StartCheckpointing]
        );
    }

    fn terminal(l: &Lifecycle) -> (JobStatus, Option<String>) {
        match l.phase() {
            Phase::Terminal { status, error } => (*status, error.clone()),
            p => panic!("not terminal: {p:?}"),
        }
    }

    #[test]
    fn a_job_taken_back_continues_the_attempt_numbers_and_keeps_its_restart_budget() {
        let t0 = Instant::now();
        let strategy = RestartStrategy::fixed_delay(1, Duration::from_millis(300));
        let mut l = Lifecycle::new(strategy.backoff_with_seed(7)).starting_at(3);
        assert_eq!(
            l.start(),
            [
                Effect::Transition(JobStatus::Running),
                Effect::Deploy { attempt: 3 }
            ]
        );
        l.on(Event::TasksRunning, t0);
        let e = l.on(failure("Map (1/1)"), t0);
        assert!(
            matches!(&e[1], Effect::ReportFailure { attempt: 3, .. }),
            "{e:?}"
        );
        assert_eq!(e[2], Effect::Transition(JobStatus::Restarting));
        let e = l.on(Event::RestartDelayElapsed, t0 + Duration::from_millis(300));
        assert_eq!(e[1], Effect::Deploy { attempt: 4 });
    }

    #[test]
    fn fixed_delay_restarts_max_attempts_times_then_fails_with_flinks_message() {
        let t0 = Instant::now();
        let mut l = running(RestartStrategy::fixed_delay(2, Duration::from_millis(300)));
        for n in 0..2 {
            let e = l.on(failure("Map (1/1)"), t0);
            assert_eq!(e[0], Effect::StopTasks);
            assert!(
                matches!(&e[1], Effect::ReportFailure { attempt, from: "RUNNING", .. } if *attempt == n)
            );
            assert_eq!(e[2], Effect::Transition(JobStatus::Restarting));
            assert_eq!(
                l.phase(),
                &Phase::Restarting {
                    until: t0 + Duration::from_millis(300)
                }
            );
            restart(&mut l, t0);
        }
        let e = l.on(failure("Map (1/1)"), t0);
        assert_eq!(l.attempt(), 2, "two restarts");
        let (status, error) = terminal(&l);
        assert_eq!(status, JobStatus::Failed);
        let error = error.unwrap();
        assert!(
            error.starts_with("Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy("),
            "{error}"
        );
        assert!(error.ends_with("last failure: boom"), "{error}");
        assert_eq!(
            &e[2..],
            [
                Effect::Announce(JobStatus::Failed),
                Effect::JobException(error),
                Effect::Transition(JobStatus::Failing),
                Effect::Transition(JobStatus::Failed),
                Effect::ApplyRetention(JobStatus::Failed),
            ]
        );
    }

    #[test]
    fn failure_rate_counts_failures_per_interval_only() {
        let t0 = Instant::now();
        let mut l = running(RestartStrategy::failure_rate(
            2,
            Duration::from_secs(10),
            Duration::ZERO,
        ));
        l.on(failure("a"), t0);
        restart(&mut l, t0);
        l.on(failure("a"), t0 + Duration::from_secs(1));
        restart(&mut l, t0 + Duration::from_secs(1));
        // The first failure left the interval: two in it again, so still restartable.
        l.on(failure("a"), t0 + Duration::from_secs(11));
        restart(&mut l, t0 + Duration::from_secs(11));
        l.on(failure("a"), t0 + Duration::from_secs(12));
        restart(&mut l, t0 + Duration::from_secs(12));
        // Three within ten seconds (11, 12, 13): no more.
        l.on(failure("a"), t0 + Duration::from_secs(13));
        assert_eq!(terminal(&l).0, JobStatus::Failed);
        assert_eq!(l.attempt(), 4);
    }

    #[test]
    fn no_restart_strategy_fails_on_the_first_failure_and_unrecoverable_never_asks_it() {
        let mut l = running(RestartStrategy::none());
        l.on(failure("a"), Instant::now());
        assert_eq!(terminal(&l).0, JobStatus::Failed);

        let mut l = running(RestartStrategy::fixed_delay(10, Duration::ZERO));
        let e = l.on(
            Event::TaskFailed(TaskFailure {
                task: "Keyed Aggregation (1/1)".into(),
                error: "bad state".into(),
                unrecoverable: Some(Unrecoverable::IncompatibleState),
            }),
            Instant::now(),
        );
        assert!(matches!(
            &e[1],
            Effect::ReportFailure {
                from: "INITIALIZING",
                ..
            }
        ));
        let (status, error) = terminal(&l);
        assert_eq!(status, JobStatus::Failed);
        assert_eq!(
            error.unwrap(),
            "bad state (not restarted: the snapshot's state does not fit the job)"
        );
    }

    #[test]
    fn cancel_during_restart_ends_canceled_without_deploying() {
        let t0 = Instant::now();
        let mut l = running(RestartStrategy::fixed_delay(3, Duration::from_secs(60)));
        l.on(failure("a"), t0);
        assert_eq!(l.admit_savepoint(), Admission::Restarting);
        // An old attempt's messages change nothing.
        assert!(l.on(Event::TasksFinished, t0).is_empty());
        assert_eq!(
            l.on(Event::Cancel, t0),
            [
                Effect::Announce(JobStatus::Canceled),
                Effect::Transition(JobStatus::Cancelling),
                Effect::Transition(JobStatus::Canceled),
                Effect::ApplyRetention(JobStatus::Canceled),
            ],
            "no StopTasks: the failed attempt's tasks are already gone"
        );
        assert!(l.on(Event::RestartDelayElapsed, t0).is_empty());
        assert_eq!(l.attempt(), 0);
    }

    #[test]
    fn stop_with_savepoint_finishes_and_cancel_with_savepoint_cancels() {
        for (kind, status) in [
            (StopKind::Stop, JobStatus::Finished),
            (StopKind::Cancel, JobStatus::Canceled),
        ] {
            let mut l = running(RestartStrategy::none());
            assert_eq!(l.admit_savepoint(), Admission::Start);
            l.on(
                Event::StopTriggered {
                    savepoint: CheckpointId(4),
                    kind,
                },
                Instant::now(),
            );
            assert_eq!(l.admit_savepoint(), Admission::StopInProgress);
            let e = l.on(Event::TasksFinished, Instant::now());
            assert_eq!(e[0], Effect::StopTasks);
            assert_eq!(e[1], Effect::Announce(status));
            assert_eq!(e.last(), Some(&Effect::ApplyRetention(status)));
            assert_eq!(terminal(&l), (status, None));
        }
    }

    #[test]
    fn a_failed_stop_savepoint_lets_the_job_go_on() {
        let mut l = running(RestartStrategy::none());
        let stop = Event::StopTriggered {
            savepoint: CheckpointId(4),
            kind: StopKind::Cancel,
        };
        l.on(stop, Instant::now());
        l.on(Event::SnapshotAborted(CheckpointId(3)), Instant::now());
        assert_eq!(l.admit_savepoint(), Admission::StopInProgress, "another id");
        l.on(Event::SnapshotAborted(CheckpointId(4)), Instant::now());
        assert_eq!(l.phase(), &Phase::Running);
        l.on(Event::TasksFinished, Instant::now());
        assert_eq!(terminal(&l).0, JobStatus::Finished, "no cancel any more");
    }

    #[test]
    fn a_task_failure_racing_a_stop_with_savepoint_restarts_and_forgets_the_stop() {
        let t0 = Instant::now();
        let mut l = running(RestartStrategy::fixed_delay(1, Duration::ZERO));
        l.on(
            Event::StopTriggered {
                savepoint: CheckpointId(2),
                kind: StopKind::Cancel,
            },
            t0,
        );
        let e = l.on(failure("Map (1/1)"), t0);
        assert_eq!(e.last(), Some(&Effect::Transition(JobStatus::Restarting)));
        // The abort of the stop savepoint (StopTasks) arrives after the failure.
        assert!(l.on(Event::SnapshotAborted(CheckpointId(2)), t0).is_empty());
        restart(&mut l, t0);
        assert_eq!(l.admit_savepoint(), Admission::Start);
        l.on(Event::TasksFinished, t0);
        assert_eq!(terminal(&l).0, JobStatus::Finished);
    }

    #[test]
    fn savepoints_wait_for_deploying_tasks_and_are_refused_while_restarting() {
        let t0 = Instant::now();
        let mut l = Lifecycle::new(RestartStrategy::fixed_delay(1, Duration::ZERO).backoff());
        l.start();
        assert_eq!(l.admit_savepoint(), Admission::Defer);
        // The attempt fails before its tasks run: StopTasks refuses what waited.
        let e = l.on(failure("worker process"), t0);
        assert_eq!(e[0], Effect::StopTasks);
        assert_eq!(l.admit_savepoint(), Admission::Restarting);
        l.on(Event::RestartDelayElapsed, t0);
        assert_eq!(l.admit_savepoint(), Admission::Defer);
        assert_eq!(l.on(Event::TasksRunning, t0), [Effect::StartCheckpointing]);
        assert_eq!(l.admit_savepoint(), Admission::Start);
    }

    #[test]
    fn the_final_checkpoint_then_finished() {
        let mut l = running(RestartStrategy::none());
        assert_eq!(
            l.on(Event::EndOfInput, Instant::now()),
            [Effect::TriggerFinalCheckpoint]
        );
        assert_eq!(l.phase(), &Phase::FinalCheckpoint);
        assert_eq!(l.admit_savepoint(), Admission::Start);
        let e = l.on(Event::TasksFinished, Instant::now());
        assert_eq!(
            e,
            [
                Effect::StopTasks,
                Effect::Announce(JobStatus::Finished),
                Effect::Transition(JobStatus::Finished),
                Effect::ApplyRetention(JobStatus::Finished),
            ]
        );
        assert!(l.on(Event::Cancel, Instant::now()).is_empty(), "ended");
    }
}
