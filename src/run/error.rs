//! The errors that stop the loop: each ends the run, with its reason.

use rdkafka::error::KafkaError;

use crate::config::ConfigError;
use crate::sink::SinkError;

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create the Kafka consumer")]
    CreateConsumer(#[source] KafkaError),
    #[error("cannot create the Kafka producer")]
    CreateProducer(#[source] KafkaError),
    #[error("cannot read topic metadata from kafka.brokers ({brokers})")]
    Metadata {
        brokers: String,
        #[source]
        source: KafkaError,
    },
    /// The brokers answered, but refused the client's credentials or certificate.
    #[error("Kafka at kafka.brokers ({brokers}) refused this client: {reason}")]
    KafkaRefused { brokers: String, reason: String },
    #[error("{key} ({topic}) names a topic that does not exist")]
    MissingTopic { key: String, topic: String },
    #[error("cannot subscribe")]
    Subscribe(#[source] KafkaError),
    #[error("Kafka consumer failed")]
    Consume(#[source] KafkaError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("cannot listen on http.listen ({addr})")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}
