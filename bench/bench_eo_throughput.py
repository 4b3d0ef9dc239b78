"""Exactly-once throughput over a backlog: this tree's processor against a baseline commit's (issue 22).

    python -m bench.bench_eo_throughput [--rounds 3] [--rows 30000] [--baseline-commit 37341a1]
                                        [--baseline-dir /tmp/kappaml-baseline-37341a1]
                                        [--bootstrap HOST:PORT] [--out FILE]

Issue 22's goal "throughput does not drop": exactly-once msg/s within 5 % of the code when the
issue was filed (37341a1, before the per-checkpoint timing and the GC watch). The baseline runs
from a detached git worktree (``git worktree add --detach``, made here when ``--baseline-dir``
does not exist yet), so each side is its own code, not a flag of one.

Per round, for each tree (the order alternates every round, so drift in the machine's load hits
both alike): a fresh topic prefix holding the same ``--rows`` synthetic CO2 rows (one raw
partition, one global model), written before the processor starts; then ``python -m processor
--guarantee exactly-once --model-spec rls --dataset co2`` run as a subprocess with that tree as
its cwd (so ``processor`` and ``kappaml`` are imported from it), default commit interval. Once all
rows' predictions are readable read_committed, the processor gets SIGTERM.

- msg/s = rows / (last prediction's ``processed_ts`` - first's): start-up, the group join and the
  final commit are not counted, as in bench_processor;
- cpu_s: the processor process's CPU-seconds (``/proc``) from its start until its predictions
  were all committed, start-up and imports included;
- others_cores: CPU the machine spent on processes outside this benchmark's process tree (the
  broker and the processors are in it) per wall second of the processor's run.

Writes one JSON line per run and a last summary line to ``--out``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.bench_eo_tail import _busy_s, _tree_cpu_s
from bench.harness import broker_or
from bench.machine import describe, load_average
from infra.testing import produce_raw, read_all, typed_rows
from kappaml import synthetic
from kappaml.catalog import publish_declaration
from kappaml.dataset import builtin
from kappaml.kafka import KafkaSettings
from kappaml.logging import configure_logging
from kappaml.topics import Topics, ensure_topics

REPO = Path(__file__).resolve().parents[1]


def _head(tree: Path) -> str:
    sha = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return sha + ("+uncommitted changes" if dirty else "")


def baseline_tree(commit: str, where: Path) -> Path:
    if not where.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), commit],
                       check=True)
    return where


def _backlog(kafka: KafkaSettings, rows: list[dict[str, Any]]) -> Topics:
    topics = Topics(prefix=f"benchtp{uuid.uuid4().hex[:6]}", raw_partitions=1)
    ensure_topics(kafka, topics.specs())
    # As the ingest does before its first record; the baseline never reads this topic.
    publish_declaration(kafka, topics.datasets, builtin("co2"))
    produce_raw(kafka, topics.raw, builtin("co2"), rows)
    return topics


def run_processor(tree: Path, kafka: KafkaSettings, topics: Topics, n: int, work: Path) -> dict[str, Any]:
    """Start ``tree``'s processor on the backlog, wait for its ``n`` committed predictions, stop it."""
    cmd = [sys.executable, "-m", "processor", "--bootstrap", kafka.bootstrap_servers,
           "--topic-prefix", topics.prefix, "--raw-partitions", "1", "--state-dir", str(work / "state"),
           "--guarantee", "exactly-once", "--model-spec", "rls", "--dataset", "co2", "--log-level", "WARNING"]
    # Only the benchmark's own flags: KAPPAML_* settings in the caller's shell must not tilt one side.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPPAML_")}
    busy0, own0, t0 = _busy_s(), _tree_cpu_s(os.getpid(), set()), time.time()
    with open(work / "processor.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            preds = read_all(kafka, topics.predictions, expect=n, timeout=120 + n / 200)
            cpu_s = _tree_cpu_s(proc.pid, set())
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    busy1, own1, t1 = _busy_s(), _tree_cpu_s(os.getpid(), set()), time.time()
    if len(preds) != n:
        # The run's directory is deleted on the way out: the processor's last words go with the error.
        tail = (work / "processor.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{tree}: {len(preds)} of {n} predictions committed; its log ends:\n{tail}")
    stamps = sorted(json.loads(value)["processed_ts"] for _k, value, _p, _o in preds)
    return {"msg_s": round(n / max((stamps[-1] - stamps[0]) / 1000, 1e-3)), "cpu_s": round(cpu_s, 1),
            "wall_s": round(t1 - t0, 1),
            "others_cores": round(max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0), 2),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def _table(rounds: list[dict[str, Any]]) -> str:
    lines = ["| round | order | baseline msg/s | current msg/s | current/baseline | CPU s baseline / current "
             "| others' cores (b / c) | 1-min load |", "|---|---|---|---|---|---|---|---|"]
    for r in rounds:
        b, c = r["baseline"], r["current"]
        lines.append(f"| {r['round']} | {' then '.join(r['order'])} | {b['msg_s']:,} | {c['msg_s']:,} | "
                     f"{r['ratio']:.3f} | {b['cpu_s']} / {c['cpu_s']} | {b['others_cores']} / "
                     f"{c['others_cores']} | {b['loadavg_1m']} / {c['loadavg_1m']} |")
    ratios = [r["ratio"] for r in rounds]
    lines.append(f"\nratio current/baseline: median {statistics.median(ratios):.3f} "
                 f"(min–max {min(ratios):.3f}–{max(ratios):.3f}) over {len(ratios)} rounds; "
                 f"goal >= 0.95: {'met' if statistics.median(ratios) >= 0.95 else 'NOT met'} by the median")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rows", type=int, default=30_000)
    p.add_argument("--baseline-commit", default="37341a1")
    p.add_argument("--baseline-dir", type=Path, default=Path("/tmp/kappaml-baseline-37341a1"))
    p.add_argument("--bootstrap")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    configure_logging("WARNING")
    trees = {"baseline": baseline_tree(args.baseline_commit, args.baseline_dir), "current": REPO}
    commits = {name: _head(tree) for name, tree in trees.items()}
    out = open(args.out, "w") if args.out else None  # noqa: SIM115 - written line by line as runs end
    started, busy0, own0, t0 = load_average(), _busy_s(), _tree_cpu_s(os.getpid(), set()), time.time()
    rounds: list[dict[str, Any]] = []
    with (tempfile.TemporaryDirectory(prefix="kappaml-eothroughput-") as tmp,
          broker_or(args.bootstrap, Path(tmp)) as kafka):
        work = Path(tmp)
        rows = typed_rows(synthetic.dataset(), synthetic.write_csv(work / "rows.csv", args.rows, seed=1))
        for round_no in range(args.rounds):
            order = ("baseline", "current") if round_no % 2 == 0 else ("current", "baseline")
            result: dict[str, Any] = {"round": round_no, "order": order, "rows": args.rows}
            for name in order:
                run_dir = work / f"{name}{round_no}"
                run_dir.mkdir()
                result[name] = run_processor(trees[name], kafka, _backlog(kafka, rows), args.rows, run_dir)
            result["ratio"] = round(result["current"]["msg_s"] / result["baseline"]["msg_s"], 3)
            rounds.append(result)
            line = json.dumps(result)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            if out:
                out.write(line + "\n")
                out.flush()
    busy1, own1, t1 = _busy_s(), _tree_cpu_s(os.getpid(), set()), time.time()
    ratios = [r["ratio"] for r in rounds]
    summary = {"summary": True, "commits": commits, "machine": describe(), "load_start": started,
               "load_end": load_average(), "wall_s": round(t1 - t0, 1),
               "others_cpu_s": round(max(0.0, (busy1 - busy0) - (own1 - own0)), 1),
               "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}
    if out:
        out.write(json.dumps(summary) + "\n")
        out.close()
    sys.stdout.write(_table(rounds) + "\n")
    sys.stdout.write(f"\ncommits: baseline {commits['baseline']}, current {commits['current']}\n"
                     f"load average at start {started['loadavg']}, at end {summary['load_end']['loadavg']}; "
                     f"other processes used {summary['others_cpu_s']} CPU-s in {summary['wall_s']} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
