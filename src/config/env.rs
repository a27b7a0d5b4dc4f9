//! Environment overrides: `TRENDSTREAM_<SECTION>__<KEY>` variables, as a figment provider that
//! keeps string values exactly as written.
//!
//! figment's own `Env` provider reads every value as if it were TOML-ish, so `0123` becomes the
//! number 123 and `true` a boolean: right for `batch.max_records`, wrong for a password or a
//! group id. Here a value stays the string it was when its key is a string: every librdkafka
//! property (`[kafka.common]`, `[kafka.consumer]`, `[kafka.producer]`), and every key whose default in
//! `config/default.toml` is a string (a key of a stream not among the defaults: like the same
//! key of the first default stream). Other values are read as figment reads them.

use figment::providers::Env;
use figment::util::nest;
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// `TRENDSTREAM_*` variables, typed by the defaults they override.
pub struct EnvOverrides {
    env: Env,
    defaults: toml::Table,
}

impl EnvOverrides {
    /// Variables named `<prefix><SECTION>__<KEY>`, over the defaults in `defaults_toml`.
    pub fn new(prefix: &str, defaults_toml: &str) -> EnvOverrides {
        EnvOverrides {
            env: Env::prefixed(prefix).split("__"),
            defaults: defaults_toml.parse().expect("the defaults are TOML"),
        }
    }

    /// Whether the key at `path` (lowercased, split on dots) holds a string.
    fn is_string(&self, path: &[&str]) -> bool {
        match path {
            ["kafka", "common" | "consumer" | "producer", _, ..] => true,
            ["streams", name, rest @ ..] => {
                let streams = self.defaults.get("streams").and_then(toml::Value::as_table);
                let stream = streams.and_then(|s| s.get(*name).or_else(|| s.values().next()));
                stream.is_some_and(|stream| is_string_at(stream, rest))
            }
            _ => self
                .defaults
                .get(path[0])
                .is_some_and(|section| is_string_at(section, &path[1..])),
        }
    }
}

fn is_string_at(value: &toml::Value, path: &[&str]) -> bool {
    match path {
        [] => value.is_str(),
        [first, rest @ ..] => value
            .get(*first)
            .is_some_and(|value| is_string_at(value, rest)),
    }
}

impl Provider for EnvOverrides {
    fn metadata(&self) -> Metadata {
        self.env.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, raw) in self.env.iter() {
            let path: Vec<&str> = key.as_str().split('.').collect();
            let value = if self.is_string(&path) {
                Value::from(raw)
            } else {
                raw.parse().expect("parsing a value is infallible")
            };
            let nested = nest(key.as_str(), value)
                .into_dict()
                .expect("a non-empty key nests into a dictionary");
            merge(&mut dict, nested);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// `from` laid over `into`, dictionary by dictionary.
fn merge(into: &mut Dict, from: Dict) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Dict(_, inner)), Value::Dict(_, value)) => merge(inner, value),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_TOML, ENV_PREFIX};

    fn is_string(key: &str) -> bool {
        let env = EnvOverrides::new(ENV_PREFIX, DEFAULT_TOML);
        env.is_string(&key.split('.').collect::<Vec<_>>())
    }

    #[test]
    fn string_keys_and_properties_are_strings() {
        for key in [
            "kafka.group_id",
            "kafka.consumer.sasl_password",
            "kafka.producer.linger_ms",
            "redis.url",
            "redis.key_prefix",
            "streams.danmu.topic",
            "streams.comments.group_by",
            "window.width",
        ] {
            assert!(is_string(key), "{key}");
        }
    }

    #[test]
    fn numbers_and_booleans_are_not_strings() {
        for key in [
            "batch.max_records",
            "output.top_k",
            "redis.cluster",
            "streams.comments.enabled",
            "extract.watch_keywords",
            "window.widht",
            "nonsense",
        ] {
            assert!(!is_string(key), "{key}");
        }
    }
}
