//! What the `floe` CLI tests share: the `floe` binary, the example job binary, a runner of
//! `floe` and a free loopback port.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

/// The `floe` binary of this package.
pub fn floe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_floe"))
}

/// The example job binary next to `floe`, brought up to date first (a no-op when it is),
/// so a run of this package's tests alone never uses a stale job binary.
pub fn job_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "floe-examples",
                "--bin",
                "count_window_average",
            ])
            .status()
            .unwrap();
        assert!(st.success(), "building the example job binary failed");
    });
    floe().with_file_name("count_window_average")
}

/// Runs `floe args...` without FLOE_CONF_DIR; returns exit code, stdout and stderr.
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(floe())
        .args(args)
        .env_remove("FLOE_CONF_DIR")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// A loopback port free right now (the listener is closed again).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
