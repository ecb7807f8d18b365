//! `floe`: operate Floe jobs with Flink's verbs and wording.
//!
//! `run` starts a job binary with Floe's options; `list`, `savepoint`, `checkpoint`, `stop`,
//! `cancel` and `checkpoints` talk to a job manager's REST API (`-m host:port`, else `rest.address` /
//! `rest.port` from `$FLOE_CONF_DIR/floe.yaml`, else 127.0.0.1:8081).

mod cluster;
mod inspect;
mod rest;
mod taskmanager;

use clap::{Args, Parser, Subcommand};
use floe::jobmanager::rest::model::{
    CheckpointStatistics, CheckpointingStatistics, ClusterOverview, JobDetails, JobExceptions,
    JobOverview, JobsOverview, SavepointTriggerRequest, StopWithSavepointRequest,
};
use floe::jobmanager::rest::taskmanagers::{self, TaskManagerDetailsInfo, TaskManagersInfo};
use floe::JobId;
use rest::Rest;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

#[derive(Parser)]
#[command(
    name = "floe",
    version,
    about = "Run and operate Floe stream processing jobs"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct Target {
    /// Address of the job manager's REST endpoint (host:port) [default: rest.address and
    /// rest.port from floe.yaml ($FLOE_CONF_DIR, else ./conf), else 127.0.0.1:8081].
    #[arg(short = 'm', long = "jobmanager", value_name = "host:port")]
    jobmanager: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs a job binary: submitted to the session cluster when one answers (attached, or
    /// detached with -d), otherwise as a per-job job manager in the foreground.
    Run {
        #[command(flatten)]
        target: Target,
        /// Return once the job is submitted. Without a session cluster the job runs in the
        /// background with its own REST endpoint, whose address is printed (-m for the
        /// other commands).
        #[arg(short = 'd', long = "detached")]
        detached: bool,
        /// Restore from a chk-<n> or savepoint directory, its _metadata file, or a job's
        /// checkpoint directory <dir>/<job-id> (its latest complete checkpoint); a plain
        /// path, file:/path or file:///path.
        #[arg(short = 's', long = "fromSavepoint", value_name = "savepointPath")]
        from_savepoint: Option<String>,
        /// Skip snapshot state that cannot be mapped to the new program.
        #[arg(
            short = 'n',
            long = "allowNonRestoredState",
            visible_alias = "allow-non-restored-state"
        )]
        allow_non_restored_state: bool,
        /// Parallelism of the job.
        #[arg(short = 'p', long = "parallelism")]
        parallelism: Option<u32>,
        /// Configuration settings, e.g. -D execution.checkpointing.interval=1s.
        #[arg(short = 'D', value_name = "property=value")]
        dynamic: Vec<String>,
        /// The job binary.
        job: String,
        /// Arguments of the job.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Starts, stops or shows the session cluster.
    Cluster {
        #[command(subcommand)]
        action: ClusterCmd,
    },
    /// Starts or stops this host's task manager (it offers task slots to the job manager at
    /// jobmanager.rpc.address:jobmanager.rpc.port).
    Taskmanager {
        #[command(subcommand)]
        action: TaskManagerCmd,
    },
    /// Shows a job's output (with -f, follows it until the job ends).
    Logs {
        #[command(flatten)]
        target: Target,
        /// Follow the output until the job ends.
        #[arg(short = 'f', long = "follow")]
        follow: bool,
        /// The job id.
        job_id: String,
    },
    /// Lists running and restarting jobs (with -a, all jobs).
    List {
        #[command(flatten)]
        target: Target,
        /// Show all jobs, including finished, cancelled and failed ones.
        #[arg(short = 'a', long = "all")]
        all: bool,
    },
    /// Triggers a savepoint for a job, disposes one (`--dispose PATH`), or inspects one
    /// (`floe savepoint inspect PATH`).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Savepoint {
        #[command(subcommand)]
        action: Option<SavepointAction>,
        #[command(flatten)]
        target: Target,
        /// Dispose (delete) the savepoint at this path instead.
        #[arg(short = 'd', long = "dispose", value_name = "savepointPath")]
        dispose: Option<PathBuf>,
        /// Configuration settings for reaching the savepoint's storage with --dispose, e.g.
        /// -D s3.endpoint=http://host:9000 (also read from the configuration file).
        #[arg(short = 'D', value_name = "key=value")]
        dynamic: Vec<String>,
        /// The job id.
        #[arg(required_unless_present = "dispose")]
        job_id: Option<String>,
        /// Directory the savepoint is written into (default: execution.checkpointing.savepoint-dir).
        target_directory: Option<String>,
    },
    /// Stops a job with a savepoint; it ends FINISHED.
    Stop {
        #[command(flatten)]
        target: Target,
        /// Directory the savepoint is written into (default: execution.checkpointing.savepoint-dir).
        #[arg(
            short = 'p',
            long = "savepointPath",
            visible_alias = "savepoint-path",
            value_name = "savepointPath"
        )]
        savepoint_path: Option<String>,
        /// Send MAX_WATERMARK before the savepoint (refused: Floe has no event time yet).
        #[arg(short = 'd', long = "drain")]
        drain: bool,
        /// The job id.
        job_id: String,
    },
    /// Cancels a job.
    Cancel {
        #[command(flatten)]
        target: Target,
        /// Take a savepoint first, into this directory (or the configured
        /// execution.checkpointing.savepoint-dir); the job then ends CANCELED (Flink's
        /// deprecated `cancel -s`; `stop` ends it FINISHED).
        #[arg(short = 's', long = "withSavepoint", value_name = "targetDirectory", num_args = 0..=1)]
        with_savepoint: Option<Option<String>>,
        /// The job id.
        job_id: String,
    },
    /// Triggers a checkpoint of a job now and waits for it.
    Checkpoint {
        #[command(flatten)]
        target: Target,
        /// A full checkpoint (Floe's checkpoints are always full).
        #[arg(long = "full")]
        full: bool,
        /// The job id.
        job_id: String,
    },
    /// Lists a job's recent checkpoints and savepoints.
    Checkpoints {
        #[command(flatten)]
        target: Target,
        /// The job id.
        job_id: String,
    },
}

