//! Top: the live page in a terminal, redrawn in place like `top`.
//!
//! It asks one or more instances for `/api/hot` (the page's JSON) every interval: the busiest
//! groups and their words come from the first instance that could read Redis (every instance
//! reads the same leaderboards); records/s, lag and dead letters are summed over all of them.
//! Records/s is the change of each instance's record total between two answers, so the first
//! frame has none yet. A plain HTTP/1.1 GET over a TCP stream: the endpoint is ours and
//! answers with a length, in one piece.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::hot::{printable, HotStream};

/// How long one instance may take to connect and answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read (a page's JSON is a few KiB).
const MAX_ANSWER: u64 = 4 << 20;

#[derive(Debug, Clone)]
pub struct TopOptions {
    /// Instances' HTTP endpoints, `http://host:port`.
    pub urls: Vec<String>,
    /// Groups per stream and words per group shown.
    pub groups: usize,
    pub terms: usize,
    pub interval: Duration,
    /// Print one frame and return.
    pub once: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("--url ({url}) is not http://host:port")]
    BadUrl { url: String },
    #[error("cannot reach {url}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} answered {status}")]
    Status { url: String, status: String },
    #[error("{url} did not answer with the page's JSON")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What `/api/hot` answers, read leniently: what an instance of another version lacks is 0.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Answer {
    pub time_ms: u64,
    pub summary: SummaryView,
    pub streams: Vec<HotStream>,
    pub error: Option<String>,
}

/// The instance's [`Summary`](crate::metrics::Summary).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct SummaryView {
    pub records: u64,
    pub dead_letters: u64,
    pub lag: u64,
    pub partitions: u64,
    pub ready: bool,
}

/// One instance's latest answer, and records/s since the one before.
#[derive(Debug)]
pub struct Sample {
    pub url: String,
    pub answer: Result<Answer, String>,
    pub records_per_s: Option<f64>,
}

/// Draws frames until interrupted (or one, with `once`; then an instance that cannot be read
/// is an error).
pub async fn top(opts: &TopOptions) -> Result<(), TopError> {
    let targets = opts
        .urls
        .iter()
        .map(|url| parse_url(url))
        .collect::<Result<Vec<_>, _>>()?;
    let mut previous: Vec<Option<Answer>> = vec![None; targets.len()];
    loop {
        let mut samples = Vec::with_capacity(targets.len());
        for ((url, (addr, path)), before) in opts.urls.iter().zip(&targets).zip(&mut previous) {
            let answer = match fetch(url, addr, path).await {
                Err(err) if opts.once => return Err(err),
                answer => answer.map_err(|err| crate::redact::error(&err)),
            };
            let records_per_s = match (&answer, before.as_ref()) {
                (Ok(now), Some(then)) => rate(then, now),
                _ => None,
            };
            if let Ok(now) = &answer {
                *before = Some(now.clone());
            }
            samples.push(Sample {
                url: url.clone(),
                answer,
                records_per_s,
            });
        }
        let screen = frame(&samples, opts.groups, opts.terms);
        if opts.once {
            print!("{screen}");
            return Ok(());
        }
        // Cursor home, each line over the old one, the rest of the old screen cleared: no
        // flicker between frames.
        let screen = screen.replace('\n', "\x1b[K\n");
        print!("\x1b[H{screen}\x1b[J");
        tokio::time::sleep(opts.interval).await;
    }
}

/// Records/s between two answers of one instance; none over no time or across a restart.
fn rate(then: &Answer, now: &Answer) -> Option<f64> {
    let ms = now.time_ms.checked_sub(then.time_ms).filter(|ms| *ms > 0)?;
    let records = now.summary.records.checked_sub(then.summary.records)?;
    Some(records as f64 * 1000.0 / ms as f64)
}

/// `http://host:port[/base]` → (`host:port`, `/base/api/hot`).
fn parse_url(url: &str) -> Result<(String, String), TopError> {
    let bad = || TopError::BadUrl {
        url: url.to_owned(),
    };
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, base) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || !authority.contains(':') {
        return Err(bad());
    }
    Ok((
        authority.to_owned(),
        format!("{}/api/hot", base.trim_end_matches('/')),
    ))
}

/// `GET path` from `addr`, within [`TIMEOUT`]: the answer, also when it is a 503 (Redis
/// failed; the summary is still there).
async fn fetch(url: &str, addr: &str, path: &str) -> Result<Answer, TopError> {
    let connect = |source| TopError::Connect {
        url: url.to_owned(),
        source,
    };
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time");
    let response = tokio::time::timeout(TIMEOUT, get(addr, path))
        .await
        .map_err(|_| connect(timed_out()))?
        .map_err(connect)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").trim();
    let code = status.split(' ').nth(1).unwrap_or("");
    if !(status.starts_with("HTTP/") && matches!(code, "200" | "503")) {
        return Err(TopError::Status {
            url: url.to_owned(),
            status: status.to_owned(),
        });
    }
    serde_json::from_str(body).map_err(|source| TopError::Parse {
        url: url.to_owned(),
        source,
    })
}

/// The whole response to `GET path`, the connection closed by the server after it.
async fn get(addr: &str, path: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: application/json\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut response).await?;
    Ok(response)
}

