"""What scale-out costs on the local cluster: a 3-node Kafka cluster, a processor group, Spark.

    python -m bench.bench_cluster [--messages 60000] [--runs 3] [--only scaling,rebalance,...]

On 2 shared cores a wall-clock speed-up cannot show, so the figures are CPU-seconds and times of
events, each with the load average and the CPU other processes used meanwhile (bench/machine.py):

- ``scaling``: CPU-seconds per 1,000 messages of 1, 2 and 3 processor instances in one group over
  the same keyed backlog (a 12-partition raw topic, 24 keys, replication 3): over the whole run
  (start-up and group join included) and over the steady middle (from 10% to 90% of the
  predictions committed), and the brokers' CPU over that middle.
- ``rebalance``: 3 instances follow a paced stream; one is SIGKILLed. Rebalance time: from the
  kill until the group is stable with the survivors holding all 12 partitions (the session
  timeout, 6 s, is most of it: a static member's partitions wait for it). Restore time: from
  then until each moved partition's first committed prediction (its keys' models restored from
  the changelog, then one commit interval of 0.5 s).
- ``broker``: 2 instances follow a paced stream; the node leading the most partitions (and the
  processors' transaction coordinator, when one node holds both: tests/chaos/cluster.py's
  choice) is SIGKILLed; the figure is the largest silence a read_committed reader of the
  predictions sees in the 30 s after the kill (before it: the commit interval's cadence).
- ``rf``: ingest rows/s (bench/bench_ingest.py) and processor msg/s (bench/bench_processor.py's
  in-process run, exactly-once, one partition) on the 3-node cluster (replication 3, acks=all,
  min.insync.replicas 2) and on a single broker started beside it, runs alternating.
- ``spark``: the replay (``python -m spark_batch replay --no-publish``) of the scaling backlog
  on ``local[2]`` and on a standalone master with 2 workers of one core (infra/spark.py): wall
  seconds and CPU-seconds per 1,000 messages of every process it involves (driver, executors,
  Python workers, and the master's and workers' own daemons), sampled from /proc.

Writes bench/results/cluster.json and the "Cluster" section of bench/REPORT.md. The sections are
measured by bench/cluster/ (one module per figure); this module is the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine
from bench.cluster.broker_kill import bench_broker
from bench.cluster.common import RESULTS, SECTIONS
from bench.cluster.instances import bench_scaling
from bench.cluster.rebalance import bench_rebalance
from bench.cluster.render import render, write_report
from bench.cluster.replay import bench_spark
from bench.cluster.replication import bench_rf
from infra.broker import BrokerConfig, LocalBroker
from infra.cluster import ClusterConfig, LocalCluster
from infra.testing import free_port, free_port_run
from kappaml.kafka import KafkaSettings
from kappaml.logging import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000, help="backlog of the scaling and Spark runs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spark-runs", type=int, default=2)
    parser.add_argument("--ingest-rows", type=int, default=50_000)
    parser.add_argument("--processor-messages", type=int, default=20_000, help="of the rf section")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated of {', '.join(SECTIONS)}"
    )
    parser.add_argument("--work", type=Path, help="keep the logs here (default: a temporary directory)")
    parser.add_argument("--no-report", action="store_true", help="do not touch bench/REPORT.md")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other sections of bench/results/cluster.json, replace these")
    parser.add_argument("--render-only", action="store_true",
                        help="write the section from bench/results/cluster.json, run nothing")
    args = parser.parse_args(argv)
    if args.render_only:
        write_report(render(json.loads((RESULTS / "cluster.json").read_text())))
        return 0
    only = [s for s in args.only.split(",") if s]
    if unknown := set(only) - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}")
    configure_logging("WARNING")
    started = time.monotonic()
    previous = json.loads((RESULTS / "cluster.json").read_text()) if args.merge else None
    res: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine.describe(),
        "load_start": machine.load_average(),
    }
    with tempfile.TemporaryDirectory(prefix="kappaml-bench-cluster-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cluster = LocalCluster(
            ClusterConfig(nodes=3, port=free_port_run(6), data_dir=work / "kafka-cluster", log_level="WARN")
        )
        single = None
        cluster.start()
        try:
            kafka = KafkaSettings(bootstrap_servers=cluster.config.bootstrap)
            for section in only:
                try:
                    if section == "scaling":
                        res["scaling"] = bench_scaling(cluster, kafka, work, args.messages, args.runs)
                    elif section == "rebalance":
                        res["rebalance"] = bench_rebalance(kafka, work, args.runs)
                    elif section == "broker":
                        res["broker"] = bench_broker(cluster, kafka, work, args.runs)
                    elif section == "rf":
                        single = LocalBroker(
                            BrokerConfig(
                                port=free_port(),
                                controller_port=free_port(),
                                data_dir=work / "kafka-single",
                                heap="512m",
                                log_level="WARN",
                            )
                        )
                        single.start()
                        res["rf"] = bench_rf(
                            kafka,
                            KafkaSettings(bootstrap_servers=single.config.bootstrap),
                            work,
                            args.runs,
                            args.ingest_rows,
                            args.processor_messages,
                        )
                        single.stop()
                        single = None
                    elif section == "spark":
                        if "scaling" not in res:
                            res["scaling"] = bench_scaling(cluster, kafka, work, args.messages, 0)
                        res["spark"] = bench_spark(kafka, res["scaling"], work, args.spark_runs)
                except Exception as exc:  # one section's failure is recorded, the others still run
                    res.setdefault("errors", {})[section] = f"{type(exc).__name__}: {exc}"
                    print(json.dumps({"error": section, "reason": str(exc)}), flush=True)  # noqa: T201
        finally:
            if single is not None:
                single.stop()
            cluster.stop()
    res["duration_s"] = round(time.monotonic() - started, 1)
    res["load_end"] = machine.load_average()
    if previous is not None:  # these sections again, beside the earlier run's others
        again = {k: v for k, v in res.items() if k in SECTIONS}
        errors = {k: v for k, v in previous.get("errors", {}).items() if k not in again}
        errors.update(res.get("errors", {}))
        res = {**previous, **again, "errors": errors,
               "started": f"{previous['started']} ({', '.join(again)} again: {res['started']})",
               "duration_s": previous["duration_s"] + res["duration_s"], "load_end": res["load_end"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(res, indent=2) + "\n")
    if not args.no_report:
        write_report(render(res))
    sys.stdout.write(render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
