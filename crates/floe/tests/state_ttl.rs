//! State TTL through a real job: a key whose TTL'd state expired before a restore starts
//! fresh after it, while the key's longer-lived and plain states are restored; restoring
//! TTL state without TTL is refused with an error naming the state.

use floe::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Counts per key in three states: one with a 1 s TTL, one with a 1 h TTL, one plain.
#[derive(Clone, Default)]
struct Counter {
    /// Register `count` without TTL (a job that changed its descriptor).
    count_without_ttl: bool,
    count: ValueState<u32>,
    hour: ValueState<u32>,
    total: ValueState<u32>,
}

impl KeyedFlatMapFunction<String, String, String> for Counter {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        // ReturnExpiredIfNotCleanedUp without background cleanup: an expired value still in
        // memory would be returned, so `count=1` after the restore shows it was not restored.
        let second = StateTtlConfig::new_builder(Duration::from_secs(1))
            .return_expired_if_not_cleaned_up()
            .disable_cleanup_in_background()
            .build();
        let count = ValueStateDescriptor::new("count");
        self.count = if self.count_without_ttl {
            count.register(ctx)?
        } else {
            count.enable_time_to_live(second).register(ctx)?
        };
        self.hour = ValueStateDescriptor::new("hour")
            .enable_time_to_live(StateTtlConfig::new_builder(Duration::from_secs(3600)).build())
            .register(ctx)?;
        self.total = ValueStateDescriptor::new("total").register(ctx)?;
        Ok(())
    }

    fn flat_map(
        &mut self,
        word: String,
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<String>,
    ) -> Result<()> {
        if word == "fail" {
            bail!("the last record fails the job");
        }
        let bump = |s: ValueState<u32>, ctx: &mut KeyedContext<String>| -> Result<u32> {
            let n = s.value(ctx)?.unwrap_or(0) + 1;
            s.update(ctx, n)?;
            Ok(n)
        };
        let count = bump(self.count, ctx)?;
        let hour = bump(self.hour, ctx)?;
        let total = bump(self.total, ctx)?;
        out.collect(format!("{word} count={count} hour={hour} total={total}"));
        Ok(())
    }
}

/// `words` (a source with uid `source`) through a slow map (so that checkpoints complete
/// between them), without the `filler` records, into the counter.
fn job(env: &StreamEnv, source: &str, words: Vec<&str>, counter: Counter) -> CollectHandle<String> {
    env.set_restart_strategy(RestartStrategy::none());
    env.enable_checkpointing(Duration::from_millis(15));
    env.checkpoint_config()
        .set_externalized_checkpoint_retention(
            ExternalizedCheckpointRetention::RetainOnCancellation,
        );
    env.from_collection(words.into_iter().map(String::from).collect())
        .uid(source)
        .map(|w: String| {
            std::thread::sleep(Duration::from_millis(1));
            w
        })
        .filter(|w: &String| w != "filler")
        .key_by(|w: &String| w.clone())
        .flat_map(counter)
        .uid("counter")
        .collect()
}

fn only_checkpoint(root: &Path) -> PathBuf {
    let job = std::fs::read_dir(root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let chk: Vec<PathBuf> = std::fs::read_dir(&job)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("chk-"))
        .collect();
    assert_eq!(chk.len(), 1, "one retained checkpoint: {chk:?}");
    chk.into_iter().next().unwrap()
}

#[test]
fn a_key_whose_ttl_state_expired_before_the_restore_starts_fresh() {
    // First run: a and b are counted, checkpoints complete while 300 fillers pass, then the
    // last record fails the job, which keeps its latest checkpoint.
    let ck = tempfile::tempdir().unwrap();
    let env = StreamEnv::new();
    env.set_checkpoint_storage(ck.path().to_str().unwrap());
    let mut words = vec!["a", "b"];
    words.extend(std::iter::repeat_n("filler", 300));
    words.push("fail");
    let out = job(&env, "words", words, Counter::default());
    let err = env.execute("ttl first").unwrap_err().to_string();
    assert!(err.contains("the last record fails the job"), "{err}");
    assert_eq!(
        out.take(),
        vec!["a count=1 hour=1 total=1", "b count=1 hour=1 total=1"]
    );
    let chk = only_checkpoint(ck.path());

    // Every `count` in the checkpoint is older than its 1 s TTL by the time it is restored.
    // The second run reads new input: a new source, whose predecessor's position is dropped.
    std::thread::sleep(Duration::from_millis(1100));
    let restore = |ck: &Path| {
        let env = StreamEnv::from_arg_list(["-n", "-s", chk.to_str().unwrap()]).unwrap();
        env.set_checkpoint_storage(ck.to_str().unwrap());
        env
    };
    let ck2 = tempfile::tempdir().unwrap();
    let env = restore(ck2.path());
    let out = job(&env, "more-words", vec!["a", "c"], Counter::default());
    env.execute("ttl restored").unwrap();
    assert_eq!(
        out.take(),
        vec!["a count=1 hour=2 total=2", "c count=1 hour=1 total=1"],
        "a's expired count was not restored; its 1 h and plain states were"
    );

    // The same checkpoint with `count` registered without TTL: refused, naming the state.
    let ck3 = tempfile::tempdir().unwrap();
    let env = restore(ck3.path());
    let out = job(
        &env,
        "more-words",
        vec!["a"],
        Counter {
            count_without_ttl: true,
            ..Counter::default()
        },
    );
    let err = env.execute("ttl removed").unwrap_err().to_string();
    assert!(
        err.contains("cannot restore operator 'counter'")
            && err.contains("value state 'count' was written with state TTL enabled and cannot be restored without it"),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(out.take().is_empty());
}
