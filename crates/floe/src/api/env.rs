//! `StreamEnv`: configuration, sources, and `execute`.

use super::data::Data;
use super::params::JobParams;
use super::stream::{DataStream, SourceNode};
use crate::checkpoint::config::{
    CheckpointConfig, CheckpointingMode, ExternalizedCheckpointRetention,
};
use crate::checkpoint::metadata::load_snapshot;
use crate::checkpoint::metadata::OperatorKind;
use crate::config::Configuration;
use crate::connectors::collection::CollectionSource;
use crate::connectors::file::TextFileSource;
use crate::connectors::generator::WordLineGenerator;
use crate::connectors::socket::SocketTextSource;
use crate::connectors::Source;
pub use crate::job::{JobExecutionResult, JobStatus};
use crate::jobmanager::restart::RestartStrategy;
use crate::jobmanager::{JobClient, JobManager, JobSpec};
use crate::runtime::plan::{OperatorDecl, Plan, Terminal};
use crate::state::keygroup::{DEFAULT_MAX_PARALLELISM, UPPER_BOUND_MAX_PARALLELISM};
use crate::Result;
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

struct EnvInner {
    /// From `-D` and (later) the configuration file.
    conf: Configuration,
    /// Set by job code; overrides `conf`, as in Flink.
    code: Configuration,
    params: JobParams,
    restore: Option<PathBuf>,
    allow_non_restored: bool,
    operators: Vec<OperatorDecl>,
    terminals: Vec<Arc<dyn Terminal>>,
    chains: usize,
    errors: Vec<String>,
    /// Run attempts in worker processes (set for job binaries by `from_args`).
    worker_processes: bool,
}

/// The entry point of a job, like Flink's `StreamExecutionEnvironment`.
///
/// ```no_run
/// use floe::prelude::*;
/// use std::time::Duration;
/// let env = StreamEnv::from_args().unwrap();     // -s PATH, -p N, -D key=value, -n
/// env.enable_checkpointing(Duration::from_secs(1));
/// let port: u16 = env.params().get_parsed("port").unwrap().unwrap_or(9999);
/// ```
#[derive(Clone)]
pub struct StreamEnv {
    inner: Rc<RefCell<EnvInner>>,
}

impl Default for StreamEnv {
    fn default() -> Self {
        Self::new()
    }
}

const USAGE: &str = "job options: [-s|--fromSavepoint PATH] [-p|--parallelism N] [-n|--allowNonRestoredState] [-D key=value]... [job arguments]";

/// What `--help` prints of Floe's options: the table of the README's "Running a job binary".
const OPTIONS_HELP: &str = "\
Floe options (the options `floe run` passes on):
  -s, --fromSavepoint PATH     start from a chk-<n> or savepoint directory, its _metadata file,
                               or a job's checkpoint directory <dir>/<job-id> (its latest
                               complete checkpoint); PATH may be a plain path, file:/path or
                               file:///path. The job gets a new id and continues checkpoint
                               numbering at n+1
  -p, --parallelism N          default parallelism (worker threads)
  -n, --allowNonRestoredState  skip snapshot state whose operator uid is not in the job
  -D key=value                 a configuration setting with Flink's key names,
                               e.g. -D execution.checkpointing.interval=1s
  -h, --help                   print this help and exit

Settings are also read from $FLOE_CONF_DIR/floe.yaml (else conf/floe.yaml in the working
directory); -D overrides the file and settings made in job code override both.";

/// True when `args` ask for help: `--help` anywhere among Floe's options, or `-h` that is
/// not followed by a value (a job may take `-h HOST` as its own argument). Values of
/// Floe's own options (`-s PATH`, `-p N`, `-D k=v`) are skipped, so `-D --help` is a value.
fn wants_help(args: &[String]) -> bool {
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--help" => return true,
            "-h" if args.get(i + 1).is_none_or(|n| n.starts_with('-')) => return true,
            "-s" | "--fromSavepoint" | "-p" | "--parallelism" | "-D" => i += 1,
            _ => {}
        }
        i += 1;
    }
    false
}

