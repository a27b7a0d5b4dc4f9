//! Exactly-once through chaos: three instances over six partitions per topic, killed with
//! SIGKILL and restarted, one added and one removed, Redis and the broker restarted once each.
//! At the end, the leaderboards and the de-duplicated window records equal those of a single
//! clean run, window for window, count for count.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::Message;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_trendstream");

/// The binary the instances run: this build's, or `CHAOS_BIN` (to hold another build,
/// e.g. one before a fix, to the same chaos).
fn bin() -> String {
    std::env::var("CHAOS_BIN").unwrap_or_else(|_| BIN.to_owned())
}
const PARTITIONS: i32 = 6;
const RECORDS: u64 = 200_000;
const T: i64 = 1_763_780_000_000;

/// The chaos tests, and the other tests that load the machine for long (`memory`), run one at
/// a time: each starts its own broker and instances, and each awaits progress within
/// [`DEADLINE`], which a machine busy with two of them at once may miss.
pub(crate) static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn instances_dying_mid_batch_and_a_redis_restart_change_no_count() {
    let _turn = ONE_AT_A_TIME.lock().await;
    chaos(false, Crashes::InProcess).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_scaling_and_redis_and_broker_restarts_change_no_count() {
    let _turn = ONE_AT_A_TIME.lock().await;
    chaos(false, Crashes::Processes).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_scaling_and_redis_and_broker_restarts_change_no_count_on_a_redis_cluster() {
    let _turn = ONE_AT_A_TIME.lock().await;
    chaos(true, Crashes::Processes).await;
}

/// The scenario in which counts were once lost: three instances in one group over 4 + 4
/// partitions, batches of 500, data with out-of-order (3 % by up to 3 s), late (5–30 s) and bad
/// records, written in multi-record batches; one instance at a time `kill -9`ed and restarted
/// five times while records are being processed. `CHAOS_RUNS` seeded runs (default 2; the seeds
/// follow `CHAOS_SEED`), each compared with one clean run; prints how many were exact.
/// `scripts/chaos.sh N` runs N of them.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_records_are_processed_changes_no_count_over_seeded_runs() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let runs = env("CHAOS_RUNS").unwrap_or(2);
    let records = env("CHAOS_RECORDS").unwrap_or(100_000);
    let first_seed = env("CHAOS_SEED").unwrap_or_else(rand::random::<u64>);

    let dir = tempfile::tempdir().unwrap();
    let (brokers, _tansu) = start_tansu(free_port(), None);
    let redis = start_redis_for(dir.path(), false);
    let (danmu, text) = (unique("danmu"), unique("text"));
    for topic in [&danmu, &text] {
        create_topic(&brokers, topic, 4).await;
    }
    generate_into(
        &brokers,
        &danmu,
        &text,
        records,
        &[
            "--rooms",
            "200",
            "--text-share",
            "0.3",
            "--bad-every",
            "1000",
            "--out-of-order",
            "0.03",
            "--max-delay-ms",
            "3000",
            "--late",
            "0.0005",
            "--step-ms",
            "2",
        ],
    );
    let progress = |run: &Run, at_least: i64| {
        let (brokers, danmu, text, group) = (
            brokers.clone(),
            danmu.clone(),
            text.clone(),
            run.group.clone(),
        );
        async move {
            let what = format!("{at_least} records committed");
            let (every, deadline) = (Duration::from_millis(500), Duration::from_secs(180));
            eventually_every(&what, every, deadline, || async {
                let d = committed_sum(&brokers, &group, &danmu, 4).await;
                let t = committed_sum(&brokers, &group, &text, 4).await;
                d.zip(t).is_some_and(|(d, t)| d + t >= at_least)
            })
            .await;
        }
    };

    let clean = Run::new();
    create_topic(&brokers, &clean.output, 3).await;
    create_topic(&brokers, &clean.dead_letters, 1).await;
    let config =
        trendstream::config::Config::from_toml(&clean.toml(&brokers, &redis, &danmu, &text))
            .unwrap();
    let reference = start(config);
    progress(&clean, records as i64).await;
    reference.stop().await.expect("clean run stops cleanly");

    let _logs = LogsOnFailure(dir.path());
    let mut failed = Vec::new();
    for seed in (0..runs).map(|i| first_seed.wrapping_add(i)) {
        let run = Run::new();
        create_topic(&brokers, &run.output, 3).await;
        create_topic(&brokers, &run.dead_letters, 1).await;
        let config_file = dir.path().join(format!("{seed}.toml"));
        std::fs::write(&config_file, run.toml(&brokers, &redis, &danmu, &text)).unwrap();
        let log = |name: &str| dir.path().join(format!("{seed}-{name}.log"));

        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut instances_started: Vec<String> =
            ["a0", "b0", "c0"].iter().map(|s| s.to_string()).collect();
        let mut instances: Vec<Child> = instances_started
            .iter()
            .map(|name| spawn_instance(&config_file, &log(name)))
            .collect();
        // Five kills, each at a random point of its own fifth of the records, then a random
        // moment within the next second: the instances are processing.
        for kill in 0..5 {
            let fifth = records as f64 / 5.0;
            progress(
                &run,
                (fifth * (kill as f64 + rng.random::<f64>() * 0.8)) as i64,
            )
            .await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..1_000))).await;
            let victim = rng.random_range(0..instances.len());
            eprintln!("seed {seed}: kill -9 instance {victim} ({} of 5)", kill + 1);
            let child = instances.remove(victim);
            let name = format!("{}{}", ["a", "b", "c"][victim], kill + 1);
            instances.insert(victim, kill_and_restart(child, &config_file, &log(&name)));
            instances_started[victim] = name;
        }
        progress(&run, records as i64).await;
        for name in &instances_started {
            // An instance restarted late may still be starting: stopped once it consumes.
            let path = log(name);
            eventually(&format!("{name} consuming"), || async {
                std::fs::read_to_string(&path).is_ok_and(|l| l.contains("Consuming."))
            })
            .await;
        }
        for instance in instances {
            assert!(terminate(instance).success(), "instances stop cleanly");
        }
        let problems = differences(&brokers, &redis, &clean, &run).await;
        if problems.is_empty() {
            eprintln!("seed {seed}: exact");
        } else {
            eprintln!("seed {seed}: NOT exact: {}", problems.join("; "));
            failed.push(seed);
        }
    }
    eprintln!(
        "chaos: {} of {runs} seeded runs exact (CHAOS_SEED={first_seed})",
        runs - failed.len() as u64
    );
    assert!(failed.is_empty(), "runs not exact, seeds {failed:?}");
}

