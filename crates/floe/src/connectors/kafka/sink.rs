//! Flink's `KafkaSink`: records to Kafka topics with a [`DeliveryGuarantee`].
//!
//! - [`DeliveryGuarantee::None`]: records are sent as they come; what librdkafka still
//!   buffers when a task fails is lost.
//! - [`DeliveryGuarantee::AtLeastOnce`]: every checkpoint's cut waits until the broker has
//!   acknowledged everything sent before it, so a restored job loses nothing (records after
//!   the restored checkpoint are sent again).
//! - [`DeliveryGuarantee::ExactlyOnce`]: every subtask writes each checkpoint's records in
//!   one Kafka transaction, with the transactional id `<prefix>-<subtask>-<n>`, `n` the
//!   first checkpoint the records belong to — unique, because checkpoint ids only grow. At
//!   the cut the transaction is flushed (pre-committed) and named in the checkpoint; it is
//!   committed when the checkpoint completes. A `read_committed` reader sees each record
//!   exactly once.
//!
//! Recovery, as in Flink: a restored job commits the transactions its checkpoint names. The
//! producer that wrote one may be gone (the process crashed between the checkpoint and its
//! commit); librdkafka cannot resume another producer's transaction, so the sink reads the
//! producer id and epoch from the batch holding the transaction's first record and commits
//! with an `EndTxn` request (`wire`). Committing again what is committed already is
//! harmless. Then every subtask aborts the transactions an earlier attempt left open — the
//! ids after the restored checkpoint up to the first checkpoint of this attempt — by
//! initializing their transactional ids, which fences their producers; otherwise they
//! would hold back `read_committed` readers until the broker times them out.
//!
//! Two jobs must not share a transactional id prefix (Flink's rule too): one would abort the
//! other's transactions.
//!
//! ```no_run
//! use floe::prelude::*;
//! use floe::connectors::format::SimpleStringSchema;
//! use floe::connectors::kafka::sink::{DeliveryGuarantee, KafkaRecordSerializer, KafkaSink};
//!
//! let env = StreamEnv::new();
//! env.enable_checkpointing(std::time::Duration::from_secs(1));
//! let sink = KafkaSink::builder()
//!     .set_bootstrap_servers("localhost:9092")
//!     .set_record_serializer(KafkaRecordSerializer::new("counts", SimpleStringSchema))
//!     .set_delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
//!     .set_transactional_id_prefix("word-count")
//!     .build()
//!     .unwrap();
//! env.from_collection(vec!["(to,1)".to_string()]).sink_exactly_once(sink);
//! ```

use super::wire::{Cluster, ErrorCode};
use super::{kafka_error, ClientProperties};
use crate::connectors::format::{FormatError, SerializationSchema};
use crate::connectors::{CommittableLost, PreCommitWriter, SinkContext, TwoPhaseCommitSink};
use crate::sync::LockExt;
use crate::Result;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a [`KafkaSink`] promises about its records (Flink's `DeliveryGuarantee`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryGuarantee {
    /// Records may be lost on failure.
    None,
    /// No record is lost; after a failure some may be written twice.
    #[default]
    AtLeastOnce,
    /// Transactional: `read_committed` readers see every record once.
    ExactlyOnce,
}

/// A record on its way to Kafka, filled by a [`KafkaRecordSerializationSchema`]. The
/// buffers are reused from record to record.
#[derive(Debug, Default)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The key: `None` for none (the partitioner then spreads records).
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Vec<u8>,
}

/// Turns an element into a [`ProducerRecord`] (Flink's `KafkaRecordSerializationSchema`).
pub trait KafkaRecordSerializationSchema<T>: Clone + Send + Sync + 'static {
    /// Fills `record` (its value is empty, its topic and key hold the previous record's).
    fn serialize(&mut self, element: &T, record: &mut ProducerRecord) -> Result<(), FormatError>;
}

/// No key: the [`KafkaRecordSerializer`] default.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoKey;

impl<T> SerializationSchema<T> for NoKey {
    fn serialize(&self, _value: &T, _out: &mut Vec<u8>) -> Result<(), FormatError> {
        Ok(())
    }
}

/// Chooses a record's topic.
type TopicSelector<T> = Arc<dyn Fn(&T) -> String + Send + Sync>;

