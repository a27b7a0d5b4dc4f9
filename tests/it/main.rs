//! Integration tests: trendstream against a real broker (tansu) and a real Redis.

#[path = "../common/mod.rs"]
mod common;

mod chaos;
mod failures;
mod memory;
mod pipeline;
mod positions;
mod process;
mod security;
