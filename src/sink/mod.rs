//! Sinks: where closed windows and dead letters go, and [`SinkError`], what goes wrong on the
//! way out, for the Kafka sink and the Redis [`store`](crate::store) alike.
//!
//! - [`kafka`]: one JSON record per closed window, and dead letters; its `flush()` is the
//!   barrier before offsets are committed.
//!
//! Leaderboards, the latest closed window of each group as a top-K sorted set, are written
//! through [`store::leaderboard`](crate::store::leaderboard).

pub mod kafka;

use std::time::Duration;

/// Messages do not repeat their source's text: show an error with its causes, once each and
/// redacted, with [`redact::error`](crate::redact::error).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("Redis write failed")]
    RedisWrite(#[source] ::redis::RedisError),
    #[error("Redis read failed")]
    RedisRead(#[source] ::redis::RedisError),
    /// `url` is redacted by whoever makes one; the source's text is redacted when shown.
    #[error("cannot connect to Redis at {url}")]
    RedisConnect {
        url: String,
        #[source]
        source: ::redis::RedisError,
    },
    #[error("cannot produce to {topic}")]
    KafkaProduce {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The source is the last failure.
    #[error("gave up after {} of failures", humantime::format_duration(whole_ms(*.elapsed)))]
    GaveUp {
        elapsed: Duration,
        #[source]
        last: Box<SinkError>,
    },
}

impl SinkError {
    /// Whether trying again cannot help: Redis refused the credentials or the permissions, or
    /// the TLS handshake rejected a certificate, or the client is configured wrongly. Such an
    /// error stops the instance at once, with its reason, instead of after
    /// `retry.give_up_after` of futile retries.
    pub fn is_permanent(&self) -> bool {
        match self {
            SinkError::RedisWrite(err) | SinkError::RedisRead(err) => redis_permanent(err),
            SinkError::RedisConnect { source, .. } => redis_permanent(source),
            SinkError::KafkaProduce { .. } | SinkError::GaveUp { .. } => false,
        }
    }
}

fn redis_permanent(err: &::redis::RedisError) -> bool {
    use ::redis::{ErrorKind, ServerErrorKind};
    match err.kind() {
        ErrorKind::AuthenticationFailed
        | ErrorKind::InvalidClientConfig
        | ErrorKind::Server(ServerErrorKind::NoPerm) => true,
        _ => is_tls_rejection(err),
    }
}

/// Whether `err` comes from a TLS handshake that failed for a reason other than the network: an
/// untrusted or wrong certificate, no protocol in common, the server asking for a client
/// certificate. The redis crate keeps the I/O error behind an `Arc` whose chain skips rustls's
/// error, so this reads rustls's words (its `Display`) instead of its type.
fn is_tls_rejection(err: &::redis::RedisError) -> bool {
    const REJECTIONS: [&str; 3] = [
        "invalid peer certificate",
        "peer is incompatible",
        "received fatal alert",
    ];
    err.kind() == ::redis::ErrorKind::Io && {
        let text = err.to_string();
        REJECTIONS.iter().any(|r| text.contains(r))
    }
}

/// `d` without its fraction of a millisecond, for messages.
fn whole_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn giving_up_says_how_long_in_whole_milliseconds_and_shows_the_last_failure_once() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = SinkError::GaveUp {
            elapsed: Duration::from_nanos(61_234_567_891),
            last: Box::new(SinkError::RedisConnect {
                url: "redis://***@h:1".to_owned(),
                source: ::redis::RedisError::from(refused),
            }),
        };
        assert_eq!(err.to_string(), "gave up after 1m 1s 234ms of failures");
        assert_eq!(
            crate::redact::error(&err),
            "gave up after 1m 1s 234ms of failures: cannot connect to Redis at redis://***@h:1: \
             connection refused"
        );
    }
}
