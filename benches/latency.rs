//! Latency and memory over time, under a steady load.
//!
//! A local tansu broker and redis-server, and `trendstream run` as a process on the danmu
//! stream alone. Danmu are produced at a steady rate with event time = wall clock, from one
//! task on an absolute schedule (bursts every 10 ms, no drift), keyed by room over `--rooms`
//! Zipf-skewed rooms. Among them, `--probes` probe rooms (`probe-<i>`, spread over the
//! partitions) get a record every 100 ms each, whose produce time is kept.
//!
//! - **Latency**: a watcher reads the probe rooms' leaderboard fences (the `window_end` last
//!   written) with one `MGET` every 10 ms and notes when it first saw each new value. A record
//!   produced at `t` with event time `ts` first appears in the leaderboard of the window ending
//!   `E = floor(ts / slide) * slide + slide`; its latency is the first time the room's fence was
//!   `>= E`, minus `t`. That window can close only once the watermark (highest event time −
//!   out-of-orderness) reaches `E`, so `E + out_of_orderness − ts` of it is inherent (up to one
//!   slide + the out-of-orderness); the rest is the pipeline's delay after the window could
//!   close. Records of the first window (a partial slide) and of windows still open at the end
//!   are left out, and counted.
//! - **Memory over time**: the process's `VmRSS` every second while producing, its peak
//!   (`VmHWM`) and CPU seconds. Windows fill during the first `width` of the run, so the slope
//!   of the last half says something only in runs much longer than the width.
//! - **Keeping up**: the group's lag when producing stops (records produced − committed
//!   offsets), the records/s committed meanwhile, and how long it takes to commit the rest.
//!
//! `cargo bench --bench latency -- [--rate=N] [--seconds=S] [--partitions=P] [--rooms=R]
//! [--probes=N] [--width=D] [--slide=D] [--out-of-orderness=D] [--json=FILE]`, defaults: half
//! the danmu records/s of `target/e2e.json` (else 30000), 60 s, 4 partitions, 10000 rooms, 50
//! probes, width 60s, slide 10s, `target/latency.json`. `BENCH_RUN_BIN=path` runs another
//! build's binary. The out-of-orderness defaults to 0s
//! here, not the product's 5s: a window closes only once the watermark passes its end, so a
//! record waits up to one slide + the out-of-orderness by design; with 0s what is measured is
//! the slide plus what the pipeline adds. Under `cargo test --all-targets` it makes a quick
//! run (2000 records/s for 15 s, slide 2s) and checks only outcomes: probe latencies were
//! observed, every closed probe window reached Redis, every record was committed.

// The benchmarks use only part of the integration-test harness.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/measure.rs"]
mod measure;

use std::process::{Child, Command};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use measure::*;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use trendstream::config::RawConfig;
use trendstream::generate::TrafficGen;

const BIN: &str = env!("CARGO_BIN_EXE_trendstream");
/// Producer bursts and fence reads are this far apart.
const TICK: Duration = Duration::from_millis(10);
/// Each probe room gets a record every this many ticks.
const PROBE_EVERY_TICKS: u64 = 10;
const RSS_EVERY: Duration = Duration::from_secs(1);

/// What to run, from the command line.
struct Options {
    rate: u64,
    rate_source: String,
    seconds: u64,
    partitions: i32,
    rooms: u32,
    probes: usize,
    width: String,
    slide: String,
    out_of_orderness: String,
    json_path: String,
}

impl Options {
    fn parse(full: bool) -> Options {
        let number = |name: &str, default: u64| {
            flag(name).map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} ({v}) must be a whole number"))
            })
        };
        let text = |name: &str, default: &str| flag(name).unwrap_or_else(|| default.to_owned());
        let (rate, rate_source) = match flag("--rate") {
            Some(_) => (number("--rate", 0), "--rate".to_owned()),
            None if !full => (2_000, "the quick run's".to_owned()),
            None => default_rate(),
        };
        let (seconds, slide) = if full { (60, "10s") } else { (15, "2s") };
        let report = if full { "latency" } else { "latency-smoke" };
        Options {
            rate,
            rate_source,
            seconds: number("--seconds", seconds),
            partitions: number("--partitions", 4) as i32,
            rooms: number("--rooms", 10_000) as u32,
            probes: number("--probes", 50) as usize,
            width: text("--width", "60s"),
            slide: text("--slide", slide),
            out_of_orderness: text("--out-of-orderness", "0s"),
            json_path: flag("--json")
                .unwrap_or_else(|| format!("{}/target/{report}.json", env!("CARGO_MANIFEST_DIR"))),
        }
    }
}

