//! End-to-end benchmark, with the ceilings it is judged against measured in the same run.
//!
//! A local tansu broker and redis-server; danmu and posts preloaded by `trendstream generate`,
//! each stream twice: in large uncompressed batches (`generate`'s defaults, a fast producer's)
//! and in small lz4 batches (`linger.ms` 5). The pipeline and the Python job read the first.
//! Then, for each stream:
//! - **raw consume**: a plain consumer with trendstream's settings reads every record, nothing
//!   else (the broker and librdkafka's ceiling), of each layout; the first is the ceiling the
//!   pipeline's ratio is taken against, the highest;
//! - **segmentation only**: the same texts through the segmenter alone, on one core;
//! - **trendstream**: `trendstream run` as a process, from start until the group's committed
//!   offsets cover every record: records/s (steady, from the first commit seen to the last; and
//!   from start, group join included), MB/s of values, CPU seconds and peak RSS (of that
//!   process), and in the steady part the cores it kept busy and how busy the whole machine
//!   was (the broker and Redis share it);
//! - **read and write only**: the raw consume of the first layout again, while another thread
//!   writes the window records the pipeline wrote (read back untimed) to a new topic with
//!   trendstream's producer settings: the I/O any pipeline with these results must do, without
//!   extraction, windows, Redis or commits (a ceiling for it), and the machine's CPU time a
//!   record it took, from which the bound of the cores follows (with segmentation);
//! - with `--python`, the straightforward Python job (`bench/baseline.py`) on the same topic,
//!   for at most `--python-seconds` (default 60): its records/s from its committed offsets.
//!
//! `cargo bench --bench e2e -- [DANMU] [POSTS] [PARTITIONS]` (defaults 1000000 200000 4),
//! `--instances=N` (N processes in one group), `--rooms=N` (live rooms of the danmu, default
//! 10000), `--vocabulary=N` (one or two made-up words a record, drawn from N, so the distinct
//! terms grow with the run; default 0, none), `--python` (needs the packages of
//! `bench/requirements.txt` for `python3`, or `PYTHON=path`), `--post-texts=FILE` (posts with
//! these texts, one a line, in turn: `scripts/real-text.sh` fetches real reviews),
//! `--json=FILE` (default `target/e2e.json`). Under `cargo test --all-targets` it makes a quick run of 2500 records.
//! `BENCH_RUN_BIN=path` runs the pipeline with another build's binary (the topics are written
//! by this build's `generate`).

// The benchmarks use only part of the integration-test harness.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/measure.rs"]
mod measure;

use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::*;
use measure::*;
use rdkafka::consumer::Consumer;
use rdkafka::Message;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_trendstream");

const T0: i64 = 1_763_780_000_000;

fn positional(i: usize, default: u64) -> u64 {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

impl Stream {
    /// The topic the pipeline and the Python job read: the first layout's.
    fn topic(&self) -> &str {
        &self.topics[0]
    }
}

/// How a topic's records are batched and compressed by the producer that wrote them.
struct Layout {
    name: &'static str,
    /// `trendstream generate`'s options for it.
    args: &'static [&'static str],
}

/// The layouts each stream is written in. The pipeline runs on the first, and its ratio is
/// taken against the raw consume of the first, the highest ceiling; the second's raw consume
/// is stated beside it.
const LAYOUTS: [Layout; 2] = [
    Layout {
        name: "large uncompressed batches (generate's defaults: linger.ms 20, 10,000 records)",
        args: &[],
    },
    Layout {
        name: "small lz4 batches (linger.ms 5)",
        args: &["--linger-ms", "5", "--compression", "lz4"],
    },
];

