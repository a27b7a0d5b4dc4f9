//! Consumer lag: how far behind the group's committed offsets are, per partition assigned.
//!
//! Every `http.lag_every` a task asks the brokers for each assigned partition's end offset
//! (its high watermark) and the group's committed offset, as Kafka lag exporters do, and sets
//! `trendstream_consumer_lag` to their difference. A partition with no offset committed yet
//! counts from its log start: the whole log is behind. The loop is not involved, so the lag
//! keeps rising while the loop waits (on Redis, say) and nothing is committed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::Offset;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::consumer::Kafka;
use crate::metrics::{Metrics, TopicPartition};

/// How long one broker request of a lag check may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks the lag every `every` until `stop` is cancelled or the consumer is gone. Holds the
/// consumer only while checking: a consumer must drop for its instance to leave the group.
pub(super) async fn watch_lag(
    consumer: Weak<Kafka>,
    metrics: Arc<Metrics>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        let Some(consumer) = consumer.upgrade() else {
            return;
        };
        let check = tokio::task::spawn_blocking(move || lags(&consumer));
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

/// End offset minus committed offset of each assigned partition (blocking broker requests).
fn lags(consumer: &Kafka) -> rdkafka::error::KafkaResult<Vec<(TopicPartition, i64)>> {
    let committed = consumer.committed(REQUEST_TIMEOUT)?;
    let mut lags = Vec::with_capacity(committed.count());
    for elem in committed.elements() {
        let (topic, partition) = (elem.topic(), elem.partition());
        let (low, high) = consumer.fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
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
