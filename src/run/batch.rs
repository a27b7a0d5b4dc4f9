//! One batch: through the engine into a [`Job`], then out to the sinks, acknowledged,
//! checkpointed and committed by the [`Writer`].
//!
//! The writer works in a task of its own, fed through a queue of [`QUEUED_JOBS`] jobs, so the
//! loop polls and processes the next batches while earlier ones are being written; a full queue
//! holds the loop back. A write takes every job waiting in the queue and writes them as one:
//! their window records and dead letters in order, each group's latest leaderboard only, one
//! flush, one checkpoint save and one commit of the offsets the last of them reached. So the
//! further the writer falls behind, the larger and cheaper per record its writes become, and an
//! idle writer writes each batch as it comes. Jobs are written in order and a job's offsets are
//! committed only once every write of it and of the jobs before it is acknowledged, exactly as
//! if the batches ran one after another: the overlap changes when work happens, not what is
//! written.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tracing::{debug, warn, Instrument};

use super::consumer::Kafka;
use super::RunError;
use crate::config::Config;
use crate::engine::{BatchCounts, Engine, Gap, Input};
use crate::extract::Category;
use crate::metrics::{DeadLetterKind, SinkLabel, StreamLabel, StreamPartition};
use crate::observe::Metrics;
use crate::retry::with_retry;
use crate::sink::kafka::{DeadLetter, KafkaSink, WindowRecord};
use crate::store::checkpoint::{Checkpoint, Checkpoints};
use crate::store::leaderboard::{Leaderboard, Leaderboards};
use crate::window::{ClosedWindow, StreamId};
use prometheus_client::metrics::histogram::Histogram;

/// What one batch must write, and where its partitions continue from once it is written.
pub(super) struct Job {
    closed: Vec<ClosedWindow>,
    dead: Vec<DeadLetter>,
    checkpoints: Vec<(String, i32, Checkpoint)>,
    counts: BatchCounts,
    /// The counts of each partition, by stream id.
    partitions: Vec<(StreamId, i32, BatchCounts)>,
}

/// What a write reports back to the loop.
pub(super) struct Written {
    /// How many jobs it wrote.
    jobs: usize,
    /// Partitions whose checkpoint was refused: another instance is ahead on them.
    pub refused: Vec<(String, i32)>,
}

/// Jobs the loop may hand over before it waits for the writer: enough for the writer to find
/// several waiting when it falls behind, few enough that the outputs held stay small.
pub(super) const QUEUED_JOBS: usize = 4;

/// Runs the batch through the engine; the result is owned, ready for the writer. Also returns
/// the partitions whose records did not start where they were sent to.
pub(super) fn prepare(
    engine: &mut Engine,
    batch: &[BorrowedMessage<'_>],
    metrics: &Metrics,
) -> (Job, Vec<Gap>) {
    let started = Instant::now();
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
        partitions: out.partitions,
    };
    metrics
        .batch_seconds
        .observe(started.elapsed().as_secs_f64());
    (job, out.gaps)
}

/// Writes jobs in order, in a task of its own, those waiting together (see the module docs).
pub(super) struct Writer {
    /// To the writer task; `None` once closed.
    jobs: Option<mpsc::Sender<Job>>,
    /// From the writer task, a report a write.
    written: mpsc::UnboundedReceiver<Written>,
    task: JoinHandle<Result<(), RunError>>,
    sinks: Arc<Sinks>,
    /// Jobs handed over and not reported written yet.
    unwritten: usize,
    /// Jobs handed over and not written yet: the writer task counts a write off as it
    /// finishes, before its report is taken in.
    unfinished: Arc<AtomicUsize>,
}

