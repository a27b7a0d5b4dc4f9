//! The Kafka side of the loop: the consumer and its rebalance callbacks, batches, and taking up
//! partitions from their checkpoints. (The writer commits: see [`super::batch`].)

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::positions::{seek as seek_to, Positions};
use super::RunError;
use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::retry::with_retry;
use crate::sink::kafka::redact_client_error;
use crate::store::checkpoint::Checkpoints;

/// The consumer, with its rebalance callbacks.
pub(super) type Kafka = StreamConsumer<RebalanceContext>;

/// A client of the consumer's group that never joins it, for offset look-ups: the group's
/// committed offsets, end offsets and log starts. Asked on the consumer's own connections, a
/// committed-offset look-up waits in line with its heartbeats to the group coordinator, and an
/// offset listing behind its fetches (on tansu under load librdkafka timed such listings out
/// after 10 s, "possibly held back by preceding Fetch"), and the loop waits with them.
pub(super) type OffsetsClient = Arc<BaseConsumer>;

/// Creates the [`OffsetsClient`]: the consumer's settings, never subscribed.
pub(super) fn offsets_client(config: &Config) -> Result<OffsetsClient, RunError> {
    config
        .kafka()
        .consumer_client()
        .create()
        .map(Arc::new)
        .map_err(|err| cannot_create(config, err))
}

/// A consumer-side client that could not be created, its error shown without the secrets.
fn cannot_create(config: &Config, err: KafkaError) -> RunError {
    let properties = config.kafka().consumer_properties();
    RunError::CreateConsumer(redact_client_error(err, &properties))
}

/// The offset `list` holds for a partition, if it holds one (not a logical offset).
pub(super) fn offset_in(list: &TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
    match list.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// How long start-up waits for broker metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// Revocations seen by the rebalance callback, for the loop to act on, and a count of
/// assignments.
pub struct RebalanceContext {
    revoked: Mutex<Vec<(String, i32)>>,
    assignments: AtomicU64,
    rebalancing: AtomicBool,
    refused: Mutex<Option<String>>,
    /// Readiness ends the moment partitions are revoked, not at the loop's next turn.
    metrics: Arc<Metrics>,
}

impl RebalanceContext {
    /// How many assignments (rebalances this instance took part in) there have been.
    pub fn assignments(&self) -> u64 {
        self.assignments.load(Ordering::Relaxed)
    }

    /// Whether revocations wait for the loop to act on them.
    pub fn has_revocations(&self) -> bool {
        !self.revoked.lock().expect("revoked list lock").is_empty()
    }

    /// Why the brokers refused this client (its credentials or its TLS handshake), if they
    /// did; retrying will not change their answer.
    pub fn refused(&self) -> Option<String> {
        self.refused.lock().expect("refused lock").clone()
    }

    /// Whether partitions were revoked and no new assignment has come yet.
    pub fn rebalancing(&self) -> bool {
        self.rebalancing.load(Ordering::Relaxed)
    }
}

impl ClientContext for RebalanceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let reason = crate::redact::text(reason);
        if is_refusal(&reason) {
            // librdkafka's log has said it already.
            debug!(%error, reason, "Kafka refused this client.");
            *self.refused.lock().expect("refused lock") = Some(reason);
        } else {
            warn!(%error, reason, "Kafka client error.");
        }
    }

    /// librdkafka's log, through `tracing` like rdkafka's default; a line saying the brokers
    /// refused this client is kept for [`RebalanceContext::refused`].
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // Without the thread name librdkafka puts first ("[thrd:main]: ").
        let message = message
            .strip_prefix("[thrd:")
            .and_then(|rest| rest.split_once("]: "))
            .map_or(message, |(_, rest)| rest);
        let message = crate::redact::text(message);
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) && is_refusal(&message) {
            *self.refused.lock().expect("refused lock") = Some(message.clone());
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => error!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Warning => warn!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Debug => debug!(target: "librdkafka", fac, "{message}"),
        }
    }
}

