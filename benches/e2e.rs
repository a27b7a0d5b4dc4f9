//! End-to-end benchmark: a local tansu broker and redis-server, N records preloaded by
//! `trendstream generate`, then trendstream (in this process) from the first record until the
//! group's committed offsets cover every record. Prints records/s, MB/s of values, CPU seconds
//! and peak RSS of this process.
//!
//! `cargo bench --bench e2e -- [DANMU] [POSTS] [PARTITIONS]` (defaults 1000000 200000 4);
//! with `--instances=N`, N `trendstream run` processes in one group instead (records/s only).
//! Under `cargo test --all-targets` it makes a quick run of 2500 records.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_trendstream");

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Peak resident set size of this process, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024.0
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then a quick smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let (danmu, posts) = if full {
        (1_000_000, 200_000)
    } else {
        (2_000, 500)
    };
    let (danmu, posts, partitions) = (arg(0, danmu), arg(1, posts), arg(2, 4) as i32);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let config = config("[log]\nlevel = \"warn\"");
        create_topics(&config, partitions).await;
        let brokers = config.kafka.brokers.clone();
        let danmu_topic = config.streams["danmu"].topic.clone();
        let text_topic = config.streams["text"].topic.clone();

        // Preload: event time advances 1 ms a record, so windows close all along the run.
        let total = danmu + posts;
        let started = Instant::now();
        let status = std::process::Command::new(BIN)
            .args(["generate", "--brokers", &brokers, "--danmu-topic", &danmu_topic])
            .args(["--text-topic", &text_topic, "--rate", "0", "--rooms", "10000"])
            .args(["--count", &total.to_string(), "--start-ms", "1763780000000", "--step-ms", "1"])
            .args(["--text-share", &(posts as f64 / total as f64).to_string()])
            .stdout(std::process::Stdio::piped())
            .output()
            .expect("generate");
        assert!(status.status.success(), "generate failed");
        let report = String::from_utf8_lossy(&status.stdout).trim().to_owned();
        println!("preloaded {report} in {:.1} s", started.elapsed().as_secs_f64());
        let (want_danmu, want_posts) = parse_report(&report);

        let group = config.kafka.group_id.clone();
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        let done = {
            let (brokers, group) = (brokers.clone(), group.clone());
            let (danmu_topic, text_topic) = (danmu_topic.clone(), text_topic.clone());
            async move {
                loop {
                    let d: i64 = committed(&brokers, &group, &danmu_topic, partitions).await.iter().flatten().sum();
                    let p: i64 = committed(&brokers, &group, &text_topic, partitions).await.iter().flatten().sum();
                    if d as u64 >= want_danmu && p as u64 >= want_posts {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let instances: usize = std::env::args()
            .find_map(|a| a.strip_prefix("--instances=").and_then(|n| n.parse().ok()))
            .unwrap_or(0);
        if instances == 0 {
            trendstream::run::run(config, done).await.expect("run");
        } else {
            let dir = tempfile::tempdir().expect("temp dir");
            let file = dir.path().join("trendstream.toml");
            std::fs::write(&file, config.to_toml()).expect("config file");
            let children: Vec<std::process::Child> = (0..instances)
                .map(|_| {
                    std::process::Command::new(BIN)
                        .args(["run", "--config"])
                        .arg(&file)
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .expect("start trendstream")
                })
                .collect();
            done.await;
            for mut child in children {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let _ = child.wait();
            }
            println!("{instances} instances (CPU and RSS below are this process's only)");
        }
        let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
        let bytes = approx_value_bytes(want_danmu, want_posts);
        println!(
            "e2e: {} records in {secs:.2} s = {:.0} records/s, {:.1} MB/s of values, {cpu:.1} CPU s, peak RSS {:.0} MiB",
            want_danmu + want_posts,
            (want_danmu + want_posts) as f64 / secs,
            bytes / secs / 1e6,
            peak_rss_mib()
        );
    });
}

fn parse_report(report: &str) -> (u64, u64) {
    let get = |key: &str| {
        report
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("danmu="), get("posts="))
}

/// Value bytes, from the generator's own average sizes at the same seed.
fn approx_value_bytes(danmu: u64, posts: u64) -> f64 {
    let mut g = trendstream::generate::TrafficGen::new(1, 10_000);
    let d: usize = (0..1000).map(|_| g.danmu(0).1.len()).sum();
    let p: usize = (0..1000).map(|_| g.post(0).1.len()).sum();
    (danmu as f64 * d as f64 + posts as f64 * p as f64) / 1000.0
}
