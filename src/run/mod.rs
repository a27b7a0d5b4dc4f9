//! Run: the consumer loop. Poll a batch, let the [`Engine`] process it, write what it produced
//! (Redis, output topic, dead letters), wait for every acknowledgement, save the partitions'
//! checkpoints, then commit. Rebalances, shutdown and fatal errors are handled here.
//!
//! - [`consumer`]: the Kafka side — the consumer, rebalances, taking up partitions.
//! - [`batch`]: one batch through the engine and the sinks, up to its checkpoints and commit.
//! - [`ownership`]: partition leases in Redis, and rejoining when a partition has no owner.
//! - [`positions`]: partitions read from where their windows need them, with nothing skipped.
//! - [`error`]: [`RunError`], why a run stopped.

mod batch;
mod consumer;
mod error;
mod lag;
mod ownership;
mod positions;

pub use error::RunError;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::engine::Engine;
use crate::extract::{ExtractOptions, Extractor};
use crate::metrics::TopicPartition;
use crate::observe::{self, Metrics};
use crate::page::HotPage;
use crate::retry::with_retry;
use crate::sink::kafka::KafkaSink;
use crate::store::checkpoint::Checkpoints;
use crate::store::leaderboard::Leaderboards;
use crate::store::lease::Leases;
use crate::store::Connection;

use batch::{prepare, Writer, Written};
use consumer::{
    check_topics, create_consumer, drop_revoked, new_partitions, offsets_client, poll_batch,
    take_up_partitions,
};
use ownership::Ownership;
use positions::Positions;

/// How often totals are logged.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Runs the consumer until `shutdown` completes (then finishes the batch in hand, commits it
/// and leaves the group) or a fatal error occurs.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let config = Arc::new(config);
    let extractor = Arc::new(Extractor::new(&ExtractOptions {
        min_term_chars: config.extract().min_term_chars,
        max_term_chars: config.extract().max_term_chars,
        extra_stop_words: config.extra_stop_words()?,
        watch_keywords: config.extract().watch_keywords.clone(),
    }));
    let mut engine = Engine::new(&config, extractor);
    let metrics = Arc::new(Metrics::default());
    metrics.start_at_zero(config.enabled_streams().map(|(name, _)| name.as_str()));
    let consumer = Arc::new(create_consumer(&config, Arc::clone(&metrics))?);
    let topology = check_topics(&consumer, &config).await?;
    let kafka = KafkaSink::new(config.kafka(), topology.output_partitions)
        .map_err(RunError::CreateProducer)?;
    let redis = with_retry(config.retry(), "redis connect", || {
        Connection::connect(config.redis())
    })
    .await?;
    let checkpoints = Checkpoints::new(redis.clone(), config.redis());
    let mut writer = Writer::new(
        Arc::clone(&consumer),
        kafka,
        Leaderboards::new(redis.clone(), config.redis()),
        checkpoints.clone(),
        Arc::clone(&config),
        Arc::clone(&metrics),
        &engine,
    );

    let ownership = Ownership::start(
        Arc::clone(&consumer),
        Leases::new(redis.clone(), config.redis()),
        &config,
        topology.inputs,
        Arc::clone(&metrics),
    );
    let stop_http = CancellationToken::new();
    // However `run` ends (an error, or its task dropped), the tasks beside it end too.
    let _stop_tasks = stop_http.clone().drop_guard();
    if !config.http().listen.is_empty() {
        let listener = TcpListener::bind(&config.http().listen)
            .await
            .map_err(|source| RunError::Listen {
                addr: config.http().listen.clone(),
                source,
            })?;
        tokio::spawn(observe::serve(
            listener,
            Arc::clone(&metrics),
            Some(Arc::new(HotPage::new(redis, &config))),
            stop_http.clone(),
            observe::HttpLimits::default(),
        ));
    }

    let offsets = offsets_client(&config)?;
    tokio::spawn(lag::watch_lag(
        Arc::downgrade(&consumer),
        Arc::clone(&offsets),
        Arc::clone(&metrics),
        config.http().lag_every,
        stop_http.clone(),
    ));

    let topics: Vec<&str> = config
        .enabled_streams()
        .map(|(_, s)| s.topic.as_str())
        .collect();
    consumer.subscribe(&topics).map_err(RunError::Subscribe)?;
    info!(group = %config.kafka().group_id, ?topics, "Consuming.");

    let mut positions = Positions::new(config.ownership().stall_after, Arc::clone(&metrics));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut gauges = Gauges {
        metrics: Arc::clone(&metrics),
        last_set: None,
    };
    let mut totals = Totals {
        metrics: Arc::clone(&metrics),
        last_log: Instant::now(),
    };
    loop {
        let idle_until = Instant::now() + config.ownership().renew_every;
        let (batch, stopping) = poll_batch(
            &consumer,
            &config,
            idle_until,
            || writer.idle(),
            shutdown.as_mut(),
        )
        .await?;
        if consumer.context().has_revocations() || batch.is_empty() {
            // Revoked partitions' last writes land before their windows are dropped.
            settle(writer.finish().await?, &mut engine, &mut totals);
        }
        let batch = drop_revoked(&consumer, &mut engine, batch);
        // Partitions newly assigned: those with records in hand, and those that delivered
        // nothing for a while (a consumer may sit where the broker never delivers from).
        let mut new = new_partitions(&engine, &batch);
        for (topic, partition) in positions.stalled(&consumer, &engine) {
            if !new.iter().any(|(t, p, _)| *t == topic && *p == partition) {
                new.push((topic, partition, None));
            }
        }
        if !new.is_empty() {
            // A partition is taken up from the checkpoint the writes handed over may save.
            settle(writer.finish().await?, &mut engine, &mut totals);
            take_up_partitions(
                &consumer,
                &offsets,
                &mut engine,
                &checkpoints,
                &config,
                &mut positions,
                &new,
            )
            .await?;
        }
        let mut gaps = Vec::new();
        if !batch.is_empty() {
            let (job, batch_gaps) = prepare(&mut engine, &batch, &metrics);
            gaps = batch_gaps;
            drop(batch);
            writer.start(job).await?;
        }
        settle(writer.written().await?, &mut engine, &mut totals);
        positions
            .rewind(&consumer, &offsets, &mut engine, &gaps)
            .await;
        gauges.maybe_set(&engine);
        // Ready: a member of the group (assigned once, not in a rebalance), nothing replaying.
        let context = consumer.context();
        let caught_up = context.assignments() > 0 && !context.rebalancing() && !engine.replaying();
        metrics.set_ready(caught_up);
        if stopping {
            settle(writer.finish().await?, &mut engine, &mut totals);
            break;
        }
        ownership.rejoin_if_wanted(&consumer, &topics)?;
    }

    metrics.set_ready(false);
    drop(ownership);
    info!("Shutting down: leaving the group.");
    consumer.unsubscribe();
    writer.close().await;
    totals.log();
    stop_http.cancel();
    Ok(())
}

