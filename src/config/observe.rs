//! `[log]` and `[http]`: how the process reports on itself.

use serde::{Deserialize, Serialize};

use std::time::Duration;

use super::{invalid, show, ConfigError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// Default level filter.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address for `/metrics`, `/ready` and the live page; empty for none.
    pub listen: String,
    /// How often the consumer lag is asked of the brokers (one request per partition
    /// assigned, and one for the committed offsets).
    #[serde(with = "humantime_serde")]
    pub lag_every: Duration,
}

impl LogConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            return Err(invalid(
                "log.level",
                &self.level,
                "is not a level or filter directive",
            ));
        }
        Ok(())
    }
}

impl HttpConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let listen = &self.listen;
        if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "http.listen",
                listen,
                "is not an address like 0.0.0.0:9898",
            ));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&self.lag_every) {
            return Err(invalid(
                "http.lag_every",
                show(self.lag_every),
                "must be between 100ms and 1h",
            ));
        }
        Ok(())
    }
}
