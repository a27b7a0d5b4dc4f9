//! Metrics: the one list of what the process exports, and the engine's per-batch counts.
//!
//! Each line of the list below declares a metric once: its field, its type (a counter, gauge
//! or histogram, or a [`Family`] of them by labels), how it is made when that is not its
//! default, its name and its help text. From that list come [`Metrics`] (one field each) and
//! its registry, which [`Metrics::render`] encodes in the OpenMetrics text format (what
//! Prometheus scrapes; counters end in `_total`). Adding a metric is adding a line.
//!
//! Labels stay few and bounded: stream, topic and partition (as many as the input topics
//! have), dead-letter kind, sink. Group keys never become labels.
//!
//! Updates happen once per batch, per partition or per write, never per record, so what the
//! metrics cost does not grow with the record rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// An input partition, and the stream it feeds.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamPartition {
    pub stream: String,
    pub topic: String,
    pub partition: i32,
}

/// An input partition.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// A stream.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub stream: String,
}

/// A dead letter's stream and why it was dead-lettered ([`crate::decode::DecodeError::kind`]).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterKind {
    pub stream: String,
    pub kind: &'static str,
}

/// Where a write goes: one of [`SINKS`].
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: &'static str,
}

/// The sinks: `kafka` (window records and dead letters), `redis` (leaderboards) and
/// `checkpoint` (the partitions' checkpoints, in Redis).
pub const SINKS: [&str; 3] = ["kafka", "redis", "checkpoint"];

