//! `[redis]`: the node or cluster the leaderboards are written to, its keys and TLS files.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, show, ConfigError};
use crate::redact;

/// `Debug` shows secrets redacted, like [`Config::redacted`](super::Config::redacted).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Redis URL, or comma-separated node URLs of a cluster.
    pub url: String,
    /// Whether `url` names a Redis Cluster.
    pub cluster: bool,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Leaderboard time to live.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// PEM file of the certificate authorities trusted for `rediss://`; empty for the system's.
    #[serde(default)]
    pub tls_ca_file: String,
    /// PEM files of a client certificate and its key, for servers that ask for one; empty for
    /// none.
    #[serde(default)]
    pub tls_cert_file: String,
    #[serde(default)]
    pub tls_key_file: String,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        redact::debug_settings(f, "RedisConfig", self, RedisConfig::redact)
    }
}

impl RedisConfig {
    /// These settings with the URL's user info replaced (see [`redact`]).
    pub(super) fn redact(&mut self) {
        self.url = redact::text(&self.url);
    }

    /// URLs, TLS files, and a time to live no shorter than `slide`, the time between updates.
    pub(super) fn validate(&self, slide: Duration) -> Result<(), ConfigError> {
        for url in self.url.split(',').map(str::trim) {
            if let Err(err) = ::redis::Client::open(url) {
                return Err(invalid(
                    "redis.url",
                    &self.url,
                    format!("is not a Redis URL: {err}"),
                ));
            }
        }
        let tls = self
            .url
            .split(',')
            .all(|url| url.trim().starts_with("rediss://"));
        for (key, path) in [
            ("redis.tls_ca_file", &self.tls_ca_file),
            ("redis.tls_cert_file", &self.tls_cert_file),
            ("redis.tls_key_file", &self.tls_key_file),
        ] {
            if path.is_empty() {
                continue;
            }
            if !tls {
                return Err(invalid(
                    key,
                    path,
                    "is set, but redis.url does not name rediss:// (TLS) servers",
                ));
            }
            if !Path::new(path).is_file() {
                return Err(invalid(key, path, "is not a readable file"));
            }
        }
        if self.tls_cert_file.is_empty() != self.tls_key_file.is_empty() {
            let (key, path) = if self.tls_cert_file.is_empty() {
                ("redis.tls_key_file", &self.tls_key_file)
            } else {
                ("redis.tls_cert_file", &self.tls_cert_file)
            };
            return Err(invalid(
                key,
                path,
                "needs both redis.tls_cert_file and redis.tls_key_file",
            ));
        }
        if !self.cluster && self.url.contains(',') {
            return Err(invalid(
                "redis.url",
                &self.url,
                "names several servers; set redis.cluster = true for a Redis Cluster",
            ));
        }
        if self.ttl < slide {
            return Err(invalid(
                "redis.ttl",
                show(self.ttl),
                format!(
                    "must be at least window.slide ({}), or leaderboards expire between updates",
                    show(slide)
                ),
            ));
        }
        Ok(())
    }
}
