//! The whole pipeline on hand-written records with exact expected results.

use std::time::Duration;

use rdkafka::Message;
use redis::AsyncCommands;
use serde_json::{json, Value};

use crate::common::*;

/// A multiple of every slide used here, so windows line up with round numbers.
const T: i64 = 1_763_780_000_000;

fn danmu(room: &str, ts: i64, text: &str) -> Vec<u8> {
    json!({"room_id": room, "user_id": "u1", "ts": ts, "text": text})
        .to_string()
        .into_bytes()
}

fn values(messages: &[rdkafka::message::OwnedMessage]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| serde_json::from_slice(m.payload().expect("payload")).expect("JSON"))
        .collect()
}

/// The errors of a window record whose counts are all exact.
fn exact() -> Value {
    json!({"top_terms": 0, "hashtags": 0, "mentions": 0, "urls": 0, "emails": 0, "keywords": 0})
}

fn window(group: &str, start: i64, messages: u64, terms: Value, extra: Value) -> Value {
    let mut w = json!({
        "stream": "danmu", "group": group,
        "window_start": T + start, "window_end": T + start + 20_000,
        "messages": messages, "top_terms": terms,
        "hashtags": [], "mentions": [], "urls": [], "emails": [], "keywords": [],
        "errors": exact(),
    });
    for (k, v) in extra.as_object().expect("object") {
        w[k] = v.clone();
    }
    w
}

