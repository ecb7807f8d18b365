//! State schema evolution across a savepoint, as serde users expect: reordered fields, a
//! field renamed with `#[serde(alias)]`, a field added with `#[serde(default)]` and a removed
//! field all restore; a field whose type changed fails before processing, naming the
//! operator, the state and the field.

mod common;

use floe::prelude::*;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

const N: u64 = 2000;

/// A per-key accumulator type of some version.
trait Acc: Data + Default + Sync {
    fn add(&mut self, v: u64);
    fn sum(&self) -> u64;
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct V1 {
    count: u64,
    sum: u64,
}
impl Acc for V1 {
    fn add(&mut self, v: u64) {
        self.count += 1;
        self.sum += v;
    }
    fn sum(&self) -> u64 {
        self.sum
    }
}

/// Reordered, `count` renamed to `n` (alias), `max` added with a default.
#[derive(Clone, Default, Serialize, Deserialize)]
struct V2 {
    sum: u64,
    #[serde(alias = "count")]
    n: u64,
    #[serde(default)]
    max: u64,
}
impl Acc for V2 {
    fn add(&mut self, v: u64) {
        self.n += 1;
        self.sum += v;
        self.max = self.max.max(v);
    }
    fn sum(&self) -> u64 {
        self.sum
    }
}

/// `count` removed.
#[derive(Clone, Default, Serialize, Deserialize)]
struct V3 {
    sum: u64,
}
impl Acc for V3 {
    fn add(&mut self, v: u64) {
        self.sum += v;
    }
    fn sum(&self) -> u64 {
        self.sum
    }
}

/// `count` changed type: incompatible.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Bad {
    count: String,
    sum: u64,
}
impl Acc for Bad {
    fn add(&mut self, _v: u64) {}
    fn sum(&self) -> u64 {
        self.sum
    }
}

#[derive(Clone)]
struct Accumulate<A> {
    state: ValueState<A, WithDefault>,
}

impl<A: Acc + DeserializeOwned> KeyedFlatMapFunction<u64, u64, (u64, u64)> for Accumulate<A> {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.state = ValueStateDescriptor::new("acc")
            .with_default(A::default())
            .register(ctx)?;
        Ok(())
    }
    fn flat_map(
        &mut self,
        v: u64,
        ctx: &mut KeyedContext<u64>,
        out: &mut Collector<(u64, u64)>,
    ) -> Result<()> {
        let mut a = self.state.value(ctx)?;
        a.add(v);
        out.collect((v % 7, a.sum()));
        self.state.update(ctx, a)
    }
}

fn job<A: Acc + DeserializeOwned>(env: &StreamEnv) -> CollectHandle<(u64, u64)> {
    env.enable_checkpointing(Duration::from_millis(20));
    env.from_collection((0..N).collect())
        .uid("input")
        .map(|v| {
            std::thread::sleep(Duration::from_micros(200));
            v
        })
        .key_by(|v| v % 7)
        .flat_map(Accumulate::<A> {
            state: Default::default(),
        })
        .uid("acc-op")
        .collect()
}

fn exact_sums() -> HashMap<u64, u64> {
    let mut m = HashMap::new();
    for v in 0..N {
        *m.entry(v % 7).or_insert(0) += v;
    }
    m
}

/// Runs V1 until some output, stops with a savepoint, returns its path.
fn savepoint_of_v1(sp: &std::path::Path) -> std::path::PathBuf {
    let env = StreamEnv::new();
    let out = job::<V1>(&env);
    let client = env.execute_async("v1").unwrap();
    common::wait_until(Duration::from_secs(30), "no output from v1", || {
        out.snapshot().len() >= 300
    });
    let path = client.stop_with_savepoint(Some(sp)).unwrap();
    client.wait().unwrap();
    path
}

fn resume<A: Acc + DeserializeOwned>(path: &std::path::Path) -> Result<HashMap<u64, u64>> {
    let env = StreamEnv::from_arg_list(["-s", path.to_str().unwrap()]).unwrap();
    let out = job::<A>(&env);
    env.execute("resumed")?;
    let mut last = HashMap::new();
    for (k, s) in out.take() {
        last.insert(k, s);
    }
    Ok(last)
}

#[test]
fn compatible_changes_restore_and_an_incompatible_one_is_refused_up_front() {
    let sp = tempfile::tempdir().unwrap();
    let path = savepoint_of_v1(sp.path());
    assert_eq!(
        resume::<V2>(&path).unwrap(),
        exact_sums(),
        "reordered, renamed (alias), added (default)"
    );
    assert_eq!(
        resume::<V3>(&path).unwrap(),
        exact_sums(),
        "a removed field"
    );
    let err = format!("{:#}", resume::<Bad>(&path).unwrap_err());
    assert!(
        err.contains("'acc-op'") && err.contains("state 'acc'") && err.contains("field `count`"),
        "{err}"
    );
    assert!(err.contains("invalid type"), "{err}");
}
