//! Leaderboards: the latest closed window of each group, as a top-K sorted set.
//!
//! A group's leaderboard is the sorted set `<prefix>hot:<stream>:<group>`: the top-K terms of
//! its latest closed window. A Lua script replaces it only if the window is newer than the one
//! written last, which it keeps in `{<prefix>hot:<stream>:<group>}:window` — the hash tag puts
//! both keys in one cluster slot. Writing a window twice changes nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use redis::{Cmd, ErrorKind, Script, ServerErrorKind};

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
        let mut keys = (String::new(), String::new());
        let calls: Vec<Cmd> = latest
            .into_values()
            .map(|board| self.call(board, &mut keys))
            .collect();
        let writes = calls.iter().map(|call| self.send(call)).collect();
        in_flight(writes).await.map_err(SinkError::RedisWrite)?;
        Ok(())
    }

    /// The script call that writes `board`, built in one go (`keys` are buffers for its two
    /// keys): a leaderboard's arguments are many short strings.
    fn call(&self, board: &Leaderboard<'_>, (key, fence): &mut (String, String)) -> Cmd {
        key.clear();
        write_leaderboard_key(key, &self.key_prefix, board.stream, board.group);
        fence.clear();
        write!(fence, "{{{key}}}:window").expect("writing to a string cannot fail");
        // Seven arguments, then a count (at most 20 digits) and a term per item.
        let items: usize = board.terms.map(|(term, _)| term.len() + 20).sum();
        let mut call = Cmd::with_capacity(
            7 + 2 * board.terms.len(),
            LEADERBOARD.get_hash().len() + 2 * key.len() + 60 + items,
        );
        call.arg("EVALSHA")
            .arg(LEADERBOARD.get_hash())
            .arg(2)
            .arg(key.as_str())
            .arg(fence.as_str())
            .arg(board.window_end)
            .arg(self.ttl_ms);
        for (term, n) in board.terms {
            call.arg(n).arg(term);
        }
        call
    }

    /// Sends a script call; where Redis does not know the script (a restart, a new cluster
    /// node), gives it the script and sends the call again.
    async fn send(&self, call: &Cmd) -> redis::RedisResult<i64> {
        let mut conn = self.conn.clone();
        match call.query_async(&mut conn).await {
            Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                LEADERBOARD.load_async(&mut conn).await?;
                call.query_async(&mut conn).await
            }
            answer => answer,
        }
    }
}

/// `<prefix>hot:<stream>:<group>`, each part through [`key_part`].
pub fn leaderboard_key(prefix: &str, stream: &str, group: &str) -> String {
    let mut key = String::new();
    write_leaderboard_key(&mut key, prefix, stream, group);
    key
}

/// Appends [`leaderboard_key`] to `out`.
fn write_leaderboard_key(out: &mut String, prefix: &str, stream: &str, group: &str) {
    write!(
        out,
        "{}hot:{}:{}",
        key_part(prefix),
        key_part(stream),
        key_part(group)
    )
    .expect("writing to a string cannot fail");
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
