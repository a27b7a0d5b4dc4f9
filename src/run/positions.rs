//! Positions: every partition assigned here is read from where its windows need it, and no
//! record in between is skipped, whatever the broker does.
//!
//! The engine decides where a partition must be read from and checks the first records that
//! arrive ([`Engine::restore`], [`Gap`]); this module does what takes a clock or the network:
//!
//! - a partition assigned here that delivers nothing for `ownership.stall_after` is taken up
//!   anyway (a consumer left at an offset inside a broker's last stored batch may never
//!   receive anything from it);
//! - a partition whose first records lie beyond the offset it was sent to (a [`Gap`]), or that
//!   delivers nothing for `ownership.stall_after` after a seek, is sent further back
//!   ([`Engine::rewind`]) until the records delivered cover the offset.
//!
//! Each rewind is logged at warn and counted (`trendstream_rewinds_total`); a take-up of a
//! partition that delivered nothing at info (an idle partition looks the same).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::Offset;
use tokio::time::Instant;
use tracing::{info, warn};

use super::consumer::{Kafka, OffsetsClient};
use crate::engine::{Engine, Gap};
use crate::observe::Metrics;

type PartitionId = (String, i32);

/// Since when each partition has been waiting for records, assigned or sent to an offset.
pub(super) struct Positions {
    /// Partitions assigned here but not taken up by the engine.
    unheld: HashMap<PartitionId, Instant>,
    /// Partitions sent to an offset whose records have not been seen yet.
    seeking: HashMap<PartitionId, Instant>,
    stall_after: Duration,
    metrics: Arc<Metrics>,
}

impl Positions {
    pub(super) fn new(stall_after: Duration, metrics: Arc<Metrics>) -> Positions {
        Positions {
            unheld: HashMap::new(),
            seeking: HashMap::new(),
            stall_after,
            metrics,
        }
    }

    /// Partitions assigned here that have delivered nothing for `stall_after` and are not
    /// taken up: the loop takes them up without a first record.
    pub(super) fn stalled(&mut self, consumer: &Kafka, engine: &Engine) -> Vec<PartitionId> {
        let now = Instant::now();
        let assigned: Vec<PartitionId> = match consumer.assignment() {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .filter(|(t, p)| !engine.holds(t, *p))
                .collect(),
            Err(err) => {
                warn!(error = %err, "Cannot read the assignment.");
                return Vec::new();
            }
        };
        self.unheld.retain(|id, _| assigned.contains(id));
        let mut stalled = Vec::new();
        for id in assigned {
            let since = *self.unheld.entry(id.clone()).or_insert(now);
            if now.duration_since(since) >= self.stall_after {
                // An idle partition looks the same: not a warning until the check fails.
                info!(
                    topic = id.0,
                    partition = id.1,
                    waited = %humantime::format_duration(self.stall_after),
                    "Partition assigned but nothing delivered: taking it up to check its position."
                );
                self.unheld.remove(&id);
                stalled.push(id);
            }
        }
        stalled
    }

    /// Notes that `partition` was just sent to an offset.
    pub(super) fn sought(&mut self, topic: &str, partition: i32) {
        self.seeking
            .insert((topic.to_owned(), partition), Instant::now());
    }

    /// Sends further back each partition whose first records lay beyond its target, and each
    /// one sent to an offset that has delivered nothing for `stall_after`.
    pub(super) async fn rewind(
        &mut self,
        consumer: &Arc<Kafka>,
        offsets: &OffsetsClient,
        engine: &mut Engine,
        gaps: &[Gap],
    ) {
        let now = Instant::now();
        let seeking: Vec<PartitionId> = engine.seeking().map(|(t, p)| (t.to_owned(), p)).collect();
        self.seeking.retain(|id, _| seeking.contains(id));
        // Partitions to send further back; `true` for those that delivered nothing.
        let mut due: Vec<(PartitionId, bool)> = Vec::new();
        for gap in gaps {
            warn!(
                topic = gap.topic,
                partition = gap.partition,
                target = gap.target,
                first_offset = gap.first_offset,
                "Records delivered start past the offset sought (the broker skipped some): \
                 rewinding."
            );
            due.push(((gap.topic.clone(), gap.partition), false));
        }
        for id in seeking {
            let since = *self.seeking.entry(id.clone()).or_insert(now);
            if now.duration_since(since) >= self.stall_after && !due.iter().any(|(d, _)| *d == id) {
                due.push((id, true));
            }
        }
        for ((topic, partition), silent) in due {
            let log_start = log_start(offsets, &topic, partition).await;
            // `None` also for a partition at the start of its log: nothing is there yet.
            let Some(offset) = engine.rewind(&topic, partition, log_start) else {
                continue;
            };
            if silent {
                warn!(
                    topic,
                    partition,
                    offset,
                    waited = %humantime::format_duration(self.stall_after),
                    "Nothing delivered since the partition was sent to an offset: rewinding."
                );
            }
            self.metrics.rewinds.inc();
            if let Err(err) = seek(consumer, &topic, partition, offset).await {
                // Its records are held back until they cover the offset: sent again later.
                warn!(topic, partition, offset, error = %err, "Cannot seek; trying again later.");
            }
            self.sought(&topic, partition);
        }
        self.metrics
            .partitions_positioning
            .set(engine.seeking().count() as i64);
    }
}

/// Sends the consumer of `partition` to `offset`.
pub(super) async fn seek(
    consumer: &Arc<Kafka>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(), KafkaError> {
    let c = Arc::clone(consumer);
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        c.seek(
            &topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(10),
        )
    })
    .await
    .expect("seek task does not panic")
}

/// The partition's first offset in the log (0 when the broker cannot tell).
async fn log_start(offsets: &OffsetsClient, topic: &str, partition: i32) -> i64 {
    let c = Arc::clone(offsets);
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        c.fetch_watermarks(&topic, partition, Duration::from_secs(10))
            .map_or(0, |(low, _)| low)
    })
    .await
    .expect("watermarks task does not panic")
}