/// Half the danmu records/s of the last end-to-end run, or 30000.
fn default_rate() -> (u64, String) {
    let path = format!("{}/target/e2e.json", env!("CARGO_MANIFEST_DIR"));
    let measured = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|report| {
            report["results"]
                .as_array()?
                .iter()
                .find(|row| row["stream"] == "danmu")?["trendstream"]["records_per_s"]
                .as_f64()
        });
    match measured {
        Some(per_s) => (
            (per_s / 2.0) as u64,
            format!("half of {per_s:.0}/s in target/e2e.json"),
        ),
        None => (30_000, "no target/e2e.json: the fixed default".to_owned()),
    }
}

/// Wall-clock microseconds since the epoch: event times and latencies use this one clock.
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// One probe record: its room, when it was produced (µs) and its event time (ms).
struct ProbeRecord {
    probe: usize,
    produced_us: i64,
    event_time: i64,
}

/// What the producer task sent.
struct Produced {
    records: u64,
    seconds: f64,
    first_event_time: i64,
    probes: Vec<ProbeRecord>,
}

/// What the broker acknowledged.
#[derive(Default)]
struct Delivered {
    records: u64,
    failed: u64,
    /// Highest event time acknowledged on each partition.
    max_event_time: Vec<Option<i64>>,
}

/// `trendstream run` as a child process, stopped (SIGTERM) when dropped, also on a panic.
struct Trendstream(Option<Child>);

impl Trendstream {
    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }
}

