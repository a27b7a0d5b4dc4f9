//! Page: the live hot-words page (`GET /`) and its JSON (`GET /api/hot`), served by
//! [`observe`](crate::observe).
//!
//! The page is one HTML file with its CSS and script inline (no build step, nothing fetched
//! from elsewhere); it asks `/api/hot` every 2 s. The answer holds each enabled stream's
//! busiest groups ([`hot`](crate::hot), bounded) and this instance's [`Summary`]. The Redis
//! part is kept for [`CACHE_FOR`] and made by one request at a time — the others wait for it
//! and take its answer — so any number of viewers costs Redis at most one query a second.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::Config;
use crate::hot::{hot_stream, HotQuery, HotStream, MAX_KEYS};
use crate::metrics::Summary;
use crate::store::Connection;

/// The page, with its script and styles.
pub const HTML: &str = include_str!("page.html");

/// How long an answer from Redis is served again.
pub const CACHE_FOR: Duration = Duration::from_secs(1);
/// A query that takes longer is given up (and the failure cached like an answer).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Groups per stream and words per group on the page.
const GROUPS: usize = 12;
const TERMS: usize = 10;

/// The JSON of `/api/hot`.
#[derive(Debug, Clone, Serialize)]
pub struct HotAnswer {
    /// When `summary` was read, epoch milliseconds (records/s is the change of
    /// `summary.records` between two answers over the change of this).
    pub time_ms: u64,
    pub summary: Summary,
    /// Each enabled stream's busiest groups; empty with `error`.
    #[serde(serialize_with = "as_slice")]
    pub streams: Arc<Vec<HotStream>>,
    /// Why Redis could not be read, when it could not (the answer is then a 503).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The cached streams, shared by the answers made from them, as a list.
fn as_slice<S: serde::Serializer>(streams: &Arc<Vec<HotStream>>, s: S) -> Result<S::Ok, S::Error> {
    streams.as_slice().serialize(s)
}

/// The streams' busiest groups, each from Redis at most once a [`CACHE_FOR`].
pub struct HotPage {
    conn: Connection,
    streams: Vec<String>,
    query: HotQuery,
    cache: Mutex<Option<Cached>>,
}

struct Cached {
    at: Instant,
    streams: Result<Arc<Vec<HotStream>>, String>,
}

impl HotPage {
    /// The page of `config`'s enabled streams, read over `conn`.
    pub fn new(conn: Connection, config: &Config) -> HotPage {
        HotPage {
            conn,
            streams: config
                .enabled_streams()
                .map(|(name, _)| name.clone())
                .collect(),
            query: HotQuery {
                key_prefix: config.redis().key_prefix.clone(),
                groups: GROUPS,
                terms: TERMS,
                max_keys: MAX_KEYS,
            },
            cache: Mutex::new(None),
        }
    }

    /// The answer to `/api/hot`, with `summary` as it is now.
    pub async fn answer(&self, summary: Summary) -> HotAnswer {
        let streams = self.streams().await;
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        match streams {
            Ok(streams) => HotAnswer {
                time_ms,
                summary,
                streams,
                error: None,
            },
            Err(error) => HotAnswer {
                time_ms,
                summary,
                streams: Arc::default(),
                error: Some(error),
            },
        }
    }

    /// The cached answer while it is fresh, else a new one. The lock is held through the
    /// query: who comes meanwhile waits and takes the new answer instead of asking again.
    async fn streams(&self) -> Result<Arc<Vec<HotStream>>, String> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref().filter(|c| c.at.elapsed() < CACHE_FOR) {
            return cached.streams.clone();
        }
        let streams = match tokio::time::timeout(QUERY_TIMEOUT, self.query()).await {
            Ok(Ok(streams)) => Ok(Arc::new(streams)),
            Ok(Err(err)) => {
                tracing::warn!(error = %crate::redact::error(&err), "Cannot read the hot words.");
                Err(format!("cannot read Redis: {}", crate::redact::error(&err)))
            }
            Err(_) => Err(format!(
                "cannot read Redis: no answer within {}",
                humantime::format_duration(QUERY_TIMEOUT)
            )),
        };
        *cache = Some(Cached {
            at: Instant::now(),
            streams: streams.clone(),
        });
        streams
    }

    async fn query(&self) -> redis::RedisResult<Vec<HotStream>> {
        let mut out = Vec::with_capacity(self.streams.len());
        for stream in &self.streams {
            out.push(hot_stream(&self.conn, stream, &self.query).await?);
        }
        Ok(out)
    }
}
