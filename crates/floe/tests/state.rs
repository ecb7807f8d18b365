//! Keyed state types through a real job: every state is scoped to the current key and
//! survives a restart from a checkpoint.

use floe::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Default)]
struct AllStates {
    seen: ListState<u32>,
    by_parity: MapState<bool, u32>,
    max: ReducingState<u32>,
    count: ValueState<u32>,
    fail_once: Arc<AtomicBool>,
}

impl KeyedFlatMapFunction<String, (String, u32), String> for AllStates {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.seen = ListStateDescriptor::new("seen").register(ctx)?;
        self.by_parity = MapStateDescriptor::new("by-parity").register(ctx)?;
        self.max =
            ReducingStateDescriptor::new("max", |a: &u32, b: &u32| *a.max(b)).register(ctx)?;
        self.count = ValueStateDescriptor::new("count").register(ctx)?;
        Ok(())
    }

    fn flat_map(
        &mut self,
        (k, v): (String, u32),
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<String>,
    ) -> Result<()> {
        assert_eq!(ctx.current_key(), &k, "state is scoped to the record's key");
        if v == 50 && k == "a" && !self.fail_once.swap(true, Ordering::SeqCst) {
            // Let at least one checkpoint complete before the failure.
            std::thread::sleep(Duration::from_millis(100));
            bail!("fail once in the middle");
        }
        self.seen.add(ctx, v)?;
        let even = v % 2 == 0;
        let n = self.by_parity.get(ctx, &even)?.unwrap_or(0);
        self.by_parity.put(ctx, even, n + 1)?;
        self.max.add(ctx, v)?;
        let c = self.count.value(ctx)?.unwrap_or(0) + 1;
        self.count.update(ctx, c)?;
        let seen = self.seen.get(ctx)?;
        out.collect(format!(
            "{k} count={c} len={} sum={} even={} odd={} max={}",
            seen.len(),
            seen.iter().sum::<u32>(),
            self.by_parity.get(ctx, &true)?.unwrap_or(0),
            self.by_parity.get(ctx, &false)?.unwrap_or(0),
            self.max.get(ctx)?.unwrap_or(0)
        ));
        Ok(())
    }
}

#[test]
fn list_map_reducing_value_state_per_key_across_a_restart() {
    let ck = tempfile::tempdir().unwrap();
    let env = StreamEnv::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(10));
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    env.set_restart_strategy(RestartStrategy::fixed_delay(1, Duration::ZERO));
    let input: Vec<(String, u32)> = (0..100u32)
        .flat_map(|v| [("a".to_string(), v), ("b".to_string(), v * 2)])
        .collect();
    let out = env
        .from_collection(input)
        .uid("in")
        .map(|t| {
            std::thread::sleep(Duration::from_micros(300));
            t
        })
        .key_by(|t: &(String, u32)| t.0.clone())
        .flat_map(AllStates::default())
        .uid("all-states")
        .collect();
    let r = env.execute("states").unwrap();
    assert_eq!(r.restarts, 1);
    let mut last: HashMap<String, String> = HashMap::new();
    for line in out.take() {
        last.insert(line.split(' ').next().unwrap().to_string(), line);
    }
    assert_eq!(
        last["a"],
        "a count=100 len=100 sum=4950 even=50 odd=50 max=99"
    );
    assert_eq!(
        last["b"],
        "b count=100 len=100 sum=9900 even=100 odd=0 max=198"
    );
}

#[test]
fn state_registration_errors_are_errors() {
    #[derive(Clone, Default)]
    struct Twice;
    impl KeyedFlatMapFunction<u8, u8, u8> for Twice {
        fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
            ValueStateDescriptor::<u32>::new("x").register(ctx)?;
            ListStateDescriptor::<u32>::new("x").register(ctx)?;
            Ok(())
        }
        fn flat_map(
            &mut self,
            v: u8,
            _: &mut KeyedContext<u8>,
            out: &mut Collector<u8>,
        ) -> Result<()> {
            out.collect(v);
            Ok(())
        }
    }
    let env = StreamEnv::new();
    env.set_restart_strategy(RestartStrategy::none());
    env.from_collection(vec![1u8])
        .key_by(|v| *v)
        .flat_map(Twice)
        .discard();
    let err = env.execute("bad state").unwrap_err().to_string();
    assert!(err.contains("state 'x' is already registered"), "{err}");
}

#[test]
fn panic_in_a_keyed_function_restarts_from_the_checkpoint() {
    #[derive(Clone)]
    struct PanicOnce(Arc<AtomicBool>);
    impl KeyedFlatMapFunction<u64, u64, (u64, u64)> for PanicOnce {
        fn open(&mut self, _ctx: &mut RuntimeContext<'_>) -> Result<()> {
            Ok(())
        }
        fn flat_map(
            &mut self,
            v: u64,
            ctx: &mut KeyedContext<u64>,
            out: &mut Collector<(u64, u64)>,
        ) -> Result<()> {
            if v == 700 && !self.0.swap(true, Ordering::SeqCst) {
                panic!("boom at {v}");
            }
            out.collect((*ctx.current_key(), v));
            Ok(())
        }
    }
    let ck = tempfile::tempdir().unwrap();
    let env = StreamEnv::new();
    env.enable_checkpointing(Duration::from_millis(10));
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    env.set_restart_strategy(RestartStrategy::failure_rate(
        3,
        Duration::from_secs(60),
        Duration::ZERO,
    ));
    let out = env
        .from_collection((0..1000u64).collect())
        .uid("n")
        .map(|v| {
            std::thread::sleep(Duration::from_micros(200));
            v
        })
        .key_by(|v| v % 10)
        .flat_map(PanicOnce(Arc::new(AtomicBool::new(false))))
        .uid("p")
        .key_by(|t: &(u64, u64)| t.0)
        .sum(1)
        .uid("sum")
        .collect();
    let r = env.execute("panic in keyed").unwrap();
    assert_eq!(r.restarts, 1);
    let mut last = HashMap::new();
    for (k, s) in out.take() {
        last.insert(k, s);
    }
    for k in 0..10u64 {
        let exact: u64 = (0..1000u64).filter(|v| v % 10 == k).sum();
        assert_eq!(last[&k], exact, "key {k}");
    }
}
