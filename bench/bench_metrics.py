"""The processor's throughput with Prometheus metrics on vs off, in one run (issue: cost < 3 %).

    python -m bench.bench_metrics [--messages 100000] [--pairs 8] [--bootstrap HOST:PORT]

Each pair runs the exactly-once processor twice over the same kind of fresh backlog (one
partition, one key), metrics off and metrics on, alternating which goes first so a drift of the
machine's load does not favour one side. "On" serves ``/metrics`` and a scraper reads it every
second (Prometheus' default is 15 s: this is the harsher case). Throughput is measured as in
bench_processor (first to last prediction). The ratio on/off is taken per pair, then summarised.

It also times, without Kafka, what metrics add per message in the hot path (the learn-time
histogram and the learned counter), so the cost can be read apart from the machine's noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import timeit
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from bench.bench_processor import _backlog, kappaml_rate
from bench.harness import broker_or, summary
from bench.machine import load_average
from infra.testing import free_port, typed_rows
from kappaml import synthetic
from kappaml.logging import configure_logging
from kappaml.observability import Buckets
from kappaml.observability.processor import LATENCY_BUCKETS
from kappaml.quixcompat import processing_context
from processor.cache import CheckpointSink
from processor.stats import IntervalStats, LearnCost, TimedLearnCost

RESULTS = Path(__file__).resolve().parent / "results"


class Scraper(threading.Thread):
    """GET /metrics every ``interval`` seconds until stopped (as a Prometheus server would)."""

    def __init__(self, port: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = f"http://127.0.0.1:{port}/metrics", interval
        self.halt = threading.Event()
        self.scrapes = 0

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    response.read()
                self.scrapes += 1
            except OSError:
                continue  # not serving yet


class CpuMarks:
    """The processing thread's CPU time at each checkpoint, with the messages of that interval.

    CPU time of the thread that runs the pipeline is far less disturbed by other processes on
    the machine than wall-clock throughput (it still shares caches and memory bandwidth).
    """

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []
        self.processor: Any = None

    def install(self, processor: Any) -> None:
        self.processor = processor
        sink = next(s for s in processing_context(processor.app).sink_manager.sinks
                    if isinstance(s, CheckpointSink))
        on_checkpoint = sink._on_checkpoint  # noqa: SLF001 - a kappaml class: wrapped for the bench only

        def marked() -> None:
            messages = processor.stats.messages
            on_checkpoint()
            self.marks.append((time.thread_time(), messages))

        sink._on_checkpoint = marked  # noqa: SLF001 - see above

    def us_per_message(self) -> float:
        """From the first checkpoint to the last that had messages: start-up and idle left out."""
        busy = [i for i, (_t, n) in enumerate(self.marks) if n]
        if len(busy) < 2:
            raise RuntimeError("too few checkpoints to time: use more messages")
        first, last = busy[0], busy[-1]
        messages = sum(n for _t, n in self.marks[first + 1:last + 1])
        return (self.marks[last][0] - self.marks[first][0]) / messages * 1e6


def rate(kafka: Any, rows: list[dict], work: Path, metrics: bool) -> tuple[float, float, int, float]:
    """(messages/s, CPU us/message of the processing thread, scrapes made, CPU ms per scrape)."""
    topics = _backlog(kafka, rows)
    port = free_port() if metrics else None
    scraper = Scraper(port) if port is not None else None
    cpu = CpuMarks()
    if scraper is not None:
        scraper.start()
    try:
        value = kappaml_rate(kafka, topics, "exactly-once", len(rows), work, metrics_port=port,
                             hook=cpu.install)
    finally:
        if scraper is not None:
            scraper.halt.set()
    if scraper is None:
        return value, cpu.us_per_message(), 0, 0.0
    return value, cpu.us_per_message(), scraper.scrapes, scrape_ms(cpu.processor)


def hot_path_ns(steps: int = 200_000) -> dict[str, float]:
    """Nanoseconds per message that metrics add where the processor spends per message."""
    plain, timed, stats = LearnCost(), TimedLearnCost(), IntervalStats()

    def learned() -> None:
        stats.learned += True

    def best(*stmts: Any) -> list[float]:
        """Best of 7 rounds each, the statements alternating within a round (a loaded machine's
        slow spells then hit both alike)."""
        times = [[timeit.timeit(stmt, number=steps) for stmt in stmts] for _round in range(7)]
        return [min(t[i] for t in times) / steps * 1e9 for i in range(len(stmts))]

    add_plain, add_timed = best(lambda: plain.add("rls", 3.1e-5), lambda: timed.add("rls", 3.1e-5))
    with_counter, without = best(learned, lambda: None)
    counter = with_counter - without
    # The event-to-prediction latencies of a checkpoint, folded into the histogram at once.
    latencies, buckets = [3 + i % 40 for i in range(10_000)], Buckets(LATENCY_BUCKETS)
    fold = min(timeit.repeat(lambda: buckets.observe_many(latencies, 0.001), number=20, repeat=5)) / 20
    return {"learn_cost_plain_ns": round(add_plain, 1), "learn_cost_timed_ns": round(add_timed, 1),
            "histogram_ns": round(add_timed - add_plain, 1),
            "learned_counter_ns": round(max(counter, 0.0), 1),
            "latency_fold_ns": round(fold / len(latencies) * 1e9, 1)}


def scrape_ms(processor: Any, times: int = 20) -> float:
    """CPU milliseconds one scrape of the processor's registry takes (collect + text format)."""
    registry = processor.metrics.registry
    best = float("inf")
    for _ in range(times):
        started = time.thread_time()
        generate_latest(registry)
        best = min(best, time.thread_time() - started)
    return best * 1e3


