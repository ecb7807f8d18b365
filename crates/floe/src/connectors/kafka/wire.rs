//! The Kafka requests the exactly-once sink needs and librdkafka does not expose, over the
//! Kafka wire protocol (`kafka-protocol` encodes and decodes the messages).
//!
//! Committing a transaction after a crash needs its producer id and epoch, which only the
//! dead producer knew: Flink's connector reads them out of the Java client by reflection and
//! resumes the transaction; here they are read from the header of the record batch that
//! holds the transaction's first record ([`Cluster::batch_producer`]), and the commit is an
//! `EndTxn` to the transaction coordinator ([`Cluster::end_txn`]). Aborting the lingering
//! transactions of a crashed attempt uses `InitProducerId` ([`Cluster::init_producer_id`]),
//! whose epoch also says whether a transactional id was ever used.
//!
//! Connections are blocking and short-lived: these requests run only when a job starts or
//! recovers, never on the record path.

use crate::Result;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{fetch_request, metadata_request};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, EndTxnRequest, FetchRequest,
    FindCoordinatorRequest, InitProducerIdRequest, MetadataRequest, ProducerId, RequestHeader,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
pub use kafka_protocol::records::Record;
use kafka_protocol::records::RecordBatchDecoder;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Kafka's error codes the sink decides on (the protocol's numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    None,
    /// `COORDINATOR_LOAD_IN_PROGRESS`, `COORDINATOR_NOT_AVAILABLE`, `NOT_COORDINATOR`,
    /// `CONCURRENT_TRANSACTIONS`: retry (after looking the coordinator up again).
    Retriable,
    /// `INVALID_PRODUCER_EPOCH` / `PRODUCER_FENCED`: a newer producer of the transactional
    /// id exists, so this transaction was completed before it started.
    Fenced,
    /// `INVALID_PRODUCER_ID_MAPPING`: the coordinator no longer knows the transactional id.
    UnknownProducer,
    /// `INVALID_TRANSACTION_TIMEOUT`: larger than the broker's `transaction.max.timeout.ms`.
    InvalidTransactionTimeout,
    /// `INVALID_TXN_STATE`: e.g. committing a transaction that was aborted.
    InvalidTxnState,
    /// `OFFSET_OUT_OF_RANGE`: the record is no longer (or not yet) in the log.
    OffsetOutOfRange,
    Other(i16),
}

impl ErrorCode {
    pub(crate) fn from_code(code: i16) -> ErrorCode {
        match code {
            0 => ErrorCode::None,
            1 => ErrorCode::OffsetOutOfRange,
            14..=16 | 51 => ErrorCode::Retriable,
            47 | 90 => ErrorCode::Fenced,
            48 => ErrorCode::InvalidTxnState,
            49 => ErrorCode::UnknownProducer,
            50 => ErrorCode::InvalidTransactionTimeout,
            c => ErrorCode::Other(c),
        }
    }
}

/// A transactional producer's identity at the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProducerIdentity {
    pub id: i64,
    pub epoch: i16,
}

