//! Watch: print the live leaderboards from Redis, for people (the demo) and quick checks.
//! The query is [`hot`](crate::hot)'s, bounded like the live page's.

use std::fmt::Write as _;
use std::time::Duration;

use crate::hot::{hot_stream, printable, HotQuery, HotStream, MAX_KEYS};
use crate::store::Connection;

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub redis_url: String,
    pub key_prefix: String,
    pub stream: String,
    /// How many groups to show: the busiest, by the sum of their leaderboard's counts.
    pub groups: usize,
    /// How many terms per group.
    pub terms: usize,
    /// Print once and return.
    pub once: bool,
    pub interval: Duration,
}

/// Prints the leaderboards until interrupted (or once).
pub async fn watch(opts: &WatchOptions) -> redis::RedisResult<()> {
    let client = redis::Client::open(opts.redis_url.as_str())?;
    let conn = Connection::Single(client.get_connection_manager().await?);
    let query = HotQuery {
        key_prefix: opts.key_prefix.clone(),
        groups: opts.groups,
        terms: opts.terms,
        max_keys: MAX_KEYS,
    };
    loop {
        let screen = render(&hot_stream(&conn, &opts.stream, &query).await?);
        if opts.once {
            print!("{screen}");
            return Ok(());
        }
        // Clear the terminal, then draw.
        print!("\x1b[2J\x1b[H{screen}");
        tokio::time::sleep(opts.interval).await;
    }
}

fn render(hot: &HotStream) -> String {
    let mut out = String::new();
    let more = if hot.truncated { "+" } else { "" };
    let _ = writeln!(
        out,
        "hot words: {} of {}{more} groups of stream {}",
        hot.groups.len(),
        hot.groups_found,
        hot.stream
    );
    for group in &hot.groups {
        let words: Vec<String> = group
            .terms
            .iter()
            .map(|(t, n)| format!("{}({n})", printable(t)))
            .collect();
        let _ = writeln!(out, "{:>10}  {}", printable(&group.group), words.join(" "));
    }
    out
}
