//! Hot: the busiest groups of a stream and their top words, read from the leaderboards in
//! Redis. One query, shared by `watch`, the live page and (through the page's JSON) `top`.
//!
//! A stream's leaderboards (`<prefix>hot:<stream>:<group>`) are found with `SCAN` — on every
//! primary of a cluster — then the top words of each are read, many requests in flight on the
//! one multiplexed connection, and the groups ranked by the sum of their top words' counts.
//!
//! Anyone who can reach the HTTP endpoint can ask for this, and a stream may have a million
//! groups, so the query is bounded: per stream, `SCAN` examines about `max_keys` keys at most
//! (its `COUNT` is a hint Redis roughly keeps) and at most `max_keys` leaderboards are read.
//! When the bound stops the scan early, the answer says so (`truncated`): its busiest groups
//! are then the busiest of those found.

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, RedisResult};
use serde::{Deserialize, Serialize};

use crate::store::leaderboard::leaderboard_key;
use crate::store::{from_key_part, in_flight, Connection};

/// The default bound on the keys one query examines, and reads, per stream.
pub const MAX_KEYS: usize = 10_000;
/// Keys `SCAN` is asked to examine per call.
const SCAN_COUNT: usize = 1_000;

/// What to ask for.
#[derive(Debug, Clone)]
pub struct HotQuery {
    /// `redis.key_prefix`.
    pub key_prefix: String,
    /// Groups to return per stream, busiest first.
    pub groups: usize,
    /// Words to return per group (and to rank the groups by).
    pub terms: usize,
    /// Keys examined, and leaderboards read, per stream at most.
    pub max_keys: usize,
}

/// A stream's busiest groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotStream {
    pub stream: String,
    /// Leaderboards found and read (at most `key_limit`).
    pub groups_found: usize,
    /// The bound on the keys examined per stream.
    pub key_limit: usize,
    /// The bound stopped the scan before it had seen every key: `groups` are the busiest of
    /// the `groups_found`, not necessarily of all.
    pub truncated: bool,
    /// Busiest first.
    pub groups: Vec<HotGroup>,
}

/// A group's leaderboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotGroup {
    pub group: String,
    /// The sum of the counts of `terms`: what groups are ranked by.
    pub total: u64,
    /// `[word, count]`, by count descending.
    pub terms: Vec<(String, u64)>,
}

/// The busiest groups of `stream`, within the bound of `query`.
pub async fn hot_stream(
    conn: &Connection,
    stream: &str,
    query: &HotQuery,
) -> RedisResult<HotStream> {
    let prefix = leaderboard_key(&query.key_prefix, stream, "");
    let pattern = format!("{}*", glob_escape(&prefix));
    let (keys, truncated) = scan(conn, &pattern, query.max_keys.max(1)).await?;
    let last = query.terms.max(1) as isize - 1;
    let reads = keys
        .iter()
        .map(|key| {
            let mut conn = conn.clone();
            let mut cmd = redis::cmd("ZREVRANGE");
            cmd.arg(key).arg(0).arg(last).arg("WITHSCORES");
            async move { cmd.query_async::<Vec<(String, f64)>>(&mut conn).await }
        })
        .collect();
    let boards = in_flight(reads).await?;
    let mut groups: Vec<HotGroup> = keys
        .iter()
        .zip(boards)
        .filter(|(_, terms)| !terms.is_empty())
        .map(|(key, terms)| {
            // Scores are counts; a float only if something else wrote the key.
            let terms: Vec<(String, u64)> = terms
                .into_iter()
                .map(|(word, n)| (word, n.max(0.0) as u64))
                .collect();
            HotGroup {
                group: from_key_part(key.strip_prefix(&prefix).unwrap_or(key)),
                total: terms.iter().map(|(_, n)| n).sum(),
                terms,
            }
        })
        .collect();
    let groups_found = groups.len();
    rank(&mut groups);
    groups.truncate(query.groups);
    Ok(HotStream {
        stream: stream.to_owned(),
        groups_found,
        key_limit: query.max_keys,
        truncated,
        groups,
    })
}

/// `text` safe to print on a terminal: group names and words come from the input, and a
/// control character (an escape sequence, say) would act on the terminal instead of showing.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect::<String>()
        .into()
}

/// Busiest first; equal totals by group name, so the order is stable between refreshes.
fn rank(groups: &mut [HotGroup]) {
    groups.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.group.cmp(&b.group)));
}

