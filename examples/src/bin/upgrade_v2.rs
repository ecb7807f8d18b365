//! Version 2 of `upgrade_v1`: the `counter` operator is removed, a new stateful operator
//! (uid `max`) is added, and the `acc` state gains a field with a default.

use floe::prelude::*;
use serde::{Deserialize, Serialize};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Acc {
    count: u64,
    sum: u64,
    /// New in version 2: absent in version 1 snapshots, restored as 0.
    #[serde(default)]
    max: u64,
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
        a.max = a.max.max(v);
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
        .key_by(|t: &(u64, u64)| t.0)
        .reduce(|a, b| if b.1 > a.1 { b } else { a })
        .uid("max")
        .print();
    env.execute("upgrade")?;
    Ok(())
}

fn main() -> ExitCode {
    floe::exit_on_error(job())
}