/// Whether a librdkafka log line says the brokers will not have this client as it is
/// configured: its credentials were refused, or the TLS handshake failed (an untrusted
/// certificate, say).
fn is_refusal(message: &str) -> bool {
    ["SASL authentication error", "SSL handshake failed"]
        .iter()
        .any(|refusal| message.contains(refusal))
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let mut revoked = self.revoked.lock().expect("revoked list lock");
                for elem in tpl.elements() {
                    revoked.push((elem.topic().to_owned(), elem.partition()));
                }
                self.rebalancing.store(true, Ordering::Relaxed);
                self.metrics.set_ready(false);
                info!(partitions = tpl.count(), "Partitions revoked.");
            }
            Rebalance::Assign(tpl) => {
                self.assignments.fetch_add(1, Ordering::Relaxed);
                self.metrics.rebalances.inc();
                self.rebalancing.store(false, Ordering::Relaxed);
                info!(partitions = tpl.count(), "Partitions assigned.");
            }
            Rebalance::Error(err) => warn!(error = %err, "Rebalance failed."),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(err) = result {
            warn!(error = %err, "Offset commit failed.");
        }
    }
}

pub(super) fn create_consumer(config: &Config, metrics: Arc<Metrics>) -> Result<Kafka, RunError> {
    let context = RebalanceContext {
        revoked: Mutex::default(),
        assignments: AtomicU64::default(),
        rebalancing: AtomicBool::default(),
        refused: Mutex::default(),
        metrics,
    };
    config
        .kafka()
        .consumer_client()
        .create_with_context(context)
        .map_err(|err| cannot_create(config, err))
}

/// The cluster's metadata, asked for every second until it comes, the brokers refuse this
/// client (which stops at once, with their reason) or [`METADATA_TIMEOUT`] passes.
async fn fetch_metadata(
    consumer: &Arc<Kafka>,
    config: &Config,
) -> Result<rdkafka::metadata::Metadata, RunError> {
    const ATTEMPT: Duration = Duration::from_secs(1);
    let started = Instant::now();
    loop {
        let c = Arc::clone(consumer);
        let result = tokio::task::spawn_blocking(move || c.fetch_metadata(None, ATTEMPT))
            .await
            .expect("metadata task does not panic");
        let source = match result {
            Ok(metadata) => return Ok(metadata),
            Err(source) => source,
        };
        if let Some(reason) = consumer.context().refused() {
            return Err(RunError::KafkaRefused {
                brokers: config.kafka().brokers.clone(),
                reason,
            });
        }
        if started.elapsed() >= METADATA_TIMEOUT {
            return Err(RunError::Metadata {
                brokers: config.kafka().brokers.clone(),
                source,
            });
        }
        // Serve the consumer's queue meanwhile: librdkafka's log lines and errors, a refusal
        // among them, are delivered there.
        let served = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
        if let Ok(Err(err)) = served {
            debug!(error = %err, "Kafka client error while reading metadata.");
        }
    }
}

/// The partitions trendstream reads from and writes to.
pub(super) struct Topology {
    /// Every partition of the input topics.
    pub inputs: Vec<(String, i32)>,
    pub output_partitions: i32,
}

/// Every topic trendstream reads or writes must exist before it starts.
pub(super) async fn check_topics(
    consumer: &Arc<Kafka>,
    config: &Config,
) -> Result<Topology, RunError> {
    let metadata = fetch_metadata(consumer, config).await?;
    let exists = |topic: &str| {
        metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none())
    };
    let mut wanted: Vec<(String, &str)> = config
        .enabled_streams()
        .map(|(name, s)| (format!("streams.{name}.topic"), s.topic.as_str()))
        .collect();
    wanted.push(("kafka.output_topic".into(), &config.kafka().output_topic));
    wanted.push((
        "kafka.dead_letter_topic".into(),
        &config.kafka().dead_letter_topic,
    ));
    for (key, topic) in wanted {
        if !exists(topic) {
            return Err(RunError::MissingTopic {
                key,
                topic: topic.to_owned(),
            });
        }
    }
    let partitions = |topic: &str| {
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(1, |t| t.partitions().len() as i32)
    };
    Ok(Topology {
        inputs: config
            .enabled_streams()
            .flat_map(|(_, s)| (0..partitions(&s.topic)).map(|p| (s.topic.clone(), p)))
            .collect(),
        output_partitions: partitions(&config.kafka().output_topic).max(1),
    })
}

