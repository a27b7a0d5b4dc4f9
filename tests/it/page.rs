//! The live page and `top` on a running instance: the words the pipeline put in Redis show up
//! in a real browser and in the terminal view; the Redis query is bounded and says so.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use trendstream::config::Config;
use trendstream::generate::{generate, Disorder, EventTime, GenerateOptions};
use trendstream::hot::{hot_stream, HotQuery};
use trendstream::observe::{serve, HttpLimits, Metrics};
use trendstream::page::HotPage;
use trendstream::store::Connection;

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_trendstream");
/// A multiple of every slide used here.
const T: i64 = 1_763_780_000_000;
/// A room whose name is markup: it must show as text, never as an element.
const MARKUP_ROOM: &str = "<b>boom</b>&co";

/// Generated traffic for both streams, plus a room named like markup, fully consumed by an
/// instance serving HTTP: the instance, its address and the leaderboards in Redis, as
/// `(group, its three top words)` per stream.
async fn instance_with_leaderboards() -> (Running, String, Vec<(String, Vec<String>)>) {
    let http = format!("127.0.0.1:{}", free_port());
    let config = config(&format!(
        "[window]\nwidth = \"20s\"\nslide = \"10s\"\nout_of_orderness = \"1s\"\n[http]\nlisten = \"{http}\""
    ));
    create_topics(&config, 1).await;
    let brokers = config.kafka().brokers.clone();
    let danmu = config.streams()["danmu"].topic.clone();
    let p = producer(&brokers);
    for i in 0..20 {
        let value =
            json!({"room_id": MARKUP_ROOM, "ts": T + i * 100, "text": "标签注入测试 晚上好"});
        produce(
            &p,
            &danmu,
            0,
            MARKUP_ROOM,
            value.to_string().as_bytes(),
            &[],
        )
        .await;
    }
    let count = 2_000;
    let report = generate(&traffic(&config, count), std::future::pending())
        .await
        .expect("traffic delivered");
    let total = 20 + report.danmu + report.posts + report.bad;

    let running = start(config.clone());
    let group = config.kafka().group_id.clone();
    let text = config.streams()["text"].topic.clone();
    eventually("every record committed", || async {
        let d = committed_sum(&brokers, &group, &danmu, 1).await;
        let t = committed_sum(&brokers, &group, &text, 1).await;
        d.zip(t).map(|(d, t)| (d + t) as u64) == Some(total)
    })
    .await;
    // Everything is consumed: the leaderboards stay as they are now.
    (running, http, leaderboards(&config).await)
}

/// `count` records, 10 ms of event time apart from `T`: 20 s of it, so windows close.
fn traffic(config: &Config, count: u64) -> GenerateOptions {
    GenerateOptions {
        brokers: config.kafka().brokers.clone(),
        danmu_topic: config.streams()["danmu"].topic.clone(),
        text_topic: config.streams()["text"].topic.clone(),
        rate: 0,
        count,
        rooms: 5,
        vocabulary: 0,
        text_share: 0.2,
        bad_every: 0,
        seed: 7,
        event_time: EventTime::Fixed {
            start_ms: T,
            step_ms: 10,
        },
        disorder: Disorder::default(),
        post_texts: Vec::new(),
        producer: Vec::new(),
    }
}

/// Every leaderboard of `config` in Redis, as `(group, its three top words)`, read directly.
async fn leaderboards(config: &Config) -> Vec<(String, Vec<String>)> {
    let mut r = redis(&config.redis().url).await;
    let prefix = &config.redis().key_prefix;
    let mut out = Vec::new();
    for stream in ["danmu", "text"] {
        let stream_prefix = format!("{prefix}hot:{stream}:");
        let keys: Vec<String> = r.keys(format!("{stream_prefix}*")).await.unwrap();
        for key in keys {
            let words: Vec<String> = r.zrevrange(&key, 0, 2).await.unwrap();
            let group = key.strip_prefix(&stream_prefix).unwrap().to_owned();
            out.push((group, words));
        }
    }
    assert!(
        out.iter().any(|(g, _)| g == MARKUP_ROOM),
        "the markup room has a leaderboard: {out:?}"
    );
    assert!(out.len() >= 3, "leaderboards of several groups: {out:?}");
    out
}