#[tokio::test(flavor = "multi_thread")]
async fn danmu_windows_reach_kafka_and_redis_with_exact_counts() {
    let http = format!("127.0.0.1:{}", free_port());
    let config = config(&format!(
        "[window]\nwidth = \"20s\"\nslide = \"10s\"\nout_of_orderness = \"5s\"\n[output]\ntop_k = 3\n[streams.text]\nenabled = false\n[http]\nlisten = \"{http}\"",
    ));
    let (brokers, topic) = danmu_input(&config, 1).await;
    let p = producer(&brokers);
    let records: Vec<(&str, Vec<u8>)> = vec![
        ("r1", danmu("r1", T + 1_000, "主播太强了 #王者荣耀#")),
        ("r2", danmu("r2", T + 2_000, "晚上好 @小明")),
        (
            "r1",
            danmu(
                "r1",
                T + 4_000,
                "主播加油 https://www.bilibili.com/video/BV1",
            ),
        ),
        ("r1", danmu("r1", T + 12_000, "主播 666")),
        ("r1", b"not json".to_vec()),
        // Watermark T+10s: the window ending at T+10s closes.
        ("r2", danmu("r2", T + 15_000, "晚上好")),
        // Late for the window that closed; still counts in [T, T+20s).
        ("r1", danmu("r1", T + 9_000, "迟到的弹幕")),
        // Watermark T+35s: the windows ending at T+20s and T+30s close.
        ("r1", danmu("r1", T + 40_000, "收尾")),
    ];
    for (key, value) in &records {
        produce(&p, &topic, 0, key, value, &[]).await;
    }

    let running = start(config.clone());
    let out = window_records(&config, 6).await;
    let group = config.kafka().group_id.clone();
    eventually("the whole batch committed", || async {
        committed(&brokers, &group, &topic, 1).await == vec![Some(8)]
    })
    .await;

    // The key is the window's identity: <stream>:<group>:<window_start>.
    let keys: Vec<String> = out
        .iter()
        .map(|m| String::from_utf8(m.key().expect("key").to_vec()).unwrap())
        .collect();
    let key = |room: &str, start: i64| format!("danmu:{room}:{}", T + start);
    assert_eq!(
        keys,
        vec![
            key("r1", -10_000),
            key("r2", -10_000),
            key("r1", 0),
            key("r2", 0),
            key("r1", 10_000),
            key("r2", 10_000),
        ]
    );
    assert_eq!(
        values(&out),
        vec![
            window(
                "r1",
                -10_000,
                2,
                json!([["主播", 2], ["加油", 1], ["太强", 1]]),
                json!({"hashtags": [["王者荣耀", 1]], "urls": [["bilibili.com", 1]]})
            ),
            window(
                "r2",
                -10_000,
                1,
                json!([["晚上", 1]]),
                json!({"mentions": [["小明", 1]]})
            ),
            window(
                "r1",
                0,
                4,
                json!([["主播", 3], ["加油", 1], ["太强", 1]]),
                json!({"hashtags": [["王者荣耀", 1]], "urls": [["bilibili.com", 1]]})
            ),
            window(
                "r2",
                0,
                2,
                json!([["晚上", 2]]),
                json!({"mentions": [["小明", 1]]})
            ),
            window("r1", 10_000, 1, json!([["主播", 1]]), json!({})),
            window("r2", 10_000, 1, json!([["晚上", 1]]), json!({})),
        ]
    );

    // Redis holds each room's latest closed window: [T+10s, T+30s).
    let mut r = redis(&config.redis().url).await;
    let prefix = &config.redis().key_prefix;
    let r1: Vec<(String, u64)> = r
        .zrevrange_withscores(format!("{prefix}hot:danmu:r1"), 0, -1)
        .await
        .unwrap();
    let r2: Vec<(String, u64)> = r
        .zrevrange_withscores(format!("{prefix}hot:danmu:r2"), 0, -1)
        .await
        .unwrap();
    assert_eq!(r1, vec![("主播".to_owned(), 1)]);
    assert_eq!(r2, vec![("晚上".to_owned(), 1)]);
    let ttl: i64 = r.pttl(format!("{prefix}hot:danmu:r1")).await.unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "TTL {ttl} ms");

    // The bad record went to the dead-letter topic, whole, with the reason.
    let dead = dead_letters(&config, 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload(), Some(&b"not json"[..]));
    assert_eq!(dead[0].key(), Some(&b"r1"[..]));
    assert_eq!(header(&dead[0], "trendstream.error.kind"), Some("not_json"));
    assert_eq!(
        header(&dead[0], "trendstream.source.topic"),
        Some(topic.as_str())
    );
    assert_eq!(header(&dead[0], "trendstream.source.partition"), Some("0"));
    assert_eq!(header(&dead[0], "trendstream.source.offset"), Some("4"));
    assert!(header(&dead[0], "trendstream.error")
        .is_some_and(|e| e.starts_with("value is not a JSON object")));

    // The numbers an operator watches (updated just after the commit awaited above).
    eventually("metrics count every record", || async {
        scrape(&http, "trendstream_records_total", &[]).await == Some(8.0)
    })
    .await;
    let (status, metrics) = http_get(&http, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let stream = "stream=\"danmu\"";
    let partition = format!("topic=\"{topic}\",partition=\"0\"");
    for (name, labels, value) in [
        ("trendstream_records_total", vec![stream, &partition], 8.0),
        (
            "trendstream_dead_letters_total",
            vec![stream, "kind=\"not_json\""],
            1.0,
        ),
        ("trendstream_late_partly_total", vec![], 1.0),
        ("trendstream_windows_closed_total", vec![stream], 6.0),
        ("trendstream_partitions_held", vec![], 1.0),
        ("trendstream_ready", vec![], 1.0),
    ] {
        assert_eq!(
            metric(&metrics, name, &labels),
            Some(value),
            "{name}{labels:?} in:\n{metrics}"
        );
    }
    let bytes = metric(&metrics, "trendstream_input_bytes_total", &[stream]);
    assert!(bytes.is_some_and(|b| b > 8.0), "{metrics}");
    assert_eq!(http_get(&http, "/ready").await.0, "HTTP/1.1 200 OK");

    running.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_that_keeps_up_sends_each_record_on_without_waiting_for_a_full_batch() {
    // A batch would wait an hour for company: it ends when nothing more is waiting instead.
    let config = tumbling_danmu("[batch]\nmax_wait = \"1h\"");
    let (brokers, topic) = danmu_input(&config, 1).await;
    let group = config.kafka().group_id.clone();
    let p = producer(&brokers);
    let running = start(config.clone());
    for (i, ts) in [T + 1_000, T + 11_000, T + 21_000].into_iter().enumerate() {
        produce(&p, &topic, 0, "r1", &danmu("r1", ts, "主播好厉害"), &[]).await;
        // Each record is committed alone, long before a batch could fill or time out; from
        // the second on, each closes the window of the one before.
        eventually("the record committed", || async {
            committed(&brokers, &group, &topic, 1).await == vec![Some(i as i64 + 1)]
        })
        .await;
    }
    let out = window_records(&config, 2).await;
    let starts: Vec<i64> = values(&out)
        .iter()
        .map(|w| w["window_start"].as_i64().expect("start") - T)
        .collect();
    assert_eq!(starts, vec![0, 10_000]);
    running.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_that_lost_the_leaderboard_script_is_given_it_again() {
    // Leaderboards are written by a script called by its SHA1: a Redis that forgot the script
    // (restarted, or flushed) answers NOSCRIPT until it is given the script again.
    let config = tumbling_danmu("");
    let (brokers, topic) = danmu_input(&config, 1).await;
    let p = producer(&brokers);
    let mut r = redis(&config.redis().url).await;
    let board = format!("{}hot:danmu:r1", config.redis().key_prefix);
    let running = start(config.clone());
    // Each record closes the window of the one before.
    for (ts, text, listed) in [
        (T + 1_000, "主播", None),
        (T + 11_000, "晚上", Some("主播")),
        (T + 21_000, "主播", Some("晚上")),
    ] {
        produce(&p, &topic, 0, "r1", &danmu("r1", ts, text), &[]).await;
        let Some(listed) = listed else { continue };
        eventually("the leaderboard of the window closed", || {
            let (mut r, board) = (r.clone(), board.clone());
            async move {
                let top: Vec<(String, u64)> = r.zrevrange_withscores(&board, 0, -1).await.unwrap();
                top == vec![(listed.to_owned(), 1)]
            }
        })
        .await;
        let flushed: String = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut r)
            .await
            .unwrap();
        assert_eq!(flushed, "OK");
    }
    running.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_group_by_source_and_danmu_over_partitions_with_numeric_rooms() {
    let config = config(
        "[window]\nwidth = \"10s\"\nslide = \"10s\"\nout_of_orderness = \"0s\"\n[output]\ntop_k = 10\n[extract]\nwatch_keywords = [\"退款\"]",
    );
    create_topics(&config, 2).await;
    let brokers = config.kafka().brokers.clone();
    let danmu_topic = config.streams()["danmu"].topic.clone();
    let text_topic = config.streams()["text"].topic.clone();
    let p = producer(&brokers);
    let post = |id: &str, source: &str, ts: i64, text: &str| {
        json!({"id": id, "source": source, "user_id": "u9", "ts": ts, "text": text}).to_string()
    };
    for (source, value) in [
        (
            "weibo",
            post(
                "p1",
                "weibo",
                T + 1_000,
                "#AI教育# 人工智能改变教育 https://weibo.com/1/x 联系 press@example.com 退款",
            ),
        ),
        (
            "weibo",
            post("p2", "weibo", T + 2_000, "人工智能 要退款 @新华社"),
        ),
        ("zhihu", post("p3", "zhihu", T + 3_000, "人工智能")),
        ("weibo", post("p4", "weibo", T + 10_000, "结束")),
    ] {
        produce(&p, &text_topic, 0, source, value.as_bytes(), &[]).await;
    }
    // A numeric room id, and a record without "ts": the Kafka timestamp is its event time.
    p.send(
        rdkafka::producer::FutureRecord::to(&danmu_topic)
            .partition(0)
            .key("1001")
            .payload(r#"{"room_id":1001,"text":"主播加油"}"#)
            .timestamp(T + 5_000),
        Duration::from_secs(10),
    )
    .await
    .expect("produce");
    for (partition, key, value) in [
        (0, "1001", danmu_numeric(1001, T + 12_000, "再见")),
        (1, "r2", danmu("r2", T + 1_000, "晚上好")),
        (1, "r2", danmu("r2", T + 11_000, "再见")),
    ] {
        produce(&p, &danmu_topic, partition, key, &value, &[]).await;
    }

    let running = start(config.clone());
    let out = window_records(&config, 4).await;
    let mut got: Vec<(String, Value)> = out
        .iter()
        .map(|m| {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            (key, serde_json::from_slice(m.payload().unwrap()).unwrap())
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            format!("danmu:1001:{T}"),
            format!("danmu:r2:{T}"),
            format!("text:weibo:{T}"),
            format!("text:zhihu:{T}"),
        ]
    );
    let empty = json!([]);
    let expect = |stream: &str, group: &str, messages: u64, terms: Value, more: Value| {
        let mut w = json!({
            "stream": stream, "group": group, "window_start": T, "window_end": T + 10_000,
            "messages": messages, "top_terms": terms, "hashtags": empty, "mentions": empty,
            "urls": empty, "emails": empty, "keywords": empty, "errors": exact(),
        });
        for (k, v) in more.as_object().unwrap() {
            w[k] = v.clone();
        }
        w
    };
    assert_eq!(
        got[0].1,
        expect(
            "danmu",
            "1001",
            1,
            json!([["主播", 1], ["加油", 1]]),
            json!({})
        )
    );
    assert_eq!(
        got[1].1,
        expect("danmu", "r2", 1, json!([["晚上", 1]]), json!({}))
    );
    assert_eq!(
        got[2].1,
        expect(
            "text",
            "weibo",
            2,
            json!([
                ["人工智能", 2],
                ["退款", 2],
                ["ai", 1],
                ["改变", 1],
                ["教育", 1],
                ["联系", 1]
            ]),
            json!({
                "hashtags": [["ai教育", 1]], "mentions": [["新华社", 1]],
                "urls": [["weibo.com", 1]], "emails": [["press@example.com", 1]],
                "keywords": [["退款", 2]],
            })
        )
    );
    assert_eq!(
        got[3].1,
        expect("text", "zhihu", 1, json!([["人工智能", 1]]), json!({}))
    );

    let mut r = redis(&config.redis().url).await;
    let weibo: Vec<(String, u64)> = r
        .zrevrange_withscores(
            format!("{}hot:text:weibo", config.redis().key_prefix),
            0,
            -1,
        )
        .await
        .unwrap();
    // Redis ranks equal scores by member, descending.
    let expected = [
        ("退款", 2),
        ("人工智能", 2),
        ("联系", 1),
        ("教育", 1),
        ("改变", 1),
        ("ai", 1),
    ];
    let expected: Vec<(String, u64)> = expected.iter().map(|(t, n)| (t.to_string(), *n)).collect();
    assert_eq!(weibo, expected);
    running.stop().await.expect("clean stop");
}

fn danmu_numeric(room: u64, ts: i64, text: &str) -> Vec<u8> {
    json!({"room_id": room, "ts": ts, "text": text})
        .to_string()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn group_keys_with_braces_get_their_leaderboards_on_a_redis_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _pids) = start_redis_cluster(dir.path());
    let config = config(&format!(
        "[window]\nwidth = \"20s\"\nslide = \"10s\"\nout_of_orderness = \"0s\"\n\
         [streams.text]\nenabled = false\n\
         [redis]\nurl = \"{}\"\ncluster = true\nkey_prefix = \"{{app}}:\"\n\
         [retry]\ngive_up_after = \"20s\"",
        nodes.join(",")
    ));
    let (brokers, topic) = danmu_input(&config, 1).await;
    let p = producer(&brokers);
    // Each of these, as it was, would put a leaderboard and its fence in different slots.
    let rooms = ["a{b", "}x{", "{y}", "{}", "100%", "房间{1}", "r:1"];
    for room in rooms {
        produce(
            &p,
            &topic,
            0,
            room,
            &danmu(room, T + 1_000, "主播加油"),
            &[],
        )
        .await;
    }
    // Closes the window [T-10s, T+10s).
    produce(&p, &topic, 0, "z", &danmu("z", T + 30_000, "收尾"), &[]).await;

    let running = start(config.clone());
    let group = config.kafka().group_id.clone();
    let end = rooms.len() as i64 + 1;
    eventually("every record committed", || async {
        committed(&brokers, &group, &topic, 1).await == vec![Some(end)]
    })
    .await;
    running.stop().await.expect("stops cleanly");

    let client = redis::cluster::ClusterClient::new(nodes).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    for room in rooms {
        let key = trendstream::store::leaderboard::leaderboard_key(
            &config.redis().key_prefix,
            "danmu",
            room,
        );
        let mut board: Vec<(String, u64)> = redis::cmd("ZREVRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .unwrap();
        board.sort();
        assert_eq!(
            board,
            vec![("主播".to_owned(), 1), ("加油".to_owned(), 1)],
            "{room}: {key}"
        );
    }
}
