//! `[input]` and `[batch]`: which records are taken in, and how many at a time.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError};

/// The most threads `batch.workers` may ask for.
const MAX_WORKERS: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Larger record values are dead-lettered.
    pub max_message_bytes: usize,
    /// Records whose event time is further ahead of their Kafka timestamp are dead-lettered.
    #[serde(with = "humantime_serde")]
    pub max_event_time_ahead: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Records per batch at most.
    pub max_records: usize,
    /// Time from a batch's first record to its end at most.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// Time from a batch's first record before it may end for want of records while the
    /// writer is idle (at most `max_wait`): how often an idle instance writes and commits.
    #[serde(with = "humantime_serde")]
    pub min_wait: Duration,
    /// Threads that process a batch (partitions, and chunks of a partition's records, in
    /// parallel); 0: one per core.
    pub workers: usize,
}

impl InputConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive("input.max_event_time_ahead", self.max_event_time_ahead)?;
        if self.max_message_bytes == 0 {
            return Err(invalid("input.max_message_bytes", 0, "must be at least 1"));
        }
        Ok(())
    }
}

impl BatchConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_records == 0 {
            return Err(invalid("batch.max_records", 0, "must be at least 1"));
        }
        positive("batch.max_wait", self.max_wait)?;
        if self.workers > MAX_WORKERS {
            return Err(invalid(
                "batch.workers",
                self.workers,
                format!("must be at most {MAX_WORKERS} (0: one per core)"),
            ));
        }
        Ok(())
    }
}
