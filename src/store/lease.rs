//! Leases: which partitions have a live owner, and the group's one rejoin (see
//! `run::ownership` for why).
//!
//! A partition's lease is the string `{<prefix>lease:<kafka group>}:<topic>:<partition>`,
//! holding its owner's name with a time to live; the group's rejoin claim is
//! `{<prefix>lease:<kafka group>}:rejoin`, and `{<prefix>lease:<kafka group>}:rebalancing`
//! says, for a lease time, that some member is in a rebalance (between losing its partitions
//! and being given new ones). One hash tag keeps a group's leases in one cluster slot, so they
//! are read with one `MGET`.

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

    /// Sets (or renews) `owner`'s lease on each of `assigned` for `ttl` (and, when `rebalancing`,
    /// the group's rebalancing mark), then tells whether each of `watched` has a live lease and
    /// whether some member is rebalancing; one round trip.
    pub async fn renew(
        &self,
        kafka_group: &str,
        owner: &str,
        assigned: &[(String, i32)],
        rebalancing: bool,
        ttl: Duration,
        watched: &[(String, i32)],
    ) -> Result<Renewal, SinkError> {
        let mark = group_key(&self.key_prefix, kafka_group, "rebalancing");
        let leases = assigned
            .iter()
            .map(|(topic, partition)| lease_key(&self.key_prefix, kafka_group, topic, *partition));
        let mut pipe = redis::pipe();
        for key in leases.chain(rebalancing.then(|| mark.clone())) {
            pipe.cmd("SET")
                .arg(key)
                .arg(owner)
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .ignore();
        }
        // The mark, then the leases.
        let mget = pipe.cmd("MGET").arg(&mark);
        for (topic, partition) in watched {
            mget.arg(lease_key(&self.key_prefix, kafka_group, topic, *partition));
        }
        let mut conn = self.conn.clone();
        let (values,): (Vec<Option<String>>,) = pipe
            .query_async(&mut conn)
            .await
            .map_err(SinkError::RedisRead)?;
        let (mark, leases) = values.split_first().ok_or_else(|| {
            SinkError::RedisRead(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "MGET answered no value",
            )))
        })?;
        Ok(Renewal {
            leased: leases.iter().map(Option::is_some).collect(),
            rebalancing: mark.is_some(),
        })
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
            .arg(group_key(&self.key_prefix, kafka_group, "rejoin"))
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

/// What [`Leases::renew`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    /// Whether each watched partition has a live lease.
    pub leased: Vec<bool>,
    /// Whether some member of the group marked itself as rebalancing within a lease time.
    pub rebalancing: bool,
}

/// `{<prefix>lease:<kafka group>}`: the hash tag that keeps a group's leases, its rejoin claim
/// and its rebalancing mark in one cluster slot.
fn lease_tag(key_prefix: &str, kafka_group: &str) -> String {
    format!(
        "{{{}lease:{}}}",
        key_part(key_prefix),
        key_part(kafka_group)
    )
}

fn lease_key(key_prefix: &str, kafka_group: &str, topic: &str, partition: i32) -> String {
    group_key(key_prefix, kafka_group, &format!("{topic}:{partition}"))
}

/// `{<prefix>lease:<kafka group>}:<name>`: a key of the group's slot.
fn group_key(key_prefix: &str, kafka_group: &str, name: &str) -> String {
    format!("{}:{name}", lease_tag(key_prefix, kafka_group))
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
        assert_eq!(
            group_key("p:", "g", "rebalancing"),
            "{p:lease:g}:rebalancing"
        );
    }
}
