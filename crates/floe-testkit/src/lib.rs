//! Real parts for Floe's tests, started by the tests themselves and stopped by PID when
//! they are dropped: an S3-compatible object store ([`s3`], the `s3s-fs` server that
//! `.ci/run` installs) and several "hosts" on one machine built from network namespaces
//! ([`netns`]), and a Kafka-protocol broker ([`kafka`], tansu). Nothing here is a mock: the
//! engine talks to them over real sockets.

pub mod kafka;
pub mod netns;
pub mod s3;

use anyhow::{anyhow, bail, Result};
use std::path::PathBuf;

/// A tool `scripts/test-tools.sh` installs: `${FLOE_TOOLS:-$HOME/.cache/floe-tools}/bin/<name>`.
/// An error (saying to run the script) when it is not there: tests that need it fail rather
/// than skip.
pub fn tool(name: &str, what: &str) -> Result<PathBuf> {
    let root = match std::env::var_os("FLOE_TOOLS").filter(|v| !v.is_empty()) {
        Some(r) => PathBuf::from(r),
        None => PathBuf::from(std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?)
            .join(".cache/floe-tools"),
    };
    let bin = root.join("bin").join(name);
    if !bin.is_file() {
        bail!(
            "{} is missing: run scripts/test-tools.sh to install {what}",
            bin.display()
        );
    }
    Ok(bin)
}