/// One screen: the totals, then each stream's busiest groups and their words.
pub fn frame(samples: &[Sample], groups: usize, terms: usize) -> String {
    let answers: Vec<&Answer> = samples
        .iter()
        .filter_map(|s| s.answer.as_ref().ok())
        .collect();
    let sum = |f: fn(&SummaryView) -> u64| answers.iter().map(|a| f(&a.summary)).sum::<u64>();
    let rates: Vec<f64> = samples.iter().filter_map(|s| s.records_per_s).collect();
    let rate = if rates.is_empty() {
        "–".to_owned()
    } else {
        thousands(rates.iter().sum::<f64>().round() as u64)
    };
    let ready = answers.iter().filter(|a| a.summary.ready).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trendstream top — {} of {} instances answering",
        answers.len(),
        samples.len()
    );
    let _ = writeln!(
        out,
        "records/s {rate}   lag {}   dead letters {}   partitions {}   ready {ready}/{}",
        thousands(sum(|s| s.lag)),
        thousands(sum(|s| s.dead_letters)),
        thousands(sum(|s| s.partitions)),
        samples.len(),
    );
    for sample in samples {
        if let Err(err) = &sample.answer {
            let _ = writeln!(out, "! {}", printable(err));
        }
    }
    // The words from the first instance that read Redis (all read the same leaderboards).
    let words = answers.iter().find(|a| a.error.is_none());
    match words {
        None => {
            for answer in &answers {
                if let Some(err) = &answer.error {
                    let _ = writeln!(out, "! {}", printable(err));
                }
            }
        }
        Some(answer) => {
            for stream in &answer.streams {
                out.push('\n');
                stream_lines(&mut out, stream, groups, terms);
            }
        }
    }
    out
}

fn stream_lines(out: &mut String, stream: &HotStream, groups: usize, terms: usize) {
    let shown = stream.groups.len().min(groups);
    let bound = if stream.truncated {
        format!(
            " (the first {} found: at most {} keys read)",
            stream.groups_found,
            thousands(stream.key_limit as u64)
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{} — busiest {shown} of {} groups{bound}",
        printable(&stream.stream),
        stream.groups_found
    );
    if shown == 0 {
        let _ = writeln!(out, "  (no leaderboards yet)");
    }
    for group in stream.groups.iter().take(groups) {
        let words: Vec<String> = group
            .terms
            .iter()
            .take(terms)
            .map(|(word, n)| format!("{} {n}", printable(word)))
            .collect();
        let _ = writeln!(
            out,
            "  {:<14} {:>7}  {}",
            printable(&group.group),
            thousands(group.total),
            words.join(" · ")
        );
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hot::HotGroup;

    fn answer(time_ms: u64, records: u64) -> Answer {
        Answer {
            time_ms,
            summary: SummaryView {
                records,
                lag: 5,
                ready: true,
                ..SummaryView::default()
            },
            streams: vec![HotStream {
                stream: "danmu".into(),
                groups_found: 1,
                key_limit: 10_000,
                truncated: false,
                groups: vec![HotGroup {
                    group: "r1".into(),
                    total: 1_500,
                    terms: vec![("主播".into(), 1_000), ("晚上".into(), 500)],
                }],
            }],
            error: None,
        }
    }

    #[test]
    fn urls_give_the_address_and_the_json_path() {
        let parsed = |url| parse_url(url).unwrap();
        assert_eq!(
            parsed("http://127.0.0.1:9898"),
            ("127.0.0.1:9898".into(), "/api/hot".into())
        );
        assert_eq!(parsed("http://h:1/x/"), ("h:1".into(), "/x/api/hot".into()));
        assert!(parse_url("https://h:1").is_err());
        assert!(parse_url("h:1").is_err());
    }

    #[test]
    fn rates_are_summed_over_instances_and_words_shown_once() {
        let then = answer(1_000, 100);
        let now = answer(3_000, 2_100);
        let one = rate(&then, &now);
        assert_eq!(one, Some(1_000.0));
        let samples = [
            Sample {
                url: "http://a:1".into(),
                answer: Ok(now.clone()),
                records_per_s: one,
            },
            Sample {
                url: "http://b:1".into(),
                answer: Ok(now),
                records_per_s: Some(234.4),
            },
            Sample {
                url: "http://c:1".into(),
                answer: Err("cannot reach http://c:1".into()),
                records_per_s: None,
            },
        ];
        let screen = frame(&samples, 5, 8);
        assert!(screen.contains("2 of 3 instances"), "{screen}");
        assert!(screen.contains("records/s 1,234   lag 10 "), "{screen}");
        assert!(screen.contains("ready 2/3"), "{screen}");
        assert!(screen.contains("! cannot reach http://c:1"), "{screen}");
        assert_eq!(
            screen.matches("主播 1000 · 晚上 500").count(),
            1,
            "{screen}"
        );
    }

    #[test]
    fn no_rate_across_a_restart() {
        assert_eq!(rate(&answer(1_000, 500), &answer(2_000, 10)), None);
        assert_eq!(rate(&answer(1_000, 500), &answer(1_000, 600)), None);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
