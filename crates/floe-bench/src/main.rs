//! `floe-bench`: benchmarks of Floe that can be compared with the Apache Flink peer
//! (`shared/peer/flink`).
//!
//! `floe-bench wordcount --words N --parallelism P` runs Flink's `ThroughputWordCount`
//! pipeline, written with Floe's public API exactly as a user would write it, and prints
//! its measurements; the last line is `key=value` pairs (see `docs/benchmarks.md`).
//! `floe-bench window --words N --parallelism P` runs the windowed benchmark
//! (`bench/flink/src/peer/WindowWordCount.java`): the same words with a synthetic event time,
//! counted per word in 1 s tumbling event-time windows, and checks the results.

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use floe::prelude::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod window;

#[derive(Parser)]
#[command(
    name = "floe-bench",
    about = "Benchmarks of Floe, comparable with the Apache Flink peer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Flink's ThroughputWordCount: generated lines -> flatMap(split) -> map(fail on "error")
    /// -> map((w,1)) -> keyBy(w) -> sum(1) -> counting discard sink, checkpointed.
    Wordcount(WordcountArgs),
    /// Flink's WindowWordCount (bench/flink): the same words with a synthetic event time ->
    /// assignTimestampsAndWatermarks(bounded out-of-orderness 200 ms) -> keyBy(word) ->
    /// 1 s tumbling event-time windows counting per word -> counting sink, checkpointed.
    Window(WindowArgs),
    /// Start-up time: `floe run file_word_count` on a one-line file, to the first record
    /// printed and to the process exit (job manager + worker process, checkpointing on).
    Startup(StartupArgs),
}

#[derive(clap::Args)]
struct StartupArgs {
    /// Number of runs (the median is reported).
    #[arg(long, default_value_t = 10)]
    runs: u32,
    /// Submit to this session cluster (`floe run -m ADDR`, attached) instead of running a
    /// per-job job manager: the job's worker processes then start in the cluster's task
    /// slots, possibly on other hosts, and the first record is read from their output.
    #[arg(long, value_name = "ADDR")]
    cluster: Option<String>,
    /// Parallelism of the job (`floe run -p`).
    #[arg(long, default_value_t = 1)]
    parallelism: u32,
}

#[derive(clap::Args)]
struct WordcountArgs {
    /// Number of input words (underscores allowed: 100_000_000).
    #[arg(long, value_parser = parse_count)]
    words: u64,
    /// Parallelism of every operator.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    parallelism: u32,
    /// Checkpoint directory (kept afterwards). Default: a fresh directory under the
    /// system temp dir, removed when the run ends.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Checkpoint interval in milliseconds (exactly-once).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    interval_ms: u64,
    /// Where the `(word,count)` updates go: `discard` (counted and dropped, as in Flink's
    /// ThroughputWordCount) or `file` (the exactly-once FileSink, one line per update).
    #[arg(long, value_enum, default_value_t = SinkKind::Discard)]
    sink: SinkKind,
    /// Output directory of `--sink file` (kept afterwards). Default: a fresh directory under
    /// the system temp dir, removed when the run ends.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Run the job's subtasks in this many worker processes on this host, which form one
    /// timely cluster over loopback TCP (`minicluster.number-of-taskmanagers`); 0 (the
    /// default) runs them on threads of this process. Needs `--sink file` (the discard
    /// sink's count lives in the process that runs it). CPU and peak RSS then include the
    /// worker processes.
    #[arg(long, default_value_t = 0)]
    processes: u32,
}

