//! Integration tests: trendstream against a real broker (tansu) and a real Redis.

#[path = "../common/mod.rs"]
mod common;
/// Process measurements, shared with the benchmarks (which use more of them).
#[path = "../../benches/support/measure.rs"]
#[allow(dead_code)]
mod measure;

mod chaos;
mod deploy;
mod failures;
mod memory;
mod metrics;
mod page;
mod pipeline;
mod positions;
mod process;
mod security;
