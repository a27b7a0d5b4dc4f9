//! The Kafka sink: window records to the output topic and dead letters to the dead-letter
//! topic, through one idempotent producer. Sends are queued without waiting; [`KafkaSink::flush`]
//! awaits every delivery of the batch.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use serde::Serialize;

use super::SinkError;
use crate::config::KafkaConfig;
use crate::decode::DecodeError;
use crate::engine::fnv1a;
use crate::extract::Category;
use crate::window::ClosedWindow;

/// Header names on dead letters.
pub mod headers {
    pub const ERROR: &str = "trendstream.error";
    pub const ERROR_KIND: &str = "trendstream.error.kind";
    pub const SOURCE_TOPIC: &str = "trendstream.source.topic";
    pub const SOURCE_PARTITION: &str = "trendstream.source.partition";
    pub const SOURCE_OFFSET: &str = "trendstream.source.offset";
}

/// A window record as it is written to the output topic.
#[derive(Debug, Serialize)]
pub struct WindowRecord<'a> {
    pub stream: &'a str,
    pub group: &'a str,
    pub window_start: i64,
    pub window_end: i64,
    pub messages: u64,
    pub top_terms: &'a [(String, u64)],
    pub hashtags: &'a [(String, u64)],
    pub mentions: &'a [(String, u64)],
    pub urls: &'a [(String, u64)],
    pub emails: &'a [(String, u64)],
    pub keywords: &'a [(String, u64)],
    /// Per list, the most a listed count may be below the true one: 0 when exact.
    pub errors: ListErrors,
}

/// Per list of a [`WindowRecord`], the most a listed count may be below the true one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ListErrors {
    pub top_terms: u64,
    pub hashtags: u64,
    pub mentions: u64,
    pub urls: u64,
    pub emails: u64,
    pub keywords: u64,
}

impl<'a> WindowRecord<'a> {
    pub fn new(stream: &'a str, w: &'a ClosedWindow) -> Self {
        let list = |c: Category| w.top[c.index()].as_slice();
        let error = |c: Category| w.error[c.index()];
        WindowRecord {
            stream,
            group: &w.group,
            window_start: w.window_start,
            window_end: w.window_end,
            messages: w.messages,
            top_terms: list(Category::Term),
            hashtags: list(Category::Hashtag),
            mentions: list(Category::Mention),
            urls: list(Category::Url),
            emails: list(Category::Email),
            keywords: list(Category::Keyword),
            errors: ListErrors {
                top_terms: error(Category::Term),
                hashtags: error(Category::Hashtag),
                mentions: error(Category::Mention),
                urls: error(Category::Url),
                emails: error(Category::Email),
                keywords: error(Category::Keyword),
            },
        }
    }

    /// `<stream>:<group>:<window_start>`: the window's identity. A window written again (after
    /// a crash or a move) has the same key and the same value.
    pub fn key(&self) -> String {
        format!("{}:{}:{}", self.stream, self.group, self.window_start)
    }

    /// The output partition: by `<stream>:<group>`, so each group's windows stay in order on
    /// one partition.
    pub fn partition(&self, partitions: i32) -> i32 {
        let group = format!("{}:{}", self.stream, self.group);
        (fnv1a(group.as_bytes()) % partitions.max(1) as u64) as i32
    }
}

/// An undecodable record as it goes to the dead-letter topic: the original key, value,
/// timestamp and headers, where it was read and why it is one.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub error_kind: &'static str,
    pub error: String,
}