/// The usual [`KafkaRecordSerializationSchema`] (what Flink's
/// `KafkaRecordSerializationSchema.builder()` builds): a topic, or one chosen per record, a
/// value schema and optionally a key schema.
///
/// ```
/// use floe::connectors::format::{Json, SimpleStringSchema};
/// use floe::connectors::kafka::sink::KafkaRecordSerializer;
/// // Values as JSON, keyed by the word, into a topic per first letter.
/// #[derive(Clone)]
/// struct Word;
/// impl floe::connectors::format::SerializationSchema<(String, i64)> for Word {
///     fn serialize(&self, v: &(String, i64), out: &mut Vec<u8>) -> Result<(), floe::connectors::format::FormatError> {
///         out.extend_from_slice(v.0.as_bytes());
///         Ok(())
///     }
/// }
/// let s = KafkaRecordSerializer::new("counts", Json::<(String, i64)>::new())
///     .with_key(Word)
///     .with_topic_selector(|v: &(String, i64)| format!("counts-{}", &v.0[..1]));
/// # let _ = s;
/// ```
pub struct KafkaRecordSerializer<T, V, K = NoKey> {
    topic: String,
    selector: Option<TopicSelector<T>>,
    value: V,
    key: Option<K>,
}

impl<T, V: Clone, K: Clone> Clone for KafkaRecordSerializer<T, V, K> {
    fn clone(&self) -> Self {
        KafkaRecordSerializer {
            topic: self.topic.clone(),
            selector: self.selector.clone(),
            value: self.value.clone(),
            key: self.key.clone(),
        }
    }
}

impl<T, V> KafkaRecordSerializer<T, V, NoKey> {
    /// Values encoded by `value` into `topic`, without keys.
    pub fn new(topic: impl Into<String>, value: V) -> Self {
        KafkaRecordSerializer {
            topic: topic.into(),
            selector: None,
            value,
            key: None,
        }
    }
}

impl<T, V, K> KafkaRecordSerializer<T, V, K> {
    /// Keys encoded by `key` from each element.
    pub fn with_key<K2>(self, key: K2) -> KafkaRecordSerializer<T, V, K2> {
        KafkaRecordSerializer {
            topic: self.topic,
            selector: self.selector,
            value: self.value,
            key: Some(key),
        }
    }

    /// The topic chosen for each element instead of the fixed one.
    pub fn with_topic_selector(mut self, f: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        self.selector = Some(Arc::new(f));
        self
    }
}

impl<T: 'static, V: SerializationSchema<T>, K: SerializationSchema<T>>
    KafkaRecordSerializationSchema<T> for KafkaRecordSerializer<T, V, K>
{
    #[inline]
    fn serialize(&mut self, element: &T, record: &mut ProducerRecord) -> Result<(), FormatError> {
        match &self.selector {
            Some(f) => record.topic = f(element),
            None if record.topic != self.topic => record.topic.clone_from(&self.topic),
            None => {}
        }
        match &self.key {
            Some(k) => {
                let buf = record.key.get_or_insert_with(Vec::new);
                buf.clear();
                k.serialize(element, buf)?;
            }
            None => record.key = None,
        }
        self.value.serialize(element, &mut record.value)
    }
}

/// A transaction of a [`KafkaSink`] that a checkpoint names, to commit when it completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaCommittable {
    /// The transaction's transactional id.
    pub transactional_id: String,
    /// Where its first record is: the batch there names the producer id and epoch that
    /// commit the transaction after its producer is gone.
    pub topic: String,
    /// The first record's partition.
    pub partition: i32,
    /// The first record's offset.
    pub offset: i64,
}

/// Per transaction: where its first record landed, and the first failed delivery.
#[derive(Default)]
struct Deliveries {
    have_first: AtomicBool,
    first: Mutex<Option<(String, i32, i64)>>,
    failed: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Deliveries {
    fn reset(&self) {
        self.have_first.store(false, Ordering::Relaxed);
        *self.first.lock_ok() = None;
    }

    /// The first delivery error, once.
    fn take_error(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.error.lock_ok().take()
    }
}

#[derive(Clone, Default)]
struct DeliveryContext(Arc<Deliveries>);

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let d = &self.0;
        match result {
            // The lock is taken once per transaction, not per record.
            Ok(m) if !d.have_first.load(Ordering::Relaxed) => {
                let mut first = d.first.lock_ok();
                if first.is_none() {
                    *first = Some((m.topic().to_string(), m.partition(), m.offset()));
                }
                d.have_first.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err((e, m)) => {
                let mut err = d.error.lock_ok();
                if err.is_none() && !d.failed.load(Ordering::Relaxed) {
                    *err = Some(format!(
                        "Kafka did not accept a record for topic {} partition {}: {e}",
                        m.topic(),
                        m.partition()
                    ));
                }
                d.failed.store(true, Ordering::Release);
            }
        }
    }
}

