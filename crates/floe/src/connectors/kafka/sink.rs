//! Flink's `KafkaSink`.
