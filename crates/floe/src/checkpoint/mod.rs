//! Checkpoints: when they are taken and completed ([`coordinator`], pure decision logic
//! with no I/O), what they contain on disk ([`metadata`]) and how they are configured
//! ([`config`]).

pub mod config;
pub mod coordinator;
pub mod metadata;
