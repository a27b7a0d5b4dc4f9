//! `[output]`: how much of each window is published.

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Items per leaderboard and per list.
    pub top_k: usize,
}

impl OutputConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.top_k == 0 || self.top_k > 10_000 {
            return Err(invalid(
                "output.top_k",
                self.top_k,
                "must be between 1 and 10000",
            ));
        }
        Ok(())
    }
}
