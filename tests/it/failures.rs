//! Bad input and failing sinks: nothing is lost, nothing stops the stream.

use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use redis::AsyncCommands;
use serde_json::{json, Value};

use crate::common::*;

/// An event time on a window boundary of every width used here.
pub(crate) const T: i64 = 1_763_780_000_000;

pub(crate) fn danmu(room: &str, ts: i64, text: &str) -> Vec<u8> {
    json!({"room_id": room, "ts": ts, "text": text})
        .to_string()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_records_of_every_kind_are_dead_lettered_and_the_stream_goes_on() {
    let config = tumbling_danmu("[input]\nmax_message_bytes = 200");
    let (brokers, topic) = danmu_input(&config, 1).await;
    let p = producer(&brokers);

    let long = "长".repeat(100);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("not_json", b"{\"room_id\":".to_vec()),
        (
            "invalid_utf8",
            b"{\"room_id\":\"r1\",\"text\":\"\xff\xfe\"}".to_vec(),
        ),
        ("missing_field", br#"{"room_id":"r1","ts":1}"#.to_vec()),
        (
            "wrong_type",
            br#"{"room_id":"r1","ts":"yesterday","text":"x"}"#.to_vec(),
        ),
        ("wrong_type", br#"{"room_id":["r1"],"text":"x"}"#.to_vec()),
        ("bad_group_key", br#"{"room_id":"","text":"x"}"#.to_vec()),
        ("too_large", danmu("r1", T, &long)),
        ("timestamp_out_of_range", danmu("r1", -1, "x")),
    ];
    produce(&p, &topic, 0, "r1", &danmu("r1", T + 1_000, "主播"), &[]).await;
    for (_, value) in &bad {
        produce(&p, &topic, 0, "r1", value, &[("origin", "test")]).await;
    }
    // A tombstone: no value at all.
    p.send(
        FutureRecord::<str, [u8]>::to(&topic).partition(0).key("r1"),
        Duration::from_secs(10),
    )
    .await
    .expect("tombstone");
    produce(&p, &topic, 0, "r1", &danmu("r1", T + 2_000, "继续"), &[]).await;
    produce(&p, &topic, 0, "r1", &danmu("r1", T + 10_000, "结束"), &[]).await;

    let running = start(config.clone());
    let dead = dead_letters(&config, bad.len() + 1).await;
    let kinds: Vec<&str> = dead
        .iter()
        .map(|m| header(m, "trendstream.error.kind").unwrap())
        .collect();
    let mut expected: Vec<&str> = bad.iter().map(|(k, _)| *k).collect();
    expected.push("no_value");
    assert_eq!(kinds, expected);
    for (i, m) in dead.iter().enumerate() {
        assert_eq!(
            header(m, "trendstream.source.offset"),
            Some((i + 1).to_string().as_str())
        );
        assert_eq!(m.key(), Some(&b"r1"[..]));
        if i < bad.len() {
            assert_eq!(
                m.payload(),
                Some(bad[i].1.as_slice()),
                "dead letter {i} keeps the value"
            );
            assert_eq!(
                header(m, "origin"),
                Some("test"),
                "dead letter {i} keeps the headers"
            );
        } else {
            assert_eq!(m.payload(), None);
        }
    }

    // The good records around the bad ones were all counted.
    let out = window_records(&config, 1).await;
    let window: Value = serde_json::from_slice(out[0].payload().unwrap()).unwrap();
    assert_eq!(window["messages"], 2);
    assert_eq!(window["top_terms"], json!([["主播", 1], ["继续", 1]]));

    let group = config.kafka().group_id.clone();
    let total = bad.len() as i64 + 4;
    eventually("everything committed", || async {
        committed(&brokers, &group, &topic, 1).await == vec![Some(total)]
    })
    .await;
    running.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_wait_for_redis_to_acknowledge() {
    let port = free_port();
    let redis_url = start_redis(port);
    let config = tumbling_danmu(&format!(
        "[redis]\nurl = \"{redis_url}\"\n[retry]\ninitial_backoff = \"50ms\"\nmax_backoff = \"200ms\""
    ));
    let (brokers, topic) = danmu_input(&config, 1).await;
    let group = config.kafka().group_id.clone();
    let p = producer(&brokers);

    // trendstream is consuming; then Redis goes away and a batch closes a window.
    let running = start(config.clone());
    produce(&p, &topic, 0, "r1", &danmu("r1", T + 1_000, "主播"), &[]).await;
    eventually("the first record committed", || async {
        committed(&brokers, &group, &topic, 1).await == vec![Some(1)]
    })
    .await;
    kill(redis_pid(port).await);
    produce(&p, &topic, 0, "r1", &danmu("r1", T + 10_000, "晚安"), &[]).await;

    // The window record is out, so the batch was processed; its offsets are not committed.
    let out = window_records(&config, 1).await;
    assert_eq!(out.len(), 1);
    assert_eq!(committed(&brokers, &group, &topic, 1).await, vec![Some(1)]);

    // Redis returns: the write is retried, then the batch is committed.
    start_redis(port);
    eventually("the batch committed after Redis came back", || async {
        committed(&brokers, &group, &topic, 1).await == vec![Some(2)]
    })
    .await;
    let mut r = redis(&redis_url).await;
    let board: Vec<(String, u64)> = r
        .zrevrange_withscores(format!("{}hot:danmu:r1", config.redis().key_prefix), 0, -1)
        .await
        .unwrap();
    assert_eq!(board, vec![("主播".to_owned(), 1)]);
    // Retrying Redis did not send the window record again.
    let out = window_records(&config, 1).await;
    assert_eq!(out.len(), 1);
    running.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_far_future_record_is_dead_lettered_and_changes_nothing_after_it() {
    let config = config(
        "[streams.text]\nenabled = false\n\
         [window]\nwidth = \"10s\"\nslide = \"10s\"\nout_of_orderness = \"0s\"",
    );
    let (brokers, topic) = danmu_input(&config, 1).await;
    let p = producer(&brokers);
    // Ten seconds of records; in the middle one from a clock in the year 2477. Produced now, so
    // their Kafka timestamps are today's: T lies behind them, the far-future record ahead.
    let far = 16_000_000_000_000;
    for i in 0..20 {
        if i == 10 {
            produce(&p, &topic, 0, "r1", &danmu("r1", far, "未来"), &[]).await;
        }
        let ts = T + i * 1_000;
        produce(&p, &topic, 0, "r1", &danmu("r1", ts, "主播"), &[]).await;
    }
    produce(&p, &topic, 0, "r1", &danmu("r1", T + 30_000, "收尾"), &[]).await;

    let running = start(config.clone());
    let (out, dead) = outputs(&config, 2, 1).await;
    running.stop().await.expect("stops cleanly");

    // The windows are those of the stream without the far-future record: nothing was closed
    // early, nothing after it was late.
    let windows: Vec<(i64, u64)> = out
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            (
                v["window_start"].as_i64().unwrap(),
                v["messages"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(windows, vec![(T, 10), (T + 10_000, 10)]);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        header(&dead[0], "trendstream.error.kind"),
        Some("timestamp_ahead")
    );
    assert_eq!(header(&dead[0], "trendstream.source.offset"), Some("10"));
}

#[tokio::test(flavor = "multi_thread")]
async fn records_the_broker_refuses_for_good_are_skipped_counted_and_the_stream_goes_on() {
    let http = format!("127.0.0.1:{}", free_port());
    let config = config(&format!(
        "[kafka.producer]\n\"message.max.bytes\" = \"4000\"\n\
         [extract]\nmax_term_chars = 256\n[streams.text]\nenabled = false\n\
         [window]\nwidth = \"10s\"\nslide = \"10s\"\nout_of_orderness = \"0s\"\n\
         [http]\nlisten = \"{http}\""
    ));
    let (brokers, topic) = danmu_input(&config, 1).await;
    let p = producer(&brokers);
    // A dead letter of 20,000 bytes: over the producer's 4,000 as it is.
    let junk = "x".repeat(20_000);
    produce(&p, &topic, 0, "junk", junk.as_bytes(), &[]).await;
    // A window record of twenty 200-character terms: over 4,000 bytes whatever is done.
    let words: Vec<String> = (0..20)
        .map(|i| format!("{}{}", char::from(b'a' + i), "q".repeat(199)))
        .collect();
    produce(
        &p,
        &topic,
        0,
        "big",
        &danmu("big", T + 1_000, &words.join(" ")),
        &[],
    )
    .await;
    produce(
        &p,
        &topic,
        0,
        "small",
        &danmu("small", T + 1_000, "主播"),
        &[],
    )
    .await;
    produce(&p, &topic, 0, "z", &danmu("z", T + 20_000, "收尾"), &[]).await;

    let running = start(config.clone());
    let group = config.kafka().group_id.clone();
    eventually("every record committed", || async {
        committed(&brokers, &group, &topic, 1).await == vec![Some(4)]
    })
    .await;
    let (out, dead) = outputs(&config, 1, 1).await;
    eventually("the skipped record counted", || async {
        http_get(&http, "/metrics")
            .await
            .1
            .lines()
            .any(|l| l == "trendstream_records_skipped_total 1")
    })
    .await;
    running.stop().await.expect("stops cleanly");

    let keys: Vec<&[u8]> = out.iter().map(|m| m.key().unwrap()).collect();
    assert_eq!(keys, vec![format!("danmu:small:{T}").as_bytes()]);
    assert_eq!(dead.len(), 1);
    assert_eq!(header(&dead[0], "trendstream.truncated"), Some("20000"));
    let kept = dead[0].payload().unwrap();
    assert!(kept.len() < 4_000 && junk.as_bytes().starts_with(kept));
}
