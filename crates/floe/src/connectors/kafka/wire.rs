//! The Kafka requests librdkafka does not expose.
