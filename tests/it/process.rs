//! The `trendstream` binary as a process: configuration checks, signals and exit codes.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_trendstream");

fn check_config(env: &[(&str, &str)], file: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("check-config");
    if let Some(file) = file {
        cmd.arg("--config").arg(file);
    }
    cmd.envs(env.iter().copied())
        .output()
        .expect("run trendstream")
}

/// What `check-config` prints for `env` on the defaults: it succeeds and prints TOML.
fn printed_config(env: &[(&str, &str)]) -> toml::Table {
    let out = check_config(env, None);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().parse().unwrap()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// `trendstream run` on the built-in defaults with `env` laid over them, run to its end.
fn run_with_env(env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .arg("run")
        .envs(env.iter().copied())
        .output()
        .expect("run trendstream")
}

/// The last line of stderr — where a failure is told — after checking that none of its
/// `": "`-separated parts (an error and its causes) shows up again in another.
fn last_line_with_each_cause_once(out: &Output) -> String {
    let last = stderr(out).lines().last().unwrap_or_default().to_owned();
    let parts: Vec<&str> = last.split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        for other in &parts[i + 1..] {
            assert!(
                !part.contains(other) && !other.contains(part),
                "{other:?} and {part:?} in one line: {last}"
            );
        }
    }
    last
}

#[test]
fn a_missing_stop_words_file_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.txt").display().to_string();
    let out = run_with_env(&[("TRENDSTREAM_EXTRACT__STOP_WORDS_FILE", &path)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        last_line_with_each_cause_once(&out),
        format!(
            "trendstream: cannot read extract.stop_words_file ({path}): No such file or \
             directory (os error 2)"
        )
    );
}

