//! Rescaling: a snapshot taken at one parallelism restores at another; keyed state moves by
//! whole key groups and source positions by split, so nothing is skipped or read twice.

use floe::prelude::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

enum Input {
    Files(std::path::PathBuf),
    Generator(u64),
}

fn count_job(env: &StreamEnv, input: &Input) -> CollectHandle<(Str, u64)> {
    env.enable_checkpointing(Duration::from_millis(20));
    let lines = match input {
        Input::Files(dir) => env.read_text_file(dir),
        Input::Generator(n) => env.generate_word_lines(*n),
    };
    lines
        .uid("lines")
        .map(|l: String| {
            std::thread::sleep(Duration::from_micros(150));
            l
        })
        .flat_map(|l: String, out: &mut Collector<Str>| {
            l.split(' ').for_each(|w| out.collect(Str::from(w)))
        })
        .map(|w| (w, 1u64))
        .key_by(|t| t.0.clone())
        .sum(1)
        .uid("counts")
        .collect()
}

fn exact(input: &Input) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    let mut add = |text: &str| {
        for w in text.split(' ') {
            *m.entry(w.to_string()).or_insert(0) += 1;
        }
    };
    match input {
        Input::Files(dir) => {
            for e in std::fs::read_dir(dir).unwrap() {
                for l in std::fs::read_to_string(e.unwrap().path()).unwrap().lines() {
                    add(l);
                }
            }
        }
        Input::Generator(n) => {
            for i in 0..n.div_ceil(10) {
                let mut l = String::new();
                floe::connectors::generator::write_line(i, *n, &mut l);
                add(&l);
            }
        }
    }
    m
}

/// Runs at `p1` until `stop_after` updates, stops with a savepoint, resumes at `p2`.
fn stop_and_rescale(input: &Input, p1: u32, p2: u32, stop_after: usize, ck: &Path, sp: &Path) {
    let env = StreamEnv::new();
    env.set_parallelism(p1);
    env.set_checkpoint_storage(ck.to_str().unwrap());
    let out1 = count_job(&env, input);
    let job = env.execute_async("before").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out1.snapshot().len() < stop_after && job.status() == JobStatus::Running {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    let stopped = job.stop_with_savepoint(Some(sp));
    let r = job.wait().unwrap();
    assert_eq!(r.status, JobStatus::Finished);
    let first = out1.take();
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut updates = first.len() as u64;
    for (w, n) in first {
        last.insert(w.to_string(), n);
    }
    if let Ok(path) = stopped {
        let env = StreamEnv::from_arg_list(["-s", path.to_str().unwrap()]).unwrap();
        env.set_parallelism(p2);
        env.set_checkpoint_storage(ck.to_str().unwrap());
        let out2 = count_job(&env, input);
        env.execute("after").unwrap();
        let second = out2.take();
        updates += second.len() as u64;
        for (w, n) in second {
            last.insert(w.to_string(), n);
        }
    }
    // Every word updated its count exactly once across both runs, and the final state of
    // every key equals an uninterrupted run's.
    let exact = exact(input);
    assert_eq!(
        updates,
        exact.values().sum::<u64>(),
        "p1={p1} p2={p2} stop_after={stop_after}"
    );
    assert_eq!(last, exact, "p1={p1} p2={p2} stop_after={stop_after}");
}

fn write_files(dir: &Path, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for f in 0..rng.random_range(1..6) {
        let lines: Vec<String> = (0..rng.random_range(50..400))
            .map(|_| {
                (0..rng.random_range(1..5))
                    .map(|_| format!("k{}", rng.random_range(0..300)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        std::fs::write(dir.join(format!("f{f}.txt")), lines.join("\n") + "\n").unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn file_source_and_keyed_state_rescale_exactly(seed in any::<u64>(), p1 in 1u32..4, p2 in 1u32..4, stop_after in 1usize..600) {
        let dir = tempfile::tempdir().unwrap();
        let ck = tempfile::tempdir().unwrap();
        let sp = tempfile::tempdir().unwrap();
        write_files(dir.path(), seed);
        stop_and_rescale(&Input::Files(dir.path().to_path_buf()), p1, p2, stop_after, ck.path(), sp.path());
    }

    #[test]
    fn generator_splits_and_keyed_state_rescale_exactly(p1 in 1u32..4, p2 in 1u32..4, stop_after in 1usize..3000) {
        let ck = tempfile::tempdir().unwrap();
        let sp = tempfile::tempdir().unwrap();
        stop_and_rescale(&Input::Generator(4000), p1, p2, stop_after, ck.path(), sp.path());
    }
}

#[test]
fn a_different_max_parallelism_is_refused_before_processing() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tempfile::tempdir().unwrap();
    let sp = tempfile::tempdir().unwrap();
    write_files(dir.path(), 7);
    let input = Input::Files(dir.path().to_path_buf());
    let env = StreamEnv::new();
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    let out = count_job(&env, &input);
    let job = env.execute_async("max p 128").unwrap();
    while out.snapshot().is_empty() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let path = job.stop_with_savepoint(Some(sp.path())).unwrap();
    job.wait().unwrap();
    let env = StreamEnv::from_arg_list(["-s", path.to_str().unwrap()]).unwrap();
    env.set_max_parallelism(64);
    let out = count_job(&env, &input);
    let err = env.execute("max p 64").unwrap_err().to_string();
    assert!(
        err.contains("max parallelism 128") && err.contains("64") && err.contains("'counts'"),
        "{err}"
    );
    assert!(out.take().is_empty(), "nothing was processed");
}