/// Receives records until the batch is full, `batch.max_wait` has passed since its first
/// record, shutdown is asked for (the `bool`), or `idle_until` has come with no record. Once
/// `batch.min_wait` has passed, a batch also ends as soon as no record is waiting while
/// `writer_idle` says the writer has nothing to do: records then go out without waiting
/// `batch.max_wait` for company, while a consumer that is behind (records always waiting) or a
/// busy writer still gets full batches. (A writer that becomes idle while the loop waits for
/// records is seen at the next record.)
pub(super) async fn poll_batch<'c>(
    consumer: &'c Kafka,
    config: &Config,
    idle_until: Instant,
    writer_idle: impl Fn() -> bool,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<(Vec<BorrowedMessage<'c>>, bool), RunError> {
    let mut batch = Vec::new();
    // Once the batch has a record: when it may end early, and when it must end.
    let mut ends: Option<(Instant, Instant)> = None;
    loop {
        if let Some((early, _)) = ends {
            match consumer.recv().now_or_never() {
                Some(received) => {
                    if accept(received, &mut batch, config)? {
                        return Ok((batch, false));
                    }
                    continue;
                }
                None if writer_idle() && Instant::now() >= early => return Ok((batch, false)),
                None => {}
            }
        }
        let wake = match ends {
            None => idle_until,
            Some((early, _)) if writer_idle() => early,
            Some((_, end)) => end,
        };
        let received = tokio::select! {
            biased;
            () = shutdown.as_mut() => return Ok((batch, true)),
            () = tokio::time::sleep_until(wake) => {
                if ends.is_none_or(|(_, end)| Instant::now() >= end) {
                    return Ok((batch, false));
                }
                continue; // It may end early now: see above.
            }
            received = consumer.recv() => received,
        };
        if accept(received, &mut batch, config)? {
            return Ok((batch, false));
        }
        if ends.is_none() && !batch.is_empty() {
            let (now, limits) = (Instant::now(), config.batch());
            ends = Some((
                now + limits.min_wait.min(limits.max_wait),
                now + limits.max_wait,
            ));
        }
    }
}

/// Takes what the consumer delivered: a record into `batch` (true once the batch is full), a
/// fatal error as the end, another error as a warning.
fn accept<'c>(
    received: KafkaResult<BorrowedMessage<'c>>,
    batch: &mut Vec<BorrowedMessage<'c>>,
    config: &Config,
) -> Result<bool, RunError> {
    match received {
        Ok(message) => {
            batch.push(message);
            Ok(batch.len() >= config.batch().max_records)
        }
        Err(err) if is_fatal(&err) => Err(RunError::Consume(err)),
        Err(err) => {
            warn!(error = %err, "Consumer error.");
            Ok(false)
        }
    }
}

fn is_fatal(err: &KafkaError) -> bool {
    err.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::Fatal)
}

/// Records of partitions revoked while the batch was collected belong to their next owner:
/// they are neither processed nor committed here.
pub(super) fn drop_revoked<'c>(
    consumer: &'c Kafka,
    engine: &mut Engine,
    mut batch: Vec<BorrowedMessage<'c>>,
) -> Vec<BorrowedMessage<'c>> {
    let revoked = std::mem::take(
        &mut *consumer
            .context()
            .revoked
            .lock()
            .expect("revoked list lock"),
    );
    if revoked.is_empty() {
        return batch;
    }
    for (topic, partition) in &revoked {
        engine.forget(topic, *partition);
    }
    let before = batch.len();
    batch.retain(|m| {
        !revoked
            .iter()
            .any(|(t, p)| t == m.topic() && *p == m.partition())
    });
    if batch.len() < before {
        debug!(
            dropped = before - batch.len(),
            "Left records of revoked partitions to their next owner."
        );
    }
    batch
}

