//! Content-addressed job binaries: the job manager stores each submitted binary under its
//! sha256 ([`store`]); task managers fetch it by that key into their cache ([`fetch`]),
//! verify it, and reuse a cached copy only while its content still has that hash.

use super::protocol::{BlobKey, BlobReply, RpcHello};
use crate::Result;
use anyhow::{bail, Context as _};
use sha2::Digest;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The sha256 of the file at `path`.
pub fn hash_file(path: &Path) -> Result<BlobKey> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(BlobKey::from_digest(&h.finalize()))
}

/// Whether `path` holds the blob `key` (it exists and its content hashes to `key`).
pub fn holds(path: &Path, key: &BlobKey) -> bool {
    path.is_file() && hash_file(path).map(|k| &k == key).unwrap_or(false)
}

fn temp_in(dir: &Path, key: &BlobKey) -> PathBuf {
    dir.join(format!(".{key}.{:016x}.tmp", rand::random::<u64>()))
}

/// Installs the finished temp file `tmp` as `dir/<key>`, executable: one rename, so readers
/// see the whole blob or none.
fn install(tmp: &Path, f: std::fs::File, dir: &Path, key: &BlobKey) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    f.sync_all()?;
    drop(f);
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755))?;
    let path = dir.join(key.as_str());
    std::fs::rename(tmp, &path).with_context(|| format!("cannot install {}", path.display()))?;
    Ok(path)
}

/// Copies the file at `source` into the blob store `dir` (`dir/<sha256>`), unless it holds
/// it already; returns its key.
pub fn store(dir: &Path, source: &Path) -> Result<BlobKey> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = hash_file(source)?;
    if holds(&dir.join(key.as_str()), &key) {
        return Ok(key);
    }
    let tmp = temp_in(dir, &key);
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut src =
        std::fs::File::open(source).with_context(|| format!("cannot open {}", source.display()))?;
    let copied = std::io::copy(&mut src, &mut f).and_then(|_| f.flush());
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot copy {}", source.display()));
    }
    // The source may have changed while it was copied: the key names what was stored.
    if !holds(&tmp, &key) {
        let _ = std::fs::remove_file(&tmp);
        bail!("{} changed while it was copied", source.display());
    }
    install(&tmp, f, dir, &key)?;
    Ok(key)
}

/// Serves blob `key` from `dir` on `stream` (the rest of a [`RpcHello::Blob`] connection).
pub fn serve(dir: &Path, key: &BlobKey, stream: &mut impl Write) -> std::io::Result<()> {
    let path = dir.join(key.as_str());
    match std::fs::File::open(&path) {
        Ok(mut f) => {
            let size = f.metadata()?.len();
            crate::wire::write_frame(stream, &BlobReply::Follows { size })?;
            let sent = std::io::copy(&mut (&mut f).take(size), stream)?;
            if sent != size {
                return Err(std::io::Error::other(format!(
                    "{} shrank while it was sent",
                    path.display()
                )));
            }
            stream.flush()
        }
        Err(_) => crate::wire::write_frame(
            stream,
            &BlobReply::Refused {
                reason: super::protocol::RefusalReason::UnknownBlob(key.clone()),
            },
        ),
    }
}

/// `dir/<key>`, fetched from the blob server at `rpc` unless the cache holds it with the
/// right content already (a corrupted cached copy is fetched again).
pub fn fetch(
    rpc: &str,
    key: &BlobKey,
    token: Option<&str>,
    dir: &Path,
    timeout: Duration,
) -> Result<PathBuf> {
    let path = dir.join(key.as_str());
    if holds(&path, key) {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut stream = super::connect(rpc, timeout)
        .with_context(|| format!("cannot reach the blob server at {rpc}"))?;
    crate::wire::write_frame(
        &mut stream,
        &RpcHello::Blob {
            token: token.map(str::to_string),
            key: key.clone(),
        },
    )?;
    let size = match crate::wire::read_frame::<BlobReply>(&mut stream)? {
        BlobReply::Follows { size } => size,
        BlobReply::Refused { reason } => bail!("the blob server at {rpc} refused: {reason}"),
    };
    let tmp = temp_in(dir, key);
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut left = size;
    let copied = (|| -> std::io::Result<()> {
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = stream.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the blob ended {left} bytes early"),
                ));
            }
            h.update(&buf[..n]);
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        f.flush()
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot fetch blob {key} from {rpc}"));
    }
    let got = BlobKey::from_digest(&h.finalize());
    if &got != key {
        let _ = std::fs::remove_file(&tmp);
        bail!("blob {key} from {rpc} has the wrong content (its sha256 is {got})");
    }
    install(&tmp, f, dir, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_blobs_are_named_by_their_hash_and_executable() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("job");
        std::fs::write(&src, b"#!/bin/sh\n").unwrap();
        let store_dir = d.path().join("blobs");
        let key = store(&store_dir, &src).unwrap();
        assert_eq!(key, BlobKey::of(b"#!/bin/sh\n"));
        let p = store_dir.join(key.as_str());
        assert_eq!(std::fs::read(&p).unwrap(), b"#!/bin/sh\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o755
        );
        // A corrupted copy is replaced on the next store.
        std::fs::write(&p, b"bad").unwrap();
        assert!(!holds(&p, &key));
        store(&store_dir, &src).unwrap();
        assert!(holds(&p, &key));
        assert_eq!(std::fs::read_dir(&store_dir).unwrap().count(), 1);
    }
}