/// One broker connection.
struct Connection {
    stream: TcpStream,
    addr: String,
    correlation: i32,
    /// The highest version of each API the broker supports.
    versions: HashMap<i16, i16>,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl Connection {
    fn open(addr: &str) -> Result<Connection> {
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| crate::anyhow!("cannot resolve Kafka broker {addr}: {e}"))?
            .next()
            .ok_or_else(|| crate::anyhow!("Kafka broker {addr} resolves to no address"))?;
        let stream = TcpStream::connect_timeout(&sock, TIMEOUT)
            .map_err(|e| crate::anyhow!("cannot connect to Kafka broker {addr}: {e}"))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut c = Connection {
            stream,
            addr: addr.to_string(),
            correlation: 0,
            versions: HashMap::new(),
        };
        // Version 0 is answered by every broker and needs no negotiation.
        let v: ApiVersionsResponse = c.send_at(ApiVersionsRequest::default(), 0)?;
        if v.error_code != 0 {
            crate::bail!(
                "Kafka broker {addr} refused ApiVersions (error {})",
                v.error_code
            );
        }
        c.versions = v
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.max_version))
            .collect();
        Ok(c)
    }

    /// The version to speak: the highest both sides support, at most `cap`.
    fn version<R: Request>(&self, cap: i16) -> Result<i16> {
        let broker = *self.versions.get(&R::KEY).ok_or_else(|| {
            crate::anyhow!(
                "Kafka broker {} does not support API {} (needed to resume transactions)",
                self.addr,
                R::KEY
            )
        })?;
        Ok(broker.min(R::VERSIONS.max).min(cap))
    }

    fn send<R: Request>(&mut self, req: R, cap: i16) -> Result<R::Response> {
        let version = self.version::<R>(cap)?;
        self.send_at(req, version)
    }

    fn send_at<R: Request>(&mut self, req: R, version: i16) -> Result<R::Response> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("floe")));
        let mut buf = BytesMut::new();
        buf.put_i32(0); // the size, filled in below
        let encoded = header
            .encode(&mut buf, R::header_version(version))
            .and_then(|()| req.encode(&mut buf, version));
        encoded.map_err(|e| crate::anyhow!("cannot encode Kafka request {}: {e}", R::KEY))?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        let io = |e: std::io::Error| crate::anyhow!("Kafka broker {}: {e}", self.addr);
        self.stream.write_all(&buf).map_err(io)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(io)?;
        let len = i32::from_be_bytes(len);
        if !(4..=256 << 20).contains(&len) {
            crate::bail!("Kafka broker {} sent a response of {len} bytes", self.addr);
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body).map_err(io)?;
        let mut body = Bytes::from(body);
        let decoded = kafka_protocol::messages::ResponseHeader::decode(
            &mut body,
            R::Response::header_version(version),
        )
        .and_then(|h| {
            if h.correlation_id != self.correlation {
                anyhow::bail!(
                    "correlation id {} for {}",
                    h.correlation_id,
                    self.correlation
                );
            }
            R::Response::decode(&mut body, version)
        });
        decoded.map_err(|e| {
            crate::anyhow!(
                "cannot decode the response of Kafka broker {} to request {}: {e}",
                self.addr,
                R::KEY
            )
        })
    }
}

/// The brokers of a cluster, reached through the bootstrap servers.
pub struct Cluster {
    bootstrap: String,
}

impl Cluster {
    /// The cluster that `bootstrap` (`host:port[,host:port…]`) belongs to. Connects lazily.
    pub fn new(bootstrap: &str) -> Cluster {
        Cluster {
            bootstrap: bootstrap.to_string(),
        }
    }

