//! Retry: a failed operation on a sink or a store is tried again with capped, jittered
//! back-off until it succeeds, fails for good, or has failed for too long.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RetryConfig;
use crate::sink::SinkError;

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
                    tracing::info!(what, failures, "{what} succeeded after retrying.");
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
                tracing::warn!(what, failures, %error, ?wait, "{what} failed; retrying.");
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
