//! Seed 000: a socket word count whose task fails on the word "error", recovers from the
//! last checkpoint with a fixed-delay restart strategy, fails for good after three
//! restarts, and can be brought back with `-s <retained checkpoint>`.
//!
//! ```text
//! nc -lk 9999 &
//! state_word_count --host 127.0.0.1 --port 9999 --checkpoint-dir /tmp/flinkck
//! state_word_count -s /tmp/flinkck/<job-id>/chk-<n> --host 127.0.0.1 --port 9999 --checkpoint-dir /tmp/flinkck
//! ```

use floe::prelude::*;
use std::process::ExitCode;
use std::time::Duration;

/// Throws on "error", as the seed's `TMap`.
#[derive(Clone)]
struct TMap;

impl MapFunction<String, String> for TMap {
    fn map(&mut self, t: String) -> Result<String> {
        if t == "error" {
            bail!("error message ");
        }
        Ok(t)
    }
}

fn job() -> Result<()> {
    let env = StreamEnv::from_args_with_usage(
        "[--host HOST] [--port PORT] [--checkpoint-dir DIR]\nlines from HOST:PORT (default 127.0.0.1:9999); checkpoints into DIR (default <tmp>/floe-checkpoints)",
    )?;
    let params = env.params();
    let host = params.get_or("host", "127.0.0.1").to_string();
    let port: u16 = params.get_parsed("port")?.unwrap_or(9999);
    // Restart strategies need checkpointing, as in Flink.
    env.enable_checkpointing(Duration::from_secs(5));
    // Up to 3 restarts, 2 s apart.
    env.set_restart_strategy(RestartStrategy::fixed_delay(3, Duration::from_secs(2)));
    env.checkpoint_config()
        .set_externalized_checkpoint_retention(
            ExternalizedCheckpointRetention::RetainOnCancellation,
        );
    if let Some(dir) = params.get("checkpoint-dir") {
        env.set_checkpoint_storage(dir);
    }
    env.socket_text_stream(&host, port)
        .uid("socket-source")
        .flat_map(|line: String, out: &mut Collector<String>| {
            line.split(' ').for_each(|w| out.collect(w.to_string()))
        })
        .map_function(TMap)
        .map(|w| (w, 1i64))
        .key_by(|t| t.0.clone())
        .sum(1)
        .uid("word-count")
        .print();
    env.execute("stream word count job")?;
    Ok(())
}

fn main() -> ExitCode {
    floe::exit_on_error(job())
}
