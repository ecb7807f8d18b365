//! The Kafka sink against a real Kafka-protocol broker (tansu, `floe_testkit::kafka`), in
//! real job runs: exactly-once output through a failure and restart, a crash between a
//! checkpoint and its commit recovered by a new job, at-least-once and none, and the
//! builder's errors. What `read_committed` readers see is read from the log with the abort
//! markers applied (`KafkaBroker::read_committed`), which is what a real broker gives them.

mod common;

use common::latest_checkpoint;
use floe::connectors::format::SimpleStringSchema;
use floe::connectors::kafka::sink::{
    DeliveryGuarantee, KafkaCommittable, KafkaRecordSerializer, KafkaSink, KafkaWriter,
};
use floe::connectors::{SinkContext, TwoPhaseCommitSink};
use floe::prelude::*;
use floe_testkit::kafka::KafkaBroker;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const N: u64 = 3000;

type Sink = KafkaSink<String, KafkaRecordSerializer<String, SimpleStringSchema>>;

fn sink(kafka: &KafkaBroker, topic: &str, guarantee: DeliveryGuarantee, prefix: &str) -> Sink {
    KafkaSink::builder()
        .set_bootstrap_servers(kafka.bootstrap())
        .set_record_serializer(KafkaRecordSerializer::new(topic, SimpleStringSchema))
        .set_delivery_guarantee(guarantee)
        .set_transactional_id_prefix(prefix)
        .build()
        .unwrap()
}

/// Numbers `0..N` as text through a slow map that fails once at `fail_at` into `sink`, at
/// parallelism 2, checkpointing every 30 ms.
fn job<S: TwoPhaseCommitSink<String>>(
    ck: &Path,
    sink: S,
    fail_at: Option<u64>,
    restarts: RestartStrategy,
) -> StreamEnv {
    let env = StreamEnv::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(30));
    env.set_checkpoint_storage(ck.to_str().unwrap());
    env.checkpoint_config()
        .set_externalized_checkpoint_retention(
            ExternalizedCheckpointRetention::RetainOnCancellation,
        );
    env.set_restart_strategy(restarts);
    let failed = Arc::new(AtomicBool::new(false));
    env.from_collection((0..N).collect())
        .uid("numbers")
        .try_map(move |v: u64| {
            std::thread::sleep(Duration::from_micros(200));
            if Some(v) == fail_at && !failed.swap(true, Ordering::SeqCst) {
                bail!("record {v} fails");
            }
            Ok(v.to_string())
        })
        .sink_exactly_once(sink)
        .uid("out");
    env
}