impl Drop for Trendstream {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            terminate(child);
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then a quick smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let options = Options::parse(full);
    assert!(options.probes > 0, "--probes must be at least 1");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let report = runtime.block_on(run(&options, full));
    print_report(&report);
    if let Some(dir) = std::path::Path::new(&options.json_path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(
        &options.json_path,
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .expect("write the JSON report");
    println!("report: {}", options.json_path);
    if !full {
        let latency = &report["latency"];
        assert!(
            latency["measured"].as_u64() > Some(0),
            "no probe latency observed"
        );
        assert_eq!(
            latency["missing"], 0,
            "probe records whose window closed but never reached Redis"
        );
        assert_eq!(report["failed_deliveries"], 0);
        assert_eq!(report["lag_after_drain"], 0);
    }
}

async fn run(options: &Options, full: bool) -> Value {
    let http = format!("127.0.0.1:{}", free_port());
    let config = common::config(&format!(
        r#"
[log]
level = "warn"
[streams.text]
enabled = false
[window]
width = "{}"
slide = "{}"
out_of_orderness = "{}"
[http]
listen = "{http}"
"#,
        options.width, options.slide, options.out_of_orderness
    ));
    // Batches as the product makes them, not as the tests do.
    let mut raw = config.to_raw();
    raw.batch = RawConfig::from_toml("").expect("defaults").batch;
    let config = raw.validate().expect("the bench configuration is valid");
    create_topics(&config, options.partitions).await;
    let brokers = config.kafka().brokers.clone();
    let topic = config.streams()["danmu"].topic.clone();
    let slide = config.slide_ms();
    let out_of_orderness = config.out_of_orderness_ms();
    println!(
        "rate {} records/s ({}), {} s, {} partitions, {} rooms + {} probes, windows {} / {} / \
         out-of-orderness {}",
        options.rate,
        options.rate_source,
        options.seconds,
        options.partitions,
        options.rooms,
        options.probes,
        options.width,
        options.slide,
        options.out_of_orderness
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("trendstream.toml");
    std::fs::write(&file, config.to_toml()).expect("config file");
    let trendstream = Trendstream(Some(
        Command::new(run_bin(BIN))
            .args(["run", "--config"])
            .arg(&file)
            .spawn()
            .expect("start trendstream"),
    ));
    let pid = trendstream.pid();
    let assigned = format!("trendstream_partitions_assigned {}\n", options.partitions);
    let joined = Instant::now();
    eventually("trendstream holds every partition", || async {
        tokio::net::TcpStream::connect(&http).await.is_ok()
            && http_get(&http, "/metrics").await.1.contains(&assigned)
    })
    .await;
    println!(
        "trendstream joined the group in {:.1} s",
        joined.elapsed().as_secs_f64()
    );

    let fence_keys: Vec<String> = (0..options.probes)
        .map(|i| {
            format!(
                "{{{}hot:danmu:probe-{i}}}:window",
                config.redis().key_prefix
            )
        })
        .collect();
    let stop_watching = CancellationToken::new();
    let watcher = tokio::spawn(watch_fences(
        redis(&config.redis().url).await,
        fence_keys,
        stop_watching.clone(),
    ));
    let stop_sampling = CancellationToken::new();
    let sampler = tokio::spawn(sample_rss(pid, stop_sampling.clone()));
    let cpu_before = cpu_seconds(pid);

    let producer = producer_with(
        &brokers,
        &[
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            ("queue.buffering.max.messages", "200000"),
        ],
    );
    let (deliveries, acks) = mpsc::unbounded_channel();
    let settler = tokio::spawn(settle(acks, options.partitions));
    let produced = produce(&producer, &topic, options, deliveries).await;
    let cpu_producing = cpu_seconds(pid) - cpu_before;
    let delivered = settler.await.expect("delivery task");
    let committed_then = committed_sum(
        &brokers,
        &config.kafka().group_id,
        &topic,
        options.partitions,
    )
    .await
    .unwrap_or(0);
    let lag = delivered.records as i64 - committed_then;
    println!(
        "produced {} records in {:.1} s: {:.0}/s (asked {}/s); committed {:.0}/s, lag {lag} at \
         the end",
        produced.records,
        produced.seconds,
        produced.records as f64 / produced.seconds,
        options.rate,
        committed_then as f64 / produced.seconds,
    );
    stop_sampling.cancel();
    let rss = sampler.await.expect("RSS sampler");

    // Every record committed means every write of its batch was acknowledged.
    let drained = Instant::now();
    let drain_deadline = if full {
        DEADLINE.max(Duration::from_secs(options.seconds))
    } else {
        DEADLINE
    };
    let mut committed_end = committed_then;
    while committed_end < delivered.records as i64 && drained.elapsed() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        committed_end = committed_sum(
            &brokers,
            &config.kafka().group_id,
            &topic,
            options.partitions,
        )
        .await
        .unwrap_or(committed_end);
    }
    let drain_seconds = drained.elapsed().as_secs_f64();
    stop_watching.cancel();
    let fences = watcher.await.expect("fence watcher");
    let (cpu, peak) = usage(pid);
    drop(trendstream);

    let latency = latencies(
        &produced,
        &delivered,
        &fences,
        slide,
        out_of_orderness,
        options.partitions,
    );
    json!({
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "partitions": options.partitions,
        "rooms": options.rooms,
        "probes": options.probes,
        "width": options.width,
        "slide": options.slide,
        "out_of_orderness": options.out_of_orderness,
        "asked_records_per_s": options.rate,
        "rate_source": options.rate_source,
        "seconds": produced.seconds,
        "produced": produced.records,
        "produced_per_s": produced.records as f64 / produced.seconds,
        "failed_deliveries": delivered.failed,
        "committed_per_s": committed_then as f64 / produced.seconds,
        "lag_at_end": lag,
        "drain_seconds": drain_seconds,
        "lag_after_drain": delivered.records as i64 - committed_end,
        "latency": latency,
        "memory": memory(&rss, produced.seconds, peak),
        "cpu_seconds": cpu,
        "cores_used_while_producing": cpu_producing / produced.seconds,
    })
}

/// Produces danmu at `options.rate` for `options.seconds` on an absolute schedule: at each
/// tick, as many records as the schedule says should have been sent by then. Delivery futures
/// go to `deliveries` with each record's partition (if chosen) and event time.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    options: &Options,
    deliveries: mpsc::UnboundedSender<(i64, DeliveryFuture)>,
) -> Produced {
    let mut traffic = TrafficGen::new(1, options.rooms);
    let mut probes = Vec::new();
    let mut sent: u64 = 0;
    let start = Instant::now();
    let ticks = options.seconds * 1000 / TICK.as_millis() as u64;
    let mut first_event_time = None;
    for tick in 1..=ticks {
        tokio::time::sleep_until(start + TICK * tick as u32).await;
        let due = options.rate * tick * TICK.as_millis() as u64 / 1000;
        // Probe i is due on every PROBE_EVERY_TICKS-th tick, offset by i; the load fills
        // the rest of the tick's share.
        for probe in (0..options.probes)
            .filter(|i| *i as u64 % PROBE_EVERY_TICKS == tick % PROBE_EVERY_TICKS)
        {
            let produced_us = now_us();
            let event_time = produced_us / 1000;
            let room = format!("probe-{probe}");
            let value = json!({
                "room_id": room,
                "user_id": "u-probe",
                "ts": event_time,
                "text": traffic.danmu_text(),
            })
            .to_string();
            let partition = probe as i32 % options.partitions;
            let record = FutureRecord::to(topic)
                .key(&room)
                .payload(&value)
                .partition(partition);
            deliveries
                .send((event_time, send(producer, record).await))
                .expect("delivery task");
            probes.push(ProbeRecord {
                probe,
                produced_us,
                event_time,
            });
            first_event_time.get_or_insert(event_time);
            sent += 1;
        }
        for _ in 0..due.saturating_sub(sent) {
            let event_time = now_us() / 1000;
            let (room, value) = traffic.danmu(event_time);
            let record = FutureRecord::to(topic).key(&room).payload(&value);
            deliveries
                .send((event_time, send(producer, record).await))
                .expect("delivery task");
            first_event_time.get_or_insert(event_time);
            sent += 1;
        }
    }
    Produced {
        records: sent,
        seconds: start.elapsed().as_secs_f64(),
        first_event_time: first_event_time.unwrap_or(0),
        probes,
    }
}

/// Enqueues one record, waiting while librdkafka's queue is full.
async fn send(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, String, String>,
) -> DeliveryFuture {
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((e, _)) => panic!("cannot produce: {e}"),
        }
    }
}

