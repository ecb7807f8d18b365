//! Flink's `socketTextStream`: lines from a TCP server, parallelism 1.
//!
//! A socket cannot be rewound, so records received after the last checkpoint are lost on a
//! restart (as in Flink); every attempt opens a new connection. When the server closes the
//! connection the source ends.
//!
//! Lines must be UTF-8. Unlike Flink's socket source, which decodes with the platform
//! charset and silently replaces bad bytes, invalid UTF-8 fails the source with an error
//! naming the connection and the byte offset, so no record is changed without notice.

use super::{Source, SourceContext, SourceReader, SourceStatus};
use crate::Result;
use crossbeam_channel::{unbounded, Receiver, TryRecvError};
use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Reads `\n`-delimited lines from `host:port`.
#[derive(Clone, Debug)]
pub struct SocketTextSource {
    host: String,
    port: u16,
}

impl SocketTextSource {
    /// A source reading from `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        SocketTextSource {
            host: host.into(),
            port,
        }
    }
}

enum Msg {
    Lines(Vec<String>),
    End(Option<String>),
}

impl Source<String> for SocketTextSource {
    fn name(&self) -> String {
        "Socket Stream".into()
    }
    fn max_parallelism(&self) -> Option<u32> {
        Some(1)
    }
    fn create(&self, ctx: SourceContext) -> Result<Box<dyn SourceReader<String>>> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| {
                crate::anyhow!(
                    "cannot resolve socket source address {}:{}: {e}",
                    self.host,
                    self.port
                )
            })?
            .next()
            .ok_or_else(|| {
                crate::anyhow!(
                    "socket source address {}:{} resolves to nothing",
                    self.host,
                    self.port
                )
            })?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| {
            crate::anyhow!(
                "cannot connect to socket source {}:{}: {e}",
                self.host,
                self.port
            )
        })?;
        tracing::info!("Connecting to server socket {}:{}", self.host, self.port);
        let shutdown = stream.try_clone()?;
        let (tx, rx) = unbounded();
        let waker = ctx.waker.clone();
        let peer = format!("{}:{}", self.host, self.port);
        std::thread::Builder::new()
            .name("floe-socket-source".into())
            .spawn(move || {
                let mut r = BufReader::new(stream);
                // Bytes of the connection read so far: where a bad line starts.
                let mut offset: u64 = 0;
                loop {
                    let mut batch = Vec::new();
                    let end = loop {
                        let mut bytes = Vec::new();
                        match r.read_until(b'\n', &mut bytes) {
                            Ok(0) => break Some(None),
                            Ok(n) => {
                                let start = offset;
                                offset += n as u64;
                                let mut line = match String::from_utf8(bytes) {
                                    Ok(l) => l,
                                    Err(e) => {
                                        let at = start + e.utf8_error().valid_up_to() as u64;
                                        break Some(Some(format!(
                                            "socket source {peer}: invalid UTF-8 at byte offset {at} of the connection (in the line starting at byte offset {start})"
                                        )));
                                    }
                                };
                                if line.ends_with('\n') {
                                    line.pop();
                                    if line.ends_with('\r') {
                                        line.pop();
                                    }
                                }
                                batch.push(line);
                                if r.buffer().is_empty() || batch.len() >= 4096 {
                                    break None;
                                }
                            }
                            Err(e) => {
                                break Some(Some(format!(
                                    "socket source {peer}: read failed at byte offset {offset} of the connection: {e}"
                                )))
                            }
                        }
                    };
                    if !batch.is_empty() && tx.send(Msg::Lines(batch)).is_err() {
                        return;
                    }
                    if let Some(err) = end {
                        let _ = tx.send(Msg::End(err));
                        waker.wake();
                        return;
                    }
                    waker.wake();
                }
            })?;
        Ok(Box::new(SocketReader { rx, shutdown }))
    }
}

struct SocketReader {
    rx: Receiver<Msg>,
    shutdown: TcpStream,
}

impl Drop for SocketReader {
    fn drop(&mut self) {
        // Unblocks the reader thread so it exits with the attempt.
        let _ = self.shutdown.shutdown(Shutdown::Both);
    }
}

impl SourceReader<String> for SocketReader {
    fn poll_next(&mut self, out: &mut Vec<String>, max: usize) -> Result<SourceStatus> {
        while out.len() < max {
            match self.rx.try_recv() {
                Ok(Msg::Lines(mut l)) => out.append(&mut l),
                Ok(Msg::End(None)) => return Ok(SourceStatus::Finished),
                Ok(Msg::End(Some(e))) => crate::bail!(e),
                Err(TryRecvError::Empty) => {
                    return Ok(if out.is_empty() {
                        SourceStatus::Idle
                    } else {
                        SourceStatus::Ready
                    })
                }
                Err(TryRecvError::Disconnected) => return Ok(SourceStatus::Finished),
            }
        }
        Ok(SourceStatus::Ready)
    }
    fn snapshot(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
}
