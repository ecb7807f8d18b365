//! `floe-chaos`: runs the exactly-once word count through `floe run` on generated input
//! with a known answer, injects faults at random times from a seeded RNG, and checks that
//! the committed output holds every `(word,n)` line exactly once.
//!
//! ```text
//! floe-chaos --faults 1000 --seed 7
//! ```
//!
//! The job runs in rounds: each round is a fresh job over fresh input; faults continue
//! into the next round when a job finishes, until `--faults` were injected. The last line
//! is a `key=value` summary; the exit code is 0 only when nothing was lost, duplicated or
//! wrong and every round's job finished.
//!
//! Faults: `kill -9` of a worker process, `kill -STOP` of a worker past the heartbeat
//! timeout, a panic in user code, checkpoint storage remounted read-only or filled up (a
//! tmpfs the harness mounts: needs root; skipped otherwise, and said so), a worker paused
//! past the checkpoint timeout, a savepoint followed by `kill -9` of the job manager and a
//! resume from the job's checkpoint directory, a second job writing into the same output
//! directory, and (in the rounds that run on a session cluster, every other one) `kill -9`
//! of the cluster daemon. Everything runs on 127.0.0.1 and temporary directories.

mod faults;
mod input;
mod round;
mod verify;

use anyhow::Context as _;
use clap::Parser;
use faults::{signal, workers_of, Fault, Storage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use round::{Cluster, Round, Setup};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use verify::Verdict;

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
    /// Words of input per round.
    #[arg(long, default_value_t = 6_000_000)]
    words_per_round: u64,
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
    /// The job binary (default: `exactly_once_word_count` next to this binary).
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

/// How long faults that hold something last.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_millis(1000);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(3000);

#[derive(Default)]
struct Totals {
    faults: BTreeMap<Fault, u64>,
    injected: u64,
    rounds: u64,
    words: u64,
    restarts: u64,
    completed: u64,
    failed: u64,
    failed_rounds: u64,
    verdict: Verdict,
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

/// Writes the jobs' `floe.yaml`; returns the per-job REST port it sets.
fn write_conf(dir: &Path, checkpoints: &Path, parallelism: u32) -> anyhow::Result<u16> {
    let port = free_port()?;
    std::fs::create_dir_all(dir)?;
    let conf = format!(
        "execution.checkpointing.interval: 100ms\n\
         execution.checkpointing.timeout: {}ms\n\
         execution.checkpointing.tolerable-failed-checkpoints: 2\n\
         execution.checkpointing.num-retained: 1\n\
         execution.checkpointing.dir: {}\n\
         restart-strategy.type: fixed-delay\n\
         restart-strategy.fixed-delay.attempts: 1000000\n\
         restart-strategy.fixed-delay.delay: 50ms\n\
         heartbeat.interval: 200ms\n\
         heartbeat.timeout: {}ms\n\
         parallelism.default: {parallelism}\n\
         rest.address: 127.0.0.1\n\
         rest.port: {}\n",
        CHECKPOINT_TIMEOUT.as_millis(),
        checkpoints.display(),
        HEARTBEAT_TIMEOUT.as_millis(),
        port
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
    seed: u64,
}

/// Injects `fault` into the round. `Ok(false)`: not applicable right now (no worker
/// process between attempts, or the job ended first); try again later.
fn inject(
    fault: Fault,
    round: &mut Round,
    expected: &mut input::Expected,
    rng: &mut StdRng,
    target: &Target<'_>,
) -> anyhow::Result<bool> {
    let Some(jm) = round.job_manager(target.cluster) else {
        return Ok(false);
    };
    let storage = target.storage;
    let trigger = round.trigger.clone();
    let pick_worker = |rng: &mut StdRng| {
        let w = workers_of(jm);
        (!w.is_empty()).then(|| w[rng.random_range(0..w.len())])
    };
    match fault {
        Fault::SavepointKillJobManager => {
            let pause = Duration::from_millis(rng.random_range(0..=250));
            round.savepoint_then_kill(target.setup, target.cluster, pause)
        }
        Fault::SecondJob => {
            let n = round.logs.len();
            let input = round.output.with_file_name(format!("in-second-{n}"));
            let second = input::generate(
                &input,
                target.seed ^ rng.random::<u64>(),
                target.second_words,
                2,
                200,
                &format!("s{n}x"),
            )?;
            if !round.start_second(target.setup, &input)? {
                return Ok(false);
            }
            expected.merge(second);
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
                HEARTBEAT_TIMEOUT + Duration::from_millis(600)
            } else {
                CHECKPOINT_TIMEOUT + Duration::from_millis(500)
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
        None => sibling("exactly_once_word_count")?,
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
    anyhow::ensure!(
        args.words_per_round > 0,
        "--words-per-round must be positive"
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
    let checkpoints = match &storage {
        Some(s) => s.dir.join("checkpoints"),
        None => work.join("checkpoints"),
    };
    let conf = work.join("conf");
    let rest_port = write_conf(&conf, &checkpoints, args.parallelism)?;
    let setup = Setup {
        floe: floe.clone(),
        job: job.clone(),
        conf: conf.clone(),
        checkpoints: checkpoints.clone(),
        rest_port,
    };
    // Every other round runs on a session cluster, as jobs submitted to a daemon.
    let cluster = if args.no_cluster {
        None
    } else {
        Some(Cluster::start(&setup, &work.join("cluster"), free_port()?)?)
    };
    let kinds: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|f| storage.is_some() || !f.is_storage())
        .filter(|f| cluster.is_some() || *f != Fault::DaemonKill)
        .collect();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let mut t = Totals::default();
    let mut schedule: Vec<Fault> = Vec::new();
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
        let mut expected = input::generate(
            &input,
            args.seed.wrapping_mul(1_000_003).wrapping_add(round_no),
            args.words_per_round,
            4,
            1000,
            "w",
        )?;
        let on_cluster = cluster.as_ref().filter(|_| round_no % 2 == 0);
        let target = Target {
            setup: &setup,
            cluster: on_cluster,
            storage: storage.as_ref(),
            second_words: (args.words_per_round / 4).max(1),
            seed: args.seed.wrapping_add(round_no),
        };
        let round_start = Instant::now();
        let mut round = Round::start(&setup, on_cluster, &rdir, &input)?;
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
                    .rposition(|k| on_cluster.is_some() || *k != Fault::DaemonKill)
                else {
                    next = Instant::now() + Duration::from_millis(50);
                    continue;
                };
                let kind = schedule[pos];
                match inject(kind, &mut round, &mut expected, &mut rng, &target) {
                    Ok(true) => {
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
            std::thread::sleep(Duration::from_millis(10));
        };
        let seconds_ok = round.wait_seconds(Duration::from_secs(120));
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
        t.words += expected.total();
        t.restarts += restarts;
        t.completed += completed;
        t.failed += failed;
        t.verdict.add(&v);
        println!(
            "round {round_no}: mode={} words={} faults={round_faults} restarts={restarts} checkpoints_completed={completed} checkpoints_failed={failed} lines={} lost={} duplicated={} wrong={} leftover={} orphaned={} job={} ({:.1} s)",
            if on_cluster.is_some() { "cluster" } else { "per-job" },
            expected.total(),
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
    drop(storage);
    let mut line = format!("faults={}", t.injected);
    for k in Fault::ALL {
        line.push_str(&format!(
            " {}={}",
            k.key(),
            t.faults.get(&k).copied().unwrap_or(0)
        ));
    }
    let v = t.verdict;
    line.push_str(&format!(
        " rounds={} words={} restarts={} checkpoints_completed={} checkpoints_failed={} failed_rounds={} lines={} lost={} duplicated={} wrong={} leftover={} orphaned={} wall_s={:.1}",
        t.rounds,
        t.words,
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
