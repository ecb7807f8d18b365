//! `window_word_count` end to end, through the real binary: a file input with out-of-order
//! timestamps (within the bound) and a few records later than the allowed lateness. The
//! window counts and late lines are computed here, independently of the job, and must match
//! exactly: printed, and committed by the exactly-once file sink with `--output`. Late
//! firings within the lateness over a socket, and a line that does not parse failing the
//! job with an error naming it.

mod common;

use common::{Job, LineServer, T};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const WINDOW: i64 = 10_000;
const WORDS: [&str; 5] = ["flink", "floe", "stream", "window", "time"];

/// The expected output: every window's line `(word,start,end,count)` and every late line.
struct Expected {
    windows: Vec<String>,
    late: Vec<String>,
}

/// Writes `records` lines `<ts> <word>` into `dir/events.txt`: timestamps advance 20 ms a
/// line with up to 1 s of disorder (within the 2 s bound), and after line 1500 every 100th
/// line is a record from the first window, which the watermark has long passed by then (the
/// input is paced so that periodic watermarks are emitted while it is read): those are late.
fn write_input(dir: &Path, records: usize, seed: u64) -> Expected {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut text = String::new();
    let mut counts: BTreeMap<(String, i64), u64> = BTreeMap::new();
    let mut late = Vec::new();
    for i in 0..records {
        let word = WORDS[rng.random_range(0..WORDS.len())];
        if i > 1500 && i % 100 == 0 {
            let ts = rng.random_range(0..WINDOW);
            text.push_str(&format!("{ts} {word}\n"));
            late.push(format!("late> {ts} {word}"));
            continue;
        }
        let ts = 20_000 + i as i64 * 20 + rng.random_range(0..1000);
        text.push_str(&format!("{ts} {word}\n"));
        *counts
            .entry((word.to_string(), ts - ts % WINDOW))
            .or_default() += 1;
    }
    std::fs::write(dir.join("events.txt"), text).unwrap();
    let windows = counts
        .into_iter()
        .map(|((w, start), n)| format!("({w},{start},{},{n})", start + WINDOW))
        .collect();
    Expected { windows, late }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn printed_window_counts_and_late_records_are_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let expected = write_input(&input, 2500, 1);
    let mut job = Job::start(
        "window_word_count",
        &["--input", s(&input), "--lines-per-second", "2500"],
    );
    assert_eq!(job.wait_exit(Duration::from_secs(120)).code(), Some(0));
    let out = job.stdout();
    let (late, windows): (Vec<String>, Vec<String>) =
        out.into_iter().partition(|l| l.starts_with("late> "));
    assert_eq!(sorted(windows), sorted(expected.windows));
    assert_eq!(sorted(late), sorted(expected.late));
}

#[test]
fn output_dir_holds_every_window_result_once() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let output = tmp.path().join("out");
    std::fs::create_dir(&input).unwrap();
    let expected = write_input(&input, 2500, 2);
    let mut job = Job::start(
        "window_word_count",
        &[
            "-D",
            "execution.checkpointing.interval=200ms",
            "--input",
            s(&input),
            "--output",
            s(&output),
            "--lines-per-second",
            "2500",
        ],
    );
    assert_eq!(job.wait_exit(Duration::from_secs(120)).code(), Some(0));
    let mut committed = Vec::new();
    for e in std::fs::read_dir(&output).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.'),
            "an uncommitted file is left: {name}"
        );
        committed.extend(
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .map(String::from),
        );
    }
    assert_eq!(sorted(committed), sorted(expected.windows));
    // Only the late records are printed.
    assert_eq!(sorted(job.stdout()), sorted(expected.late));
}

#[test]
fn a_line_that_does_not_parse_fails_the_job_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("events.txt"), "1000 flink\n12x5 floe\n").unwrap();
    let mut job = Job::start(
        "window_word_count",
        &["-D", "restart-strategy.type=none", "--input", s(tmp.path())],
    );
    let code = job.wait_exit(T).code();
    assert!(code.is_some_and(|c| c != 0), "{code:?}");
    let err = job.stderr();
    let line = err
        .iter()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{err:?}"));
    assert!(
        line.contains("invalid record '12x5 floe': timestamp '12x5' is not an integer"),
        "{line}"
    );
}

#[test]
fn late_firings_within_the_lateness_update_the_count_and_later_records_are_late() {
    // Socket input, 10 s windows, 1 s out-of-orderness, 5 s lateness.
    let server = LineServer::start();
    let port = server.port.to_string();
    let mut job = Job::start(
        "window_word_count",
        &[
            "--port",
            &port,
            "--out-of-orderness-ms",
            "1000",
            "--lateness-ms",
            "5000",
        ],
    );
    server.wait_connections(1, T);
    server.send("1000 flink");
    server.send("2000 flink");
    // Watermark 10999: the window [0, 10000) fires.
    server.send("12000 floe");
    job.expect_stdout(&["(flink,0,10000,2)"], T);
    // Within the lateness: the window fires again with the new count.
    server.send("3000 flink");
    job.expect_stdout(&["(flink,0,10000,2)", "(flink,0,10000,3)"], T);
    // Watermark 15999: the window's lateness is over (9999 + 5000 <= 15999).
    server.send("17000 floe");
    std::thread::sleep(Duration::from_millis(1000));
    server.send("4000 flink");
    job.expect_stdout(
        &["(flink,0,10000,2)", "(flink,0,10000,3)", "late> 4000 flink"],
        T,
    );
    assert_eq!(job.terminate().code(), Some(2), "CANCELED exits 2");
}
