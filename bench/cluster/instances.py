"""``scaling``: CPU-seconds per 1,000 messages of 1, 2 and 3 processor instances in one group."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from bench.cluster.common import (
    KEYS,
    PARTITIONS,
    VersionCount,
    keyed,
    nth_arrival,
    processor,
    stop_all,
    wait_for,
)
from bench.cluster.cpu import Conditions, CpuSampler
from bench.harness import summary
from infra.cluster import LocalCluster
from infra.testing import CommittedWatcher, produce_raw
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics, ensure_topics


def bench_scaling(
    cluster: LocalCluster,
    kafka: KafkaSettings,
    work: Path,
    messages: int,
    runs: int,
    instances: tuple[int, ...] = (1, 2, 3),
) -> dict[str, Any]:
    dataset, rows, toml = keyed(work, messages)
    topics = Topics(prefix=f"scale{uuid.uuid4().hex[:6]}", raw_partitions=PARTITIONS)
    ensure_topics(kafka, topics.specs())
    produce_raw(kafka, topics.raw, dataset, rows)
    watcher = CommittedWatcher(kafka, topics.predictions)
    watcher.start()
    watcher.ready.wait(10)
    out: dict[str, Any] = {
        "messages": messages,
        "partitions": PARTITIONS,
        "keys": KEYS,
        "prefix": topics.prefix,
        "toml": str(toml),
        "runs": [],
    }
    try:
        for r in range(runs):
            for k in instances:
                version = f"s{k}r{r}"
                procs: list[subprocess.Popen[bytes]] = []
                cond = Conditions()
                with CpuSampler(
                    lambda: {
                        "processors": [p.pid for p in procs],  # noqa: B023
                        "brokers": [pid for b in cluster.brokers.values() if (pid := b.pid())],
                    }
                ) as cpu:
                    t0 = time.monotonic()
                    procs.extend(
                        processor(
                            kafka,
                            topics.prefix,
                            toml,
                            f"bench-{version}",
                            version,
                            f"i{i}",
                            work / "state" / version / str(i),
                            work / f"scaling-{version}.log",
                        )
                        for i in range(k)
                    )
                    count = VersionCount(watcher, version)
                    done = wait_for(lambda: count() >= messages, 600,  # noqa: B023
                                    f"{messages} predictions of {k} instances")
                    cpu.sample()
                    stop_all(procs)
                t10 = nth_arrival(watcher, version, messages // 10)
                t90 = nth_arrival(watcher, version, messages * 9 // 10)
                window = messages * 8 // 10
                steady = cpu.at(t90, "processors") - cpu.at(t10, "processors")
                run = {
                    "instances": k,
                    "run": r,
                    "predictions": count(),
                    "cpu_s_total": round(cpu.at(done, "processors") - cpu.at(t0, "processors"), 2),
                    "cpu_s_per_1000_total": round(
                        (cpu.at(done, "processors") - cpu.at(t0, "processors")) / messages * 1000, 3
                    ),
                    "cpu_s_per_1000_steady": round(steady / window * 1000, 3),
                    "broker_cpu_s_per_1000_steady": round(
                        (cpu.at(t90, "brokers") - cpu.at(t10, "brokers")) / window * 1000, 3
                    ),
                    "wall_s_total": round(done - t0, 2),
                    "msg_per_s_steady": round(window / max(t90 - t10, 1e-3)),
                    "conditions": cond.end(),
                }
                out["runs"].append(run)
                print(json.dumps({"scaling": run}), flush=True)  # noqa: T201
    finally:
        watcher.stop()
    for k in instances if runs else ():
        mine = [r for r in out["runs"] if r["instances"] == k]
        out[f"{k}"] = {
            name: summary([r[name] for r in mine])
            for name in (
                "cpu_s_per_1000_total",
                "cpu_s_per_1000_steady",
                "broker_cpu_s_per_1000_steady",
                "msg_per_s_steady",
                "wall_s_total",
            )
        }
        out[f"{k}"]["others_cores"] = summary([r["conditions"]["others_cores"] for r in mine])
        out[f"{k}"]["load_before"] = [r["conditions"]["load_before"][0] for r in mine]
    return out