/// One stream, preloaded once in each of [`LAYOUTS`].
struct Stream {
    name: &'static str,
    /// A topic for each layout, in the order of [`LAYOUTS`].
    topics: Vec<String>,
    records: u64,
    value_bytes: u64,
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then a quick smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let (danmu, posts) = if full {
        (1_000_000, 200_000)
    } else {
        (2_000, 500)
    };
    let (danmu, posts) = (positional(0, danmu), positional(1, posts));
    let partitions = positional(2, 4) as i32;
    let instances: usize = flag("--instances")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let rooms: u32 = flag("--rooms")
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let vocabulary: u32 = flag("--vocabulary")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let python = flag("--python").is_some();
    // Real text for the posts (`scripts/real-text.sh` writes some), else made-up posts.
    let post_texts = flag("--post-texts");
    let texts_name = post_texts.as_deref().map_or("made up".to_owned(), |path| {
        let name = std::path::Path::new(path).file_name().unwrap_or_default();
        name.to_string_lossy().into_owned()
    });
    let python_seconds: u64 = flag("--python-seconds")
        .and_then(|n| n.parse().ok())
        .unwrap_or(60);
    let report_name = if full { "e2e" } else { "e2e-smoke" };
    let json_path = flag("--json")
        .unwrap_or_else(|| format!("{}/target/{report_name}.json", env!("CARGO_MANIFEST_DIR")));

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let base = config("[log]\nlevel = \"warn\"");
        let brokers = base.kafka().brokers.clone();
        let mut streams = Vec::new();
        for (name, count, share) in [("danmu", danmu, "0"), ("text", posts, "1")] {
            if count == 0 {
                continue;
            }
            let texts = post_texts.as_deref().filter(|_| name == "text");
            let mut topics = Vec::new();
            for layout in LAYOUTS {
                let topic = unique(name);
                create_topic(&brokers, &topic, partitions).await;
                let started = Instant::now();
                let mut generate = Command::new(BIN);
                generate
                    .args(["generate", "--brokers", &brokers, "--danmu-topic", &topic])
                    .args(layout.args)
                    .args(["--text-topic", &topic, "--rate", "0"])
                    .args(["--rooms", &rooms.to_string()])
                    .args(["--vocabulary", &vocabulary.to_string()])
                    .args(["--count", &count.to_string(), "--start-ms", &T0.to_string()])
                    .args(["--step-ms", "1", "--text-share", share]);
                if let Some(texts) = texts {
                    generate.args(["--post-texts", texts]);
                }
                let out = generate.output().expect("generate");
                assert!(
                    out.status.success(),
                    "generate failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                println!(
                    "preloaded {count} {name} records in {} in {:.1} s",
                    layout.name,
                    started.elapsed().as_secs_f64()
                );
                topics.push(topic);
            }
            streams.push(Stream {
                name,
                topics,
                records: count,
                value_bytes: 0,
            });
        }

