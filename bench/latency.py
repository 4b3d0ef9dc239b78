"""Event-to-output latency at a steady rate: SSE server -> ingest -> raw -> processor -> predictions.

    python -m bench.latency [--rate 1000] [--seconds 30] [--warmup 5] [--system kappaml|seed|ingest]
                            [--processor-commit-interval 0.005] [--ingest-commit-interval 0]

The SSE server (``producer serve``) stamps each record's ``ts`` when it emits it; ``producer
ingest --rate R`` follows the stream into the raw topic (exactly-once: one Kafka transaction per
batch); the system under test (the kappaml processor, or the seed design's Spark job) writes
predictions carrying that ``ts``; a read_committed consumer in this process stamps each
prediction when it sees it. Latency = seen - ts, over the records emitted after ``--warmup``
seconds (the first ones pay for connections, JIT and the first transaction). ``--system ingest``
runs no processor: the figures are those of the raw topic (SSE + ingest alone). All programs
are separate processes; their peak memory (RSS of the process tree, sampled) is reported too.

The defaults are the lowest-latency settings measured on a 2-core machine: the ingest commits
after every read from the stream (``--commit-interval 0``: one transaction per burst of events),
the processor every 5 ms.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.memory import TreePeak
from infra.testing import free_port, spawn, stop, wait_http
from kappaml import synthetic
from kappaml.kafka import KafkaSettings
from kappaml.records import OverallMetrics, decode_metrics
from kappaml.topics import Topics, ensure_topics

SYSTEMS = ("kappaml", "seed", "ingest")
PROCESSOR_COMMIT_INTERVAL = 0.005
INGEST_COMMIT_INTERVAL = 0.0
# Each memory sample walks all of /proc in this process, beside the watchers, competing with
# them for the GIL and the cores: 3 pairs of runs without / with sampling every 0.5 s gave p99
# 85/115/73 ms vs 118/224/78. The programs' memory levels off after start-up, so a sample
# every 2 s still finds the peak.
MEMORY_EVERY = 2.0


def _wait_group(kafka: KafkaSettings, group: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until the processor's consumer group is stable with a member: it is ready to consume."""
    admin = AdminClient(kafka.client_config())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"processor exited with {proc.returncode} before joining its group")
        try:
            desc = admin.describe_consumer_groups([group])[group].result(5)
            if desc.members and str(desc.state).endswith("STABLE"):
                return
        except Exception:  # the group does not exist yet
            pass
        time.sleep(0.2)
    raise TimeoutError(f"consumer group {group} never became stable")


