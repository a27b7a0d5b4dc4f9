//! `[streams.<name>]`: the input topics, each with the JSON field its records are grouped by.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError, KafkaConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Whether this stream is read.
    pub enabled: bool,
    /// Kafka topic of the stream.
    pub topic: String,
    /// JSON field holding the group key.
    pub group_by: String,
}

/// The enabled streams of `streams`, by name.
pub(super) fn enabled(
    streams: &BTreeMap<String, StreamConfig>,
) -> impl Iterator<Item = (&String, &StreamConfig)> {
    streams.iter().filter(|(_, s)| s.enabled)
}

/// At least one stream is enabled; the enabled ones are well named and read topics of their
/// own, none of them one `kafka` writes to.
pub(super) fn validate(
    streams: &BTreeMap<String, StreamConfig>,
    kafka: &KafkaConfig,
) -> Result<(), ConfigError> {
    let enabled: Vec<_> = enabled(streams).collect();
    if enabled.is_empty() {
        return Err(invalid(
            "streams",
            format!("{:?}", streams.keys().collect::<Vec<_>>()),
            "must contain at least one stream with enabled = true",
        ));
    }
    let mut topics = BTreeMap::new();
    for (name, stream) in &enabled {
        let valid_name = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name || name.is_empty() {
            return Err(invalid(
                format!("streams.{name}"),
                name,
                "stream names may hold only ASCII letters, digits, '_' and '-'",
            ));
        }
        if stream.topic.trim().is_empty() {
            return Err(invalid(
                format!("streams.{name}.topic"),
                "\"\"",
                "must not be empty",
            ));
        }
        if stream.group_by.trim().is_empty() {
            return Err(invalid(
                format!("streams.{name}.group_by"),
                "\"\"",
                "must not be empty",
            ));
        }
        if let Some(other) = topics.insert(stream.topic.as_str(), name) {
            return Err(invalid(
                format!("streams.{name}.topic"),
                &stream.topic,
                format!("is already read by stream {other}"),
            ));
        }
        if stream.topic == kafka.output_topic || stream.topic == kafka.dead_letter_topic {
            return Err(invalid(
                format!("streams.{name}.topic"),
                &stream.topic,
                "must differ from kafka.output_topic and kafka.dead_letter_topic",
            ));
        }
    }
    Ok(())
}
