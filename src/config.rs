//! Configuration: the built-in defaults (`config/default.toml`), an optional file and
//! `TRENDSTREAM_*` environment variables (see `config/env.rs`), merged in that order and
//! validated once.
//!
//! A [`Config`] can only be had through [`Config::load`] or [`Config::from_toml`], so holding
//! one means every check below has passed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::redact;

mod env;

/// The defaults, documented key by key.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variables with this prefix override configuration keys.
pub const ENV_PREFIX: &str = "TRENDSTREAM_";

/// The most threads `batch.workers` may ask for.
const MAX_WORKERS: usize = 256;

/// Properties of the consumer that trendstream sets itself (`run::consumer`).
const OWNED_CONSUMER_PROPERTIES: &[&str] = &[
    "group.id",
    "bootstrap.servers",
    "client.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
];

/// Properties of the producer that trendstream sets itself (`sink::kafka`): it writes window
/// records and dead letters idempotently.
const OWNED_PRODUCER_PROPERTIES: &[&str] =
    &["bootstrap.servers", "client.id", "enable.idempotence"];

/// The consumer property bounding the time between polls, and librdkafka's default for it.
/// While a sink write is retried the consumer is not polled, so `retry.give_up_after` must be
/// shorter: otherwise the group evicts the instance (and reassigns its partitions) while it
/// still holds a batch.
const MAX_POLL_INTERVAL: &str = "max.poll.interval.ms";
const DEFAULT_MAX_POLL_INTERVAL_MS: u64 = 300_000;

/// The most counters `window.max_items` may ask for per (group, pane, category).
const MAX_WINDOW_ITEMS: usize = 1_000_000;

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

/// The longest term or watched keyword, in characters: with the entity caps, every item of an
/// output record has a known maximum size.
const MAX_ITEM_CHARS: usize = 256;

/// An [`ConfigError::Invalid`]; the value is shown as [`redact::value`] allows.
fn invalid(key: impl Into<String>, value: impl ToString, reason: impl Into<String>) -> ConfigError {
    let key = key.into();
    ConfigError::Invalid {
        value: redact::value(&key.replace('"', ""), &value.to_string()),
        key,
        reason: redact::text(&reason.into()),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address for `/metrics` and `/ready`; empty for none.
    pub listen: String,
}

/// `Debug` shows secrets redacted, like [`Config::redacted`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// Consumer group id.
    pub group_id: String,
    /// Client id for broker logs.
    pub client_id: String,
    /// Topic for window results.
    pub output_topic: String,
    /// Topic for records that could not be decoded.
    pub dead_letter_topic: String,
    /// librdkafka properties for every client (security settings, say); a property also set in
    /// `consumer` or `producer` takes that value there.
    #[serde(default, deserialize_with = "properties")]
    pub common: BTreeMap<String, String>,
    /// librdkafka properties for the consumer.
    #[serde(deserialize_with = "properties")]
    pub consumer: BTreeMap<String, String>,
    /// librdkafka properties for the producer.
    #[serde(deserialize_with = "properties")]
    pub producer: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Whether this stream is read.
    pub enabled: bool,
    /// Kafka topic of the stream.
    pub topic: String,
    /// JSON field holding the group key.
    pub group_by: String,
}

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
    /// Threads that process a batch, one partition at a time each; 0: one per core.
    pub workers: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length.
    #[serde(with = "humantime_serde")]
    pub width: Duration,
    /// Distance between window starts.
    #[serde(with = "humantime_serde")]
    pub slide: Duration,
    /// How far the watermark trails the highest event time.
    #[serde(with = "humantime_serde")]
    pub out_of_orderness: Duration,
    /// Memory for the counters of the windows of one partition held, like "64MiB": counts are
    /// exact while they fit. Read with [`Config::memory_budget_bytes`].
    #[serde(deserialize_with = "size")]
    pub memory_budget: String,
    /// Counters per (group, pane, category) at most, whatever the memory budget.
    pub max_items: usize,
    /// Groups with data in one pane of a partition at most; records of more are dead-lettered.
    pub max_groups: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    /// Shortest counted term, in characters.
    pub min_term_chars: usize,
    /// Longest counted term, in characters.
    pub max_term_chars: usize,
    /// Extra stop words, one per line; empty for none.
    pub stop_words_file: PathBuf,
    /// Keywords counted under `keywords`.
    pub watch_keywords: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Items per leaderboard and per list.
    pub top_k: usize,
}