#[derive(clap::Args)]
struct WindowArgs {
    /// Number of input words (underscores allowed: 50_000_000).
    #[arg(long, value_parser = parse_count)]
    words: u64,
    /// Parallelism of every operator.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    parallelism: u32,
    /// Checkpoint directory (kept afterwards). Default: a fresh directory under the
    /// system temp dir, removed when the run ends.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Checkpoint interval in milliseconds (exactly-once).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    interval_ms: u64,
    /// How the windows are counted: `window` (the window API, as Flink's job:
    /// `window(TumblingEventTimeWindows::of(1 s)).reduce_with(sum, window end)`) or
    /// `process`, a KeyedProcessFunction keeping one count per (word, window) in map state
    /// and an event-time timer per window end (what a window operator does underneath,
    /// written by hand).
    #[arg(long, value_enum, default_value_t = WindowImpl::Window)]
    operator: WindowImpl,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WindowImpl {
    Window,
    Process,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SinkKind {
    Discard,
    File,
}

/// A directory given by the user (kept) or a fresh one under the temp dir (removed on drop).
/// The fresh one's name is passed on in the environment, so the worker processes (this
/// binary started again by the job manager, `--processes`) use the same directory; only the
/// job manager's process removes it.
fn work_dir(given: &Option<PathBuf>, what: &str) -> anyhow::Result<(PathBuf, Option<TempDir>)> {
    let inherited = format!("FLOE_BENCH_{}_DIR", what.to_ascii_uppercase());
    let (dir, cleanup) = match given {
        Some(d) => (d.clone(), None),
        None if std::env::var_os(&inherited).is_some() => (
            PathBuf::from(std::env::var_os(&inherited).unwrap_or_default()),
            None,
        ),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .subsec_nanos();
            let d = std::env::temp_dir().join(format!(
                "floe-bench-{what}-{}-{nanos:08x}",
                std::process::id()
            ));
            // Still one thread: nothing reads the environment concurrently.
            std::env::set_var(&inherited, &d);
            (d.clone(), Some(TempDir(d)))
        }
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {what} directory {}", dir.display()))?;
    Ok((dir, cleanup))
}

/// Lines and bytes in the committed part files of `dir` (hidden in-progress files are not
/// output).
fn committed_output(dir: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let (mut lines, mut bytes) = (0u64, 0u64);
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if !e.file_name().to_string_lossy().starts_with("part-") {
            continue;
        }
        let data = std::fs::read(e.path())?;
        bytes += data.len() as u64;
        lines += data.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Ok((lines, bytes))
}

fn parse_count(s: &str) -> Result<u64, String> {
    s.replace('_', "")
        .parse::<u64>()
        .map_err(|e| format!("'{s}' is not a word count: {e}"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Wordcount(a) => wordcount(a),
        Command::Window(a) => window::run(a),
        Command::Startup(a) => startup(a),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floe-bench: error: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::from(1)
        }
    }
}

/// Removes a directory when dropped (also on error paths).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wordcount(a: WordcountArgs) -> anyhow::Result<()> {
    let load1_before = load1();
    let (ckpt_dir, _cleanup) = work_dir(&a.checkpoint_dir, "checkpoint")?;
    let (out_dir, _cleanup_out) = match a.sink {
        SinkKind::File => {
            let (d, c) = work_dir(&a.output, "output")?;
            (Some(d), c)
        }
        SinkKind::Discard => (None, None),
    };
    let ckpt_str = ckpt_dir
        .to_str()
        .context("checkpoint directory is not valid UTF-8")?;

    if a.processes > 0 && a.sink != SinkKind::File {
        bail!("--processes needs --sink file: the discard sink counts in the process that runs it");
    }
    // The job, as a user writes it (same pipeline as peer.ThroughputWordCount).
    let env = if a.processes > 0 {
        let env = StreamEnv::from_arg_list([
            "-D".to_string(),
            format!("minicluster.number-of-taskmanagers={}", a.processes),
        ])?;
        env.run_in_worker_processes();
        env
    } else {
        StreamEnv::new()
    };
    env.set_parallelism(a.parallelism);
    env.enable_checkpointing(Duration::from_millis(a.interval_ms));
    env.set_checkpoint_storage(ckpt_str);
    let counts = env
        .generate_word_lines(a.words)
        .flat_map(|line: String, out: &mut Collector<Str>| {
            for w in line.split(' ') {
                if !w.is_empty() {
                    out.collect(Str::from(w));
                }
            }
        })
        .try_map(|w: Str| {
            if w == "error" {
                floe::bail!("poison word 'error'");
            }
            Ok(w)
        })
        .map(|w: Str| (w, 1i64))
        .key_by(|t: &(Str, i64)| t.0.clone())
        .sum(1);
    let sink = match &out_dir {
        None => Some(counts.discard()),
        Some(d) => {
            counts
                .sink_exactly_once(floe::connectors::file_sink::FileSink::for_row_format(d))
                .uid("counts-out");
            None
        }
    };

    let sink_name = match a.sink {
        SinkKind::Discard => "discard",
        SinkKind::File => "file",
    };
    println!(
        "floe wordcount: words={} parallelism={} checkpoint_interval_ms={} checkpoint_dir={} sink={sink_name}",
        a.words,
        a.parallelism,
        a.interval_ms,
        ckpt_dir.display()
    );
    let t0 = Instant::now();
    let result = env.execute("ThroughputWordCount").context("job failed")?;
    let elapsed = t0.elapsed().as_secs_f64();

    let usage = rusage();
    let cpu_s = usage.cpu_s;
    let (sink_records, out_bytes) = match (&sink, &out_dir) {
        (Some(h), _) => (h.get(), 0),
        (None, Some(d)) => committed_output(d)?,
        (None, None) => unreachable!("a sink"),
    };
    let (median, max) = checkpoint_summary(&result);
    let words_per_s = a.words as f64 / elapsed;
    let words_per_cpu_s = a.words as f64 / cpu_s.max(1e-9);

    println!(
        "job {} {} in {:.3} s (net runtime {:.3} s), {} restarts",
        result.job_id,
        result.status,
        elapsed,
        result.net_runtime.as_secs_f64(),
        result.restarts
    );
    println!("throughput: {words_per_s:.0} words/s wall, {words_per_cpu_s:.0} words per CPU-second ({cpu_s:.2} CPU-s)");
    println!(
        "checkpoints: {} completed, duration median {median} ms, max {max} ms; peak RSS {:.1} MiB",
        result.checkpoints, usage.peak_rss_mb
    );
    println!(
        "engine=floe words={} parallelism={} elapsed_s={elapsed:.3} words_per_s={words_per_s:.0} \
         net_runtime_s={:.3} cpu_s={cpu_s:.2} words_per_cpu_s={words_per_cpu_s:.0} peak_rss_mb={:.1} \
         checkpoints={} ckpt_ms_median={median} ckpt_ms_max={max} restarts={} sink={sink_name} sink_records={sink_records} \
         output_mb={:.1} load1_before={load1_before} processes={}",
        a.words,
        a.parallelism,
        result.net_runtime.as_secs_f64(),
        usage.peak_rss_mb,
        result.checkpoints,
        result.restarts,
        out_bytes as f64 / (1 << 20) as f64,
        a.processes,
    );
    if sink_records != a.words {
        bail!("sink record count {sink_records} != input words {}: the job lost or duplicated records", a.words);
    }
    Ok(())
}

/// Median and maximum checkpoint duration in ms, `-` when no checkpoint completed.
fn checkpoint_summary(result: &JobExecutionResult) -> (String, String) {
    let mut durs: Vec<f64> = result
        .checkpoint_durations
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    if durs.is_empty() {
        return ("-".to_string(), "-".to_string());
    }
    let max = durs.iter().copied().fold(f64::MIN, f64::max);
    (format!("{:.0}", median(&mut durs)), format!("{max:.0}"))
}

struct Usage {
    cpu_s: f64,
    peak_rss_mb: f64,
}

/// CPU time (user + system) of this process and its reaped worker processes so far, and the
/// peak RSS of the largest of them.
fn rusage() -> Usage {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    // SAFETY: as above; the worker processes this job manager started and reaped.
    let mut children: libc::rusage = unsafe { std::mem::zeroed() };
    let rc_children = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut children) };
    if rc != 0 || rc_children != 0 {
        return Usage {
            cpu_s: f64::NAN,
            peak_rss_mb: f64::NAN,
        };
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage {
        cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime) + tv(children.ru_utime) + tv(children.ru_stime),
        // ru_maxrss is in KiB on Linux: this process, or its largest worker process.
        peak_rss_mb: ru.ru_maxrss.max(children.ru_maxrss) as f64 / 1024.0,
    }
}

