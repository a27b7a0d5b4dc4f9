//! Leases: which partitions have a live owner, and the group's one rejoin (see
//! `run::ownership` for why).
//!
//! A partition's lease is the string `{<prefix>lease:<kafka group>}:<topic>:<partition>`,
//! holding its owner's name with a time to live; the group's rejoin claim is
//! `{<prefix>lease:<kafka group>}:rejoin`. One hash tag keeps a group's leases in one cluster
//! slot, so they are read with one `MGET`.

use std::time::Duration;

use super::{key_part, Connection};
use crate::config::RedisConfig;
use crate::sink::SinkError;

/// The leases of every partition, and the rejoin claims.
#[derive(Clone)]
pub struct Leases {
    conn: Connection,
    key_prefix: String,
}

impl Leases {
    /// Leases under `redis.key_prefix`.
    pub fn new(conn: Connection, config: &RedisConfig) -> Leases {
        Leases {
            conn,
            key_prefix: config.key_prefix.clone(),
        }
    }

    /// Sets (or renews) `owner`'s lease on each of `assigned` for `ttl`, then tells whether each
    /// of `watched` has a live lease; one round trip.
    pub async fn renew(
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
                .arg(lease_key(&self.key_prefix, kafka_group, topic, *partition))
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
            mget.arg(lease_key(&self.key_prefix, kafka_group, topic, *partition));
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
            .arg(format!(
                "{}:rejoin",
                lease_tag(&self.key_prefix, kafka_group)
            ))
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

/// `{<prefix>lease:<kafka group>}`: the hash tag that keeps a group's leases, and its rejoin
/// claim, in one cluster slot.
fn lease_tag(key_prefix: &str, kafka_group: &str) -> String {
    format!(
        "{{{}lease:{}}}",
        key_part(key_prefix),
        key_part(kafka_group)
    )
}

fn lease_key(key_prefix: &str, kafka_group: &str, topic: &str, partition: i32) -> String {
    format!("{}:{topic}:{partition}", lease_tag(key_prefix, kafka_group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_groups_leases_share_one_hash_tag() {
        assert_eq!(lease_key("p:", "g", "danmu", 3), "{p:lease:g}:danmu:3");
        assert_eq!(
            lease_key("", "g{1}", "danmu", 0),
            "{lease:g%7B1%7D}:danmu:0"
        );
        assert_eq!(lease_tag("p:", "g"), "{p:lease:g}");
    }
}