#[derive(Subcommand)]
enum SavepointAction {
    /// Shows what a checkpoint or savepoint holds: job, kind, id, time, operators with their
    /// states' entry counts and bytes; with --dump, the entries as JSON lines.
    Inspect {
        /// A chk-<n> or savepoint directory, its _metadata file, or a job's checkpoint
        /// directory <dir>/<job-id> (its latest complete checkpoint); a plain path, file:/path
        /// or file:///path, or s3://bucket/path.
        path: PathBuf,
        /// Print the entries of operator UID (optionally only state NAME) as JSON lines.
        #[arg(long, value_name = "UID[/STATE]")]
        dump: Option<String>,
        /// Configuration settings for reaching the snapshot's storage, e.g.
        /// -D s3.endpoint=http://host:9000 (also read from the configuration file).
        #[arg(short = 'D', value_name = "key=value")]
        dynamic: Vec<String>,
    },
    /// Would this snapshot restore into this job? Lists matched, unmatched and new operators
    /// and the compatibility of every state; exit code 0 only when it would restore.
    Check {
        /// A chk-<n> or savepoint directory, its _metadata file, or a job's checkpoint
        /// directory <dir>/<job-id> (its latest complete checkpoint); a plain path, file:/path
        /// or file:///path.
        path: PathBuf,
        /// Allow state that maps to no operator of the job to be skipped.
        #[arg(
            short = 'n',
            long = "allowNonRestoredState",
            visible_alias = "allow-non-restored-state"
        )]
        allow_non_restored_state: bool,
        /// The job binary (run in check mode: it builds its job graph and decodes the state).
        job: String,
        /// Arguments of the job.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Starts the job manager daemon with its REST endpoint (rest.address:rest.port).
    Start {
        /// Cluster directory for logs and job output (default: $FLOE_CLUSTER_DIR or <tmp>/floe-cluster).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Configuration settings, e.g. -D rest.port=8082.
        #[arg(short = 'D', value_name = "property=value")]
        dynamic: Vec<String>,
        /// Task managers to start on this host (each with taskmanager.numberOfTaskSlots
        /// slots); 0 when other hosts' task managers register themselves.
        #[arg(long = "taskmanagers", default_value_t = 1)]
        taskmanagers: u32,
    },
    /// Stops the cluster; its running jobs are cancelled and the task managers it started
    /// stopped.
    Stop {
        #[command(flatten)]
        target: Target,
    },
    /// Shows whether a cluster runs and its jobs.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Runs the daemon in the foreground (what `start` launches).
    #[command(hide = true)]
    Daemon {
        #[arg(long)]
        dir: PathBuf,
        #[arg(short = 'D', value_name = "property=value")]
        dynamic: Vec<String>,
        #[arg(long = "taskmanagers", default_value_t = 0)]
        taskmanagers: u32,
    },
}

