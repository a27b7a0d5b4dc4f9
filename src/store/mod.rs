//! The Redis store: one connection, to one Redis or a Redis Cluster, shared by three jobs.
//!
//! - [`leaderboard`]: each group's top-K terms of its latest closed window.
//! - [`checkpoint`]: where each partition can be continued from.
//! - [`lease`]: which partitions have a live owner, and the group's one rejoin.
//!
//! Every part of a key that comes from outside (the group key from the input; the prefix,
//! stream and Kafka group from the configuration) has its `{`, `}` and `%` percent-encoded
//! ([`key_part`]), so no part can open a hash tag of its own and split a leaderboard from its
//! fence, or a group's leases, across slots.
//!
//! Scripts are called by their SHA1 (`EVALSHA`), routed by their first key; a node that does
//! not know a script yet (a cluster node, a restarted Redis) answers `NOSCRIPT`, and it is
//! loaded on every node and called again.

pub mod checkpoint;
pub mod leaderboard;
pub mod lease;

use std::future::Future;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{ClientTlsConfig, Cmd, Pipeline, RedisFuture, TlsCertificates, Value};

use crate::config::RedisConfig;
use crate::sink::SinkError;

/// Scripts waiting for their answer on the multiplexed connection, at most.
const IN_FLIGHT: usize = 256;

/// Runs `calls` with at most [`IN_FLIGHT`] of them waiting for Redis at any time, the next
/// sent as soon as one is answered; their results in the order given, or the first error.
pub(crate) async fn in_flight<T, F>(calls: Vec<F>) -> redis::RedisResult<Vec<T>>
where
    F: Future<Output = redis::RedisResult<T>>,
{
    stream::iter(calls).buffered(IN_FLIGHT).try_collect().await
}

/// A connection to one Redis or to a Redis Cluster; both multiplex and reconnect. Clones share
/// it.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Connects once; the connection then reconnects by itself.
    pub async fn connect(config: &RedisConfig) -> Result<Connection, SinkError> {
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
        Ok(conn)
    }
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
    }
}
