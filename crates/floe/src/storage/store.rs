//! Object stores behind [`Location::Object`]: built once per bucket from the configuration
//! ([`configure`]), driven from Floe's synchronous threads through one small tokio runtime.

use super::location::{Location, ObjectLocation, Scheme};
use crate::config::{keys, Configuration};
use crate::Result;
use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Objects larger than this are uploaded in parts (S3 multipart upload).
pub const MULTIPART_THRESHOLD: usize = 8 << 20;
/// Size of one part of a multipart upload.
const PART_SIZE: usize = 8 << 20;

/// Why a storage operation failed, where the cause matters to the caller.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A create-only write found the object already there: another writer committed it.
    #[error("{0} already exists: another writer created it first; it is not overwritten")]
    AlreadyExists(Location),
    /// The object does not exist.
    #[error("{0} does not exist")]
    NotFound(Location),
    /// Anything else (network, credentials, permissions), in one line.
    #[error("cannot {op} {location}: {cause}")]
    Failed {
        /// What was attempted (`read`, `write`, `list`, ...).
        op: &'static str,
        /// Where.
        location: Location,
        /// The store's error, on one line.
        cause: String,
    },
}

/// The S3 settings of the configuration Floe runs with (Flink's `s3.*` keys).
#[derive(Clone, Debug, Default, PartialEq)]
struct S3Settings {
    endpoint: Option<String>,
    access_key: Option<String>,
    secret_key: Option<String>,
    path_style: Option<bool>,
    region: Option<String>,
}

static SETTINGS: RwLock<Option<S3Settings>> = RwLock::new(None);
type StoreKey = (Scheme, String);
static STORES: Mutex<Option<HashMap<StoreKey, Arc<dyn ObjectStore>>>> = Mutex::new(None);

/// Takes the object-store settings (`s3.endpoint`, `s3.access-key`, `s3.secret-key`,
/// `s3.path.style.access`, `s3.endpoint.region`) from `conf` for every store built after
/// this call; stores built with other settings are dropped. Without a call (or for keys not
/// set) the AWS environment variables apply (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...).
pub fn configure(conf: &Configuration) -> Result<()> {
    let s = S3Settings {
        endpoint: conf.get(keys::S3_ENDPOINT)?,
        access_key: conf.get(keys::S3_ACCESS_KEY)?,
        secret_key: conf.get(keys::S3_SECRET_KEY)?,
        path_style: conf.get(keys::S3_PATH_STYLE_ACCESS)?,
        region: conf.get(keys::S3_REGION)?,
    };
    let mut cur = SETTINGS.write().unwrap_or_else(|e| e.into_inner());
    if cur.as_ref() != Some(&s) {
        *cur = Some(s);
        *STORES.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    Ok(())
}

fn build(o: &ObjectLocation) -> Result<Arc<dyn ObjectStore>> {
    match o.scheme {
        Scheme::S3 | Scheme::S3a => {
            let s = SETTINGS
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            let mut b =
                object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&o.authority);
            if let Some(e) = &s.endpoint {
                b = b.with_endpoint(e);
            }
            // An http:// endpoint (a store inside the cluster's network) is allowed.
            let http = s
                .endpoint
                .clone()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                .is_some_and(|e| e.starts_with("http://"));
            b = b.with_allow_http(http);
            if let Some(k) = &s.access_key {
                b = b.with_access_key_id(k);
            }
            if let Some(k) = &s.secret_key {
                b = b.with_secret_access_key(k);
            }
            if let Some(r) = &s.region {
                b = b.with_region(r);
            }
            if let Some(p) = s.path_style {
                b = b.with_virtual_hosted_style_request(!p);
            }
            let store = b.build().map_err(|e| {
                crate::anyhow!(
                    "cannot use {}: {}",
                    Location::Object(o.clone()),
                    one_line(&e)
                )
            })?;
            Ok(Arc::new(store))
        }
        Scheme::Hdfs => build_hdfs(o),
    }
}

#[cfg(feature = "hdfs")]
fn build_hdfs(o: &ObjectLocation) -> Result<Arc<dyn ObjectStore>> {
    let url = format!("hdfs://{}", o.authority);
    // The HDFS client spawns its I/O tasks on the current runtime: ours.
    let _rt = runtime().enter();
    let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
        .with_url(&url)
        .build()
        .map_err(|e| {
            crate::anyhow!(
                "cannot use {}: {}",
                Location::Object(o.clone()),
                one_line(&e)
            )
        })?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "hdfs"))]
fn build_hdfs(o: &ObjectLocation) -> Result<Arc<dyn ObjectStore>> {
    crate::bail!(
        "cannot use {}: this Floe is built without HDFS support; build it with `--features hdfs`",
        Location::Object(o.clone())
    )
}

fn store(o: &ObjectLocation) -> Result<Arc<dyn ObjectStore>> {
    let key = (o.scheme, o.authority.clone());
    if let Some(s) = STORES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&key)
    {
        return Ok(Arc::clone(s));
    }
    let s = build(o)?;
    STORES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, Arc::clone(&s));
    Ok(s)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("floe-storage")
            .enable_all()
            .build()
            .expect("the storage runtime starts")
    })
}

/// Runs `f` to completion from a synchronous thread. Called from inside another tokio
/// runtime (a REST handler), it blocks a helper thread instead of that runtime's.
fn block_on<F: Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| runtime().block_on(f))
                .join()
                .expect("storage call does not panic")
        })
    } else {
        runtime().block_on(f)
    }
}

/// Runs `f` on the storage runtime without waiting for it (parallel uploads).
pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(f: F) {
    runtime().spawn(f);
}

/// An error's chain on one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s.replace(['\n', '\r'], " ")
}

