//! Generate: realistic sample traffic for both input topics — danmu (bullet comments keyed by
//! room) and text posts (keyed by source) — for the demo, the tests and the benchmarks.
//!
//! [`TrafficGen`] is pure and deterministic (a seeded [`SmallRng`], no I/O); [`generate`]
//! sends its records to Kafka at a given rate.

mod traffic;

pub use traffic::{TrafficGen, MAX_VOCABULARY};

use std::collections::VecDeque;
use std::future::Future;
use std::num::NonZeroU32;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use governor::{Quota, RateLimiter};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use tracing::{info, warn};

use crate::sink::kafka::{send_queued, Queued};

/// Delivery futures kept before the oldest is awaited.
const MAX_IN_FLIGHT: usize = 50_000;
/// Records per shutdown check when there is no rate limit.
const UNLIMITED_CHUNK: u32 = 1024;
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Where the event time (`ts`) of generated records comes from.
#[derive(Debug, Clone)]
pub enum EventTime {
    /// Wall clock at send time.
    Now,
    /// `start_ms`, then `+ step_ms` per record (deterministic).
    Fixed { start_ms: i64, step_ms: i64 },
}

/// Records sent with an event time earlier than their place in the stream, as real feeds have
/// them (clients with slow clocks or networks, retries).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Disorder {
    /// Share of records whose event time is moved back by up to `max_delay_ms`.
    pub out_of_order: f64,
    pub max_delay_ms: i64,
    /// Share of records moved back by 5–30 s: late for windows that have closed.
    pub late: f64,
}

impl Disorder {
    /// How far back the next record's event time goes (0 for most).
    fn delay(&self, rng: &mut SmallRng) -> i64 {
        if self.late > 0.0 && rng.random_bool(self.late) {
            rng.random_range(5_000..=30_000)
        } else if self.out_of_order > 0.0 && rng.random_bool(self.out_of_order) {
            rng.random_range(0..=self.max_delay_ms.max(0))
        } else {
            0
        }
    }
}

/// What [`generate`] sends, where and how fast.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub brokers: String,
    pub danmu_topic: String,
    pub text_topic: String,
    /// Records per second in total; 0 = as fast as possible.
    pub rate: u32,
    /// Records in total; 0 = until shutdown.
    pub count: u64,
    pub rooms: u32,
    /// Made-up words (drawn Zipf-like) added to each record, one or two; 0 = none.
    pub vocabulary: u32,
    /// Share of records that are posts (0.0..=1.0), the rest danmu.
    pub text_share: f64,
    /// One bad record (to the danmu topic) every N records; 0 = none.
    pub bad_every: u64,
    pub seed: u64,
    pub event_time: EventTime,
    pub disorder: Disorder,
    /// Texts the posts take in turn (real text, say); empty for made-up ones.
    pub post_texts: Vec<String>,
    /// librdkafka producer properties: how it batches and compresses (`trendstream generate`
    /// sets `linger.ms` 20, `batch.num.messages` 10000 and no compression unless told
    /// otherwise, as a fast producer would), security settings.
    pub producer: Vec<(String, String)>,
}

/// Records delivered by [`generate`], by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GenerateReport {
    pub danmu: u64,
    pub posts: u64,
    pub bad: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot create producer")]
    CreateProducer(#[source] rdkafka::error::KafkaError),
    #[error("cannot deliver to {topic}")]
    Deliver {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
}

/// Delivery futures in send order, each with its topic.
type InFlight<'a> = VecDeque<(&'a str, DeliveryFuture)>;

