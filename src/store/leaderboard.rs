//! Leaderboards: the latest closed window of each group, as a top-K sorted set.
//!
//! A group's leaderboard is the sorted set `<prefix>hot:<stream>:<group>`: the top-K terms of
//! its latest closed window. A Lua script replaces it only if the window is newer than the one
//! written last, which it keeps in `{<prefix>hot:<stream>:<group>}:window` — the hash tag puts
//! both keys in one cluster slot. Writing a window twice changes nothing.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;

use super::{in_flight, key_part, Connection};
use crate::config::RedisConfig;
use crate::sink::SinkError;
use crate::window::List;

static LEADERBOARD: LazyLock<Script> = LazyLock::new(|| Script::new(LEADERBOARD_LUA));

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

/// One leaderboard to write.
#[derive(Debug, Clone, Copy)]
pub struct Leaderboard<'a> {
    pub stream: &'a str,
    pub group: &'a str,
    pub window_end: i64,
    pub terms: List<'a>,
}

/// The leaderboards of every group.
#[derive(Clone)]
pub struct Leaderboards {
    conn: Connection,
    key_prefix: String,
    ttl_ms: u64,
}

impl Leaderboards {
    /// Leaderboards under `redis.key_prefix`, each kept for `redis.ttl`.
    pub fn new(conn: Connection, config: &RedisConfig) -> Leaderboards {
        Leaderboards {
            conn,
            key_prefix: config.key_prefix.clone(),
            ttl_ms: config.ttl.as_millis() as u64,
        }
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
        let writes = latest.into_values().map(|b| self.write_one(b)).collect();
        in_flight(writes).await.map_err(SinkError::RedisWrite)?;
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
            call.arg(n).arg(term);
        }
        call.invoke_async(&mut conn).await
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaderboard_keys_encode_their_parts() {
        assert_eq!(leaderboard_key("p:", "danmu", "r1"), "p:hot:danmu:r1");
        assert_eq!(leaderboard_key("", "danmu", "{r}"), "hot:danmu:%7Br%7D");
    }
}
