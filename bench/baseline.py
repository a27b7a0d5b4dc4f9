"""The same job, written the straightforward way in Python: the baseline trendstream is measured
against (confluent-kafka + jieba + re + redis-py, one process).

It reads both input topics as one consumer group, decodes each JSON value, normalises the text,
finds entities with one regular expression, segments with jieba and drops stop words, counts
items in sliding event-time windows per (stream, group) with a watermark per partition, and when
a window closes writes its top-K terms to Redis (pipelined) and a JSON record to the output
topic; offsets are committed after each batch once its writes are acknowledged.

    python3 bench/baseline.py BROKERS GROUP DANMU_TOPIC TEXT_TOPIC OUTPUT_TOPIC REDIS_URL \
        [--width-ms 60000] [--slide-ms 10000] [--lateness-ms 5000] [--top-k 20]

Runs until SIGTERM or SIGINT. Requirements: bench/requirements.txt.
"""

import argparse
import collections
import json
import os
import re
import signal

import jieba
import redis
from confluent_kafka import Consumer, Producer

ENTITY = re.compile(
    r"https?://[a-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+"
    r"|[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}"
    r"|#[^#\s]{1,64}#"
    r"|#\w{1,64}"
    r"|@[\w\-]{1,30}"
)
FULL_WIDTH = {c: c - 0xFF01 + 0x21 for c in range(0xFF01, 0xFF5F)}
FULL_WIDTH[0x3000] = 0x20


def load_stop_words():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "src", "extract", "stopwords.txt")
    with open(path, encoding="utf-8") as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def extract(text, stop_words):
    text = text.translate(FULL_WIDTH).lower()
    items = set()
    for m in ENTITY.finditer(text):
        s = m.group(0)
        if s.startswith("http"):
            host = s.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
            items.add(("urls", host))
        elif s.startswith("#"):
            items.add(("hashtags", s.strip("#")))
        elif s.startswith("@"):
            items.add(("mentions", s[1:]))
        else:
            items.add(("emails", s))
    for word in jieba.lcut(text):
        word = word.strip()
        if len(word) < 2 or word in stop_words:
            continue
        if all(not c.isalpha() for c in word):
            continue
        items.add(("terms", word))
    return items


class Windows:
    """Panes of `slide` per (stream, group); a window is `width / slide` panes."""

    def __init__(self, width, slide, lateness):
        self.width, self.slide, self.lateness = width, slide, lateness
        self.panes = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
        self.messages = collections.defaultdict(collections.Counter)
        self.max_time = {}
        self.closed_end = {}

    def add(self, partition, key, ts, items):
        closed = self.closed_end.get(partition, -(2**62))
        pane = ts - ts % self.slide
        if pane + self.width <= closed:
            return []
        counter = self.panes[key][pane]
        for item in items:
            counter[item] += 1
        self.messages[key][pane] += 1
        self.max_time[partition] = max(self.max_time.get(partition, ts), ts)
        watermark = self.max_time[partition] - self.lateness
        end = watermark - watermark % self.slide
        start = self.closed_end.get(partition)
        if start is None:
            self.closed_end[partition] = end
            return []
        if end <= start:
            return []  # The watermark has not crossed a slide boundary: nothing closes.
        return self.close(partition, start, end)

    def close(self, partition, start, end):
        out = []
        for key, panes in list(self.panes.items()):
            if key[0] != partition:
                continue
            for window_end in range(start + self.slide, end + 1, self.slide):
                first = window_end - self.width
                total = collections.Counter()
                messages = 0
                for p in range(first, window_end, self.slide):
                    if p in panes:
                        total.update(panes[p])
                        messages += self.messages[key][p]
                if messages:
                    out.append((key, first, window_end, messages, total))
            for p in [p for p in panes if p + self.width <= end]:
                del panes[p]
                self.messages[key].pop(p, None)
        self.closed_end[partition] = max(end, start)
        return out


def top(counter, category, k):
    items = [(item, n) for (cat, item), n in counter.items() if cat == category]
    items.sort(key=lambda x: (-x[1], x[0]))
    return items[:k]


def main():
    ap = argparse.ArgumentParser()
    for name in ["brokers", "group", "danmu", "text", "output", "redis_url"]:
        ap.add_argument(name)
    ap.add_argument("--width-ms", type=int, default=60000)
    ap.add_argument("--slide-ms", type=int, default=10000)
    ap.add_argument("--lateness-ms", type=int, default=5000)
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--prefix", default="py:")
    args = ap.parse_args()

    stop_words = load_stop_words()
    jieba.setLogLevel(60)
    jieba.initialize()
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
            "session.timeout.ms": 6000,
        }
    )
    producer = Producer({"bootstrap.servers": args.brokers, "linger.ms": 5})
    r = redis.Redis.from_url(args.redis_url)
    group_field = {args.danmu: ("danmu", "room_id"), args.text: ("text", "source")}
    consumer.subscribe([args.danmu, args.text])
    windows = Windows(args.width_ms, args.slide_ms, args.lateness_ms)

    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while running:
        batch = consumer.consume(num_messages=5000, timeout=0.2)
        if not batch:
            continue
        closed = []
        for msg in batch:
            if msg.error():
                continue
            stream, field = group_field[msg.topic()]
            try:
                value = json.loads(msg.value())
                group = str(value[field])
                ts = int(value.get("ts") or msg.timestamp()[1])
                text = value["text"]
                if not isinstance(text, str):
                    raise ValueError("text")
            except (ValueError, KeyError, TypeError):
                producer.produce(args.output + "-dlq", msg.value(), key=msg.key())
                continue
            key = ((msg.topic(), msg.partition()), stream, group)
            closed += windows.add((msg.topic(), msg.partition()), key, ts, extract(text, stop_words))
        pipe = r.pipeline(transaction=False)
        for (_, stream, group), start, end, messages, counter in closed:
            record = {
                "stream": stream,
                "group": group,
                "window_start": start,
                "window_end": end,
                "messages": messages,
            }
            for category in ["terms", "hashtags", "mentions", "urls", "emails"]:
                record["top_" + category if category == "terms" else category] = top(
                    counter, category, args.top_k
                )
            producer.produce(args.output, json.dumps(record), key=f"{stream}:{group}:{start}")
            board = f"{args.prefix}hot:{stream}:{group}"
            pipe.delete(board)
            terms = record["top_terms"]
            if terms:
                pipe.zadd(board, {t: n for t, n in terms})
                pipe.expire(board, 3600)
        pipe.execute()
        producer.flush()
        consumer.commit(asynchronous=False)
    consumer.close()


if __name__ == "__main__":
    main()
