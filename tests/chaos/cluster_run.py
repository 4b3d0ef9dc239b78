"""``make chaos-cluster`` / ``python -m tests.chaos.cluster_run``: the fault-injection run on a
3-node Kafka cluster, a processor group and a Spark standalone cluster, and its accounting table
(see tests/chaos/cluster.py). Exit code 0 only when nothing is lost or duplicated and every key's
model, live and replayed, equals an undisturbed sequential pass."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from kappaml.logging import configure_logging
from tests.chaos.cluster import ClusterChaosConfig, run_cluster


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.chaos.cluster_run", description=__doc__)
    p.add_argument("--rows", type=int, default=6000)
    p.add_argument("--keys", type=int, default=24)
    p.add_argument("--raw-partitions", type=int, default=12)
    p.add_argument("--processors", type=int, default=3)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--rate", type=float, default=200.0, help="rows/s replayed by the SSE server")
    p.add_argument("--no-replay", action="store_true", help="skip the Spark part")
    p.add_argument("--workdir", type=Path, default=None, help="keep logs and data here")
    args = p.parse_args(argv)
    configure_logging("WARNING", json=False)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kappaml-chaos-cluster-"))
    config = ClusterChaosConfig(workdir=workdir, rows=args.rows, keys=args.keys,
                                raw_partitions=args.raw_partitions, processors=args.processors,
                                seed=args.seed, rate=args.rate, replay=not args.no_replay, timeout=900)
    out = sys.stdout
    out.write(f"chaos run on a cluster: {args.rows} synthetic rows, {args.keys} keys, "
              f"{args.processors} processors, seed {args.seed}, work dir {workdir}\n")
    report = run_cluster(config, on_event=lambda m: (out.write(m + "\n"), out.flush()))
    out.write(report.table() + "\n")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