/// `text` matched literally by a `SCAN MATCH` pattern (prefix and stream come from the
/// configuration and may hold glob characters).
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The keys matching `pattern`, at most `max_keys`, with about `max_keys` keys examined in
/// all (shared evenly by a cluster's primaries); and whether the bound stopped the scan.
async fn scan(
    conn: &Connection,
    pattern: &str,
    max_keys: usize,
) -> RedisResult<(Vec<String>, bool)> {
    let nodes = match conn {
        Connection::Single(_) => vec![None],
        Connection::Cluster(c) => primaries(&mut c.clone())
            .await?
            .into_iter()
            .map(Some)
            .collect(),
    };
    let budget = (max_keys / nodes.len().max(1)).max(1);
    let mut keys = Vec::new();
    let mut truncated = false;
    for node in &nodes {
        let mut calls = budget.div_ceil(SCAN_COUNT);
        let mut cursor = 0u64;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT.min(budget));
            let (next, found): (u64, Vec<String>) = scan_call(conn, node.as_ref(), cmd).await?;
            keys.extend(found);
            cursor = next;
            calls -= 1;
            if cursor == 0 {
                break;
            }
            if calls == 0 || keys.len() >= max_keys {
                truncated = true;
                break;
            }
        }
    }
    // SCAN may return a key twice (while Redis resizes its table).
    keys.sort_unstable();
    keys.dedup();
    if keys.len() > max_keys {
        keys.truncate(max_keys);
        truncated = true;
    }
    Ok((keys, truncated))
}

/// One `SCAN` call: on the one node, or on the cluster's primary at `node`.
async fn scan_call(
    conn: &Connection,
    node: Option<&(String, u16)>,
    cmd: Cmd,
) -> RedisResult<(u64, Vec<String>)> {
    match (conn, node) {
        (Connection::Cluster(c), Some((host, port))) => {
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port: *port,
            });
            let value = c.clone().route_command(cmd, routing).await?;
            Ok(redis::from_redis_value(value)?)
        }
        (conn, _) => cmd.query_async(&mut conn.clone()).await,
    }
}

/// The addresses of a cluster's primaries that are up, from `CLUSTER NODES`.
async fn primaries(
    conn: &mut redis::cluster_async::ClusterConnection,
) -> RedisResult<Vec<(String, u16)>> {
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
    let value = conn
        .route_command(redis::cmd("CLUSTER").arg("NODES").clone(), routing)
        .await?;
    let text: String = redis::from_redis_value(value)?;
    Ok(parse_primaries(&text))
}

/// `<id> <host>:<port>@<bus port>[,<hostname>] <flags> ...` lines: the primaries not failing.
fn parse_primaries(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let up = flags
                .split(',')
                .all(|f| !matches!(f, "fail" | "noaddr" | "handshake"));
            if !up || !flags.split(',').any(|f| f == "master") {
                return None;
            }
            let address = address.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some((host.to_owned(), port.parse().ok()?)).filter(|(h, _)| !h.is_empty())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_of_a_prefix_match_literally() {
        assert_eq!(glob_escape("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
        assert_eq!(glob_escape("hot:danmu:"), "hot:danmu:");
    }

    #[test]
    fn control_characters_do_not_reach_the_terminal() {
        assert_eq!(printable("主播 ok"), "主播 ok");
        assert_eq!(printable("a\x1b[2Jb\n"), "a\u{fffd}[2Jb\u{fffd}");
    }

    #[test]
    fn groups_rank_by_total_then_name() {
        let group = |name: &str, total| HotGroup {
            group: name.to_owned(),
            total,
            terms: Vec::new(),
        };
        let mut groups = vec![group("b", 5), group("c", 9), group("a", 5)];
        rank(&mut groups);
        let names: Vec<&str> = groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["c", "a", "b"]);
    }

    #[test]
    fn primaries_are_the_masters_that_are_up() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7001@17001,redis-b master - 0 0 2 connected 5461-10922
a3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected 10923-16383
a4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
a5 [::1]:7004@17004 master - 0 0 4 connected
a6 :0@0 master,noaddr - 0 0 5 disconnected
";
        assert_eq!(
            parse_primaries(nodes),
            [
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001),
                ("::1".to_owned(), 7004),
            ]
        );
    }
}
