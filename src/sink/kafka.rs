//! The Kafka sink: window records to the output topic and dead letters to the dead-letter
//! topic, through one idempotent producer. Sends are queued without waiting; [`KafkaSink::flush`]
//! awaits every delivery of the batch.
//!
//! A record that can never be written — refused for its size or content, which a retry would
//! meet again ([`is_refusal`]) — is counted ([`KafkaSink::take_skipped`]), logged (at most 5
//! times a second, its key cut short) and skipped: replaying the batch would only crash-loop.
//! Every other failure (broker down, leader moving, timed out) stays fatal for the batch, which
//! is then not committed. A dead letter is cut to fit the producer's `message.max.bytes` before
//! it is sent, with a header saying so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use serde::Serialize;

use super::SinkError;
use crate::config::KafkaConfig;
use crate::decode::DecodeError;
use crate::engine::{fnv1a_from, FNV1A_OFFSET};
use crate::extract::Category;
use crate::redact;
use crate::window::{ClosedWindow, List};

/// `err` from creating a client with `properties`, with the values of secret properties
/// hidden: librdkafka names the value it refuses, and may quote others.
pub fn redact_client_error(err: KafkaError, properties: &BTreeMap<String, String>) -> KafkaError {
    let hide = |text: &str| {
        let mut text = redact::text(text);
        for (key, value) in properties {
            if !value.is_empty() && redact::is_secret(key) {
                text = text.replace(value.as_str(), redact::REDACTED);
            }
        }
        text
    };
    match err {
        KafkaError::ClientConfig(code, desc, key, value) => {
            let shown = redact::value(&key, &value);
            let desc = if value.is_empty() {
                hide(&desc)
            } else {
                hide(&desc.replace(value.as_str(), &shown))
            };
            KafkaError::ClientConfig(code, desc, key, shown)
        }
        KafkaError::ClientCreation(text) => KafkaError::ClientCreation(hide(&text)),
        other => other,
    }
}

/// Header names on dead letters.
pub mod headers {
    pub const ERROR: &str = "trendstream.error";
    pub const ERROR_KIND: &str = "trendstream.error.kind";
    pub const SOURCE_TOPIC: &str = "trendstream.source.topic";
    pub const SOURCE_PARTITION: &str = "trendstream.source.partition";
    pub const SOURCE_OFFSET: &str = "trendstream.source.offset";
    /// On a dead letter whose value was cut to fit: the value's original size in bytes.
    pub const TRUNCATED: &str = "trendstream.truncated";
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// Room left in a record for librdkafka's own framing.
const RECORD_OVERHEAD_BYTES: usize = 512;
/// The longest error text a dead letter carries.
const MAX_ERROR_BYTES: usize = 1_024;

/// Whether the broker (or librdkafka before it) refused the record itself: sending it again
/// would fail again.
pub fn is_refusal(err: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        err.rdkafka_error_code(),
        Some(
            MessageSizeTooLarge
                | InvalidMessageSize
                | MessageBatchTooLarge
                | InvalidRecord
                | InvalidTimestamp
                | PolicyViolation
        )
    )
}

/// A window record as it is written to the output topic.
#[derive(Debug, Serialize)]
pub struct WindowRecord<'a> {
    pub stream: &'a str,
    pub group: &'a str,
    pub window_start: i64,
    pub window_end: i64,
    pub messages: u64,
    pub top_terms: Listed<'a>,
    pub hashtags: Listed<'a>,
    pub mentions: Listed<'a>,
    pub urls: Listed<'a>,
    pub emails: Listed<'a>,
    pub keywords: Listed<'a>,
    /// Per list, the most a listed count may be below the true one: 0 when exact.
    pub errors: ListErrors,
}

/// A top-K list of a [`WindowRecord`]: `[[item, count], ...]`.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a>(pub List<'a>);

