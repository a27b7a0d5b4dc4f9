//! trendstream: real-time hot words from Kafka.
//!
//! # Layout
//!
//! One module per stage, in the order data flows:
//!
//! - [`config`]: the defaults, a TOML file and `TRENDSTREAM_*` variables, validated once.
//! - [`run`]: the consumer loop — poll and process a batch while the one before is written,
//!   checkpointed and committed.
//! - [`decode`]: a record's JSON value into group key, event time and text, or why not.
//! - [`extract`]: terms, hashtags, mentions, URL hosts, e-mails and watched keywords of a text.
//! - [`window`]: event-time sliding windows per (stream, group) of one partition.
//! - [`engine`]: decode → extract → window for a batch, its partitions in parallel.
//! - [`sink`]: window records and dead letters to Kafka, with a flush barrier; the errors of
//!   every output.
//! - [`store`]: Redis, over one connection to a node or a cluster: leaderboards, the partitions'
//!   checkpoints (type, load and save) and their leases.
//!
//! Beside the pipeline: [`metrics`] declares every metric once, and the engine's per-batch
//! counts; [`observe`] serves metrics, readiness and the live [`page`]; [`hot`] reads a
//! stream's busiest groups from Redis, bounded, for the page and [`watch`], which prints them;
//! [`top`] shows the page's numbers in a terminal; [`generate`] makes sample traffic;
//! [`redact`] hides
//! secrets wherever configuration values are shown; [`retry`] tries a failed write, read or
//! connect again with jittered back-off.
//! `decode`, `extract`, `window` and `engine` are pure: values in, values out, no I/O.

pub mod config;
pub mod decode;
pub mod engine;
pub mod extract;
pub mod generate;
pub mod hot;
pub mod metrics;
pub mod observe;
pub mod page;
pub mod redact;
pub mod retry;
pub mod run;
pub mod sink;
pub mod store;
pub mod top;
pub mod watch;
pub mod window;
