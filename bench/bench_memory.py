"""Processor memory over a long backlog: RSS sampled while it learns N messages (default 1M).

``python -m bench.bench_memory [--messages 1000000]`` starts a private broker on free ports,
writes N synthetic raw records (the ingest's format), runs ``python -m processor`` over them and
samples its resident memory every second. Flat means: the RSS after the first 10% stays within a
small band while the remaining 90% are learned (models are fixed-size; the duplicate rule's seen-id
sets are the one structure that grows with the data). Writes ``bench/results/memory-processor.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from infra.broker import BrokerConfig, LocalBroker
from infra.testing import free_port, kill, start
from kappaml import synthetic
from kappaml.dataset import builtin
from kappaml.kafka import KafkaSettings
from kappaml.records import encode_record, make_record, model_key, parse_row
from kappaml.topics import Topics, ensure_topics

RESULTS = Path(__file__).resolve().parent / "results" / "memory-processor.json"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def produce(kafka: KafkaSettings, topic: str, n: int, work: Path) -> None:
    import csv

    dataset = builtin("co2")
    base = synthetic.write_csv(work / "base.csv", n_rows=10_000, seed=1)
    with open(base, newline="") as fh:
        rows = [parse_row(dataset, f, i) for i, f in enumerate(csv.DictReader(fh), start=1)]
    producer = Producer({**kafka.client_config(), "linger.ms": 50, "batch.size": 1_000_000,
                         "compression.type": "lz4", "queue.buffering.max.messages": 500_000})
    for i in range(1, n + 1):
        row = rows[i % len(rows)]
        record = make_record(dataset, i, row, ts=int(time.time() * 1000))
        while True:
            try:
                producer.produce(topic, key=model_key(dataset, row).encode(), value=encode_record(record),
                                 headers={"row_id": str(i)})
                break
            except BufferError:
                producer.poll(0.1)
        if i % 100_000 == 0:
            producer.flush()
    assert producer.flush(60) == 0


def processed(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> int | None:
    """Committed offsets of the processor's group; None while its coordinator is being set up."""
    consumer = Consumer({**kafka.client_config(), "group.id": group})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(0, tp.offset) for tp in offsets)
    except KafkaException:
        return None
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_memory", description=__doc__)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--partitions", type=int, default=2)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kappaml-memory-"))
    broker = LocalBroker(BrokerConfig(port=free_port(), controller_port=free_port(), data_dir=work / "kafka",
                                      heap="768m", log_level="WARN"))
    broker.start()
    try:
        kafka = KafkaSettings(bootstrap_servers=broker.config.bootstrap)
        topics = Topics(prefix="mem", raw_partitions=args.partitions)
        ensure_topics(kafka, topics.specs())
        t0 = time.monotonic()
        produce(kafka, topics.raw, args.messages, work)
        sys.stdout.write(f"{args.messages} messages written in {time.monotonic() - t0:.0f}s\n")
        proc = start("processor", ["--bootstrap", kafka.bootstrap_servers, "--topic-prefix", topics.prefix,
                                   "--raw-partitions", str(args.partitions),
                                   "--state-dir", str(work / "state"), "--log-level", "WARNING",
                                   "--dataset", "co2"],  # raw written here, without a declaration
                     work / "processor.log")
        samples: list[tuple[float, int, float]] = []
        t0 = time.monotonic()
        try:
            while proc.poll() is None:
                done = processed(kafka, "mem-processor-v1", topics.raw, args.partitions)
                if done is None:
                    done = samples[-1][1] if samples else 0
                samples.append((round(time.monotonic() - t0, 1), done, round(rss_mb(proc.pid), 1)))
                sys.stdout.write(f"\r{done:>9} processed, RSS {samples[-1][2]:7.1f} MB")
                sys.stdout.flush()
                if done >= args.messages:
                    break
                time.sleep(1.0)
        finally:
            kill(proc)
    finally:
        broker.stop()
    tail = [s for s in samples if s[1] >= args.messages // 10]
    result = {
        "messages": args.messages,
        "seconds": samples[-1][0] if samples else None,
        "peak_rss_mb": max(s[2] for s in samples),
        "rss_after_10pct_mb": tail[0][2] if tail else None,
        "rss_at_end_mb": samples[-1][2],
        "growth_after_10pct_mb": round(max(s[2] for s in tail) - tail[0][2], 1) if tail else None,
        "samples": samples,
    }
    RESULTS.write_text(json.dumps(result, indent=1))
    sys.stdout.write("\n" + json.dumps({k: v for k, v in result.items() if k != "samples"}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