/// Writes `count` generated records to the input topics, with event times from `T`, in
/// multi-record batches of a few hundred records (lz4, `linger.ms` 5): every take-up then
/// seeks inside a stored batch, as on a busy topic. (With the generator's default batches of
/// up to 10,000 records, a take-up on tansu rewinds further and waits longer: see
/// `docs/tansu-mid-batch-fetch.md`.)
fn generate_into(brokers: &str, danmu: &str, text: &str, count: u64, extra: &[&str]) {
    run_ok(
        Command::new(BIN)
            .args(["generate", "--brokers", brokers])
            .args(["--danmu-topic", danmu, "--text-topic", text])
            .args(["--rate", "0", "--count", &count.to_string()])
            .args(["--linger-ms", "5", "--compression", "lz4"])
            .args(["--start-ms", &T.to_string()])
            .args(extra),
        "generate",
    );
}

/// How instances die.
enum Crashes {
    /// In this process: `run`'s task is dropped at whatever it awaits.
    InProcess,
    /// As processes: `kill -9` at random points, restarts, one added and one removed, and the
    /// broker restarted too.
    Processes,
}

/// Where Redis is, and how to restart (one node of) it.
struct Redis {
    url: String,
    cluster: bool,
    restart: Box<dyn Fn() + Send>,
}

fn start_redis_for(dir: &Path, cluster: bool) -> Redis {
    if cluster {
        let (urls, pids) = start_redis_cluster(dir);
        let first = urls[0].clone();
        let dir = dir.to_owned();
        let (port, pid) = (first.rsplit(':').next().unwrap().parse().unwrap(), pids[0]);
        let all = urls.clone();
        Redis {
            url: urls.join(","),
            cluster: true,
            restart: Box::new(move || {
                kill(pid);
                start_cluster_node(&dir, port);
                all.iter().for_each(|u| wait_cluster_ok(u));
            }),
        }
    } else {
        let port = free_port();
        let dir_text = dir.display().to_string();
        let args = [
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            &dir_text,
        ];
        let url = start_redis_with(port, &args);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Redis {
            url,
            cluster: false,
            restart: Box::new(move || {
                let pid = redis_pid(port);
                kill(pid);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                start_redis_with(port, &args);
            }),
        }
    }
}

fn redis_pid(port: u16) -> u32 {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "info", "server"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("process_id")
}

struct Run {
    group: String,
    prefix: String,
    output: String,
    dead_letters: String,
}