struct Sinks {
    consumer: Arc<Kafka>,
    kafka: Mutex<KafkaSink>,
    leaderboards: Leaderboards,
    checkpoints: Checkpoints,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    /// Stream names and topics by stream id.
    streams: Vec<(String, String)>,
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
        let streams = engine
            .streams()
            .iter()
            .map(|s| (s.name.clone(), s.topic.clone()))
            .collect();
        let sinks = Arc::new(Sinks {
            consumer,
            kafka: Mutex::new(kafka),
            leaderboards,
            checkpoints,
            config,
            metrics,
            streams,
        });
        let (jobs, queue) = mpsc::channel(QUEUED_JOBS);
        let (report, written) = mpsc::unbounded_channel();
        let unfinished = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(write_jobs(
            Arc::clone(&sinks),
            queue,
            report,
            Arc::clone(&unfinished),
        ));
        Writer {
            jobs: Some(jobs),
            written,
            task,
            sinks,
            unwritten: 0,
            unfinished,
        }
    }

    /// Whether every job handed over is written: a batch handed over now would be written at
    /// once, instead of waiting behind others.
    pub(super) fn idle(&self) -> bool {
        self.unfinished.load(Ordering::Acquire) == 0
    }

    /// Hands `job` to the writer; waits while [`QUEUED_JOBS`] jobs wait already. Fails with
    /// the writer's error if a write failed.
    pub(super) async fn start(&mut self, job: Job) -> Result<(), RunError> {
        let jobs = self.jobs.as_ref().expect("the writer is open");
        // Counted before it is sent, so the writer never counts it off first.
        self.unfinished.fetch_add(1, Ordering::Release);
        if jobs.send(job).await.is_err() {
            return Err(self.failure().await);
        }
        self.unwritten += 1;
        Ok(())
    }

    /// The reports of the writes finished since the last call, without waiting. Fails with the
    /// writer's error if a write failed.
    pub(super) async fn written(&mut self) -> Result<Vec<Written>, RunError> {
        let mut done = Vec::new();
        loop {
            match self.written.try_recv() {
                Ok(written) => done.push(self.account(written)),
                Err(mpsc::error::TryRecvError::Empty) => return Ok(done),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    return Err(self.failure().await);
                }
            }
        }
    }

    /// Waits until every job handed over is written and committed; their reports.
    pub(super) async fn finish(&mut self) -> Result<Vec<Written>, RunError> {
        let mut done = Vec::new();
        while self.unwritten > 0 {
            match self.written.recv().await {
                Some(written) => done.push(self.account(written)),
                None => return Err(self.failure().await),
            }
        }
        Ok(done)
    }

    /// Takes a write's report into account: its jobs are no longer unwritten.
    fn account(&mut self, written: Written) -> Written {
        self.unwritten -= written.jobs;
        written
    }

    /// Why the writer task ended before its queue was closed: the error of its failed write.
    async fn failure(&mut self) -> RunError {
        match (&mut self.task).await {
            Ok(Err(err)) => err,
            Ok(Ok(())) => unreachable!("the writer task ends early only on an error"),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// Flushes the producer's own queue, for shutdown (after [`Writer::finish`]).
    pub(super) async fn close(&mut self) {
        self.jobs = None;
        self.sinks.kafka.lock().await.close(Duration::from_secs(10));
    }
}

impl Drop for Writer {
    /// A loop that stops without finishing (an error, or its task dropped) stops its writes
    /// too, as a crash would: nothing of the jobs not yet written is committed.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The writer task: takes the first job waiting and every other one waiting with it, writes
/// them as one, reports, and again, until the queue is closed or a write fails.
async fn write_jobs(
    sinks: Arc<Sinks>,
    mut queue: mpsc::Receiver<Job>,
    report: mpsc::UnboundedSender<Written>,
    unfinished: Arc<AtomicUsize>,
) -> Result<(), RunError> {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while let Ok(job) = queue.try_recv() {
            jobs.push(job);
        }
        let span = tracing::info_span!("write", jobs = jobs.len());
        let refused = sinks.write(&jobs).instrument(span).await?;
        unfinished.fetch_sub(jobs.len(), Ordering::Release);
        // The loop may be gone (its task dropped); the jobs are written all the same.
        let _ = report.send(Written {
            jobs: jobs.len(),
            refused,
        });
    }
    Ok(())
}

impl Sinks {
    /// Writes `jobs`, in order, as one; returns the partitions whose checkpoint was refused.
    async fn write(&self, jobs: &[Job]) -> Result<Vec<(String, i32)>, RunError> {
        let config = &self.config;
        let closed = || jobs.iter().flat_map(|job| &job.closed);
        let metrics = &self.metrics;
        let mut kafka = self.kafka.lock().await;
        let sending = Instant::now();
        for closed in closed() {
            let stream = &self.streams[usize::from(closed.stream)].0;
            kafka
                .send_window(&WindowRecord::new(stream, closed))
                .await?;
        }
        for dead in jobs.iter().flat_map(|job| &job.dead) {
            kafka.send_dead_letter(dead).await?;
        }
        let sent = sending.elapsed();
        let boards: Vec<Leaderboard<'_>> = closed()
            .map(|c| Leaderboard {
                stream: &self.streams[usize::from(c.stream)].0,
                group: &c.group,
                window_end: c.window_end,
                terms: c.top(Category::Term),
            })
            .collect();
        let writing = Instant::now();
        with_retry(config.retry(), "redis write", || {
            counting_errors(metrics, "redis", self.leaderboards.write(&boards))
        })
        .await?;
        observe_sink(metrics, "redis", writing.elapsed());
        self.observe_delays(jobs);
        let flushing = Instant::now();
        kafka.flush().await?;
        observe_sink(metrics, "kafka", sent + flushing.elapsed());
        let skipped = kafka.take_skipped();
        drop(kafka);

        // Every output of the jobs is acknowledged: save where each partition can continue
        // from, then tell the group how far it got.
        let checkpoints = latest_checkpoints(jobs);
        let group = config.kafka().group_id.as_str();
        let saving = Instant::now();
        let refused = with_retry(config.retry(), "checkpoint write", || {
            counting_errors(
                metrics,
                "checkpoint",
                self.checkpoints.save(group, &checkpoints),
            )
        })
        .await?;
        observe_sink(metrics, "checkpoint", saving.elapsed());
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
        let committing = Instant::now();
        commit(&self.consumer, &progress).await;
        metrics
            .commit_seconds
            .observe(committing.elapsed().as_secs_f64());
        metrics.records_skipped.inc_by(skipped);
        for job in jobs {
            metrics.add_batch(&job.counts);
            self.count_inputs(job);
            let _batch = tracing::info_span!("batch", records = job.counts.records).entered();
            debug!(
                records = job.counts.records,
                windows = job.closed.len(),
                dead_letters = job.counts.dead_letters,
                "Batch committed."
            );
        }
        Ok(refused
            .into_iter()
            .map(|(t, p)| (t.to_owned(), p))
            .collect())
    }
}

impl Sinks {
    /// Observes the end-to-end delay of the windows of `jobs`, their leaderboards just
    /// written: from the window's end (event time) to now.
    fn observe_delays(&self, jobs: &[Job]) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let delays: Vec<Histogram> = self
            .streams
            .iter()
            .map(|(stream, _)| {
                let stream = stream.clone();
                let family = &self.metrics.end_to_end_delay_seconds;
                family.get_or_create_owned(&StreamLabel { stream })
            })
            .collect();
        for closed in jobs.iter().flat_map(|job| &job.closed) {
            let delay = (now_ms - closed.window_end).max(0) as f64 / 1000.0;
            delays[usize::from(closed.stream)].observe(delay);
        }
    }

    /// Counts a job's records and bytes by partition, its dead letters by kind and its
    /// windows by stream.
    fn count_inputs(&self, job: &Job) {
        let mut windows = vec![0; self.streams.len()];
        for closed in &job.closed {
            windows[usize::from(closed.stream)] += 1;
        }
        for ((stream, _), closed) in self.streams.iter().zip(windows) {
            if closed > 0 {
                let stream = stream.clone();
                let counter = self
                    .metrics
                    .windows_closed
                    .get_or_create(&StreamLabel { stream });
                counter.inc_by(closed);
            }
        }
        for (stream, partition, counts) in &job.partitions {
            let (stream, topic) = &self.streams[usize::from(*stream)];
            let label = StreamPartition {
                stream: stream.clone(),
                topic: topic.clone(),
                partition: *partition,
            };
            self.metrics
                .add_records(&label, counts.records, counts.bytes);
        }
        for dead in &job.dead {
            let stream = self
                .streams
                .iter()
                .find(|(_, topic)| *topic == dead.topic)
                .map_or("", |(stream, _)| stream.as_str());
            self.metrics.add_dead_letter(&DeadLetterKind {
                stream: stream.to_owned(),
                kind: dead.error_kind,
            });
        }
    }
}

