//! One batch: through the engine, out to the sinks, acknowledged, checkpointed, committed.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rdkafka::message::{BorrowedMessage, Message};
use tracing::{debug, warn};

use super::consumer::commit;
use super::{Kafka, RunError};
use crate::config::Config;
use crate::engine::{BatchCounts, Checkpoint, Engine, Input};
use crate::sink::kafka::{DeadLetter, KafkaSink, WindowRecord};
use crate::sink::redis::{Leaderboard, RedisSink};
use crate::sink::with_retry;

pub(super) async fn handle_batch(
    consumer: &Arc<Kafka>,
    engine: &mut Engine,
    kafka: &mut KafkaSink,
    redis: &RedisSink,
    config: &Config,
    batch: &[BorrowedMessage<'_>],
) -> Result<BatchCounts, RunError> {
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
    let out = engine.process(&inputs);
    let names: Vec<&str> = engine.streams().iter().map(|s| s.name.as_str()).collect();

    for closed in &out.closed {
        kafka
            .send_window(&WindowRecord::new(
                names[usize::from(closed.stream)],
                closed,
            ))
            .await?;
    }
    for (index, err) in &out.dead {
        let m = &batch[*index];
        log_dead_letter(m, err);
        let error = err.to_string();
        kafka
            .send_dead_letter(&DeadLetter {
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key(),
                payload: m.payload(),
                timestamp: m.timestamp().to_millis(),
                headers: m.headers(),
                error_kind: err.kind(),
                error: &error,
            })
            .await?;
    }
    let boards: Vec<Leaderboard<'_>> = out
        .closed
        .iter()
        .map(|c| Leaderboard {
            stream: names[usize::from(c.stream)],
            group: &c.group,
            window_end: c.window_end,
            terms: &c.top[crate::extract::Category::Term.index()],
        })
        .collect();
    with_retry(&config.retry, "redis write", || {
        let redis = redis.clone();
        let boards = &boards;
        async move { redis.write(boards).await }
    })
    .await?;
    kafka.flush().await?;

    // Every output of the batch is acknowledged: save where each partition can continue from,
    // then tell the group how far it got.
    let mut partitions: Vec<(&str, i32)> =
        batch.iter().map(|m| (m.topic(), m.partition())).collect();
    partitions.sort_unstable();
    partitions.dedup();
    let checkpoints: Vec<(&str, i32, Checkpoint)> = partitions
        .iter()
        .filter_map(|&(t, p)| engine.checkpoint(t, p).map(|c| (t, p, c)))
        .collect();
    let group = config.kafka.group_id.as_str();
    let refused = with_retry(&config.retry, "checkpoint write", || {
        redis.save_checkpoints(group, &checkpoints)
    })
    .await?;
    for (topic, partition) in &refused {
        warn!(
            topic,
            partition, "Another instance is ahead on this partition; letting it go."
        );
        engine.forget(topic, *partition);
    }
    let progress: Vec<(&str, i32, i64)> = checkpoints
        .iter()
        .filter(|(t, p, _)| !refused.contains(&(t, *p)))
        .map(|(t, p, c)| (*t, *p, c.next))
        .collect();
    commit(consumer, &progress).await;
    debug!(
        records = out.counts.records,
        windows = out.closed.len(),
        dead_letters = out.counts.dead_letters,
        "Batch committed."
    );
    Ok(out.counts)
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
