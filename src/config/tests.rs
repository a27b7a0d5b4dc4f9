//! Unit tests of loading and validating configuration.

use super::*;

fn err(toml: &str) -> String {
    Config::from_toml(toml).unwrap_err().to_string()
}

/// The error `toml` gives, checked to hold each of `parts`.
fn err_naming(toml: &str, parts: &[&str]) -> String {
    let msg = err(toml);
    for part in parts {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    msg
}

#[test]
fn defaults_are_valid() {
    let config = Config::from_toml("").unwrap();
    assert_eq!(config.width_ms(), 60_000);
    assert_eq!(config.slide_ms(), 10_000);
    assert_eq!(config.enabled_streams().count(), 2);
    assert_eq!(config.kafka().consumer["fetch.wait.max.ms"], "10");
}

#[test]
fn slide_must_divide_width() {
    assert_eq!(
        err("[window]\nslide = \"7s\""),
        "window.slide (7s) must divide window.width (1m)"
    );
}

#[test]
fn overlong_terms_and_keywords_are_refused() {
    assert_eq!(
        err("[extract]\nmax_term_chars = 1000"),
        "extract.max_term_chars (1000) must be at most 256"
    );
    let long = "k".repeat(300);
    assert!(err(&format!("[extract]\nwatch_keywords = [\"{long}\"]"))
        .starts_with("extract.watch_keywords (\"kkkkkkkkkkkkkkkkkkkk\"…) must not contain keywords of more than 256"));
}

#[test]
fn max_items_below_top_k_is_refused() {
    assert_eq!(
        err("[window]\nmax_items = 10"),
        "window.max_items (10) must be at least output.top_k (20)"
    );
}

#[test]
fn max_items_above_a_million_is_refused() {
    assert_eq!(
        err("[window]\nmax_items = 2000000"),
        "window.max_items (2000000) must be at most 1000000"
    );
}

#[test]
fn memory_budget_is_read_in_binary_units() {
    let budget = |text: &str| {
        Config::from_toml(&format!("[window]\nmemory_budget = {text}"))
            .unwrap()
            .memory_budget_bytes()
    };
    assert_eq!(budget("\"64MiB\""), 64 << 20);
    assert_eq!(budget("\"512 KiB\""), 512 << 10);
    assert_eq!(budget("\"2GiB\""), 2 << 30);
    assert_eq!(budget("\"4096B\""), 4096);
    assert_eq!(budget("65536"), 65536);
}

#[test]
fn a_bad_memory_budget_is_named() {
    assert_eq!(
        err("[window]\nmemory_budget = \"lots\""),
        "window.memory_budget (lots) is not a size like \"64MiB\" (a whole number of B, KiB, MiB or GiB)"
    );
    assert_eq!(
        err("[window]\nmemory_budget = \"64 MiBs\""),
        "window.memory_budget (64 MiBs) is not a size like \"64MiB\" (a whole number of B, KiB, MiB or GiB)"
    );
    assert_eq!(
        err("[window]\nmemory_budget = \"100B\""),
        "window.memory_budget (100B) must be at least 1KiB"
    );
}

#[test]
fn unknown_key_is_named() {
    err_naming("[window]\nwidht = \"7s\"", &["unknown field", "widht"]);
}

#[test]
fn wrong_type_is_named_with_key() {
    err_naming("[output]\ntop_k = \"many\"", &["output.top_k", "many"]);
}

#[test]
fn top_k_zero_is_refused() {
    assert_eq!(
        err("[output]\ntop_k = 0"),
        "output.top_k (0) must be between 1 and 10000"
    );
}

#[test]
fn too_many_workers_are_refused() {
    assert_eq!(
        err("[batch]\nworkers = 1000"),
        "batch.workers (1000) must be at most 256 (0: one per core)"
    );
}

#[test]
fn no_enabled_stream_is_refused() {
    let msg = err("[streams.danmu]\nenabled = false\n[streams.text]\nenabled = false");
    assert!(msg.starts_with("streams ("), "{msg}");
}

#[test]
fn owned_consumer_property_is_refused() {
    assert_eq!(
        err("[kafka.consumer]\n\"enable.auto.commit\" = \"true\""),
        "kafka.consumer.\"enable.auto.commit\" (true) is set by trendstream itself and cannot be configured"
    );
}

#[test]
fn common_properties_reach_both_clients_and_give_way_to_their_own() {
    let config = Config::from_toml(
        "[kafka.common]\n\"security.protocol\" = \"SASL_SSL\"\n\"linger.ms\" = \"1\"\n[kafka.producer]\n\"linger.ms\" = \"9\"",
    )
    .unwrap();
    let consumer = config.kafka().consumer_properties();
    let producer = config.kafka().producer_properties();
    assert_eq!(consumer["security.protocol"], "SASL_SSL");
    assert_eq!(producer["security.protocol"], "SASL_SSL");
    assert_eq!(producer["linger.ms"], "9");
    assert_eq!(
        err("[kafka.common]\n\"group.id\" = \"other\""),
        "kafka.common.\"group.id\" (other) is set by trendstream itself and cannot be configured"
    );
    assert_eq!(
        err("[kafka.common]\n\"enable.idempotence\" = \"false\""),
        "kafka.common.\"enable.idempotence\" (false) is set by trendstream itself and cannot be configured"
    );
}

#[test]
fn redis_tls_files_need_rediss_and_must_exist() {
    assert_eq!(
        err("[redis]\ntls_ca_file = \"Cargo.toml\""),
        "redis.tls_ca_file (Cargo.toml) is set, but redis.url does not name rediss:// (TLS) servers"
    );
    assert_eq!(
        err("[redis]\nurl = \"rediss://h:6380\"\ntls_ca_file = \"no-such.pem\""),
        "redis.tls_ca_file (no-such.pem) is not a readable file"
    );
    assert_eq!(
        err("[redis]\nurl = \"rediss://h:6380\"\ntls_cert_file = \"Cargo.toml\""),
        "redis.tls_cert_file (Cargo.toml) needs both redis.tls_cert_file and redis.tls_key_file"
    );
}

#[test]
fn owned_producer_properties_are_refused() {
    assert_eq!(
        err("[kafka.producer]\n\"enable.idempotence\" = \"false\""),
        "kafka.producer.\"enable.idempotence\" (false) is set by trendstream itself and cannot be configured"
    );
    assert_eq!(
        err("[kafka.producer]\n\"bootstrap.servers\" = \"elsewhere:9092\""),
        "kafka.producer.\"bootstrap.servers\" (elsewhere:9092) is set by trendstream itself and cannot be configured"
    );
}

#[test]
fn redis_url_in_an_error_is_shown_without_its_password() {
    let msg = err("[redis]\nurl = \"redis://:hunter2@h:1,redis://:hunter2@h:2\"");
    assert_eq!(
        msg,
        "redis.url (redis://***@h:1,redis://***@h:2) names several servers; set redis.cluster = true for a Redis Cluster"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_shown_without_url_user_info() {
    let msg = err_naming(
        "[redis]\nurl = \"redis://:hunter2@h\"\ncluster = \"redis://:hunter2@h\"",
        &["redis.cluster", "redis://***@h"],
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn redacted_config_hides_url_user_info_and_secret_properties() {
    let config = Config::from_toml(
        "[redis]\nurl = \"redis://user:hunter2@h:6379\"\n[kafka.consumer]\n\"sasl.password\" = \"hunter2\"\n\"sasl.username\" = \"me\"\n[kafka.producer]\n\"ssl.key.password\" = \"hunter2\"",
    )
    .unwrap();
    let shown = config.redacted();
    assert_eq!(shown.redis.url, "redis://***@h:6379");
    assert_eq!(shown.kafka.consumer["sasl.password"], "***");
    assert_eq!(shown.kafka.consumer["sasl.username"], "me");
    assert_eq!(shown.kafka.producer["ssl.key.password"], "***");
    assert!(!shown.to_toml().contains("hunter2"));
    assert!(!format!("{config:?}").contains("hunter2"));
    // The configuration itself keeps them.
    assert_eq!(config.kafka().consumer["sasl.password"], "hunter2");
}

#[test]
fn giving_up_no_sooner_than_the_poll_interval_is_refused() {
    assert_eq!(
        err("[retry]\ngive_up_after = \"5m\""),
        "retry.give_up_after (5m) must be shorter than kafka.consumer.\"max.poll.interval.ms\" (300000), \
         or the group evicts this instance while it retries"
    );
    assert_eq!(
        err("[kafka.consumer]\n\"max.poll.interval.ms\" = \"60000\"\n[retry]\ngive_up_after = \"90s\""),
        "retry.give_up_after (1m 30s) must be shorter than kafka.consumer.\"max.poll.interval.ms\" (60000), \
         or the group evicts this instance while it retries"
    );
    assert_eq!(
        err("[kafka.consumer]\n\"max.poll.interval.ms\" = \"5m\""),
        "kafka.consumer.\"max.poll.interval.ms\" (5m) is not a whole number of milliseconds"
    );
    let config = Config::from_toml(
        "[kafka.consumer]\n\"max.poll.interval.ms\" = \"600000\"\n[retry]\ngive_up_after = \"9m\"",
    );
    assert!(config.is_ok(), "{config:?}");
}

#[test]
fn ttl_shorter_than_slide_is_refused() {
    assert_eq!(
        err("[redis]\nttl = \"1s\""),
        "redis.ttl (1s) must be at least window.slide (10s), or leaderboards expire between updates"
    );
}

#[test]
fn two_streams_on_one_topic_are_refused() {
    assert_eq!(
        err("[streams.text]\ntopic = \"danmu\""),
        "streams.text.topic (danmu) is already read by stream danmu"
    );
}

#[test]
fn property_names_from_environment_get_their_dots_back() {
    let config = Config::from_toml("[kafka.producer]\nlinger_ms = 50").unwrap();
    assert_eq!(config.kafka().producer["linger.ms"], "50");
}

#[test]
fn a_changed_raw_config_is_checked_again() {
    let config = Config::from_toml("").unwrap();
    let mut raw = config.to_raw();
    raw.window.slide = Duration::from_secs(7);
    assert_eq!(
        raw.validate().unwrap_err().to_string(),
        "window.slide (7s) must divide window.width (1m)"
    );
    let mut raw = config.to_raw();
    raw.batch.workers = 3;
    raw.window.memory_budget = "1MiB".into();
    let changed = raw.validate().unwrap();
    assert_eq!(changed.batch().workers, 3);
    assert_eq!(changed.memory_budget_bytes(), 1 << 20);
}