        let mut results = Vec::new();
        for stream in &mut streams {
            let raws: Vec<f64> = (0..LAYOUTS.len())
                .map(|i| raw_consume(&brokers, stream, i, partitions))
                .collect();
            // The same records in every layout: their texts are read once, untimed.
            let mut texts = Vec::new();
            read_all(&brokers, stream, 0, partitions, |value| {
                if let Some(text) = serde_json::from_slice::<Value>(value)
                    .ok()
                    .and_then(|v| v["text"].as_str().map(str::to_owned))
                {
                    texts.push(text);
                }
            });
            let segment = segment_only(&texts);
            drop(texts);
            let (ours, output_topic) = trendstream_run(&base, stream, partitions, instances).await;
            // The window records it wrote, read back untimed, then written again while the
            // input is read: the reading and writing any pipeline with these results must do.
            let outputs = read_back(&brokers, &output_topic, partitions);
            let output_bytes: usize = outputs
                .iter()
                .map(|m| m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len))
                .sum();
            let (read_write_secs, read_write_busy) =
                read_and_write(&base, stream, partitions, &outputs).await;
            let output_records = outputs.len();
            drop(outputs);
            let py = if python {
                Some(python_run(&base, stream, partitions, python_seconds).await)
            } else {
                None
            };
            let per_s = |secs: f64| stream.records as f64 / secs;
            // The machine's CPU time a record took in reading and writing, and with it the
            // most any pipeline can do: the cores hold that and the segmentation of each
            // record, at least.
            let read_write_us =
                read_write_busy * cores() as f64 * read_write_secs * 1e6 / stream.records as f64;
            let bound = cores() as f64 * 1e6 / (read_write_us + 1e6 / segment);
            let mut row = json!({
                "stream": stream.name,
                "records": stream.records,
                "partitions": partitions,
                "instances": instances,
                "rooms": rooms,
                "vocabulary": vocabulary,
                "value_mb": stream.value_bytes as f64 / 1e6,
                "raw_consume_records_per_s": per_s(raws[0]),
                "raw_consume_small_lz4_records_per_s": per_s(raws[1]),
                "post_texts": texts_name,
                "segment_only_records_per_s": segment,
                "window_records": output_records,
                "window_record_mb": output_bytes as f64 / 1e6,
                "read_and_write_records_per_s": per_s(read_write_secs),
                "read_and_write_machine_us_per_record": read_write_us,
                "bound_records_per_s": bound,
                "trendstream": ours,
            });
            let ours_rate = ours["records_per_s"].as_f64().unwrap_or(0.0);
            row["of_raw_consume"] = json!(ours_rate / per_s(raws[0]));
            row["of_read_and_write"] = json!(ours_rate / per_s(read_write_secs));
            row["of_segment_only"] = json!(ours_rate / segment);
            if let Some(py) = py {
                let py_rate = py["records_per_s"].as_f64().unwrap_or(0.0);
                row["python"] = py;
                row["times_python"] = json!(ours_rate / py_rate);
            }
            print_row(&row);
            results.push(row);
        }
        let mixed = mixed(&results);
        let report = json!({
            "cores": cores(),
            "results": results,
            "mixed": mixed,
        });
        if let Some(dir) = std::path::Path::new(&json_path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&json_path, serde_json::to_string_pretty(&report).unwrap())
            .expect("write the JSON report");
        println!("report: {json_path}");
    });
}

/// Reads every record of the stream's topic in `layout` with trendstream's consumer settings
/// and does nothing with them (the ceiling): the seconds it took. Sets the stream's value bytes.
fn raw_consume(brokers: &str, stream: &mut Stream, layout: usize, partitions: i32) -> f64 {
    let mut bytes = 0u64;
    let secs = read_all(brokers, stream, layout, partitions, |v| {
        bytes += v.len() as u64;
    });
    stream.value_bytes = bytes;
    secs
}

/// Reads every record of the stream's topic in `layout`, each value through `each`: the
/// seconds it took.
fn read_all(
    brokers: &str,
    stream: &Stream,
    layout: usize,
    partitions: i32,
    mut each: impl FnMut(&[u8]),
) -> f64 {
    let topic = &stream.topics[layout];
    let consumer = from_the_beginning(brokers, topic, partitions);
    let started = Instant::now();
    let mut read = 0u64;
    let mut last_record = Instant::now();
    while read < stream.records {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            each(m.payload().unwrap_or_default());
            read += 1;
            last_record = Instant::now();
        }
        assert!(
            last_record.elapsed() < Duration::from_secs(30),
            "reading {topic}: {read} of {} records, then nothing for 30 s",
            stream.records
        );
    }
    started.elapsed().as_secs_f64()
}

/// A plain consumer (no group) of every partition of `topic`, from the beginning.
fn from_the_beginning(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> rdkafka::consumer::BaseConsumer {
    let consumer = reader(brokers, &[]);
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("offset");
    }
    consumer.assign(&assignment).expect("assign");
    consumer
}

/// Every record of `topic` (all there is: read until none follows for 3 s).
fn read_back(brokers: &str, topic: &str, partitions: i32) -> Vec<rdkafka::message::OwnedMessage> {
    let consumer = from_the_beginning(brokers, topic, partitions);
    let mut out = Vec::new();
    let mut last_record = Instant::now();
    while last_record.elapsed() < Duration::from_secs(3) {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            out.push(
                m.unwrap_or_else(|e| panic!("reading {topic}: {e}"))
                    .detach(),
            );
            last_record = Instant::now();
        }
    }
    out
}

