//! Micro-benchmarks of the hot path on realistic text: decode, normalise, segment, entities,
//! the whole extraction, and the window update — for short danmu and long posts —; windows
//! closing over 10,000 sparse rooms (evenly, and Zipf-skewed as in the e2e bench); and the
//! engine on one partition's batch, with one worker and with one per core.
//!
//! `cargo bench --bench hot_path`; throughput is reported per record.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trendstream::decode::decode;
use trendstream::engine::{Engine, Input};
use trendstream::extract::{
    normalise_into, Category, EntityFinder, ExtractOptions, Extractor, Scratch,
};
use trendstream::generate::TrafficGen;
use trendstream::window::{Budget, PartitionWindows, WindowSpec};

const N: usize = 1_000;
/// Records of the sparse window bench: 100 s of event time, a record a millisecond.
const SPARSE_RECORDS: usize = 100_000;

struct Corpus {
    name: &'static str,
    values: Vec<String>,
    texts: Vec<String>,
}

fn corpora() -> Vec<Corpus> {
    let mut g = TrafficGen::new(42, 1_000);
    let danmu: Vec<String> = (0..N)
        .map(|i| g.danmu(1_763_780_000_000 + i as i64).1)
        .collect();
    let posts: Vec<String> = (0..N)
        .map(|i| g.post(1_763_780_000_000 + i as i64).1)
        .collect();
    let text_of = |v: &String| -> String {
        let parsed: serde_json::Value = serde_json::from_str(v).expect("JSON");
        parsed["text"].as_str().expect("text").to_owned()
    };
    vec![
        Corpus {
            name: "danmu",
            texts: danmu.iter().map(text_of).collect(),
            values: danmu,
        },
        Corpus {
            name: "posts",
            texts: posts.iter().map(text_of).collect(),
            values: posts,
        },
    ]
}

/// A record's extracted items.
type Items = Vec<(Category, String)>;

/// `records` records, the i-th with `items[i % len]`, of group `group(i)` at `time(i)` (ms),
/// through one partition's windows (60 s / 10 s, 5 s out of order, `budget`); how many windows
/// closed.
fn window<'a>(
    budget: Budget,
    items: &[Items],
    records: usize,
    group: impl Fn(usize) -> &'a str,
    time: impl Fn(usize) -> i64,
) -> usize {
    let spec = WindowSpec {
        width: 60_000,
        slide: 10_000,
        out_of_orderness: 5_000,
    };
    let mut windows = PartitionWindows::new(0, spec, 20, budget);
    let mut closed = Vec::new();
    for i in 0..records {
        let record = &items[i % items.len()];
        windows.record(
            group(i),
            time(i),
            i as i64,
            |counts| {
                for (c, item) in record {
                    counts.add(*c, item);
                }
            },
            &mut closed,
        );
    }
    closed.len()
}

