//! Bounds on the records and keys that flow through a job.

use serde::{de::DeserializeOwned, Serialize};

/// A record type: cloneable, sendable between worker threads and processes, and
/// serializable so that it can be exchanged between workers and kept in state.
///
/// Implemented for every type that satisfies the bounds.
pub trait Data: Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> Data for T {}

/// A key type. Keys are compared for equality in memory; their key group is derived from
/// their serialized bytes (see [`crate::state::keygroup`]), so it never depends on the
/// process, the platform or the Rust release.
pub trait Key: Data + Eq {}
impl<T: Data + Eq> Key for T {}

/// A string that stores up to 24 bytes inline, without a heap allocation.
///
/// Words, ids and most keys fit inline, so a pipeline that splits lines into `Str`
/// words allocates nothing per word. It derefs to `&str` and prints like `String`.
///
/// ```
/// use floe::prelude::Str;
/// let w = Str::from("spark");
/// assert_eq!(w.as_str(), "spark");
/// ```
pub type Str = compact_str::CompactString;