impl StreamEnv {
    /// An environment with default settings and no arguments.
    pub fn new() -> Self {
        StreamEnv {
            inner: Rc::new(RefCell::new(EnvInner {
                conf: Configuration::new(),
                code: Configuration::new(),
                params: JobParams::default(),
                restore: None,
                allow_non_restored: false,
                operators: Vec::new(),
                terminals: Vec::new(),
                chains: 0,
                errors: Vec::new(),
                worker_processes: false,
            })),
        }
    }

    /// An environment configured from the process arguments: Floe's options (what
    /// `floe run` passes through) are taken out, the rest are the job's own arguments
    /// ([`StreamEnv::params`]).
    ///
    /// | option | meaning |
    /// |---|---|
    /// | `-s`, `--fromSavepoint PATH` | restore from a `chk-<n>` or savepoint directory, its `_metadata`, or a job's checkpoint directory `<dir>/<job-id>` |
    /// | `-p`, `--parallelism N` | default parallelism |
    /// | `-n`, `--allowNonRestoredState` | skip snapshot state that maps to no operator |
    /// | `-D key=value` | a configuration setting (Flink's key names) |
    ///
    /// Settings are read from `$FLOE_CONF_DIR/floe.yaml` (else `conf/floe.yaml`) first (see
    /// [`crate::config::file`]); `-D` overrides the file and job code overrides both.
    ///
    /// `--help` (or `-h` without a value) prints these options and exits with code 0; see
    /// [`from_args_with_usage`](Self::from_args_with_usage) to print the job's own
    /// arguments too.
    pub fn from_args() -> Result<Self> {
        Self::from_args_with_usage("")
    }

