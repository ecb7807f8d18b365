//! The sockets between the worker processes of one attempt, which then form one timely
//! cluster (`initialize_networking_from_sockets`).
//!
//! Floe connects them itself instead of timely's `create_sockets`, which retries once a
//! second forever, identifies a peer by nothing but its index and sets no socket options:
//!
//! - the topology is timely's: process `i` connects to every `j < i` (retrying every 50 ms
//!   until a deadline) and accepts from every `j > i`;
//! - both ends send a handshake `[magic, job id, attempt, nonce, index]` and refuse a
//!   mismatch, so a stale process of an older attempt (or of another job) that reaches a
//!   listener is turned away instead of joining, or breaking, the new cluster. The nonce is
//!   fresh for every attempt, chosen by the job manager;
//! - every socket gets [`crate::wire::configure_socket`] (`TCP_NODELAY`, keepalive,
//!   `TCP_USER_TIMEOUT`), so a vanished host fails the attempt within about
//!   `taskmanager.network.tcp-user-timeout` instead of hanging it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// First word of every handshake ("floemesh").
const MAGIC: u64 = 0x666c_6f65_6d65_7368;
const HANDSHAKE_LEN: usize = 8 + 16 + 4 + 8 + 4;
/// How often a connection to a lower process is retried while it is not listening yet.
const RETRY: Duration = Duration::from_millis(50);

/// Which cluster a socket belongs to: both ends must agree on all of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeshId {
    /// The job's id (32 hex characters, as a number).
    pub job: u128,
    /// The attempt.
    pub attempt: u32,
    /// The attempt's random nonce, from the job manager.
    pub nonce: u64,
}

impl MeshId {
    /// The mesh of `attempt` of job `job_id` (32 hex characters).
    pub fn new(job_id: &str, attempt: u32, nonce: u64) -> crate::Result<Self> {
        let job = u128::from_str_radix(job_id, 16)
            .map_err(|e| crate::anyhow!("invalid job id '{job_id}': {e}"))?;
        Ok(MeshId {
            job,
            attempt,
            nonce,
        })
    }

    fn encode(&self, index: u32) -> [u8; HANDSHAKE_LEN] {
        let mut b = [0u8; HANDSHAKE_LEN];
        b[0..8].copy_from_slice(&MAGIC.to_be_bytes());
        b[8..24].copy_from_slice(&self.job.to_be_bytes());
        b[24..28].copy_from_slice(&self.attempt.to_be_bytes());
        b[28..36].copy_from_slice(&self.nonce.to_be_bytes());
        b[36..40].copy_from_slice(&index.to_be_bytes());
        b
    }

    /// The peer's index when `b` is a handshake of this mesh.
    fn check(&self, b: &[u8; HANDSHAKE_LEN]) -> Result<u32, Refused> {
        let word = |r: std::ops::Range<usize>| b[r].iter().fold(0u128, |a, x| a << 8 | *x as u128);
        if word(0..8) as u64 != MAGIC {
            return Err(Refused::NotFloe);
        }
        if word(8..24) != self.job {
            return Err(Refused::OtherJob);
        }
        let attempt = word(24..28) as u32;
        if attempt != self.attempt {
            return Err(Refused::OtherAttempt { attempt });
        }
        if word(28..36) as u64 != self.nonce {
            return Err(Refused::WrongNonce);
        }
        Ok(word(36..40) as u32)
    }
}

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a Floe worker process.
    #[error("not a Floe worker (bad magic)")]
    NotFloe,
    /// A worker of another job.
    #[error("a worker of another job")]
    OtherJob,
    /// A worker of another attempt of this job (a stale process).
    #[error("a worker of attempt #{attempt}")]
    OtherAttempt {
        /// Its attempt.
        attempt: u32,
    },
    /// Same attempt number, another nonce (a stale process of a restarted job manager).
    #[error("a worker with another nonce")]
    WrongNonce,
    /// An index this end does not expect on this socket.
    #[error("unexpected process index {index}")]
    UnexpectedIndex {
        /// The index the peer claimed.
        index: u32,
    },
}

fn read_handshake(s: &mut TcpStream) -> std::io::Result<[u8; HANDSHAKE_LEN]> {
    let mut b = [0u8; HANDSHAKE_LEN];
    s.read_exact(&mut b)?;
    Ok(b)
}