impl Run {
    fn new() -> Run {
        Run {
            group: unique("group"),
            prefix: format!("{}:", unique("p")),
            output: unique("out"),
            dead_letters: unique("dlq"),
        }
    }

    /// The consumers wait up to 500 ms for a fetch that finds nothing (librdkafka's default,
    /// not the 10 ms of `config/default.toml`), and fetch at most 1 MiB (256 KiB a partition)
    /// and 4 MiB ahead. tansu's storage answers one request at a time, fetches and the group's
    /// heartbeats alike, and reads every fetch from SQLite: idle consumers asking every 10 ms
    /// kept it on a whole core (three idle instances: 1.04 cores; 0.08 at 500 ms), and after
    /// each rebalance three or four instances fetching their 16 MiB ahead kept it busy (97 % of
    /// its time in fetches), so heartbeats were answered after the 6 s session timeout,
    /// sessions ended and the group rebalanced again, for minutes.
    fn toml(&self, brokers: &str, redis: &Redis, danmu: &str, text: &str) -> String {
        format!(
            r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
output_topic = "{output}"
dead_letter_topic = "{dead_letters}"
[kafka.consumer]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
"fetch.wait.max.ms" = "500"
"fetch.max.bytes" = "1048576"
"max.partition.fetch.bytes" = "262144"
"queued.max.messages.kbytes" = "4096"
[streams.danmu]
topic = "{danmu}"
[streams.text]
topic = "{text}"
[batch]
max_records = 500
max_wait = "50ms"
[window]
width = "20s"
slide = "5s"
out_of_orderness = "2s"
[redis]
url = "{url}"
cluster = {cluster}
key_prefix = "{prefix}"
ttl = "1h"
[retry]
initial_backoff = "50ms"
max_backoff = "500ms"
give_up_after = "4m"
[ownership]
renew_every = "500ms"
lease = "5s"
"#,
            group = self.group,
            output = self.output,
            dead_letters = self.dead_letters,
            url = redis.url,
            cluster = redis.cluster,
            prefix = self.prefix,
        )
    }
}

/// Committed progress of a group over both topics.
async fn progress(brokers: &str, group: &str, danmu: &str, text: &str) -> Option<i64> {
    let d = committed_sum(brokers, group, danmu, PARTITIONS).await?;
    let t = committed_sum(brokers, group, text, PARTITIONS).await?;
    Some(d + t)
}

/// Waits until `at_least` records are committed, checking twice a second (each check is two
/// new clients of the broker) for at most 3 minutes: a broker restarted from SQLite while four
/// instances rejoin may stall the group for a while.
async fn wait_progress(brokers: &str, run: &Run, danmu: &str, text: &str, at_least: i64) {
    let what = format!("{at_least} records committed");
    let (every, deadline) = (Duration::from_millis(500), Duration::from_secs(180));
    eventually_every(&what, every, deadline, || async {
        progress(brokers, &run.group, danmu, text)
            .await
            .is_some_and(|p| p >= at_least)
    })
    .await;
}

