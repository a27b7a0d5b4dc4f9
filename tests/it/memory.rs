//! Memory stays bounded whatever the keys: a burst of a million distinct group keys within one
//! window, through the broker, into the binary with its default window settings.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use crate::common::*;
use crate::measure::proc_status_mib;

/// Distinct room ids in the burst.
const ROOMS: usize = 1_000_000;

/// Groups one burst leaves open: it spans 5 panes of the default 10 s, each full at the
/// default `window.max_groups` (50,000).
const HELD: u64 = 5 * 50_000;

/// The README's *Limits* for a partition holding `HELD` groups (at most `window.max_groups` ×
/// 8 panes with the defaults): about 1 KiB per group and pane with a few counters, the
/// `window.memory_budget` (64 MiB) of counters, about 0.5 KiB per window record while one
/// record closes many windows at once (each group's pane is in 6 windows), and what the
/// process holds under such a flood whatever the keys (the dictionary, librdkafka's fetch and
/// produce queues, a batch of dead letters in flight): 256 MiB.
const BOUND_MIB: f64 = (HELD as f64 + HELD as f64 * 6.0 * 0.5) / 1024.0 + 64.0 + 256.0;

/// Writes `ROOMS` records, each of its own room (`prefix` and a number), with event times
/// within 50 s from `start` (one window of the default 1 minute), without waiting for each
/// acknowledgement.
async fn produce_burst(producer: &FutureProducer, topic: &str, prefix: &str, start: i64) {
    let mut deliveries = Vec::with_capacity(ROOMS);
    for i in 0..ROOMS {
        let room = format!("{prefix}-{i:07}");
        let value = json!({"room_id": room, "ts": start + (i / 20) as i64, "text": "晚上好 主播"})
            .to_string();
        let mut record = FutureRecord::to(topic)
            .partition(0)
            .key(&room)
            .payload(&value);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((err, _)) => panic!("cannot produce: {err}"),
            }
        }
    }
    for delivery in deliveries {
        delivery
            .await
            .expect("delivery")
            .unwrap_or_else(|(err, _)| panic!("cannot produce: {err}"));
    }
}

/// A counter of the `/metrics` at `http`, summed over its labels.
async fn counter(http: &str, name: &str) -> u64 {
    scrape(http, &format!("trendstream_{name}"), &[])
        .await
        .unwrap_or_else(|| panic!("{name} in /metrics")) as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_million_distinct_group_keys_keep_memory_bounded_and_the_process_live() {
    let _turn = crate::chaos::ONE_AT_A_TIME.lock().await;
    let http = format!("127.0.0.1:{}", free_port());
    let config = config(&format!(
        "[streams.text]\nenabled = false\n[batch]\nmax_records = 10000\n[http]\nlisten = \"{http}\""
    ));
    let (brokers, topic) = danmu_input(&config, 1).await;
    let group = config.kafka().group_id.clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trendstream.toml");
    std::fs::write(&file, config.to_toml()).unwrap();
    let log = std::fs::File::create(dir.path().join("trendstream.log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_trendstream"))
        .arg("run")
        .arg("--config")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start trendstream");
    let pid = child.id();
    let p = producer_with(
        &brokers,
        &[
            ("linger.ms", "20"),
            ("batch.num.messages", "10000"),
            ("queue.buffering.max.messages", "200000"),
        ],
    );

    // Two bursts of a million new rooms each, in the same window: the first fills the
    // window's panes up to the group cap, the second is turned away whole and adds nothing.
    let start = 1_763_780_040_000; // a multiple of the window width
    let mut peaks = Vec::new();
    for (burst, prefix) in ["a", "b"].iter().enumerate() {
        produce_burst(&p, &topic, prefix, start).await;
        let expected = (ROOMS * (burst + 1)) as i64;
        eventually("every record of the burst committed", || async {
            committed(&brokers, &group, &topic, 1).await == vec![Some(expected)]
        })
        .await;
        // Live: it answers, and it dead-lettered exactly what the group cap turned away.
        let (status, _) = http_get(&http, "/healthz").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(counter(&http, "records_total").await, expected as u64);
        assert_eq!(
            counter(&http, "dead_letters_total").await,
            expected as u64 - HELD
        );
        peaks.push(proc_status_mib(pid, "VmHWM").expect("alive"));
    }
    // One record two windows later closes every window of the burst at once: each group's
    // one pane is in 6 windows.
    let late = json!({"room_id": "z", "ts": start + 120_000, "text": "晚上好"}).to_string();
    produce(&p, &topic, 0, "z", late.as_bytes(), &[]).await;
    let expected = 2 * ROOMS as i64 + 1;
    eventually("the closing record committed", || async {
        committed(&brokers, &group, &topic, 1).await == vec![Some(expected)]
    })
    .await;
    assert_eq!(counter(&http, "windows_closed_total").await, HELD * 6);
    peaks.push(proc_status_mib(pid, "VmHWM").expect("alive"));

    let status = terminate(child);
    let log = std::fs::read_to_string(dir.path().join("trendstream.log")).unwrap_or_default();
    assert!(status.success(), "exit: {status}\n{log}");
    println!(
        "million keys: peak RSS {:.0} MiB after the first burst, {:.0} MiB after the second, \
         {:.0} MiB after closing {} windows at once (bound {BOUND_MIB:.0} MiB)",
        peaks[0],
        peaks[1],
        peaks[2],
        HELD * 6
    );
    assert!(
        peaks[2] < BOUND_MIB,
        "peak RSS {:.0} MiB over {BOUND_MIB:.0}",
        peaks[2]
    );
    // Flat: a million more keys while the panes are full add nothing.
    assert!(
        peaks[1] < peaks[0] * 1.1,
        "peak RSS grew from {:.0} to {:.0} MiB",
        peaks[0],
        peaks[1]
    );
}
