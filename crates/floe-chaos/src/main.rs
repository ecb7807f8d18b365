//! `floe-chaos`: runs an exactly-once job through `floe run` on generated input with a
//! known answer, injects faults at random times from a seeded RNG, and checks that the
//! committed output holds every line of the answer exactly once.
//!
//! ```text
//! floe-chaos --faults 1000 --seed 7
//! floe-chaos --kind window --faults 300 --seed 7
//! ```
//!
//! The job runs in rounds: each round is a fresh job over fresh input; faults continue
//! into the next round when a job finishes, until `--faults` were injected. The last line
//! is a `key=value` summary; the exit code is 0 only when nothing was lost, duplicated or
//! wrong and every round's job finished.
//!
//! Jobs (`--kind`):
//! - `word-count` (the default): `exactly_once_word_count` over words; the answer is every
//!   `(word,n)` for `n = 1..=count(word)`, each exactly once.
//! - `window`: `window_word_count`, tumbling event-time windows (`--window-ms`, default
//!   10 s; `--lateness-ms`, default 1 s) over lines `<epoch-millis> <word>` in 4 files (the
//!   source's splits, each with its own bounded-out-of-orderness watermarks,
//!   `--out-of-orderness-ms`, default 2 s), and `timers`: `timer_word_count`, the same
//!   counts from a keyed process function with event-time timers. The answer is what an
//!   uninterrupted run commits, computed by the harness from the input it generated: one
//!   `(word,<start>,<end>,<count>)` per word and window that has records, each exactly once
//!   (no duplicate, none missing, no other line: a window that fired with another count is
//!   `wrong` and its right result `lost`).
//!
//! Why the event-time answer is exact whatever fails when: the input's disorder stays
//! within the watermarks' bound (every record is at most the bound behind the largest
//! timestamp before it in its file, and a file starts at most the bound behind where the
//! files before it ended; a source subtask reads its files one after the other in name
//! order), so no record is ever behind a watermark, in any interleaving of the splits and
//! subtasks: every window fires once, when the watermark passes its end (or at the end of
//! the input), with its full count. A restored job replays from the checkpoint's cut, and
//! its operators restore the cut's watermark as a floor, which every replayed record is
//! ahead of; the records after the cut are counted again into the restored window state,
//! and only checkpoint-committed output counts. So the committed output must equal an
//! uninterrupted run's exactly.
//!
//! Faults: `kill -9` of a worker process, `kill -STOP` of a worker past the heartbeat
//! timeout, a panic in user code, checkpoint storage remounted read-only or filled up (a
//! tmpfs the harness mounts: needs root; skipped otherwise, and said so), a worker paused
//! past the checkpoint timeout, a savepoint followed by `kill -9` of the job manager and a
//! resume from the job's checkpoint directory, a second job writing into the same output
//! directory, and (in the rounds that run on a session cluster, every other one) `kill -9`
//! of the cluster daemon. Everything runs on 127.0.0.1 and temporary directories. `--only
//! kill9,stop` injects just the kinds named.
//!
//! With `--multi-host` (`--hosts 3`, needs root) every round runs on a cluster of three
//! network-namespace hosts: host 1 runs the S3 server (`s3s-fs`, where checkpoints,
//! savepoints and HA records go) and the job manager, hosts 2 and 3 a task manager each.
//! Rounds alternate between parallelism `--parallelism` (packed onto one task manager, the
//! other one's slots spare) and every slot of both task managers (one timely cluster across
//! the hosts). The host faults join the others: a task manager host crashed (then a
//! replacement task manager), just its task manager daemon killed, its link unplugged, the
//! host frozen, the job manager host's Floe processes killed (then the daemon restarted),
//! and the S3 server stopped for a while.

mod faults;
mod input;
mod kind;
mod multihost;
mod round;
mod verify;