type KafkaProducer = BaseProducer<DeliveryContext>;

/// How long a flush, commit or transaction set-up may take before the task fails.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// `transaction.timeout.ms` when the user sets none: the broker's default maximum
/// (`transaction.max.timeout.ms`, 15 minutes). Flink's sink asks for an hour, which a broker
/// with default settings refuses.
const DEFAULT_TRANSACTION_TIMEOUT_MS: &str = "900000";
/// At most this many transactional ids are probed for lingering transactions at start.
const MAX_LINGERING_PROBES: u64 = 1000;

/// What a sink and its writers share.
struct Config {
    bootstrap: String,
    props: ClientProperties,
    guarantee: DeliveryGuarantee,
    prefix: String,
    /// Transactions pre-committed by this process's writers, by transactional id, with the
    /// subtask that wrote them: committed through their own producer when the checkpoint
    /// completes.
    prepared: Mutex<HashMap<String, (u32, KafkaProducer)>>,
}

/// Flink's `KafkaSink`. Built by [`KafkaSink::builder`]; attach it with
/// [`DataStream::sink_exactly_once`](crate::api::stream::DataStream::sink_exactly_once),
/// which is the checkpoint-aware sink path whatever the guarantee. See the module docs.
pub struct KafkaSink<T, S> {
    config: Arc<Config>,
    serializer: S,
    _t: PhantomData<fn(&T)>,
}

/// Builds a [`KafkaSink`] (Flink's `KafkaSinkBuilder`).
pub struct KafkaSinkBuilder<S> {
    bootstrap: Option<String>,
    props: ClientProperties,
    serializer: S,
    guarantee: DeliveryGuarantee,
    prefix: Option<String>,
}

/// The serializer a [`KafkaSinkBuilder`] has before `set_record_serializer`.
#[derive(Clone, Copy, Debug)]
pub struct NoSerializer;

impl KafkaSink<(), NoSerializer> {
    /// A builder: bootstrap servers and a record serializer are required.
    pub fn builder() -> KafkaSinkBuilder<NoSerializer> {
        KafkaSinkBuilder {
            bootstrap: None,
            props: ClientProperties::default(),
            serializer: NoSerializer,
            guarantee: DeliveryGuarantee::default(),
            prefix: None,
        }
    }
}

impl<S> KafkaSinkBuilder<S> {
    /// `host:port[,host:port…]`.
    pub fn set_bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.bootstrap = Some(servers.into());
        self
    }

    /// How records are turned into Kafka records.
    pub fn set_record_serializer<S2>(self, serializer: S2) -> KafkaSinkBuilder<S2> {
        KafkaSinkBuilder {
            bootstrap: self.bootstrap,
            props: self.props,
            serializer,
            guarantee: self.guarantee,
            prefix: self.prefix,
        }
    }

    /// [`DeliveryGuarantee::AtLeastOnce`] unless set (Flink's default is `NONE`; a sink
    /// that may lose records on failure should be a choice).
    pub fn set_delivery_guarantee(mut self, guarantee: DeliveryGuarantee) -> Self {
        self.guarantee = guarantee;
        self
    }

    /// The prefix of the transactional ids (required for exactly-once; unique per job).
    pub fn set_transactional_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// A producer property passed to librdkafka (e.g. `transaction.timeout.ms`,
    /// `compression.type`, `linger.ms`).
    pub fn set_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.props.set(key, value);
        self
    }

    /// The sink, or the error that names what is missing.
    pub fn build<T>(self) -> Result<KafkaSink<T, S>>
    where
        S: KafkaRecordSerializationSchema<T>,
    {
        let bootstrap = self
            .bootstrap
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| crate::anyhow!("KafkaSink: the bootstrap servers are not set"))?;
        let prefix = match (self.guarantee, self.prefix) {
            (DeliveryGuarantee::ExactlyOnce, None) => crate::bail!(
                "KafkaSink: EXACTLY_ONCE delivery needs a transactional id prefix (set_transactional_id_prefix), unique among the jobs writing to the cluster"
            ),
            (_, p) => p.unwrap_or_default(),
        };
        if prefix.contains(char::is_whitespace) {
            crate::bail!("KafkaSink: the transactional id prefix '{prefix}' contains whitespace");
        }
        Ok(KafkaSink {
            config: Arc::new(Config {
                bootstrap,
                props: self.props,
                guarantee: self.guarantee,
                prefix,
                prepared: Mutex::default(),
            }),
            serializer: self.serializer,
            _t: PhantomData,
        })
    }
}