/// Reads every record of the stream's topic as [`raw_consume`] does while another thread
/// writes `outputs` (the window records the pipeline wrote for the stream) to a new topic with
/// trendstream's producer settings, as fast as the broker takes them: the seconds until the
/// last record is read and every write acknowledged, and how busy the whole machine was
/// meanwhile (the broker's work included). This is what any pipeline that writes these results
/// must at least do, without extraction, windows, Redis or commits: a ceiling for it. (Reading
/// and writing on one thread, in turn, took three times as long on tansu.)
async fn read_and_write(
    base: &trendstream::config::Config,
    stream: &Stream,
    partitions: i32,
    outputs: &[rdkafka::message::OwnedMessage],
) -> (f64, f64) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use trendstream::sink::kafka::{send_queued, Queued};

    let topic = unique("rewrite");
    create_topic(&base.kafka().brokers, &topic, partitions).await;
    let producer: BaseProducer<Acks> = base
        .kafka()
        .producer_client()
        .create_with_context(Acks::default())
        .expect("producer");
    let runtime = tokio::runtime::Handle::current();
    let (started, ticks) = (Instant::now(), machine_ticks());
    std::thread::scope(|s| {
        s.spawn(|| {
            // While the queue is full, serve delivery reports for up to 1 ms and try again.
            // librdkafka gives a refused record back whole.
            #[allow(clippy::result_large_err)]
            let send = |p: &&BaseProducer<Acks>, record| p.send(record);
            let settle = async |p: &mut &BaseProducer<Acks>| {
                p.poll(Duration::from_millis(1));
                Ok::<_, std::convert::Infallible>(true)
            };
            for (i, m) in outputs.iter().enumerate() {
                let mut record =
                    BaseRecord::<[u8], [u8]>::to(&topic).payload(m.payload().unwrap_or_default());
                if let Some(key) = m.key() {
                    record = record.key(key);
                }
                let queued = runtime.block_on(send_queued(&mut &producer, send, settle, record));
                if let Ok(Queued::Failed(e, _)) = queued {
                    panic!("writing {topic}: {e}");
                }
                if i % 1024 == 0 {
                    producer.poll(Duration::ZERO);
                }
            }
            producer
                .flush(Duration::from_secs(120))
                .expect("every write acknowledged");
        });
        read_all(&base.kafka().brokers, stream, 0, partitions, |_| {});
    });
    let secs = started.elapsed().as_secs_f64();
    let busy = busy_share(ticks, machine_ticks());
    let acks = producer.context();
    assert_eq!(
        (acks.ok.load(Relaxed), acks.failed.load(Relaxed)),
        (outputs.len() as u64, 0),
        "writes to {topic} acknowledged and failed"
    );
    (secs, busy)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Counts a producer's acknowledged and failed writes.