/// Durations from 1 ms to about 33 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Delays from 100 ms to about 55 min, doubling: an end-to-end delay is at least a slide.
fn delay_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 16))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Makes [`Metrics`] from the list below.
macro_rules! metrics {
    ($($field:ident: $type:ty $(= $make:expr)?, $name:literal, $help:literal;)*) => {
        /// Every metric of the process, registered once.
        pub struct Metrics {
            registry: Registry,
            /// Totals over the labelled series the summary shows.
            glance: Glance,
            $(#[doc = $help] pub $field: $type,)*
        }

        impl Metrics {
            /// The name of every series the metrics can export, as scraped: counters end in
            /// `_total`, histograms give `_bucket`, `_sum` and `_count`. (A labelled metric
            /// is rendered only once it has a series.)
            pub fn series_names() -> Vec<String> {
                let mut names = Vec::new();
                $(
                    let name = concat!("trendstream_", $name);
                    match <$type as TypedMetric>::TYPE {
                        MetricType::Counter => names.push(format!("{name}_total")),
                        MetricType::Histogram => names.extend(
                            ["_bucket", "_sum", "_count"].map(|suffix| format!("{name}{suffix}")),
                        ),
                        _ => names.push(name.to_owned()),
                    }
                )*
                names
            }
        }

        impl Default for Metrics {
            fn default() -> Self {
                let mut registry = Registry::with_prefix("trendstream");
                $(
                    let $field: $type = metrics!(@make $type $(, $make)?);
                    // The help text is printed with a full stop of its own.
                    registry.register($name, $help.trim_end_matches('.'), $field.clone());
                )*
                Metrics { registry, glance: Glance::default(), $($field,)* }
            }
        }
    };
    (@make $type:ty) => { <$type>::default() };
    (@make $type:ty, $make:expr) => { $make };
}

metrics! {
    batches: Counter, "batches",
        "Batches committed.";
    records: Family<StreamPartition, Counter>, "records",
        "Records processed (replays included).";
    input_bytes: Family<StreamPartition, Counter>, "input_bytes",
        "Bytes of record values processed (replays included).";
    dead_letters: Family<DeadLetterKind, Counter>, "dead_letters",
        "Records sent to the dead-letter topic, by why.";
    late_partly: Counter, "late_partly",
        "Records that missed some of their windows.";
    late_dropped: Counter, "late_dropped",
        "Records that missed all of their windows.";
    replayed: Counter, "replayed",
        "Records replayed to rebuild windows.";
    lost: Counter, "lost",
        "Records the broker skipped that were no longer in the log when rewound to.";
    records_skipped: Counter, "records_skipped",
        "Window records and dead letters the broker refused for good (too large, invalid), \
         skipped.";
    windows_closed: Family<StreamLabel, Counter>, "windows_closed",
        "Windows closed and written.";
    rebalances: Counter, "rebalances",
        "Rebalances this instance took part in (partitions assigned to it, maybe none).";
    rejoins: Counter, "rejoins",
        "Times this instance rejoined the group because partitions had no owner.";
    rewinds: Counter, "rewinds",
        "Times a partition was sent further back because the records delivered did not \
         start where it was positioned (or nothing came).";
    sink_errors: Family<SinkLabel, Counter>, "sink_errors",
        "Write attempts that failed and were retried, by sink.";
    consumer_lag: Family<TopicPartition, Gauge>, "consumer_lag",
        "Records behind: the partition's end offset minus the offset committed, per partition \
         assigned to this instance.";
    watermark_lag_seconds: Family<TopicPartition, Gauge<f64, AtomicU64>>, "watermark_lag_seconds",
        "Now minus the partition's watermark (event time), per partition held.";
    open_groups: Gauge, "open_groups",
        "Groups with open windows.";
    open_windows: Gauge, "open_windows",
        "Windows of some group holding data and not closed yet.";
    partitions_positioning: Gauge, "partitions_positioning",
        "Partitions sent to an offset whose first records have not arrived yet.";
    partitions_held: Gauge, "partitions_held",
        "Partitions whose windows this instance holds.";
    partitions_assigned: Gauge, "partitions_assigned",
        "Input partitions assigned to this instance.";
    partitions_unowned: Gauge, "partitions_unowned",
        "Input partitions without a live lease at the last check.";
    ready: Gauge, "ready",
        "1 when consuming with every partition caught up.";
    batch_seconds: Histogram = seconds(), "batch_seconds",
        "Time to run a batch through the engine (decode, extract, window).";
    sink_write_seconds: Histograms<SinkLabel> = Family::new_with_constructor(seconds),
        "sink_write_seconds",
        "Time to write a batch's outputs, acknowledged, by sink.";
    commit_seconds: Histogram = seconds(), "commit_seconds",
        "Time to commit a write's offsets to the group.";
    end_to_end_delay_seconds: Histograms<StreamLabel> = Family::new_with_constructor(delay_seconds),
        "end_to_end_delay_seconds",
        "From a window's end (event time) to its leaderboard written, per leaderboard.";
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Metrics {
    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }

    /// Adds the unlabelled counts of a batch (the labelled ones are added where their labels
    /// are known).
    pub fn add_batch(&self, counts: &BatchCounts) {
        self.batches.inc();
        self.late_partly.inc_by(counts.late_partly);
        self.late_dropped.inc_by(counts.late_dropped);
        self.replayed.inc_by(counts.replayed);
        self.lost.inc_by(counts.lost);
    }

    /// Whether the instance is consuming with every partition caught up.
    pub fn is_ready(&self) -> bool {
        self.ready.get() == 1
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Makes the series of every dead-letter kind of `streams`, and of every sink, at zero:
    /// a rate over a counter that appears only at its first increase misses that increase.
    pub fn start_at_zero<'a>(&self, streams: impl IntoIterator<Item = &'a str>) {
        for stream in streams {
            for kind in crate::decode::DecodeError::KINDS {
                let stream = stream.to_owned();
                drop(
                    self.dead_letters
                        .get_or_create(&DeadLetterKind { stream, kind }),
                );
            }
        }
        for sink in SINKS {
            drop(self.sink_errors.get_or_create(&SinkLabel { sink }));
        }
    }

    /// Counts `records` records of `bytes` bytes of a partition.
    pub fn add_records(&self, partition: &StreamPartition, records: u64, bytes: u64) {
        self.records.get_or_create(partition).inc_by(records);
        self.input_bytes.get_or_create(partition).inc_by(bytes);
        self.glance.records.fetch_add(records, Ordering::Relaxed);
    }

    /// Counts a dead letter.
    pub fn add_dead_letter(&self, kind: &DeadLetterKind) {
        self.dead_letters.get_or_create(kind).inc();
        self.glance.dead_letters.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the consumer lag of the partitions assigned, and forgets the others'.
    pub fn set_consumer_lag(&self, lags: &[(TopicPartition, i64)]) {
        replace_series(&self.consumer_lag, &self.glance.lagging, lags, |g, lag| {
            g.set(*lag);
        });
        let total: i64 = lags.iter().map(|(_, lag)| (*lag).max(0)).sum();
        self.glance.lag.store(total as u64, Ordering::Relaxed);
    }

    /// Sets the watermark lag of the partitions held, and forgets the others'.
    pub fn set_watermark_lag(&self, lags: &[(TopicPartition, f64)]) {
        replace_series(
            &self.watermark_lag_seconds,
            &self.glance.watermarked,
            lags,
            |g, lag| {
                g.set(*lag);
            },
        );
    }

    /// The numbers of [`Summary`], now.
    pub fn summary(&self) -> Summary {
        Summary {
            records: self.glance.records.load(Ordering::Relaxed),
            dead_letters: self.glance.dead_letters.load(Ordering::Relaxed),
            lag: self.glance.lag.load(Ordering::Relaxed),
            partitions: self.partitions_assigned.get().max(0) as u64,
            ready: self.is_ready(),
        }
    }

    /// Logs the totals, at info, under the run loop's target.
    pub fn log_totals(&self) {
        let summary = self.summary();
        tracing::info!(
            target: "trendstream::run",
            batches = self.batches.get(),
            records = summary.records,
            dead_letters = summary.dead_letters,
            late_partly = self.late_partly.get(),
            late_dropped = self.late_dropped.get(),
            replayed = self.replayed.get(),
            open_groups = self.open_groups.get(),
            lag = summary.lag,
            "Totals."
        );
    }
}

/// Totals kept beside the labelled series, for [`Summary`].
#[derive(Debug, Default)]
struct Glance {
    records: AtomicU64,
    dead_letters: AtomicU64,
    lag: AtomicU64,
    /// The partitions with a consumer lag series.
    lagging: Mutex<Vec<TopicPartition>>,
    /// The partitions with a watermark lag series.
    watermarked: Mutex<Vec<TopicPartition>>,
}

/// Sets `family`'s series to `values`, and removes those of the partitions `known` held last
/// time and `values` no longer holds.
fn replace_series<M, C: MetricConstructor<M>, V>(
    family: &Family<TopicPartition, M, C>,
    known: &Mutex<Vec<TopicPartition>>,
    values: &[(TopicPartition, V)],
    set: impl Fn(&M, &V),
) {
    let mut known = known.lock().expect("series list lock");
    for gone in known
        .iter()
        .filter(|p| !values.iter().any(|(v, _)| v == *p))
    {
        family.remove(gone);
    }
    for (partition, value) in values {
        set(&family.get_or_create(partition), value);
    }
    *known = values.iter().map(|(p, _)| p.clone()).collect();
}

/// The few numbers a person glances at (the live page, `top`): totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Records processed (replays included).
    pub records: u64,
    /// Records sent to the dead-letter topic.
    pub dead_letters: u64,
    /// Consumer lag summed over this instance's partitions (end offset - committed offset).
    pub lag: u64,
    /// Input partitions assigned to this instance.
    pub partitions: u64,
    /// Consuming with every partition caught up.
    pub ready: bool,
}

/// What the engine counts in a batch (or in one partition's part of it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchCounts {
    /// Records processed (replays included).
    pub records: u64,
    /// Bytes of their values.
    pub bytes: u64,
    /// Records that could not be decoded.
    pub dead_letters: u64,
    /// Records that missed some of their windows.
    pub late_partly: u64,
    /// Records that missed all of their windows.
    pub late_dropped: u64,
    /// Records replayed to rebuild windows.
    pub replayed: u64,
    /// Windows closed.
    pub windows_closed: u64,
    /// Records the broker skipped that were no longer in the log.
    pub lost: u64,
}