impl Config {
    fn transactional_id(&self, subtask: u32, n: u64) -> String {
        format!("{}-{subtask}-{n}", self.prefix)
    }

    fn producer(&self, transactional_id: Option<&str>) -> Result<(KafkaProducer, DeliveryContext)> {
        let mut fixed = vec![("bootstrap.servers", self.bootstrap.as_str())];
        if self.guarantee != DeliveryGuarantee::None {
            fixed.push(("acks", "all"));
            fixed.push(("enable.idempotence", "true"));
        }
        let mut config = self.props.config(&fixed);
        if let Some(id) = transactional_id {
            config.set("transactional.id", id);
            if self.props.get("transaction.timeout.ms").is_none() {
                config.set("transaction.timeout.ms", DEFAULT_TRANSACTION_TIMEOUT_MS);
            }
        }
        let ctx = DeliveryContext::default();
        let producer: KafkaProducer = config
            .create_with_context(ctx.clone())
            .map_err(|e| kafka_error("KafkaSink: cannot create a producer", e))?;
        Ok((producer, ctx))
    }

    fn transaction_timeout_ms(&self) -> i32 {
        self.props
            .get("transaction.timeout.ms")
            .unwrap_or(DEFAULT_TRANSACTION_TIMEOUT_MS)
            .parse()
            .unwrap_or(i32::MAX)
    }

    /// A transactional producer with its transactions initialized (which aborts what an
    /// earlier producer of the id left open).
    fn transactional_producer(&self, id: &str) -> Result<(KafkaProducer, DeliveryContext)> {
        let (p, ctx) = self.producer(Some(id))?;
        p.init_transactions(FLUSH_TIMEOUT)
            .map_err(|e| self.transaction_error(id, "cannot initialize transactions", e))?;
        Ok((p, ctx))
    }

    fn transaction_error(&self, id: &str, what: &str, e: KafkaError) -> anyhow::Error {
        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::InvalidTransactionTimeout) {
            return self.timeout_too_large();
        }
        crate::anyhow!("KafkaSink: {what} for transactional id '{id}': {e}")
    }

    fn timeout_too_large(&self) -> anyhow::Error {
        crate::anyhow!(
            "KafkaSink: transaction.timeout.ms = {} is larger than the broker allows (its transaction.max.timeout.ms, 900000 by default); set a smaller transaction.timeout.ms",
            self.transaction_timeout_ms()
        )
    }

    /// Aborts what earlier attempts left open under this subtask's transactional ids: those
    /// after the restored checkpoint and before this attempt's first. A job that did not
    /// restore (or restored another job's snapshot) may find the ids of a crashed run with
    /// the same prefix after that: they are aborted up to the first id never used.
    fn abort_lingering(&self, ctx: &SinkContext) -> Result<()> {
        let cluster = Cluster::new(&self.bootstrap);
        let from = ctx.restored_checkpoint.map_or(1, |r| r + 1);
        let known_end = ctx.first_checkpoint;
        let timeout = self.transaction_timeout_ms();
        let mut n = from;
        let mut probes = 0;
        while probes < MAX_LINGERING_PROBES {
            let id = self.transactional_id(ctx.subtask, n);
            let (code, producer) = cluster.init_producer_id(&id, timeout)?;
            match code {
                ErrorCode::None => {}
                ErrorCode::InvalidTransactionTimeout => return Err(self.timeout_too_large()),
                other => crate::bail!(
                    "KafkaSink: cannot abort the transactions left under transactional id '{id}' ({other:?})"
                ),
            }
            // Epoch 0: the id was never used, so no later one of this run was either.
            if producer.epoch == 0 && n >= known_end {
                break;
            }
            n += 1;
            probes += 1;
        }
        if probes == MAX_LINGERING_PROBES {
            tracing::warn!(
                "KafkaSink: stopped looking for lingering transactions after {probes} transactional ids; later ones time out at the broker"
            );
        }
        Ok(())
    }

    /// Commits a transaction whose producer is not in this process.
    fn resume_commit(&self, c: &KafkaCommittable) -> Result<()> {
        let cluster = Cluster::new(&self.bootstrap);
        let Some(producer) = cluster.batch_producer(&c.topic, c.partition, c.offset)? else {
            return Err(CommittableLost(format!(
                "KafkaSink: transaction '{}' cannot be committed: its first record ({} partition {} offset {}) is not in a transactional batch of the log any more",
                c.transactional_id, c.topic, c.partition, c.offset
            ))
            .into());
        };
        match cluster.end_txn(&c.transactional_id, producer, true)? {
            ErrorCode::None => Ok(()),
            // A later producer of the id exists: it initialized after this transaction was
            // completed (an open transaction is aborted only by recovery, which runs after
            // the restored checkpoint's commits). Flink's committer decides the same.
            ErrorCode::Fenced | ErrorCode::UnknownProducer => {
                tracing::debug!(
                    "Kafka transaction '{}' was completed before (its producer was fenced)",
                    c.transactional_id
                );
                Ok(())
            }
            ErrorCode::InvalidTxnState => Err(CommittableLost(format!(
                "KafkaSink: transaction '{}' was aborted before its checkpoint's commit",
                c.transactional_id
            ))
            .into()),
            code => crate::bail!(
                "KafkaSink: committing transaction '{}' failed ({code:?})",
                c.transactional_id
            ),
        }
    }
}

