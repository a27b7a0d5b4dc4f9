//! The Redis sink: leaderboards and partition checkpoints, on one Redis or a Redis Cluster.
//!
//! - A group's leaderboard is the sorted set `<prefix>hot:<stream>:<group>`: the top-K terms of
//!   its latest closed window. A Lua script replaces it only if the window is newer than the
//!   one written last, which it keeps in `{<prefix>hot:<stream>:<group>}:window` — the hash tag
//!   puts both keys in one cluster slot. Writing a window twice changes nothing.
//! - Every part of a key that comes from outside (the group key from the input; the prefix,
//!   stream and Kafka group from the configuration) has its `{`, `}` and `%` percent-encoded
//!   ([`key_part`]), so no part can open a hash tag of its own and split a leaderboard from its
//!   fence, or a group's leases, across slots.
//! - A partition's checkpoint is the hash `<prefix>ckpt:<kafka group>:<topic>:<partition>`,
//!   replaced only by a checkpoint that is not behind it (see [`crate::engine::Checkpoint`]).
//! - A partition's lease is the string `{<prefix>lease:<kafka group>}:<topic>:<partition>`,
//!   holding its owner's name with a time to live; one hash tag keeps a group's leases in one
//!   cluster slot, so they are read with one `MGET`.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use futures::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{ClientTlsConfig, Cmd, Pipeline, RedisFuture, Script, TlsCertificates, Value};

use super::SinkError;
use crate::config::RedisConfig;
use crate::engine::Checkpoint;
use crate::window::WatermarkState;

/// The certificates `config` names for TLS, read from their files; `None` where it names none
/// (plain connections, or `rediss://` checked against the system's certificate authorities).
fn tls_certificates(config: &RedisConfig) -> redis::RedisResult<Option<TlsCertificates>> {
    if config.tls_ca_file.is_empty() && config.tls_cert_file.is_empty() {
        return Ok(None);
    }
    let read = |key: &str, path: &str| -> redis::RedisResult<Option<Vec<u8>>> {
        if path.is_empty() {
            return Ok(None);
        }
        std::fs::read(path).map(Some).map_err(|err| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "cannot read a TLS file",
                format!("redis.{key} ({path}): {err}"),
            ))
        })
    };
    let root_cert = read("tls_ca_file", &config.tls_ca_file)?;
    let client_tls = match (
        read("tls_cert_file", &config.tls_cert_file)?,
        read("tls_key_file", &config.tls_key_file)?,
    ) {
        (Some(client_cert), Some(client_key)) => Some(ClientTlsConfig {
            client_cert,
            client_key,
        }),
        _ => None,
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// Scripts sent at once on the multiplexed connection.
const IN_FLIGHT: usize = 256;

/// Scripts are called by their SHA1 (`EVALSHA`), routed by their first key; a node that does
/// not know a script yet (a cluster node, a restarted Redis) answers `NOSCRIPT`, and it is
/// loaded on every node and called again.
static LEADERBOARD: LazyLock<Script> = LazyLock::new(|| Script::new(LEADERBOARD_LUA));
static CHECKPOINT: LazyLock<Script> = LazyLock::new(|| Script::new(CHECKPOINT_LUA));

const LEADERBOARD_LUA: &str = r"
-- KEYS[1] leaderboard, KEYS[2] its fence; ARGV[1] window_end, ARGV[2] ttl (ms), then
-- score, member pairs.
local fence = redis.call('GET', KEYS[2])
if fence and tonumber(fence) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 1000 do
  redis.call('ZADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if #ARGV > 2 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
";

const CHECKPOINT_LUA: &str = r"
-- KEYS[1] checkpoint; ARGV: next, resume, max_event_time, closed_end, settings.
local next = redis.call('HGET', KEYS[1], 'next')
if next and tonumber(next) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'next', ARGV[1], 'resume', ARGV[2], 'max_event_time', ARGV[3],
  'closed_end', ARGV[4], 'settings', ARGV[5])
return 1
";

/// One leaderboard to write.
#[derive(Debug, Clone, Copy)]
pub struct Leaderboard<'a> {
    pub stream: &'a str,
    pub group: &'a str,
    pub window_end: i64,
    pub terms: &'a [(String, u64)],
}

/// A connection to one Redis or to a Redis Cluster; both multiplex and reconnect.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

#[derive(Clone)]
pub struct RedisSink {
    conn: Connection,
    key_prefix: String,
    ttl_ms: u64,
}

