//! One batch: through the engine into a [`Job`], then out to the sinks, acknowledged,
//! checkpointed and committed by the [`Writer`].
//!
//! The writer works on one job at a time in a task of its own, so the loop polls and processes
//! batch N+1 while batch N's writes are being acknowledged. Jobs are written in order and a
//! batch's offsets are committed only once every write of the batch is acknowledged, exactly as
//! if the batches ran one after another: the overlap changes when work happens, not what is
//! written.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracing::{debug, warn, Instrument};

use super::consumer::Kafka;
use super::RunError;
use crate::config::Config;
use crate::engine::{BatchCounts, Engine, Gap, Input};
use crate::extract::Category;
use crate::observe::Metrics;
use crate::retry::with_retry;
use crate::sink::kafka::{DeadLetter, KafkaSink, WindowRecord};
use crate::store::checkpoint::{Checkpoint, Checkpoints};
use crate::store::leaderboard::{Leaderboard, Leaderboards};
use crate::window::ClosedWindow;

/// What one batch must write, and where its partitions continue from once it is written.
pub(super) struct Job {
    closed: Vec<ClosedWindow>,
    dead: Vec<DeadLetter>,
    checkpoints: Vec<(String, i32, Checkpoint)>,
    counts: BatchCounts,
}

/// What a written job reports back to the loop.
pub(super) struct Written {
    /// Partitions whose checkpoint was refused: another instance is ahead on them.
    pub refused: Vec<(String, i32)>,
}

/// Runs the batch through the engine; the result is owned, ready for the writer. Also returns
/// the partitions whose records did not start where they were sent to.
pub(super) fn prepare(engine: &mut Engine, batch: &[BorrowedMessage<'_>]) -> (Job, Vec<Gap>) {
    let inputs: Vec<Input<'_>> = batch
        .iter()
        .map(|m| Input {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            payload: m.payload(),
            timestamp: m.timestamp().to_millis(),
        })
        .collect();
    // CPU work: off the async runtime's worker, which can run the writer meanwhile.
    let out = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| engine.process(&inputs))
        }
        _ => engine.process(&inputs),
    };
    let dead = out
        .dead
        .iter()
        .map(|(index, err)| {
            let m = &batch[*index];
            log_dead_letter(m, err);
            DeadLetter::new(m, err)
        })
        .collect();

    let mut partitions: Vec<(&str, i32)> =
        batch.iter().map(|m| (m.topic(), m.partition())).collect();
    partitions.sort_unstable();
    partitions.dedup();
    let checkpoints = partitions
        .into_iter()
        .filter_map(|(t, p)| engine.checkpoint(t, p).map(|c| (t.to_owned(), p, c)))
        .collect();
    let job = Job {
        closed: out.closed,
        dead,
        checkpoints,
        counts: out.counts,
    };
    (job, out.gaps)
}

/// Writes jobs one at a time, each in a task of its own.
pub(super) struct Writer {
    sinks: Arc<Sinks>,
    in_flight: Option<JoinHandle<Result<Written, RunError>>>,
}

struct Sinks {
    consumer: Arc<Kafka>,
    kafka: Mutex<KafkaSink>,
    leaderboards: Leaderboards,
    checkpoints: Checkpoints,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    /// Stream names by stream id.
    streams: Vec<String>,
}

impl Writer {
    pub(super) fn new(
        consumer: Arc<Kafka>,
        kafka: KafkaSink,
        leaderboards: Leaderboards,
        checkpoints: Checkpoints,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        engine: &Engine,
    ) -> Writer {
        let streams = engine.streams().iter().map(|s| s.name.clone()).collect();
        Writer {
            sinks: Arc::new(Sinks {
                consumer,
                kafka: Mutex::new(kafka),
                leaderboards,
                checkpoints,
                config,
                metrics,
                streams,
            }),
            in_flight: None,
        }
    }

    /// Starts writing `job`. The job before it must be finished.
    pub(super) fn start(&mut self, job: Job) {
        assert!(self.in_flight.is_none(), "one job in flight at a time");
        let span = tracing::info_span!("batch", records = job.counts.records);
        let sinks = Arc::clone(&self.sinks);
        self.in_flight = Some(tokio::spawn(
            async move { sinks.write(job).await }.instrument(span),
        ));
    }

