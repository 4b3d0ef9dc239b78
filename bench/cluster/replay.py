"""``spark``: the Spark replay of the scaling backlog on ``local[2]`` and on a standalone cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.cluster.common import KEYS, PARTITIONS, REPO
from bench.cluster.cpu import Conditions, CpuSampler
from bench.harness import summary
from infra.spark import SparkCluster, SparkClusterConfig
from infra.testing import free_port
from kappaml.kafka import KafkaSettings


def bench_spark(kafka: KafkaSettings, scaling: dict[str, Any], work: Path, runs: int) -> dict[str, Any]:
    prefix, toml, messages = scaling["prefix"], scaling["toml"], scaling["messages"]
    spark = SparkCluster(
        SparkClusterConfig(
            workers=2, port=free_port(), webui_port=free_port(), worker_memory="1g", data_dir=work / "spark"
        )
    )
    spark.start()
    out: dict[str, Any] = {"messages": messages, "partitions": PARTITIONS, "keys": KEYS, "runs": []}
    daemons = [p for p in (spark._pid(n) for n in ("master", "worker-1", "worker-2")) if p]  # noqa: SLF001
    try:
        for r in range(runs):
            for mode, master in (
                ("local[2]", "local[2]"),
                ("standalone, 2 workers", spark.config.master_url),
            ):
                version = f"sp{r}{mode[:1]}"
                args = [sys.executable, "-m", "spark_batch", "replay", "--bootstrap", kafka.bootstrap_servers,
                        "--topic-prefix", prefix, "--dataset", toml, "--version", version,
                        "--output-dir", str(work / "replay" / version), "--master", master,
                        "--shuffle-partitions", "2", "--no-publish", "--no-class-archive",
                        "--log-format", "json", "--spark-conf", "spark.ui.enabled=false",
                        "--spark-conf", "spark.executor.memory=512m"]
                # On the standalone cluster the executors run below the workers: their trees count.
                on_cluster = daemons if master.startswith("spark://") else []
                driver: list[int] = []
                cond = Conditions()
                with CpuSampler(lambda: {"replay": driver, "cluster": on_cluster}, every=0.2) as cpu:  # noqa: B023
                    t0 = time.monotonic()
                    with (work / f"spark-{version}.log").open("ab") as log:
                        proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
                    driver.append(proc.pid)
                    code = proc.wait(900)
                    wall = time.monotonic() - t0
                if code != 0:
                    raise RuntimeError(f"replay {version} exited {code}; see {work / f'spark-{version}.log'}")
                learned = json.loads((work / "replay" / version / "summary.json").read_text())["totals"][
                    "learned"
                ]
                total = cpu.total("replay") + cpu.total("cluster")
                run = {
                    "mode": mode,
                    "run": r,
                    "learned": learned,
                    "wall_s": round(wall, 1),
                    "cpu_s": round(total, 1),
                    "cpu_s_driver": round(cpu.total("replay"), 1),
                    "cpu_s_per_1000": round(total / messages * 1000, 3),
                    "conditions": cond.end(),
                }
                out["runs"].append(run)
                print(json.dumps({"spark": run}), flush=True)  # noqa: T201
    finally:
        spark.stop()
    for mode in ("local[2]", "standalone, 2 workers"):
        mine = [r for r in out["runs"] if r["mode"] == mode]
        out[mode] = {k: summary([r[k] for r in mine]) for k in ("wall_s", "cpu_s", "cpu_s_per_1000")}
        out[mode]["others_cores"] = summary([r["conditions"]["others_cores"] for r in mine])
    return out
