//! Checkpoints: when they are taken and completed ([`coordinator`], pure decision logic
//! with no I/O), what they contain on disk ([`metadata`]) and what every file and
//! directory is called ([`layout`]), whether a snapshot fits a job and which of its state
//! belongs to which operator ([`restore`]), and how they are configured ([`config`]).

pub mod config;
pub mod coordinator;
pub mod layout;
pub mod metadata;
pub mod restore;