fn sorted_numbers(values: &[&str]) -> Vec<u64> {
    let mut v: Vec<u64> = values.iter().map(|s| s.parse().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn exactly_once_through_a_failure_and_restart_every_record_is_committed_once() {
    let kafka = KafkaBroker::start().unwrap();
    kafka.create_topic("out", 3).unwrap();
    let ck = tempfile::tempdir().unwrap();
    let sink = sink(&kafka, "out", DeliveryGuarantee::ExactlyOnce, "restart");
    job(
        ck.path(),
        sink,
        Some(1700),
        RestartStrategy::fixed_delay(2, Duration::from_millis(50)),
    )
    .execute("kafka exactly-once")
    .unwrap();
    let out = kafka.read_committed("out").unwrap();
    assert_eq!(out.open, 0, "no transaction is left open");
    assert_eq!(sorted_numbers(&out.values()), (0..N).collect::<Vec<_>>());
    // Records the failed attempt wrote after its last checkpoint were in a transaction the
    // restart aborted (`out.aborted`, when any reached the broker before the failure); the
    // restored attempt wrote them again, and each number is there once.
    // Several checkpoints, several transactions, spread over the partitions.
    let partitions: std::collections::BTreeSet<i32> = out.records.iter().map(|r| r.0).collect();
    assert_eq!(partitions.len(), 3, "{partitions:?}");
}

/// A Kafka sink whose commits never happen: the job fails at its first completed checkpoint
/// with its transactions pre-committed — what a crash between a checkpoint and its commit
/// leaves behind.
struct CommitLost(Sink);

impl TwoPhaseCommitSink<String> for CommitLost {
    type Committable = KafkaCommittable;
    type Writer = KafkaWriter<String, KafkaRecordSerializer<String, SimpleStringSchema>>;
    fn name(&self) -> String {
        self.0.name()
    }
    fn create_writer(&self, ctx: &SinkContext) -> floe::Result<Self::Writer> {
        self.0.create_writer(ctx)
    }
    fn commit(&self, c: &[KafkaCommittable]) -> floe::Result<()> {
        if c.is_empty() {
            return Ok(());
        }
        bail!(
            "the process died before committing {} transactions",
            c.len()
        )
    }
    fn recover(&self, ctx: &SinkContext, keep: &[KafkaCommittable]) -> floe::Result<()> {
        self.0.recover(ctx, keep)
    }
}

#[test]
fn a_crash_between_the_checkpoint_and_its_commit_is_committed_by_the_restored_job() {
    let kafka = KafkaBroker::start().unwrap();
    kafka.create_topic("out", 2).unwrap();
    let ck = tempfile::tempdir().unwrap();
    let lost = CommitLost(sink(&kafka, "out", DeliveryGuarantee::ExactlyOnce, "crash"));
    let err = job(ck.path(), lost, None, RestartStrategy::none())
        .execute("commit lost")
        .unwrap_err()
        .to_string();
    assert!(err.contains("died before committing"), "{err}");
    let before = kafka.read_committed("out").unwrap();
    assert!(before.records.is_empty(), "nothing is committed yet");
    assert!(
        before.open > 0,
        "the checkpoint's transactions are prepared"
    );

    // A new job (its sink knows no producer of the old one) restores the checkpoint: it
    // commits the prepared transactions by their producer ids and aborts the rest.
    let chk = latest_checkpoint(ck.path());
    let ck2 = tempfile::tempdir().unwrap();
    let env = job(
        ck2.path(),
        sink(&kafka, "out", DeliveryGuarantee::ExactlyOnce, "crash"),
        None,
        RestartStrategy::none(),
    );
    env.set_restore_path(&chk);
    env.execute("restored").unwrap();
    let out = kafka.read_committed("out").unwrap();
    assert_eq!(out.open, 0, "no transaction is left open");
    assert_eq!(sorted_numbers(&out.values()), (0..N).collect::<Vec<_>>());
}

#[test]
fn at_least_once_loses_nothing_and_none_writes_everything_without_failures() {
    let kafka = KafkaBroker::start().unwrap();
    kafka.create_topic("alo", 2).unwrap();
    kafka.create_topic("none", 1).unwrap();
    let ck = tempfile::tempdir().unwrap();
    job(
        ck.path(),
        sink(&kafka, "alo", DeliveryGuarantee::AtLeastOnce, "unused"),
        Some(1500),
        RestartStrategy::fixed_delay(1, Duration::from_millis(50)),
    )
    .execute("at least once")
    .unwrap();
    let alo = kafka.read_committed("alo").unwrap();
    let mut distinct = sorted_numbers(&alo.values());
    distinct.dedup();
    assert_eq!(distinct, (0..N).collect::<Vec<_>>(), "nothing lost");
    assert!(alo.records.len() >= N as usize);

    let ck = tempfile::tempdir().unwrap();
    job(
        ck.path(),
        sink(&kafka, "none", DeliveryGuarantee::None, "unused"),
        None,
        RestartStrategy::none(),
    )
    .execute("none")
    .unwrap();
    let none = kafka.read_committed("none").unwrap();
    assert_eq!(sorted_numbers(&none.values()), (0..N).collect::<Vec<_>>());
}

#[test]
fn the_builder_names_what_is_missing() {
    let no_prefix = KafkaSink::builder()
        .set_bootstrap_servers("127.0.0.1:9")
        .set_record_serializer(KafkaRecordSerializer::new("t", SimpleStringSchema))
        .set_delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .build::<String>();
    let err = no_prefix.err().unwrap().to_string();
    assert!(err.contains("transactional id prefix"), "{err}");
    let no_servers = KafkaSink::builder()
        .set_record_serializer(KafkaRecordSerializer::new("t", SimpleStringSchema))
        .build::<String>();
    let err = no_servers.err().unwrap().to_string();
    assert!(err.contains("bootstrap servers are not set"), "{err}");
}