#[derive(Default)]
struct Acks {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl rdkafka::ClientContext for Acks {}

impl rdkafka::producer::ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.ok
        } else {
            &self.failed
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// Records per second of segmentation alone (normalise, then the segmenter), on one core.
fn segment_only(texts: &[String]) -> f64 {
    let jieba = jieba_rs::Jieba::new();
    let mut normalised = String::new();
    let started = Instant::now();
    let mut words = 0usize;
    for text in texts {
        trendstream::extract::normalise_into(text, &mut normalised);
        words += jieba.cut(&normalised, true).len();
    }
    std::hint::black_box(words);
    texts.len() as f64 / started.elapsed().as_secs_f64()
}

/// A group's progress on a stream, as its committed offsets showed it.
struct Progress {
    /// When the first commit was seen, and how many records it covered.
    first: Option<(Instant, i64)>,
    /// Records committed at the end.
    done: i64,
    /// When the last look was made.
    end: Instant,
    /// CPU use at the first commit seen and at the end.
    cpu: Option<(Cpu, Cpu)>,
}

/// CPU use so far: the CPU seconds of the processes watched, and the machine's busy and
/// total clock ticks.
#[derive(Clone, Copy)]
struct Cpu {
    processes: f64,
    machine: (u64, u64),
}

impl Cpu {
    fn now(children: &[(Child, std::path::PathBuf)]) -> Cpu {
        Cpu {
            processes: children.iter().map(|(c, _)| cpu_seconds(c.id())).sum(),
            machine: machine_ticks(),
        }
    }
}

impl Progress {
    /// Records per second from the first commit seen to the end: start-up and the group join
    /// are left out (the 100 ms between looks blur it a little). `None` when the first commit
    /// seen already covered everything: a run too short for a steady rate.
    fn steady_rate(&self) -> Option<f64> {
        let (at, records) = self.first?;
        let secs = (self.end - at).as_secs_f64();
        (self.done > records && secs > 0.0).then(|| (self.done - records) as f64 / secs)
    }

    /// The rates of a run started at `started`: `records_per_s` is the steady rate, or the
    /// rate from start when there is no steady one (`rate_basis` says which).
    fn rates(&self, started: Instant) -> Value {
        let from_start = self.done as f64 / (self.end - started).as_secs_f64();
        let steady = self.steady_rate();
        // While input waited: from the first commit seen to the last.
        let busy = match (steady, self.first, self.cpu) {
            (Some(_), Some((at, _)), Some((a, b))) => {
                let cores = (b.processes - a.processes) / (self.end - at).as_secs_f64();
                Some((cores, busy_share(a.machine, b.machine)))
            }
            _ => None,
        };
        json!({
            "records_per_s": steady.unwrap_or(from_start),
            "rate_basis": if steady.is_some() { "steady" } else { "from start" },
            "records_per_s_steady": steady,
            "records_per_s_from_start": from_start,
            "cores_busy_steady": busy.map(|(cores, _)| cores),
            "machine_busy_steady": busy.map(|(_, machine)| machine),
        })
    }
}

/// Watches `group` commit `stream` until every record is committed or `until` passes, and the
/// CPU `children` use meanwhile. Fails, with the end of its log, when one of `children` (each
/// with the file its stderr goes to) exits first.
async fn all_committed(
    brokers: &str,
    group: &str,
    stream: &Stream,
    partitions: i32,
    until: Instant,
    children: &mut [(Child, std::path::PathBuf)],
) -> Progress {
    let (mut first, mut cpu_first) = (None, None);
    loop {
        for (child, log) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(&*log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(10).collect();
                panic!(
                    "{} exited ({status}) before every record was committed; the end of its log:\n{}",
                    log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        let done: i64 = committed(brokers, group, stream.topic(), partitions)
            .await
            .iter()
            .flatten()
            .sum();
        let now = Instant::now();
        if done > 0 && first.is_none() {
            first = Some((now, done));
            cpu_first = Some(Cpu::now(children));
        }
        if done as u64 >= stream.records || now >= until {
            return Progress {
                first,
                done,
                end: now,
                cpu: cpu_first.map(|at_first| (at_first, Cpu::now(children))),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `trendstream run` processes on the stream alone until every record is committed: their
/// report, and the topic they wrote window records to.
async fn trendstream_run(
    base: &trendstream::config::Config,
    stream: &Stream,
    partitions: i32,
    instances: usize,
) -> (Value, String) {
    let mut raw = base.to_raw();
    for (name, s) in raw.streams.iter_mut() {
        s.enabled = name == stream.name;
        if s.enabled {
            s.topic = stream.topic().to_owned();
        }
    }
    raw.kafka.group_id = unique("bench");
    raw.kafka.output_topic = unique("out");
    raw.kafka.dead_letter_topic = unique("dlq");
    let config = raw.validate().expect("the bench configuration is valid");
    create_topic(
        &config.kafka().brokers,
        &config.kafka().output_topic,
        partitions,
    )
    .await;
    create_topic(
        &config.kafka().brokers,
        &config.kafka().dead_letter_topic,
        1,
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("trendstream.toml");
    // Only what differs from the defaults, so that an older build (`BENCH_RUN_BIN`) that does not
    // know a newer key still reads it.
    let defaults = trendstream::config::Config::from_toml("").expect("the defaults are valid");
    let toml = changed_from(&config.to_toml(), &defaults.to_toml());
    std::fs::write(&file, toml).expect("config file");

    let started = Instant::now();
    let mut children: Vec<(Child, std::path::PathBuf)> = (0..instances)
        .map(|i| {
            let log = dir.path().join(format!("instance-{i}.log"));
            let child = Command::new(run_bin(BIN))
                .args(["run", "--config"])
                .arg(&file)
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .expect("start trendstream");
            (child, log)
        })
        .collect();
    let progress = all_committed(
        &config.kafka().brokers,
        &config.kafka().group_id,
        stream,
        partitions,
        started + Duration::from_secs(3600),
        &mut children,
    )
    .await;
    let secs = started.elapsed().as_secs_f64();
    let mut report = progress.rates(started);
    let (mut cpu, mut rss) = (0.0, 0.0f64);
    for (child, _) in &children {
        let (c, r) = usage(child.id());
        cpu += c;
        rss = rss.max(r);
    }
    for (child, _) in children {
        terminate(child);
    }
    let rate = report["records_per_s"].as_f64().unwrap_or(0.0);
    report["seconds"] = json!(secs);
    report["mb_per_s"] = json!(stream.value_bytes as f64 / stream.records as f64 * rate / 1e6);
    report["cpu_seconds"] = json!(cpu);
    report["peak_rss_mib"] = json!(rss);
    (report, config.kafka().output_topic.clone())
}

/// The Python baseline on the stream until every record is committed or `seconds` pass.
async fn python_run(
    base: &trendstream::config::Config,
    stream: &Stream,
    partitions: i32,
    seconds: u64,
) -> Value {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = format!("{}/bench/baseline.py", env!("CARGO_MANIFEST_DIR"));
    let group = unique("python");
    let output = unique("py-out");
    create_topic(&base.kafka().brokers, &output, partitions).await;
    // The baseline reads two topics; the other one is empty here.
    let other = unique("empty");
    create_topic(&base.kafka().brokers, &other, 1).await;
    let (danmu, text) = if stream.name == "danmu" {
        (stream.topic(), other.as_str())
    } else {
        (other.as_str(), stream.topic())
    };
    let started = Instant::now();
    let log = std::env::temp_dir().join(format!("{group}.log"));
    let child = Command::new(&python)
        .arg(&script)
        .args([
            &base.kafka().brokers,
            &group,
            danmu,
            text,
            &output,
            &base.redis().url,
        ])
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start the Python baseline");
    let until = started + Duration::from_secs(seconds);
    let mut children = [(child, log)];
    let progress = all_committed(
        &base.kafka().brokers,
        &group,
        stream,
        partitions,
        until,
        &mut children,
    )
    .await;
    let secs = started.elapsed().as_secs_f64();
    let [(child, log)] = children;
    let (cpu, rss) = usage(child.id());
    terminate(child);
    let _ = std::fs::remove_file(log);
    let mut report = progress.rates(started);
    report["seconds"] = json!(secs);
    report["records"] = json!(progress.done);
    report["finished"] = json!(progress.done as u64 >= stream.records);
    report["cpu_seconds"] = json!(cpu);
    report["peak_rss_mib"] = json!(rss);
    report
}

/// The entries of the TOML `config` whose values differ from those of `defaults`, table by
/// table.
fn changed_from(config: &str, defaults: &str) -> String {
    fn diff(a: &toml::Table, b: &toml::Table) -> toml::Table {
        let mut out = toml::Table::new();
        for (key, value) in a {
            match (value, b.get(key)) {
                (toml::Value::Table(at), Some(toml::Value::Table(bt))) => {
                    let inner = diff(at, bt);
                    if !inner.is_empty() {
                        out.insert(key.clone(), toml::Value::Table(inner));
                    }
                }
                (value, Some(default)) if value == default => {}
                (value, _) => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        out
    }
    let config: toml::Table = config.parse().expect("config TOML");
    let defaults: toml::Table = defaults.parse().expect("defaults TOML");
    toml::to_string(&diff(&config, &defaults)).expect("TOML")
}

/// Both streams as one data set: records/s over the time each took at its own rate, for
/// trendstream and (where it ran) Python, and their ratio; printed, and `null` unless both
/// streams ran.
fn mixed(results: &[Value]) -> Value {
    let rate = |row: &Value, who: &str| row[who]["records_per_s"].as_f64().filter(|r| *r > 0.0);
    let over_both = |who: &str| -> Option<f64> {
        let mut records = 0.0;
        let mut seconds = 0.0;
        for row in results {
            let n = row["records"].as_f64()?;
            records += n;
            seconds += n / rate(row, who)?;
        }
        Some(records / seconds)
    };
    if results.len() < 2 {
        return Value::Null;
    }
    let ours = over_both("trendstream");
    let python = over_both("python");
    let times = ours.zip(python).map(|(o, p)| o / p);
    if let (Some(o), Some(p), Some(x)) = (ours, python, times) {
        println!(
            " mixed: both streams as one data set: trendstream {o:.0} records/s, python {p:.0}: \
             {x:.1}×"
        );
    }
    json!({"trendstream_records_per_s": ours, "python_records_per_s": python, "times_python": times})
}

fn print_row(row: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let t = &row["trendstream"];
    println!(
        "{:>6}: {} records ({:.1} MB): trendstream {:.0} records/s {}, {:.0} from start \
         ({:.1} MB/s, {:.1} CPU s, peak RSS {:.0} MiB); raw consume {:.0}/s ({:.0} %) \
         (of small lz4 batches {:.0}/s); segmentation only {:.0}/s ({:.0} %)",
        row["stream"].as_str().unwrap_or(""),
        row["records"],
        f(&row["value_mb"]),
        f(&t["records_per_s"]),
        t["rate_basis"].as_str().unwrap_or(""),
        f(&t["records_per_s_from_start"]),
        f(&t["mb_per_s"]),
        f(&t["cpu_seconds"]),
        f(&t["peak_rss_mib"]),
        f(&row["raw_consume_records_per_s"]),
        100.0 * f(&row["of_raw_consume"]),
        f(&row["raw_consume_small_lz4_records_per_s"]),
        f(&row["segment_only_records_per_s"]),
        100.0 * f(&row["of_segment_only"]),
    );
    println!(
        "        read and write only ({} window records, {:.1} MB, written while reading): \
         {:.0}/s ({:.0} % of raw consume): trendstream is {:.0} % of it",
        row["window_records"],
        f(&row["window_record_mb"]),
        f(&row["read_and_write_records_per_s"]),
        100.0 * f(&row["read_and_write_records_per_s"]) / f(&row["raw_consume_records_per_s"]),
        100.0 * f(&row["of_read_and_write"]),
    );
    println!(
        "        the machine spent {:.2} µs a record reading and writing: with segmentation, \
         the cores allow at most {:.0}/s ({:.0} % of raw consume, {:.0} % of segmentation × \
         cores)",
        f(&row["read_and_write_machine_us_per_record"]),
        f(&row["bound_records_per_s"]),
        100.0 * f(&row["bound_records_per_s"]) / f(&row["raw_consume_records_per_s"]),
        100.0 * f(&row["bound_records_per_s"])
            / (f(&row["segment_only_records_per_s"]) * cores() as f64),
    );
    if let (Some(cores), Some(machine)) = (
        t["cores_busy_steady"].as_f64(),
        t["machine_busy_steady"].as_f64(),
    ) {
        println!(
            "        while input waited (steady): trendstream busy {cores:.2} cores, the \
             machine (broker, Redis and all) {:.0} % busy",
            100.0 * machine
        );
    }
    if let Some(py) = row.get("python") {
        println!(
            "        python baseline {:.0} records/s {} ({} records in {:.0} s, {:.1} CPU s, \
             peak RSS {:.0} MiB): trendstream is {:.1}×",
            f(&py["records_per_s"]),
            py["rate_basis"].as_str().unwrap_or(""),
            py["records"],
            f(&py["seconds"]),
            f(&py["cpu_seconds"]),
            f(&py["peak_rss_mib"]),
            f(&row["times_python"]),
        );
    }
}