class Watcher(threading.Thread):
    """A read_committed consumer that stamps each record (``event_ts`` or ``ts``) when it becomes visible."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        super().__init__(daemon=True)
        # (event ts, seen ms, processed ms): processed_ts is when the processor computed a
        # prediction (before its transaction commits); None for raw records.
        self.samples: list[tuple[int, int, int | None]] = []
        self.done = threading.Event()
        self.consumer = Consumer(
            {
                **kafka.client_config(),
                "group.id": f"lat-{uuid.uuid4().hex}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                # Measured: the broker answers a waiting fetch as soon as a transaction commits, so
                # this bound hardly matters; it only caps the wait if that ever changed.
                "fetch.wait.max.ms": 5,
                "fetch.min.bytes": 1,
            }
        )
        self.consumer.assign(
            [
                TopicPartition(topic, p, 0)
                for p in self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
            ]
        )

    def run(self) -> None:
        poll, consume = self.consumer.poll, self.consumer.consume
        while not self.done.is_set():
            # poll() returns as soon as a message is there; consume(n, timeout) would wait out its
            # whole timeout unless n messages arrive (it added up to 50 ms to every sample here).
            first = poll(0.05)
            if first is None:
                continue
            seen = int(time.time() * 1000)
            for msg in (first, *consume(10_000, 0)):  # what else has arrived, without waiting
                if msg.error():
                    continue
                record = json.loads(msg.value())
                ts = record.get("event_ts", record.get("ts"))
                if ts is not None:
                    processed = record.get("processed_ts")
                    self.samples.append((int(ts), seen, None if processed is None else int(processed)))
        self.consumer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _processor_cmd(kafka: KafkaSettings, topics: Topics, group: str, run: Path, commit_interval: float,
                   guarantee: str, extra: tuple[str, ...] = ()) -> list[str]:
    # Named: the processor starts before the ingest has declared the data set in the log.
    return [sys.executable, "-m", "processor", "--bootstrap", kafka.bootstrap_servers,
            "--dataset", synthetic.SYNTHETIC_NAME,
            "--topic-prefix", topics.prefix, "--raw-partitions", "1", "--group", group,
            "--state-dir", str(run / "state"), "--commit-interval", str(commit_interval),
            "--guarantee", guarantee, "--log-level", "WARNING", *extra]


def _start_seed(
    kafka: KafkaSettings, topics: Topics, run: Path, n: int, log: Path
) -> tuple[subprocess.Popen, str]:
    from bench.seed_design import prepare

    seed = prepare(kafka, topics.raw, synthetic.dataset(), run, expect=n)
    proc = spawn(seed.cmd, log, env=seed.env)
    deadline = time.monotonic() + 180
    while not seed.ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"seed job did not start; see {log}")
        time.sleep(0.2)
    time.sleep(2)  # the query's first trigger runs right after start()
    return proc, seed.out_topic


def _figures(samples: list[tuple[int, int, int | None]], since: int) -> list[int]:
    return [seen - ts for ts, seen, _ in samples if ts >= since]


def _processed(samples: list[tuple[int, int, int | None]], since: int) -> list[int]:
    """Event -> prediction computed, before the processor's commit makes it visible."""
    return [processed - ts for ts, _, processed in samples if ts >= since and processed is not None]