    /// A connection to the first bootstrap server that answers.
    fn any(&self) -> Result<Connection> {
        let mut last = None;
        for addr in self
            .bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match Connection::open(addr) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| crate::anyhow!("no Kafka bootstrap servers are set")))
    }

    /// A connection to the transaction coordinator of `transactional_id`.
    fn coordinator(&self, transactional_id: &str) -> Result<Connection> {
        let mut c = self.any()?;
        let mut req = FindCoordinatorRequest::default().with_key_type(1);
        let v = c.version::<FindCoordinatorRequest>(4)?;
        if v >= 4 {
            req.coordinator_keys = vec![StrBytes::from_string(transactional_id.to_string())];
        } else {
            req.key = StrBytes::from_string(transactional_id.to_string());
        }
        let resp = c.send_at(req, v)?;
        let (code, host, port) = match resp.coordinators.first() {
            Some(k) => (k.error_code, k.host.to_string(), k.port),
            None => (resp.error_code, resp.host.to_string(), resp.port),
        };
        if code != 0 {
            crate::bail!(
                "Kafka found no transaction coordinator for transactional id '{transactional_id}' (error {code})"
            );
        }
        Connection::open(&format!("{host}:{port}"))
    }

    /// Retries `f` while the coordinator answers with a retriable error.
    fn with_coordinator<T>(
        &self,
        transactional_id: &str,
        mut f: impl FnMut(&mut Connection) -> Result<(ErrorCode, T)>,
    ) -> Result<(ErrorCode, T)> {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let mut c = self.coordinator(transactional_id)?;
            let (code, v) = f(&mut c)?;
            if code != ErrorCode::Retriable || std::time::Instant::now() > deadline {
                return Ok((code, v));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `InitProducerId` for `transactional_id`: aborts its open transaction, if any, and
    /// fences its producer; the new identity's epoch is 0 exactly when the id was never used.
    pub(crate) fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
    ) -> Result<(ErrorCode, ProducerIdentity)> {
        self.with_coordinator(transactional_id, |c| {
            let req = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
                    transactional_id.to_string(),
                ))))
                .with_transaction_timeout_ms(timeout_ms)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let r = c.send(req, 4)?;
            Ok((
                ErrorCode::from_code(r.error_code),
                ProducerIdentity {
                    id: r.producer_id.0,
                    epoch: r.producer_epoch,
                },
            ))
        })
    }

    /// `EndTxn`: commits (or aborts) the transaction of `producer`.
    pub(crate) fn end_txn(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        commit: bool,
    ) -> Result<ErrorCode> {
        let (code, ()) = self.with_coordinator(transactional_id, |c| {
            let req = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    transactional_id.to_string(),
                )))
                .with_producer_id(ProducerId(producer.id))
                .with_producer_epoch(producer.epoch)
                .with_committed(commit);
            // Version 5 (KIP-890) changes the epoch rules; 4 is what librdkafka speaks.
            let r = c.send(req, 4)?;
            Ok((ErrorCode::from_code(r.error_code), ()))
        })?;
        Ok(code)
    }

    /// Fetches from `offset` of `topic`/`partition`, uncommitted records included (the
    /// transaction may be open): the raw record batches and the high watermark.
    fn fetch(&self, topic: &str, partition: i32, offset: i64) -> Result<(ErrorCode, Bytes, i64)> {
        let mut leader = self.leader(topic, partition)?;
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_min_bytes(0)
            .with_max_bytes(4 << 20)
            .with_isolation_level(0)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(4 << 20)])]);
        // From version 13 fetches name topics by id; the name is what the sink has.
        let resp = leader.send(req, 12)?;
        if resp.error_code != 0 {
            crate::bail!(
                "Kafka fetch of {topic}/{partition} failed (error {})",
                resp.error_code
            );
        }
        let data = resp
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| crate::anyhow!("Kafka returned no data for {topic}/{partition}"))?;
        Ok((
            ErrorCode::from_code(data.error_code),
            data.records.clone().unwrap_or_default(),
            data.high_watermark,
        ))
    }

    /// The producer that wrote the record batch holding `offset` of `topic`/`partition`:
    /// `Ok(None)` when the offset is no longer in the log or not in a transactional batch.
    pub(crate) fn batch_producer(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<ProducerIdentity>> {
        let (code, mut records, _) = self.fetch(topic, partition, offset)?;
        match code {
            ErrorCode::None => {}
            ErrorCode::OffsetOutOfRange => return Ok(None),
            code => crate::bail!("Kafka fetch of {topic}/{partition} failed ({code:?})"),
        }
        let batches = RecordBatchDecoder::decode_batch_info(&mut records).map_err(|e| {
            crate::anyhow!("cannot decode a record batch of {topic}/{partition}: {e}")
        })?;
        Ok(batches
            .into_iter()
            .find(|b| {
                b.min_offset <= offset && offset < b.min_offset + i64::from(b.record_count.max(1))
            })
            .filter(|b| b.transactional)
            .map(|b| ProducerIdentity {
                id: b.producer_id,
                epoch: b.producer_epoch,
            }))
    }

    /// Every record of `topic`/`partition` up to the high watermark as the log holds it:
    /// transactional records of open, committed and aborted transactions, and the control
    /// records (commit and abort markers) that end them. For inspecting what a sink wrote;
    /// a `read_committed` consumer is what applications use.
    pub fn read_log(&self, topic: &str, partition: i32) -> Result<Vec<Record>> {
        let mut out: Vec<Record> = Vec::new();
        let mut offset = 0;
        loop {
            let (code, mut records, high) = self.fetch(topic, partition, offset)?;
            if code != ErrorCode::None {
                crate::bail!("Kafka fetch of {topic}/{partition} at {offset} failed ({code:?})");
            }
            let before = out.len();
            for set in RecordBatchDecoder::decode_all(&mut records).map_err(|e| {
                crate::anyhow!("cannot decode the records of {topic}/{partition}: {e}")
            })? {
                out.extend(set.records.into_iter().filter(|r| r.offset >= offset));
            }
            match out.last() {
                Some(r) if out.len() > before => offset = r.offset + 1,
                _ => return Ok(out),
            }
            if offset >= high {
                return Ok(out);
            }
        }
    }

    /// A connection to the leader of `topic`/`partition`.
    fn leader(&self, topic: &str, partition: i32) -> Result<Connection> {
        let mut c = self.any()?;
        let req = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
        let resp = c.send(req, 12)?;
        let leader = resp
            .topics
            .iter()
            .filter(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .map(|p| p.leader_id)
            .ok_or_else(|| crate::anyhow!("Kafka topic {topic} has no partition {partition}"))?;
        let broker = resp
            .brokers
            .iter()
            .find(|b| b.node_id == leader)
            .ok_or_else(|| crate::anyhow!("the leader of {topic}/{partition} is not known"))?;
        Connection::open(&format!("{}:{}", broker.host.as_str(), broker.port))
    }
}
