//! `StreamEnv`: configuration, sources, and `execute`.

use super::data::Data;
use super::params::JobParams;
use super::stream::{DataStream, SourceNode};
use super::time::{TimestampAssigner, WatermarkGenerator, WatermarkStrategy};
use crate::checkpoint::config::{CheckpointingMode, ExternalizedCheckpointRetention};
use crate::checkpoint::metadata::OperatorKind;
use crate::config::{keys, Configuration, Key, OptionValue};
use crate::connectors::collection::CollectionSource;
use crate::connectors::file::TextFileSource;
use crate::connectors::generator::WordLineGenerator;
use crate::connectors::socket::SocketTextSource;
use crate::connectors::Source;
pub use crate::job::{JobExecutionResult, JobStatus};
use crate::jobmanager::restart::RestartStrategy;
use crate::jobmanager::{JobClient, JobSpec};
pub use crate::launch::exit_on_error;
use crate::runtime::event::Ev;
use crate::runtime::nodes::TimedView;
use crate::runtime::plan::{OperatorDecl, Terminal};
use crate::runtime::watermarks::TimedSource;
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
        if super::args::wants_help(&args[1.min(args.len())..]) {
            crate::launch::exit_with_help(&super::args::help_text(
                args.first().map(String::as_str),
                usage,
            ));
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

    /// Runs attempts in worker processes started from this binary (what
    /// [`from_args`](Self::from_args) does), e.g. for a benchmark that measures the cost of
    /// crossing processes with `minicluster.number-of-taskmanagers`.
    pub fn run_in_worker_processes(&self) {
        self.inner.borrow_mut().worker_processes = true;
    }

    /// Like [`from_args`](Self::from_args) with an explicit list (without the program name).
    pub fn from_arg_list<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Result<Self> {
        let env = StreamEnv::new();
        // Which configuration file was read is logged; a worker process reads the same file
        // again and says nothing.
        if !crate::runtime::process::is_worker() {
            crate::logging::init();
        }
        // The configuration file (FLOE_CONF_DIR/floe.yaml) first; -D overrides it. A worker
        // process takes its job manager's effective configuration instead.
        let mut conf = match crate::runtime::process::worker_config()? {
            Some(c) => c,
            None => crate::config::file::load_from_env()?,
        };
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        let parsed = super::args::parse(&args)?;
        crate::config::file::warn_ignored(&parsed.dynamic, "-D");
        conf.merge(&parsed.dynamic);
        {
            let mut inner = env.inner.borrow_mut();
            inner.conf = conf;
            inner.restore = parsed.restore;
            inner.allow_non_restored = parsed.allow_non_restored;
            inner.params = parsed.job;
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

    /// Sets `key` from job code; an invalid value is reported at `execute`.
    fn set_code<T: OptionValue>(&self, key: Key<T>, value: &T) {
        let r = self.inner.borrow_mut().code.put(key, value);
        if let Err(e) = r {
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
        self.set_code(keys::PARALLELISM_DEFAULT, &parallelism);
    }

    /// The effective parallelism.
    pub fn parallelism(&self) -> u32 {
        self.configuration()
            .get(keys::PARALLELISM_DEFAULT)
            .ok()
            .flatten()
            .unwrap_or(1)
    }

    /// Number of key groups (`pipeline.max-parallelism`, default 128). Keyed state can be
    /// rescaled up to this parallelism; changing it makes snapshots incompatible.
    pub fn set_max_parallelism(&self, max: u32) {
        self.set_code(keys::MAX_PARALLELISM, &max);
    }

    /// Takes a checkpoint every `interval` (at least 10 ms), exactly-once by default.
    pub fn enable_checkpointing(&self, interval: Duration) {
        self.set_code(keys::CHECKPOINTING_INTERVAL, &interval);
    }

    /// Checkpoint settings.
    pub fn checkpoint_config(&self) -> CheckpointConfigHandle {
        CheckpointConfigHandle { env: self.clone() }
    }

    /// Where checkpoints are written: a directory path or `file://` URL.
    pub fn set_checkpoint_storage(&self, dir: &str) {
        self.set_code(keys::CHECKPOINTS_DIRECTORY, &dir.to_string());
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
            outputs: None,
        }
    }

    /// A source with a watermark strategy applied per split (Flink's
    /// `fromSource(source, watermarkStrategy, sourceName)`): each file of a file source
    /// (each partition, for sources that have them) gets its own generator, the subtask's
    /// watermark is the minimum over its active splits, and a split that ended no longer
    /// holds it back.
    ///
    /// ```no_run
    /// use floe::prelude::*;
    /// use floe::connectors::file::TextFileSource;
    /// use std::time::Duration;
    /// let env = StreamEnv::new();
    /// let lines = env.from_source(
    ///     TextFileSource::new("/data/in"),
    ///     WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(2))
    ///         .with_timestamp_assigner(|l: &String, _| l.split(' ').next().and_then(|t| t.parse().ok()).unwrap_or(0)),
    ///     "events",
    /// );
    /// ```
    pub fn from_source<T, S, G, A>(
        &self,
        source: S,
        strategy: WatermarkStrategy<G, A>,
        name: &str,
    ) -> DataStream<T>
    where
        T: Data,
        S: Source<T>,
        G: WatermarkGenerator,
        A: TimestampAssigner<T>,
    {
        let chain = self.new_chain();
        let op = self.add_operator(
            &format!("Source: {name}"),
            Some(OperatorKind::Source),
            Some(chain),
        );
        self.inner.borrow_mut().operators[op].parallelism = source.max_parallelism().unwrap_or(0);
        let source: Arc<dyn Source<Ev<T>>> = Arc::new(TimedSource {
            inner: Arc::new(source),
            strategy,
            interval: self.auto_watermark_interval(),
        });
        DataStream {
            env: self.clone(),
            node: Arc::new(TimedView(Arc::new(SourceNode { op, source }))),
            op,
            chain,
            source: None,
            outputs: None,
        }
    }

    /// `pipeline.auto-watermark-interval` (default 200 ms; 0 turns periodic watermarks off).
    pub(crate) fn auto_watermark_interval(&self) -> Duration {
        match self.configuration().get(keys::AUTO_WATERMARK_INTERVAL) {
            Ok(v) => v.unwrap_or(Duration::from_millis(200)),
            Err(e) => {
                self.record_error(e.to_string());
                Duration::from_millis(200)
            }
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

    /// [`StreamEnv::generate_word_lines`] with each line's 0-based index: `(i, line i)`, so
    /// word `k` of line `i` is word number `10 i + k` of the input.
    pub fn generate_indexed_word_lines(&self, words: u64) -> DataStream<(u64, String)> {
        self.add_source(crate::connectors::generator::IndexedWordLineGenerator(
            WordLineGenerator::new(words),
        ))
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
        let allow_non_restored = self.inner.borrow().allow_non_restored;
        crate::launch::execute(&self.configuration(), allow_non_restored, |with_restore| {
            self.job_spec(job_name, with_restore)
        })
    }

    /// Validates the graph and configuration and freezes them into a job spec; without
    /// `with_restore`, the snapshot `-s` named is left out.
    pub(crate) fn job_spec(&self, job_name: &str, with_restore: bool) -> Result<JobSpec> {
        let conf = self.configuration();
        let inner = self.inner.borrow();
        let declared = crate::compile::Declared {
            job_name,
            operators: &inner.operators,
            terminals: &inner.terminals,
            errors: &inner.errors,
            restore: inner.restore.as_deref().filter(|_| with_restore),
            allow_non_restored: inner.allow_non_restored,
            worker_processes: inner.worker_processes,
        };
        crate::compile::job_spec(declared, &conf)
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
        self.env.set_code(keys::CHECKPOINTING_MODE, &mode);
        self
    }
    /// Checkpoints not complete within `timeout` are aborted (default 10 min).
    pub fn set_checkpoint_timeout(&self, timeout: Duration) -> &Self {
        self.env.set_code(keys::CHECKPOINTING_TIMEOUT, &timeout);
        self
    }
    /// Minimum pause between the end of a checkpoint and the next trigger.
    pub fn set_min_pause_between_checkpoints(&self, pause: Duration) -> &Self {
        self.env.set_code(keys::CHECKPOINTING_MIN_PAUSE, &pause);
        self
    }
    /// How many checkpoints may be in progress at once (default 1).
    pub fn set_max_concurrent_checkpoints(&self, n: u32) -> &Self {
        self.env.set_code(keys::MAX_CONCURRENT_CHECKPOINTS, &n);
        self
    }
    /// Consecutive checkpoint failures tolerated before the job fails (default 0).
    pub fn set_tolerable_checkpoint_failure_number(&self, n: u32) -> &Self {
        self.env.set_code(keys::TOLERABLE_FAILED_CHECKPOINTS, &n);
        self
    }
    /// What happens to checkpoints when the job ends.
    pub fn set_externalized_checkpoint_retention(
        &self,
        r: ExternalizedCheckpointRetention,
    ) -> &Self {
        self.env
            .set_code(keys::EXTERNALIZED_CHECKPOINT_RETENTION, &r);
        self
    }
    /// How many completed checkpoints are kept (default 1).
    pub fn set_num_retained(&self, n: u32) -> &Self {
        self.env.set_code(keys::NUM_RETAINED_CHECKPOINTS, &n);
        self
    }
    /// Where checkpoints are written.
    pub fn set_checkpoint_storage(&self, dir: &str) -> &Self {
        self.env.set_checkpoint_storage(dir);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
