//! Checkpoints: where each partition can be continued from, the [`Checkpoint`] type and how it
//! is stored. The engine makes and restores them (see [`crate::engine`], "Checkpoints"); the
//! writer saves them once a batch is written, and a partition taken up loads its own.
//!
//! A partition's checkpoint is the hash `<prefix>ckpt:<kafka group>:<topic>:<partition>` with
//! the fields `next`, `resume`, `max_event_time`, `closed_end` (empty for none) and `settings`.
//! A Lua script replaces it only by a checkpoint that is not behind it: an instance behind
//! another owner of the partition learns so when its save is refused.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;

use super::{in_flight, key_part, Connection};
use crate::config::RedisConfig;
use crate::sink::SinkError;
use crate::window::WatermarkState;

/// Where a partition can be continued from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Replay starts here: the first offset an open window holds (`next` when none does).
    pub resume: i64,
    /// The offset after the last record processed.
    pub next: i64,
    pub watermark: WatermarkState,
    /// Fingerprint of the settings that shape the windows: a checkpoint made under other
    /// settings is not used.
    pub settings: u64,
}

static CHECKPOINT: LazyLock<Script> = LazyLock::new(|| Script::new(CHECKPOINT_LUA));

const CHECKPOINT_LUA: &str = r"
-- KEYS[1] checkpoint; ARGV: next, resume, max_event_time, closed_end, settings.
local next = redis.call('HGET', KEYS[1], 'next')
if next and tonumber(next) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'next', ARGV[1], 'resume', ARGV[2], 'max_event_time', ARGV[3],
  'closed_end', ARGV[4], 'settings', ARGV[5])
return 1
";

impl Checkpoint {
    /// The script's arguments: next, resume, max_event_time, closed_end, settings.
    fn to_args(self) -> [String; 5] {
        [
            self.next.to_string(),
            self.resume.to_string(),
            opt(self.watermark.max_event_time),
            opt(self.watermark.closed_end),
            self.settings.to_string(),
        ]
    }

    /// The checkpoint a stored hash holds; `None` without `next` and `resume`.
    fn from_fields(fields: &HashMap<String, String>) -> Option<Checkpoint> {
        let int = |name: &str| fields.get(name).and_then(|v| v.parse::<i64>().ok());
        let (Some(next), Some(resume)) = (int("next"), int("resume")) else {
            return None;
        };
        Some(Checkpoint {
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
        })
    }
}

/// `<prefix>ckpt:<kafka group>:<topic>:<partition>`.
fn checkpoint_key(key_prefix: &str, kafka_group: &str, topic: &str, partition: i32) -> String {
    format!(
        "{}ckpt:{}:{topic}:{partition}",
        key_part(key_prefix),
        key_part(kafka_group)
    )
}

fn opt(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The checkpoints of every partition.
#[derive(Clone)]
pub struct Checkpoints {
    conn: Connection,
    key_prefix: String,
}

impl Checkpoints {
    /// Checkpoints under `redis.key_prefix`.
    pub fn new(conn: Connection, config: &RedisConfig) -> Checkpoints {
        Checkpoints {
            conn,
            key_prefix: config.key_prefix.clone(),
        }
    }

    /// Saves checkpoints; returns those refused because a newer one is stored (this instance
    /// is behind another owner of the partition).
    pub async fn save<'a>(
        &self,
        kafka_group: &str,
        checkpoints: &'a [(&'a str, i32, Checkpoint)],
    ) -> Result<Vec<(&'a str, i32)>, SinkError> {
        let saves = checkpoints
            .iter()
            .map(|(topic, partition, c)| self.save_one(kafka_group, topic, *partition, c))
            .collect();
        let saved = in_flight(saves).await.map_err(SinkError::RedisWrite)?;
        Ok(checkpoints
            .iter()
            .zip(saved)
            .filter(|(_, saved)| *saved == 0)
            .map(|((topic, partition, _), _)| (*topic, *partition))
            .collect())
    }

    async fn save_one(
        &self,
        kafka_group: &str,
        topic: &str,
        partition: i32,
        c: &Checkpoint,
    ) -> redis::RedisResult<i64> {
        let mut conn = self.conn.clone();
        let mut call = CHECKPOINT.key(checkpoint_key(
            &self.key_prefix,
            kafka_group,
            topic,
            partition,
        ));
        for arg in c.to_args() {
            call.arg(arg);
        }
        call.invoke_async(&mut conn).await
    }

    /// The stored checkpoint of a partition, if any.
    pub async fn load(
        &self,
        kafka_group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Checkpoint>, SinkError> {
        let mut conn = self.conn.clone();
        let key = checkpoint_key(&self.key_prefix, kafka_group, topic, partition);
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(SinkError::RedisRead)?;
        Ok(Checkpoint::from_fields(&fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash the script stores for `c`.
    fn stored(c: Checkpoint) -> HashMap<String, String> {
        ["next", "resume", "max_event_time", "closed_end", "settings"]
            .into_iter()
            .map(str::to_owned)
            .zip(c.to_args())
            .collect()
    }

    #[test]
    fn a_stored_checkpoint_reads_back_as_it_was() {
        let watermarks = [
            WatermarkState::default(),
            WatermarkState {
                max_event_time: Some(1_700_000_123_456),
                closed_end: Some(-60_000),
            },
        ];
        for watermark in watermarks {
            let c = Checkpoint {
                resume: 3_456,
                next: 4_000,
                watermark,
                settings: u64::MAX,
            };
            assert_eq!(Checkpoint::from_fields(&stored(c)), Some(c));
        }
        assert_eq!(Checkpoint::from_fields(&HashMap::new()), None);
    }

    #[test]
    fn checkpoint_keys_name_the_group_topic_and_partition() {
        assert_eq!(checkpoint_key("p:", "g", "danmu", 3), "p:ckpt:g:danmu:3");
        assert_eq!(
            checkpoint_key("", "{g}", "danmu", 0),
            "ckpt:%7Bg%7D:danmu:0"
        );
    }
}
