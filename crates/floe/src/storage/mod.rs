//! Storage locations for checkpoints and savepoints: local paths and object stores.
//!
//! Every location Floe accepts — `-s`/`execution.state-recovery.path`,
//! `execution.checkpointing.dir` and `.savepoint-dir`, the `floe savepoint` commands and a
//! savepoint target given over REST — is parsed by [`Location::parse`], so the locations
//! Floe prints (`Savepoint completed. Path: file:/…` or `s3://…`) are locations it accepts.
//! Local paths keep plain file-system semantics (fsync, rename/link); object-store
//! locations (`s3://`, `s3a://`, `hdfs://` with the `hdfs` feature) go through
//! [`object_store`] (docs/architecture.md, "Checkpoint storage").

mod location;
mod store;

pub use location::{Location, ObjectLocation, Scheme};
pub(crate) use store::spawn;
pub use store::{
    any_under, configure, copy, delete_all, list_dirs, read, size, write, write_async, write_new,
    StorageError, MULTIPART_THRESHOLD,
};
