//! Exactly-once under failures: a replayable file source, task failures injected at random
//! records (panics and `Err` returns) for several seeds, and the final keyed counts must
//! equal the exact counts of the input — nothing lost, nothing counted twice.

use floe::prelude::*;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn write_input(dir: &std::path::Path, seed: u64) -> HashMap<String, i64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut exact = HashMap::new();
    for f in 0..3 {
        let mut text = String::new();
        for _ in 0..20_000 {
            let n = rng.random_range(1..=6);
            let words: Vec<String> = (0..n)
                .map(|_| format!("w{}", rng.random_range(0..700)))
                .collect();
            for w in &words {
                *exact.entry(w.clone()).or_insert(0) += 1;
            }
            text.push_str(&words.join(" "));
            text.push('\n');
        }
        std::fs::write(dir.join(format!("part-{f}.txt")), text).unwrap();
    }
    exact
}

fn run(seed: u64, parallelism: u32) {
    let input = tempfile::tempdir().unwrap();
    let ck = tempfile::tempdir().unwrap();
    let exact = write_input(input.path(), seed);
    let total: i64 = exact.values().sum();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut points: Vec<u64> = (0..3).map(|_| rng.random_range(1..total as u64)).collect();
    points.sort();
    let points = Arc::new(points);
    let seen = Arc::new(AtomicU64::new(0));
    let use_panic = seed.is_multiple_of(2);

    let env = StreamEnv::new();
    env.set_parallelism(parallelism);
    env.enable_checkpointing(Duration::from_millis(10));
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    env.set_restart_strategy(RestartStrategy::fixed_delay(10, Duration::ZERO));
    let (p, s) = (Arc::clone(&points), Arc::clone(&seen));
    let out = env
        .read_text_file(input.path())
        .uid("files")
        .flat_map(|line: String, out: &mut Collector<Str>| {
            line.split(' ').for_each(|w| out.collect(Str::from(w)))
        })
        .try_map(move |w: Str| {
            // The counter survives restarts, so each injection point fires exactly once.
            let n = s.fetch_add(1, Ordering::SeqCst) + 1;
            if p.binary_search(&n).is_ok() {
                if use_panic {
                    panic!("injected panic at record {n}");
                }
                bail!("injected failure at record {n}");
            }
            Ok(w)
        })
        .map(|w| (w, 1i64))
        .key_by(|t| t.0.clone())
        .sum(1)
        .uid("counts")
        .collect();
    let r = env.execute(&format!("exactly-once seed {seed}")).unwrap();
    // Subtasks share the injection counter, so two points can fire within one failing
    // attempt (while it is torn down); every attempt that fails restarts once.
    assert!(
        (1..=3).contains(&r.restarts),
        "seed {seed}: {} restarts",
        r.restarts
    );
    // Every update is emitted; replays after a restore re-emit the same values, so the last
    // value per key is the final state of that key.
    let mut last: HashMap<String, i64> = HashMap::new();
    for (w, n) in out.take() {
        last.insert(w.to_string(), n);
    }
    let lost: Vec<_> = exact
        .iter()
        .filter(|(k, v)| last.get(*k) < Some(v))
        .collect();
    let dup: Vec<_> = exact
        .iter()
        .filter(|(k, v)| last.get(*k) > Some(v))
        .collect();
    assert!(
        lost.is_empty() && dup.is_empty(),
        "seed {seed}: lost {lost:?} duplicated {dup:?}"
    );
    assert_eq!(last.len(), exact.len());
    assert!(r.checkpoints > 0, "seed {seed}: checkpoints were taken");
    // FINISHED deletes the job's checkpoints with every retention mode.
    let left: Vec<_> = std::fs::read_dir(ck.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "seed {seed}: FINISHED leaves no checkpoints: {left:?}"
    );
}

#[test]
fn exact_counts_with_injected_failures_parallelism_1() {
    for seed in [1, 2, 3] {
        run(seed, 1);
    }
}

#[test]
fn exact_counts_with_injected_failures_parallelism_3() {
    for seed in [11, 12, 13] {
        run(seed, 3);
    }
}
