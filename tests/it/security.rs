//! TLS and authentication, for real: Kafka over TLS with SCRAM (tansu requiring it, behind a TLS
//! terminator), Redis over TLS with an ACL user on one node and on a cluster; and wrong
//! credentials or an untrusted certificate stopping start-up at once with one clear line.

use std::path::Path;
use std::time::Duration;

use rdkafka::Message;
use redis::AsyncCommands;
use serde_json::{json, Value};

use crate::common::tls::{self, Certs, SecureKafka, PASSWORD};
use crate::common::*;
use crate::process::{spawn_run, stderr, wait_exit};

/// A multiple of every slide used here.
const T: i64 = 1_763_780_000_000;

/// The topics of one test, made before the broker starts requiring authentication.
struct Topics {
    danmu: String,
    output: String,
    dead: String,
}

impl Topics {
    fn new() -> Topics {
        Topics {
            danmu: unique("danmu"),
            output: unique("out"),
            dead: unique("dlq"),
        }
    }

    fn all(&self) -> Vec<(&str, i32)> {
        vec![(&self.danmu, 1), (&self.output, 1), (&self.dead, 1)]
    }
}

/// Certificates, topics and a broker requiring SCRAM behind TLS, under `dir`.
struct Secured {
    dir: tempfile::TempDir,
    certs: Certs,
    topics: Topics,
    kafka: SecureKafka,
}

async fn secured() -> Secured {
    let dir = tempfile::tempdir().unwrap();
    let certs = tls::certs(dir.path());
    let topics = Topics::new();
    let kafka = tls::start_secure_tansu(&certs, dir.path(), &topics.all()).await;
    Secured {
        dir,
        certs,
        topics,
        kafka,
    }
}

/// A configuration reading `topics` from `kafka` with `kafka_password`, writing to `redis`;
/// `redis_extra` is laid over `[redis]`.
fn secure_config(
    kafka: &SecureKafka,
    kafka_properties: &[(String, String)],
    topics: &Topics,
    redis: &str,
    redis_extra: &str,
) -> trendstream::config::Config {
    let common: String = kafka_properties
        .iter()
        .map(|(k, v)| format!("{k:?} = {v:?}\n"))
        .collect();
    let (brokers, output) = (&kafka.brokers, &topics.output);
    let (dead, danmu) = (&topics.dead, &topics.danmu);
    config(&format!(
        r#"
[kafka]
brokers = "{brokers}"
output_topic = "{output}"
dead_letter_topic = "{dead}"
[kafka.common]
{common}
[streams.danmu]
topic = "{danmu}"
[streams.text]
enabled = false
[window]
width = "20s"
slide = "10s"
out_of_orderness = "5s"
[redis]
url = "{redis}"
{redis_extra}
[retry]
give_up_after = "3m"
"#
    ))
}

fn danmu(room: &str, ts: i64, text: &str) -> Vec<u8> {
    json!({"room_id": room, "user_id": "u1", "ts": ts, "text": text})
        .to_string()
        .into_bytes()
}

/// Writes r1's records (two windows with 主播 twice, one dead letter) through `kafka`.
async fn produce_records(kafka: &SecureKafka, properties: &[(String, String)], topic: &str) {
    let properties: Vec<(&str, &str)> = properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("linger.ms", "0")])
        .collect();
    let p = producer_with(&kafka.brokers, &properties);
    for value in [
        danmu("r1", T + 1_000, "主播太强了"),
        danmu("r1", T + 2_000, "主播加油"),
        b"not json".to_vec(),
        // Watermark T+35s: the windows ending at T+10s and T+20s close.
        danmu("r1", T + 40_000, "收尾"),
    ] {
        produce(&p, topic, 0, "r1", &value, &[]).await;
    }
}