#[derive(Subcommand)]
enum TaskManagerCmd {
    /// Starts a task manager daemon in the background.
    Start {
        /// Its directory: pid, log, blob cache, worker output (default: $FLOE_TASKMANAGER_DIR
        /// or <tmp>/floe-taskmanager).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Configuration settings, e.g. -D taskmanager.numberOfTaskSlots=4.
        #[arg(short = 'D', value_name = "property=value")]
        dynamic: Vec<String>,
    },
    /// Stops the task manager of a directory; its worker processes are killed.
    Stop {
        /// Its directory (default: $FLOE_TASKMANAGER_DIR or <tmp>/floe-taskmanager).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Runs the daemon in the foreground (what `start` launches).
    #[command(hide = true)]
    Daemon {
        #[arg(long)]
        dir: PathBuf,
        #[arg(short = 'D', value_name = "property=value")]
        dynamic: Vec<String>,
    },
}

/// Every task manager's details, when `rest` is a session cluster with task managers
/// (none otherwise: a per-job job manager has no `/taskmanagers`).
fn task_manager_details(rest: &Rest) -> Vec<TaskManagerDetailsInfo> {
    let Ok(list) = rest.get::<TaskManagersInfo>("/taskmanagers") else {
        return Vec::new();
    };
    list.taskmanagers
        .iter()
        .filter_map(|t| rest.get(&format!("/taskmanagers/{}", t.id)).ok())
        .collect()
}

fn address(target: &Target) -> anyhow::Result<String> {
    match &target.jobmanager {
        Some(a) => Ok(a.clone()),
        None => cluster::configured_address(&[]),
    }
}

/// Lines of a table whose columns line up: each as wide as its widest cell; the numeric
/// columns `duration` and `bytes` right-aligned, the last column left as it is.
fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> Vec<String> {
    let mut widths = header.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let right = |col: &str| matches!(col, "duration" | "bytes");
    let line = |cells: [&str; N]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = " ".repeat(widths[i] - c.chars().count());
            if i + 1 == N {
                l.push_str(c);
            } else if right(header[i]) {
                l.push_str(&pad);
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&pad);
            }
        }
        l.trim_end().to_string()
    };
    let mut out = vec![line(*header)];
    out.extend(
        rows.iter()
            .map(|r| line(std::array::from_fn(|i| r[i].as_str()))),
    );
    out
}

/// Prints the job's output from `offset` on; returns the new offset.
fn print_from(path: &std::path::Path, offset: u64) -> u64 {
    use std::io::{Read, Seek, SeekFrom, Write};
    let Ok(mut f) = std::fs::File::open(path) else {
        return offset;
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return offset;
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    // Only whole lines: a line being written is printed on the next round.
    let end = buf
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&buf[..end]);
    let _ = out.flush();
    offset + end as u64
}

/// Follows a cluster job's output until it ends; returns its final state.
fn follow(rest: &Rest, job_id: &str) -> anyhow::Result<floe::JobStatus> {
    // Offsets per file: the job manager's stdout and every worker process's, which appear
    // as attempts start on the task managers.
    let mut offsets: std::collections::HashMap<std::path::PathBuf, u64> = Default::default();
    let mut print_all = |logs: &cluster::JobFiles| {
        for f in std::iter::once(&logs.out).chain(&logs.workers) {
            let at = offsets.entry(f.clone()).or_default();
            *at = print_from(f, *at);
        }
    };
    loop {
        let logs: cluster::JobFiles = rest.get(&format!("/floe/jobs/{job_id}/logs"))?;
        print_all(&logs);
        let job: JobDetails = rest.get(&format!("/jobs/{job_id}"))?;
        if job.state.is_terminal() {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let logs: cluster::JobFiles = rest.get(&format!("/floe/jobs/{job_id}/logs"))?;
            print_all(&logs);
            return Ok(job.state);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The job binary with `floe run`'s options passed on, which its `StreamEnv` reads.
fn job_command(
    job: &str,
    from_savepoint: Option<String>,
    allow_non_restored_state: bool,
    parallelism: Option<u32>,
    dynamic: Vec<String>,
    args: Vec<String>,
) -> Command {
    let mut cmd = Command::new(job);
    if let Some(s) = from_savepoint {
        cmd.arg("-s").arg(s);
    }
    if allow_non_restored_state {
        cmd.arg("-n");
    }
    if let Some(p) = parallelism {
        cmd.arg("-p").arg(p.to_string());
    }
    for d in dynamic {
        cmd.arg("-D").arg(d);
    }
    cmd.args(args);
    cmd
}

/// `floe run -d` without a session cluster: the job binary (its own job manager) is started
/// in the background, its output going to `<cluster dir>/jobs/`; returns once it runs and
/// serves REST, so that the other commands can reach it with `-m`.
fn run_detached(mut cmd: Command) -> anyhow::Result<ExitCode> {
    let job = cmd.get_program().to_string_lossy().into_owned();
    let dir = cluster::default_dir().join("jobs");
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let (out, log, status) = (
        dir.join(format!("detached-{stamp}.out")),
        dir.join(format!("detached-{stamp}.log")),
        dir.join(format!("detached-{stamp}.status.json")),
    );
    cmd.env(floe::jobmanager::announce::STATUS_FILE_ENV, &status)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&log)?);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own session: the job outlives this command and its terminal.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start job binary '{job}': {e}"))?;
    let (id, rest) = cluster::wait_until_running(&mut child, &job, &log, &status, true)?;
    let rest = rest.unwrap_or_default();
    println!("Job has been submitted with JobID {id}");
    println!(
        "It runs in the background as its own job manager with its REST endpoint at {rest}: floe list -m {rest}, floe savepoint -m {rest} {id} <targetDirectory>, floe cancel -m {rest} {id}."
    );
    println!(
        "Its output goes to {} and its log to {}.",
        out.display(),
        log.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The exit code of a child: its own, or 128 + the signal that killed it (as shells do).
fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        (None, None) => floe::exit::FAILED,
    }
}

/// The signal the CLI received while a job binary ran (0: none), passed on to the binary.
static FORWARD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    FORWARD.store(sig, std::sync::atomic::Ordering::SeqCst);
}

