"""Exactly-once vs at-least-once latency tails at several rates, in one run (issue 22).

    python -m bench.bench_eo_tail [--rates 300,1000,3000] [--runs 5] [--seconds 15] [--warmup 4]
                                  [--hog 0] [--processor-args "..."] [--bootstrap HOST:PORT]
                                  [--out FILE]

For each rate, ``--runs`` rounds; each round runs ``bench.latency`` once per guarantee (order
alternated every round, so drift in the machine's load hits both alike); ``--processor-args``
are passed to every processor (e.g. ``"--commit-interval 0.05"`` to compare a setting).
``--hog N`` starts N busy-looping processes for the
whole run: a controlled stand-in for a slower or shared machine, where issue 22 saw its stalls.

Every run records what else used the machine meanwhile: the load average, and the CPU-seconds
of all other processes (``/proc/stat``'s busy time minus this process tree's, hogs excluded from
the tree so they show up as "others"). Prints one JSON line per run, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import broker_or
from bench.latency import measure
from bench.machine import describe, load_average

GUARANTEES = ("exactly-once", "at-least-once")
_TICK = os.sysconf("SC_CLK_TCK")


def _busy_s() -> float:
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICK


def _tree_cpu_s(root: int, exclude: set[int]) -> float:
    """CPU-seconds of ``root`` and its live descendants, and of the children they have reaped."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        cpu[pid] = sum(int(v) for v in fields[11:15]) / _TICK  # utime stime cutime cstime
    total = 0.0
    for pid in cpu:
        node = pid
        while node and node != root and node not in exclude:
            node = parents.get(node, 0)
        if node == root and pid not in exclude:
            total += cpu[pid]
    return total


def _hog() -> None:
    while True:
        pass


def _order(round_no: int) -> tuple[str, ...]:
    return GUARANTEES if round_no % 2 == 0 else GUARANTEES[::-1]


def _table(runs: list[dict]) -> str:
    lines = ["| rate msg/s | guarantee | runs | p50 ms | p95 ms | p99 ms (min–max) | max ms "
             "(min–max) | EO/ALO p99 |", "|---|---|---|---|---|---|---|---|"]
    for rate, guarantee in sorted({(r["rate"], r["guarantee"]) for r in runs}):
        rows = [r for r in runs if (r["rate"], r["guarantee"]) == (rate, guarantee)]
        med = {q: statistics.median(r[q] for r in rows) for q in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}
        ratio = ""
        if guarantee == "exactly-once":
            alo = [r for r in runs if (r["rate"], r["guarantee"]) == (rate, "at-least-once")]
            pairs = [e["p99_ms"] / a["p99_ms"] for e in rows for a in alo if a["round"] == e["round"]]
            if pairs:
                ratio = f"{statistics.median(pairs):.2f} ({min(pairs):.2f}–{max(pairs):.2f})"
        lines.append(
            f"| {rate:,} | {guarantee} | {len(rows)} | {med['p50_ms']:.0f} | {med['p95_ms']:.0f} | "
            f"{med['p99_ms']:.0f} ({min(r['p99_ms'] for r in rows)}–{max(r['p99_ms'] for r in rows)}) | "
            f"{med['max_ms']:.0f} ({min(r['max_ms'] for r in rows)}–{max(r['max_ms'] for r in rows)}) | "
            f"{ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="300,1000,3000")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--warmup", type=float, default=4)
    p.add_argument("--hog", type=int, default=0, help="busy-looping processes beside the run")
    p.add_argument("--processor-args", default="", help="extra flags for every processor")
    p.add_argument("--bootstrap")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    rates = [int(v) for v in args.rates.split(",")]
    extra = tuple(shlex.split(args.processor_args))
    hogs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(args.hog)]
    for h in hogs:
        h.start()
    hog_pids = {h.pid for h in hogs if h.pid}
    runs: list[dict] = []
    started = load_average()
    try:
        with (tempfile.TemporaryDirectory(prefix="kappaml-eotail-") as tmp,
              broker_or(args.bootstrap, Path(tmp)) as kafka):
            for rate in rates:
                for round_no in range(args.runs):
                    for guarantee in _order(round_no):
                        busy0, own0, t0 = _busy_s(), _tree_cpu_s(os.getpid(), hog_pids), time.time()
                        result = measure(kafka, Path(tmp), "kappaml", rate, args.seconds, args.warmup,
                                         guarantee=guarantee,
                                         processor_args=extra)
                        busy1, own1, t1 = _busy_s(), _tree_cpu_s(os.getpid(), hog_pids), time.time()
                        row = {"rate": rate, "guarantee": guarantee, "round": round_no,
                               **{k: result[k] for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms",
                                                          "rate_achieved", "processed_p99_ms")},
                               "commit_part_ms": (result.get("processor_timing") or {})
                               .get("checkpoint_ms", {}).get("commit"),
                               "others_cores": round(max(0.0, (busy1 - busy0) - (own1 - own0))
                                                     / (t1 - t0), 2),
                               "loadavg_1m": round(os.getloadavg()[0], 2)}
                        runs.append(row)
                        sys.stdout.write(json.dumps(row) + "\n")
                        sys.stdout.flush()
    finally:
        for h in hogs:
            h.terminate()
    report = {"machine": describe(), "load_start": started, "load_end": load_average(),
              "hog": args.hog, "processor_args": list(extra), "seconds": args.seconds,
              "warmup": args.warmup, "runs": runs}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    sys.stdout.write(_table(runs) + "\n")
    others = [r["others_cores"] for r in runs]
    sys.stdout.write(f"\nother processes used {min(others)}–{max(others)} cores per run "
                     f"(hogs: {args.hog}); 1-min load {min(r['loadavg_1m'] for r in runs)}–"
                     f"{max(r['loadavg_1m'] for r in runs)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