/// `text` as it shows in serialised HTML text.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The DOM of `url` after its scripts ran, from headless Chromium.
fn rendered_dom(url: &str) -> String {
    let browser = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "chromium".to_owned());
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {browser} ({e}): the page test needs headless Chromium \
                 (Debian package chromium; scripts/setup.sh installs it)"
            )
        });
    assert!(
        out.status.success(),
        "{browser} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 DOM")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_page_shows_the_words_in_redis() {
    let (running, http, boards) = instance_with_leaderboards().await;
    let (status, body) = http_get(&http, "/api/hot").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["streams"][0]["stream"], "danmu");
    assert_eq!(answer["streams"][0]["key_limit"], 10_000);
    assert_eq!(answer["streams"][0]["truncated"], false);

    let url = format!("http://{http}/");
    let expected: Vec<String> = boards
        .iter()
        .flat_map(|(group, words)| std::iter::once(group).chain(words))
        .map(|text| format!(">{}<", html_text(text)))
        .collect();
    let dom_url = url.clone();
    let dom = tokio::task::spawn_blocking(move || rendered_dom(&dom_url))
        .await
        .unwrap();
    // The first answer is rendered; when the browser's clock ran out before it, ask again.
    let mut dom = dom;
    let deadline = std::time::Instant::now() + DEADLINE;
    while !dom.contains("data-state=\"live\"") {
        assert!(
            std::time::Instant::now() < deadline,
            "the page never rendered an answer:\n{dom}"
        );
        let again = url.clone();
        dom = tokio::task::spawn_blocking(move || rendered_dom(&again))
            .await
            .unwrap();
    }
    for text in &expected {
        assert!(
            dom.contains(text.as_str()),
            "{text} missing from the page:\n{dom}"
        );
    }
    // The markup room shows as text: no element was made from it.
    assert!(!dom.contains("<b>boom"), "{dom}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn top_once_prints_the_words_in_redis() {
    let (running, http, boards) = instance_with_leaderboards().await;
    let url = format!("http://{http}");
    let out = tokio::task::spawn_blocking(move || {
        run_ok(
            Command::new(BIN).args(["top", "--once", "--groups", "20", "--url", &url]),
            "trendstream top --once",
        )
    })
    .await
    .unwrap();
    let screen = String::from_utf8(out.stdout).unwrap();
    assert!(screen.contains("records/s"), "{screen}");
    for (group, words) in &boards {
        assert!(
            screen.contains(group.as_str()),
            "{group} missing:\n{screen}"
        );
        for word in words {
            assert!(screen.contains(word.as_str()), "{word} missing:\n{screen}");
        }
    }
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hot_query_is_bounded_and_says_when_the_bound_was_hit() {
    let config = config("");
    let prefix = config.redis().key_prefix.clone();
    let mut r = redis(&config.redis().url).await;
    // 2,500 rooms, room i with count i; and a key of another stream, never read.
    let mut pipe = redis::pipe();
    for i in 1..=2_500u64 {
        pipe.zadd(format!("{prefix}hot:danmu:r{i}"), format!("w{i}"), i)
            .ignore();
    }
    pipe.zadd(format!("{prefix}hot:text:weibo"), "x", 1_000_000)
        .ignore();
    let () = pipe.query_async(&mut r).await.unwrap();

    let client = redis::Client::open(config.redis().url.as_str()).unwrap();
    let conn = Connection::Single(client.get_connection_manager().await.unwrap());
    let query = |max_keys| HotQuery {
        key_prefix: prefix.clone(),
        groups: 3,
        terms: 5,
        max_keys,
    };
    let all = hot_stream(&conn, "danmu", &query(10_000)).await.unwrap();
    assert!(!all.truncated);
    assert_eq!(all.groups_found, 2_500);
    let names: Vec<&str> = all.groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["r2500", "r2499", "r2498"]);
    assert_eq!(all.groups[0].terms, [("w2500".to_owned(), 2_500)]);

    let bounded = hot_stream(&conn, "danmu", &query(1_000)).await.unwrap();
    assert!(bounded.truncated);
    assert_eq!(bounded.key_limit, 1_000);
    assert!(
        (1..=1_000).contains(&bounded.groups_found),
        "{}",
        bounded.groups_found
    );
    assert_eq!(bounded.groups.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hot_query_scans_every_primary_of_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, _pids) = start_redis_cluster(dir.path());
    let config = config(&format!(
        "[redis]\nurl = \"{}\"\ncluster = true",
        nodes.join(",")
    ));
    let conn = Connection::connect(config.redis()).await.unwrap();
    let prefix = config.redis().key_prefix.clone();
    // 300 rooms spread over the three primaries' slots; room i with count i.
    let writes = (1..=300u64).map(|i| {
        let mut conn = conn.clone();
        let key = format!("{prefix}hot:danmu:r{i}");
        async move { conn.zadd::<_, _, _, ()>(key, "w", i).await }
    });
    for write in futures::future::join_all(writes).await {
        write.unwrap();
    }
    let query = |max_keys| HotQuery {
        key_prefix: prefix.clone(),
        groups: 2,
        terms: 1,
        max_keys,
    };
    let all = hot_stream(&conn, "danmu", &query(10_000)).await.unwrap();
    assert!(!all.truncated);
    assert_eq!(all.groups_found, 300);
    let names: Vec<&str> = all.groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["r300", "r299"]);
    // Each primary may examine 20 keys of its ~100.
    let bounded = hot_stream(&conn, "danmu", &query(60)).await.unwrap();
    assert!(bounded.truncated);
    assert!(bounded.groups_found <= 60, "{}", bounded.groups_found);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_answers_503_with_the_reason_when_redis_is_down() {
    let port = free_port();
    let url = start_redis(port);
    let config = config(&format!("[redis]\nurl = \"{url}\""));
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = Connection::Single(client.get_connection_manager().await.unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = CancellationToken::new();
    let page = Arc::new(HotPage::new(conn, &config));
    tokio::spawn(serve(
        listener,
        Arc::new(Metrics::default()),
        Some(page),
        stop.clone(),
        HttpLimits::default(),
    ));
    let (status, _) = http_get(&addr, "/api/hot").await;
    assert_eq!(status, "HTTP/1.1 200 OK");

    let _ = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "shutdown", "nosave"])
        .status();
    // The answer of a second ago may still be served; then Redis is asked again, and fails.
    let deadline = std::time::Instant::now() + DEADLINE;
    let answer: Value = loop {
        let (status, body) = http_get(&addr, "/api/hot").await;
        if status == "HTTP/1.1 503 Service Unavailable" {
            break serde_json::from_str(&body).unwrap();
        }
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "no 503 with Redis down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let error = answer["error"].as_str().expect("the reason");
    assert!(error.starts_with("cannot read Redis: "), "{error}");
    assert_eq!(answer["summary"]["records"], 0);
    // The rest of the endpoint is unaffected.
    assert_eq!(http_get(&addr, "/healthz").await.0, "HTTP/1.1 200 OK");
    let (status, page) = http_get(&addr, "/").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(page.contains("<title>trendstream"));
    stop.cancel();
}