impl DeadLetter {
    pub fn new(m: &BorrowedMessage<'_>, err: &DecodeError) -> DeadLetter {
        DeadLetter {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            timestamp: m.timestamp().to_millis(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
            error_kind: err.kind(),
            error: err.to_string(),
        }
    }
}

/// Which topic a queued record goes to.
#[derive(Debug, Clone, Copy)]
enum Target {
    Output,
    DeadLetter,
}

pub struct KafkaSink {
    producer: FutureProducer,
    output_topic: String,
    output_partitions: i32,
    dead_letter_topic: String,
    pending: Vec<(Target, DeliveryFuture)>,
}

impl KafkaSink {
    /// A producer for the output topic (of `output_partitions` partitions) and the dead letters.
    pub fn new(config: &KafkaConfig, output_partitions: i32) -> Result<KafkaSink, KafkaError> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", &config.client_id);
        for (key, value) in &config.producer {
            client.set(key, value);
        }
        Ok(KafkaSink {
            producer: client.create()?,
            output_topic: config.output_topic.clone(),
            output_partitions,
            dead_letter_topic: config.dead_letter_topic.clone(),
            pending: Vec::new(),
        })
    }

    /// Queues a window record.
    pub async fn send_window(&mut self, record: &WindowRecord<'_>) -> Result<(), SinkError> {
        let payload = serde_json::to_vec(record).expect("window records serialise");
        let key = record.key();
        let topic = self.output_topic.clone();
        let out = FutureRecord::to(&topic)
            .key(key.as_bytes())
            .partition(record.partition(self.output_partitions))
            .payload(payload.as_slice())
            .timestamp(record.window_end);
        self.enqueue(Target::Output, out).await
    }

    /// Queues a dead letter: the original key, value, timestamp and headers, plus headers
    /// that say why and where from.
    pub async fn send_dead_letter(&mut self, dead: &DeadLetter) -> Result<(), SinkError> {
        let mut hdrs = OwnedHeaders::new();
        for (key, value) in &dead.headers {
            hdrs = hdrs.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let partition = dead.partition.to_string();
        let offset = dead.offset.to_string();
        for (key, value) in [
            (headers::ERROR, dead.error.as_str()),
            (headers::ERROR_KIND, dead.error_kind),
            (headers::SOURCE_TOPIC, dead.topic.as_str()),
            (headers::SOURCE_PARTITION, &partition),
            (headers::SOURCE_OFFSET, &offset),
        ] {
            hdrs = hdrs.insert(Header {
                key,
                value: Some(value),
            });
        }
        let topic = self.dead_letter_topic.clone();
        let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(hdrs);
        if let Some(key) = &dead.key {
            out = out.key(key);
        }
        if let Some(payload) = &dead.payload {
            out = out.payload(payload);
        }
        if let Some(ts) = dead.timestamp {
            out = out.timestamp(ts);
        }
        self.enqueue(Target::DeadLetter, out).await
    }

    async fn enqueue(
        &mut self,
        target: Target,
        mut record: FutureRecord<'_, [u8], [u8]>,
    ) -> Result<(), SinkError> {
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.pending.push((target, delivery));
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    // The local queue is full: let deliveries drain before trying again.
                    self.await_pending().await?;
                    if self.pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Err((source, back)) => {
                    return Err(SinkError::KafkaProduce {
                        topic: back.topic.to_owned(),
                        source,
                    })
                }
            }
        }
    }

    async fn await_pending(&mut self) -> Result<(), SinkError> {
        for (target, delivery) in std::mem::take(&mut self.pending) {
            let topic = || match target {
                Target::Output => self.output_topic.clone(),
                Target::DeadLetter => self.dead_letter_topic.clone(),
            };
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((source, _))) => {
                    return Err(SinkError::KafkaProduce {
                        topic: topic(),
                        source,
                    })
                }
                Err(_cancelled) => {
                    return Err(SinkError::KafkaProduce {
                        topic: topic(),
                        source: KafkaError::Canceled,
                    })
                }
            }
        }
        Ok(())
    }

    /// Waits until every queued record is acknowledged; the first failure is returned.
    pub async fn flush(&mut self) -> Result<(), SinkError> {
        self.await_pending().await
    }

    /// Flushes librdkafka's own queue, for shutdown.
    pub fn close(&self, timeout: Duration) {
        if let Err(err) = self.producer.flush(timeout) {
            tracing::warn!(error = %err, "Producer did not flush before shutdown.");
        }
    }
}
