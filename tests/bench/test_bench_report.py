"""The benchmark report: goals judged from the medians, every figure with its runs, plots written."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("matplotlib")

from bench import report  # noqa: E402
from bench.harness import summary  # noqa: E402
from bench.memory import TreePeak  # noqa: E402


def _run(
    ingest: list[float], eo: list[float], loop: list[float], p99: list[float], seed_p99: list[float]
) -> dict:
    def lat(p: list[float]) -> dict:
        return {q: summary(p) for q in ("p50_ms", "p95_ms", "p99_ms", "rate_achieved")}

    return {
        "mode": "full",
        "started": "2026-01-01T00:00:00",
        "duration_s": 1.0,
        "machine": {
            "cores": 2,
            "affinity_cores": 2,
            "cpu_model": "x",
            "memory_gb": 1,
            "os": "Linux",
            "python": "3.11",
            "java": "17",
            "kafka_broker": "4.2.0",
            "packages": {"river": "0.26.1"},
        },
        "load_start": {"loadavg": [1.0, 1.0, 1.0], "uptime": "up"},
        "load_end": {"loadavg": [2.0, 2.0, 2.0], "uptime": "up"},
        "sections": {
            "ingest": {"settings": {"rows": 10}, "kappaml": summary(ingest), "sse_alone": summary([1e5] * 5)},
            "processor": {
                "settings": {"messages": 10},
                "variants": {
                    "kappaml exactly-once": summary(eo),
                    "kappaml at-least-once": summary(eo),
                    "hand-written loop": summary(loop),
                    "River alone": summary([1e5] * 5),
                },
            },
            "latency": {
                "settings": {
                    "rate": 1000,
                    "seconds": 1,
                    "warmup": 1,
                    "processor_commit_interval_s": 0.01,
                    "ingest_commit_interval_s": 0.01,
                },
                "kappaml": lat(p99),
                "seed": lat(seed_p99),
                "kappaml_runs": [],
                "seed_runs": [],
            },
            "replay": {"error": "RuntimeError: spark replay failed"},
        },
    }


def test_goals_follow_the_medians_and_failures_are_listed(tmp_path):
    run = _run(
        ingest=[40_000, 60_000, 61_000, 62_000, 10_000],
        eo=[30_000] * 5,
        loop=[40_000] * 5,
        p99=[20, 30, 40, 45, 900],
        seed_p99=[500] * 5,
    )
    text = report.write(run, tmp_path / "REPORT.md").read_text()
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    ingest = next(v for k, v in rows.items() if k.startswith("| ingest"))
    assert "60,000 (10,000–62,000, 5 runs)" in ingest and "**met**" in ingest
    eo = next(v for k, v in rows.items() if "exactly-once (one partition" in k)
    assert "0.75× loop" in eo and "**met**" in eo
    p99 = next(v for k, v in rows.items() if k.startswith("| latency p99"))
    assert "40 (20–900, 5 runs)" in p99 and "**met**" in p99
    assert "load average" in text.lower() and "[2.0, 2.0, 2.0]" in text
    assert "**replay**: `RuntimeError: spark replay failed`" in text
    for name in ("throughput.png", "latency.png"):
        png = tmp_path / "plots" / name
        assert png.stat().st_size < 200_000
        assert f"(plots/{name})" in text


def test_a_missed_goal_says_so(tmp_path):
    run = _run(ingest=[30_000] * 5, eo=[20_000] * 5, loop=[40_000] * 5, p99=[60] * 5, seed_p99=[50] * 5)
    text = report.write(run, tmp_path / "REPORT.md").read_text()
    lines = [
        ln
        for ln in text.splitlines()
        if ln.startswith(("| ingest", "| processor msg/s, exactly", "| latency p99"))
    ]
    assert len(lines) == 3 and all("**missed**" in ln for ln in lines)


def test_tree_peak_counts_a_child_process():
    child = subprocess.Popen(
        [sys.executable, "-c", "x = bytearray(80 * 1024 * 1024); import time; time.sleep(3)"]
    )
    try:
        time.sleep(1.5)
        with TreePeak(os.getpid(), every=0.1, match="bytearray") as peak:
            time.sleep(0.3)
        assert peak.stop() >= 80
    finally:
        child.kill()
        child.wait()

