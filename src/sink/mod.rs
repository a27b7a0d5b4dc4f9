//! Sinks: where closed windows and dead letters go. Each sink buffers the writes of one batch
//! and has a `flush()` that is the barrier before offsets are committed.
//!
//! - [`redis`]: the latest closed window of each group as a top-K sorted set.
//! - [`kafka`]: one JSON record per closed window, and dead letters.

pub mod kafka;
pub mod redis;

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RetryConfig;

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

/// Runs `attempt` until it succeeds, backing off from `initial_backoff`, doubling up to
/// `max_backoff`, each wait [`jittered`]; after `give_up_after` of failures, returns
/// [`SinkError::GaveUp`]. A [permanent](SinkError::is_permanent) error is returned at once.
pub async fn with_retry<T, F, Fut>(
    retry: &RetryConfig,
    what: &str,
    mut attempt: F,
) -> Result<T, SinkError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SinkError>>,
{
    let started = Instant::now();
    let mut backoff = retry.initial_backoff;
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!(what, failures, "Write succeeded after retrying.");
                }
                return Ok(value);
            }
            Err(err) if err.is_permanent() => return Err(err),
            Err(err) => {
                failures += 1;
                let elapsed = started.elapsed();
                if elapsed >= retry.give_up_after {
                    return Err(SinkError::GaveUp {
                        elapsed,
                        last: Box::new(err),
                    });
                }
                let wait = jittered(backoff, rand::random::<f64>());
                let error = crate::redact::error(&err);
                tracing::warn!(what, failures, %error, ?wait, "Write failed; retrying.");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(retry.max_backoff);
            }
        }
    }
}

/// The wait for a back-off of `backoff`, given `unit`, a random number in [0, 1): between half
/// of `backoff` and all of it ("equal jitter"). Instances that failed together (a Redis that
/// went away) do not all retry at once, none waits longer than the back-off (so never longer
/// than `max_backoff`), and none hammers a failing sink with waits near zero.
pub fn jittered(backoff: Duration, unit: f64) -> Duration {
    let unit = if unit.is_nan() {
        0.0
    } else {
        unit.clamp(0.0, 1.0)
    };
    let half = backoff / 2;
    half + (backoff - half).mul_f64(unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn retry() -> RetryConfig {
        RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            give_up_after: Duration::from_secs(5),
        }
    }

    fn failure() -> SinkError {
        SinkError::RedisWrite(::redis::RedisError::from((::redis::ErrorKind::Io, "down")))
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success() {
        let calls = Cell::new(0);
        let out = with_retry(&retry(), "test", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 4 {
                    Err(failure())
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(out, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_deadline() {
        let started = Instant::now();
        let err = with_retry(&retry(), "test", || async { Err::<(), _>(failure()) })
            .await
            .unwrap_err();
        assert!(matches!(err, SinkError::GaveUp { .. }), "{err}");
        // The first failure after 5 s gives up; the wait before it was at most max_backoff.
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_secs(5) && elapsed <= Duration::from_secs(6),
            "{elapsed:?}"
        );
    }

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

    #[test]
    fn jittered_wait_is_between_half_the_backoff_and_the_backoff() {
        let backoff = Duration::from_millis(800);
        assert_eq!(jittered(backoff, 0.0), Duration::from_millis(400));
        assert_eq!(jittered(backoff, 0.5), Duration::from_millis(600));
        for unit in [0.0, 0.25, 0.999_999, 1.0, -1.0, 2.0, f64::NAN] {
            let wait = jittered(backoff, unit);
            assert!(wait >= backoff / 2 && wait <= backoff, "{unit}: {wait:?}");
        }
        for _ in 0..1000 {
            let wait = jittered(backoff, rand::random::<f64>());
            assert!(wait >= backoff / 2 && wait <= backoff, "{wait:?}");
        }
    }
}