impl RedisSink {
    /// Connects once; the connection then reconnects by itself.
    pub async fn connect(config: &RedisConfig) -> Result<RedisSink, SinkError> {
        let connect_err = |source| SinkError::RedisConnect {
            url: crate::redact::text(&config.url),
            source,
        };
        let certificates = tls_certificates(config).map_err(connect_err)?;
        let conn = if config.cluster {
            let nodes: Vec<&str> = config.url.split(',').map(str::trim).collect();
            let mut builder = ClusterClient::builder(nodes)
                .connection_timeout(Duration::from_secs(5))
                .response_timeout(Duration::from_secs(10));
            if let Some(certificates) = certificates {
                builder = builder.certs(certificates);
            }
            let client = builder.build().map_err(connect_err)?;
            Connection::Cluster(client.get_async_connection().await.map_err(connect_err)?)
        } else {
            let client = match certificates {
                Some(certificates) => {
                    redis::Client::build_with_tls(config.url.as_str(), certificates)
                }
                None => redis::Client::open(config.url.as_str()),
            }
            .map_err(connect_err)?;
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_number_of_retries(2);
            let manager = ConnectionManager::new_with_config(client, manager_config)
                .await
                .map_err(connect_err)?;
            Connection::Single(manager)
        };
        Ok(RedisSink {
            conn,
            key_prefix: config.key_prefix.clone(),
            ttl_ms: config.ttl.as_millis() as u64,
        })
    }

    /// The key of a group's leaderboard.
    pub fn key(&self, stream: &str, group: &str) -> String {
        leaderboard_key(&self.key_prefix, stream, group)
    }

    /// Writes each group's latest window among `boards`, unless a window as new or newer is
    /// there already.
    pub async fn write(&self, boards: &[Leaderboard<'_>]) -> Result<(), SinkError> {
        let mut latest: HashMap<(&str, &str), &Leaderboard<'_>> = HashMap::new();
        for board in boards {
            let slot = latest.entry((board.stream, board.group)).or_insert(board);
            if board.window_end >= slot.window_end {
                *slot = board;
            }
        }
        let latest: Vec<&Leaderboard<'_>> = latest.into_values().collect();
        for chunk in latest.chunks(IN_FLIGHT) {
            try_join_all(chunk.iter().map(|board| self.write_one(board)))
                .await
                .map_err(SinkError::RedisWrite)?;
        }
        Ok(())
    }

    async fn write_one(&self, board: &Leaderboard<'_>) -> redis::RedisResult<i64> {
        let mut conn = self.conn.clone();
        let key = self.key(board.stream, board.group);
        let mut call = LEADERBOARD.key(&key);
        call.key(format!("{{{key}}}:window"))
            .arg(board.window_end)
            .arg(self.ttl_ms);
        for (term, n) in board.terms {
            call.arg(*n).arg(term.as_str());
        }
        call.invoke_async(&mut conn).await
    }

    fn checkpoint_key(&self, kafka_group: &str, topic: &str, partition: i32) -> String {
        format!(
            "{}ckpt:{}:{topic}:{partition}",
            key_part(&self.key_prefix),
            key_part(kafka_group)
        )
    }

    /// Saves checkpoints; returns those refused because a newer one is stored (this instance
    /// is behind another owner of the partition).
    pub async fn save_checkpoints<'a>(
        &self,
        kafka_group: &str,
        checkpoints: &'a [(&'a str, i32, Checkpoint)],
    ) -> Result<Vec<(&'a str, i32)>, SinkError> {
        let mut results = Vec::with_capacity(checkpoints.len());
        for chunk in checkpoints.chunks(IN_FLIGHT) {
            let saved = try_join_all(chunk.iter().map(|(topic, partition, c)| {
                self.save_checkpoint(kafka_group, topic, *partition, c)
            }))
            .await
            .map_err(SinkError::RedisWrite)?;
            results.extend(chunk.iter().zip(saved).map(|((t, p, _), s)| (*t, *p, s)));
        }
        Ok(results
            .into_iter()
            .filter(|(_, _, saved)| *saved == 0)
            .map(|(t, p, _)| (t, p))
            .collect())
    }

    async fn save_checkpoint(
        &self,
        kafka_group: &str,
        topic: &str,
        partition: i32,
        c: &Checkpoint,
    ) -> redis::RedisResult<i64> {
        let mut conn = self.conn.clone();
        CHECKPOINT
            .key(self.checkpoint_key(kafka_group, topic, partition))
            .arg(c.next)
            .arg(c.resume)
            .arg(opt(c.watermark.max_event_time))
            .arg(opt(c.watermark.closed_end))
            .arg(c.settings.to_string())
            .invoke_async(&mut conn)
            .await
    }

    /// The stored checkpoint of a partition, if any.
    pub async fn load_checkpoint(
        &self,
        kafka_group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Checkpoint>, SinkError> {
        let mut conn = self.conn.clone();
        let key = self.checkpoint_key(kafka_group, topic, partition);
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(SinkError::RedisRead)?;
        let int = |name: &str| fields.get(name).and_then(|v| v.parse::<i64>().ok());
        let (Some(next), Some(resume)) = (int("next"), int("resume")) else {
            return Ok(None);
        };
        Ok(Some(Checkpoint {
            next,
            resume,
            watermark: WatermarkState {
                max_event_time: int("max_event_time"),
                closed_end: int("closed_end"),
            },
            settings: fields
                .get("settings")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        }))
    }
}

