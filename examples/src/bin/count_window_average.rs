//! Seed 003: lines `a b` of two unsigned integers, keyed by the first; a rich flat-map
//! keeps `(count, sum)` in a `ValueState` with default `(0, 0)` and emits `(key, sum/count)`
//! whenever the count reaches 2, then clears the state. Checkpoint every second.
//!
//! ```text
//! count_window_average --host 127.0.0.1 --port 9999 --checkpoint-dir /tmp/ck
//! ```

use floe::prelude::*;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Clone, Default)]
struct CountWindowAverage {
    /// (count, sum) of the current key.
    sum: ValueState<(u64, u64), WithDefault>,
}

impl KeyedFlatMapFunction<u64, (u64, u64), (u64, u64)> for CountWindowAverage {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        // the state name, and the default value of the state if nothing was set
        self.sum = ValueStateDescriptor::new("average")
            .with_default((0u64, 0u64))
            .register(ctx)?;
        Ok(())
    }

    fn flat_map(
        &mut self,
        input: (u64, u64),
        ctx: &mut KeyedContext<u64>,
        out: &mut Collector<(u64, u64)>,
    ) -> Result<()> {
        // access the state value
        let mut current_sum = self.sum.value(ctx)?;
        // update the count
        current_sum.0 += 1;
        // add the second field of the input value
        current_sum.1 += input.1;
        // update the state
        self.sum.update(ctx, current_sum)?;
        // if the count reaches 2, emit the average and clear the state
        if current_sum.0 >= 2 {
            out.collect((input.0, current_sum.1 / current_sum.0));
            self.sum.clear(ctx)?;
        }
        Ok(())
    }
}

fn parse(line: String) -> Result<(u64, u64)> {
    let mut it = line.split(' ');
    let mut field = |name: &str| -> Result<u64> {
        let v = it.next().unwrap_or("");
        v.trim().parse::<u64>().map_err(|_| anyhow!("invalid record '{line}': {name} field '{v}' is not an unsigned integer (expected \"a b\")"))
    };
    let a = field("first")?;
    let b = field("second")?;
    Ok((a, b))
}

fn job() -> Result<()> {
    let env = StreamEnv::from_args_with_usage(
        "[--host HOST] [--port PORT] [--checkpoint-dir DIR]\nlines \"a b\" from HOST:PORT (default 127.0.0.1:9999); checkpoints into DIR (default <tmp>/floe-checkpoints)",
    )?;
    let params = env.params();
    let host = params.get_or("host", "127.0.0.1").to_string();
    let port: u16 = params.get_parsed("port")?.unwrap_or(9999);
    env.enable_checkpointing(Duration::from_secs(1));
    env.checkpoint_config()
        .set_checkpointing_mode(CheckpointingMode::ExactlyOnce)
        .set_checkpoint_timeout(Duration::from_secs(60))
        .set_min_pause_between_checkpoints(Duration::from_millis(500))
        .set_max_concurrent_checkpoints(2)
        .set_externalized_checkpoint_retention(
            ExternalizedCheckpointRetention::RetainOnCancellation,
        );
    if let Some(dir) = params.get("checkpoint-dir") {
        env.set_checkpoint_storage(dir);
    }
    env.socket_text_stream(&host, port)
        .uid("socket-source")
        .try_map(parse)
        .key_by(|t: &(u64, u64)| t.0)
        .flat_map(CountWindowAverage::default())
        .uid("count-window-average")
        .print();
    env.execute("s5")?;
    Ok(())
}

fn main() -> ExitCode {
    floe::exit_on_error(job())
}