    /// [`from_args`](Self::from_args) for a job that describes its own arguments: `--help`
    /// prints `usage` (e.g. `--host HOST --port PORT`; one or more lines) after Floe's options.
    ///
    /// ```no_run
    /// let env = floe::StreamEnv::from_args_with_usage("--input DIR --output DIR").unwrap();
    /// ```
    pub fn from_args_with_usage(usage: &str) -> Result<Self> {
        let args: Vec<String> = std::env::args().collect();
        if wants_help(&args[1.min(args.len())..]) {
            let program = args
                .first()
                .map(|p| {
                    std::path::Path::new(p)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| p.clone())
                })
                .unwrap_or_else(|| "job".into());
            let job = if usage.is_empty() {
                String::new()
            } else {
                let lines: Vec<String> = usage.lines().map(|l| format!("  {l}")).collect();
                format!("\n\nJob arguments:\n{}", lines.join("\n"))
            };
            // `job --help | head` must not panic either.
            super::print::stdout_line(&format!(
                "Usage: {program} [Floe options] [job arguments]\n\n{OPTIONS_HELP}{job}"
            ));
            crate::exit::report(crate::exit::Event::Usage);
            std::process::exit(0);
        }
        let env = Self::from_arg_list(args.into_iter().skip(1))?;
        // A job binary: the job manager stays in this process, user code runs in worker
        // processes started from this same binary.
        env.inner.borrow_mut().worker_processes = true;
        Ok(env)
    }

    /// Runs attempts on threads of this process instead of worker processes (what
    /// `StreamEnv::new()` does); needed by in-memory sinks such as [`DataStream::collect`].
    pub fn run_in_process(&self) {
        self.inner.borrow_mut().worker_processes = false;
    }

    /// Like [`from_args`](Self::from_args) with an explicit list (without the program name).
    pub fn from_arg_list<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Result<Self> {
        let env = StreamEnv::new();
        // Which configuration file was read is logged; a worker process reads the same file
        // again and says nothing.
        if !crate::runtime::process::is_worker() {
            crate::logging::init();
        }
        // The configuration file (FLOE_CONF_DIR/floe.yaml) first; -D overrides it.
        env.inner.borrow_mut().conf = crate::config::file::load_from_env()?;
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        let mut rest = Vec::new();
        let mut i = 0;
        let value = |i: usize, flag: &str| -> Result<String> {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| crate::anyhow!("option {flag} needs a value ({USAGE})"))
        };
        {
            let mut inner = env.inner.borrow_mut();
            while i < args.len() {
                let a = args[i].as_str();
                match a {
                    "-s" | "--fromSavepoint" => {
                        inner.restore = Some(PathBuf::from(value(i, a)?));
                        i += 1;
                    }
                    "-p" | "--parallelism" => {
                        let v = value(i, a)?;
                        let p: u32 = v
                            .parse()
                            .ok()
                            .filter(|p| *p >= 1)
                            .ok_or_else(|| crate::anyhow!("invalid parallelism '{v}' for option {a}: expected a positive integer"))?;
                        inner.conf.set("parallelism.default", &p.to_string())?;
                        i += 1;
                    }
                    "-n" | "--allowNonRestoredState" => inner.allow_non_restored = true,
                    "-D" => {
                        let v = value(i, a)?;
                        inner.conf.set_dynamic(&v)?;
                        i += 1;
                    }
                    _ if a.starts_with("-D") && a.len() > 2 => inner.conf.set_dynamic(&a[2..])?,
                    _ => rest.push(args[i].clone()),
                }
                i += 1;
            }
            inner.params = JobParams::parse(rest)?;
        }
        Ok(env)
    }

    /// The job's own arguments.
    pub fn params(&self) -> JobParams {
        self.inner.borrow().params.clone()
    }

    /// The effective configuration: settings from code over `-D`/file settings.
    pub fn configuration(&self) -> Configuration {
        let inner = self.inner.borrow();
        let mut c = inner.conf.clone();
        c.merge(&inner.code);
        c
    }

    fn set_code(&self, key: &str, value: &str) {
        if let Err(e) = self.inner.borrow_mut().code.set(key, value) {
            self.record_error(e.to_string());
        }
    }

    /// Sets a configuration key from job code (overrides `-D`).
    pub fn set_config(&self, key: &str, value: &str) -> Result<()> {
        self.inner.borrow_mut().code.set(key, value)?;
        Ok(())
    }

    /// Default parallelism of every operator (`parallelism.default`).
    pub fn set_parallelism(&self, parallelism: u32) {
        self.set_code("parallelism.default", &parallelism.to_string());
    }

    /// The effective parallelism.
    pub fn parallelism(&self) -> u32 {
        self.configuration()
            .get_u32("parallelism.default")
            .ok()
            .flatten()
            .unwrap_or(1)
    }

    /// Number of key groups (`pipeline.max-parallelism`, default 128). Keyed state can be
    /// rescaled up to this parallelism; changing it makes snapshots incompatible.
    pub fn set_max_parallelism(&self, max: u32) {
        self.set_code("pipeline.max-parallelism", &max.to_string());
    }

    /// Takes a checkpoint every `interval` (at least 10 ms), exactly-once by default.
    pub fn enable_checkpointing(&self, interval: Duration) {
        self.set_code(
            "execution.checkpointing.interval",
            &format!("{} ms", interval.as_millis()),
        );
    }

    /// Checkpoint settings.
    pub fn checkpoint_config(&self) -> CheckpointConfigHandle {
        CheckpointConfigHandle { env: self.clone() }
    }

    /// Where checkpoints are written: a directory path or `file://` URL.
    pub fn set_checkpoint_storage(&self, dir: &str) {
        self.set_code("execution.checkpointing.dir", dir);
    }

    /// The restart strategy for task failures.
    pub fn set_restart_strategy(&self, strategy: RestartStrategy) {
        let mut inner = self.inner.borrow_mut();
        strategy.to_config(&mut inner.code);
    }

    /// Restores the job from a checkpoint or savepoint (what `-s` sets).
    pub fn set_restore_path(&self, path: impl Into<PathBuf>) {
        self.inner.borrow_mut().restore = Some(path.into());
    }

    /// Adds a source.
    pub fn add_source<T: Data, S: Source<T>>(&self, source: S) -> DataStream<T> {
        let name = format!("Source: {}", source.name());
        let chain = self.new_chain();
        let op = self.add_operator(&name, Some(OperatorKind::Source), Some(chain));
        let limit = source.max_parallelism();
        self.inner.borrow_mut().operators[op].parallelism = limit.unwrap_or(0);
        let source: Arc<dyn Source<T>> = Arc::new(source);
        DataStream {
            env: self.clone(),
            node: Arc::new(SourceNode {
                op,
                source: Arc::clone(&source),
            }),
            op,
            chain,
            source: Some(super::stream::SourceChain { op, source }),
        }
    }

    /// Lines from a TCP server, like Flink's `socketTextStream` (parallelism 1).
    pub fn socket_text_stream(&self, host: &str, port: u16) -> DataStream<String> {
        self.add_source(SocketTextSource::new(host, port))
    }

    /// A bounded stream of the given elements (parallelism 1).
    pub fn from_collection<T: Data + Sync>(&self, items: Vec<T>) -> DataStream<T> {
        self.add_source(CollectionSource(Arc::new(items)))
    }

    /// The lines of a text file, or of every file in a directory; replayable.
    pub fn read_text_file(&self, path: impl Into<PathBuf>) -> DataStream<String> {
        self.add_source(TextFileSource::new(path))
    }

    /// The deterministic lines of Flink's `ThroughputWordCount` benchmark (`words` words).
    pub fn generate_word_lines(&self, words: u64) -> DataStream<String> {
        self.add_source(WordLineGenerator::new(words))
    }

    pub(crate) fn new_chain(&self) -> usize {
        let mut inner = self.inner.borrow_mut();
        inner.chains += 1;
        inner.chains - 1
    }

    pub(crate) fn add_operator(
        &self,
        name: &str,
        state: Option<OperatorKind>,
        chain: Option<usize>,
    ) -> usize {
        let mut inner = self.inner.borrow_mut();
        let id = inner.operators.len();
        let slug: String = name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let slug = slug
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let chain = chain.unwrap_or(inner.chains);
        inner.operators.push(OperatorDecl {
            uid: format!("{id}-{slug}"),
            explicit_uid: false,
            name: name.to_string(),
            state,
            parallelism: 0,
            chain,
        });
        id
    }

    pub(crate) fn set_uid(&self, op: usize, uid: &str) {
        let mut inner = self.inner.borrow_mut();
        if uid.is_empty() {
            inner
                .errors
                .push("an operator uid must not be empty".into());
            return;
        }
        if inner
            .operators
            .iter()
            .enumerate()
            .any(|(i, o)| i != op && o.uid == uid)
        {
            inner.errors.push(format!(
                "operator uid '{uid}' is used by more than one operator"
            ));
        }
        inner.operators[op].uid = uid.to_string();
        inner.operators[op].explicit_uid = true;
    }

    pub(crate) fn set_name(&self, op: usize, name: &str) {
        self.inner.borrow_mut().operators[op].name = name.to_string();
    }

    pub(crate) fn add_terminal(&self, t: Arc<dyn Terminal>) {
        self.inner.borrow_mut().terminals.push(t);
    }

    pub(crate) fn record_error(&self, e: String) {
        self.inner.borrow_mut().errors.push(e);
    }

    /// Runs the job to its end with an embedded job manager: checkpoints, restarts and
    /// retention as configured. Returns when the job is FINISHED or CANCELED; a FAILED job
    /// (the restart strategy gave up) is an error.
    pub fn execute(&self, job_name: &str) -> Result<JobExecutionResult> {
        self.execute_async(job_name)?.wait()
    }

    /// Starts the job and returns at once with a [`JobClient`] (Flink's `executeAsync`):
    /// its id and status, savepoints, stop-with-savepoint, cancel, and its result.
    ///
    /// ```no_run
    /// use floe::prelude::*;
    /// let env = StreamEnv::new();
    /// env.enable_checkpointing(std::time::Duration::from_secs(1));
    /// env.socket_text_stream("127.0.0.1", 9999).print();
    /// let job = env.execute_async("lines").unwrap();
    /// let savepoint = job.stop_with_savepoint(Some(std::path::Path::new("/tmp/savepoints"))).unwrap();
    /// println!("Savepoint completed. Path: {}", savepoint.display());
    /// job.wait().unwrap();
    /// ```
    pub fn execute_async(&self, job_name: &str) -> Result<JobClient> {
        crate::logging::init();
        if let Some(path) = std::env::var_os("FLOE_CHECK_SNAPSHOT") {
            // `floe savepoint check`: report whether the snapshot restores, run nothing.
            use crate::exit::{report, Event};
            // A report for a terminal or a pipe: `| head` ends it quietly, as any Unix tool.
            #[cfg(unix)]
            // SAFETY: only the disposition changes; no handler of ours runs.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            }
            let code = match self.check_snapshot(job_name, std::path::Path::new(&path)) {
                Ok(restores) => {
                    report(Event::Checked { restores });
                    if restores {
                        0
                    } else {
                        1
                    }
                }
                Err(e) => {
                    report(Event::Error);
                    eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
                    1
                }
            };
            std::process::exit(code);
        }
        let spec = self.job_spec(job_name)?;
        if crate::runtime::process::is_worker() {
            crate::runtime::process::run_worker(spec.plan);
        }
        let conf = self.configuration();
        // The REST API is served when a port is configured (0 picks a free one).
        let rest = match conf.get_raw("rest.port") {
            Some(_) => {
                let host = conf
                    .get_string("rest.bind-address")?
                    .unwrap_or_else(|| "127.0.0.1".into());
                let port = conf.get_u32("rest.port")?.unwrap_or(8081);
                let addr = format!("{host}:{port}")
                    .parse::<std::net::SocketAddr>()
                    .map_err(|e| crate::anyhow!("invalid rest.bind-address '{host}': {e}"))?;
                Some((addr, conf.clone()))
            }
            None => None,
        };
        JobManager::new(spec).spawn(rest)
    }

    /// Prints whether the snapshot at `path` would restore into this job: matched, unmatched
    /// and new operators, and how every state decodes into the job's types. True when it
    /// would restore (with `-n`, skipping state without an operator).
    fn check_snapshot(&self, job_name: &str, path: &std::path::Path) -> Result<bool> {
        let snap = load_snapshot(&crate::storage::resolve(path)?)?;
        let allow_non_restored = self.inner.borrow().allow_non_restored;
        let saved = self.inner.borrow_mut().restore.take();
        let spec = self.job_spec(job_name);
        self.inner.borrow_mut().restore = saved;
        let report = spec?.plan.check_restore(&snap, allow_non_restored)?;
        print!("{report}");
        Ok(report.restores())
    }

    /// Validates the graph and configuration and freezes them into a job spec.
    pub(crate) fn job_spec(&self, job_name: &str) -> Result<JobSpec> {
        let conf = self.configuration();
        let inner = self.inner.borrow();
        if let Some(e) = inner.errors.first() {
            crate::bail!("invalid job graph: {e}");
        }
        if inner.terminals.is_empty() {
            crate::bail!("no sinks defined in the job: add print(), sink_to(..) or another sink before execute()");
        }
        let parallelism = conf.get_u32("parallelism.default")?.unwrap_or(1).max(1);
        let max_parallelism = conf
            .get_u32("pipeline.max-parallelism")?
            .unwrap_or(DEFAULT_MAX_PARALLELISM);
        if max_parallelism == 0 || max_parallelism > UPPER_BOUND_MAX_PARALLELISM {
            crate::bail!("max parallelism {max_parallelism} is out of range 1..={UPPER_BOUND_MAX_PARALLELISM}");
        }
        if parallelism > max_parallelism {
            crate::bail!(
                "parallelism {parallelism} is greater than the max parallelism {max_parallelism}"
            );
        }
        let mut operators = inner.operators.clone();
        for o in &mut operators {
            o.parallelism = if o.parallelism == 0 {
                parallelism
            } else {
                o.parallelism.min(parallelism)
            };
            if !o.explicit_uid && o.state.is_some() {
                tracing::warn!(
                    "operator '{}' has no uid; its state is stored under the generated uid '{}', which changes when the job graph changes. Set .uid(\"...\") on stateful operators to keep savepoints compatible.",
                    o.name,
                    o.uid
                );
            }
        }
        let checkpoint = CheckpointConfig::from_config(&conf)?;
        let restart = RestartStrategy::from_config(&conf, checkpoint.interval.is_some())?;
        let checkpoint_dir = match conf.get_string("execution.checkpointing.dir")? {
            Some(d) => Some(crate::storage::local_path(&d)?),
            None if checkpoint.interval.is_some() => {
                Some(crate::checkpoint::layout::default_checkpoint_dir())
            }
            None => None,
        };
        // `-s file:/…` is the form a savepoint's path is printed in: one parser for both.
        let restore_path = match (
            &inner.restore,
            conf.get_string("execution.state-recovery.path")?,
        ) {
            (Some(p), _) => Some(crate::storage::resolve(p)?),
            (None, Some(p)) => Some(crate::storage::local_path(&p)?),
            (None, None) => None,
        };
        let restore = match restore_path {
            Some(p) => Some(Arc::new(load_snapshot(&p)?)),
            None => None,
        };
        let allow_non_restored = inner.allow_non_restored
            || conf
                .get_bool("execution.state-recovery.ignore-unclaimed-state")?
                .unwrap_or(false);
        let final_checkpoint = checkpoint.interval.is_some()
            && operators
                .iter()
                .any(|o| o.state == Some(OperatorKind::Sink));
        let plan = Plan {
            job_name: job_name.to_string(),
            parallelism,
            max_parallelism,
            final_checkpoint,
            operators,
            terminals: inner.terminals.clone(),
        };
        if let Some(snap) = &restore {
            crate::jobmanager::validate_restore(&plan, snap, allow_non_restored)?;
        }
        let savepoint_dir = match conf.get_string("execution.checkpointing.savepoint-dir")? {
            Some(d) => Some(crate::storage::local_path(&d)?),
            None => None,
        };
        let heartbeat = crate::runtime::process::Heartbeat {
            interval: conf
                .get_duration("heartbeat.interval")?
                .unwrap_or(Duration::from_secs(1)),
            timeout: conf
                .get_duration("heartbeat.timeout")?
                .unwrap_or(Duration::from_secs(10)),
        };
        // As Flink's HeartbeatServices: a timeout shorter than the interval would fail every
        // attempt between two heartbeats.
        if heartbeat.timeout < heartbeat.interval {
            crate::bail!(
                "heartbeat.timeout ({:?}) must not be smaller than heartbeat.interval ({:?}): the heartbeat timeout should be larger or equal than the heartbeat interval",
                heartbeat.timeout,
                heartbeat.interval
            );
        }
        let worker_processes = inner.worker_processes.then_some(heartbeat);
        let exception_history_size =
            conf.get_u32("web.exception-history-size")?
                .unwrap_or(crate::jobmanager::info::EXCEPTION_HISTORY as u32) as usize;
        Ok(JobSpec {
            plan: Arc::new(plan),
            checkpoint,
            restart,
            checkpoint_dir,
            restore,
            savepoint_dir,
            worker_processes,
            exception_history_size,
        })
    }
}