impl<T: 'static, S: KafkaRecordSerializationSchema<T>> TwoPhaseCommitSink<T> for KafkaSink<T, S> {
    type Committable = KafkaCommittable;
    type Writer = KafkaWriter<T, S>;

    fn name(&self) -> String {
        "KafkaSink".into()
    }

    fn create_writer(&self, ctx: &SinkContext) -> Result<KafkaWriter<T, S>> {
        let config = &self.config;
        let plain = if config.guarantee == DeliveryGuarantee::ExactlyOnce {
            // What an earlier attempt in this process pre-committed after the restored
            // checkpoint is aborted below; its producers go.
            config
                .prepared
                .lock_ok()
                .retain(|_, (subtask, _)| *subtask != ctx.subtask);
            config.abort_lingering(ctx)?;
            None
        } else {
            Some(config.producer(None)?)
        };
        Ok(KafkaWriter {
            config: Arc::clone(config),
            serializer: self.serializer.clone(),
            record: ProducerRecord::default(),
            subtask: ctx.subtask,
            next_txn: ctx.first_checkpoint,
            plain,
            txn: None,
            _t: PhantomData,
        })
    }

    fn commit(&self, committables: &[KafkaCommittable]) -> Result<()> {
        let config = &self.config;
        for c in committables {
            let live = config.prepared.lock_ok().remove(&c.transactional_id);
            match live {
                Some((subtask, p)) => {
                    if let Err(e) = p.commit_transaction(FLUSH_TIMEOUT) {
                        // Keep it for the retry at the next completed checkpoint.
                        let err = config.transaction_error(&c.transactional_id, "cannot commit", e);
                        config
                            .prepared
                            .lock_ok()
                            .insert(c.transactional_id.clone(), (subtask, p));
                        return Err(err);
                    }
                }
                None => config.resume_commit(c)?,
            }
        }
        Ok(())
    }

    /// Lingering transactions are aborted by every subtask when its writer starts (see the
    /// module docs), for restored jobs too; nothing is left to do here.
    fn recover(&self, _ctx: &SinkContext, _keep: &[KafkaCommittable]) -> Result<()> {
        Ok(())
    }
}

/// The open transaction of an exactly-once writer.
struct Txn {
    id: String,
    producer: KafkaProducer,
    deliveries: DeliveryContext,
}