    /// Waits until the job in flight, if any, is written and committed.
    pub(super) async fn finish(&mut self) -> Result<Option<Written>, RunError> {
        let Some(task) = self.in_flight.as_mut() else {
            return Ok(None);
        };
        let written = task.await.expect("the write task does not panic");
        self.in_flight = None;
        written.map(Some)
    }

    /// Flushes the producer's own queue, for shutdown (after [`Writer::finish`]).
    pub(super) async fn close(&self) {
        self.sinks
            .kafka
            .lock()
            .await
            .close(std::time::Duration::from_secs(10));
    }
}

impl Drop for Writer {
    /// A loop that stops without finishing (an error, or its task dropped) stops its write too,
    /// as a crash would: nothing of that job is committed.
    fn drop(&mut self) {
        if let Some(task) = &self.in_flight {
            task.abort();
        }
    }
}

impl Sinks {
    async fn write(&self, job: Job) -> Result<Written, RunError> {
        let config = &self.config;
        let mut kafka = self.kafka.lock().await;
        for closed in &job.closed {
            let stream = &self.streams[usize::from(closed.stream)];
            kafka
                .send_window(&WindowRecord::new(stream, closed))
                .await?;
        }
        for dead in &job.dead {
            kafka.send_dead_letter(dead).await?;
        }
        let boards: Vec<Leaderboard<'_>> = job
            .closed
            .iter()
            .map(|c| Leaderboard {
                stream: &self.streams[usize::from(c.stream)],
                group: &c.group,
                window_end: c.window_end,
                terms: &c.top[Category::Term.index()],
            })
            .collect();
        with_retry(config.retry(), "redis write", || {
            self.leaderboards.write(&boards)
        })
        .await?;
        kafka.flush().await?;
        let skipped = kafka.take_skipped();
        drop(kafka);

        // Every output of the batch is acknowledged: save where each partition can continue
        // from, then tell the group how far it got.
        let checkpoints: Vec<(&str, i32, Checkpoint)> = job
            .checkpoints
            .iter()
            .map(|(t, p, c)| (t.as_str(), *p, *c))
            .collect();
        let group = config.kafka().group_id.as_str();
        let refused = with_retry(config.retry(), "checkpoint write", || {
            self.checkpoints.save(group, &checkpoints)
        })
        .await?;
        for (topic, partition) in &refused {
            warn!(
                topic,
                partition, "Another instance is ahead on this partition; letting it go."
            );
        }
        let progress: Vec<(&str, i32, i64)> = checkpoints
            .iter()
            .filter(|(t, p, _)| !refused.contains(&(t, *p)))
            .map(|(t, p, c)| (*t, *p, c.next))
            .collect();
        commit(&self.consumer, &progress).await;
        self.metrics.add_batch(&job.counts);
        self.metrics
            .records_skipped
            .fetch_add(skipped, std::sync::atomic::Ordering::Relaxed);
        debug!(
            records = job.counts.records,
            windows = job.closed.len(),
            dead_letters = job.counts.dead_letters,
            "Batch committed."
        );
        Ok(Written {
            refused: refused
                .into_iter()
                .map(|(t, p)| (t.to_owned(), p))
                .collect(),
        })
    }
}

/// Commits each partition's next offset. A failed commit is not fatal: the checkpoints in Redis
/// are what a partition continues from; the group's offsets show progress (and lag).
async fn commit(consumer: &Arc<Kafka>, progress: &[(&str, i32, i64)]) {
    if progress.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for &(topic, partition, next) in progress {
        tpl.add_partition_offset(topic, partition, Offset::Offset(next))
            .expect("offsets are settable");
    }
    let c = Arc::clone(consumer);
    let result = tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync))
        .await
        .expect("commit task does not panic");
    if let Err(err) = result {
        warn!(error = %err, "Offset commit failed.");
    }
}

static DEAD_LETTER_LOG: std::sync::LazyLock<DefaultDirectRateLimiter> =
    std::sync::LazyLock::new(|| {
        RateLimiter::direct(Quota::per_second(NonZeroU32::new(5).expect("5 > 0")))
    });

fn log_dead_letter(m: &BorrowedMessage<'_>, err: &crate::decode::DecodeError) {
    if DEAD_LETTER_LOG.check().is_ok() {
        warn!(
            topic = m.topic(),
            partition = m.partition(),
            offset = m.offset(),
            kind = err.kind(),
            error = %err,
            "Sending an undecodable record to the dead-letter topic."
        );
    }
}
