//! Storage locations for checkpoints and savepoints.
//!
//! Every location Floe accepts — `-s`/`execution.state-recovery.path`,
//! `execution.checkpointing.dir` and `.savepoint-dir`, the `floe savepoint` commands and a
//! savepoint target given over REST — goes through [`local_path`], so the paths Floe
//! prints (`Savepoint completed. Path: file:/…`, Flink's form) are paths Floe accepts.
//! Object stores come in a later step through an object-store crate; until then other
//! schemes are refused with a clear error rather than taken for relative directories.

use crate::Result;
use std::path::{Path, PathBuf};

/// Resolves a checkpoint or savepoint location to a local path.
///
/// Accepted: a plain path, `file:/abs/path` (what Floe and Flink print), `file:///abs/path`
/// and `file://localhost/abs/path`. Refused, each with an error naming the location: an
/// empty location, a `file:` URL without an absolute path or with another host, and any
/// other scheme (`s3://`, `hdfs://`, ...), which is not supported yet.
///
/// ```
/// use floe::storage::local_path;
/// use std::path::PathBuf;
/// assert_eq!(local_path("file:/tmp/ck").unwrap(), PathBuf::from("/tmp/ck"));
/// assert_eq!(local_path("file:///tmp/ck").unwrap(), PathBuf::from("/tmp/ck"));
/// assert_eq!(local_path("/tmp/ck").unwrap(), PathBuf::from("/tmp/ck"));
/// assert_eq!(local_path("ck/a").unwrap(), PathBuf::from("ck/a"));
/// assert!(local_path("s3://bucket/x").unwrap_err().to_string().contains("not supported yet"));
/// ```
pub fn local_path(location: &str) -> Result<PathBuf> {
    if location.is_empty() {
        crate::bail!("empty storage location");
    }
    if let Some(rest) = location.strip_prefix("file:") {
        let path = match rest.strip_prefix("//") {
            // file://host/path: only the local host.
            Some(auth_path) => {
                let (host, path) = auth_path
                    .find('/')
                    .map(|i| auth_path.split_at(i))
                    .unwrap_or((auth_path, ""));
                if !host.is_empty() && host != "localhost" {
                    crate::bail!(
                        "unsupported file URL '{location}': host '{host}' is not this machine; use file:///absolute/path"
                    );
                }
                path
            }
            None => rest,
        };
        if !path.starts_with('/') {
            crate::bail!(
                "invalid file URL '{location}': expected file:/absolute/path or file:///absolute/path"
            );
        }
        return Ok(PathBuf::from(path));
    }
    if let Some(scheme) = scheme_of(location) {
        crate::bail!(
            "storage scheme '{scheme}' in '{location}' is not supported yet: use a local path, file:/path or file:///path"
        );
    }
    Ok(PathBuf::from(location))
}

/// [`local_path`] for a location given as a path (a command-line argument, an API
/// argument): a path that is not UTF-8 cannot be a URL and is taken as it is.
///
/// ```
/// use floe::storage::resolve;
/// use std::path::{Path, PathBuf};
/// assert_eq!(resolve(Path::new("file:/tmp/sp")).unwrap(), PathBuf::from("/tmp/sp"));
/// ```
pub fn resolve(path: &Path) -> Result<PathBuf> {
    match path.to_str() {
        Some(s) => local_path(s),
        None => Ok(path.to_path_buf()),
    }
}

/// [`local_path`], then made absolute against the current directory: for a location that
/// is handed to another process (a job manager, a session cluster) whose working directory
/// is not ours.
pub fn absolute_path(location: &str) -> Result<PathBuf> {
    let p = local_path(location)?;
    std::path::absolute(&p)
        .map_err(|e| crate::anyhow!("cannot make '{location}' an absolute path: {e}"))
}

/// The URL scheme `location` starts with (`s3` of `s3://b/k`, `hdfs` of `hdfs:/p`), if it
/// looks like a URL: RFC 3986 scheme characters, then `:/`. A one-letter scheme is a
/// Windows drive (`C:/`), and a colon without a slash after it (`a:b`) a plain file name.
fn scheme_of(location: &str) -> Option<&str> {
    let (scheme, rest) = location.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = scheme.len() > 1
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && rest.starts_with('/')).then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_floe_prints_and_plain_paths_are_accepted() {
        for (given, want) in [
            ("file:/tmp/sp/savepoint-1", "/tmp/sp/savepoint-1"),
            ("file:///tmp/sp/savepoint-1", "/tmp/sp/savepoint-1"),
            ("file://localhost/tmp/sp", "/tmp/sp"),
            ("/tmp/sp", "/tmp/sp"),
            ("relative/dir", "relative/dir"),
            ("chk-3", "chk-3"),
            ("a:b", "a:b"),
            ("./x:/y", "./x:/y"),
        ] {
            assert_eq!(local_path(given).unwrap(), PathBuf::from(want), "{given}");
        }
    }

    #[test]
    fn other_schemes_and_malformed_file_urls_are_refused() {
        for (given, msg) in [
            (
                "s3://bucket/x",
                "storage scheme 's3' in 's3://bucket/x' is not supported yet",
            ),
            ("hdfs://nn:8020/ck", "storage scheme 'hdfs'"),
            ("hdfs:/ck", "storage scheme 'hdfs'"),
            ("gs://b", "not supported yet"),
            ("file:relative", "expected file:/absolute/path"),
            ("file://", "expected file:/absolute/path"),
            ("file://host/p", "host 'host' is not this machine"),
            ("", "empty storage location"),
        ] {
            let e = local_path(given).unwrap_err().to_string();
            assert!(e.contains(msg), "{given}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn absolute_path_resolves_against_the_current_directory() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute_path("sp").unwrap(), cwd.join("sp"));
        assert_eq!(absolute_path("file:/sp").unwrap(), PathBuf::from("/sp"));
        assert!(absolute_path("s3://b/sp").is_err());
    }
}
