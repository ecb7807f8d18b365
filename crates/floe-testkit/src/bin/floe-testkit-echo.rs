//! A TCP echo server and client for the network-namespace tests (no `nc` on the machine):
//!
//! - `floe-testkit-echo listen ADDR` binds ADDR (port 0 = any), prints `listening <addr>` on
//!   stdout and echoes every connection, each on its own thread, until killed;
//! - `floe-testkit-echo send ADDR TEXT` connects (retrying for 10 s), sends TEXT, half-closes
//!   and prints what came back; exit code 1 on any error.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("listen") if args.len() == 3 => listen(&args[2]),
        Some("send") if args.len() == 4 => send(&args[2], &args[3]),
        _ => Err("usage: floe-testkit-echo listen ADDR | send ADDR TEXT".into()),
    };
    if let Err(e) = result {
        eprintln!("floe-testkit-echo: {e}");
        std::process::exit(1);
    }
}

fn listen(addr: &str) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("binding {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening {local}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 || conn.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

fn send(addr: &str, text: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match TcpStream::connect(addr) {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => {
                return Err(format!("connecting to {addr}: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    conn.write_all(text.as_bytes())
        .map_err(|e| format!("writing to {addr}: {e}"))?;
    conn.shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    print!("{reply}");
    Ok(())
}
