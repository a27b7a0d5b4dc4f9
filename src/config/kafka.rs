//! `[kafka]`: brokers, group, topics and the librdkafka properties of each client.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};
use crate::redact;

/// `Debug` shows secrets redacted, like [`Config::redacted`](super::Config::redacted).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// Consumer group id.
    pub group_id: String,
    /// Client id for broker logs.
    pub client_id: String,
    /// Topic for window results.
    pub output_topic: String,
    /// Topic for records that could not be decoded.
    pub dead_letter_topic: String,
    /// librdkafka properties for every client (security settings, say); a property also set in
    /// `consumer` or `producer` takes that value there.
    #[serde(default, deserialize_with = "properties")]
    pub common: BTreeMap<String, String>,
    /// librdkafka properties for the consumer.
    #[serde(deserialize_with = "properties")]
    pub consumer: BTreeMap<String, String>,
    /// librdkafka properties for the producer.
    #[serde(deserialize_with = "properties")]
    pub producer: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        redact::debug_settings(f, "KafkaConfig", self, KafkaConfig::redact)
    }
}

impl KafkaConfig {
    /// The consumer's client: its properties, then those trendstream sets itself, from the
    /// keys above and to commit only what was written.
    pub fn consumer_client(&self) -> ClientConfig {
        client(&self.consumer_properties(), &self.owned_by_consumer())
    }

    /// The producer's client: its properties, then those trendstream sets itself (it writes
    /// window records and dead letters idempotently).
    pub fn producer_client(&self) -> ClientConfig {
        client(&self.producer_properties(), &self.owned_by_producer())
    }

    fn owned_by_consumer(&self) -> [(&'static str, &str); 5] {
        [
            ("group.id", &self.group_id),
            ("bootstrap.servers", &self.brokers),
            ("client.id", &self.client_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
        ]
    }

    fn owned_by_producer(&self) -> [(&'static str, &str); 3] {
        [
            ("bootstrap.servers", &self.brokers),
            ("client.id", &self.client_id),
            ("enable.idempotence", "true"),
        ]
    }

    /// The consumer's librdkafka properties: `common`, with `consumer` laid over it.
    pub fn consumer_properties(&self) -> BTreeMap<String, String> {
        laid_over(&self.common, &self.consumer)
    }

    /// The producer's librdkafka properties: `common`, with `producer` laid over it.
    pub fn producer_properties(&self) -> BTreeMap<String, String> {
        laid_over(&self.common, &self.producer)
    }

    /// Environment variables cannot carry dots, so librdkafka properties set through them
    /// arrive with underscores; librdkafka's own names never contain one.
    pub(super) fn normalise(&mut self) {
        for props in [&mut self.common, &mut self.consumer, &mut self.producer] {
            *props = std::mem::take(props)
                .into_iter()
                .map(|(k, v)| (k.replace('_', "."), v))
                .collect();
        }
    }

    /// These settings with their secrets replaced (see [`redact`]).
    pub(super) fn redact(&mut self) {
        self.brokers = redact::text(&self.brokers);
        for props in [&mut self.common, &mut self.consumer, &mut self.producer] {
            for (key, value) in props.iter_mut() {
                *value = redact::value(key, value);
            }
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("kafka.brokers", &self.brokers),
            ("kafka.group_id", &self.group_id),
            ("kafka.client_id", &self.client_id),
            ("kafka.output_topic", &self.output_topic),
            ("kafka.dead_letter_topic", &self.dead_letter_topic),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key, "\"\"", "must not be empty"));
            }
        }
        let consumer: Vec<&str> = self.owned_by_consumer().map(|(k, _)| k).to_vec();
        let producer: Vec<&str> = self.owned_by_producer().map(|(k, _)| k).to_vec();
        for (table, props, owned) in [
            ("common", &self.common, &consumer),
            ("common", &self.common, &producer),
            ("consumer", &self.consumer, &consumer),
            ("producer", &self.producer, &producer),
        ] {
            for owned in owned {
                if let Some(value) = props.get(*owned) {
                    return Err(invalid(
                        format!("kafka.{table}.\"{owned}\""),
                        value,
                        "is set by trendstream itself and cannot be configured",
                    ));
                }
            }
        }
        if self.output_topic == self.dead_letter_topic {
            return Err(invalid(
                "kafka.dead_letter_topic",
                &self.dead_letter_topic,
                "must differ from kafka.output_topic",
            ));
        }
        Ok(())
    }
}

fn laid_over(
    base: &BTreeMap<String, String>,
    over: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut props = base.clone();
    props.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
    props
}

/// librdkafka properties are strings, but `10` and `true` are fine to write too. (Environment
/// variables arrive as strings, exactly as written: see `config/env.rs`.)
fn properties<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Str(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::Str(s) => s,
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// A client configuration of `props`, then `owned` over them.
fn client(props: &BTreeMap<String, String>, owned: &[(&str, &str)]) -> ClientConfig {
    let mut client = ClientConfig::new();
    for (key, value) in props {
        client.set(key, value);
    }
    for (key, value) in owned {
        client.set(*key, *value);
    }
    client
}