/// Runs a job binary in the foreground with a report file (`floe::exit::REPORT_ENV`) and
/// returns how it exited and what it reported. SIGINT, SIGTERM and SIGHUP are passed on,
/// so Ctrl-C or `kill` of this command cancels the job as it would the binary itself.
fn run_reporting(
    mut cmd: Command,
    job: &str,
) -> anyhow::Result<(std::process::ExitStatus, Vec<floe::exit::Event>)> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let report = std::env::temp_dir().join(format!("floe-report-{}-{stamp}", std::process::id()));
    cmd.env(floe::exit::REPORT_ENV, &report);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let cli = std::process::id() as libc::pid_t;
        // The job dies with this command, as when `floe run` was the job itself: a
        // `kill -9` of it leaves no job manager behind.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != cli {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start job binary '{job}': {e}"))?;
    let status = loop {
        let sig = FORWARD.swap(0, std::sync::atomic::Ordering::SeqCst);
        if sig != 0 {
            unsafe {
                libc::kill(child.id() as libc::pid_t, sig);
            }
        }
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => anyhow::bail!("cannot wait for job binary '{job}': {e}"),
        }
    };
    let events = floe::exit::read_report(&report);
    let _ = std::fs::remove_file(&report);
    Ok((status, events))
}

/// Gives SIGPIPE back its default action, which Rust's runtime sets to "ignore": like every
/// Unix tool, `floe ... | head` then ends quietly when `head` has read enough, instead of
/// panicking on the failed write ("failed printing to stdout: Broken pipe"). The cluster
/// daemon, which must outlive its clients, ignores it again.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: sets a signal disposition before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Puts `--` after the job binary of `floe run` and `floe savepoint check`, so that
/// everything after it is the job's: clap would otherwise take `floe run job --help` (or
/// `-s`, `-p`, ...) as `floe run`'s own, and the job could never be asked for its usage.
fn job_args_are_the_jobs(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let words: Vec<&str> = argv.iter().map(|a| a.to_str().unwrap_or("")).collect();
    let (start, positionals_before_job) = match words.get(1..3) {
        Some(["run", ..]) => (2, 0),
        Some(["savepoint", "check"]) => (3, 1),
        _ => return argv,
    };
    let takes_value = |w: &str| {
        matches!(
            w,
            "-m" | "--jobmanager" | "-s" | "--fromSavepoint" | "-p" | "--parallelism" | "-D"
        )
    };
    let mut seen = 0;
    let mut i = start;
    while i < words.len() {
        let w = words[i];
        if w == "--" {
            return argv;
        }
        if takes_value(w) {
            i += 1;
        } else if !w.starts_with('-') || w == "-" {
            if seen == positionals_before_job {
                if words.get(i + 1) != Some(&"--") {
                    argv.insert(i + 1, "--".into());
                }
                return argv;
            }
            seen += 1;
        }
        i += 1;
    }
    argv
}

