//! Storage locations for checkpoints and savepoints.
//!
//! Checkpoint locations are given as plain paths or `file://` URLs. Object stores come in
//! a later step through an object-store crate; until then other schemes are rejected with a
//! clear error rather than misinterpreted.

use crate::Result;
use std::path::PathBuf;

/// Resolves a checkpoint/savepoint location to a local directory.
///
/// ```
/// use floe::storage::local_path;
/// assert_eq!(local_path("file:///tmp/ck").unwrap(), std::path::PathBuf::from("/tmp/ck"));
/// assert_eq!(local_path("/tmp/ck").unwrap(), std::path::PathBuf::from("/tmp/ck"));
/// assert!(local_path("s3://bucket/x").is_err());
/// ```
pub fn local_path(location: &str) -> Result<PathBuf> {
    if let Some(rest) = location.strip_prefix("file://") {
        if !rest.starts_with('/') {
            crate::bail!("invalid file URL '{location}': expected file:///absolute/path");
        }
        return Ok(PathBuf::from(rest));
    }
    if let Some((scheme, _)) = location.split_once("://") {
        crate::bail!("unsupported storage scheme '{scheme}' in '{location}': use a local path or file:// URL");
    }
    if location.is_empty() {
        crate::bail!("empty storage location");
    }
    Ok(PathBuf::from(location))
}