use anyhow::Context as _;
use clap::Parser;
use faults::{alive, signal, Fault, Storage};
use input::EventTime;
use kind::JobKind;
use multihost::{Net, Timing, TM_HOSTS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use round::{Cluster, Round, Setup};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use verify::{Answer, Verdict};

#[derive(Parser, Debug)]
#[command(
    name = "floe-chaos",
    version,
    about = "Exactly-once under injected faults"
)]
struct Args {
    /// Faults to inject in total.
    #[arg(long, default_value_t = 30)]
    faults: u64,
    /// Seed of the input and of the fault schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The job under test.
    #[arg(long, value_enum, default_value_t = JobKind::WordCount)]
    kind: JobKind,
    /// Words of input per round (for the event-time jobs: lines `<epoch-millis> <word>`;
    /// default 6,000,000 words, 2,000,000 lines).
    #[arg(long)]
    words_per_round: Option<u64>,
    /// Event-time jobs: the size of the tumbling windows, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    window_ms: i64,
    /// Event-time jobs: the watermarks' out-of-orderness bound, in milliseconds; the input's
    /// disorder stays within it.
    #[arg(long, default_value_t = 2_000)]
    out_of_orderness_ms: i64,
    /// Event-time jobs: the allowed lateness, in milliseconds (window state outlives its
    /// firing by this much; no record is late, so the results do not depend on it).
    #[arg(long, default_value_t = 1_000)]
    lateness_ms: i64,
    /// Inject only these fault kinds (comma-separated keys of the summary line, e.g.
    /// `kill9,stop`); default every kind that applies.
    #[arg(long, value_delimiter = ',')]
    only: Vec<Fault>,
    /// Parallelism of the job.
    #[arg(long, default_value_t = 2)]
    parallelism: u32,
    /// Fewest milliseconds between two faults.
    #[arg(long, default_value_t = 100)]
    min_gap_ms: u64,
    /// Most milliseconds between two faults.
    #[arg(long, default_value_t = 700)]
    max_gap_ms: u64,
    /// Stop injecting (and fail) after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout_secs: u64,
    /// The `floe` CLI (default: next to this binary).
    #[arg(long)]
    floe: Option<PathBuf>,
    /// The job binary (default: the `--kind`'s binary next to this one:
    /// `exactly_once_word_count`, `window_word_count` or `timer_word_count`).
    #[arg(long)]
    job: Option<PathBuf>,
    /// Working directory (default: a new temporary directory, removed at the end).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Do not break the checkpoint storage (no tmpfs mount).
    #[arg(long)]
    no_storage_faults: bool,
    /// Run every round in per-job mode (no session cluster, no daemon kills).
    #[arg(long)]
    no_cluster: bool,
    /// Hosts: 1 (everything on this machine's loopback) or 3 (network-namespace hosts: S3
    /// and the job manager on the first, a task manager on each other one; needs root).
    #[arg(long, default_value_t = 1)]
    hosts: u32,
    /// The same as `--hosts 3`.
    #[arg(long)]
    multi_host: bool,
    /// Task slots of each task manager (multi-host mode).
    #[arg(long, default_value_t = 2)]
    tm_slots: u32,
    /// Multi-host mode: keep the cluster's jobs in `high-availability.storageDir` (a path the
    /// hosts share), so that a restarted job manager host takes them back by itself
    /// (without it, the harness resumes the job from its checkpoint directory, as an
    /// operator would).
    #[arg(long)]
    ha: bool,
    /// Multi-host mode: checkpoints and savepoints on the hosts' shared file system
    /// instead of S3 (the S3 server still runs; `s3_stop` is left out).
    #[arg(long)]
    no_s3: bool,
}

