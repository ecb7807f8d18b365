//! Flink's `KafkaSource`.