/// Sends generated records until `opts.count` are sent or `shutdown` completes, then waits for
/// every outstanding delivery. The report counts sent records, all of them delivered.
pub async fn generate(
    opts: &GenerateOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<GenerateReport, GenerateError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &opts.brokers)
        .set("queue.buffering.max.messages", "200000");
    for (key, value) in &opts.producer {
        config.set(key, value);
    }
    let producer: FutureProducer = config.create().map_err(GenerateError::CreateProducer)?;

    let chunk = if opts.rate == 0 {
        UNLIMITED_CHUNK
    } else {
        (opts.rate / 100).max(1)
    };
    let burst = NonZeroU32::new(chunk).expect("chunk is at least 1");
    let limiter = NonZeroU32::new(opts.rate)
        .map(|rate| RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)));
    let mut traffic = TrafficGen::new(opts.seed, opts.rooms)
        .with_vocabulary(opts.vocabulary)
        .with_post_texts(opts.post_texts.clone());
    let mut mix = SmallRng::seed_from_u64(opts.seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut disorder = SmallRng::seed_from_u64(opts.seed ^ 0x2545_F491_4F6C_DD1D);
    let mut in_flight: InFlight<'_> = VecDeque::with_capacity(MAX_IN_FLIGHT);
    let mut report = GenerateReport::default();
    let mut sent: u64 = 0;
    let mut last_log = Instant::now();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let n = match opts.count {
            0 => chunk,
            count if sent >= count => break,
            count => u32::try_from(count - sent).map_or(chunk, |left| left.min(chunk)),
        };
        let stop = match &limiter {
            Some(limiter) => {
                let permits = NonZeroU32::new(n).expect("n is at least 1");
                tokio::select! {
                    biased;
                    () = &mut shutdown => true,
                    ready = limiter.until_n_ready(permits) => {
                        debug_assert!(ready.is_ok(), "n never exceeds the burst");
                        false
                    }
                }
            }
            None => tokio::select! {
                biased;
                () = &mut shutdown => true,
                () = tokio::task::yield_now() => false,
            },
        };
        if stop {
            break;
        }
        for _ in 0..n {
            let ts = match opts.event_time {
                EventTime::Now => now_ms(),
                EventTime::Fixed { start_ms, step_ms } => {
                    let index = i64::try_from(sent).unwrap_or(i64::MAX);
                    start_ms.saturating_add(step_ms.saturating_mul(index))
                }
            } - opts.disorder.delay(&mut disorder);
            sent += 1;
            let (topic, key, value, counter) =
                if opts.bad_every > 0 && sent.is_multiple_of(opts.bad_every) {
                    let (key, value) = traffic.bad();
                    (&opts.danmu_topic, key, value, &mut report.bad)
                } else if mix.random::<f64>() < opts.text_share {
                    let (key, value) = traffic.post(ts);
                    (&opts.text_topic, key, value.into_bytes(), &mut report.posts)
                } else {
                    let (key, value) = traffic.danmu(ts);
                    (
                        &opts.danmu_topic,
                        key,
                        value.into_bytes(),
                        &mut report.danmu,
                    )
                };
            send(&producer, &mut in_flight, topic, &key, &value).await?;
            *counter += 1;
        }
        if last_log.elapsed() >= LOG_EVERY {
            let (danmu, posts, bad) = (report.danmu, report.posts, report.bad);
            info!(
                danmu,
                posts,
                bad,
                in_flight = in_flight.len(),
                "Generated records."
            );
            last_log = Instant::now();
        }
    }

    while settle_oldest(&mut in_flight).await? {}
    if let Err(error) = producer.flush(Duration::from_secs(10)) {
        warn!(%error, "Producer flush failed after all deliveries were confirmed.");
    }
    let (danmu, posts, bad) = (report.danmu, report.posts, report.bad);
    info!(danmu, posts, bad, "Generation finished.");
    Ok(report)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Enqueues one record, waiting for old deliveries while the window or librdkafka's queue is
/// full.
async fn send<'a>(
    producer: &'a FutureProducer,
    in_flight: &mut InFlight<'a>,
    topic: &'a str,
    key: &str,
    payload: &[u8],
) -> Result<(), GenerateError> {
    if in_flight.len() >= MAX_IN_FLIGHT {
        settle_oldest(in_flight).await?;
    }
    let record = FutureRecord::to(topic).key(key).payload(payload);
    // librdkafka gives a refused record back whole.
    #[allow(clippy::result_large_err)]
    let send = |_: &InFlight<'a>, record| producer.send_result(record);
    match send_queued(in_flight, send, settle_oldest, record).await? {
        Queued::Sent(delivery) => {
            in_flight.push_back((topic, delivery));
            Ok(())
        }
        Queued::Failed(source, _) => {
            let topic = topic.to_owned();
            Err(GenerateError::Deliver { topic, source })
        }
    }
}

/// Awaits the oldest outstanding delivery; false when there is none.
async fn settle_oldest(in_flight: &mut InFlight<'_>) -> Result<bool, GenerateError> {
    let Some((topic, delivery)) = in_flight.pop_front() else {
        return Ok(false);
    };
    match delivery.await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err((source, _))) => Err(GenerateError::Deliver {
            topic: topic.to_owned(),
            source,
        }),
        Err(_canceled) => Err(GenerateError::Deliver {
            topic: topic.to_owned(),
            source: KafkaError::Canceled,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let opts = GenerateOptions {
            brokers: "localhost:9092".to_owned(),
            danmu_topic: "danmu".to_owned(),
            text_topic: "posts".to_owned(),
            rate: 0,
            count: 1,
            rooms: 1,
            vocabulary: 0,
            text_share: 0.5,
            bad_every: 0,
            seed: 0,
            event_time: EventTime::Now,
            disorder: Disorder::default(),
            post_texts: Vec::new(),
            producer: Vec::new(),
        };
        assert_send(&generate(&opts, async {}));
    }
}
