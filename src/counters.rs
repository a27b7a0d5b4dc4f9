//! Counters: the one list of what is counted, and the types made from it.
//!
//! Each line of the list below (after the macro that reads it) declares a number: its field
//! name, its kind, its metric name, whether the periodic `Totals.` log shows it, and its help
//! text (also its doc comment). From that list come
//!
//! - [`BatchCounts`], the engine's per-batch counts: the `batch` kind, plain `u64` fields;
//! - [`Metrics`], the process's totals: every line, an atomic each, with
//!   [`Metrics::add_batch`], [`Metrics::render`] (the Prometheus text of `/metrics`, in the
//!   order listed) and [`Metrics::log_totals`].
//!
//! Kinds: `batch` is counted by the engine and added once per batch; `run` is counted by the
//! run loop straight into [`Metrics`]; `gauge` is set to a level; `flag` is a yes/no gauge
//! (shown as 1 or 0). Adding a counter is adding a line.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Makes [`BatchCounts`] and [`Metrics`] from the list below.
macro_rules! counters {
    ($($field:ident: $kind:ident, $name:literal, $shown:ident, $help:literal;)*) => {
        counters!(@batch_counts [] $($field $kind $help)*);

        impl BatchCounts {
            /// Adds `other`'s counts to these.
            pub(crate) fn add(&mut self, other: &BatchCounts) {
                $(counters!(@add_counts $kind self other $field);)*
            }
        }

        /// The process's counters and gauges, updated once per batch (and by the run loop).
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $help] pub $field: counters!(@type $kind),)*
        }

        impl Metrics {
            /// Adds a batch's counts.
            pub fn add_batch(&self, counts: &BatchCounts) {
                self.batches.fetch_add(1, Ordering::Relaxed);
                $(counters!(@add_metric $kind self counts $field);)*
            }

            /// The Prometheus text exposition of every metric.
            pub fn render(&self) -> String {
                let mut out = String::new();
                $(
                    let _ = writeln!(out, "# HELP trendstream_{} {}", $name, $help);
                    let kind = counters!(@prometheus $kind);
                    let _ = writeln!(out, "# TYPE trendstream_{} {}", $name, kind);
                    let value = counters!(@get $kind &self.$field);
                    let _ = writeln!(out, "trendstream_{} {}", $name, value);
                )*
                out
            }

            /// Logs the totals marked `logged`, at info, under the run loop's target.
            pub fn log_totals(&self) {
                counters!(@log self [] $($field $kind $shown)*);
            }
        }
    };

    // BatchCounts holds the `batch` lines.
    (@batch_counts [$($done:tt)*]) => {
        /// Per-batch counters.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct BatchCounts {
            $($done)*
        }
    };
    (@batch_counts [$($done:tt)*] $field:ident batch $help:literal $($rest:tt)*) => {
        counters!(@batch_counts [$($done)* #[doc = $help] pub $field: u64,] $($rest)*);
    };
    (@batch_counts [$($done:tt)*] $field:ident $kind:ident $help:literal $($rest:tt)*) => {
        counters!(@batch_counts [$($done)*] $($rest)*);
    };

    (@add_counts batch $to:ident $from:ident $field:ident) => {
        $to.$field += $from.$field
    };
    (@add_counts $kind:ident $to:ident $from:ident $field:ident) => {};

    (@add_metric batch $to:ident $from:ident $field:ident) => {
        $to.$field.fetch_add($from.$field, Ordering::Relaxed)
    };
    (@add_metric $kind:ident $to:ident $from:ident $field:ident) => {};

    (@type flag) => { AtomicBool };
    (@type $kind:ident) => { AtomicU64 };

    (@prometheus gauge) => { "gauge" };
    (@prometheus flag) => { "gauge" };
    (@prometheus $kind:ident) => { "counter" };

    (@get flag $value:expr) => { u64::from($value.load(Ordering::Relaxed)) };
    (@get $kind:ident $value:expr) => { $value.load(Ordering::Relaxed) };

    // The `Totals.` event: one field per `logged` line.
    (@log $metrics:ident [$($done:tt)*]) => {
        tracing::info!(target: "trendstream::run", $($done)* "Totals.")
    };
    (@log $metrics:ident [$($done:tt)*] $field:ident $kind:ident logged $($rest:tt)*) => {
        counters!(
            @log $metrics [$($done)* $field = counters!(@get $kind &$metrics.$field),] $($rest)*
        )
    };
    (@log $metrics:ident [$($done:tt)*] $field:ident $kind:ident quiet $($rest:tt)*) => {
        counters!(@log $metrics [$($done)*] $($rest)*)
    };
}

counters! {
    batches: run, "batches_total", logged,
        "Batches committed.";
    records: batch, "records_total", logged,
        "Records processed (replays included).";
    dead_letters: batch, "dead_letters_total", logged,
        "Records sent to the dead-letter topic.";
    late_partly: batch, "late_partly_total", logged,
        "Records that missed some of their windows.";
    late_dropped: batch, "late_dropped_total", logged,
        "Records that missed all of their windows.";
    replayed: batch, "replayed_total", logged,
        "Records replayed to rebuild windows.";
    windows_closed: batch, "windows_closed_total", logged,
        "Windows closed and written.";
    rejoins: run, "rejoins_total", quiet,
        "Times this instance rejoined the group because partitions had no owner.";
    rewinds: run, "rewinds_total", quiet,
        "Times a partition was sent further back because the records delivered did not \
         start where it was positioned (or nothing came).";
    lost: batch, "lost_total", quiet,
        "Records the broker skipped that were no longer in the log when rewound to.";
    records_skipped: run, "records_skipped_total", quiet,
        "Window records and dead letters the broker refused for good (too large, \
         invalid), skipped.";
    partitions_positioning: gauge, "partitions_positioning", quiet,
        "Partitions sent to an offset whose first records have not arrived yet.";
    open_groups: gauge, "open_groups", logged,
        "Groups with open windows.";
    partitions_held: gauge, "partitions_held", quiet,
        "Partitions whose windows this instance holds.";
    partitions_assigned: gauge, "partitions_assigned", quiet,
        "Input partitions assigned to this instance.";
    partitions_unowned: gauge, "partitions_unowned", quiet,
        "Input partitions without a live lease at the last check.";
    ready: flag, "ready", quiet,
        "1 when consuming with every partition caught up.";
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

impl Metrics {
    /// The numbers of [`Summary`], now.
    pub fn summary(&self) -> Summary {
        Summary {
            records: self.records.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            lag: 0,
            partitions: self.partitions_assigned.load(Ordering::Relaxed),
            ready: self.ready.load(Ordering::Relaxed),
        }
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
            late_dropped: 3,
            ..BatchCounts::default()
        });
        assert_eq!(
            total,
            BatchCounts {
                records: 7,
                late_dropped: 3,
                lost: 1,
                ..BatchCounts::default()
            }
        );
    }

    #[test]
    fn render_keeps_the_listed_order_and_kinds() {
        let m = Metrics::default();
        m.add_batch(&BatchCounts {
            lost: 2,
            ..BatchCounts::default()
        });
        m.ready.store(true, Ordering::Relaxed);
        let text = m.render();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE trendstream_"))
            .collect();
        assert_eq!(
            names,
            [
                "batches_total counter",
                "records_total counter",
                "dead_letters_total counter",
                "late_partly_total counter",
                "late_dropped_total counter",
                "replayed_total counter",
                "windows_closed_total counter",
                "rejoins_total counter",
                "rewinds_total counter",
                "lost_total counter",
                "records_skipped_total counter",
                "partitions_positioning gauge",
                "open_groups gauge",
                "partitions_held gauge",
                "partitions_assigned gauge",
                "partitions_unowned gauge",
                "ready gauge",
            ]
        );
        assert!(text.contains("\ntrendstream_batches_total 1\n"), "{text}");
        assert!(text.contains("\ntrendstream_lost_total 2\n"), "{text}");
        assert!(text.ends_with("trendstream_ready 1\n"), "{text}");
    }
}
