//! Observe: the numbers an operator watches, and readiness, over HTTP.
//!
//! `GET /healthz` answers 200 while the process serves at all (liveness);
//! `GET /metrics` answers in the Prometheus text format; `GET /ready` answers 200 when the
//! instance is consuming with every partition it holds caught up (no replay under way, no
//! rebalance in progress), 503 before that and once shutdown has begun. Counters are atomics
//! updated once per batch.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::engine::BatchCounts;

#[derive(Debug, Default)]
pub struct Metrics {
    pub batches: AtomicU64,
    pub records: AtomicU64,
    pub dead_letters: AtomicU64,
    pub late_partly: AtomicU64,
    pub late_dropped: AtomicU64,
    pub replayed: AtomicU64,
    pub windows_closed: AtomicU64,
    pub rejoins: AtomicU64,
    /// Seeks further back because a partition's first records did not cover its target.
    pub rewinds: AtomicU64,
    /// Records skipped by the broker that no rewind could bring back.
    pub lost: AtomicU64,
    /// Output records and dead letters the broker refused for good, skipped.
    pub records_skipped: AtomicU64,
    /// Gauges.
    pub partitions_positioning: AtomicU64,
    pub open_groups: AtomicU64,
    pub partitions_held: AtomicU64,
    pub partitions_assigned: AtomicU64,
    pub partitions_unowned: AtomicU64,
    pub ready: AtomicBool,
}

impl Metrics {
    /// Adds a batch's counts.
    pub fn add_batch(&self, counts: &BatchCounts) {
        let add = |c: &AtomicU64, n: u64| c.fetch_add(n, Ordering::Relaxed);
        add(&self.batches, 1);
        add(&self.records, counts.records);
        add(&self.dead_letters, counts.dead_letters);
        add(&self.late_partly, counts.late_partly);
        add(&self.late_dropped, counts.late_dropped);
        add(&self.replayed, counts.replayed);
        add(&self.windows_closed, counts.windows_closed);
        add(&self.lost, counts.lost);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, kind, help, value) in [
            (
                "batches_total",
                "counter",
                "Batches committed.",
                get(&self.batches),
            ),
            (
                "records_total",
                "counter",
                "Records processed (replays included).",
                get(&self.records),
            ),
            (
                "dead_letters_total",
                "counter",
                "Records sent to the dead-letter topic.",
                get(&self.dead_letters),
            ),
            (
                "late_partly_total",
                "counter",
                "Records that missed some of their windows.",
                get(&self.late_partly),
            ),
            (
                "late_dropped_total",
                "counter",
                "Records that missed all of their windows.",
                get(&self.late_dropped),
            ),
            (
                "replayed_total",
                "counter",
                "Records replayed to rebuild windows.",
                get(&self.replayed),
            ),
            (
                "windows_closed_total",
                "counter",
                "Windows closed and written.",
                get(&self.windows_closed),
            ),
            (
                "rejoins_total",
                "counter",
                "Times this instance rejoined the group because partitions had no owner.",
                get(&self.rejoins),
            ),
            (
                "rewinds_total",
                "counter",
                "Times a partition was sent further back because the records delivered did not \
                 start where it was positioned (or nothing came).",
                get(&self.rewinds),
            ),
            (
                "lost_total",
                "counter",
                "Records the broker skipped that were no longer in the log when rewound to.",
                get(&self.lost),
            ),
            (
                "records_skipped_total",
                "counter",
                "Window records and dead letters the broker refused for good (too large, \
                 invalid), skipped.",
                get(&self.records_skipped),
            ),
            (
                "partitions_positioning",
                "gauge",
                "Partitions sent to an offset whose first records have not arrived yet.",
                get(&self.partitions_positioning),
            ),
            (
                "open_groups",
                "gauge",
                "Groups with open windows.",
                get(&self.open_groups),
            ),
            (
                "partitions_held",
                "gauge",
                "Partitions whose windows this instance holds.",
                get(&self.partitions_held),
            ),
            (
                "partitions_assigned",
                "gauge",
                "Input partitions assigned to this instance.",
                get(&self.partitions_assigned),
            ),
            (
                "partitions_unowned",
                "gauge",
                "Input partitions without a live lease at the last check.",
                get(&self.partitions_unowned),
            ),
            (
                "ready",
                "gauge",
                "1 when consuming with every partition caught up.",
                u64::from(self.ready.load(Ordering::Relaxed)),
            ),
        ] {
            let _ = writeln!(out, "# HELP trendstream_{name} {help}");
            let _ = writeln!(out, "# TYPE trendstream_{name} {kind}");
            let _ = writeln!(out, "trendstream_{name} {value}");
        }
        out
    }
}

/// Serves `/metrics`, `/ready` and `/healthz` on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, stop: CancellationToken) {
    loop {
        let (mut socket, _) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "Cannot accept an HTTP connection.");
                    continue;
                }
            },
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let n = socket.read(&mut request).await.unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n]);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = match path {
                "/metrics" => ("200 OK", metrics.render()),
                "/ready" if metrics.ready.load(Ordering::Relaxed) => {
                    ("200 OK", "ready\n".to_owned())
                }
                "/ready" => ("503 Service Unavailable", "not ready\n".to_owned()),
                "/healthz" => ("200 OK", "alive\n".to_owned()),
                _ => (
                    "404 Not Found",
                    "try /metrics, /ready or /healthz\n".to_owned(),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

/// Asks the endpoint at `addr` (`host:port`) for `path`: whether it answered 200 within
/// `timeout`. For a container's health check, which has no HTTP client of its own.
pub fn probe(addr: &str, path: &str, timeout: std::time::Duration) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr} resolves to no address")))?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 16];
    let n = stream.read(&mut head)?;
    Ok(head[..n].starts_with(b"HTTP/1.1 200"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_every_metric_with_its_value() {
        let m = Metrics::default();
        m.add_batch(&BatchCounts {
            records: 7,
            dead_letters: 1,
            windows_closed: 3,
            ..BatchCounts::default()
        });
        let text = m.render();
        assert!(text.contains("\ntrendstream_records_total 7\n"), "{text}");
        assert!(text.contains("\ntrendstream_dead_letters_total 1\n"));
        assert!(text.contains("\ntrendstream_windows_closed_total 3\n"));
        assert!(text.contains("# TYPE trendstream_ready gauge\ntrendstream_ready 0\n"));
    }

    #[tokio::test]
    async fn probe_sees_healthz_answer_200() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, Arc::new(Metrics::default()), stop.clone()));
        let ask = |path: &'static str| {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || {
                probe(&addr, path, std::time::Duration::from_secs(5)).unwrap()
            })
        };
        assert!(ask("/healthz").await.unwrap());
        assert!(!ask("/ready").await.unwrap(), "not ready before consuming");
        stop.cancel();
    }
}
