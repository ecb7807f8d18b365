//! The window operator (Flink's `WindowOperator` and `EvictingWindowOperator`): window
//! contents, trigger state, merging windows and timers as keyed state of the operator,
//! namespaced by window.
//!
//! | file | what |
//! |---|---|
//! | [`contents`] | what a window keeps of its elements (reduced, aggregated, listed), per key and window |
//! | [`merge`] | the in-flight windows of a key for merging assigners (Flink's `MergingWindowSet`) |

pub(crate) mod contents;
pub(crate) mod functions;
pub(crate) mod merge;
pub(crate) mod operator;
