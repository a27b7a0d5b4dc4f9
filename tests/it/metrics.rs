//! What an operator sees on `/metrics` and `/ready`: the labelled series move as the stream
//! does, lag included, and readiness follows rebalances.

use std::sync::{Arc, Mutex};

use crate::common::*;
use crate::failures::{danmu, T};

#[tokio::test(flavor = "multi_thread")]
async fn lag_rises_while_nothing_commits_and_falls_after_and_every_series_moves() {
    let port = free_port();
    let redis_url = start_redis(port);
    let http = format!("127.0.0.1:{}", free_port());
    let config = config(&format!(
        "[redis]\nurl = \"{redis_url}\"\n[retry]\ninitial_backoff = \"50ms\"\nmax_backoff = \"200ms\"\n\
         [streams.text]\nenabled = false\n\
         [window]\nwidth = \"10s\"\nslide = \"10s\"\nout_of_orderness = \"0s\"\n\
         [http]\nlisten = \"{http}\"\nlag_every = \"100ms\""
    ));
    let (brokers, topic) = danmu_input(&config, 1).await;
    let group = config.kafka().group_id.clone();
    let p = producer(&brokers);
    let partition = format!("topic=\"{topic}\",partition=\"0\"");
    let danmu_stream = "stream=\"danmu\"";

    let running = start(config.clone());
    // A record, two bad ones, and one that closes the first record's window.
    produce(&p, &topic, 0, "r1", &danmu("r1", T + 1_000, "主播好"), &[]).await;
    produce(&p, &topic, 0, "r1", b"not json", &[]).await;
    produce(&p, &topic, 0, "r1", br#"{"ts": 1}"#, &[]).await;
    produce(&p, &topic, 0, "r1", &danmu("r1", T + 10_000, "晚安"), &[]).await;
    eventually("the first records committed", || async {
        committed(&brokers, &group, &topic, 1).await == vec![Some(4)]
    })
    .await;
    eventually("no lag once committed", || async {
        scrape(&http, "trendstream_consumer_lag", &[&partition]).await == Some(0.0)
    })
    .await;
    // The assignment is read by the lease check, which runs on its own clock.
    eventually("the partition counted as assigned", || async {
        scrape(&http, "trendstream_partitions_assigned", &[]).await == Some(1.0)
    })
    .await;
    let text = http_get(&http, "/metrics").await.1;
    for (name, labels, value) in [
        (
            "trendstream_records_total",
            vec![danmu_stream, &partition],
            4.0,
        ),
        (
            "trendstream_dead_letters_total",
            vec![danmu_stream, "kind=\"not_json\""],
            1.0,
        ),
        (
            "trendstream_dead_letters_total",
            vec![danmu_stream, "kind=\"missing_field\""],
            1.0,
        ),
        ("trendstream_windows_closed_total", vec![danmu_stream], 1.0),
        (
            "trendstream_end_to_end_delay_seconds_count",
            vec![danmu_stream],
            1.0,
        ),
        ("trendstream_ready", vec![], 1.0),
    ] {
        assert_eq!(
            metric(&text, name, &labels),
            Some(value),
            "{name}{labels:?} in:\n{text}"
        );
    }
    for (name, labels) in [
        ("trendstream_input_bytes_total", vec![&partition[..]]),
        ("trendstream_batch_seconds_count", vec![]),
        (
            "trendstream_sink_write_seconds_count",
            vec!["sink=\"kafka\""],
        ),
        (
            "trendstream_sink_write_seconds_count",
            vec!["sink=\"redis\""],
        ),
        (
            "trendstream_sink_write_seconds_count",
            vec!["sink=\"checkpoint\""],
        ),
        ("trendstream_commit_seconds_count", vec![]),
        // The event times are long past: the watermark is far behind the clock.
        ("trendstream_watermark_lag_seconds", vec![&partition[..]]),
    ] {
        let value = metric(&text, name, &labels);
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{name}{labels:?} in:\n{text}"
        );
    }
    // Series that have not moved are there, at zero.
    assert_eq!(
        metric(&text, "trendstream_sink_errors_total", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "trendstream_dead_letters_total",
            &[danmu_stream, "kind=\"too_large\""]
        ),
        Some(0.0),
        "{text}"
    );

    // Redis goes away: batches are processed, nothing is committed, the lag rises with every
    // record produced (each its own batch, so the broker's end offset is exact).
    kill(redis_pid(port).await);
    for i in 0..5 {
        let value = danmu("r1", T + 11_000 + i, "等等");
        produce(&p, &topic, 0, "r1", &value, &[]).await;
    }
    eventually("the lag counts the five records", || async {
        scrape(&http, "trendstream_consumer_lag", &[&partition]).await == Some(5.0)
    })
    .await;
    eventually("the failed checkpoint writes counted", || async {
        scrape(
            &http,
            "trendstream_sink_errors_total",
            &["sink=\"checkpoint\""],
        )
        .await
        .is_some_and(|n| n >= 1.0)
    })
    .await;
    assert_eq!(
        committed(&brokers, &group, &topic, 1).await,
        vec![Some(4)],
        "nothing committed while Redis is down"
    );

    // Redis returns: the writes go through, the lag falls back to nothing.
    start_redis(port);
    eventually("the lag gone once Redis is back", || async {
        scrape(&http, "trendstream_consumer_lag", &[&partition]).await == Some(0.0)
    })
    .await;
    assert_eq!(committed(&brokers, &group, &topic, 1).await, vec![Some(9)]);
    assert_eq!(
        scrape(&http, "trendstream_records_total", &[&partition]).await,
        Some(9.0)
    );
    running.stop().await.expect("clean stop");
}