#[test]
fn a_bad_redis_url_stops_start_up_with_one_line() {
    let out = run_with_env(&[("TRENDSTREAM_REDIS__URL", "localhost:6379")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let last = last_line_with_each_cause_once(&out);
    assert!(
        last.starts_with("trendstream: redis.url (localhost:6379) is not a Redis URL: "),
        "{last}"
    );
}

#[test]
fn check_config_prints_the_effective_config_with_environment_overrides() {
    let printed = printed_config(&[
        ("TRENDSTREAM_WINDOW__WIDTH", "5m"),
        ("TRENDSTREAM_KAFKA__CONSUMER__FETCH_WAIT_MAX_MS", "50"),
        ("TRENDSTREAM_STREAMS__DANMU__TOPIC", "live-danmu"),
    ]);
    assert_eq!(printed["window"]["width"].as_str(), Some("5m"));
    assert_eq!(printed["window"]["slide"].as_str(), Some("10s"));
    assert_eq!(
        printed["kafka"]["consumer"]["fetch.wait.max.ms"].as_str(),
        Some("50")
    );
    assert_eq!(
        printed["streams"]["danmu"]["topic"].as_str(),
        Some("live-danmu")
    );
}

#[test]
fn bad_config_stops_with_the_key_and_the_value() {
    let out = check_config(&[("TRENDSTREAM_WINDOW__SLIDE", "7s")], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "trendstream: window.slide (7s) must divide window.width (1m)"
    );

    let out = check_config(&[("TRENDSTREAM_OUTPUT__TOP_K", "0")], None);
    assert_eq!(
        stderr(&out),
        "trendstream: output.top_k (0) must be between 1 and 10000"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[window]\nwidht = \"1m\"\n").unwrap();
    let out = check_config(&[], Some(&file));
    assert_eq!(out.status.code(), Some(1));
    let msg = stderr(&out);
    assert!(
        msg.contains("unknown field") && msg.contains("widht") && msg.contains("window"),
        "{msg}"
    );

    let out = check_config(&[], Some(&dir.path().join("missing.toml")));
    assert!(stderr(&out).contains("--config"), "{}", stderr(&out));
}

/// Writes `config` to a file and starts `trendstream run` on it.
pub(crate) fn spawn_run(
    config: &trendstream::config::Config,
    dir: &Path,
    extra_args: &[&str],
) -> std::process::Child {
    let file = dir.join("trendstream.toml");
    std::fs::write(&file, config.to_toml()).unwrap();
    Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&file)
        .args(extra_args)
        .env("RUST_LOG", "trendstream=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start trendstream")
}

pub(crate) async fn wait_exit(child: std::process::Child) -> Output {
    tokio::time::timeout(
        DEADLINE,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("trendstream exits")
    .unwrap()
    .unwrap()
}

/// Asks `child` to stop (SIGTERM) and waits until it has: how it ended and what it printed.
async fn stop(child: std::process::Child) -> Output {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    wait_exit(child).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_commits_leaves_the_group_and_exits_zero() {
    let config = config("[streams.text]\nenabled = false");
    let (brokers, topic) = danmu_input(&config, 1).await;
    let group = config.kafka().group_id.clone();
    let p = producer(&brokers);
    for i in 0..20 {
        let value = json!({"room_id": "r1", "ts": 1_000 + i, "text": "晚上好"}).to_string();
        produce(&p, &topic, 0, "r1", value.as_bytes(), &[]).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let child = spawn_run(&config, dir.path(), &["--json-logs"]);
    eventually("all records committed", || async {
        committed(&brokers, &group, &topic, 1).await == vec![Some(20)]
    })
    .await;
    let out = stop(child).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Logs are JSON lines; every batch is logged with its counts, and the group is left.
    let lines: Vec<Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let batched: u64 = lines
        .iter()
        .filter(|l| l["message"] == "Batch committed.")
        .map(|l| l["records"].as_u64().unwrap())
        .sum();
    assert_eq!(batched, 20);
    let spans: u64 = lines
        .iter()
        .filter(|l| l["message"] == "Batch committed.")
        .map(|l| {
            l["span"]["records"]
                .as_u64()
                .expect("batch span with its record count")
        })
        .sum();
    assert_eq!(spans, 20);
    assert!(lines
        .iter()
        .any(|l| l["message"] == "Shutting down: leaving the group."));
    // A new member of the group gets the partition at once: the old one left, it did not
    // just go silent until its session timed out.
    let members = group_members(&brokers, &group).await;
    assert_eq!(members, 0);
}

/// Whether the kernel gives process `pid` transparent huge pages, as its status says.
#[cfg(target_os = "linux")]
fn huge_pages_enabled(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"))?;
    Some(line.trim_end().ends_with('1'))
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn a_running_instance_turns_transparent_huge_pages_off_for_itself() {
    // What the instance starts with: this process's setting, inherited.
    assert_eq!(
        huge_pages_enabled(std::process::id()),
        Some(true),
        "the test process has huge pages off already: the test would show nothing"
    );
    let config = config("[streams.text]\nenabled = false");
    create_topics(&config, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_run(&config, dir.path(), &[]);
    let pid = child.id();
    eventually("huge pages off in the instance", || async {
        huge_pages_enabled(pid) == Some(false)
    })
    .await;
    let out = stop(child).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_topic_stops_start_up_naming_the_key() {
    let config = config("[streams.text]\nenabled = false");
    // Only the input topic exists.
    create_topic(&config.kafka().brokers, &config.streams()["danmu"].topic, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let out = wait_exit(spawn_run(&config, dir.path(), &[])).await;
    assert_eq!(out.status.code(), Some(1));
    let last = last_line_with_each_cause_once(&out);
    assert_eq!(
        last,
        format!(
            "trendstream: kafka.output_topic ({}) names a topic that does not exist",
            config.kafka().output_topic
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_redis_is_fatal_after_retrying() {
    let port = free_port();
    let config = config(&format!(
        "[redis]\nurl = \"redis://127.0.0.1:{port}\"\n[retry]\ninitial_backoff = \"50ms\"\nmax_backoff = \"100ms\"\ngive_up_after = \"1s\"\n[streams.text]\nenabled = false"
    ));
    create_topics(&config, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let out = wait_exit(spawn_run(&config, dir.path(), &[])).await;
    assert_eq!(out.status.code(), Some(1));
    let last = last_line_with_each_cause_once(&out);
    assert!(
        last.starts_with("trendstream: gave up after")
            && last.contains(&format!("127.0.0.1:{port}")),
        "{last}"
    );
    // How long, in whole milliseconds at most, then the last failure with its cause.
    let (head, rest) = last.split_once(" of failures: ").expect("the last failure");
    let took = head.trim_start_matches("trendstream: gave up after ");
    assert!(humantime::parse_duration(took).is_ok_and(|d| d.subsec_nanos() % 1_000_000 == 0));
    let connect = format!("cannot connect to Redis at redis://127.0.0.1:{port}: ");
    assert!(
        rest.starts_with(&connect) && rest.len() > connect.len(),
        "{last}"
    );
}

/// Members of a consumer group, as the broker sees them.
async fn group_members(brokers: &str, group: &str) -> usize {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let group = group.to_owned();
    tokio::task::spawn_blocking(move || {
        let list = consumer
            .fetch_group_list(Some(&group), Duration::from_secs(10))
            .expect("group list");
        list.groups().iter().map(|g| g.members().len()).sum()
    })
    .await
    .unwrap()
}

/// A gauge of an instance's `/metrics`, if it answers.
async fn gauge(addr: &str, name: &str) -> Option<u64> {
    let connected = tokio::net::TcpStream::connect(addr).await.is_ok();
    if !connected {
        return None;
    }
    scrape(addr, &format!("trendstream_{name}"), &[])
        .await
        .map(|v| v as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_instance_takes_over_when_an_owner_is_killed() {
    // Three instances, two partitions: one idles. One owner is then `kill -9`ed: the idle one
    // takes its partition over, even on a broker that keeps the dead member's assignment.
    let config = config(
        r#"
[streams.text]
enabled = false
[kafka.consumer]
"heartbeat.interval.ms" = "500"
[ownership]
renew_every = "500ms"
lease = "4s"
"#,
    );
    let (brokers, topic) = danmu_input(&config, 2).await;
    let group = config.kafka().group_id.clone();
    let p = producer(&brokers);
    let feed = |from: i64| {
        let (p, topic) = (p.clone(), topic.clone());
        async move {
            for i in from..from + 50 {
                let value = json!({"room_id": "r1", "ts": i * 100, "text": "晚上好"}).to_string();
                produce(&p, &topic, (i % 2) as i32, "r1", value.as_bytes(), &[]).await;
            }
        }
    };
    feed(0).await;

    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut instances: Vec<Option<std::process::Child>> = dirs
        .iter()
        .zip(&addrs)
        .map(|(dir, addr)| {
            let mut c = config.to_raw();
            c.http.listen = addr.clone();
            let file = dir.path().join("trendstream.toml");
            std::fs::write(&file, c.to_toml()).unwrap();
            let log = std::fs::File::create(dir.path().join("log")).unwrap();
            let child = Command::new(BIN)
                .args(["run", "--config"])
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start trendstream");
            Some(child)
        })
        .collect();
    let sum = |offsets: Vec<Option<i64>>| offsets.iter().flatten().sum::<i64>();
    eventually("the first records committed", || async {
        sum(committed(&brokers, &group, &topic, 2).await) == 50
    })
    .await;

    // Who holds what: two owners of one partition each, and one idle instance.
    let deadline = std::time::Instant::now() + DEADLINE;
    let assigned = loop {
        let mut assigned = Vec::new();
        for addr in &addrs {
            assigned.push(gauge(addr, "partitions_assigned").await);
        }
        // Until all three have joined: one partition each for two of them.
        let mut sorted = assigned.clone();
        sorted.sort();
        if sorted == [Some(0), Some(1), Some(1)] {
            break assigned;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "instances report their assignment: {assigned:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let idle = assigned
        .iter()
        .position(|a| *a == Some(0))
        .expect("an idle instance");
    let owner = assigned
        .iter()
        .position(|a| *a == Some(1))
        .expect("an owner");

    let mut killed = instances[owner].take().unwrap();
    killed.kill().unwrap();
    killed.wait().unwrap();
    feed(50).await;
    eventually("every record committed after the kill", || async {
        sum(committed(&brokers, &group, &topic, 2).await) == 100
    })
    .await;
    // The two live instances share the partitions: the idle one holds one now.
    let idle_addr = &addrs[idle];
    eventually("the idle instance holding a partition", || async {
        gauge(idle_addr, "partitions_assigned").await == Some(1)
    })
    .await;
    for mut child in instances.into_iter().flatten() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Secrets set in a file and in the environment, as `(config file text, environment)`.
const FILE_SECRET: &str = "file-secret-0123";
const ENV_SECRET: &str = "env-secret-0456";
const URL_SECRET: &str = "url-secret-0789";

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secrets(out: &Output) {
    let text = all_output(out);
    for secret in [FILE_SECRET, ENV_SECRET, URL_SECRET] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
}

#[test]
fn check_config_prints_no_secrets_from_the_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.toml");
    std::fs::write(
        &file,
        format!(
            "[kafka.consumer]\n\"sasl.password\" = \"{FILE_SECRET}\"\n\"sasl.username\" = \"me\"\n[kafka.producer]\n\"sasl.oauthbearer.client.secret\" = \"{FILE_SECRET}\"\n"
        ),
    )
    .unwrap();
    let url = format!("redis://user:{URL_SECRET}@127.0.0.1:6379/0");
    let out = check_config(
        &[
            ("TRENDSTREAM_KAFKA__PRODUCER__SSL_KEY_PASSWORD", ENV_SECRET),
            ("TRENDSTREAM_REDIS__URL", &url),
        ],
        Some(&file),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_secrets(&out);
    let printed: toml::Table = String::from_utf8(out.stdout.clone())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        printed["redis"]["url"].as_str(),
        Some("redis://***@127.0.0.1:6379/0")
    );
    assert_eq!(
        printed["kafka"]["producer"]["ssl.key.password"].as_str(),
        Some("***")
    );
    assert_eq!(
        printed["kafka"]["consumer"]["sasl.username"].as_str(),
        Some("me")
    );

    // A refused configuration does not show them either.
    let out = check_config(
        &[
            ("TRENDSTREAM_REDIS__URL", &format!("{url},{url}")),
            ("TRENDSTREAM_KAFKA__CONSUMER__SASL_PASSWORD", ENV_SECRET),
        ],
        Some(&file),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("redis.url (redis://***@"),
        "{}",
        stderr(&out)
    );
    assert_no_secrets(&out);
}

#[test]
fn environment_values_of_string_keys_stay_as_written() {
    let printed = printed_config(&[
        ("TRENDSTREAM_KAFKA__CONSUMER__SASL_USERNAME", "0123"),
        ("TRENDSTREAM_KAFKA__PRODUCER__LINGER_MS", "007"),
        ("TRENDSTREAM_KAFKA__GROUP_ID", "0123"),
        ("TRENDSTREAM_REDIS__KEY_PREFIX", "true"),
        ("TRENDSTREAM_STREAMS__DANMU__GROUP_BY", "1e3"),
        ("TRENDSTREAM_BATCH__MAX_RECORDS", "0123"),
        ("TRENDSTREAM_REDIS__CLUSTER", "false"),
    ]);
    let k = &printed["kafka"];
    assert_eq!(k["consumer"]["sasl.username"].as_str(), Some("0123"));
    assert_eq!(k["producer"]["linger.ms"].as_str(), Some("007"));
    assert_eq!(k["group_id"].as_str(), Some("0123"));
    assert_eq!(printed["redis"]["key_prefix"].as_str(), Some("true"));
    assert_eq!(
        printed["streams"]["danmu"]["group_by"].as_str(),
        Some("1e3")
    );
    // Numbers and booleans are still read as such.
    assert_eq!(printed["batch"]["max_records"].as_integer(), Some(123));
    assert_eq!(printed["redis"]["cluster"].as_bool(), Some(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_logs_and_errors_show_no_secrets() {
    // Redis is unreachable, so the connect error (with the URL) is logged on every retry and
    // ends the run.
    let port = free_port();
    let config = config(&format!(
        "[retry]\ninitial_backoff = \"50ms\"\nmax_backoff = \"100ms\"\ngive_up_after = \"1s\"\n[streams.text]\nenabled = false\n[kafka.consumer]\n\"sasl.password\" = \"{FILE_SECRET}\""
    ));
    create_topics(&config, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trendstream.toml");
    std::fs::write(&file, config.to_toml()).unwrap();
    let child = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&file)
        .env("RUST_LOG", "debug")
        .env(
            "TRENDSTREAM_REDIS__URL",
            format!("redis://user:{URL_SECRET}@127.0.0.1:{port}"),
        )
        .env("TRENDSTREAM_KAFKA__PRODUCER__SASL_PASSWORD", ENV_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start trendstream");
    let out = wait_exit(child).await;
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let text = all_output(&out);
    assert!(
        text.contains(&format!("redis://***@127.0.0.1:{port}")),
        "{text}"
    );
    assert!(text.contains("redis connect failed; retrying."), "{text}");
    assert_no_secrets(&out);
}
