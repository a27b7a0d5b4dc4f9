#!/usr/bin/env bash
# The property tests (decode, extract, a replay from any checkpoint) with N cases each
# (default 2000; CI runs 256, and 32 of the engine's). A failure prints the smallest case found:
# make it a fixed test beside the property.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PROPTEST_CASES="${1:-2000}" cargo test --locked --lib props -- --nocapture
