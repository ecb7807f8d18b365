//! Flink's Kafka connectors: [`KafkaSink`](sink::KafkaSink), exactly-once through one Kafka
//! transaction per subtask and checkpoint, and (not yet written) the `KafkaSource` in
//! [`source`], whose splits will be the topic partitions.
//!
//! Both talk to the brokers through librdkafka (the `rdkafka` crate, built from source). The
//! sink's recovery also needs two requests librdkafka does not offer — committing a
//! transaction another producer left prepared ([`wire`]) — which Flink's connector gets by
//! reflection into the Java client.

pub mod sink;
pub mod source;
pub mod wire;

use std::collections::BTreeMap;

/// Client properties passed through to librdkafka (Kafka's client configuration names:
/// `security.protocol`, `client.id`, `session.timeout.ms`, …), in the order they were set.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientProperties {
    props: BTreeMap<String, String>,
}

impl ClientProperties {
    pub(crate) fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.props.insert(key.into(), value.into());
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }

    /// A librdkafka configuration with these properties and then `fixed` (what the connector
    /// needs set its own way, which a user's property may not change).
    pub(crate) fn config(&self, fixed: &[(&str, &str)]) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        for (k, v) in &self.props {
            c.set(k, v);
        }
        for (k, v) in fixed {
            c.set(*k, *v);
        }
        c
    }
}

/// Java's `String.hashCode` (UTF-16 code units), which Flink's split assignment hashes
/// topic names with.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The subtask that reads `partition` of `topic` among `parallelism` subtasks, as Flink's
/// `KafkaSourceEnumerator.getSplitOwner` assigns it: a topic's partitions go round-robin
/// from a start subtask chosen by the topic's name, so several topics spread evenly.
///
/// ```
/// # use floe::connectors::kafka::split_owner;
/// assert_eq!(split_owner("words", 0, 1), 0);
/// let owners: Vec<u32> = (0..4).map(|p| split_owner("words", p, 2)).collect();
/// assert_eq!(owners[0], 1 - owners[1]);
/// ```
pub fn split_owner(topic: &str, partition: i32, parallelism: u32) -> u32 {
    let p = parallelism.max(1) as i64;
    let start = ((java_string_hash(topic).wrapping_mul(31) & 0x7FFF_FFFF) as i64) % p;
    ((start + partition as i64) % p) as u32
}

/// A broker error as one line naming what failed, for task failures.
fn kafka_error(what: impl std::fmt::Display, e: rdkafka::error::KafkaError) -> anyhow::Error {
    crate::anyhow!("{what}: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_java() {
        // "hello".hashCode() == 99162322 and "topic".hashCode() == 110546223 in Java.
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(java_string_hash("topic"), 110546223);
        assert_eq!(java_string_hash(""), 0);
    }

    #[test]
    fn partitions_go_round_robin_from_the_topics_start() {
        let start = split_owner("topic", 0, 3);
        // ((110546223 * 31) & 0x7FFFFFFF) % 3, computed by hand in i32 arithmetic.
        assert_eq!(
            start,
            ((110546223i32.wrapping_mul(31) & 0x7FFF_FFFF) % 3) as u32
        );
        for p in 0..6 {
            assert_eq!(split_owner("topic", p, 3), (start + p as u32) % 3);
        }
    }
}