impl Serialize for Listed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0)
    }
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
        let list = |c: Category| Listed(w.top(c));
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

    /// Appends the record's key, `<stream>:<group>:<window_start>`, to `out`: the window's
    /// identity. A window written again (after a crash or a move) has the same key and the
    /// same value.
    pub fn write_key(&self, out: &mut String) {
        use std::fmt::Write;
        write!(out, "{}:{}:{}", self.stream, self.group, self.window_start)
            .expect("writing to a string cannot fail");
    }

    /// The output partition: by `<stream>:<group>`, so each group's windows stay in order on
    /// one partition.
    pub fn partition(&self, partitions: i32) -> i32 {
        let parts = [self.stream.as_bytes(), b":", self.group.as_bytes()];
        let hash = parts
            .iter()
            .fold(FNV1A_OFFSET, |h, part| fnv1a_from(h, part));
        (hash % partitions.max(1) as u64) as i32
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

/// What the delivery reports of a sink's records told, counted on the producer's thread.
#[derive(Default)]
struct Deliveries {
    state: std::sync::Mutex<Delivered>,
    /// Told when nothing is outstanding any more, and at a failure.
    settled: tokio::sync::Notify,
}

#[derive(Default)]
struct Delivered {
    /// Records handed to librdkafka whose delivery report has not come.
    outstanding: u64,
    /// Records refused for good, skipped.
    skipped: u64,
    /// The first failure not yet returned.
    failure: Option<SinkError>,
}

impl Deliveries {
    fn state(&self) -> std::sync::MutexGuard<'_, Delivered> {
        // Nothing can panic while holding it.
        self.state
            .lock()
            .expect("delivery counts are never poisoned")
    }

    /// Waits until every record handed over is reported, or one has failed: returns the
    /// failure, or whether there was anything to wait for.
    async fn settle(&self) -> Result<bool, SinkError> {
        let mut waited = false;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(failure) = state.failure.take() {
                    return Err(failure);
                }
                if state.outstanding == 0 {
                    return Ok(waited);
                }
            }
            settled.await;
            waited = true;
        }
    }
}

/// The producer's context: counts delivery reports instead of answering one future a record.
struct Reports(Arc<Deliveries>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        let mut state = self.0.state();
        state.outstanding -= 1;
        let failed = match result {
            Ok(_) => false,
            Err((source, message)) if is_refusal(source) => {
                state.skipped += 1;
                log_skipped(message.topic(), message.key(), source);
                false
            }
            Err((source, message)) => {
                state
                    .failure
                    .get_or_insert_with(|| SinkError::KafkaProduce {
                        topic: message.topic().to_owned(),
                        source: source.clone(),
                    });
                true
            }
        };
        if failed || state.outstanding == 0 {
            self.0.settled.notify_waiters();
        }
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<Reports>,
    deliveries: Arc<Deliveries>,
    output_topic: String,
    output_partitions: i32,
    dead_letter_topic: String,
    /// The producer's `message.max.bytes`: dead letters are cut to fit it.
    max_record_bytes: usize,
    /// A window record's key and value, kept from one record to the next (librdkafka copies
    /// them).
    key: String,
    value: Vec<u8>,
}

impl KafkaSink {
    /// A producer for the output topic (of `output_partitions` partitions) and the dead letters.
    pub fn new(config: &KafkaConfig, output_partitions: i32) -> Result<KafkaSink, KafkaError> {
        let props = config.producer_properties();
        let deliveries = Arc::new(Deliveries::default());
        let producer = config
            .producer_client()
            .create_with_context(Reports(deliveries.clone()))
            .map_err(|err| redact_client_error(err, &props))?;
        let max_record_bytes = props
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        Ok(KafkaSink {
            producer,
            deliveries,
            output_topic: config.output_topic.clone(),
            output_partitions,
            dead_letter_topic: config.dead_letter_topic.clone(),
            max_record_bytes,
            key: String::new(),
            value: Vec::new(),
        })
    }

    /// Queues a window record.
    pub async fn send_window(&mut self, record: &WindowRecord<'_>) -> Result<(), SinkError> {
        self.value.clear();
        serde_json::to_writer(&mut self.value, record).expect("window records serialise");
        self.key.clear();
        record.write_key(&mut self.key);
        let out = BaseRecord::to(&self.output_topic)
            .key(self.key.as_bytes())
            .partition(record.partition(self.output_partitions))
            .payload(self.value.as_slice())
            .timestamp(record.window_end);
        self.enqueue(out).await
    }