impl BatchCounts {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &BatchCounts) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.dead_letters += other.dead_letters;
        self.late_partly += other.late_partly;
        self.late_dropped += other.late_dropped;
        self.replayed += other.replayed;
        self.windows_closed += other.windows_closed;
        self.lost += other.lost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_counts_add_field_by_field() {
        let mut total = BatchCounts {
            records: 5,
            lost: 1,
            ..BatchCounts::default()
        };
        total.add(&BatchCounts {
            records: 2,
            bytes: 40,
            late_dropped: 3,
            ..BatchCounts::default()
        });
        assert_eq!(
            total,
            BatchCounts {
                records: 7,
                bytes: 40,
                late_dropped: 3,
                lost: 1,
                ..BatchCounts::default()
            }
        );
    }

    #[test]
    fn render_lists_every_metric_with_labels_and_units() {
        let m = Metrics::default();
        m.add_batch(&BatchCounts {
            lost: 2,
            ..BatchCounts::default()
        });
        let partition = StreamPartition {
            stream: "danmu".into(),
            topic: "danmu-in".into(),
            partition: 3,
        };
        m.add_records(&partition, 7, 70);
        m.add_dead_letter(&DeadLetterKind {
            stream: "danmu".into(),
            kind: "not_json",
        });
        let lag = |partition| TopicPartition {
            topic: "danmu-in".into(),
            partition,
        };
        m.set_consumer_lag(&[(lag(0), 5), (lag(1), 3)]);
        m.set_consumer_lag(&[(lag(1), 4)]);
        m.sink_write_seconds
            .get_or_create(&SinkLabel { sink: "redis" })
            .observe(0.003);
        m.set_ready(true);
        let text = m.render();
        for line in [
            "# TYPE trendstream_records counter",
            "# TYPE trendstream_ready gauge",
            "# TYPE trendstream_batch_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        // Every series rendered is among the names listed, and each metric is listed.
        let names = Metrics::series_names();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(names.iter().any(|n| n == name), "{name} listed");
        }
        assert_eq!(names.len(), 27 + 2 * 4, "27 metrics, 4 of them histograms");
        for line in [
            "trendstream_batches_total 1",
            "trendstream_lost_total 2",
            "trendstream_records_total{stream=\"danmu\",topic=\"danmu-in\",partition=\"3\"} 7",
            "trendstream_dead_letters_total{stream=\"danmu\",kind=\"not_json\"} 1",
            "trendstream_sink_write_seconds_bucket{le=\"0.004\",sink=\"redis\"} 1",
            "trendstream_sink_write_seconds_count{sink=\"redis\"} 1",
            "trendstream_input_bytes_total{stream=\"danmu\",topic=\"danmu-in\",partition=\"3\"} 70",
            "trendstream_consumer_lag{topic=\"danmu-in\",partition=\"1\"} 4",
            "trendstream_ready 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(
            !text.contains("partition=\"0\""),
            "a partition let go: {text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(
            m.summary(),
            Summary {
                records: 7,
                dead_letters: 1,
                lag: 4,
                partitions: 0,
                ready: true
            }
        );
    }
}