/// Whether the instance at `http` answers `/ready` with 200 (`false` before it listens).
async fn ready(http: &str) -> bool {
    tokio::net::TcpStream::connect(http).await.is_ok()
        && http_get(http, "/ready").await.0 == "HTTP/1.1 200 OK"
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_ends_at_a_rebalance_and_returns_after_it() {
    let config_with =
        |http: &str| format!("[streams.text]\nenabled = false\n[http]\nlisten = \"{http}\"");
    let first_http = format!("127.0.0.1:{}", free_port());
    let first = config(&config_with(&first_http));
    create_topics(&first, 2).await;
    let brokers = first.kafka().brokers.clone();
    let topic = first.streams()["danmu"].topic.clone();
    let p = producer(&brokers);
    for partition in 0..2 {
        let value = danmu("r1", T + 1_000, "主播好");
        produce(&p, &topic, partition, "r1", &value, &[]).await;
    }

    let a = start(first.clone());
    eventually("the first instance ready with both partitions", || async {
        ready(&first_http).await
            && scrape(&first_http, "trendstream_partitions_assigned", &[]).await == Some(2.0)
    })
    .await;
    let rebalances = scrape(&first_http, "trendstream_rebalances_total", &[])
        .await
        .expect("rebalances counted");

    // Watch the first instance's readiness while a second one joins the group.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let watching = {
        let (seen, http) = (Arc::clone(&seen), first_http.clone());
        tokio::spawn(async move {
            loop {
                let status = http_get(&http, "/ready").await.0;
                seen.lock().unwrap().push(status);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    let second_http = format!("127.0.0.1:{}", free_port());
    // The same group and topics, another address.
    let second = trendstream::config::Config::from_toml(
        &first
            .to_toml()
            .replace(&format!("\"{first_http}\""), &format!("\"{second_http}\"")),
    )
    .expect("the second instance's config");
    assert_eq!(
        http_get(&first_http, "/ready").await.0,
        "HTTP/1.1 200 OK",
        "ready before the second instance starts"
    );
    let b = start(second);
    eventually("each instance ready with one partition", || async {
        ready(&first_http).await
            && ready(&second_http).await
            && scrape(&first_http, "trendstream_partitions_assigned", &[]).await == Some(1.0)
            && scrape(&second_http, "trendstream_partitions_assigned", &[]).await == Some(1.0)
    })
    .await;
    watching.abort();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s == "HTTP/1.1 503 Service Unavailable"),
        "not ready during the rebalance: {seen:?}"
    );
    assert!(
        scrape(&first_http, "trendstream_rebalances_total", &[])
            .await
            .is_some_and(|n| n > rebalances),
        "the rebalance counted"
    );
    b.stop().await.expect("clean stop");
    a.stop().await.expect("clean stop");
}