    /// Queues a dead letter: the original key, value, timestamp and headers, plus headers
    /// that say why and where from. A value that would not fit the producer's
    /// `message.max.bytes` is cut to fit, and the `trendstream.truncated` header gives its size.
    pub async fn send_dead_letter(&mut self, dead: &DeadLetter) -> Result<(), SinkError> {
        let mut hdrs = OwnedHeaders::new();
        let mut header_bytes = 0;
        for (key, value) in &dead.headers {
            header_bytes += key.len() + value.as_ref().map_or(0, Vec::len);
            hdrs = hdrs.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let partition = dead.partition.to_string();
        let offset = dead.offset.to_string();
        let error = truncate(&dead.error, MAX_ERROR_BYTES);
        let payload = dead.payload.as_deref();
        let key_bytes = dead.key.as_ref().map_or(0, Vec::len);
        // What the value may take: the limit less the key, every header and the framing.
        let fixed =
            key_bytes + header_bytes + error.len() + dead.topic.len() + 128 + RECORD_OVERHEAD_BYTES;
        let room = self.max_record_bytes.saturating_sub(fixed);
        let original_size = payload.map_or(0, <[u8]>::len);
        let truncated = (original_size > room).then(|| original_size.to_string());
        for (key, value) in [
            (headers::ERROR, error),
            (headers::ERROR_KIND, dead.error_kind),
            (headers::SOURCE_TOPIC, dead.topic.as_str()),
            (headers::SOURCE_PARTITION, &partition),
            (headers::SOURCE_OFFSET, &offset),
        ]
        .into_iter()
        .chain(truncated.as_deref().map(|size| (headers::TRUNCATED, size)))
        {
            hdrs = hdrs.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut out: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&self.dead_letter_topic).headers(hdrs);
        if let Some(key) = &dead.key {
            out = out.key(key);
        }
        if let Some(payload) = payload {
            out = out.payload(&payload[..payload.len().min(room)]);
        }
        if let Some(ts) = dead.timestamp {
            out = out.timestamp(ts);
        }
        self.enqueue(out).await
    }

    /// Records refused for good and skipped since the last call.
    pub fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.deliveries.state().skipped)
    }

    /// Hands `record` to librdkafka ([`send_queued`]: waits while its queue is full). A record
    /// refused for good is counted, logged and skipped.
    async fn enqueue(&self, record: BaseRecord<'_, [u8], [u8]>) -> Result<(), SinkError> {
        let settle = async |sink: &mut &KafkaSink| sink.deliveries.settle().await;
        // Counted as outstanding first: its report may come before `send` returns. (librdkafka
        // gives a refused record back whole.)
        #[allow(clippy::result_large_err)]
        let send = |sink: &&KafkaSink, record| {
            sink.deliveries.state().outstanding += 1;
            let sent = sink.producer.send(record);
            if sent.is_err() {
                sink.deliveries.state().outstanding -= 1;
            }
            sent
        };
        match send_queued(&mut &*self, send, settle, record).await? {
            Queued::Sent(()) => Ok(()),
            Queued::Failed(source, back) if is_refusal(&source) => {
                self.deliveries.state().skipped += 1;
                log_skipped(back.topic, back.key, &source);
                Ok(())
            }
            Queued::Failed(source, back) => Err(SinkError::KafkaProduce {
                topic: back.topic.to_owned(),
                source,
            }),
        }
    }

    /// Waits until every queued record is acknowledged; the first failure is returned.
    pub async fn flush(&mut self) -> Result<(), SinkError> {
        self.deliveries.settle().await.map(drop)
    }

    /// Flushes librdkafka's own queue, for shutdown.
    pub fn close(&self, timeout: Duration) {
        if let Err(err) = self.producer.flush(timeout) {
            tracing::warn!(error = %err, "Producer did not flush before shutdown.");
        }
    }
}

/// What became of a record handed to librdkafka by [`send_queued`].
pub enum Queued<T, R> {
    /// In librdkafka's queue: what the send gave back (a delivery to await, or nothing).
    Sent(T),
    /// Refused for another reason than a full queue: the error and the record.
    Failed(KafkaError, R),
}

