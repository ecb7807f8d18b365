//! Framed messages and socket options for every connection between Floe's processes: the
//! job manager and its worker processes, task managers and the cluster's job manager, and
//! the data sockets between the worker processes of an attempt.
//!
//! A frame is a little-endian `u32` length and that many bytes of JSON. Connections between
//! hosts carry `TCP_USER_TIMEOUT` and keepalive ([`configure_socket`]): without them a host
//! that vanishes (power loss, a cut cable) leaves a blocked reader or writer waiting
//! forever, measured in docs/architecture.md.

use serde::{de::DeserializeOwned, Serialize};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Largest frame accepted; a longer length prefix means a corrupt stream.
pub const MAX_FRAME: u32 = 64 << 20;

/// Writes `msg` as one frame and flushes; a message over [`MAX_FRAME`] is refused here, not
/// by the reader, so an oversized message never ends the connection.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    if bytes.len() > MAX_FRAME as usize {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "a control message of {} bytes exceeds the frame limit of {MAX_FRAME} bytes",
                bytes.len()
            ),
        ));
    }
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(&bytes)?;
    w.flush()
}

/// Reads one frame; a length over [`MAX_FRAME`] is an error (a corrupt or foreign stream).
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes exceeds the limit"
        )));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    serde_json::from_slice(&buf).map_err(std::io::Error::other)
}

/// Sets `TCP_NODELAY`, keepalive and `TCP_USER_TIMEOUT` on `stream`, so that a peer that
/// stops answering — a host gone from the network — fails reads and writes within about
/// `timeout` instead of never.
///
/// Keepalive probes start after `timeout / 3` of silence, every `timeout / 3`, three times;
/// `TCP_USER_TIMEOUT` bounds how long sent data may stay unacknowledged.
pub fn configure_socket(stream: &TcpStream, timeout: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = stream.as_raw_fd();
        let probe = (timeout.as_secs() / 3).clamp(1, i32::MAX as u64) as libc::c_int;
        let user_timeout = timeout.as_millis().clamp(1, u32::MAX as u128) as libc::c_uint;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1 as libc::c_int)?;
        setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, probe)?;
        setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, probe)?;
        setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3 as libc::c_int)?;
        setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, user_timeout)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = timeout;
    Ok(())
}

#[cfg(target_os = "linux")]
fn setsockopt<T>(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: T,
) -> std::io::Result<()> {
    // SAFETY: `value` lives for the call and its size is passed with it; `fd` is an open socket.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn frames_round_trip_and_oversized_lengths_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &vec![1u32, 2, 3]).unwrap();
        let back: Vec<u32> = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back, [1, 2, 3]);
        let bad = (MAX_FRAME + 1).to_le_bytes();
        let e = read_frame::<Vec<u32>>(&mut bad.as_slice()).unwrap_err();
        assert!(e.to_string().contains("exceeds the limit"), "{e}");
    }

    #[test]
    fn socket_options_are_set() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        configure_socket(&s, Duration::from_secs(3)).unwrap();
        assert!(s.nodelay().unwrap());
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let mut v: libc::c_uint = 0;
            let mut len = std::mem::size_of::<libc::c_uint>() as libc::socklen_t;
            // SAFETY: `v` and `len` are valid for the call.
            let rc = unsafe {
                libc::getsockopt(
                    s.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_USER_TIMEOUT,
                    (&mut v as *mut libc::c_uint).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            assert_eq!(v, 3000);
        }
    }
}