/// Object-store settings for `floe savepoint inspect` / `--dispose`: the configuration file
/// (`$FLOE_CONF_DIR` or `conf/`), then `-D` settings.
fn configure_storage(dynamic: &[String]) -> anyhow::Result<()> {
    let mut conf = floe::config::file::load_from_env()?;
    for d in dynamic {
        conf.set_dynamic(d)?;
    }
    floe::storage::configure(&conf)
}

fn main() -> ExitCode {
    default_sigpipe();
    let cli = Cli::parse_from(job_args_are_the_jobs(std::env::args_os().collect()));
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Run {
            target,
            detached,
            from_savepoint,
            allow_non_restored_state,
            parallelism,
            dynamic,
            job,
            args,
        } => {
            let rest = Rest::new(Some(&address(&target)?))?;
            if rest.is_cluster() {
                let binary = std::fs::canonicalize(&job)
                    .map_err(|e| anyhow::anyhow!("job binary '{job}': {e}"))?;
                // The cluster starts the job in its own working directory.
                let from_savepoint = from_savepoint
                    .map(|s| {
                        floe::storage::Location::absolute(&s).map(|l| PathBuf::from(l.to_string()))
                    })
                    .transpose()?;
                let req = cluster::SubmitRequest {
                    binary,
                    args,
                    savepoint: from_savepoint,
                    allow_non_restored_state,
                    parallelism,
                    dynamic,
                };
                let submitted: cluster::Submitted = rest.post("/floe/jobs", &req)?;
                let id = submitted.jobid;
                println!("Job has been submitted with JobID {id}");
                if detached {
                    return Ok(ExitCode::SUCCESS);
                }
                let state = follow(&rest, &id)?;
                println!(
                    "Job with JobID {id} has {}.",
                    state.as_str().to_ascii_lowercase()
                );
                if state == floe::JobStatus::Failed {
                    if let Ok(ex) = rest.get::<JobExceptions>(&format!("/jobs/{id}/exceptions")) {
                        if let Some(cause) = ex.root_exception {
                            eprintln!("Cause: {}", cause.replace('\n', " "));
                        }
                    }
                }
                // The exit code tells how the job ended.
                return Ok(match state {
                    floe::JobStatus::Finished => ExitCode::SUCCESS,
                    floe::JobStatus::Canceled => ExitCode::from(2),
                    _ => ExitCode::from(1),
                });
            }
            let mut dynamic = dynamic;
            if detached
                && !dynamic
                    .iter()
                    .any(|d| d.split('=').next().map(str::trim) == Some("rest.port"))
            {
                // A background job nothing could reach is no use: it serves REST on a free
                // port (unless told which), and that address is printed.
                dynamic.push("rest.port=0".into());
            }
            let mut cmd = job_command(
                &job,
                from_savepoint,
                allow_non_restored_state,
                parallelism,
                dynamic,
                args,
            );
            if detached {
                return run_detached(cmd);
            }
            // The job's embedded job manager then prints Flink's submission and result lines.
            cmd.env(floe::launch::CLI_RUN_ENV, "1");
            // The job binary embeds its job manager (per-job mode); its report says that it
            // is a Floe job and how the job ended, which decides the exit code.
            let (status, events) = run_reporting(cmd, &job)?;
            use floe::exit::Event;
            if events.is_empty() {
                anyhow::bail!(
                    "{job} is not a Floe job (it exited with {status} without submitting a job)"
                )
            }
            // A Floe job binary applies the exit-code contract itself (exit_on_error), so
            // its code is passed on: the same as when it runs directly.
            let ended = events
                .iter()
                .any(|e| matches!(e, Event::Ended(_) | Event::Error | Event::Usage));
            if let (false, Some(id)) = (
                ended,
                events.iter().find_map(|e| match e {
                    Event::Submitted(id) => Some(*id),
                    _ => None,
                }),
            ) {
                eprintln!("error: job binary {job} ended ({status}) before its job {id} did");
            }
            Ok(ExitCode::from(exit_code_of(status)))
        }
        Cmd::Cluster { action } => match action {
            ClusterCmd::Start {
                dir,
                dynamic,
                taskmanagers,
            } => {
                cluster::start(
                    &dir.unwrap_or_else(cluster::default_dir),
                    &dynamic,
                    taskmanagers,
                )?;
                Ok(ExitCode::SUCCESS)
            }
            ClusterCmd::Stop { target } => {
                cluster::stop(&address(&target)?)?;
                Ok(ExitCode::SUCCESS)
            }
            ClusterCmd::Status { target } => {
                let addr = address(&target)?;
                let rest = Rest::new(Some(&addr))?;
                if !rest.is_cluster() {
                    println!("No Floe cluster is running at {addr}.");
                    return Ok(ExitCode::from(1));
                }
                let v: ClusterOverview = rest.get("/overview")?;
                println!(
                    "Floe cluster at {addr}: {} running, {} finished, {} cancelled, {} failed jobs",
                    v.jobs_running, v.jobs_finished, v.jobs_cancelled, v.jobs_failed
                );
                // A daemon of before task managers has none to show.
                let tms: TaskManagersInfo = rest.get("/taskmanagers").unwrap_or(TaskManagersInfo {
                    taskmanagers: Vec::new(),
                });
                println!(
                    "Task managers: {} with {} slot(s), {} free",
                    tms.taskmanagers.len(),
                    v.slots_total,
                    v.slots_available
                );
                if !tms.taskmanagers.is_empty() {
                    let rows: Vec<[String; 4]> = tms
                        .taskmanagers
                        .iter()
                        .map(|t| {
                            [
                                t.id.clone(),
                                t.host.clone(),
                                t.slots_number.to_string(),
                                t.free_slots.to_string(),
                            ]
                        })
                        .collect();
                    for l in table(&["ID", "HOST", "SLOTS", "FREE"], &rows) {
                        println!("{l}");
                    }
                }
                let jobs: JobsOverview = rest.get("/jobs/overview")?;
                for j in &jobs.jobs {
                    println!("Job {} : {} ({})", j.jid, j.name, j.state);
                }
                Ok(ExitCode::SUCCESS)
            }
            ClusterCmd::Daemon {
                dir,
                dynamic,
                taskmanagers,
            } => {
                #[cfg(unix)]
                // SAFETY: sets a signal disposition before the daemon starts its threads.
                unsafe {
                    libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                }
                cluster::daemon(dir, &dynamic, taskmanagers)?;
                Ok(ExitCode::SUCCESS)
            }
        },
        Cmd::Taskmanager { action } => {
            match action {
                TaskManagerCmd::Start { dir, dynamic } => {
                    taskmanager::start(&dir.unwrap_or_else(taskmanager::default_dir), &dynamic)?
                }
                TaskManagerCmd::Stop { dir } => {
                    taskmanager::stop(&dir.unwrap_or_else(taskmanager::default_dir))?
                }
                TaskManagerCmd::Daemon { dir, dynamic } => taskmanager::daemon(dir, &dynamic)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Logs {
            target,
            follow: f,
            job_id,
        } => {
            let job_id = job_id.parse::<JobId>()?.to_string();
            let rest = Rest::new(Some(&address(&target)?))?;
            if f {
                follow(&rest, &job_id)?;
            } else {
                let logs: cluster::JobFiles = rest.get(&format!("/floe/jobs/{job_id}/logs"))?;
                for f in std::iter::once(&logs.out).chain(&logs.workers) {
                    print_from(f, 0);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::List { target, all } => {
            let rest = Rest::new(Some(&address(&target)?))?;
            println!("Waiting for response...");
            let v: JobsOverview = rest.get("/jobs/overview")?;
            let jobs = v.jobs;
            let line = |j: &JobOverview| {
                format!(
                    "{} : {} : {} ({})",
                    rest::format_time(j.start_time.max(0) as u64),
                    j.jid,
                    j.name,
                    j.state
                )
            };
            let terminal = |j: &JobOverview| j.state.is_terminal();
            let running: Vec<&JobOverview> = jobs.iter().filter(|j| !terminal(j)).collect();
            // A session cluster's task managers tell where each job's subtasks run.
            let workers = task_manager_details(&rest);
            if running.is_empty() {
                println!("No running jobs.");
            } else {
                println!("------------------ Running/Restarting Jobs -------------------");
                for j in running {
                    println!("{}", line(j));
                    let at = taskmanagers::job_locations(&workers, &j.jid);
                    if !at.is_empty() {
                        println!("    subtasks {}", taskmanagers::placement_summary(&at));
                    }
                }
                println!("--------------------------------------------------------------");
            }
            println!("No scheduled jobs.");
            if all {
                let done: Vec<&JobOverview> = jobs.iter().filter(|j| terminal(j)).collect();
                if done.is_empty() {
                    println!("No terminated jobs.");
                } else {
                    println!("---------------------- Terminated Jobs -----------------------");
                    for j in done {
                        println!("{}", line(j));
                    }
                    println!("--------------------------------------------------------------");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Savepoint {
            action:
                Some(SavepointAction::Check {
                    path,
                    allow_non_restored_state,
                    job,
                    args,
                }),
            ..
        } => {
            let mut cmd = Command::new(&job);
            if allow_non_restored_state {
                cmd.arg("-n");
            }
            cmd.args(args).env(floe::launch::CHECK_SNAPSHOT_ENV, &path);
            if std::env::var_os("FLOE_LOG").is_none() {
                cmd.env("FLOE_LOG", "warn");
            }
            let (status, events) = run_reporting(cmd, &job)?;
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                // The report met a closed stdout (`| head`): end as the job binary did.
                if status.signal() == Some(libc::SIGPIPE) {
                    // SAFETY: raises a signal whose action is the default (terminate).
                    unsafe {
                        libc::raise(libc::SIGPIPE);
                    }
                }
            }
            use floe::exit::Event;
            for e in events {
                match e {
                    Event::Checked { restores: true } => return Ok(ExitCode::SUCCESS),
                    // The binary printed what does not fit, or its error.
                    Event::Checked { restores: false } | Event::Error => {
                        return Ok(ExitCode::from(1))
                    }
                    _ => {}
                }
            }
            anyhow::bail!(
                "{job} is not a Floe job (it exited with {status} without checking the snapshot)"
            )
        }
        Cmd::Savepoint {
            action:
                Some(SavepointAction::Inspect {
                    path,
                    dump,
                    dynamic,
                }),
            ..
        } => {
            configure_storage(&dynamic)?;
            inspect::inspect(&floe::storage::Location::from_path(&path)?, dump.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Savepoint {
            target,
            dispose: Some(path),
            dynamic,
            ..
        } => {
            let _ = target;
            configure_storage(&dynamic)?;
            println!("Disposing savepoint '{}'.", path.display());
            floe::jobmanager::rest::dispose_savepoint(&path)?;
            println!("Savepoint '{}' disposed.", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Savepoint {
            target,
            job_id,
            target_directory,
            ..
        } => {
            let job_id = job_id
                .expect("clap requires a job id without --dispose")
                .parse::<JobId>()?
                .to_string();
            let rest = Rest::new(Some(&address(&target)?))?;
            // The job manager's working directory is not ours: send an absolute path.
            let target_directory = target_directory
                .map(|d| floe::storage::Location::absolute(&d))
                .transpose()?;
            println!("Triggering savepoint for job {job_id}.");
            println!("Waiting for response...");
            let without_target = target_directory.is_none();
            let body = SavepointTriggerRequest {
                target_directory: target_directory.map(|d| d.display().to_string()),
                ..SavepointTriggerRequest::default()
            };
            let path = rest
                .savepoint(&format!("/jobs/{job_id}/savepoints"), &job_id, &body)
                .map_err(|e| {
                    // Refused as given (400) without a target: no default directory either.
                    let no_directory = without_target
                        && e.downcast_ref::<rest::Refused>().map(|r| r.status) == Some(400);
                    let hint = if no_directory {
                        " To fix it, give a target directory (floe savepoint <jobId> <targetDirectory>) or set execution.checkpointing.savepoint-dir (alias state.savepoints.dir) in floe.yaml or with -D."
                    } else {
                        ""
                    };
                    anyhow::anyhow!("Triggering a savepoint for the job {job_id} failed: {e}{hint}")
                })?;
            println!("Savepoint completed. Path: {path}");
            println!("You can resume your program from this savepoint with the run command.");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Stop {
            target,
            savepoint_path,
            drain,
            job_id,
        } => {
            let job_id = job_id.parse::<JobId>()?.to_string();
            let rest = Rest::new(Some(&address(&target)?))?;
            let savepoint_path = savepoint_path
                .map(|d| floe::storage::Location::absolute(&d))
                .transpose()?;
            println!("Suspending job \"{job_id}\" with a savepoint.");
            let body = StopWithSavepointRequest {
                target_directory: savepoint_path.map(|d| d.display().to_string()),
                drain,
                ..StopWithSavepointRequest::default()
            };
            let path = rest
                .savepoint(&format!("/jobs/{job_id}/stop"), &job_id, &body)
                .map_err(|e| {
                    anyhow::anyhow!("Could not stop with a savepoint job \"{job_id}\": {e}")
                })?;
            println!("Savepoint completed. Path: {path}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Cancel {
            target,
            with_savepoint: Some(dir),
            job_id,
        } => {
            let job_id = job_id.parse::<JobId>()?.to_string();
            let rest = Rest::new(Some(&address(&target)?))?;
            // The job manager's working directory is not ours: send an absolute path.
            let dir = dir
                .map(|d| floe::storage::Location::absolute(&d))
                .transpose()?;
            match &dir {
                Some(d) => println!(
                    "Cancelling job {job_id} with CANONICAL savepoint to {}.",
                    d.display()
                ),
                None => println!("Cancelling job {job_id} with CANONICAL savepoint to default savepoint directory."),
            }
            let body = SavepointTriggerRequest {
                target_directory: dir.map(|d| d.display().to_string()),
                cancel_job: true,
                ..SavepointTriggerRequest::default()
            };
            let path = rest
                .savepoint(&format!("/jobs/{job_id}/savepoints"), &job_id, &body)
                .map_err(|e| anyhow::anyhow!("Cancelling the job {job_id} failed: {e}"))?;
            println!("Cancelled job {job_id}. Savepoint stored in {path}.");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Cancel {
            target,
            with_savepoint: None,
            job_id,
        } => {
            let job_id = job_id.parse::<JobId>()?.to_string();
            let rest = Rest::new(Some(&address(&target)?))?;
            println!("Cancelling job {job_id}.");
            rest.patch::<floe::jobmanager::rest::model::Empty>(&format!(
                "/jobs/{job_id}?mode=cancel"
            ))?;
            println!("Cancelled job {job_id}.");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Checkpoint {
            target,
            full,
            job_id,
        } => {
            let job_id = job_id.parse::<JobId>()?.to_string();
            let rest = Rest::new(Some(&address(&target)?))?;
            println!("Triggering checkpoint for job {job_id}.");
            println!("Waiting for response...");
            let id = rest.checkpoint(&job_id, full).map_err(|e| {
                anyhow::anyhow!("Failed to trigger a checkpoint for the job {job_id}: {e}")
            })?;
            let kind = if full { "(FULL)" } else { "" };
            println!("Checkpoint{kind} {id} for job {job_id} completed.");
            println!("You can resume your program from this checkpoint with the run command.");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Checkpoints { target, job_id } => {
            let job_id = job_id.parse::<JobId>()?.to_string();
            let rest = Rest::new(Some(&address(&target)?))?;
            let v: CheckpointingStatistics = rest.get(&format!("/jobs/{job_id}/checkpoints"))?;
            let c = &v.counts;
            println!(
                "Checkpoints of job {job_id}: {} completed, {} failed, {} in progress, {} restored",
                c.completed, c.failed, c.in_progress, c.restored
            );
            let header = [
                "id",
                "type",
                "status",
                "trigger time",
                "duration",
                "bytes",
                "path",
            ];
            let rows: Vec<[String; 7]> = v
                .history
                .iter()
                .map(|h: &CheckpointStatistics| {
                    let kind = if h.is_savepoint {
                        "savepoint"
                    } else {
                        "checkpoint"
                    };
                    let path = Some(h.external_path.as_str())
                        .filter(|p| !p.is_empty())
                        .or(h.failure_message.as_deref())
                        .unwrap_or("");
                    [
                        h.id.to_string(),
                        kind.to_string(),
                        h.status.as_str().to_string(),
                        rest::format_time(h.trigger_timestamp),
                        format!("{}ms", h.end_to_end_duration),
                        h.state_size.to_string(),
                        path.to_string(),
                    ]
                })
                .collect();
            for line in table(&header, &rows) {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::job_args_are_the_jobs;

    fn after(args: &[&str]) -> Vec<String> {
        let argv = std::iter::once("floe")
            .chain(args.iter().copied())
            .map(std::ffi::OsString::from)
            .collect();
        job_args_are_the_jobs(argv)
            .into_iter()
            .skip(1)
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn what_follows_the_job_binary_is_the_jobs() {
        assert_eq!(
            after(&["run", "job", "--help"]),
            ["run", "job", "--", "--help"]
        );
        assert_eq!(
            after(&["run", "-s", "sp", "-D", "k=v", "-d", "job", "-p", "2"]),
            ["run", "-s", "sp", "-D", "k=v", "-d", "job", "--", "-p", "2"]
        );
        assert_eq!(
            after(&["run", "job", "--", "-h"]),
            ["run", "job", "--", "-h"]
        );
        assert_eq!(after(&["run", "--help"]), ["run", "--help"]);
        assert_eq!(
            after(&["savepoint", "check", "-n", "sp", "job", "--help"]),
            ["savepoint", "check", "-n", "sp", "job", "--", "--help"]
        );
        assert_eq!(after(&["list", "-m", "x"]), ["list", "-m", "x"]);
        assert_eq!(
            after(&["savepoint", "id", "dir"]),
            ["savepoint", "id", "dir"]
        );
    }
}