/// One subtask of a [`KafkaSink`].
pub struct KafkaWriter<T, S> {
    config: Arc<Config>,
    serializer: S,
    record: ProducerRecord,
    subtask: u32,
    /// The checkpoint the next transaction's records belong to (its id's `n`).
    next_txn: u64,
    /// The producer without transactions (none and at-least-once).
    plain: Option<(KafkaProducer, DeliveryContext)>,
    /// The transaction in progress (exactly-once), begun at its first record.
    txn: Option<Txn>,
    _t: PhantomData<fn(&T)>,
}

impl<T: 'static, S: KafkaRecordSerializationSchema<T>> KafkaWriter<T, S> {
    fn begin(&mut self) -> Result<()> {
        let id = self.config.transactional_id(self.subtask, self.next_txn);
        let (producer, deliveries) = self.config.transactional_producer(&id)?;
        producer.begin_transaction().map_err(|e| {
            self.config
                .transaction_error(&id, "cannot begin a transaction", e)
        })?;
        deliveries.0.reset();
        self.txn = Some(Txn {
            id,
            producer,
            deliveries,
        });
        Ok(())
    }

    fn check_deliveries(d: &DeliveryContext) -> Result<()> {
        match d.0.take_error() {
            Some(e) => Err(crate::anyhow!("{e}")),
            None => Ok(()),
        }
    }
}

impl<T: 'static, S: KafkaRecordSerializationSchema<T>> PreCommitWriter<T, KafkaCommittable>
    for KafkaWriter<T, S>
{
    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.config.guarantee == DeliveryGuarantee::ExactlyOnce && self.txn.is_none() {
            self.begin()?;
        }
        let (producer, deliveries) = match (&self.plain, &self.txn) {
            (Some((p, d)), _) => (p, d),
            (None, Some(t)) => (&t.producer, &t.deliveries),
            (None, None) => crate::bail!("KafkaSink: the writer has no producer"),
        };
        for element in batch.drain(..) {
            self.record.value.clear();
            self.serializer
                .serialize(&element, &mut self.record)
                .map_err(|e| crate::anyhow!("KafkaSink: cannot serialize a record: {e}"))?;
            let r = &self.record;
            loop {
                let mut out = BaseRecord::to(&r.topic).payload(&r.value[..]);
                if let Some(k) = &r.key {
                    out = out.key(&k[..]);
                }
                match producer.send(out) {
                    Ok(()) => break,
                    // librdkafka's queue is full: serve delivery reports until there is room.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => {
                        return Err(kafka_error(
                            format_args!("KafkaSink: cannot send a record to topic {}", r.topic),
                            e,
                        ))
                    }
                }
            }
        }
        producer.poll(Duration::ZERO);
        Self::check_deliveries(deliveries)
    }

    fn prepare_commit(&mut self, checkpoint_id: u64) -> Result<Vec<KafkaCommittable>> {
        match self.config.guarantee {
            // Only at the end of the input: dropping a producer discards what it buffers.
            DeliveryGuarantee::None if checkpoint_id != u64::MAX => Ok(Vec::new()),
            DeliveryGuarantee::None | DeliveryGuarantee::AtLeastOnce => {
                let Some((p, d)) = self.plain.as_ref() else {
                    return Ok(Vec::new());
                };
                p.flush(FLUSH_TIMEOUT)
                    .map_err(|e| kafka_error("KafkaSink: flushing at the checkpoint failed", e))?;
                Self::check_deliveries(d)?;
                Ok(Vec::new())
            }
            DeliveryGuarantee::ExactlyOnce => {
                self.next_txn = self.next_txn.max(checkpoint_id.saturating_add(1));
                let Some(txn) = self.txn.take() else {
                    return Ok(Vec::new());
                };
                txn.producer.flush(FLUSH_TIMEOUT).map_err(|e| {
                    self.config
                        .transaction_error(&txn.id, "flushing the transaction failed", e)
                })?;
                Self::check_deliveries(&txn.deliveries)?;
                let first = txn.deliveries.0.first.lock_ok().take();
                let Some((topic, partition, offset)) = first else {
                    // Nothing reached the log: there is nothing to commit.
                    let _ = txn.producer.abort_transaction(FLUSH_TIMEOUT);
                    return Ok(Vec::new());
                };
                let c = KafkaCommittable {
                    transactional_id: txn.id.clone(),
                    topic,
                    partition,
                    offset,
                };
                self.config
                    .prepared
                    .lock_ok()
                    .insert(txn.id, (self.subtask, txn.producer));
                Ok(vec![c])
            }
        }
    }
}
