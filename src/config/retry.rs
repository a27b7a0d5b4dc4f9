//! `[retry]`: how failed sink writes are retried, and when that is given up.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, positive, show, ConfigError, KafkaConfig};

/// The consumer property bounding the time between polls, and librdkafka's default for it.
/// While a sink write is retried the consumer is not polled, so `retry.give_up_after` must be
/// shorter: otherwise the group evicts the instance (and reassigns its partitions) while it
/// still holds a batch.
const MAX_POLL_INTERVAL: &str = "max.poll.interval.ms";
const DEFAULT_MAX_POLL_INTERVAL_MS: u64 = 300_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First back-off after a failed write.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest back-off.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Failing this long is fatal.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
}

impl RetryConfig {
    /// Back-offs in order, and giving up before `kafka`'s consumer would be evicted.
    pub(super) fn validate(&self, kafka: &KafkaConfig) -> Result<(), ConfigError> {
        positive("retry.initial_backoff", self.initial_backoff)?;
        if self.max_backoff < self.initial_backoff {
            return Err(invalid(
                "retry.max_backoff",
                show(self.max_backoff),
                format!(
                    "must be at least retry.initial_backoff ({})",
                    show(self.initial_backoff)
                ),
            ));
        }
        let poll_interval_ms = match kafka.consumer_properties().get(MAX_POLL_INTERVAL) {
            None => DEFAULT_MAX_POLL_INTERVAL_MS,
            Some(value) => value.trim().parse::<u64>().map_err(|_| {
                invalid(
                    format!("kafka.consumer.\"{MAX_POLL_INTERVAL}\""),
                    value,
                    "is not a whole number of milliseconds",
                )
            })?,
        };
        if self.give_up_after.as_millis() >= u128::from(poll_interval_ms) {
            return Err(invalid(
                "retry.give_up_after",
                show(self.give_up_after),
                format!(
                    "must be shorter than kafka.consumer.\"{MAX_POLL_INTERVAL}\" ({poll_interval_ms}), \
                     or the group evicts this instance while it retries"
                ),
            ));
        }
        Ok(())
    }
}
