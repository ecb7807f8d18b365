//! A cluster of task managers on several hosts (Flink's session cluster): the messages
//! between its processes ([`protocol`]), slot placement ([`slots`]), job binaries shipped
//! as content-addressed blobs ([`blob`]), the job manager's resource manager and blob server
//! ([`resource_manager`]), and the launcher a per-job job manager uses to run its worker
//! processes in task managers' slots ([`RemoteLauncher`]).

pub mod blob;
pub mod launcher;
pub mod protocol;
pub mod resource_manager;
pub mod slots;

pub use launcher::{RemoteLauncher, TaskManagerUnreachable, BLOB_ENV, RPC_ENV};
pub use protocol::TaskManagerId;

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// `host:port`, with an IPv6 host in brackets.
pub fn join_host_port(host: &str, port: u32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The host of `host:port` (brackets of an IPv6 host removed).
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Connects to `addr` (`host:port`) within `timeout`, trying each of its addresses, with
/// [`crate::wire::configure_socket`]'s options: every connection between hosts needs them.
pub fn connect(addr: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other(format!("{addr} resolves to no address"));
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                crate::wire::configure_socket(&s, timeout)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_helpers() {
        assert_eq!(join_host_port("10.0.0.1", 6123), "10.0.0.1:6123");
        assert_eq!(join_host_port("::1", 0), "[::1]:0");
        assert_eq!(host_of("[::1]:5"), "::1");
        assert_eq!(host_of("jm.example:6123"), "jm.example");
    }
}
