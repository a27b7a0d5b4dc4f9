//! Consumer lag: how far behind the group's committed offsets are, per partition assigned.
//!
//! Every `http.lag_every` a task asks the brokers for each assigned partition's end offset
//! (its high watermark) and the group's committed offset, as Kafka lag exporters do, and sets
//! `trendstream_consumer_lag` to their difference. A partition with no offset committed yet
//! counts from its log start. The loop is not involved, so the lag keeps rising while the loop
//! waits (on Redis, say) and nothing is committed.
//!
//! The requests go through a client of their own, which never joins the group: on the
//! consumer's connection a slow answer (tansu takes seconds to list offsets from its SQLite
//! storage) would hold up the heartbeats queued behind it, and the group would rebalance.

use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::consumer::Kafka;
use crate::config::Config;
use crate::metrics::{Metrics, TopicPartition};

/// How long one broker request of a lag check may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks the lag of the partitions `consumer` is assigned every `every`, through `client`,
/// until `stop` is cancelled or the consumer is gone. Holds the consumer only to read its
/// assignment: a consumer must drop for its instance to leave the group.
pub(super) async fn watch_lag(
    consumer: Weak<Kafka>,
    client: BaseConsumer,
    metrics: Arc<Metrics>,
    every: Duration,
    stop: CancellationToken,
) {
    let client = Arc::new(client);
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

/// A client for the lag checks: the consumer's settings (its group, to read the group's
/// committed offsets), never subscribed.
pub(super) fn lag_client(config: &Config) -> KafkaResult<BaseConsumer> {
    config.kafka().consumer_client().create()
}

/// End offset minus committed offset of each of `assigned` (blocking broker requests).
fn lags(
    client: &BaseConsumer,
    assigned: &TopicPartitionList,
) -> KafkaResult<Vec<(TopicPartition, i64)>> {
    let committed = client.committed_offsets(assigned.clone(), REQUEST_TIMEOUT)?;
    let mut lags = Vec::with_capacity(committed.count());
    for elem in committed.elements() {
        let (topic, partition) = (elem.topic(), elem.partition());
        let (low, high) = client.fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
        let from = match elem.offset() {
            Offset::Offset(committed) => committed,
            _ => low,
        };
        lags.push((
            TopicPartition {
                topic: topic.to_owned(),
                partition,
            },
            (high - from).max(0),
        ));
    }
    Ok(lags)
}
