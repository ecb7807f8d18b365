//! Version 1 of a job that is upgraded (see `upgrade_v2`): lines `k v` → per-key average
//! (uid `avg`, state `acc`) → per-key count of averages emitted (uid `counter`) → print.

use floe::prelude::*;
use serde::{Deserialize, Serialize};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Acc {
    count: u64,
    sum: u64,
}

#[derive(Clone, Default)]
struct Average {
    acc: ValueState<Acc, WithDefault>,
}

impl KeyedFlatMapFunction<u64, (u64, u64), (u64, u64)> for Average {
    fn open(&mut self, ctx: &mut RuntimeContext<'_>) -> Result<()> {
        self.acc = ValueStateDescriptor::new("acc")
            .with_default(Acc::default())
            .register(ctx)?;
        Ok(())
    }
    fn flat_map(
        &mut self,
        (k, v): (u64, u64),
        ctx: &mut KeyedContext<u64>,
        out: &mut Collector<(u64, u64)>,
    ) -> Result<()> {
        let mut a = self.acc.value(ctx)?;
        a.count += 1;
        a.sum += v;
        out.collect((k, a.sum / a.count));
        self.acc.update(ctx, a)
    }
}

fn parse(line: String) -> Result<(u64, u64)> {
    let (a, b) = line
        .split_once(' ')
        .ok_or_else(|| anyhow!("invalid record '{line}'"))?;
    Ok((a.trim().parse()?, b.trim().parse()?))
}

fn job() -> Result<()> {
    let env = StreamEnv::from_args()?;
    let port: u16 = env.params().get_parsed("port")?.unwrap_or(9999);
    env.enable_checkpointing(Duration::from_secs(1));
    env.socket_text_stream("127.0.0.1", port)
        .uid("lines")
        .try_map(parse)
        .key_by(|t: &(u64, u64)| t.0)
        .flat_map(Average::default())
        .uid("avg")
        .map(|(k, avg)| (k, avg, 1u64))
        .key_by(|t: &(u64, u64, u64)| t.0)
        .sum(2)
        .uid("counter")
        .print();
    env.execute("upgrade")?;
    Ok(())
}

fn main() -> ExitCode {
    floe::exit_on_error(job())
}