impl RedisSink {
    /// `{<prefix>lease:<kafka group>}`: the hash tag that keeps a group's leases, and its
    /// rejoin claim, in one cluster slot.
    fn lease_tag(&self, kafka_group: &str) -> String {
        format!(
            "{{{}lease:{}}}",
            key_part(&self.key_prefix),
            key_part(kafka_group)
        )
    }

    fn lease_key(&self, kafka_group: &str, topic: &str, partition: i32) -> String {
        format!("{}:{topic}:{partition}", self.lease_tag(kafka_group))
    }

    /// Sets (or renews) `owner`'s lease on each of `assigned` for `ttl`, then tells whether each
    /// of `watched` has a live lease; one round trip.
    pub async fn renew_leases(
        &self,
        kafka_group: &str,
        owner: &str,
        assigned: &[(String, i32)],
        ttl: Duration,
        watched: &[(String, i32)],
    ) -> Result<Vec<bool>, SinkError> {
        let mut pipe = redis::pipe();
        for (topic, partition) in assigned {
            pipe.cmd("SET")
                .arg(self.lease_key(kafka_group, topic, *partition))
                .arg(owner)
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .ignore();
        }
        let mut conn = self.conn.clone();
        if watched.is_empty() {
            if !assigned.is_empty() {
                pipe.query_async::<()>(&mut conn)
                    .await
                    .map_err(SinkError::RedisWrite)?;
            }
            return Ok(Vec::new());
        }
        let mget = pipe.cmd("MGET");
        for (topic, partition) in watched {
            mget.arg(self.lease_key(kafka_group, topic, *partition));
        }
        let (owners,): (Vec<Option<String>>,) = pipe
            .query_async(&mut conn)
            .await
            .map_err(SinkError::RedisRead)?;
        Ok(owners.into_iter().map(|o| o.is_some()).collect())
    }

    /// Claims the group's one rejoin for `ttl`; false when another instance holds it.
    pub async fn claim_rejoin(
        &self,
        kafka_group: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, SinkError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}:rejoin", self.lease_tag(kafka_group)))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(SinkError::RedisWrite)?;
        Ok(set.is_some())
    }
}

fn opt(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `<prefix>hot:<stream>:<group>`, each part through [`key_part`].
pub fn leaderboard_key(prefix: &str, stream: &str, group: &str) -> String {
    format!(
        "{}hot:{}:{}",
        key_part(prefix),
        key_part(stream),
        key_part(group)
    )
}

/// `text` as a part of a Redis key: `{`, `}` and `%` percent-encoded (`%7B`, `%7D`, `%25`),
/// everything else as it is. A Redis Cluster puts a key in the slot of its first `{…}`, so a
/// brace in a group key (which comes from the input) would split a leaderboard from its fence:
/// with none, `{<key>}:window` always shares `<key>`'s slot.
pub fn key_part(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['{', '}', '%']) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out.into()
}

/// The text a [`key_part`] was made from.
pub fn from_key_part(part: &str) -> String {
    part.replace("%7B", "{")
        .replace("%7D", "}")
        .replace("%25", "%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_hold_no_braces_and_decode_to_what_they_were() {
        for text in ["r1001", "a{b", "}x{", "{y}", "100%", "%7B", "房间{1}", ""] {
            let part = key_part(text);
            assert!(!part.contains(['{', '}']), "{part}");
            assert_eq!(from_key_part(&part), text);
        }
        assert_eq!(leaderboard_key("p:", "danmu", "r1"), "p:hot:danmu:r1");
        assert_eq!(leaderboard_key("", "danmu", "{r}"), "hot:danmu:%7Br%7D");
    }
}