/// Set by SIGINT/SIGTERM: stop injecting, stop the job, unmount, report.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Sleeps `d`, waking early when interrupted.
pub(crate) fn nap(d: Duration) {
    let end = Instant::now() + d;
    while !interrupted() {
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// The timeouts of the single-host mode (faults that hold something are measured against
/// them).
const SINGLE_HOST: Timing = Timing {
    checkpoint_timeout: Duration::from_millis(1000),
    heartbeat_timeout: Duration::from_millis(3000),
    network_timeout: Duration::from_millis(5000),
};

/// The timeouts of the multi-host mode: S3 over the bridge is slower than a tmpfs, and a
/// host is declared lost by the network timeout or the heartbeat timeout, whichever fires
/// first.
const MULTI_HOST: Timing = Timing {
    checkpoint_timeout: Duration::from_millis(2000),
    heartbeat_timeout: Duration::from_millis(4000),
    network_timeout: Duration::from_millis(3000),
};

/// What the multi-host mode observes besides the verdict.
#[derive(Default)]
struct HostStats {
    /// Worker processes still running on a task manager host after every job of the
    /// round had ended (killed by the harness then).
    stray_workers: u64,
    /// Task managers that were not listed again within 30 s of their link coming back.
    not_reregistered: u64,
    /// Task managers found dead at a round's start (not killed by the harness last).
    tm_found_dead: u64,
    /// Workers of a killed task manager daemon still running [`ORPHAN_EXIT`] later.
    orphans_alive: u64,
}

/// How soon the workers of a killed task manager daemon must have exited.
const ORPHAN_EXIT: Duration = Duration::from_secs(15);

/// Time from the start of each fault to the next completed checkpoint of the main job.
#[derive(Default)]
struct Recovery {
    log: Option<PathBuf>,
    offset: u64,
    pending: Vec<(Fault, Instant)>,
    times: BTreeMap<Fault, Vec<Duration>>,
    /// Faults after which the job ended (or the round) before a checkpoint completed.
    unmeasured: u64,
    last_poll: Option<Instant>,
}

impl Recovery {
    fn fault(&mut self, kind: Fault, started: Instant) {
        self.pending.push((kind, started));
    }

    /// Reads what the main job's log gained (at most every 100 ms); a completed
    /// checkpoint ends every pending fault's recovery.
    fn poll(&mut self, log: Option<&Path>) {
        let now = Instant::now();
        if self
            .last_poll
            .is_some_and(|t| now - t < Duration::from_millis(100))
        {
            return;
        }
        self.last_poll = Some(now);
        if self.log.as_deref() != log {
            self.log = log.map(Path::to_path_buf);
            self.offset = 0;
        }
        let Some(path) = &self.log else { return };
        let Ok(mut f) = std::fs::File::open(path) else {
            return;
        };
        use std::io::{Read, Seek};
        let mut buf = Vec::new();
        if f.seek(std::io::SeekFrom::Start(self.offset)).is_err()
            || f.read_to_end(&mut buf).is_err()
        {
            return;
        }
        // Whole lines only: the rest is read next time.
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        self.offset += end as u64 + 1;
        let text = String::from_utf8_lossy(&buf[..end]);
        if text.contains("Completed checkpoint ") {
            for (kind, at) in self.pending.drain(..) {
                self.times.entry(kind).or_default().push(now - at);
            }
        }
    }

    /// The round ended: faults still waiting for a checkpoint are not measured.
    fn round_ended(&mut self) {
        self.unmeasured += self.pending.len() as u64;
        self.pending.clear();
        self.log = None;
    }

    /// One line per kind: `recovery_ms kind=<k> n=… median=… p90=… max=…`.
    fn print(&self) {
        for (kind, times) in &self.times {
            let mut ms: Vec<u128> = times.iter().map(|d| d.as_millis()).collect();
            ms.sort_unstable();
            // Nearest rank.
            let at = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
            println!(
                "recovery_ms kind={} n={} median={} p90={} max={}",
                kind.key(),
                ms.len(),
                at(0.5),
                at(0.9),
                ms[ms.len() - 1]
            );
        }
        if self.unmeasured > 0 {
            println!(
                "recovery_ms unmeasured={} (the job ended before its next checkpoint)",
                self.unmeasured
            );
        }
    }
}

#[derive(Default)]
struct Totals {
    faults: BTreeMap<Fault, u64>,
    injected: u64,
    rounds: u64,
    words: u64,
    results: u64,
    restarts: u64,
    completed: u64,
    failed: u64,
    failed_rounds: u64,
    verdict: Verdict,
    hosts: HostStats,
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(name))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The settings of every job: checkpoints, restarts, parallelism.
fn job_settings(timing: Timing, parallelism: u32) -> String {
    format!(
        "execution.checkpointing.interval: 100ms\n\
         execution.checkpointing.timeout: {}ms\n\
         execution.checkpointing.tolerable-failed-checkpoints: 2\n\
         execution.checkpointing.num-retained: 1\n\
         restart-strategy.type: fixed-delay\n\
         restart-strategy.fixed-delay.attempts: 1000000\n\
         restart-strategy.fixed-delay.delay: 50ms\n\
         parallelism.default: {parallelism}\n",
        timing.checkpoint_timeout.as_millis(),
    )
}

/// Writes the jobs' `floe.yaml` (single-host mode); returns the per-job REST port it sets.
fn write_conf(dir: &Path, checkpoints: &Path, parallelism: u32) -> anyhow::Result<u16> {
    let port = free_port()?;
    std::fs::create_dir_all(dir)?;
    let conf = format!(
        "{}execution.checkpointing.dir: {}\n\
         heartbeat.interval: 200ms\n\
         heartbeat.timeout: {}ms\n\
         rest.address: 127.0.0.1\n\
         rest.port: {}\n\
         jobmanager.rpc.port: {}\n\
         taskmanager.numberOfTaskSlots: {parallelism}\n",
        job_settings(SINGLE_HOST, parallelism),
        checkpoints.display(),
        SINGLE_HOST.heartbeat_timeout.as_millis(),
        port,
        // Fixed, not 0: the job managers and the task manager of the session cluster find
        // a restarted daemon (`daemon_kill`) at the same port.
        free_port()?
    );
    std::fs::write(dir.join("floe.yaml"), conf)?;
    Ok(port)
}

/// Counts in the job manager's log: restarts, completed and failed checkpoints.
fn log_counts(log: &Path) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (mut restarts, mut completed, mut failed) = (0, 0, 0);
    for l in text.lines() {
        if l.contains("switched from state RUNNING to RESTARTING") {
            restarts += 1;
        } else if l.contains("Completed checkpoint ") {
            completed += 1;
        } else if l.contains("Checkpoint ")
            && (l.contains("expired before completing") || l.contains(" failed: "))
            && !l.contains("job failover")
            && !l.contains("subsumed")
        {
            failed += 1;
        }
    }
    (restarts, completed, failed)
}

/// What a fault acts on.
struct Target<'a> {
    setup: &'a Setup,
    cluster: Option<&'a Cluster>,
    storage: Option<&'a Storage>,
    /// Words of a second job's input.
    second_words: u64,
    /// The job under test and its input's event time.
    kind: JobKind,
    time: EventTime,
    seed: u64,
    /// The hosts (multi-host mode).
    net: Option<&'a Net>,
    timing: Timing,
    ha: bool,
}

