#![warn(missing_docs)]
//! # Floe
//!
//! A stateful stream processor with Apache Flink's programming and operational model:
//! a DataStream API, keyed state scoped to the current key, exactly-once checkpoints
//! aligned by timely-dataflow's progress tracking, restart strategies counted as Flink
//! counts them, and Flink's on-disk checkpoint layout.
//!
//! ```no_run
//! use floe::prelude::*;
//! use std::time::Duration;
//!
//! fn main() -> std::process::ExitCode {
//!     floe::exit_on_error(job())
//! }
//!
//! fn job() -> floe::Result<()> {
//!     let env = StreamEnv::from_args()?;
//!     env.enable_checkpointing(Duration::from_secs(5));
//!     env.set_restart_strategy(RestartStrategy::fixed_delay(3, Duration::from_secs(2)));
//!     env.socket_text_stream("127.0.0.1", 9999)
//!         .flat_map(|line: String, out: &mut Collector<String>| {
//!             line.split(' ').for_each(|w| out.collect(w.to_string()))
//!         })
//!         .map(|w| (w, 1i64))
//!         .key_by(|t| t.0.clone())
//!         .sum(1)
//!         .print();
//!     env.execute("stream word count job")?;
//!     Ok(())
//! }
//! ```
//!
//! Layout: [`api`] is what job code uses; [`state`] holds keyed state and key groups;
//! [`checkpoint`] decides checkpoints (pure logic) and defines the on-disk format;
//! [`jobmanager`] owns coordination and restarts; [`runtime`] runs the dataflow on timely;
//! [`connectors`] has sources and sinks; [`storage`] resolves checkpoint locations;
//! [`config`] holds the typed configuration keys; [`launch`] decides how the process was
//! started and is the only place that handles signals or exits the process.

pub mod api;
pub mod checkpoint;
pub mod cluster;
mod compile;
pub mod config;
pub mod connectors;
pub mod exit;
pub mod job;
pub mod jobmanager;
pub mod launch;
pub mod logging;
pub mod runtime;
pub mod state;
pub mod storage;
pub mod sync;
pub mod wire;

pub use anyhow::{anyhow, bail, Context as _, Error};
pub use api::env::StreamEnv;
pub use job::{JobExecutionResult, JobId, JobStatus};
pub use jobmanager::JobClient;
pub use launch::exit_on_error;

/// Result type used by job code and user functions: any error is a task failure.
pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

/// Everything a job usually needs.
pub mod prelude {
    pub use crate::api::data::{Data, Key, Str};
    pub use crate::api::env::{JobExecutionResult, JobStatus, StreamEnv};
    pub use crate::api::functions::{
        Collector, FlatMapFunction, KeyedFlatMapFunction, MapFunction, RuntimeContext, TaskInfo,
    };
    pub use crate::api::join::{
        ConnectedKeyedStreams, ConnectedStreams, IntervalJoin, IntervalJoined, JoinContext,
        KeyedCoProcessFunction, ProcessJoinFunction, TimeOffset,
    };
    pub use crate::api::params::JobParams;
    pub use crate::api::print::PrintFormat;
    pub use crate::api::process::{
        Context, KeyedProcessFunction, ProcessContext, ProcessFunction, ProcessTimerService,
        TimerService,
    };
    pub use crate::api::stream::{DataStream, KeyedStream};
    pub use crate::api::time::{
        OutputTag, TimeDomain, TimestampAssigner, WatermarkGenerator, WatermarkOutput,
        WatermarkStrategy, MAX_WATERMARK, MIN_WATERMARK, NO_TIMESTAMP,
    };
    pub use crate::api::window::{
        AggregateFunction, CountTrigger, EventTimeSessionWindows, EventTimeTrigger, GlobalWindow,
        GlobalWindows, ProcessWindowContext, ProcessWindowFunction, ProcessingTimeSessionWindows,
        ProcessingTimeTrigger, PurgingTrigger, SlidingEventTimeWindows,
        SlidingProcessingTimeWindows, TimeWindow, Trigger, TriggerResult, TumblingEventTimeWindows,
        TumblingProcessingTimeWindows, WindowedStream,
    };
    pub use crate::checkpoint::config::{CheckpointingMode, ExternalizedCheckpointRetention};
    pub use crate::connectors::collect::CollectHandle;
    pub use crate::connectors::discard::CountHandle;
    pub use crate::jobmanager::restart::RestartStrategy;
    pub use crate::state::{
        KeyedContext, ListState, ListStateDescriptor, MapState, MapStateDescriptor, ReducingState,
        ReducingStateDescriptor, StateTtlConfig, StateVisibility, UpdateType, ValueState,
        ValueStateDescriptor, WithDefault,
    };
    pub use crate::{anyhow, bail, Result};
}
