//! [`Location`]: where a checkpoint, savepoint or one of their files is — a local path or
//! an object-store URL — parsed in one place from everything a user can type.

use crate::Result;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The object-store URL schemes Floe knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scheme {
    /// `s3://bucket/key`.
    S3,
    /// `s3a://bucket/key` (Hadoop's name for the same store).
    S3a,
    /// `hdfs://namenode:port/path` (cargo feature `hdfs`).
    Hdfs,
}

impl Scheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::S3a => "s3a",
            Scheme::Hdfs => "hdfs",
        }
    }
}

/// A location inside an object store: `<scheme>://<authority>/<key>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectLocation {
    /// Which kind of store.
    pub scheme: Scheme,
    /// The bucket (S3) or `namenode:port` (HDFS).
    pub authority: String,
    /// The key (object name, or the prefix of a "directory"), without leading or trailing
    /// `/`; empty for the store's root.
    pub key: String,
}

/// Where a checkpoint, savepoint or state file is: a local path or an object-store URL.
///
/// Parsed by [`Location::parse`] from every place Floe takes one (`-s`,
/// `execution.checkpointing.dir`, `.savepoint-dir`, `floe savepoint`, REST savepoint
/// targets); it is serializable so job managers hand it to executors as it is. Shown
/// ([`fmt::Display`]) as the local path or the URL, so a printed location is accepted back.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Location {
    /// A path on this machine's file system.
    Local(PathBuf),
    /// A key or prefix in an object store.
    Object(ObjectLocation),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Object(o) => {
                write!(f, "{}://{}", o.scheme.as_str(), o.authority)?;
                if !o.key.is_empty() {
                    write!(f, "/{}", o.key)?;
                }
                Ok(())
            }
        }
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::Local(p)
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Self {
        Location::Local(p.clone())
    }
}

impl From<&Location> for Location {
    fn from(l: &Location) -> Self {
        l.clone()
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::Local(p.to_path_buf())
    }
}

impl Location {
    /// Parses a checkpoint or savepoint location.
    ///
    /// Accepted: a plain path, `file:/abs/path` (what Floe and Flink print), `file:///abs/path`,
    /// `file://localhost/abs/path`, `s3://bucket[/key]`, `s3a://bucket[/key]` and
    /// `hdfs://namenode[:port]/path`. Refused, each with a one-line error naming the
    /// location: an empty location, a `file:` URL without an absolute path or with another
    /// host, an object URL without a bucket, and any other scheme.
    ///
    /// ```
    /// use floe::storage::Location;
    /// use std::path::PathBuf;
    /// assert_eq!(Location::parse("file:/tmp/ck").unwrap(), Location::Local("/tmp/ck".into()));
    /// assert_eq!(Location::parse("ck/a").unwrap(), Location::Local("ck/a".into()));
    /// let s3 = Location::parse("s3://bucket/ck/").unwrap();
    /// assert_eq!(s3.to_string(), "s3://bucket/ck");
    /// assert_eq!(s3.join("chk-1").to_string(), "s3://bucket/ck/chk-1");
    /// assert!(Location::parse("gs://b/x").unwrap_err().to_string().contains("not supported"));
    /// ```
    pub fn parse(location: &str) -> Result<Location> {
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
            return Ok(Location::Local(PathBuf::from(path)));
        }
        let Some(scheme) = scheme_of(location) else {
            return Ok(Location::Local(PathBuf::from(location)));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "s3" => Scheme::S3,
            "s3a" => Scheme::S3a,
            "hdfs" => Scheme::Hdfs,
            _ => crate::bail!(
                "storage scheme '{scheme}' in '{location}' is not supported: use a local path, file:///path, s3://bucket/path or hdfs://namenode/path"
            ),
        };
        let rest = &location[scheme.as_str().len() + 1..];
        let Some(auth_key) = rest.strip_prefix("//") else {
            crate::bail!(
                "invalid {} URL '{location}': expected {}://{}/path",
                scheme.as_str(),
                scheme.as_str(),
                if scheme == Scheme::Hdfs {
                    "namenode:port"
                } else {
                    "bucket"
                }
            );
        };
        let (authority, key) = auth_key.split_once('/').unwrap_or((auth_key, ""));
        if authority.is_empty() {
            crate::bail!(
                "invalid {} URL '{location}': no {}",
                scheme.as_str(),
                if scheme == Scheme::Hdfs {
                    "namenode"
                } else {
                    "bucket"
                }
            );
        }
        let key = normalize_key(key);
        if key.split('/').any(|s| s == "." || s == "..") {
            crate::bail!("invalid URL '{location}': '.' and '..' are not allowed in object keys");
        }
        Ok(Location::Object(ObjectLocation {
            scheme,
            authority: authority.to_string(),
            key,
        }))
    }

    /// [`Location::parse`] for a location given as a path (a command-line argument, an API
    /// argument): a path that is not UTF-8 cannot be a URL and is taken as it is.
    pub fn from_path(path: &Path) -> Result<Location> {
        match path.to_str() {
            Some(s) => Location::parse(s),
            None => Ok(Location::Local(path.to_path_buf())),
        }
    }

    /// [`Location::parse`], then a local path made absolute against the current directory:
    /// for a location handed to another process whose working directory is not ours.
    pub fn absolute(location: &str) -> Result<Location> {
        match Location::parse(location)? {
            Location::Local(p) => std::path::absolute(&p)
                .map(Location::Local)
                .map_err(|e| crate::anyhow!("cannot make '{location}' an absolute path: {e}")),
            o => Ok(o),
        }
    }

    /// The location of `name` inside this one (a file in a directory, a key under a prefix).
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(name)),
            Location::Object(o) => {
                let name = normalize_key(name);
                let key = match (o.key.is_empty(), name.is_empty()) {
                    (true, _) => name,
                    (false, true) => o.key.clone(),
                    (false, false) => format!("{}/{name}", o.key),
                };
                Location::Object(ObjectLocation { key, ..o.clone() })
            }
        }
    }

    /// The last segment of the location (a file or directory name), if any.
    pub fn file_name(&self) -> Option<&str> {
        match self {
            Location::Local(p) => p.file_name()?.to_str(),
            Location::Object(o) => o.key.rsplit('/').next().filter(|s| !s.is_empty()),
        }
    }

    /// The location containing this one; `None` at a root.
    pub fn parent(&self) -> Option<Location> {
        match self {
            Location::Local(p) => Some(Location::Local(match p.parent() {
                Some(q) if q.as_os_str().is_empty() => PathBuf::from("."),
                Some(q) => q.to_path_buf(),
                None => return None,
            })),
            Location::Object(o) if o.key.is_empty() => None,
            Location::Object(o) => Some(Location::Object(ObjectLocation {
                key: o
                    .key
                    .rsplit_once('/')
                    .map(|(a, _)| a.to_string())
                    .unwrap_or_default(),
                ..o.clone()
            })),
        }
    }

    /// Shown as the path or URL: `loc.display()` reads like `path.display()`.
    pub fn display(&self) -> &Self {
        self
    }

    /// The location as a URL, as Flink prints snapshot paths: `file:/abs/path` (made absolute
    /// against the current directory) or the object-store URL.
    pub fn url(&self) -> String {
        match self {
            Location::Local(p) => {
                let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                format!("file:{}", abs.display())
            }
            o => o.to_string(),
        }
    }

    /// Whether a file (an object) exists at this location; an unreachable store counts as
    /// no.
    pub fn is_file(&self) -> bool {
        match self {
            Location::Local(p) => p.is_file(),
            o => matches!(super::size(o), Ok(Some(_))),
        }
    }

    /// The local path, when this is one.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Object(_) => None,
        }
    }

    /// True for a path on this machine.
    pub fn is_local(&self) -> bool {
        matches!(self, Location::Local(_))
    }

    /// Whether this location is `root` or lies under it (same store, key or path prefix at
    /// a segment boundary). Local paths are compared as given: callers make them absolute.
    pub fn starts_with(&self, root: &Location) -> bool {
        match (self, root) {
            (Location::Local(p), Location::Local(r)) => p.starts_with(r),
            (Location::Object(o), Location::Object(r)) => {
                o.scheme == r.scheme
                    && o.authority == r.authority
                    && (r.key.is_empty()
                        || o.key == r.key
                        || o.key.starts_with(&format!("{}/", r.key)))
            }
            _ => false,
        }
    }
}