def measure(kafka: Any, rows: list[dict], work: Path, pairs: int, note: Any = None) -> dict[str, Any]:
    # The first processor on a fresh broker waits for its transaction coordinator: not counted.
    rate(kafka, rows[: min(len(rows), 5000)], work / "warm-up", False)
    runs: list[dict[str, Any]] = []
    failures: list[str] = []
    for i in range(pairs):
        order = (False, True) if i % 2 == 0 else (True, False)
        before = load_average()["loadavg"]
        got: dict[bool, tuple[float, float, int, float]] = {}
        for metrics in order:
            for attempt in range(3):
                try:
                    got[metrics] = rate(kafka, rows, work / f"pair{i}-{metrics}-{attempt}", metrics)
                    break
                except Exception as exc:  # a run that failed is run again, and counted
                    failures.append(f"pair {i + 1} metrics {'on' if metrics else 'off'}: "
                                    f"{type(exc).__name__}: {exc}"[:300])
            else:
                raise RuntimeError(f"three failed runs in a row: {failures[-3:]}")
        (off, cpu_off, _, _), (on, cpu_on, scrapes, scrape) = got[False], got[True]
        runs.append({"off": off, "on": on, "ratio": on / off, "cpu_us_off": cpu_off, "cpu_us_on": cpu_on,
                     "cpu_ratio": cpu_on / cpu_off, "first": "on" if order[0] else "off",
                     "scrapes": scrapes, "scrape_cpu_ms": scrape, "loadavg_before": before,
                     "loadavg_after": load_average()["loadavg"]})
        if note is not None:
            note(f"metrics pair {i + 1}: off {off:,.0f} on {on:,.0f} msg/s, ratio {on / off:.3f}; CPU "
                 f"{cpu_off:.1f} vs {cpu_on:.1f} us/msg, ratio {cpu_on / cpu_off:.3f}; load {before}")
    return {
        "settings": {"messages": len(rows), "pairs": pairs, "guarantee": "exactly-once", "partitions": 1,
                     "keys": 1, "scrape_interval_s": 1.0},
        "off": summary([r["off"] for r in runs]),
        "on": summary([r["on"] for r in runs]),
        "ratio": summary([r["ratio"] for r in runs]),
        "cpu_us_off": summary([r["cpu_us_off"] for r in runs]),
        "cpu_us_on": summary([r["cpu_us_on"] for r in runs]),
        "cpu_ratio": summary([r["cpu_ratio"] for r in runs]),
        "hot_path": hot_path_ns(),
        "scrape_cpu_ms": summary([r["scrape_cpu_ms"] for r in runs]),
        "failed_runs": failures,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--bootstrap", default=None)
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    with (tempfile.TemporaryDirectory(prefix="kappaml-bench-") as tmp,
          broker_or(args.bootstrap, Path(tmp)) as kafka):
        csv_path = synthetic.write_csv(Path(tmp) / "rows.csv", args.messages, seed=1)
        rows = typed_rows(synthetic.dataset(), csv_path)
        result = measure(kafka, rows, Path(tmp), args.pairs,
                         lambda text: sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {text}\n"))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "metrics.json").write_text(json.dumps(result, indent=2))
    r, c = result["ratio"], result["cpu_ratio"]
    sys.stdout.write(f"throughput on/off: median {r['median']:.3f} (min {r['min']:.3f}, max {r['max']:.3f}, "
                     f"{args.pairs} pairs); CPU per message on/off: median {c['median']:.3f} "
                     f"(min {c['min']:.3f}, max {c['max']:.3f}); hot path {result['hot_path']}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
