//! Consumer lag: how far behind the group's committed offsets are, per partition assigned.
//!
//! Every `http.lag_every` a task asks the brokers for each assigned partition's end offset and
//! the group's committed offset, as Kafka lag exporters do, and sets `trendstream_consumer_lag`
//! to their difference. A partition with no offset committed yet counts from its log start.
//! The loop is not involved, so the lag keeps rising while the loop waits (on Redis, say) and
//! nothing is committed.
//!
//! A check is two requests whatever the number of partitions (the committed offsets, the end
//! offsets) and a third only while some partition has nothing committed (the log starts). They
//! go through the [`OffsetsClient`], which never joins the group.

use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::consumer::{offset_in, Kafka, OffsetsClient};
use crate::metrics::{Metrics, TopicPartition};

/// How long one broker request of a lag check may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks the lag of the partitions `consumer` is assigned every `every`, through `client`,
/// until `stop` is cancelled or the consumer is gone. Holds the consumer only to read its
/// assignment: a consumer must drop for its instance to leave the group.
pub(super) async fn watch_lag(
    consumer: Weak<Kafka>,
    client: OffsetsClient,
    metrics: Arc<Metrics>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        let Some(assigned) = consumer.upgrade().map(|c| c.assignment()) else {
            return;
        };
        let check = {
            let client = Arc::clone(&client);
            tokio::task::spawn_blocking(move || lags(&client, &assigned?))
        };
        match check.await.expect("the lag check does not panic") {
            Ok(lags) => metrics.set_consumer_lag(&lags),
            Err(err) => debug!(error = %err, "Cannot check the consumer lag."),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// End offset minus committed offset of each of `assigned` (blocking broker requests).
fn lags(
    client: &BaseConsumer,
    assigned: &TopicPartitionList,
) -> KafkaResult<Vec<(TopicPartition, i64)>> {
    if assigned.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = client.committed_offsets(assigned.clone(), REQUEST_TIMEOUT)?;
    // `Offset::End` and `Offset::Beginning` as timestamps ask for the end offsets and the log
    // starts, every partition's in one request.
    let ends = client.offsets_for_times(with_offsets(assigned, Offset::End)?, REQUEST_TIMEOUT)?;
    let mut uncommitted = TopicPartitionList::new();
    for e in committed.elements() {
        if !matches!(e.offset(), Offset::Offset(_)) {
            uncommitted.add_partition(e.topic(), e.partition());
        }
    }
    let starts = if uncommitted.count() == 0 {
        uncommitted
    } else {
        client.offsets_for_times(
            with_offsets(&uncommitted, Offset::Beginning)?,
            REQUEST_TIMEOUT,
        )?
    };
    Ok(assigned
        .elements()
        .iter()
        .filter_map(|e| {
            let (topic, partition) = (e.topic(), e.partition());
            let end = offset_in(&ends, topic, partition)?;
            let from = offset_in(&committed, topic, partition)
                .or_else(|| offset_in(&starts, topic, partition))?;
            let partition = TopicPartition {
                topic: topic.to_owned(),
                partition,
            };
            Some((partition, (end - from).max(0)))
        })
        .collect())
}

/// `partitions` with every offset set to `offset`.
fn with_offsets(
    partitions: &TopicPartitionList,
    offset: Offset,
) -> KafkaResult<TopicPartitionList> {
    let mut list = partitions.clone();
    list.set_all_offsets(offset)?;
    Ok(list)
}