/// `Debug` shows secrets redacted, like [`Config::redacted`].
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

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |props: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            props
                .iter()
                .map(|(k, v)| (k.clone(), redact::value(k, v)))
                .collect()
        };
        f.debug_struct("KafkaConfig")
            .field("brokers", &redact::text(&self.brokers))
            .field("group_id", &self.group_id)
            .field("client_id", &self.client_id)
            .field("output_topic", &self.output_topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("common", &shown(&self.common))
            .field("consumer", &shown(&self.consumer))
            .field("producer", &shown(&self.producer))
            .finish()
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact::text(&self.url))
            .field("cluster", &self.cluster)
            .field("key_prefix", &self.key_prefix)
            .field("ttl", &self.ttl)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .finish()
    }
}

impl KafkaConfig {
    /// The consumer's librdkafka properties: `common`, with `consumer` laid over it.
    pub fn consumer_properties(&self) -> BTreeMap<String, String> {
        laid_over(&self.common, &self.consumer)
    }

    /// The producer's librdkafka properties: `common`, with `producer` laid over it.
    pub fn producer_properties(&self) -> BTreeMap<String, String> {
        laid_over(&self.common, &self.producer)
    }
}

fn laid_over(
    base: &BTreeMap<String, String>,
    over: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut props = base.clone();
    props.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
    props
}

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

