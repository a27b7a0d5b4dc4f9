#!/usr/bin/env bash
# Builds the binary from exactly the files the Dockerfile's build stage copies, as `docker build`
# would (no container engine needed): a COPY that misses a file the build needs fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
# The build stage's COPY lines (those without --from): every word but the last is a source.
awk '/^FROM /{stage++} stage==1 && /^COPY / && !/--from=/{for(i=2;i<NF;i++) print $i}' Dockerfile |
  while read -r path; do
    mkdir -p "$context/$(dirname "$path")"
    cp -r "$path" "$context/$path"
  done
# Dependencies come from the suite's own build directory; only trendstream itself is built.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" \
  cargo build --locked --bin trendstream --manifest-path "$context/Cargo.toml"
echo "docker-context: the binary builds from the files the Dockerfile copies"
