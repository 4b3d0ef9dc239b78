"""How long committed output stops when the processor is SIGKILLed and restarted at once (issue 14).

    python -m bench.bench_restart [--kills 5] [--rate 100] [--baseline-kills 1]

One processor (exactly-once, commit interval 0.5 s) follows a raw topic written at ``--rate``
rows/s. A read_committed reader stamps every prediction's arrival. Each kill SIGKILLs the
processor and starts it again at once; the figure per kill is the largest silence the reader
sees between that kill and the next one (nan: nothing arrived before the next kill). The
baseline gives every restart a fresh instance id (``--instance-id <random>``), as every start
had before stable ids: the predecessor's open transaction is then never fenced and blocks
readers until the transaction timeout (now 15 s; it was librdkafka's 60 s before), and the
group waits for the dead member's session to time out. Writes bench/results/restart.json and
prints a table; with --work DIR the processors' logs stay in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.harness import broker_or
from infra.testing import CommittedWatcher, PacedWriter, spawn, stop
from kappaml import synthetic
from kappaml.csvsource import CsvTable
from kappaml.kafka import KafkaSettings
from kappaml.logging import configure_logging
from kappaml.topics import Topics, ensure_topics

RESULTS = Path(__file__).resolve().parent / "results"


def _processor(kafka: KafkaSettings, topics: Topics, state: Path, instance_id: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "processor", "--bootstrap", kafka.bootstrap_servers,
            "--topic-prefix", topics.prefix, "--raw-partitions", str(topics.raw_partitions),
            "--state-dir", str(state), "--commit-interval", "0.5", "--log-level", "WARNING",
            "--dataset", synthetic.SYNTHETIC_NAME]  # written here, not by an ingest that declares it
    if instance_id:
        argv += ["--instance-id", instance_id]
    return spawn(argv, state.parent / f"processor-{time.monotonic_ns()}.log")


def kill_gaps(kafka: KafkaSettings, work: Path, kills: int, rate: float, spacing: float,
              fresh_ids: bool) -> list[float]:
    """The largest committed-output silence after each of ``kills`` SIGKILL + restart cycles."""
    work.mkdir(parents=True, exist_ok=True)
    topics = Topics(prefix=f"restart{uuid.uuid4().hex[:8]}", raw_partitions=2)
    ensure_topics(kafka, topics.specs())
    dataset = synthetic.dataset()
    n_rows = int(rate * (spacing * (kills + 1) + 10))
    table = CsvTable(synthetic.write_csv(work / "rows.csv", n_rows=n_rows, seed=1), dataset)
    rows = [row.values for row in table.rows() if row.values is not None]
    watcher = CommittedWatcher(kafka, topics.predictions)
    watcher.start()
    watcher.ready.wait(10)
    writer = PacedWriter(kafka, topics.raw, dataset, rows, rate)
    ident = (lambda: uuid.uuid4().hex[:12]) if fresh_ids else (lambda: "")
    proc = _processor(kafka, topics, work / "state", ident())
    writer.start()
    killed: list[float] = []
    try:
        time.sleep(spacing)
        for _ in range(kills):
            proc.kill()
            proc.wait()
            killed.append(time.monotonic())
            proc = _processor(kafka, topics, work / "state", ident())
            time.sleep(spacing)
    finally:
        writer.stop()
        stop(proc)
        watcher.stop()
    ends = [*killed[1:], float("inf")]
    return [max(watcher.largest_gap(since=k, until=e).values(), default=float("nan"))
            for k, e in zip(killed, ends, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_restart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--baseline-kills", type=int, default=1,
                        help="kills with a fresh id per start (each stalls about a minute)")
    parser.add_argument("--rate", type=float, default=100.0, help="raw rows/s")
    parser.add_argument("--spacing", type=float, default=20.0, help="seconds between kills")
    parser.add_argument("--work", type=Path, default=None, help="keep the work files (logs) here")
    parser.add_argument("--bootstrap", default=None, help="an existing broker (default: a private one)")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="kappaml-bench-") as tmpdir:
        work = args.work or Path(tmpdir)
        with broker_or(args.bootstrap, work) as kafka:
            stable = kill_gaps(kafka, work / "stable", args.kills, args.rate, args.spacing, False)
            fresh = (kill_gaps(kafka, work / "fresh", args.baseline_kills, args.rate, 45.0, True)
                     if args.baseline_kills else [])
    result = {"rate": args.rate, "kills": args.kills, "spacing_s": args.spacing,
              "load_average": os.getloadavg(), "stable_ids_gap_s": stable, "fresh_ids_gap_s": fresh}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "restart.json").write_text(json.dumps(result, indent=2))
    lines = []
    for name, gaps in (("stable instance id", stable), ("fresh id per start (before)", fresh)):
        if gaps:
            lines.append(f"{name:<28} largest gap per kill: p50 {statistics.median(gaps):.2f} s, "
                         f"max {max(gaps):.2f} s ({', '.join(f'{g:.2f}' for g in gaps)})")
    lines.append(f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
