#!/usr/bin/env bash
# The demo: a local broker and Redis, sample traffic for 20 live rooms and a news feed,
# trendstream consuming it, and the live hot words of the busiest rooms on screen.
# Ctrl-C stops everything. DEMO_SECONDS=N stops after N seconds instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

echo "demo: building trendstream (release)"
cargo build --release --locked --quiet
bin=target/release/trendstream

work=$(mktemp -d -t trendstream-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: nothing listens on port $1" >&2
  return 1
}

kafka_port=$(free_port)
redis_port=$(free_port)
tansu broker --listener-url "tcp://127.0.0.1:$kafka_port" \
  --advertised-listener-url "tcp://127.0.0.1:$kafka_port" >"$work/tansu.log" 2>&1 &
pids+=($!)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  >"$work/redis.log" 2>&1 &
pids+=($!)
wait_port "$kafka_port"
wait_port "$redis_port"
for topic in danmu text hot-windows trendstream-dlq; do
  tansu topic create "$topic" --broker "tcp://127.0.0.1:$kafka_port" --partitions 4 >/dev/null
done
echo "demo: broker on 127.0.0.1:$kafka_port, Redis on 127.0.0.1:$redis_port"

"$bin" generate --brokers "127.0.0.1:$kafka_port" --rate 2000 --rooms 20 --bad-every 500 \
  >"$work/generate.log" 2>&1 &
pids+=($!)
TRENDSTREAM_KAFKA__BROKERS="127.0.0.1:$kafka_port" \
TRENDSTREAM_REDIS__URL="redis://127.0.0.1:$redis_port" \
  "$bin" run >"$work/trendstream.log" 2>&1 &
pids+=($!)
echo "demo: 2000 records/s into 20 rooms; windows of 60 s every 10 s; first words in about 15 s"

watch_args=(watch --redis "redis://127.0.0.1:$redis_port" --stream danmu --groups 6 --terms 8)
if [ -n "${DEMO_SECONDS:-}" ]; then
  end=$((SECONDS + DEMO_SECONDS))
  while [ $SECONDS -lt "$end" ]; do
    sleep 10
    echo "--- after $SECONDS s"
    "$bin" "${watch_args[@]}" --once
  done
  echo "--- trendstream log (last lines)"
  tail -n 5 "$work/trendstream.log"
else
  "$bin" "${watch_args[@]}"
fi