/// A task manager host to break: most often one running a worker of the main job.
fn pick_tm_host(net: &Net, workers: &[u32], rng: &mut StdRng) -> usize {
    if !workers.is_empty() && rng.random_bool(0.75) {
        if let Some(h) = net.tm_host_of(workers[rng.random_range(0..workers.len())]) {
            return h;
        }
    }
    TM_HOSTS[rng.random_range(0..TM_HOSTS.len())]
}

/// Injects `fault` into the round. `Ok(false)`: not applicable right now (no worker
/// process between attempts, or the job ended first); try again later.
fn inject(
    fault: Fault,
    round: &mut Round,
    expected: &mut Answer,
    rng: &mut StdRng,
    target: &Target<'_>,
    stats: &mut HostStats,
) -> anyhow::Result<bool> {
    if round.job_manager(target.cluster).is_none() {
        return Ok(false);
    }
    let storage = target.storage;
    let trigger = round.trigger.clone();
    let workers = round.workers(target.cluster);
    let pick_worker = |rng: &mut StdRng| {
        (!workers.is_empty()).then(|| workers[rng.random_range(0..workers.len())])
    };
    let net = || target.net.context("host faults need the multi-host mode");
    match fault {
        Fault::SavepointKillJobManager => {
            let pause = Duration::from_millis(rng.random_range(0..=250));
            round.savepoint_then_kill(target.setup, target.cluster, pause)
        }
        Fault::SecondJob => {
            let n = round.logs.len();
            let input = round.output.with_file_name(format!("in-second-{n}"));
            let second = target.kind.generate(
                &input,
                target.seed ^ rng.random::<u64>(),
                target.second_words,
                2,
                200,
                &format!("s{n}x"),
                target.time,
            )?;
            if !round.start_second(target.setup, &input)? {
                return Ok(false);
            }
            expected.merge(second)?;
            Ok(true)
        }
        Fault::DaemonKill => match target.cluster {
            Some(c) => c.kill_and_restart(target.setup),
            None => Ok(false),
        },
        Fault::Kill => {
            let Some(w) = pick_worker(rng) else {
                return Ok(false);
            };
            Ok(signal(w, libc::SIGKILL))
        }
        Fault::Stop | Fault::CheckpointTimeout => {
            let Some(w) = pick_worker(rng) else {
                return Ok(false);
            };
            let hold = if fault == Fault::Stop {
                target.timing.heartbeat_timeout + Duration::from_millis(600)
            } else {
                target.timing.checkpoint_timeout + Duration::from_millis(500)
            };
            if !signal(w, libc::SIGSTOP) {
                return Ok(false);
            }
            nap(hold);
            // After a Stop the job manager has killed it; a continued zombie is harmless.
            signal(w, libc::SIGCONT);
            Ok(true)
        }
        Fault::Panic => {
            let trigger = trigger.as_path();
            std::fs::write(trigger, b"")?;
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                if !trigger.exists() {
                    return Ok(true);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // Nobody processed a record meanwhile (restarting, or the input ended).
            let _ = std::fs::remove_file(trigger);
            Ok(false)
        }
        Fault::ReadOnly | Fault::DiskFull => {
            let s = storage.context("storage faults need the harness's tmpfs")?;
            let hold = Duration::from_millis(rng.random_range(100..=1500));
            if fault == Fault::ReadOnly {
                s.remount(true)?;
                nap(hold);
                s.remount(false)?;
            } else {
                s.fill()?;
                nap(hold);
                s.free();
            }
            Ok(true)
        }
        Fault::TmHostKill => {
            let net = net()?;
            let i = pick_tm_host(net, &workers, rng);
            net.hosts.kill_all(i)?;
            net.start_task_manager(i)?;
            Ok(true)
        }
        Fault::TmDaemonKill => {
            let net = net()?;
            let i = pick_tm_host(net, &workers, rng);
            let Some(pid) = net.tm_pid(i) else {
                return Ok(false);
            };
            let orphans = net.workers_on(i);
            signal(pid, libc::SIGKILL);
            let until = Instant::now() + Duration::from_secs(5);
            while alive(pid) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            net.start_task_manager(i)?;
            // The job managers lose their connection to it, fail the attempts it ran
            // workers of, and close those workers' control connections: they must exit.
            let until = Instant::now() + ORPHAN_EXIT;
            while orphans.iter().any(|w| alive(*w)) && Instant::now() < until && !interrupted() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let left: Vec<u32> = orphans.into_iter().filter(|w| alive(*w)).collect();
            if !left.is_empty() && !interrupted() {
                println!(
                    "workers {left:?} of the killed task manager on host {} still ran {} s later",
                    i + 1,
                    ORPHAN_EXIT.as_secs()
                );
                stats.orphans_alive += left.len() as u64;
            }
            Ok(true)
        }
        Fault::TmLinkDown => {
            let net = net()?;
            let i = pick_tm_host(net, &workers, rng);
            let hold = Duration::from_millis(rng.random_range(1000..=6000));
            net.hosts.link_down(i)?;
            nap(hold);
            net.hosts.link_up(i)?;
            if net.wait_registered(i, Duration::from_secs(30)).is_none() && !interrupted() {
                println!(
                    "the task manager of host {} was not listed again within 30 s of its link coming back",
                    i + 1
                );
                stats.not_reregistered += 1;
            }
            Ok(true)
        }
        Fault::TmHostFreeze => {
            let net = net()?;
            let i = pick_tm_host(net, &workers, rng);
            net.hosts.freeze(i)?;
            nap(target.timing.heartbeat_timeout + Duration::from_millis(1000));
            net.hosts.thaw(i)?;
            Ok(true)
        }
        Fault::JmHostKill => match target.cluster {
            Some(c) => round.kill_job_manager_host(target.setup, c, target.ha),
            None => Ok(false),
        },
        Fault::S3Stop => {
            let net = net()?;
            let hold = Duration::from_millis(rng.random_range(500..=4000));
            if !net.pause_s3(true) {
                anyhow::bail!("the S3 server is gone");
            }
            nap(hold);
            net.pause_s3(false);
            Ok(true)
        }
    }
}

/// Waits up to `within` for the task manager hosts to run no worker process any more;
/// kills and counts those that still do.
fn stray_workers(net: &Net, within: Duration) -> u64 {
    let until = Instant::now() + within;
    loop {
        let left: Vec<(usize, u32)> = TM_HOSTS
            .into_iter()
            .flat_map(|h| net.workers_on(h).into_iter().map(move |p| (h, p)))
            .collect();
        if left.is_empty() {
            return 0;
        }
        if Instant::now() >= until || interrupted() {
            for &(h, p) in &left {
                println!(
                    "stray worker process {p} on host {} after every job ended: killed",
                    h + 1
                );
                signal(p, libc::SIGCONT);
                signal(p, libc::SIGKILL);
            }
            return left.len() as u64;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(args: Args) -> anyhow::Result<bool> {
    let started = Instant::now();
    let floe = match args.floe {
        Some(p) => p,
        None => sibling("floe")?,
    };
    let job = match args.job {
        Some(p) => p,
        None => sibling(args.kind.binary())?,
    };
    for (what, p) in [("floe CLI", &floe), ("job binary", &job)] {
        anyhow::ensure!(
            p.is_file(),
            "{what} not found at {} (build the workspace, or pass --floe/--job)",
            p.display()
        );
    }
    anyhow::ensure!(
        args.min_gap_ms <= args.max_gap_ms,
        "--min-gap-ms is above --max-gap-ms"
    );
    let words_per_round = args
        .words_per_round
        .unwrap_or_else(|| args.kind.default_records());
    anyhow::ensure!(words_per_round > 0, "--words-per-round must be positive");
    let time = EventTime {
        window: args.window_ms,
        bound: args.out_of_orderness_ms,
    };
    anyhow::ensure!(args.window_ms > 0, "--window-ms must be positive");
    anyhow::ensure!(
        args.out_of_orderness_ms >= 0 && args.lateness_ms >= 0,
        "--out-of-orderness-ms and --lateness-ms must not be negative"
    );
    let multi = args.multi_host || args.hosts == 3;
    anyhow::ensure!(
        matches!(args.hosts, 1 | 3),
        "--hosts {}: the harness runs on 1 host or on 3 (S3 and job manager, two task managers)",
        args.hosts
    );
    anyhow::ensure!(
        !multi || !args.no_cluster,
        "--no-cluster and --multi-host exclude each other (multi-host rounds run on the cluster)"
    );
    anyhow::ensure!(args.tm_slots > 0, "--tm-slots must be positive");
    anyhow::ensure!(
        !multi || args.parallelism <= 2 * args.tm_slots,
        "--parallelism {} is more than the {} slots of the two task managers",
        args.parallelism,
        2 * args.tm_slots
    );
    let _tmp;
    let work = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            _tmp = TempDir::new()?;
            _tmp.0.clone()
        }
    };
    let storage = if args.no_storage_faults {
        None
    } else {
        match Storage::mount(&work.join("storage"), 64) {
            Ok(s) => Some(s),
            Err(e) => {
                println!("storage faults off: {e:#}");
                None
            }
        }
    };
    let timing = if multi { MULTI_HOST } else { SINGLE_HOST };
    let conf = work.join("conf");
    let (net, checkpoints, checkpoints_url, rest_port) = if multi {
        // The S3 server keeps its data on the storage tmpfs: the storage faults break S3.
        let s3_root = match &storage {
            Some(s) => s.dir.join("s3"),
            None => work.join("s3"),
        };
        let (checkpoints, url, savepoints) = if args.no_s3 {
            let c = s3_root.with_file_name("shared-checkpoints");
            let s = s3_root.with_file_name("shared-savepoints");
            (c.clone(), c.display().to_string(), s.display().to_string())
        } else {
            let bucket = format!("s3://{}", multihost::BUCKET);
            (
                s3_root.join(multihost::BUCKET).join("ck"),
                format!("{bucket}/ck"),
                format!("{bucket}/savepoints"),
            )
        };
        let net = Net::start(&multihost::Layout {
            dir: &work.join("hosts"),
            s3_root: &s3_root,
            floe: &floe,
            slots: args.tm_slots,
            timing,
            jobs: &job_settings(timing, args.parallelism),
            checkpoints: &url,
            savepoints: &savepoints,
            ha: args.ha,
        })?;
        (Some(Arc::new(net)), checkpoints, url, multihost::REST_PORT)
    } else {
        let checkpoints = match &storage {
            Some(s) => s.dir.join("checkpoints"),
            None => work.join("checkpoints"),
        };
        let port = write_conf(&conf, &checkpoints, args.parallelism)?;
        let url = checkpoints.display().to_string();
        (None, checkpoints, url, port)
    };
    let setup = Setup {
        floe: floe.clone(),
        job: job.clone(),
        job_args: args.kind.job_args(time, args.lateness_ms),
        conf: conf.clone(),
        checkpoints: checkpoints.clone(),
        checkpoints_url,
        rest_port,
        net: net.clone(),
    };
    // Every other round runs on a session cluster, as jobs submitted to a daemon (every
    // round in multi-host mode).
    let cluster = if args.no_cluster {
        None
    } else {
        Some(Cluster::start(&setup, &work.join("cluster"), free_port()?)?)
    };
    if let Some(n) = &net {
        for i in TM_HOSTS {
            n.start_task_manager(i)?;
        }
        for i in TM_HOSTS {
            anyhow::ensure!(
                n.wait_registered(i, Duration::from_secs(30)).is_some(),
                "the task manager of host {} did not register within 30 s; see {}",
                i + 1,
                n.tm_dir(i).join("taskmanager.log").display()
            );
        }
        println!(
            "multi-host: S3 and job manager on {}, task managers ({} slots each) on {} and {}{}",
            n.hosts.host(0).ip(),
            args.tm_slots,
            n.hosts.host(1).ip(),
            n.hosts.host(2).ip(),
            if args.ha { ", job manager HA" } else { "" }
        );
    }
    let kinds: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|f| storage.is_some() || !f.is_storage())
        .filter(|f| cluster.is_some() || !f.needs_cluster())
        .filter(|f| multi || !f.is_multi_host())
        .filter(|f| !args.no_s3 || *f != Fault::S3Stop)
        .filter(|f| args.only.is_empty() || args.only.contains(f))
        .collect();
    for f in &args.only {
        if !kinds.contains(f) {
            println!("--only {}: does not apply here (needs root, a session cluster, or the multi-host mode)", f.key());
        }
    }
    anyhow::ensure!(
        !kinds.is_empty() || args.faults == 0,
        "no fault kind of --only applies here"
    );
    let mut rng = StdRng::seed_from_u64(args.seed);
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let mut t = Totals::default();
    let mut schedule: Vec<Fault> = Vec::new();
    let mut recovery = Recovery::default();
    let gap = |rng: &mut StdRng| {
        Duration::from_millis(rng.random_range(args.min_gap_ms..=args.max_gap_ms))
    };
    while t.rounds == 0 || t.injected < args.faults {
        if interrupted() {
            println!(
                "interrupted with {} of {} faults injected",
                t.injected, args.faults
            );
            t.failed_rounds += 1;
            break;
        }
        if Instant::now() >= deadline {
            println!(
                "timeout: {} s passed with {} of {} faults injected",
                args.timeout_secs, t.injected, args.faults
            );
            t.failed_rounds += 1;
            break;
        }
        t.rounds += 1;
        let round_no = t.rounds;
        let rdir = work.join(format!("round-{round_no}"));
        let _ = std::fs::remove_dir_all(&rdir);
        std::fs::create_dir_all(&rdir)?;
        let input = rdir.join("in");
        let mut expected = args.kind.generate(
            &input,
            args.seed.wrapping_mul(1_000_003).wrapping_add(round_no),
            words_per_round,
            4,
            1000,
            "w",
            time,
        )?;
        let on_cluster = cluster.as_ref().filter(|_| multi || round_no % 2 == 0);
        let target = Target {
            setup: &setup,
            cluster: on_cluster,
            storage: storage.as_ref(),
            second_words: (words_per_round / 4).max(1),
            kind: args.kind,
            time,
            seed: args.seed.wrapping_add(round_no),
            net: net.as_deref(),
            timing,
            ha: args.ha,
        };
        // Multi-host rounds alternate: packed onto one task manager, then every slot.
        let parallelism = multi.then(|| {
            if round_no % 2 == 1 {
                args.parallelism
            } else {
                2 * args.tm_slots
            }
        });
        if let Some(n) = &net {
            anyhow::ensure!(
                n.s3_alive(),
                "the S3 server exited; see {}",
                n.dir.join("s3s-fs.log").display()
            );
            for i in TM_HOSTS {
                if n.tm_pid(i).is_none() {
                    println!("the task manager of host {} was gone at the start of round {round_no}: started again", i + 1);
                    t.hosts.tm_found_dead += 1;
                    n.start_task_manager(i)?;
                }
            }
        }
        let round_start = Instant::now();
        let mut round = Round::start(&setup, on_cluster, &rdir, &input, parallelism)?;
        let mut round_faults = 0u64;
        let mut next = Instant::now() + gap(&mut rng);
        let status = loop {
            if let Some(ok) = round.main_ended(on_cluster)? {
                break Some(ok);
            }
            let now = Instant::now();
            if now >= deadline || interrupted() {
                round.kill(&setup, on_cluster);
                break None;
            }
            if t.injected < args.faults && now >= next {
                if schedule.is_empty() {
                    // Every kind once per block, in a random order: a short run still
                    // covers them all.
                    schedule = kinds.clone();
                    for i in (1..schedule.len()).rev() {
                        schedule.swap(i, rng.random_range(0..=i));
                    }
                }
                // The next kind this round can take (a daemon kill needs a cluster round).
                let Some(pos) = schedule
                    .iter()
                    .rposition(|k| on_cluster.is_some() || !k.needs_cluster())
                else {
                    next = Instant::now() + Duration::from_millis(50);
                    continue;
                };
                let kind = schedule[pos];
                let fault_start = Instant::now();
                match inject(
                    kind,
                    &mut round,
                    &mut expected,
                    &mut rng,
                    &target,
                    &mut t.hosts,
                ) {
                    Ok(true) => {
                        recovery.fault(kind, fault_start);
                        // The round's trace, kept with a round that fails.
                        use std::io::Write as _;
                        if let Ok(mut f) = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(rdir.join("faults.log"))
                        {
                            let _ = writeln!(
                                f,
                                "+{:.3}s {} ({:.3}s) job {}",
                                (fault_start - round_start).as_secs_f64(),
                                kind.key(),
                                fault_start.elapsed().as_secs_f64(),
                                round.job_id().unwrap_or_default()
                            );
                        }
                        schedule.remove(pos);
                        *t.faults.entry(kind).or_default() += 1;
                        t.injected += 1;
                        round_faults += 1;
                        next = Instant::now() + gap(&mut rng);
                    }
                    Ok(false) => next = Instant::now() + Duration::from_millis(50),
                    Err(e) => anyhow::bail!("injecting {} failed: {e:#}", kind.key()),
                }
            }
            recovery.poll(round.main_log.as_deref());
            std::thread::sleep(Duration::from_millis(10));
        };
        recovery.poll(round.main_log.as_deref());
        recovery.round_ended();
        let seconds_ok = round.wait_seconds(Duration::from_secs(120));
        let strays = net
            .as_deref()
            .map(|n| stray_workers(n, Duration::from_secs(20)))
            .unwrap_or(0);
        t.hosts.stray_workers += strays;
        let _ = std::fs::remove_file(&round.trigger);
        let finished = status == Some(true) && seconds_ok;
        if !finished {
            t.failed_rounds += 1;
        }
        let v = verify::verify(&round.output, &expected, &round.killed)?;
        let (mut restarts, mut completed, mut failed) = (0, 0, 0);
        for log in &round.logs {
            let (r, c, f) = log_counts(log);
            (restarts, completed, failed) = (restarts + r, completed + c, failed + f);
        }
        t.words += expected.records();
        t.results += expected.lines();
        t.restarts += restarts;
        t.completed += completed;
        t.failed += failed;
        t.verdict.add(&v);
        let mode = match (&net, on_cluster) {
            (Some(_), _) => format!("multi-host p={}", parallelism.unwrap_or(args.parallelism)),
            (None, Some(_)) => "cluster".to_string(),
            (None, None) => "per-job".to_string(),
        };
        println!(
            "round {round_no}: mode={mode} words={} results={} faults={round_faults} restarts={restarts} checkpoints_completed={completed} checkpoints_failed={failed} lines={} lost={} duplicated={} wrong={} leftover={} orphaned={} job={} ({:.1} s)",
            expected.records(),
            expected.lines(),
            v.lines,
            v.lost,
            v.duplicated,
            v.wrong,
            v.leftover,
            v.orphaned,
            match status {
                Some(true) if seconds_ok => "FINISHED".to_string(),
                Some(true) => "FINISHED, a second job did not".to_string(),
                Some(false) => "not FINISHED".to_string(),
                None => "killed at the deadline".to_string(),
            },
            round_start.elapsed().as_secs_f64()
        );
        let clean = finished && v.lost == 0 && v.duplicated == 0 && v.wrong == 0;
        if clean {
            let _ = std::fs::remove_dir_all(&rdir);
            if let Some(n) = &net {
                // The round's savepoints and the checkpoints its killed job managers left
                // behind, in the S3 bucket (on the small storage tmpfs).
                let bucket = n.s3_root.join(multihost::BUCKET);
                let _ = std::fs::remove_dir_all(
                    bucket.join("savepoints").join(format!("round-{round_no}")),
                );
                for id in &round.killed {
                    let _ = std::fs::remove_dir_all(checkpoints.join(id));
                }
            }
        } else {
            println!("round {round_no} kept for inspection: {}", rdir.display());
            if args.work_dir.is_none() {
                // The temporary work directory is removed at exit; keep this round.
                let keep =
                    std::env::temp_dir().join(format!("floe-chaos-round-{}-{round_no}", args.seed));
                let _ = std::fs::rename(&rdir, &keep);
                println!("moved to {}", keep.display());
            }
        }
    }
    if let Some(c) = &cluster {
        c.stop(&setup);
    }
    // The hosts go first (their processes keep files open on the storage tmpfs).
    drop(cluster);
    drop(setup);
    drop(net);
    drop(storage);
    recovery.print();
    let mut line = format!("faults={}", t.injected);
    for k in Fault::ALL
        .into_iter()
        .filter(|k| multi || !k.is_multi_host())
    {
        line.push_str(&format!(
            " {}={}",
            k.key(),
            t.faults.get(&k).copied().unwrap_or(0)
        ));
    }
    let v = t.verdict;
    line.push_str(&format!(
        " kind={} rounds={} words={} results={} restarts={} checkpoints_completed={} checkpoints_failed={} failed_rounds={} lines={} lost={} duplicated={} wrong={} leftover={} orphaned={} wall_s={:.1}",
        args.kind.key(),
        t.rounds,
        t.words,
        t.results,
        t.restarts,
        t.completed,
        t.failed,
        t.failed_rounds,
        v.lines,
        v.lost,
        v.duplicated,
        v.wrong,
        v.leftover,
        v.orphaned,
        started.elapsed().as_secs_f64()
    ));
    if multi {
        line.push_str(&format!(
            " hosts=3 ha={} stray_workers={} tm_orphans_alive={} tm_not_reregistered={} tm_found_dead={}",
            args.ha,
            t.hosts.stray_workers,
            t.hosts.orphans_alive,
            t.hosts.not_reregistered,
            t.hosts.tm_found_dead
        ));
    }
    println!("{line}");
    Ok(v.lost == 0 && v.duplicated == 0 && v.wrong == 0 && t.failed_rounds == 0)
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let d = std::env::temp_dir().join(format!("floe-chaos-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d)?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("floe-chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}