/// Awaits every delivery, in order: counts them and keeps each partition's highest event time.
async fn settle(
    mut acks: mpsc::UnboundedReceiver<(i64, DeliveryFuture)>,
    partitions: i32,
) -> Delivered {
    let mut delivered = Delivered {
        max_event_time: vec![None; partitions as usize],
        ..Delivered::default()
    };
    while let Some((event_time, delivery)) = acks.recv().await {
        match delivery.await {
            Ok(Ok(d)) => {
                delivered.records += 1;
                let max = &mut delivered.max_event_time[d.partition as usize];
                *max = Some(max.map_or(event_time, |m| m.max(event_time)));
            }
            _ => delivered.failed += 1,
        }
    }
    delivered
}

/// Reads the fences every tick until `stop`, then once more; returns, per key, each new value
/// with the time (µs) its reply came.
async fn watch_fences(
    mut conn: redis::aio::MultiplexedConnection,
    keys: Vec<String>,
    stop: CancellationToken,
) -> Vec<Vec<(i64, i64)>> {
    let mut seen: Vec<Vec<(i64, i64)>> = vec![Vec::new(); keys.len()];
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let last = stop.is_cancelled();
        let values: Vec<Option<i64>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("MGET of the fences");
        let at = now_us();
        for (history, value) in seen.iter_mut().zip(values) {
            if let Some(v) = value {
                if history.last().is_none_or(|&(prev, _)| v > prev) {
                    history.push((v, at));
                }
            }
        }
        if last {
            return seen;
        }
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => {}
        }
    }
}

/// The process's RSS (MiB) every second until `stop`, with the seconds since the start.
async fn sample_rss(pid: u32, stop: CancellationToken) -> Vec<(f64, f64)> {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut every = tokio::time::interval(RSS_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => {}
        }
        if let Some(rss) = proc_status_mib(pid, "VmRSS") {
            samples.push((start.elapsed().as_secs_f64(), rss));
        }
        if stop.is_cancelled() {
            return samples;
        }
    }
}

