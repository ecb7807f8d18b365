//! The DataStream API: what job code is written against.

pub(crate) mod args;
pub mod data;
pub mod env;
pub mod functions;
pub mod join;
pub mod params;
pub mod print;
pub mod process;
pub mod stream;
pub mod time;
pub mod tuple;
pub mod window;