/// Runs the pipeline over `kafka` and the Redis at `redis_url` (`redis_extra` laid over its
/// section) and checks what reached both.
async fn pipeline_counts_exactly(
    certs: &Certs,
    kafka: &SecureKafka,
    topics: &Topics,
    redis_url: &str,
    redis_extra: &str,
) {
    let properties = tls::kafka_properties(&certs.ca, PASSWORD);
    let config = secure_config(kafka, &properties, topics, redis_url, redis_extra);
    produce_records(kafka, &properties, &topics.danmu).await;
    let running = start(config.clone());

    let read = |topic: String, count, settle| {
        let properties = properties.clone();
        let brokers = kafka.brokers.clone();
        async move { read_topic_with(&brokers, &properties, &topic, count, settle).await }
    };
    let out = read(topics.output.clone(), 2, Duration::from_millis(500)).await;
    let windows: Vec<(i64, Value)> = out
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_slice(m.payload().expect("payload")).expect("JSON");
            (
                v["window_start"].as_i64().expect("start") - T,
                v["top_terms"].clone(),
            )
        })
        .collect();
    assert_eq!(
        windows,
        vec![
            (-10_000, json!([["主播", 2], ["加油", 1], ["太强", 1]])),
            (0, json!([["主播", 2], ["加油", 1], ["太强", 1]])),
        ]
    );
    let dead = read(topics.dead.clone(), 1, Duration::from_millis(200)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload(), Some(&b"not json"[..]));

    // The leaderboard went through TLS as the ACL user; read it back the same way.
    let node = redis_url.split(',').next().expect("a node");
    let key = format!("{}hot:danmu:r1", config.redis().key_prefix);
    let board: Vec<(String, f64)> = if config.redis().cluster {
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(&certs.ca).unwrap()),
        };
        let client = redis::cluster::ClusterClient::builder(vec![node])
            .certs(certificates)
            .build()
            .unwrap();
        let mut conn = client.get_async_connection().await.unwrap();
        conn.zrevrange_withscores(&key, 0, -1).await.unwrap()
    } else {
        let mut conn = tls::redis(node, &certs.ca).await;
        conn.zrevrange_withscores(&key, 0, -1).await.unwrap()
    };
    assert_eq!(
        board,
        vec![
            ("主播".to_owned(), 2.0),
            ("太强".to_owned(), 1.0),
            ("加油".to_owned(), 1.0)
        ]
    );
    running.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_over_tls_with_scram_and_redis_over_tls_with_an_acl_user_count_exactly() {
    let s = secured().await;
    let (certs, topics, kafka) = (&s.certs, &s.topics, &s.kafka);
    let redis_url = tls::start_redis_tls(certs);
    let ca = certs.ca.display().to_string();
    pipeline_counts_exactly(
        certs,
        kafka,
        topics,
        &redis_url,
        &format!("tls_ca_file = {ca:?}"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_cluster_over_tls_with_an_acl_user_counts_exactly() {
    let s = secured().await;
    let (certs, topics, kafka) = (&s.certs, &s.topics, &s.kafka);
    let nodes = tls::start_redis_tls_cluster(certs, s.dir.path());
    let ca = certs.ca.display().to_string();
    pipeline_counts_exactly(
        certs,
        kafka,
        topics,
        &nodes.join(","),
        &format!("cluster = true\ntls_ca_file = {ca:?}"),
    )
    .await;
}

/// Runs the binary with `config` and returns its last line of output. A refusal that were
/// retried would only end after `retry.give_up_after` (3 minutes here), past [`DEADLINE`].
async fn start_up_failure(config: &trendstream::config::Config, dir: &Path) -> String {
    let out = wait_exit(spawn_run(config, dir, &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(!text.contains(PASSWORD), "password printed:\n{text}");
    assert!(!text.contains("wrong-0123"), "password printed:\n{text}");
    let last = text.lines().last().unwrap_or_default().to_owned();
    // The reason is said once, on the last line; librdkafka's own log lines may precede it.
    println!("{text}");
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_or_an_untrusted_certificate_stop_start_up_with_one_clear_line() {
    let s = secured().await;
    let (certs, topics, kafka) = (&s.certs, &s.topics, &s.kafka);
    let redis_url = tls::start_redis_tls(certs);
    let ca = certs.ca.display().to_string();
    let trusted = format!("tls_ca_file = {ca:?}");
    let good = tls::kafka_properties(&certs.ca, PASSWORD);
    let prefix = format!(
        "trendstream: Kafka at kafka.brokers ({}) refused this client: ",
        kafka.brokers
    );

    // Kafka: a wrong SCRAM password.
    let wrong = tls::kafka_properties(&certs.ca, "wrong-0123");
    let line = start_up_failure(
        &secure_config(kafka, &wrong, topics, &redis_url, &trusted),
        s.dir.path(),
    )
    .await;
    assert!(
        line.starts_with(&prefix) && line.contains("SASL authentication error"),
        "{line}"
    );

    // Kafka: the broker's certificate is not trusted (no ssl.ca.location: the system's CAs).
    let untrusted: Vec<(String, String)> = good
        .iter()
        .filter(|(k, _)| k != "ssl.ca.location")
        .cloned()
        .collect();
    let line = start_up_failure(
        &secure_config(kafka, &untrusted, topics, &redis_url, &trusted),
        s.dir.path(),
    )
    .await;
    assert!(
        line.starts_with(&prefix) && line.contains("certificate verify failed"),
        "{line}"
    );

    // Redis: a wrong password for the ACL user.
    let wrong_url = redis_url.replace(PASSWORD, "wrong-0123");
    let line = start_up_failure(
        &secure_config(kafka, &good, topics, &wrong_url, &trusted),
        s.dir.path(),
    )
    .await;
    let shown_url = redis_url.replace(&format!("{}:{PASSWORD}", tls::USER), "***");
    assert!(
        line.starts_with(&format!(
            "trendstream: cannot connect to Redis at {shown_url}"
        )) && line.contains("Password authentication failed"),
        "{line}"
    );

    // Redis: the server's certificate is not trusted (no tls_ca_file: the system's CAs).
    let line = start_up_failure(
        &secure_config(kafka, &good, topics, &redis_url, ""),
        s.dir.path(),
    )
    .await;
    assert!(
        line.starts_with(&format!(
            "trendstream: cannot connect to Redis at {shown_url}"
        )) && line.contains("UnknownIssuer"),
        "{line}"
    );
}
