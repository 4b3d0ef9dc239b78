"""``broker``: the node leading the most partitions SIGKILLed: the largest gap in committed
predictions a read_committed reader sees."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from bench.cluster.common import PARTITIONS, keyed, partitions_seen, processor, stop_all, wait_for
from bench.cluster.cpu import Conditions
from bench.harness import summary
from infra.cluster import LocalCluster
from infra.testing import CommittedWatcher, PacedWriter
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics, ensure_topics


def bench_broker(
    cluster: LocalCluster, kafka: KafkaSettings, work: Path, runs: int, rate: float = 300.0
) -> dict[str, Any]:
    out: dict[str, Any] = {"rate": rate, "instances": 2, "commit_interval_s": 0.5, "runs": []}
    for r in range(runs):
        try:
            out["runs"].append(_broker_run(cluster, kafka, work, r, rate))
        except TimeoutError as exc:
            out.setdefault("failed_runs", []).append(f"run {r}: {exc}")
        wait_for(lambda: _full_isr(cluster), 240, "every replica back in sync")
    for name in ("largest_gap_s", "largest_partition_gap_s", "largest_gap_before_kill_s"):
        if out["runs"]:
            out[name] = summary([r[name] for r in out["runs"]])
    return out


def _broker_run(
    cluster: LocalCluster, kafka: KafkaSettings, work: Path, r: int, rate: float
) -> dict[str, Any]:
    from tests.chaos.cluster import busiest_leader  # the chaos run's choice of victim

    dataset, rows, toml = keyed(work, int(rate * 400), seed=40 + r)  # more than the run needs
    topics = Topics(prefix=f"bk{uuid.uuid4().hex[:6]}", raw_partitions=PARTITIONS)
    ensure_topics(kafka, topics.specs())
    group = f"bench-bk-{r}"
    watcher = CommittedWatcher(kafka, topics.predictions)
    watcher.start()
    watcher.ready.wait(10)
    writer = PacedWriter(kafka, topics.raw, dataset, rows, rate)
    procs = [
        processor(
            kafka,
            topics.prefix,
            toml,
            group,
            "v1",
            f"i{i}",
            work / "state" / f"bk{r}" / str(i),
            work / f"broker-{r}.log",
            "--commit-interval",
            "0.5",
        )
        for i in range(2)
    ]
    cond = Conditions()
    node = None
    try:
        writer.start()
        wait_for(lambda: len(partitions_seen(watcher)) == PARTITIONS, 240, "predictions from every partition")
        time.sleep(10)
        node, why = busiest_leader(cluster, topics.prefix, f"{group}-i0")
        before = time.monotonic()
        cluster.kill_node(node)
        killed = time.monotonic()
        time.sleep(30)
        after = time.monotonic()
        # A silence still going on at the end of the window counts too: wait for it to end.
        wait_for(lambda: len(partitions_seen(watcher, after)) == PARTITIONS, 180,
              "predictions after the window")
        resumed = time.monotonic()
    finally:
        writer.stop()
        stop_all(procs)
        watcher.stop()
        if node is not None:
            cluster.start_node(node)
    overall = watcher.largest_gap(since=killed, until=resumed).get(None, float("nan"))
    # Per partition: the silences that began before the window's end (the last one ends after it).
    per_partition = watcher.largest_gap(since=killed, until=resumed, field="partition")
    baseline = watcher.largest_gap(since=before - 10, until=before).get(None, float("nan"))
    run = {
        "run": r,
        "killed": why,
        "largest_gap_s": round(overall, 2),
        "largest_partition_gap_s": round(max(per_partition.values(), default=float("nan")), 2),
        "largest_gap_before_kill_s": round(baseline, 2),
        "predictions_after_kill": sum(1 for t, _r in list(watcher.arrivals) if killed < t < after),
        "conditions": cond.end(),
    }
    print(json.dumps({"broker": run}), flush=True)  # noqa: T201
    return run


def _full_isr(cluster: LocalCluster) -> bool:
    try:
        parts = cluster.status(timeout=5)["partitions"].values()
    except Exception:
        return False
    return all(len(p["isr"]) == len(p["replicas"]) for p in parts)