/// The 1-minute load average before the run, as bench.sh records it.
fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "-".into())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn startup(a: StartupArgs) -> anyhow::Result<()> {
    use std::io::BufRead;
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no directory of floe-bench")?;
    let floe = dir.join("floe");
    let job = dir.join("file_word_count");
    if !floe.exists() || !job.exists() {
        bail!(
            "{} and {} are needed: build them with `cargo build --release -p floe-cli -p floe-examples`",
            floe.display(),
            job.display()
        );
    }
    let work = std::env::temp_dir().join(format!("floe-bench-startup-{}", std::process::id()));
    let _cleanup = TempDir(work.clone());
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("input.txt"), "hello floe\n")?;
    let (mut first, mut exit) = (Vec::new(), Vec::new());
    for i in 0..a.runs {
        let t0 = Instant::now();
        let mut cmd = std::process::Command::new(&floe);
        cmd.arg("run");
        if let Some(addr) = &a.cluster {
            cmd.args(["-m", addr]);
        }
        let mut child = cmd
            .args(["-p", &a.parallelism.to_string()])
            .arg(&job)
            .args([
                "--input",
                work.join("input.txt").to_str().context("utf-8 path")?,
            ])
            .args([
                "--checkpoint-dir",
                work.join(format!("ck-{i}"))
                    .to_str()
                    .context("utf-8 path")?,
            ])
            .env("FLOE_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let out = child.stdout.take().context("stdout")?;
        let mut lines = std::io::BufReader::new(out).lines();
        // `floe run` first prints Flink's submission line; the first record comes after it.
        let line = lines
            .find(|l| !matches!(l, Ok(l) if l.starts_with("Job has been submitted")))
            .context("the job printed nothing")??;
        first.push(t0.elapsed().as_secs_f64() * 1e3);
        for _ in lines {}
        let st = child.wait()?;
        exit.push(t0.elapsed().as_secs_f64() * 1e3);
        // At parallelism > 1 a print sink prefixes the subtask, as Flink's: `2> (hello,1)`.
        let record = line
            .split_once("> ")
            .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
            .map_or(line.as_str(), |(_, r)| r);
        if !st.success() || !record.starts_with('(') {
            bail!("run {i}: unexpected result {st} / {line:?}");
        }
    }
    let (f, e) = (median(&mut first), median(&mut exit));
    println!(
        "floe startup: {} runs of `floe run{} -p {} file_word_count` on a one-line file",
        a.runs,
        a.cluster
            .as_ref()
            .map(|c| format!(" -m {c}"))
            .unwrap_or_default(),
        a.parallelism
    );
    println!(
        "engine=floe runs={} first_record_ms_median={f:.1} first_record_ms_min={:.1} exit_ms_median={e:.1}",
        a.runs,
        first.first().copied().unwrap_or(f64::NAN),
    );
    Ok(())
}
