//! An S3-compatible object store for tests (s3s-fs).