fn latencies(
    produced: &Produced,
    delivered: &Delivered,
    fences: &[Vec<(i64, i64)>],
    slide: i64,
    out_of_orderness: i64,
    partitions: i32,
) -> Value {
    let first_end = window_end(produced.first_event_time, slide);
    let (mut total, mut after_close) = (Vec::new(), Vec::new());
    let (mut warm_up, mut open, mut missing) = (0u64, 0u64, 0u64);
    for r in &produced.probes {
        let end = window_end(r.event_time, slide);
        if end == first_end {
            warm_up += 1;
            continue;
        }
        let history = &fences[r.probe];
        let first_seen = history
            .iter()
            .find(|&&(fence, _)| fence >= end)
            .map(|&(_, at)| at);
        let Some(seen_us) = first_seen else {
            let partition = r.probe % partitions as usize;
            let closable = delivered.max_event_time[partition]
                .is_some_and(|max| max - out_of_orderness >= end);
            if closable {
                missing += 1;
            } else {
                open += 1;
            }
            continue;
        };
        let latency_ms = (seen_us - r.produced_us) as f64 / 1000.0;
        let inherent_ms = (end + out_of_orderness - r.event_time) as f64;
        total.push(latency_ms);
        after_close.push(latency_ms - inherent_ms);
    }
    json!({
        "measured": total.len(),
        "ignored_first_window": warm_up,
        "ignored_still_open": open,
        "missing": missing,
        "produce_to_leaderboard_ms": summary(&mut total),
        "after_window_could_close_ms": summary(&mut after_close),
    })
}

/// The end of the first window a record at `event_time` belongs to.
fn window_end(event_time: i64, slide: i64) -> i64 {
    event_time.div_euclid(slide) * slide + slide
}

/// p50, p90, p99 (nearest rank) and max.
fn summary(values: &mut [f64]) -> Value {
    values.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len().max(1)) - 1;
        values.get(i).copied()
    };
    json!({
        "p50": rank(0.5),
        "p90": rank(0.9),
        "p99": rank(0.99),
        "max": values.last(),
    })
}

/// RSS at 10, 50 and 100 % of the run, the least-squares slope of its last half, the peak.
fn memory(samples: &[(f64, f64)], seconds: f64, peak: f64) -> Value {
    let at = |fraction: f64| {
        samples
            .iter()
            .find(|(t, _)| *t >= fraction * seconds)
            .or(samples.last())
            .map(|&(_, rss)| rss)
    };
    let half: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t >= seconds / 2.0)
        .collect();
    let n = half.len() as f64;
    let slope = (half.len() >= 2).then(|| {
        let (mt, mr) = (
            half.iter().map(|s| s.0).sum::<f64>() / n,
            half.iter().map(|s| s.1).sum::<f64>() / n,
        );
        let cov: f64 = half.iter().map(|(t, r)| (t - mt) * (r - mr)).sum();
        let var: f64 = half.iter().map(|(t, _)| (t - mt).powi(2)).sum();
        cov / var * 60.0
    });
    json!({
        "peak_rss_mib": peak,
        "rss_mib_at_10_percent": at(0.1),
        "rss_mib_at_50_percent": at(0.5),
        "rss_mib_at_end": at(1.0),
        "last_half_slope_mib_per_min": slope,
        "samples": samples.iter().map(|(t, r)| [t.round(), (r * 10.0).round() / 10.0]).collect::<Vec<_>>(),
    })
}

fn print_report(report: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let l = &report["latency"];
    for (name, what) in [
        ("produce_to_leaderboard_ms", "produce → leaderboard"),
        (
            "after_window_could_close_ms",
            "after the window could close",
        ),
    ] {
        let s = &l[name];
        println!(
            "latency, {what}: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            f(&s["p50"]),
            f(&s["p90"]),
            f(&s["p99"]),
            f(&s["max"]),
        );
    }
    println!(
        "  {} probe records measured; ignored: {} of the first window, {} in windows still open \
         at the end; {} missing",
        l["measured"], l["ignored_first_window"], l["ignored_still_open"], l["missing"]
    );
    let m = &report["memory"];
    println!(
        "memory: peak RSS {:.0} MiB; RSS {:.0} / {:.0} / {:.0} MiB at 10 / 50 / 100 % of the \
         run; last half {:+.2} MiB/min; {:.1} CPU s ({:.2} cores while producing)",
        f(&m["peak_rss_mib"]),
        f(&m["rss_mib_at_10_percent"]),
        f(&m["rss_mib_at_50_percent"]),
        f(&m["rss_mib_at_end"]),
        f(&m["last_half_slope_mib_per_min"]),
        f(&report["cpu_seconds"]),
        f(&report["cores_used_while_producing"]),
    );
    println!(
        "keeping up: {:.0} records/s produced, {:.0}/s committed, lag {} when producing \
         stopped, {} after {:.1} s more",
        f(&report["produced_per_s"]),
        f(&report["committed_per_s"]),
        report["lag_at_end"],
        report["lag_after_drain"],
        f(&report["drain_seconds"]),
    );
}
