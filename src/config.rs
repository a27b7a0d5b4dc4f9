//! Configuration: the built-in defaults (`config/default.toml`), an optional file and
//! `TRENDSTREAM_*` environment variables (see `config/env.rs`), merged in that order and
//! validated once.
//!
//! Two forms, as ripgrep has low- and high-level arguments:
//!
//! - [`RawConfig`] is what the sources say, deserialised and nothing more: public fields, free to
//!   change, for printing (`check-config`) and for building a variant of a configuration.
//! - [`Config`] is a `RawConfig` that passed every check, made only by [`RawConfig::validate`]
//!   (or [`Config::load`] and [`Config::from_toml`], which call it). Its sections are read
//!   through accessors and cannot be changed, so holding one means every check passed.
//!
//! Each section checks itself in its own file; checks across sections are passed what they
//! need from the others.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::redact;

mod env;
mod extract;
mod input;
mod kafka;
mod observe;
mod output;
mod ownership;
mod redis;
mod retry;
mod streams;
mod window;

pub use extract::ExtractConfig;
pub use input::{BatchConfig, InputConfig};
pub use kafka::KafkaConfig;
pub use observe::{HttpConfig, LogConfig, LogFormat};
pub use output::OutputConfig;
pub use ownership::OwnershipConfig;
pub use redis::RedisConfig;
pub use retry::RetryConfig;
pub use streams::StreamConfig;
pub use window::WindowConfig;

/// The defaults, documented key by key.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variables with this prefix override configuration keys.
pub const ENV_PREFIX: &str = "TRENDSTREAM_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Parse(String),
    #[error("{key} ({value}) {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot read extract.stop_words_file ({path})")]
    StopWordsFile {
        path: String,
        source: std::io::Error,
    },
}

/// Fails with `key` unless `d` is longer than 0.
fn positive(key: &str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(invalid(key, "0s", "must be longer than 0"));
    }
    Ok(())
}

/// An [`ConfigError::Invalid`]; the value is shown as [`redact::value`] allows.
fn invalid(key: impl Into<String>, value: impl ToString, reason: impl Into<String>) -> ConfigError {
    let key = key.into();
    ConfigError::Invalid {
        value: redact::value(&key.replace('"', ""), &value.to_string()),
        key,
        reason: redact::text(&reason.into()),
    }
}

/// The configuration as its sources give it, not yet validated: see [`RawConfig::validate`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub kafka: KafkaConfig,
    pub streams: BTreeMap<String, StreamConfig>,
    pub input: InputConfig,
    pub batch: BatchConfig,
    pub window: WindowConfig,
    pub extract: ExtractConfig,
    pub output: OutputConfig,
    pub redis: RedisConfig,
    pub retry: RetryConfig,
    pub ownership: OwnershipConfig,
    pub log: LogConfig,
    pub http: HttpConfig,
}

impl RawConfig {
    /// Defaults, then `path` (if any), then the process environment.
    pub fn load(path: Option<&Path>) -> Result<RawConfig, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = path {
            if !path.is_file() {
                return Err(invalid(
                    "--config",
                    path.display(),
                    "is not a readable file",
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        Self::extract(figment.merge(env::EnvOverrides::new(ENV_PREFIX, DEFAULT_TOML)))
    }

    /// Defaults with `toml` laid over them; no environment. For tests and embedding.
    pub fn from_toml(toml: &str) -> Result<RawConfig, ConfigError> {
        Self::extract(Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(toml)))
    }

    fn extract(figment: Figment) -> Result<RawConfig, ConfigError> {
        figment
            .extract()
            .map_err(|err| ConfigError::Parse(redact::text(&describe_figment_error(err))))
    }

    /// This configuration checked, section by section and across sections: the only way to a
    /// [`Config`]. The first failed check is the error.
    pub fn validate(mut self) -> Result<Config, ConfigError> {
        self.kafka.normalise();
        self.kafka.validate()?;
        streams::validate(&self.streams, &self.kafka)?;
        self.input.validate()?;
        self.batch.validate()?;
        self.window.validate_timing()?;
        self.extract.validate()?;
        self.output.validate()?;
        let memory_budget_bytes = self.window.validate_capacity(self.output.top_k)?;
        self.redis.validate(self.window.slide)?;
        self.retry.validate(&self.kafka)?;
        self.ownership.validate()?;
        self.http.validate()?;
        self.log.validate()?;
        Ok(Config {
            raw: self,
            memory_budget_bytes,
        })
    }

    /// This configuration as TOML, secrets included: for writing a file to load.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configuration serialises to TOML")
    }
}

/// A configuration that passed every check of [`RawConfig::validate`], read through one
/// accessor per section.
#[derive(Debug, Clone)]
pub struct Config {
    /// Every section, as validated; read only, through the accessors.
    raw: RawConfig,
    /// `window.memory_budget`, read.
    memory_budget_bytes: usize,
}

impl Config {
    /// Defaults, then `path` (if any), then the process environment; validated.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        RawConfig::load(path)?.validate()
    }