/// Checkpoint settings of a [`StreamEnv`], like Flink's `CheckpointConfig`. Settings made
/// here override `-D` and configuration files.
pub struct CheckpointConfigHandle {
    env: StreamEnv,
}

impl CheckpointConfigHandle {
    /// Exactly-once (default) or at-least-once.
    pub fn set_checkpointing_mode(&self, mode: CheckpointingMode) -> &Self {
        self.env
            .set_code("execution.checkpointing.mode", mode.as_str());
        self
    }
    /// Checkpoints not complete within `timeout` are aborted (default 10 min).
    pub fn set_checkpoint_timeout(&self, timeout: Duration) -> &Self {
        self.env.set_code(
            "execution.checkpointing.timeout",
            &format!("{} ms", timeout.as_millis()),
        );
        self
    }
    /// Minimum pause between the end of a checkpoint and the next trigger.
    pub fn set_min_pause_between_checkpoints(&self, pause: Duration) -> &Self {
        self.env.set_code(
            "execution.checkpointing.min-pause",
            &format!("{} ms", pause.as_millis()),
        );
        self
    }
    /// How many checkpoints may be in progress at once (default 1).
    pub fn set_max_concurrent_checkpoints(&self, n: u32) -> &Self {
        self.env.set_code(
            "execution.checkpointing.max-concurrent-checkpoints",
            &n.to_string(),
        );
        self
    }
    /// Consecutive checkpoint failures tolerated before the job fails (default 0).
    pub fn set_tolerable_checkpoint_failure_number(&self, n: u32) -> &Self {
        self.env.set_code(
            "execution.checkpointing.tolerable-failed-checkpoints",
            &n.to_string(),
        );
        self
    }
    /// What happens to checkpoints when the job ends.
    pub fn set_externalized_checkpoint_retention(
        &self,
        r: ExternalizedCheckpointRetention,
    ) -> &Self {
        self.env.set_code(
            "execution.checkpointing.externalized-checkpoint-retention",
            r.as_str(),
        );
        self
    }
    /// How many completed checkpoints are kept (default 1).
    pub fn set_num_retained(&self, n: u32) -> &Self {
        self.env
            .set_code("execution.checkpointing.num-retained", &n.to_string());
        self
    }
    /// Where checkpoints are written.
    pub fn set_checkpoint_storage(&self, dir: &str) -> &Self {
        self.env.set_checkpoint_storage(dir);
        self
    }
}