fn failed(op: &'static str, loc: &Location, e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound(loc.clone()),
        object_store::Error::AlreadyExists { .. } => StorageError::AlreadyExists(loc.clone()),
        e => StorageError::Failed {
            op,
            location: loc.clone(),
            cause: one_line(&e),
        },
    }
}

fn object(loc: &Location) -> Result<(&ObjectLocation, Arc<dyn ObjectStore>, ObjectPath)> {
    match loc {
        Location::Object(o) => Ok((o, store(o)?, ObjectPath::from(o.key.as_str()))),
        Location::Local(p) => crate::bail!("{} is not an object-store location", p.display()),
    }
}

/// Reads a whole object.
pub fn read(loc: &Location) -> Result<Vec<u8>> {
    let (_, s, p) = object(loc)?;
    block_on(async {
        let r = s.get(&p).await.map_err(|e| failed("read", loc, e))?;
        let b = r.bytes().await.map_err(|e| failed("read", loc, e))?;
        Ok(b.to_vec())
    })
}

/// The size of an object; `None` when there is none.
pub fn size(loc: &Location) -> Result<Option<u64>> {
    let (_, s, p) = object(loc)?;
    block_on(async {
        match s.head(&p).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failed("read", loc, e).into()),
        }
    })
}

/// Uploads `bytes` to `loc` (replacing an object there), in parts above
/// [`MULTIPART_THRESHOLD`].
pub async fn write_async(loc: Location, bytes: Vec<u8>) -> std::result::Result<(), StorageError> {
    let (_, s, p) = object(&loc).map_err(|e| StorageError::Failed {
        op: "write",
        location: loc.clone(),
        cause: format!("{e:#}"),
    })?;
    if bytes.len() <= MULTIPART_THRESHOLD {
        s.put(&p, PutPayload::from(bytes))
            .await
            .map_err(|e| failed("write", &loc, e))?;
        return Ok(());
    }
    let upload = s
        .put_multipart(&p)
        .await
        .map_err(|e| failed("write", &loc, e))?;
    let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    w.write(&bytes);
    w.finish().await.map_err(|e| failed("write", &loc, e))?;
    Ok(())
}

/// [`write_async`] from a synchronous thread.
pub fn write(loc: &Location, bytes: Vec<u8>) -> Result<()> {
    block_on(write_async(loc.clone(), bytes)).map_err(Into::into)
}

/// Creates the object `loc` with `bytes`, only if it does not exist yet (S3 `If-None-Match:
/// *`): a second writer gets [`StorageError::AlreadyExists`] and nothing is overwritten.
pub fn write_new(loc: &Location, bytes: Vec<u8>) -> std::result::Result<(), StorageError> {
    let (_, s, p) = object(loc).map_err(|e| StorageError::Failed {
        op: "create",
        location: loc.clone(),
        cause: format!("{e:#}"),
    })?;
    block_on(async {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        s.put_opts(&p, PutPayload::from(bytes), opts)
            .await
            .map(|_| ())
            .map_err(|e| failed("create", loc, e))
    })
}

/// Names of the "directories" directly under `loc` (common prefixes of its keys).
pub fn list_dirs(loc: &Location) -> Result<Vec<String>> {
    let (_, s, p) = object(loc)?;
    block_on(async {
        let prefix = (!p.as_ref().is_empty()).then_some(&p);
        let r = s
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| failed("list", loc, e))?;
        Ok(r.common_prefixes
            .iter()
            .filter_map(|c| c.filename().map(str::to_string))
            .collect())
    })
}

/// Whether any object lies under the prefix `loc`.
pub fn any_under(loc: &Location) -> Result<bool> {
    let (_, s, p) = object(loc)?;
    block_on(async {
        match s.list(Some(&p)).next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(failed("list", loc, e).into()),
        }
    })
}

/// Deletes every object under `loc` (the "directory" and everything in it). Returns how
/// many were deleted; none is not an error.
pub fn delete_all(loc: &Location) -> Result<usize> {
    let (_, s, p) = object(loc)?;
    block_on(async {
        let mut n = 0;
        let mut list = s.list(Some(&p));
        let mut paths = Vec::new();
        while let Some(m) = list.next().await {
            paths.push(m.map_err(|e| failed("list", loc, e))?.location);
        }
        // The key itself too: `loc` may be one object rather than a prefix.
        if size_of(&*s, &p).await.is_some() {
            paths.push(p.clone());
        }
        for path in paths {
            match s.delete(&path).await {
                Ok(()) => n += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(failed("delete", loc, e).into()),
            }
        }
        Ok(n)
    })
}

/// The size of the object at `p`, if there is one (errors count as none).
async fn size_of(s: &dyn ObjectStore, p: &ObjectPath) -> Option<u64> {
    s.head(p).await.ok().map(|m| m.size)
}

/// Copies the object `from` to `to` inside one store (server-side).
pub fn copy(from: &Location, to: &Location) -> Result<()> {
    let (fo, s, fp) = object(from)?;
    let (to_o, _, tp) = object(to)?;
    if (fo.scheme, &fo.authority) != (to_o.scheme, &to_o.authority) {
        // Different stores: through this process.
        return write(to, read(from)?);
    }
    block_on(async { s.copy(&fp, &tp).await.map_err(|e| failed("copy", to, e)) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "hdfs"))]
    #[test]
    fn hdfs_without_the_feature_is_one_line_saying_how_to_build_it() {
        let l = Location::parse("hdfs://nn:8020/ck").unwrap();
        let e = format!("{:#}", read(&l).unwrap_err());
        assert!(
            e.contains("hdfs://nn:8020/ck") && e.contains("--features hdfs"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn a_local_path_is_not_an_object_location() {
        let e = read(&Location::Local("/tmp/x".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/tmp/x is not an object-store location"), "{e}");
    }
}