/// Takes in the writer's reports: partitions another instance is ahead on are let go. Only
/// between batches, and every take-up first waits for the writes before it, so a refusal never
/// undoes a later take-up.
fn settle(writes: Vec<Written>, engine: &mut Engine, totals: &mut Totals) {
    for written in &writes {
        for (topic, partition) in &written.refused {
            engine.forget(topic, *partition);
        }
    }
    if !writes.is_empty() {
        totals.maybe_log();
    }
}

/// How often the open windows and watermark lags are set: counting open windows visits every
/// group held.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// Sets the gauges of the engine's state; the costlier ones at most every [`GAUGES_EVERY`].
struct Gauges {
    metrics: Arc<Metrics>,
    last_set: Option<Instant>,
}

impl Gauges {
    fn maybe_set(&mut self, engine: &Engine) {
        let metrics = &self.metrics;
        metrics.open_groups.set(engine.open_groups() as i64);
        metrics.partitions_held.set(engine.partitions_held() as i64);
        if self.last_set.is_some_and(|at| at.elapsed() < GAUGES_EVERY) {
            return;
        }
        self.last_set = Some(Instant::now());
        metrics.open_windows.set(engine.open_windows() as i64);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let lags: Vec<(TopicPartition, f64)> = engine
            .watermarks()
            .filter_map(|(topic, partition, watermark)| {
                let label = TopicPartition {
                    topic: topic.to_owned(),
                    partition,
                };
                watermark.map(|w| (label, (now_ms - w) as f64 / 1000.0))
            })
            .collect();
        metrics.set_watermark_lag(&lags);
    }
}

/// Logs the metrics every [`SUMMARY_EVERY`].
struct Totals {
    metrics: Arc<Metrics>,
    last_log: Instant,
}

impl Totals {
    fn log(&self) {
        self.metrics.log_totals();
    }

    fn maybe_log(&mut self) {
        if self.last_log.elapsed() >= SUMMARY_EVERY {
            self.log();
            self.last_log = Instant::now();
        }
    }
}