    /// Defaults with `toml` laid over them, no environment; validated. For tests and embedding.
    pub fn from_toml(toml: &str) -> Result<Config, ConfigError> {
        RawConfig::from_toml(toml)?.validate()
    }

    /// This configuration as a [`RawConfig`]: to change and validate again.
    pub fn to_raw(&self) -> RawConfig {
        self.raw.clone()
    }

    pub fn kafka(&self) -> &KafkaConfig {
        &self.raw.kafka
    }

    /// Every stream, enabled or not, by name; see [`Config::enabled_streams`].
    pub fn streams(&self) -> &BTreeMap<String, StreamConfig> {
        &self.raw.streams
    }

    pub fn input(&self) -> &InputConfig {
        &self.raw.input
    }

    pub fn batch(&self) -> &BatchConfig {
        &self.raw.batch
    }

    pub fn window(&self) -> &WindowConfig {
        &self.raw.window
    }

    pub fn extract(&self) -> &ExtractConfig {
        &self.raw.extract
    }

    pub fn output(&self) -> &OutputConfig {
        &self.raw.output
    }

    pub fn redis(&self) -> &RedisConfig {
        &self.raw.redis
    }

    pub fn retry(&self) -> &RetryConfig {
        &self.raw.retry
    }

    pub fn ownership(&self) -> &OwnershipConfig {
        &self.raw.ownership
    }

    pub fn log(&self) -> &LogConfig {
        &self.raw.log
    }

    pub fn http(&self) -> &HttpConfig {
        &self.raw.http
    }

    /// The enabled streams, by name.
    pub fn enabled_streams(&self) -> impl Iterator<Item = (&String, &StreamConfig)> {
        streams::enabled(&self.raw.streams)
    }

    /// The effective configuration as TOML, secrets included: for writing a file to load.
    pub fn to_toml(&self) -> String {
        self.raw.to_toml()
    }

    /// This configuration with its secrets replaced (see [`redact`]): for showing it.
    pub fn redacted(&self) -> RawConfig {
        let mut raw = self.to_raw();
        raw.redis.redact();
        raw.kafka.redact();
        raw
    }

    /// Window width in milliseconds.
    pub fn width_ms(&self) -> i64 {
        self.raw.window.width.as_millis() as i64
    }

    /// Window slide in milliseconds.
    pub fn slide_ms(&self) -> i64 {
        self.raw.window.slide.as_millis() as i64
    }

    /// Out-of-orderness in milliseconds.
    pub fn out_of_orderness_ms(&self) -> i64 {
        self.raw.window.out_of_orderness.as_millis() as i64
    }

    /// `window.memory_budget` in bytes.
    pub fn memory_budget_bytes(&self) -> usize {
        self.memory_budget_bytes
    }

    /// The extra stop words from `extract.stop_words_file`, read as
    /// [`parse_stop_words`](crate::extract::parse_stop_words) says.
    pub fn extra_stop_words(&self) -> Result<Vec<String>, ConfigError> {
        self.raw.extract.extra_stop_words()
    }
}

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Figment's errors say `for key "default.window.width"`; drop the profile name.
fn describe_figment_error(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| e.to_string().replace("\"default.", "\""))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
