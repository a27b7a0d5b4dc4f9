//! `[ownership]`: partition leases, and when a silent partition is taken up anyway.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, positive, show, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnershipConfig {
    /// How often leases on the assigned partitions are renewed and all leases checked.
    #[serde(with = "humantime_serde")]
    pub renew_every: Duration,
    /// A lease's time to live; a partition without one for this long again is orphaned.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// A partition assigned here that delivers nothing for this long is taken up anyway, and
    /// one sent to an offset that delivers nothing for this long is sent further back.
    #[serde(with = "humantime_serde")]
    pub stall_after: Duration,
}

impl OwnershipConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive("ownership.renew_every", self.renew_every)?;
        if self.lease < self.renew_every * 3 {
            return Err(invalid(
                "ownership.lease",
                show(self.lease),
                format!(
                    "must be at least three times ownership.renew_every ({})",
                    show(self.renew_every)
                ),
            ));
        }
        if self.stall_after < Duration::from_millis(100) {
            return Err(invalid(
                "ownership.stall_after",
                show(self.stall_after),
                "must be at least 100ms",
            ));
        }
        Ok(())
    }
}