impl Config {
    /// Defaults, then `path` (if any), then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
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
    pub fn from_toml(toml: &str) -> Result<Config, ConfigError> {
        Self::extract(Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(toml)))
    }

    fn extract(figment: Figment) -> Result<Config, ConfigError> {
        let mut config: Config = figment
            .extract()
            .map_err(|err| ConfigError::Parse(redact::text(&describe_figment_error(err))))?;
        config.normalise();
        config.validate()?;
        Ok(config)
    }

    /// Environment variables cannot carry dots, so librdkafka properties set through them
    /// arrive with underscores; librdkafka's own names never contain one.
    fn normalise(&mut self) {
        for props in [
            &mut self.kafka.common,
            &mut self.kafka.consumer,
            &mut self.kafka.producer,
        ] {
            *props = std::mem::take(props)
                .into_iter()
                .map(|(k, v)| (k.replace('_', "."), v))
                .collect();
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        for (key, value) in [
            ("kafka.brokers", &k.brokers),
            ("kafka.group_id", &k.group_id),
            ("kafka.client_id", &k.client_id),
            ("kafka.output_topic", &k.output_topic),
            ("kafka.dead_letter_topic", &k.dead_letter_topic),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key, "\"\"", "must not be empty"));
            }
        }
        for (table, props, owned) in [
            ("common", &k.common, OWNED_CONSUMER_PROPERTIES),
            ("common", &k.common, OWNED_PRODUCER_PROPERTIES),
            ("consumer", &k.consumer, OWNED_CONSUMER_PROPERTIES),
            ("producer", &k.producer, OWNED_PRODUCER_PROPERTIES),
        ] {
            for owned in owned {
                if let Some(value) = props.get(*owned) {
                    return Err(invalid(
                        format!("kafka.{table}.\"{owned}\""),
                        value,
                        "is set by trendstream itself and cannot be configured",
                    ));
                }
            }
        }
        if k.output_topic == k.dead_letter_topic {
            return Err(invalid(
                "kafka.dead_letter_topic",
                &k.dead_letter_topic,
                "must differ from kafka.output_topic",
            ));
        }

        let enabled: Vec<_> = self.enabled_streams().collect();
        if enabled.is_empty() {
            return Err(invalid(
                "streams",
                format!("{:?}", self.streams.keys().collect::<Vec<_>>()),
                "must contain at least one stream with enabled = true",
            ));
        }
        let mut topics = BTreeMap::new();
        for (name, stream) in &enabled {
            let valid_name = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name || name.is_empty() {
                return Err(invalid(
                    format!("streams.{name}"),
                    name,
                    "stream names may hold only ASCII letters, digits, '_' and '-'",
                ));
            }
            if stream.topic.trim().is_empty() {
                return Err(invalid(
                    format!("streams.{name}.topic"),
                    "\"\"",
                    "must not be empty",
                ));
            }
            if stream.group_by.trim().is_empty() {
                return Err(invalid(
                    format!("streams.{name}.group_by"),
                    "\"\"",
                    "must not be empty",
                ));
            }
            if let Some(other) = topics.insert(stream.topic.as_str(), name) {
                return Err(invalid(
                    format!("streams.{name}.topic"),
                    &stream.topic,
                    format!("is already read by stream {other}"),
                ));
            }
            if stream.topic == k.output_topic || stream.topic == k.dead_letter_topic {
                return Err(invalid(
                    format!("streams.{name}.topic"),
                    &stream.topic,
                    "must differ from kafka.output_topic and kafka.dead_letter_topic",
                ));
            }
        }

        if self.input.max_event_time_ahead.is_zero() {
            return Err(invalid(
                "input.max_event_time_ahead",
                "0s",
                "must be longer than 0",
            ));
        }
        if self.input.max_message_bytes == 0 {
            return Err(invalid("input.max_message_bytes", 0, "must be at least 1"));
        }
        if self.batch.max_records == 0 {
            return Err(invalid("batch.max_records", 0, "must be at least 1"));
        }
        if self.batch.max_wait.is_zero() {
            return Err(invalid("batch.max_wait", "0s", "must be longer than 0"));
        }
        if self.batch.workers > MAX_WORKERS {
            return Err(invalid(
                "batch.workers",
                self.batch.workers,
                format!("must be at most {MAX_WORKERS} (0: one per core)"),
            ));
        }

        let w = &self.window;
        for (key, value) in [("window.width", w.width), ("window.slide", w.slide)] {
            if value.is_zero() || value.subsec_nanos() % 1_000_000 != 0 {
                return Err(invalid(
                    key,
                    show(value),
                    "must be a positive whole number of milliseconds",
                ));
            }
        }
        if !w.width.as_millis().is_multiple_of(w.slide.as_millis()) {
            return Err(invalid(
                "window.slide",
                show(w.slide),
                format!("must divide window.width ({})", show(w.width)),
            ));
        }
        if w.width.as_millis() / w.slide.as_millis() > 1000 {
            return Err(invalid(
                "window.slide",
                show(w.slide),
                format!(
                    "is too small for window.width ({}): at most 1000 slides per window",
                    show(w.width)
                ),
            ));
        }

        let e = &self.extract;
        if e.min_term_chars == 0 {
            return Err(invalid("extract.min_term_chars", 0, "must be at least 1"));
        }
        if e.max_term_chars > MAX_ITEM_CHARS {
            return Err(invalid(
                "extract.max_term_chars",
                e.max_term_chars,
                format!("must be at most {MAX_ITEM_CHARS}"),
            ));
        }
        if let Some(long) = e
            .watch_keywords
            .iter()
            .find(|k| k.chars().count() > MAX_ITEM_CHARS)
        {
            return Err(invalid(
                "extract.watch_keywords",
                format!("{:?}…", long.chars().take(20).collect::<String>()),
                format!("must not contain keywords of more than {MAX_ITEM_CHARS} characters"),
            ));
        }
        if e.max_term_chars < e.min_term_chars {
            return Err(invalid(
                "extract.max_term_chars",
                e.max_term_chars,
                format!(
                    "must be at least extract.min_term_chars ({})",
                    e.min_term_chars
                ),
            ));
        }
        if let Some(empty) = e.watch_keywords.iter().find(|k| k.trim().is_empty()) {
            return Err(invalid(
                "extract.watch_keywords",
                format!("{empty:?}"),
                "must not contain empty keywords",
            ));
        }

        if self.output.top_k == 0 || self.output.top_k > 10_000 {
            return Err(invalid(
                "output.top_k",
                self.output.top_k,
                "must be between 1 and 10000",
            ));
        }
        if let Err(reason) = parse_size(&self.window.memory_budget) {
            return Err(invalid(
                "window.memory_budget",
                &self.window.memory_budget,
                reason,
            ));
        }
        if self.window.max_groups == 0 {
            return Err(invalid("window.max_groups", 0, "must be at least 1"));
        }
        if self.window.max_items < self.output.top_k {
            return Err(invalid(
                "window.max_items",
                self.window.max_items,
                format!("must be at least output.top_k ({})", self.output.top_k),
            ));
        }
        if self.window.max_items > MAX_WINDOW_ITEMS {
            return Err(invalid(
                "window.max_items",
                self.window.max_items,
                format!("must be at most {MAX_WINDOW_ITEMS}"),
            ));
        }

        for url in self.redis.url.split(',').map(str::trim) {
            if let Err(err) = redis::Client::open(url) {
                return Err(invalid(
                    "redis.url",
                    &self.redis.url,
                    format!("is not a Redis URL: {err}"),
                ));
            }
        }
        let r = &self.redis;
        let tls = r
            .url
            .split(',')
            .all(|url| url.trim().starts_with("rediss://"));
        for (key, path) in [
            ("redis.tls_ca_file", &r.tls_ca_file),
            ("redis.tls_cert_file", &r.tls_cert_file),
            ("redis.tls_key_file", &r.tls_key_file),
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
        if r.tls_cert_file.is_empty() != r.tls_key_file.is_empty() {
            let (key, path) = if r.tls_cert_file.is_empty() {
                ("redis.tls_key_file", &r.tls_key_file)
            } else {
                ("redis.tls_cert_file", &r.tls_cert_file)
            };
            return Err(invalid(
                key,
                path,
                "needs both redis.tls_cert_file and redis.tls_key_file",
            ));
        }
        if !self.redis.cluster && self.redis.url.contains(',') {
            return Err(invalid(
                "redis.url",
                &self.redis.url,
                "names several servers; set redis.cluster = true for a Redis Cluster",
            ));
        }
        if self.redis.ttl < self.window.slide {
            return Err(invalid(
                "redis.ttl",
                show(self.redis.ttl),
                format!(
                    "must be at least window.slide ({}), or leaderboards expire between updates",
                    show(self.window.slide)
                ),
            ));
        }

        let r = &self.retry;
        if r.initial_backoff.is_zero() {
            return Err(invalid(
                "retry.initial_backoff",
                "0s",
                "must be longer than 0",
            ));
        }
        if r.max_backoff < r.initial_backoff {
            return Err(invalid(
                "retry.max_backoff",
                show(r.max_backoff),
                format!(
                    "must be at least retry.initial_backoff ({})",
                    show(r.initial_backoff)
                ),
            ));
        }
        let poll_interval_ms = match k.consumer_properties().get(MAX_POLL_INTERVAL) {
            None => DEFAULT_MAX_POLL_INTERVAL_MS,
            Some(value) => value.trim().parse::<u64>().map_err(|_| {
                invalid(
                    format!("kafka.consumer.\"{MAX_POLL_INTERVAL}\""),
                    value,
                    "is not a whole number of milliseconds",
                )
            })?,
        };
        if r.give_up_after.as_millis() >= u128::from(poll_interval_ms) {
            return Err(invalid(
                "retry.give_up_after",
                show(r.give_up_after),
                format!(
                    "must be shorter than kafka.consumer.\"{MAX_POLL_INTERVAL}\" ({poll_interval_ms}), \
                     or the group evicts this instance while it retries"
                ),
            ));
        }
        let o = &self.ownership;
        if o.renew_every.is_zero() {
            return Err(invalid(
                "ownership.renew_every",
                "0s",
                "must be longer than 0",
            ));
        }
        if o.lease < o.renew_every * 3 {
            return Err(invalid(
                "ownership.lease",
                show(o.lease),
                format!(
                    "must be at least three times ownership.renew_every ({})",
                    show(o.renew_every)
                ),
            ));
        }
        if o.stall_after < Duration::from_millis(100) {
            return Err(invalid(
                "ownership.stall_after",
                show(o.stall_after),
                "must be at least 100ms",
            ));
        }
        let listen = &self.http.listen;
        if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "http.listen",
                listen,
                "is not an address like 0.0.0.0:9898",
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                &self.log.level,
                "is not a level or filter directive",
            ));
        }
        Ok(())
    }

    /// The enabled streams, by name.
    pub fn enabled_streams(&self) -> impl Iterator<Item = (&String, &StreamConfig)> {
        self.streams.iter().filter(|(_, s)| s.enabled)
    }

    /// The effective configuration as TOML, secrets included: for writing a file to load.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configuration serialises to TOML")
    }

    /// This configuration with its secrets replaced (see [`redact`]): for showing it.
    pub fn redacted(&self) -> Config {
        let mut config = self.clone();
        config.redis.url = redact::text(&config.redis.url);
        config.kafka.brokers = redact::text(&config.kafka.brokers);
        for props in [
            &mut config.kafka.common,
            &mut config.kafka.consumer,
            &mut config.kafka.producer,
        ] {
            for (key, value) in props.iter_mut() {
                *value = redact::value(key, value);
            }
        }
        config
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
        parse_size(&self.window.memory_budget).expect("validated when loaded")
    }

    /// The extra stop words from `extract.stop_words_file`, read as
    /// [`parse_stop_words`](crate::extract::parse_stop_words) says.
    pub fn extra_stop_words(&self) -> Result<Vec<String>, ConfigError> {
        let path = &self.extract.stop_words_file;
        if path.as_os_str().is_empty() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::StopWordsFile {
            path: path.display().to_string(),
            source,
        })?;
        Ok(crate::extract::parse_stop_words(&text)
            .map(str::to_owned)
            .collect())
    }
}

