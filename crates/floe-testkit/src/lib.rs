//! Real parts for Floe's tests, started by the tests themselves and stopped by PID when
//! they are dropped: an S3-compatible object store ([`s3`], the `s3s-fs` server that
//! `.ci/run` installs) and several "hosts" on one machine built from network namespaces
//! ([`netns`]). Nothing here is a mock: the engine talks to them over real sockets.

pub mod netns;
pub mod s3;