/// Where a partition without a checkpoint starts: the group's committed offset, or the start
/// of the log when nothing is committed. (Records the consumer delivered before a rebalance
/// in the same poll were left out of the batch, so the first record in hand may be later.)
async fn fresh_start(
    offsets: &OffsetsClient,
    config: &Config,
    topic: &str,
    partition: i32,
    first_offset: Option<i64>,
) -> i64 {
    // With nothing committed, `auto.offset.reset` decides; only "earliest" means the log start.
    let from_log_start = config
        .kafka()
        .consumer
        .get("auto.offset.reset")
        .is_none_or(|v| matches!(v.as_str(), "earliest" | "smallest" | "beginning"));
    let c = Arc::clone(offsets);
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&topic, partition);
        let committed = c
            .committed_offsets(tpl, Duration::from_secs(10))
            .ok()
            .and_then(|t| offset_in(&t, &topic, partition));
        let watermarks = || c.fetch_watermarks(&topic, partition, Duration::from_secs(10));
        match (committed, first_offset) {
            (Some(o), _) => o,
            (None, Some(first)) if !from_log_start => first,
            (None, first) => watermarks().map_or(first.unwrap_or(0), |(low, high)| {
                if from_log_start {
                    first.map_or(low, |f| low.min(f))
                } else {
                    high
                }
            }),
        }
    })
    .await
    .expect("offsets task does not panic")
}

/// Partitions with records in the batch that this instance does not hold yet (newly
/// assigned), with the first offset in hand.
pub(super) fn new_partitions(
    engine: &Engine,
    batch: &[BorrowedMessage<'_>],
) -> Vec<(String, i32, Option<i64>)> {
    let mut new: Vec<(String, i32, Option<i64>)> = Vec::new();
    for m in batch {
        let (topic, partition) = (m.topic(), m.partition());
        if !engine.holds(topic, partition)
            && !new.iter().any(|(t, p, _)| t == topic && *p == partition)
        {
            new.push((topic.to_owned(), partition, Some(m.offset())));
        }
    }
    new
}

/// Takes up partitions newly assigned here from their checkpoints (`first_offset`: the first
/// record in hand, if any). Where the records in hand do not cover where processing starts,
/// the consumer is sent there (see [`Positions`]).
pub(super) async fn take_up_partitions(
    consumer: &Arc<Kafka>,
    offsets: &OffsetsClient,
    engine: &mut Engine,
    checkpoints: &Checkpoints,
    config: &Config,
    positions: &mut Positions,
    new: &[(String, i32, Option<i64>)],
) -> Result<(), RunError> {
    let group = config.kafka().group_id.as_str();
    // Each look-up is a round trip to Redis or the broker, slow while the group rebalances: all
    // partitions' at once, so a rebalance finds them taken up.
    let held: &Engine = engine;
    let starts = futures::future::try_join_all(new.iter().map(
        |(topic, partition, first_offset)| async move {
            let checkpoint = with_retry(config.retry(), "checkpoint read", || {
                checkpoints.load(group, topic, *partition)
            })
            .await?;
            let fresh_start = match (checkpoint, *first_offset) {
                // Continued from the checkpoint: `restore` does not use the fresh start.
                (Some(c), _) if held.resumes_from(&c) => c.resume,
                (Some(_), Some(first)) => first,
                _ => fresh_start(offsets, config, topic, *partition, *first_offset).await,
            };
            Ok::<_, RunError>((checkpoint, fresh_start))
        },
    ))
    .await?;
    for ((topic, partition, first_offset), (checkpoint, fresh_start)) in new.iter().zip(starts) {
        let (topic, partition, first_offset) = (topic.as_str(), *partition, *first_offset);
        let seek = engine.restore(topic, partition, checkpoint, fresh_start, first_offset);
        info!(
            topic,
            partition,
            ?first_offset,
            ?checkpoint,
            ?seek,
            "Taking up partition."
        );
        if let Some(offset) = seek {
            if let Err(err) = seek_to(consumer, topic, partition, offset).await {
                // Its records are held back until they cover the offset: sent again later.
                warn!(topic, partition, offset, error = %err, "Cannot seek; trying again later.");
            }
            positions.sought(topic, partition);
        }
    }
    Ok(())
}