/// Prints the end of every instance's log when the test fails, before the directory goes.
struct LogsOnFailure<'a>(&'a Path);

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.0) else {
            return;
        };
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-logs");
        let _ = std::fs::create_dir_all(&keep);
        eprintln!("whole logs copied to {}", keep.display());
        for path in entries.flatten().map(|e| e.path()) {
            if path.extension().is_some_and(|e| e == "log") {
                let _ = std::fs::copy(&path, keep.join(path.file_name().unwrap()));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("--- {} (last 25 lines)", path.display());
                for line in &lines[lines.len().saturating_sub(25)..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Starts an instance logging to `log`; it dies with the thread that started it (a runtime
/// worker of the test), so a failing test leaves no instance behind.
fn spawn_instance(config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(bin())
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start trendstream")
}

/// `kill -9`, then the same instance started again, logging to `log`.
fn kill_and_restart(mut child: Child, config: &Path, log: &Path) -> Child {
    child.kill().unwrap();
    child.wait().unwrap();
    spawn_instance(config, log)
}

async fn chaos(cluster: bool, crashes: Crashes) {
    let dir = tempfile::tempdir().unwrap();
    let tansu_port = free_port();
    let db = dir.path().join("broker.db");
    let (brokers, tansu_pid) = start_tansu(tansu_port, Some(&db));
    let redis = start_redis_for(dir.path(), cluster);

    let (danmu, text) = (unique("danmu"), unique("text"));
    let (clean, chaotic) = (Run::new(), Run::new());
    for topic in [&danmu, &text] {
        create_topic(&brokers, topic, PARTITIONS).await;
    }
    for run in [&clean, &chaotic] {
        create_topic(&brokers, &run.output, 3).await;
        create_topic(&brokers, &run.dead_letters, 1).await;
    }

    // The data set: 200k records over 300 rooms and 5 sources, 400 s of event time.
    generate_into(
        &brokers,
        &danmu,
        &text,
        RECORDS,
        &[
            "--rooms",
            "300",
            "--text-share",
            "0.1",
            "--bad-every",
            "2000",
            "--step-ms",
            "2",
        ],
    );
    let total = RECORDS as i64;

    // The reference: one instance, undisturbed.
    let config =
        trendstream::config::Config::from_toml(&clean.toml(&brokers, &redis, &danmu, &text))
            .unwrap();
    let reference = start(config);
    wait_progress(&brokers, &clean, &danmu, &text, total).await;
    reference.stop().await.expect("clean run stops cleanly");

    if let Crashes::InProcess = crashes {
        // Instances die mid-batch (their task is dropped at whatever it was awaiting); others
        // take over, while Redis restarts.
        let config =
            trendstream::config::Config::from_toml(&chaotic.toml(&brokers, &redis, &danmu, &text))
                .unwrap();
        let first = start(config.clone());
        let second = start(config.clone());
        wait_progress(&brokers, &chaotic, &danmu, &text, total / 5).await;
        first.abort().await;
        wait_progress(&brokers, &chaotic, &danmu, &text, total * 2 / 5).await;
        (redis.restart)();
        let third = start(config.clone());
        wait_progress(&brokers, &chaotic, &danmu, &text, total * 3 / 5).await;
        second.abort().await;
        wait_progress(&brokers, &chaotic, &danmu, &text, total).await;
        third.stop().await.expect("the last instance stops cleanly");
    } else {
        processes(
            &dir, &brokers, &redis, &chaotic, &danmu, &text, tansu_port, tansu_pid, &db,
        )
        .await;
    }
    compare(&dir, &brokers, &redis, &clean, &chaotic).await;
}

/// Three instances as processes: `kill -9`ed and restarted at random points, one added and
/// one removed; Redis restarted, then the broker. `CHAOS_SEED` repeats a run's points.
#[allow(clippy::too_many_arguments)]
async fn processes(
    dir: &tempfile::TempDir,
    brokers: &str,
    redis: &Redis,
    chaotic: &Run,
    danmu: &str,
    text: &str,
    tansu_port: u16,
    tansu_pid: u32,
    db: &Path,
) {
    use rand::{Rng, SeedableRng};
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("chaos points from CHAOS_SEED={seed}");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    // Seven events, each at a random point of its own stretch of the run.
    let mut at = (0..7).map(|i| {
        let stretch = RECORDS as f64 / 8.0;
        let point = stretch * (i as f64 + 0.5 + rng.random::<f64>());
        point as i64
    });
    let mut next_point = move || at.next().expect("seven points");
    let _logs = LogsOnFailure(dir.path());
    let started = std::time::Instant::now();
    let event = |what: &str| eprintln!("{:>6.1?} {what}", started.elapsed());

    let config_file = dir.path().join("chaos.toml");
    std::fs::write(&config_file, chaotic.toml(brokers, redis, danmu, text)).unwrap();
    let log = |name: &str| dir.path().join(format!("{name}.log"));
    let wait = |at_least| wait_progress(brokers, chaotic, danmu, text, at_least);
    let a = spawn_instance(&config_file, &log("a1"));
    let b = spawn_instance(&config_file, &log("b"));
    let c = spawn_instance(&config_file, &log("c1"));

    wait(next_point()).await;
    event("kill -9 a");
    let a = kill_and_restart(a, &config_file, &log("a2"));

    wait(next_point()).await;
    event("add d");
    let d = spawn_instance(&config_file, &log("d"));

    wait(next_point()).await;
    event("restart Redis");
    (redis.restart)();

    wait(next_point()).await;
    event("stop b");
    assert!(terminate(b).success(), "a removed instance stops cleanly");

    wait(next_point()).await;
    event("restart the broker");
    kill(tansu_pid);
    // The new broker lives as long as the test process: the comparison reads from it.
    start_tansu(tansu_port, Some(db));

    wait(next_point()).await;
    event("kill -9 c");
    let c = kill_and_restart(c, &config_file, &log("c2"));

    wait(next_point()).await;
    event("kill -9 c again");
    let c = kill_and_restart(c, &config_file, &log("c3"));

    wait(RECORDS as i64).await;
    event("all records committed");
    for instance in [a, c, d] {
        assert!(terminate(instance).success(), "instances stop cleanly");
    }
}

/// The chaos run's outputs equal the clean run's.
async fn compare(
    dir: &tempfile::TempDir,
    brokers: &str,
    redis: &Redis,
    clean: &Run,
    chaotic: &Run,
) {
    let problems = differences(brokers, redis, clean, chaotic).await;
    assert!(
        problems.is_empty(),
        "{}; logs in {}",
        problems.join("; "),
        dir.path().display()
    );
}

/// How the chaos run's outputs differ from the clean run's (nothing when they are equal):
/// window records, leaderboards and dead letters.
async fn differences(brokers: &str, redis: &Redis, clean: &Run, chaotic: &Run) -> Vec<String> {
    let mut problems = Vec::new();

    // Window records: every window of the clean run, and nothing else; re-emitted ones are
    // identical to the first.
    let expected = windows(brokers, &clean.output).await;
    let got = windows(brokers, &chaotic.output).await;
    assert!(
        expected.len() > 1_000,
        "{} windows in the clean run",
        expected.len()
    );
    let differing: Vec<&String> = expected
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .chain(got.keys().filter(|k| !expected.contains_key(*k)))
        .collect();
    if let Some(first) = differing.first() {
        problems.push(format!(
            "{} of {} windows differ, e.g. {first}: expected {}, got {}",
            differing.len(),
            expected.len(),
            expected
                .get(*first)
                .map_or("none".into(), |v| v["messages"].to_string()),
            got.get(*first)
                .map_or("none".into(), |v| v["messages"].to_string()),
        ));
    }

    // Leaderboards: each group's latest window's terms, in both runs.
    let mut latest: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for w in expected.values() {
        let id = (
            w["stream"].as_str().unwrap().to_owned(),
            w["group"].as_str().unwrap().to_owned(),
        );
        let slot = latest.entry(id).or_insert(w);
        if w["window_end"].as_i64() > slot["window_end"].as_i64() {
            *slot = w;
        }
    }
    let prefixes = [clean.prefix.as_str(), chaotic.prefix.as_str()];
    let boards = if redis.cluster {
        let nodes: Vec<&str> = redis.url.split(',').collect();
        let client = redis::cluster::ClusterClient::new(nodes).unwrap();
        let mut conn = client.get_async_connection().await.unwrap();
        leaderboard_differences(&mut conn, &latest, &prefixes).await
    } else {
        leaderboard_differences(
            &mut crate::common::redis(&redis.url).await,
            &latest,
            &prefixes,
        )
        .await
    };
    problems.extend(boards);

    // Dead letters: the same source records in both runs.
    let (got, want) = (
        dead_letter_sources(brokers, &chaotic.dead_letters).await,
        dead_letter_sources(brokers, &clean.dead_letters).await,
    );
    if got != want {
        problems.push(format!(
            "dead letters: {} expected, {} found, missing {:?}",
            want.len(),
            got.len(),
            want.difference(&got).next()
        ));
    }
    problems
}

/// The window records of a topic by key; a key seen twice must carry the same value.
async fn windows(brokers: &str, topic: &str) -> BTreeMap<String, Value> {
    let records = read_topic(brokers, topic, 1, Duration::from_secs(3)).await;
    let mut out = BTreeMap::new();
    for m in records {
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        let value: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        if let Some(before) = out.insert(key.clone(), value.clone()) {
            assert_eq!(
                before, value,
                "window {key} emitted twice with different content"
            );
        }
    }
    out
}

async fn dead_letter_sources(brokers: &str, topic: &str) -> std::collections::BTreeSet<String> {
    read_topic(brokers, topic, 1, Duration::from_secs(2))
        .await
        .iter()
        .map(|m| {
            format!(
                "{}/{}/{}",
                header(m, "trendstream.source.topic").unwrap(),
                header(m, "trendstream.source.partition").unwrap(),
                header(m, "trendstream.source.offset").unwrap()
            )
        })
        .collect()
}

/// Groups whose leaderboard does not hold the top terms of its latest window, under every
/// prefix.
async fn leaderboard_differences<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    latest: &BTreeMap<(String, String), &Value>,
    prefixes: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    for ((stream, group), w) in latest {
        let mut want: Vec<(String, u64)> = w["top_terms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_u64().unwrap()))
            .collect();
        want.sort();
        for prefix in prefixes {
            let key = format!("{prefix}hot:{stream}:{group}");
            let mut board: Vec<(String, u64)> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(conn)
                .await
                .unwrap();
            board.sort();
            if board != want {
                problems.push(format!("leaderboard {key}: {board:?}, expected {want:?}"));
            }
        }
    }
    problems
}
