//! Watch: print the live leaderboards from Redis, for people (the demo) and quick checks.

use std::fmt::Write as _;
use std::time::Duration;

use redis::AsyncCommands;

use crate::store::from_key_part;
use crate::store::leaderboard::leaderboard_key;

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
    let mut conn = client.get_multiplexed_async_connection().await?;
    loop {
        let screen = render(&mut conn, opts).await?;
        if opts.once {
            print!("{screen}");
            return Ok(());
        }
        // Clear the terminal, then draw.
        print!("\x1b[2J\x1b[H{screen}");
        tokio::time::sleep(opts.interval).await;
    }
}

async fn render(
    conn: &mut redis::aio::MultiplexedConnection,
    opts: &WatchOptions,
) -> redis::RedisResult<String> {
    let prefix = leaderboard_key(&opts.key_prefix, &opts.stream, "");
    let pattern = format!("{prefix}*");
    let mut keys: Vec<String> = Vec::new();
    {
        let mut iter: redis::AsyncIter<'_, String> = conn.scan_match(&pattern).await?;
        while let Some(key) = iter.next_item().await {
            keys.push(key?);
        }
    }
    let mut boards = Vec::new();
    for key in keys {
        let terms: Vec<(String, u64)> = conn
            .zrevrange_withscores(&key, 0, opts.terms as isize - 1)
            .await?;
        let total: u64 = terms.iter().map(|(_, n)| n).sum();
        boards.push((total, key, terms));
    }
    boards.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut out = String::new();
    let shown = boards.len().min(opts.groups);
    let _ = writeln!(
        out,
        "hot words: {} of {} groups of stream {}",
        shown,
        boards.len(),
        opts.stream
    );
    for (_, key, terms) in boards.iter().take(opts.groups) {
        let group = from_key_part(key.strip_prefix(&prefix).unwrap_or(key));
        let words: Vec<String> = terms.iter().map(|(t, n)| format!("{t}({n})")).collect();
        let _ = writeln!(out, "{group:>10}  {}", words.join(" "));
    }
    Ok(out)
}