/// Turns a job binary's result into its exit code by [`crate::exit`]'s contract, printing
/// an error on one line: `Ok` exits with the code of the job that ended last in this
/// process (0 FINISHED, 1 FAILED, 2 CANCELED; 0 when none ran); an error (a FAILED job, bad
/// options) exits 1.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     floe::exit_on_error(Ok::<(), floe::Error>(()))
/// }
/// ```
pub fn exit_on_error<T>(r: Result<T>) -> std::process::ExitCode {
    match r {
        Ok(_) => std::process::ExitCode::from(crate::exit::last_job_code()),
        Err(e) => {
            crate::exit::report(crate::exit::Event::Error);
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::from(crate::exit::FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_is_asked_for_by_help_flags_not_by_option_values() {
        let h = |a: &[&str]| wants_help(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(h(&["--help"]));
        assert!(h(&["-h"]));
        assert!(h(&["--port", "1", "--help"]));
        assert!(h(&["-h", "--port", "1"]));
        // A job's own `-h HOST`, and option values that look like flags.
        assert!(!h(&["-h", "example.org", "--port", "1"]));
        assert!(!h(&["-D", "--help"]));
        assert!(!h(&["-s", "-h"]));
        assert!(!h(&[]));
    }

    #[test]
    fn floe_options_are_taken_out_and_the_rest_left_to_the_job() {
        let env = StreamEnv::from_arg_list([
            "--host",
            "h",
            "-p",
            "3",
            "-Dexecution.checkpointing.interval=2 s",
            "-D",
            "pipeline.max-parallelism=64",
            "-s",
            "/x/chk-7",
            "-n",
            "--port",
            "9999",
        ])
        .unwrap();
        assert_eq!(env.parallelism(), 3);
        let c = env.configuration();
        assert_eq!(
            c.get_duration("execution.checkpointing.interval").unwrap(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(c.get_u32("pipeline.max-parallelism").unwrap(), Some(64));
        let p = env.params();
        assert_eq!((p.get("host"), p.get("port")), (Some("h"), Some("9999")));
        let inner = env.inner.borrow();
        assert_eq!(
            inner.restore.as_deref(),
            Some(std::path::Path::new("/x/chk-7"))
        );
        assert!(inner.allow_non_restored);
    }

    #[test]
    fn code_settings_override_dynamic_properties() {
        let env = StreamEnv::from_arg_list(["-D", "execution.checkpointing.interval=2s"]).unwrap();
        env.enable_checkpointing(Duration::from_millis(500));
        let c = env.configuration();
        assert_eq!(
            c.get_duration("execution.checkpointing.interval").unwrap(),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn bad_options_are_one_line_errors() {
        for (args, msg) in [
            (vec!["-p"], "option -p needs a value"),
            (vec!["-p", "0"], "invalid parallelism '0'"),
            (
                vec!["-D", "nonsense"],
                "malformed dynamic property 'nonsense'",
            ),
            (
                vec!["-D", "parallelism.default=x"],
                "invalid value 'x' for configuration key 'parallelism.default'",
            ),
        ] {
            let e = StreamEnv::from_arg_list(args.clone())
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(msg) && !e.contains('\n'), "{args:?}: {e}");
        }
    }

    #[test]
    fn graph_errors_surface_at_execute() {
        let env = StreamEnv::new();
        env.from_collection(vec![("a".to_string(), "b".to_string())])
            .key_by(|t| t.0.clone())
            .sum(1)
            .discard();
        let e = env.execute("bad").unwrap_err().to_string();
        assert!(e.contains("sum(1)") && e.contains("not numeric"), "{e}");
        let env = StreamEnv::new();
        env.from_collection(vec![1u8]);
        assert!(env
            .execute("no sink")
            .unwrap_err()
            .to_string()
            .contains("no sinks defined"));
        let env = StreamEnv::new();
        env.set_parallelism(200);
        env.from_collection(vec![1u8]).discard();
        assert!(env
            .execute("p")
            .unwrap_err()
            .to_string()
            .contains("greater than the max parallelism 128"));
    }
}