/// How long to pause before trying again when the queue is full and `settle` awaited nothing.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// Hands `record` to librdkafka with `send`. While librdkafka's local queue is full, awaits
/// outstanding deliveries with `settle` and tries again: at once when `settle` says it awaited
/// some, after [`QUEUE_FULL_PAUSE`] when not. An error of `settle` ends the attempt.
pub async fn send_queued<S, R, T, E>(
    state: &mut S,
    send: impl Fn(&S, R) -> Result<T, (KafkaError, R)>,
    mut settle: impl AsyncFnMut(&mut S) -> Result<bool, E>,
    mut record: R,
) -> Result<Queued<T, R>, E> {
    loop {
        match send(state, record) {
            Ok(sent) => return Ok(Queued::Sent(sent)),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                if !settle(state).await? {
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
            }
            Err((source, back)) => return Ok(Queued::Failed(source, back)),
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

static SKIPPED_LOG: std::sync::LazyLock<governor::DefaultDirectRateLimiter> =
    std::sync::LazyLock::new(|| {
        governor::RateLimiter::direct(governor::Quota::per_second(
            std::num::NonZeroU32::new(5).expect("5 > 0"),
        ))
    });

/// Logs a record refused for good, at most 5 times a second, its key cut to 64 bytes.
fn log_skipped(topic: &str, key: Option<&[u8]>, err: &KafkaError) {
    if SKIPPED_LOG.check().is_ok() {
        let key = key.map(|k| String::from_utf8_lossy(&k[..k.len().min(64)]).into_owned());
        tracing::warn!(
            topic,
            ?key,
            error = %err,
            "The broker refuses this record for good: skipping it."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_record_lists_each_category_as_items_and_counts() {
        use crate::window::{Budget, PartitionWindows, WindowSpec};
        let spec = WindowSpec {
            width: 20,
            slide: 10,
            out_of_orderness: 0,
        };
        let mut w = PartitionWindows::new(0, spec, 10, Budget::UNBOUNDED);
        let mut closed = Vec::new();
        let words = |c: &mut crate::window::Counts| {
            for (category, item) in [
                (Category::Term, "词"),
                (Category::Mention, "@x"),
                (Category::Term, "a\"b"),
                (Category::Term, "词"),
                (Category::Keyword, "k"),
            ] {
                c.add(category, item);
            }
        };
        w.record("r1", 1, 0, words, &mut closed);
        w.record("r1", 25, 1, |_| {}, &mut closed);
        let record = WindowRecord::new("danmu", &closed[0]);
        let json: serde_json::Value = serde_json::to_value(&record).unwrap();
        assert_eq!(
            json["top_terms"],
            serde_json::json!([["词", 2], ["a\"b", 1]])
        );
        assert_eq!(json["hashtags"], serde_json::json!([]));
        assert_eq!(json["mentions"], serde_json::json!([["@x", 1]]));
        assert_eq!(json["keywords"], serde_json::json!([["k", 1]]));
        let mut key = String::new();
        record.write_key(&mut key);
        assert_eq!(key, "danmu:r1:-10");
    }

    #[test]
    fn refusals_are_told_from_failures_that_may_pass() {
        let refused = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(is_refusal(&refused));
        for transient in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::QueueFull,
        ] {
            assert!(!is_refusal(&KafkaError::MessageProduction(transient)));
        }
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("主播太强", 7), "主播");
        assert_eq!(truncate("abc", 7), "abc");
    }

    #[test]
    fn a_refused_secret_property_is_reported_without_its_value() {
        use rdkafka::types::RDKafkaConfRes;
        let props = BTreeMap::from([("sasl.password".to_owned(), "hunter2".to_owned())]);
        // librdkafka's own text names the value it refuses.
        let err = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"hunter2\" for configuration property \"sasl.password\"".to_owned(),
            "sasl.password".to_owned(),
            "hunter2".to_owned(),
        );
        let shown = redact_client_error(err, &props).to_string();
        assert!(shown.contains("sasl.password"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");

        let err = KafkaError::ClientCreation("cannot log in with hunter2".to_owned());
        let shown = redact_client_error(err, &props).to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
