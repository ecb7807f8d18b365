//! Flink's `KafkaSource`: not written yet (the sink is in [`super::sink`]).