def measure(
    kafka: KafkaSettings,
    work: Path,
    system: str = "kappaml",
    rate: int = 1000,
    seconds: float = 30,
    warmup: float = 5,
    processor_commit_interval: float = PROCESSOR_COMMIT_INTERVAL,
    ingest_commit_interval: float = INGEST_COMMIT_INTERVAL,
    guarantee: str = "exactly-once",
    processor_args: tuple[str, ...] = (),
) -> dict:
    """One latency run; returns percentiles (ms), the rate achieved and peak memory per program."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}")
    if rate <= 0 or seconds <= 0 or warmup < 0:
        raise ValueError("rate and seconds must be > 0, warmup >= 0")
    dataset_name = synthetic.SYNTHETIC_NAME
    n = int(rate * (warmup + seconds))
    csv = synthetic.ensure_csv(work, n, seed=3)
    run = work / f"lat-{system}-{uuid.uuid4().hex[:6]}"
    run.mkdir(parents=True)
    topics = Topics(prefix=f"lat{uuid.uuid4().hex[:8]}", raw_partitions=1)
    ensure_topics(kafka, topics.specs())
    port = free_port()
    log = run / "programs.log"
    procs: dict[str, subprocess.Popen] = {
        "sse-server": spawn([sys.executable, "-m", "producer", "serve", "--csv", str(csv), "--dataset",
                             dataset_name, "--port", str(port), "--log-level", "WARNING"], log)
    }
    peaks: dict[str, TreePeak] = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=60)
        if system == "kappaml":
            group = f"lat-{uuid.uuid4().hex[:8]}"
            procs["processor"] = spawn(
                _processor_cmd(kafka, topics, group, run, processor_commit_interval, guarantee,
                               processor_args), log)
            _wait_group(kafka, group, procs["processor"])
            out_topic = topics.predictions
        elif system == "seed":
            procs["processor"], out_topic = _start_seed(kafka, topics, run, n, log)
        else:
            out_topic = topics.raw
        watcher = Watcher(kafka, out_topic)
        watcher.start()
        # The raw topic too: how much of the latency is spent before the processor sees a record.
        raw_watcher = watcher if out_topic == topics.raw else Watcher(kafka, topics.raw)
        if raw_watcher is not watcher:
            raw_watcher.start()
        peaks = {name: TreePeak(p.pid, every=MEMORY_EVERY).__enter__() for name, p in procs.items()}
        procs["ingest"] = spawn(
            [sys.executable, "-m", "producer", "ingest", "--url", f"http://127.0.0.1:{port}/events",
             "--dataset", dataset_name, "--bootstrap", kafka.bootstrap_servers,
             "--topic-prefix", topics.prefix, "--raw-partitions", "1", "--rate", str(rate),
             "--commit-interval", str(ingest_commit_interval),
             "--state-dir", str(run / "ingest-state"), "--log-level", "WARNING"],
            log,
        )
        peaks["ingest"] = TreePeak(procs["ingest"].pid, every=MEMORY_EVERY).__enter__()
        procs["ingest"].wait(seconds + warmup + 120)
        deadline = time.monotonic() + 60
        while len(watcher.samples) < n and time.monotonic() < deadline:
            time.sleep(0.2)
        for w in {watcher, raw_watcher}:
            w.done.set()
            w.join(10)
    finally:
        memory = {name: peak.stop() for name, peak in peaks.items()}
        for proc in procs.values():
            stop(proc)
    timing = _processor_timing(kafka, topics.metrics) if system == "kappaml" else None
    stamps = sorted(ts for ts, _, _ in watcher.samples)
    if not stamps:
        raise RuntimeError(f"no output seen; see {log}")
    # Warm-up counted from the first event the server emitted, not from the ingest's launch.
    since = min([stamps[0], *(ts for ts, _, _ in raw_watcher.samples[:1])]) + int(warmup * 1000)
    kept, raw_kept = _figures(watcher.samples, since), _figures(raw_watcher.samples, since)
    processed = _processed(watcher.samples, since)
    if not kept:
        raise RuntimeError(f"no output seen after the warm-up; see {log}")
    span = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else 0.0
    return {
        "system": system,
        "rate_asked": rate,
        "rate_achieved": round(len(stamps) / max(span, 1e-3)),
        "events": n,
        "predictions_seen": len(watcher.samples),
        "measured": len(kept),
        "p50_ms": percentile(kept, 50),
        "p95_ms": percentile(kept, 95),
        "p99_ms": percentile(kept, 99),
        "max_ms": max(kept),
        "raw_visible_p50_ms": percentile(raw_kept, 50) if raw_kept else None,
        "raw_visible_p99_ms": percentile(raw_kept, 99) if raw_kept else None,
        "processed_p50_ms": percentile(processed, 50) if processed else None,
        "processed_p99_ms": percentile(processed, 99) if processed else None,
        "processor_commit_interval_s": processor_commit_interval if system == "kappaml" else None,
        "ingest_commit_interval_s": ingest_commit_interval,
        "guarantee": guarantee if system == "kappaml" else None,
        "peak_rss_mb": memory,
        # The processor's own breakdown of its checkpoints and its GC pauses (processor/timing.py).
        "processor_timing": timing,
    }


def _processor_timing(kafka: KafkaSettings, topic: str) -> dict | None:
    """The ``timing`` of the processor's last overall record that has one (every ~10 s)."""
    consumer = Consumer({**kafka.client_config(), "group.id": f"timing-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    last = None
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        while batch := consumer.consume(num_messages=1000, timeout=2.0):
            for msg in batch:
                if msg.error() or msg.key() != b"__overall__":
                    continue
                record = decode_metrics(msg.value())
                last = (record.timing if isinstance(record, OverallMetrics) else None) or last
    finally:
        consumer.close()
    return last


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    from bench.harness import broker_or

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", default="kappaml", choices=SYSTEMS)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--warmup", type=float, default=5)
    p.add_argument("--processor-commit-interval", type=float, default=PROCESSOR_COMMIT_INTERVAL)
    p.add_argument("--ingest-commit-interval", type=float, default=INGEST_COMMIT_INTERVAL)
    p.add_argument("--guarantee", default="exactly-once", choices=["exactly-once", "at-least-once"])
    p.add_argument("--bootstrap")
    args = p.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="kappaml-lat-") as tmp,
        broker_or(args.bootstrap, Path(tmp)) as kafka,
    ):
        result = measure(
            kafka,
            Path(tmp),
            args.system,
            args.rate,
            args.seconds,
            args.warmup,
            args.processor_commit_interval,
            args.ingest_commit_interval,
            args.guarantee,
        )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