/// A key without empty segments (`a//b/` → `a/b`).
fn normalize_key(key: &str) -> String {
    key.split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
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
    fn the_forms_floe_prints_and_plain_paths_are_local() {
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
            assert_eq!(
                Location::parse(given).unwrap(),
                Location::Local(PathBuf::from(want)),
                "{given}"
            );
        }
    }

    #[test]
    fn object_urls_parse_join_and_print_back() {
        let l = Location::parse("s3://bkt/a//b/").unwrap();
        let Location::Object(o) = &l else { panic!() };
        assert_eq!(
            (o.scheme, o.authority.as_str(), o.key.as_str()),
            (Scheme::S3, "bkt", "a/b")
        );
        assert_eq!(l.to_string(), "s3://bkt/a/b");
        assert_eq!(Location::parse(&l.to_string()).unwrap(), l);
        assert_eq!(
            l.join("chk-3").join("_metadata").to_string(),
            "s3://bkt/a/b/chk-3/_metadata"
        );
        assert_eq!(l.join("x").file_name(), Some("x"));
        assert_eq!(l.join("x").parent(), Some(l.clone()));
        let root = Location::parse("s3a://bkt").unwrap();
        assert_eq!(root.to_string(), "s3a://bkt");
        assert_eq!(root.join("k").to_string(), "s3a://bkt/k");
        assert_eq!(root.parent(), None);
        let h = Location::parse("hdfs://nn:8020/ck").unwrap();
        assert_eq!(h.to_string(), "hdfs://nn:8020/ck");
        assert!(l.join("c").starts_with(&l));
        assert!(!Location::parse("s3://bkt/a/bc").unwrap().starts_with(&l));
        assert!(!Location::parse("s3://other/a/b").unwrap().starts_with(&l));
        assert!(l.starts_with(&Location::parse("s3://bkt").unwrap()));
    }

    #[test]
    fn bad_locations_are_refused_in_one_line() {
        for (given, msg) in [
            ("gs://b", "storage scheme 'gs' in 'gs://b' is not supported"),
            ("hdfs:/ck", "invalid hdfs URL 'hdfs:/ck'"),
            ("s3:/b/x", "expected s3://bucket/path"),
            ("s3:///x", "no bucket"),
            ("s3://b/../x", "'..' are not allowed"),
            ("file:relative", "expected file:/absolute/path"),
            ("file://", "expected file:/absolute/path"),
            ("file://host/p", "host 'host' is not this machine"),
            ("", "empty storage location"),
        ] {
            let e = Location::parse(given).unwrap_err().to_string();
            assert!(e.contains(msg), "{given}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn absolute_resolves_local_paths_against_the_current_directory() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            Location::absolute("sp").unwrap(),
            Location::Local(cwd.join("sp"))
        );
        assert_eq!(
            Location::absolute("file:/sp").unwrap(),
            Location::Local("/sp".into())
        );
        assert_eq!(
            Location::absolute("s3://b/sp").unwrap().to_string(),
            "s3://b/sp"
        );
    }
}
