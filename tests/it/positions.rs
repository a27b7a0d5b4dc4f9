//! Partitions are read from where their windows need them, with no record skipped, on a
//! broker that serves a fetch starting inside a stored record batch from the next batch (tansu
//! 0.6 does; see docs/tansu-mid-batch-fetch.md). The group's committed offset lies inside a
//! batch of 1,000 records: with records after that batch, and with none (the batch is the last
//! one, so a consumer left there receives nothing at all).

use std::collections::BTreeMap;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{json, Value};

use crate::common::*;

const T: i64 = 1_763_780_000_000;
const BATCH: i64 = 1_000;
const COMMITTED: i64 = 500;

#[tokio::test(flavor = "multi_thread")]
async fn a_group_committed_inside_a_stored_batch_loses_no_record() {
    committed_inside_a_batch(10).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_committed_inside_the_last_stored_batch_makes_progress() {
    committed_inside_a_batch(0).await;
}

/// `BATCH` records in one produce request, `singles` more one by one; the group's offset is
/// committed at `COMMITTED`, and trendstream must count every record from there on.
async fn committed_inside_a_batch(singles: i64) {
    let config = config(
        "[window]\nwidth = \"20s\"\nslide = \"10s\"\nout_of_orderness = \"0s\"\n\
         [streams.text]\nenabled = false\n[ownership]\nstall_after = \"500ms\"",
    );
    let (brokers, topic) = danmu_input(&config, 1).await;
    let ts = |offset: i64| T + offset * 100;
    let record = |offset: i64| {
        let room = format!("r{}", offset % 3);
        let text = format!("主播 词{} 加油", offset % 7);
        (
            room.clone(),
            json!({"room_id": room, "ts": ts(offset), "text": text}).to_string(),
        )
    };

    // One produce request of BATCH records: the broker stores them as one batch.
    let batching = producer_with(
        &brokers,
        &[
            ("linger.ms", "1000"),
            ("batch.num.messages", "10000"),
            ("compression.type", "none"),
        ],
    );
    let sends: Vec<_> = (0..BATCH)
        .map(|offset| {
            let (key, value) = record(offset);
            batching
                .send_result(
                    FutureRecord::to(&topic)
                        .partition(0)
                        .key(&key)
                        .payload(&value),
                )
                .expect("queued")
        })
        .collect();
    for send in sends {
        send.await.expect("delivered").expect("acknowledged");
    }
    let single = producer(&brokers);
    for offset in BATCH..BATCH + singles {
        let (key, value) = record(offset);
        produce(&single, &topic, 0, &key, value.as_bytes(), &[]).await;
    }
    let end = BATCH + singles;
    commit_offset(&brokers, &config.kafka().group_id, &topic, COMMITTED).await;

    let running = start(config.clone());
    let group = config.kafka().group_id.clone();
    eventually("every record committed", || async {
        committed(&brokers, &group, &topic, 1).await == vec![Some(end)]
    })
    .await;
    running.stop().await.expect("stops cleanly");

    // Every window that closed holds every record from the committed offset on.
    let last_ts = ts(end - 1);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for offset in COMMITTED..end {
        let (room, _) = record(offset);
        let pane = ts(offset).div_euclid(10_000) * 10_000;
        for start in [pane - 10_000, pane] {
            if start + 20_000 <= last_ts {
                *expected.entry(format!("danmu:{room}:{start}")).or_default() += 1;
            }
        }
    }
    let out = window_records(&config, expected.len()).await;
    let got: BTreeMap<String, u64> = out
        .iter()
        .map(|m| {
            let key = String::from_utf8(m.key().expect("key").to_vec()).unwrap();
            let value: Value = serde_json::from_slice(m.payload().expect("value")).unwrap();
            (key, value["messages"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(got, expected);
}

/// Commits `offset` for `group` on partition 0 of `topic`, as an earlier member would have.
async fn commit_offset(brokers: &str, group: &str, topic: &str, offset: i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("offset");
    tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
        .await
        .expect("commit task")
        .expect("offset committed");
    let brokers = brokers.to_owned();
    let (group, topic) = (group.to_owned(), topic.to_owned());
    eventually("the offset is committed", || async {
        committed(&brokers, &group, &topic, 1).await == vec![Some(offset)]
    })
    .await;
}
