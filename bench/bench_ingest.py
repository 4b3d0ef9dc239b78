"""Benchmark of the producer: rows/s from CSV to the raw topic, and the SSE server's memory.

    python -m bench.bench_ingest [--rows 300000] [--gb 1.0] [--bootstrap HOST:PORT]

1. Throughput: a synthetic CSV of ``--rows`` rows is replayed at rate=0 by ``producer serve``
   and ingested by ``producer ingest`` into a fresh topic prefix; rows/s is measured from the
   ingest's own start-of-stream to end-of-stream (its "ingest finished" line), and the raw
   topic's committed record count is checked.
2. Memory: a CSV of ``--gb`` GB is generated into /tmp (never into the repository), served,
   streamed once end to end by a raw HTTP client, and resumed near its end (which seeks via the
   sparse index); the server's peak RSS (VmHWM) is read from /proc.

Without ``--bootstrap`` a throw-away local broker is started in /tmp. Results are printed and
written to bench/results/ingest.json. Numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from confluent_kafka import Consumer, TopicPartition

from infra.testing import free_port, start, stop, wait_http
from kappaml import synthetic
from kappaml.kafka import KafkaSettings

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def committed_count(kafka: KafkaSettings, topic: str) -> int:
    consumer = Consumer({**kafka.client_config(), "group.id": f"bench-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        count, eof = 0, set()
        while len(eof) < len(parts):
            batch = consumer.consume(10_000, timeout=2)
            if not batch:
                break
            for msg in batch:
                if msg.error():
                    if msg.error().code() == -191:
                        eof.add(msg.partition())
                    continue
                count += 1
        return count
    finally:
        consumer.close()


def bench_throughput(rows: int, kafka: KafkaSettings, work: Path) -> dict:
    csv = synthetic.ensure_csv(work, rows, seed=1)
    port = free_port()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    log = work / "throughput.log"
    log.unlink(missing_ok=True)
    serve = ["serve", "--csv", str(csv), "--dataset", synthetic.SYNTHETIC_NAME, "--port", str(port)]
    server = start("producer", serve, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=60)
        ingest = start("producer", ["ingest", "--url", f"http://127.0.0.1:{port}/events", "--dataset",
                        synthetic.SYNTHETIC_NAME, "--bootstrap", kafka.bootstrap_servers, "--topic-prefix",
                        prefix, "--state-dir", str(work / "state"), "--log-interval", "2"], log)
        ingest.wait(1800)
        _, server_peak = peak_rss_mb(server.pid)
    finally:
        stop(server)
    finished = [json.loads(line) for line in log.read_text().splitlines()
                if line.startswith("{") and '"ingest finished"' in line]
    if ingest.returncode != 0 or not finished:
        raise RuntimeError(f"ingest failed ({ingest.returncode}); see {log}")
    done = finished[-1]
    count = committed_count(kafka, f"{prefix}.raw")
    return {"rows": rows, "committed_in_raw_topic": count, "seconds": done["seconds"],
            "rows_per_s": round(done["rows"] / done["seconds"]), "server_peak_rss_mb": round(server_peak, 1)}


def bench_memory(gb: float, work: Path) -> dict:
    big = Path(tempfile.gettempdir()) / f"kappaml-bench-{gb:g}gb.csv"
    started = time.monotonic()
    if not big.exists():
        # 1 M synthetic rows, repeated until the size is reached: the server's memory does not
        # depend on the values, and generating each row would take ten minutes per GB.
        chunk = synthetic.write_csv(work / "chunk.csv", 1_000_000, seed=2).read_bytes()
        header, _, body = chunk.partition(b"\n")
        tmp = big.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(header + b"\n")
            written = 0
            while written < gb * 1e9:
                fh.write(body)
                written += len(body)
        tmp.replace(big)
    generated = time.monotonic() - started
    size = big.stat().st_size
    with big.open("rb") as fh:
        rows = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b"")) - 1
    port = free_port()
    log = work / "memory.log"
    serve = ["serve", "--csv", str(big), "--dataset", synthetic.SYNTHETIC_NAME, "--port", str(port)]
    server = start("producer", serve, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=60)
        _, idle_peak = peak_rss_mb(server.pid)
        received, t0 = 0, time.monotonic()
        samples = []
        with httpx.stream("GET", f"http://127.0.0.1:{port}/events", timeout=60) as response:
            for chunk in response.iter_raw(1 << 20):
                received += len(chunk)
                if len(samples) < 10_000 and received // (100 << 20) > len(samples):
                    samples.append(peak_rss_mb(server.pid)[0])
        full_scan = time.monotonic() - t0
        _, after_scan = peak_rss_mb(server.pid)
        t1 = time.monotonic()
        with httpx.stream("GET", f"http://127.0.0.1:{port}/events",
                          headers={"Last-Event-ID": str(rows - 5)}, timeout=60) as response:
            tail = response.read()
        seek = time.monotonic() - t1
        _, final_peak = peak_rss_mb(server.pid)
    finally:
        stop(server)
    return {"csv_bytes": size, "csv_rows": rows, "generate_s": round(generated, 1),
            "stream_bytes": received, "full_replay_s": round(full_scan, 1),
            "replay_rows_per_s": round(rows / full_scan), "peak_rss_mb_idle": round(idle_peak, 1),
            "peak_rss_mb_after_full_replay": round(after_scan, 1),
            "rss_mb_during_replay_max": round(max(samples, default=0), 1),
            "resume_near_end_s": round(seek, 3), "resume_tail_events": tail.count(b"event: record"),
            "peak_rss_mb_final": round(final_peak, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000, help="rows for the throughput run")
    parser.add_argument("--gb", type=float, default=1.0, help="CSV size for the memory run (0: skip)")
    parser.add_argument("--bootstrap", help="an existing broker (default: start one in /tmp)")
    parser.add_argument("--rows-only", action="store_true", help="skip the memory run")
    parser.add_argument("--memory-only", action="store_true", help="skip the throughput run")
    args = parser.parse_args()
    results: dict = {"cpus": os.cpu_count(), "load_avg_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="kappaml-bench-") as tmp:
        work = Path(tmp)
        broker = None
        if args.memory_only:
            pass
        elif args.bootstrap:
            kafka = KafkaSettings(bootstrap_servers=args.bootstrap)
        else:
            from infra.broker import BrokerConfig, LocalBroker

            broker = LocalBroker(BrokerConfig(port=free_port(), controller_port=free_port(),
                                              data_dir=work / "kafka", heap="768m", log_level="WARN"))
            broker.start()
            kafka = KafkaSettings(bootstrap_servers=broker.config.bootstrap)
        try:
            if not args.memory_only:
                results["throughput"] = bench_throughput(args.rows, kafka, work)
                print(json.dumps(results["throughput"]), flush=True)  # noqa: T201 - a CLI report
        finally:
            if broker is not None:
                broker.stop()
        if args.gb > 0 and not args.rows_only:
            results["memory"] = bench_memory(args.gb, work)
            print(json.dumps(results["memory"]), flush=True)  # noqa: T201
    out = REPO / "bench" / "results" / ("ingest-memory.json" if args.memory_only else "ingest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