/// Counts a failed write attempt of `sink` (each is retried, or fails the run).
async fn counting_errors<T, E>(
    metrics: &Metrics,
    sink: &'static str,
    write: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let result = write.await;
    if result.is_err() {
        metrics.sink_errors.get_or_create(&SinkLabel { sink }).inc();
    }
    result
}

fn observe_sink(metrics: &Metrics, sink: &'static str, took: Duration) {
    metrics
        .sink_write_seconds
        .get_or_create(&SinkLabel { sink })
        .observe(took.as_secs_f64());
}

/// Each partition's checkpoint from the last of `jobs` that holds one, in the order the
/// partitions first appear.
fn latest_checkpoints(jobs: &[Job]) -> Vec<(&str, i32, Checkpoint)> {
    let mut latest: Vec<(&str, i32, Checkpoint)> = Vec::new();
    for (topic, partition, checkpoint) in jobs.iter().flat_map(|job| &job.checkpoints) {
        match latest
            .iter_mut()
            .find(|(t, p, _)| t == topic && p == partition)
        {
            Some(slot) => slot.2 = *checkpoint,
            None => latest.push((topic, *partition, *checkpoint)),
        }
    }
    latest
}

/// How long a write waits for its commit to be confirmed. A synchronous commit can wait on a
/// rebalance, and the rebalance on this instance's loop polling the consumer, while the loop
/// waits for the writer: past this the write goes on, and the commit's outcome is logged when
/// it comes.
const COMMIT_WAIT: Duration = Duration::from_secs(2);

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
    let committed = tokio::task::spawn_blocking(move || {
        if let Err(err) = c.commit(&tpl, CommitMode::Sync) {
            warn!(error = %err, "Offset commit failed.");
        }
    });
    match tokio::time::timeout(COMMIT_WAIT, committed).await {
        Ok(done) => done.expect("the commit task does not panic"),
        Err(_) => warn!(
            waited = ?COMMIT_WAIT,
            "Offset commit not confirmed yet (a rebalance under way, most likely); going on."
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(checkpoints: &[(&str, i32, i64)]) -> Job {
        Job {
            closed: Vec::new(),
            dead: Vec::new(),
            checkpoints: checkpoints
                .iter()
                .map(|&(topic, partition, next)| {
                    let checkpoint = Checkpoint {
                        resume: next - 10,
                        next,
                        watermark: Default::default(),
                        settings: 7,
                    };
                    (topic.to_owned(), partition, checkpoint)
                })
                .collect(),
            counts: BatchCounts::default(),
            partitions: Vec::new(),
        }
    }

    #[test]
    fn jobs_written_together_save_each_partitions_last_checkpoint() {
        let jobs = [
            job(&[("danmu", 0, 100), ("danmu", 1, 50)]),
            job(&[("text", 0, 7)]),
            job(&[("danmu", 0, 180), ("text", 0, 9)]),
        ];
        let saved: Vec<(&str, i32, i64, i64)> = latest_checkpoints(&jobs)
            .into_iter()
            .map(|(t, p, c)| (t, p, c.resume, c.next))
            .collect();
        assert_eq!(
            saved,
            [
                ("danmu", 0, 170, 180),
                ("danmu", 1, 40, 50),
                ("text", 0, -1, 9)
            ]
        );
        assert!(latest_checkpoints(&[]).is_empty());
    }
}
