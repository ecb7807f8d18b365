//! An S3-compatible object store for tests: the `s3s-fs` server (pinned 0.14.1, installed by
//! `scripts/test-tools.sh`) over a temporary directory, one per test, killed by PID when
//! dropped. A bucket is a directory of its root, so tests check what was stored on disk.
//!
//! ```no_run
//! let s3 = floe_testkit::s3::S3Server::start().unwrap();
//! let dir = s3.url("ck"); // s3://floe/ck
//! let args = s3.floe_args(); // -D s3.endpoint=… -D s3.access-key=… …
//! # let _ = (dir, args);
//! ```

use anyhow::{bail, Context as _, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key every test server accepts.
pub const ACCESS_KEY: &str = "floe-test-access";
/// The secret key every test server accepts.
pub const SECRET_KEY: &str = "floe-test-secret";
/// The bucket [`S3Server::start`] creates.
pub const BUCKET: &str = "floe";

/// Where `scripts/test-tools.sh` installs `s3s-fs`:
/// `${FLOE_TOOLS:-$HOME/.cache/floe-tools}/bin/s3s-fs`. An error (saying to run the script)
/// when it is not there: tests that need S3 fail rather than skip.
pub fn binary() -> Result<PathBuf> {
    crate::tool("s3s-fs", "the test S3 server (s3s-fs 0.14.1)")
}

/// The arguments `s3s-fs` is started with to serve `root` on `host:port` with the test keys.
pub fn args(host: IpAddr, port: u16, root: &Path) -> Vec<String> {
    vec![
        "--host".into(),
        host.to_string(),
        "--port".into(),
        port.to_string(),
        "--access-key".into(),
        ACCESS_KEY.into(),
        "--secret-key".into(),
        SECRET_KEY.into(),
        root.display().to_string(),
    ]
}

/// A running `s3s-fs` and its data directory.
pub struct S3Server {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl S3Server {
    /// Starts a server on 127.0.0.1 with bucket [`BUCKET`].
    pub fn start() -> Result<S3Server> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Starts a server listening on `host` (an address of this network namespace).
    pub fn start_on(host: IpAddr) -> Result<S3Server> {
        Self::start_with(host, &[])
    }

    /// Starts a server on `host` with `wrapper` before the command, e.g.
    /// `["ip", "netns", "exec", "<namespace>"]` to run it inside a network namespace
    /// (`ip netns exec` execs the server, so the PID killed on drop is the server's).
    pub fn start_with(host: IpAddr, wrapper: &[&str]) -> Result<S3Server> {
        let bin = binary()?;
        let dir = tempfile::Builder::new().prefix("floe-s3-").tempdir()?;
        std::fs::create_dir(dir.path().join(BUCKET))?;
        // A free port where the server will listen (bound, read, released).
        let port = if wrapper.is_empty() {
            TcpListener::bind((host, 0))
                .with_context(|| format!("cannot bind {host}:0"))?
                .local_addr()?
                .port()
        } else {
            // Another namespace: any port is free there; pick one from the dynamic range.
            20000 + (std::process::id() % 20000) as u16
        };
        let addr = SocketAddr::new(host, port);
        let mut cmd = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.args(args(host, port, dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut server = S3Server { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("s3s-fs exited with {status} before listening on {addr}");
            }
            if Instant::now() > deadline {
                bail!("s3s-fs did not listen on {addr} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://host:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bucket tests write to.
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// `s3://<bucket>/<key>`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{BUCKET}/{key}")
    }

    /// The directory the server stores its buckets in.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Where object `key` of the bucket is on disk.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.dir.path().join(BUCKET).join(key)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Floe's settings for this server (Flink's `s3.*` keys) as `key=value`.
    pub fn settings(&self) -> Vec<String> {
        vec![
            format!("s3.endpoint={}", self.endpoint()),
            format!("s3.access-key={ACCESS_KEY}"),
            format!("s3.secret-key={SECRET_KEY}"),
            "s3.path.style.access=true".into(),
            "s3.endpoint.region=us-east-1".into(),
        ]
    }

    /// [`S3Server::settings`] as `floe` / job binary arguments: `-D k=v` pairs.
    pub fn floe_args(&self) -> Vec<String> {
        self.settings()
            .into_iter()
            .flat_map(|s| ["-D".to_string(), s])
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