/// Connects process `me` of `peers` (data addresses, by index) to every other process of
/// mesh `id`: the socket of every peer at its index, `None` at `me`. `listener` is this
/// process's data listener (its address is `peers[me]`). Fails when a peer cannot be
/// reached or did not connect before `deadline`.
pub fn connect_mesh(
    id: MeshId,
    me: usize,
    peers: &[String],
    listener: TcpListener,
    timeout: Duration,
    deadline: Instant,
) -> crate::Result<Vec<Option<TcpStream>>> {
    let n = peers.len();
    let lower: Vec<(usize, String)> = peers[..me].iter().cloned().enumerate().collect();
    // Connections to lower processes on their own thread, as timely does: accepting and
    // connecting at once can never wait on each other.
    let connector = std::thread::Builder::new()
        .name("floe-mesh-connect".into())
        .spawn(move || -> crate::Result<Vec<TcpStream>> {
            lower
                .into_iter()
                .map(|(j, addr)| connect_to(id, me as u32, j as u32, &addr, timeout, deadline))
                .collect()
        })?;
    let accepted = accept_from(id, me, n, &listener, timeout, deadline);
    let connected = connector
        .join()
        .map_err(|_| crate::anyhow!("the mesh connector thread panicked"))?;
    let mut sockets: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    for (j, s) in connected?.into_iter().enumerate() {
        sockets[j] = Some(s);
    }
    for (j, s) in accepted? {
        sockets[j] = Some(s);
    }
    Ok(sockets)
}