fn hot_path(c: &mut Criterion) {
    let extractor = Extractor::new(&ExtractOptions::default());
    let entities = EntityFinder::new();
    for corpus in corpora() {
        let normalised: Vec<String> = corpus
            .texts
            .iter()
            .map(|t| trendstream::extract::normalise(t))
            .collect();
        let mut group = c.benchmark_group(corpus.name);
        group.throughput(Throughput::Elements(N as u64));

        group.bench_function("decode", |b| {
            b.iter(|| {
                for v in &corpus.values {
                    black_box(decode(Some(v.as_bytes()), "room_id", None, 65_536).ok());
                }
            })
        });
        group.bench_function("normalise", |b| {
            let mut out = String::new();
            b.iter(|| {
                for t in &corpus.texts {
                    normalise_into(t, &mut out);
                    black_box(&out);
                }
            })
        });
        group.bench_function("entities", |b| {
            b.iter(|| {
                for t in &normalised {
                    entities.find(t, |e| {
                        black_box(e);
                    });
                }
            })
        });
        group.bench_function("segment", |b| {
            let jieba = jieba_rs::Jieba::new();
            b.iter(|| {
                for t in &normalised {
                    black_box(jieba.cut(t, true));
                }
            })
        });
        group.bench_function("extract", |b| {
            let mut scratch = Scratch::default();
            b.iter(|| {
                for t in &corpus.texts {
                    extractor.extract(t, &mut scratch, |c, item| {
                        black_box((c, item));
                    });
                }
            })
        });
        let items: Vec<Items> = corpus
            .texts
            .iter()
            .map(|t| {
                let mut v = Vec::new();
                extractor.extract(t, &mut Scratch::default(), |c, i| v.push((c, i.to_owned())));
                v
            })
            .collect();
        let defaults = trendstream::config::Config::from_toml("").expect("the defaults are valid");
        let budget = Budget::of(&defaults);
        group.bench_function("window_update", |b| {
            let groups = ["r1", "r2", "r3", "r4"];
            b.iter(|| {
                black_box(window(
                    budget,
                    &items,
                    N,
                    |i| groups[i % 4],
                    |i| i as i64 * 50,
                ))
            })
        });
        // As in the e2e bench's danmu: 10,000 rooms with a few records each per slide, so about
        // one window closes per record and closing them is most of the work.
        group.throughput(Throughput::Elements(SPARSE_RECORDS as u64));
        group.bench_function("window_close_10k_rooms", |b| {
            let rooms: Vec<String> = (0..10_000).map(|r| format!("room{r}")).collect();
            let room = |i: usize| rooms[i * 7_919 % rooms.len()].as_str();
            b.iter(|| black_box(window(budget, &items, SPARSE_RECORDS, room, |i| i as i64)))
        });
        // Rooms drawn as in the e2e bench: Zipf-skewed, so a few rooms hold data in every pane
        // (and their merges are most of the work) and most rooms in one or two.
        group.bench_function("window_close_zipf_rooms", |b| {
            let mut traffic = TrafficGen::new(7, 10_000);
            let rooms: Vec<String> = (0..SPARSE_RECORDS)
                .map(|_| format!("r{}", traffic.room()))
                .collect();
            let room = |i: usize| rooms[i].as_str();
            b.iter(|| black_box(window(budget, &items, SPARSE_RECORDS, room, |i| i as i64)))
        });
        group.throughput(Throughput::Elements(N as u64));
        for workers in [1, 0] {
            let name = if workers == 1 {
                "engine_one_partition_1_worker"
            } else {
                "engine_one_partition_all_cores"
            };
            group.bench_function(name, |b| {
                let config = trendstream::config::Config::from_toml(&format!(
                    "[batch]\nworkers = {workers}"
                ))
                .expect("valid");
                // The default streams: danmu grouped by room, posts ("text") by source.
                let topic = if corpus.name == "danmu" {
                    "danmu"
                } else {
                    "text"
                };
                let extractor = Arc::new(Extractor::new(&ExtractOptions::default()));
                let inputs: Vec<Input<'_>> = corpus
                    .values
                    .iter()
                    .enumerate()
                    .map(|(offset, value)| Input {
                        topic,
                        partition: 0,
                        offset: offset as i64,
                        payload: Some(value.as_bytes()),
                        timestamp: Some(1_763_780_000_000),
                    })
                    .collect();
                let once = Engine::new(&config, Arc::clone(&extractor)).process(&inputs);
                assert_eq!(
                    (once.counts.records, once.counts.dead_letters),
                    (N as u64, 0),
                    "every record is windowed"
                );
                b.iter(|| {
                    let mut engine = Engine::new(&config, Arc::clone(&extractor));
                    black_box(engine.process(&inputs).counts)
                })
            });
        }
        group.finish();
    }
}

/// What the metrics cost a batch: the writer's updates for a batch of 5,000 danmu over two
/// partitions that closes 3,500 windows (0.7 a record, as in the e2e bench), and one scrape.
fn metrics(c: &mut Criterion) {
    use trendstream::metrics::{
        DeadLetterKind, Metrics, SinkLabel, StreamLabel, StreamPartition, SINKS,
    };
    const RECORDS: u64 = 5_000;
    const WINDOWS: usize = 3_500;
    let metrics = Metrics::default();
    metrics.start_at_zero(["danmu", "text"]);
    let partitions: Vec<StreamPartition> = (0..2)
        .map(|partition| StreamPartition {
            stream: "danmu".into(),
            topic: "danmu".into(),
            partition,
        })
        .collect();
    let mut group = c.benchmark_group("metrics");
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("one_batch_of_5000", |b| {
        b.iter(|| {
            metrics.batch_seconds.observe(0.02);
            for partition in &partitions {
                metrics.add_records(partition, RECORDS / 2, RECORDS * 45);
            }
            metrics.add_dead_letter(&DeadLetterKind {
                stream: "danmu".into(),
                kind: "not_json",
            });
            let label = StreamLabel {
                stream: "danmu".into(),
            };
            let delay = metrics.end_to_end_delay_seconds.get_or_create_owned(&label);
            for window in 0..WINDOWS {
                delay.observe(black_box(window as f64 / 1000.0));
            }
            metrics
                .windows_closed
                .get_or_create(&label)
                .inc_by(WINDOWS as u64);
            for sink in SINKS {
                let sink = SinkLabel { sink };
                metrics
                    .sink_write_seconds
                    .get_or_create(&sink)
                    .observe(0.005);
            }
            metrics.commit_seconds.observe(0.001);
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("render", |b| b.iter(|| black_box(metrics.render().len())));
    group.finish();
}

criterion_group!(benches, hot_path, metrics);
criterion_main!(benches);
