#!/usr/bin/env bash
# N seeded chaos runs (default 20): three instances, one `kill -9`ed and restarted five times
# while records are processed, each run compared with a clean one. Prints each seed's verdict
# and "chaos: K of N seeded runs exact". CHAOS_SEED=S repeats runs S, S+1, ...;
# CHAOS_RECORDS=R sets the data set's size (default 100000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
CHAOS_RUNS="${1:-20}" cargo test --locked --test it -- \
  chaos::kill_9_while_records_are_processed_changes_no_count_over_seeded_runs --nocapture