fn connect_to(
    id: MeshId,
    me: u32,
    peer: u32,
    addr: &str,
    timeout: Duration,
    deadline: Instant,
) -> crate::Result<TcpStream> {
    loop {
        let last = match try_connect(id, me, peer, addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        if Instant::now() + RETRY > deadline {
            crate::bail!("cannot connect to worker process {peer} at {addr}: {last}");
        }
        std::thread::sleep(RETRY);
    }
}

fn try_connect(
    id: MeshId,
    me: u32,
    peer: u32,
    addr: &str,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let sa = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_string())?;
    let mut s = TcpStream::connect_timeout(&sa, timeout).map_err(|e| e.to_string())?;
    crate::wire::configure_socket(&s, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(&id.encode(me)).map_err(|e| e.to_string())?;
    let b = read_handshake(&mut s).map_err(|e| format!("no handshake: {e}"))?;
    match id.check(&b) {
        Ok(i) if i == peer => {}
        Ok(index) => return Err(Refused::UnexpectedIndex { index }.to_string()),
        Err(r) => return Err(format!("refused {r}")),
    }
    s.set_read_timeout(None).map_err(|e| e.to_string())?;
    Ok(s)
}

fn accept_from(
    id: MeshId,
    me: usize,
    n: usize,
    listener: &TcpListener,
    timeout: Duration,
    deadline: Instant,
) -> crate::Result<Vec<(usize, TcpStream)>> {
    let mut got: Vec<(usize, TcpStream)> = Vec::new();
    listener.set_nonblocking(true)?;
    while got.len() < n - me - 1 {
        match listener.accept() {
            Ok((mut s, from)) => {
                s.set_nonblocking(false)?;
                match accept_one(id, me, n, &got, &mut s, timeout) {
                    Ok(j) => {
                        s.set_read_timeout(None)?;
                        got.push((j, s));
                    }
                    Err(e) => tracing::warn!("Refused a connection from {from}: {e}."),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    let missing: Vec<usize> = (me + 1..n)
                        .filter(|j| !got.iter().any(|(g, _)| g == j))
                        .collect();
                    crate::bail!("worker processes {missing:?} did not connect in time");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

fn accept_one(
    id: MeshId,
    me: usize,
    n: usize,
    got: &[(usize, TcpStream)],
    s: &mut TcpStream,
    timeout: Duration,
) -> crate::Result<usize> {
    crate::wire::configure_socket(s, timeout)?;
    // A peer that says nothing must not hold up the others.
    s.set_read_timeout(Some(timeout))?;
    let b = read_handshake(s)?;
    let j = id.check(&b)? as usize;
    if j <= me || j >= n || got.iter().any(|(g, _)| *g == j) {
        return Err(Refused::UnexpectedIndex { index: j as u32 }.into());
    }
    s.write_all(&id.encode(me as u32))?;
    Ok(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "0123456789abcdef0123456789abcdef";

    fn listener() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap().to_string();
        (l, a)
    }

    #[test]
    fn three_processes_connect_and_each_socket_carries_bytes_to_the_right_peer() {
        let id = MeshId::new(JOB, 3, 42).unwrap();
        let ls: Vec<(TcpListener, String)> = (0..3).map(|_| listener()).collect();
        let peers: Vec<String> = ls.iter().map(|(_, a)| a.clone()).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let handles: Vec<_> = ls
            .into_iter()
            .enumerate()
            .map(|(me, (l, _))| {
                let peers = peers.clone();
                std::thread::spawn(move || {
                    connect_mesh(id, me, &peers, l, Duration::from_secs(5), deadline).unwrap()
                })
            })
            .collect();
        let mut meshes: Vec<Vec<Option<TcpStream>>> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        for (me, m) in meshes.iter_mut().enumerate() {
            assert!(m[me].is_none());
            for (j, s) in m.iter_mut().enumerate() {
                if let Some(s) = s {
                    s.write_all(&[me as u8 * 10 + j as u8]).unwrap();
                }
            }
        }
        for (me, m) in meshes.iter_mut().enumerate() {
            for (j, s) in m.iter_mut().enumerate() {
                if let Some(s) = s {
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).unwrap();
                    assert_eq!(b[0], j as u8 * 10 + me as u8, "process {me} from {j}");
                }
            }
        }
    }

    #[test]
    fn a_stale_process_with_another_nonce_or_attempt_is_refused_and_the_right_one_joins() {
        let id = MeshId::new(JOB, 3, 42).unwrap();
        let (l, addr) = listener();
        let timeout = Duration::from_secs(5);
        let deadline = Instant::now() + Duration::from_secs(20);
        let peers = vec![addr.clone(), "127.0.0.1:1".to_string()];
        let acceptor =
            std::thread::spawn(move || connect_mesh(id, 0, &peers, l, timeout, deadline));
        // Stale processes: same job and attempt with another nonce, an older attempt,
        // another job. Each is refused: its connection closes without a handshake back.
        for stale in [
            MeshId::new(JOB, 3, 41).unwrap(),
            MeshId::new(JOB, 2, 42).unwrap(),
            MeshId::new("ffffffffffffffffffffffffffffffff", 3, 42).unwrap(),
        ] {
            let err = try_connect(stale, 1, 0, &addr, timeout).unwrap_err();
            assert!(err.starts_with("no handshake"), "{stale:?}: {err}");
        }
        // A process of the right attempt claiming an index the acceptor does not expect.
        let err = try_connect(id, 0, 0, &addr, timeout).unwrap_err();
        assert!(err.starts_with("no handshake"), "{err}");
        // The stale ones did not take the place of process 1: it still joins.
        let mut one = connect_to(id, 1, 0, &addr, timeout, deadline).unwrap();
        let mut mesh = acceptor.join().unwrap().unwrap();
        assert!(mesh[0].is_none());
        let mut zero = mesh[1].take().expect("process 1's socket");
        zero.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        one.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    }

    #[test]
    fn a_process_refuses_a_listener_of_another_attempt() {
        let old = MeshId::new(JOB, 2, 7).unwrap();
        let new = MeshId::new(JOB, 3, 8).unwrap();
        let (l, addr) = listener();
        let timeout = Duration::from_secs(5);
        // A stale process 0 of attempt #2 still listens where attempt #3 expects its own.
        let stale = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(&old.encode(0)).unwrap();
            let mut b = [0u8; HANDSHAKE_LEN];
            let _ = s.read_exact(&mut b);
        });
        let err = try_connect(new, 1, 0, &addr, timeout).unwrap_err();
        assert_eq!(err, "refused a worker of attempt #2");
        stale.join().unwrap();
    }

    #[test]
    fn handshakes_of_other_meshes_are_told_apart() {
        let id = MeshId::new(JOB, 3, 42).unwrap();
        assert_eq!(id.check(&id.encode(1)), Ok(1));
        assert_eq!(
            id.check(&MeshId::new(JOB, 3, 41).unwrap().encode(1)),
            Err(Refused::WrongNonce)
        );
        assert_eq!(
            id.check(&MeshId::new(JOB, 2, 42).unwrap().encode(1)),
            Err(Refused::OtherAttempt { attempt: 2 })
        );
        let mut bad = id.encode(1);
        bad[0] ^= 1;
        assert_eq!(id.check(&bad), Err(Refused::NotFloe));
    }
}
