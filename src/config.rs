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
        let RawConfig {
            kafka,
            streams,
            input,
            batch,
            window,
            extract,
            output,
            redis,
            retry,
            ownership,
            log,
            http,
        } = self;
        kafka.validate()?;
        streams::validate(&streams, &kafka)?;
        input.validate()?;
        batch.validate()?;
        window.validate_timing()?;
        extract.validate()?;
        output.validate()?;
        let memory_budget_bytes = window.validate_capacity(output.top_k)?;
        redis.validate(window.slide)?;
        retry.validate(&kafka)?;
        ownership.validate()?;
        http.validate()?;
        log.validate()?;
        Ok(Config {
            kafka,
            streams,
            input,
            batch,
            window,
            extract,
            output,
            redis,
            retry,
            ownership,
            log,
            http,
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
    kafka: KafkaConfig,
    streams: BTreeMap<String, StreamConfig>,
    input: InputConfig,
    batch: BatchConfig,
    window: WindowConfig,
    extract: ExtractConfig,
    output: OutputConfig,
    redis: RedisConfig,
    retry: RetryConfig,
    ownership: OwnershipConfig,
    log: LogConfig,
    http: HttpConfig,
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
        RawConfig {
            kafka: self.kafka.clone(),
            streams: self.streams.clone(),
            input: self.input.clone(),
            batch: self.batch.clone(),
            window: self.window.clone(),
            extract: self.extract.clone(),
            output: self.output.clone(),
            redis: self.redis.clone(),
            retry: self.retry.clone(),
            ownership: self.ownership.clone(),
            log: self.log.clone(),
            http: self.http.clone(),
        }
    }

    pub fn kafka(&self) -> &KafkaConfig {
        &self.kafka
    }

    /// Every stream, enabled or not, by name; see [`Config::enabled_streams`].
    pub fn streams(&self) -> &BTreeMap<String, StreamConfig> {
        &self.streams
    }

    pub fn input(&self) -> &InputConfig {
        &self.input
    }

    pub fn batch(&self) -> &BatchConfig {
        &self.batch
    }

    pub fn window(&self) -> &WindowConfig {
        &self.window
    }

    pub fn extract(&self) -> &ExtractConfig {
        &self.extract
    }

    pub fn output(&self) -> &OutputConfig {
        &self.output
    }

    pub fn redis(&self) -> &RedisConfig {
        &self.redis
    }

    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    pub fn ownership(&self) -> &OwnershipConfig {
        &self.ownership
    }

    pub fn log(&self) -> &LogConfig {
        &self.log
    }

    pub fn http(&self) -> &HttpConfig {
        &self.http
    }

    /// The enabled streams, by name.
    pub fn enabled_streams(&self) -> impl Iterator<Item = (&String, &StreamConfig)> {
        streams::enabled(&self.streams)
    }

    /// The effective configuration as TOML, secrets included: for writing a file to load.
    pub fn to_toml(&self) -> String {
        self.to_raw().to_toml()
    }

    /// This configuration with its secrets replaced (see [`redact`]): for showing it.
    pub fn redacted(&self) -> RawConfig {
        let mut raw = self.to_raw();
        raw.redis.url = redact::text(&raw.redis.url);
        raw.kafka.redact();
        raw
    }

    /// Window width in milliseconds.
    pub fn width_ms(&self) -> i64 {
        self.window.width.as_millis() as i64
    }

    /// Window slide in milliseconds.
    pub fn slide_ms(&self) -> i64 {
        self.window.slide.as_millis() as i64
    }

    /// Out-of-orderness in milliseconds.
    pub fn out_of_orderness_ms(&self) -> i64 {
        self.window.out_of_orderness.as_millis() as i64
    }

    /// `window.memory_budget` in bytes.
    pub fn memory_budget_bytes(&self) -> usize {
        self.memory_budget_bytes
    }

    /// The extra stop words from `extract.stop_words_file`, read as
    /// [`parse_stop_words`](crate::extract::parse_stop_words) says.
    pub fn extra_stop_words(&self) -> Result<Vec<String>, ConfigError> {
        self.extract.extra_stop_words()
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