/// librdkafka properties are strings, but `10` and `true` are fine to write too. (Environment
/// variables arrive as strings, exactly as written: see `config/env.rs`.)
fn properties<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Str(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::Str(s) => s,
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// A size in bytes, like "64MiB" or "512 KiB": a whole number and a unit of B, KiB, MiB or
/// GiB (KB, MB, GB are read as the same binary units), at least 1 KiB.
fn parse_size(text: &str) -> Result<usize, String> {
    const HOW: &str = "is not a size like \"64MiB\" (a whole number of B, KiB, MiB or GiB)";
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| HOW.to_owned())?;
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(HOW.to_owned()),
    };
    let bytes = number
        .checked_mul(unit)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| "is too large".to_owned())?;
    if bytes < 1 << 10 {
        return Err("must be at least 1KiB".to_owned());
    }
    Ok(bytes)
}

/// A size written as a string ("64MiB") or a number of bytes (as environment variables give
/// it), kept as written; [`parse_size`] reads it.
fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Str(String),
        Int(u64),
    }
    Ok(match Size::deserialize(d)? {
        Size::Str(s) => s,
        Size::Int(n) => n.to_string(),
    })
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
mod tests {
    use super::*;

    fn err(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.width_ms(), 60_000);
        assert_eq!(config.slide_ms(), 10_000);
        assert_eq!(config.enabled_streams().count(), 2);
        assert_eq!(config.kafka.consumer["fetch.wait.max.ms"], "10");
    }

    #[test]
    fn slide_must_divide_width() {
        assert_eq!(
            err("[window]\nslide = \"7s\""),
            "window.slide (7s) must divide window.width (1m)"
        );
    }

    #[test]
    fn overlong_terms_and_keywords_are_refused() {
        assert_eq!(
            err("[extract]\nmax_term_chars = 1000"),
            "extract.max_term_chars (1000) must be at most 256"
        );
        let long = "k".repeat(300);
        assert!(err(&format!("[extract]\nwatch_keywords = [\"{long}\"]"))
            .starts_with("extract.watch_keywords (\"kkkkkkkkkkkkkkkkkkkk\"…) must not contain keywords of more than 256"));
    }

    #[test]
    fn max_items_below_top_k_is_refused() {
        assert_eq!(
            err("[window]\nmax_items = 10"),
            "window.max_items (10) must be at least output.top_k (20)"
        );
    }

    #[test]
    fn max_items_above_a_million_is_refused() {
        assert_eq!(
            err("[window]\nmax_items = 2000000"),
            "window.max_items (2000000) must be at most 1000000"
        );
    }

    #[test]
    fn memory_budget_is_read_in_binary_units() {
        let budget = |text: &str| {
            Config::from_toml(&format!("[window]\nmemory_budget = {text}"))
                .unwrap()
                .memory_budget_bytes()
        };
        assert_eq!(budget("\"64MiB\""), 64 << 20);
        assert_eq!(budget("\"512 KiB\""), 512 << 10);
        assert_eq!(budget("\"2GiB\""), 2 << 30);
        assert_eq!(budget("\"4096B\""), 4096);
        assert_eq!(budget("65536"), 65536);
    }

    #[test]
    fn a_bad_memory_budget_is_named() {
        assert_eq!(
            err("[window]\nmemory_budget = \"lots\""),
            "window.memory_budget (lots) is not a size like \"64MiB\" (a whole number of B, KiB, MiB or GiB)"
        );
        assert_eq!(
            err("[window]\nmemory_budget = \"64 MiBs\""),
            "window.memory_budget (64 MiBs) is not a size like \"64MiB\" (a whole number of B, KiB, MiB or GiB)"
        );
        assert_eq!(
            err("[window]\nmemory_budget = \"100B\""),
            "window.memory_budget (100B) must be at least 1KiB"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let msg = err("[window]\nwidht = \"7s\"");
        assert!(
            msg.contains("unknown field") && msg.contains("widht"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_type_is_named_with_key() {
        let msg = err("[output]\ntop_k = \"many\"");
        assert!(
            msg.contains("output.top_k") && msg.contains("many"),
            "{msg}"
        );
    }

    #[test]
    fn top_k_zero_is_refused() {
        assert_eq!(
            err("[output]\ntop_k = 0"),
            "output.top_k (0) must be between 1 and 10000"
        );
    }

    #[test]
    fn too_many_workers_are_refused() {
        assert_eq!(
            err("[batch]\nworkers = 1000"),
            "batch.workers (1000) must be at most 256 (0: one per core)"
        );
    }

    #[test]
    fn no_enabled_stream_is_refused() {
        let msg = err("[streams.danmu]\nenabled = false\n[streams.text]\nenabled = false");
        assert!(msg.starts_with("streams ("), "{msg}");
    }

    #[test]
    fn owned_consumer_property_is_refused() {
        assert_eq!(
            err("[kafka.consumer]\n\"enable.auto.commit\" = \"true\""),
            "kafka.consumer.\"enable.auto.commit\" (true) is set by trendstream itself and cannot be configured"
        );
    }

    #[test]
    fn common_properties_reach_both_clients_and_give_way_to_their_own() {
        let config = Config::from_toml(
            "[kafka.common]\n\"security.protocol\" = \"SASL_SSL\"\n\"linger.ms\" = \"1\"\n[kafka.producer]\n\"linger.ms\" = \"9\"",
        )
        .unwrap();
        let consumer = config.kafka.consumer_properties();
        let producer = config.kafka.producer_properties();
        assert_eq!(consumer["security.protocol"], "SASL_SSL");
        assert_eq!(producer["security.protocol"], "SASL_SSL");
        assert_eq!(producer["linger.ms"], "9");
        assert_eq!(
            err("[kafka.common]\n\"group.id\" = \"other\""),
            "kafka.common.\"group.id\" (other) is set by trendstream itself and cannot be configured"
        );
        assert_eq!(
            err("[kafka.common]\n\"enable.idempotence\" = \"false\""),
            "kafka.common.\"enable.idempotence\" (false) is set by trendstream itself and cannot be configured"
        );
    }

    #[test]
    fn redis_tls_files_need_rediss_and_must_exist() {
        assert_eq!(
            err("[redis]\ntls_ca_file = \"Cargo.toml\""),
            "redis.tls_ca_file (Cargo.toml) is set, but redis.url does not name rediss:// (TLS) servers"
        );
        assert_eq!(
            err("[redis]\nurl = \"rediss://h:6380\"\ntls_ca_file = \"no-such.pem\""),
            "redis.tls_ca_file (no-such.pem) is not a readable file"
        );
        assert_eq!(
            err("[redis]\nurl = \"rediss://h:6380\"\ntls_cert_file = \"Cargo.toml\""),
            "redis.tls_cert_file (Cargo.toml) needs both redis.tls_cert_file and redis.tls_key_file"
        );
    }

    #[test]
    fn owned_producer_properties_are_refused() {
        assert_eq!(
            err("[kafka.producer]\n\"enable.idempotence\" = \"false\""),
            "kafka.producer.\"enable.idempotence\" (false) is set by trendstream itself and cannot be configured"
        );
        assert_eq!(
            err("[kafka.producer]\n\"bootstrap.servers\" = \"elsewhere:9092\""),
            "kafka.producer.\"bootstrap.servers\" (elsewhere:9092) is set by trendstream itself and cannot be configured"
        );
    }

    #[test]
    fn redis_url_in_an_error_is_shown_without_its_password() {
        let msg = err("[redis]\nurl = \"redis://:hunter2@h:1,redis://:hunter2@h:2\"");
        assert_eq!(
            msg,
            "redis.url (redis://***@h:1,redis://***@h:2) names several servers; set redis.cluster = true for a Redis Cluster"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_shown_without_url_user_info() {
        let msg = err("[redis]\nurl = \"redis://:hunter2@h\"\ncluster = \"redis://:hunter2@h\"");
        assert!(
            msg.contains("redis.cluster") && msg.contains("redis://***@h"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn redacted_config_hides_url_user_info_and_secret_properties() {
        let config = Config::from_toml(
            "[redis]\nurl = \"redis://user:hunter2@h:6379\"\n[kafka.consumer]\n\"sasl.password\" = \"hunter2\"\n\"sasl.username\" = \"me\"\n[kafka.producer]\n\"ssl.key.password\" = \"hunter2\"",
        )
        .unwrap();
        let shown = config.redacted();
        assert_eq!(shown.redis.url, "redis://***@h:6379");
        assert_eq!(shown.kafka.consumer["sasl.password"], "***");
        assert_eq!(shown.kafka.consumer["sasl.username"], "me");
        assert_eq!(shown.kafka.producer["ssl.key.password"], "***");
        assert!(!shown.to_toml().contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
        // The configuration itself keeps them.
        assert_eq!(config.kafka.consumer["sasl.password"], "hunter2");
    }

    #[test]
    fn giving_up_no_sooner_than_the_poll_interval_is_refused() {
        assert_eq!(
            err("[retry]\ngive_up_after = \"5m\""),
            "retry.give_up_after (5m) must be shorter than kafka.consumer.\"max.poll.interval.ms\" (300000), \
             or the group evicts this instance while it retries"
        );
        assert_eq!(
            err("[kafka.consumer]\n\"max.poll.interval.ms\" = \"60000\"\n[retry]\ngive_up_after = \"90s\""),
            "retry.give_up_after (1m 30s) must be shorter than kafka.consumer.\"max.poll.interval.ms\" (60000), \
             or the group evicts this instance while it retries"
        );
        assert_eq!(
            err("[kafka.consumer]\n\"max.poll.interval.ms\" = \"5m\""),
            "kafka.consumer.\"max.poll.interval.ms\" (5m) is not a whole number of milliseconds"
        );
        let config = Config::from_toml(
            "[kafka.consumer]\n\"max.poll.interval.ms\" = \"600000\"\n[retry]\ngive_up_after = \"9m\"",
        );
        assert!(config.is_ok(), "{config:?}");
    }

    #[test]
    fn ttl_shorter_than_slide_is_refused() {
        assert_eq!(
            err("[redis]\nttl = \"1s\""),
            "redis.ttl (1s) must be at least window.slide (10s), or leaderboards expire between updates"
        );
    }

    #[test]
    fn two_streams_on_one_topic_are_refused() {
        assert_eq!(
            err("[streams.text]\ntopic = \"danmu\""),
            "streams.text.topic (danmu) is already read by stream danmu"
        );
    }

    #[test]
    fn property_names_from_environment_get_their_dots_back() {
        let config = Config::from_toml("[kafka.producer]\nlinger_ms = 50").unwrap();
        assert_eq!(config.kafka.producer["linger.ms"], "50");
    }
}
