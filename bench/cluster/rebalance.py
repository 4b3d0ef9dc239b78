"""``rebalance``: an instance of 3 SIGKILLed: rebalance, state restore, kill to resume."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from bench.cluster.common import PARTITIONS, keyed, partitions_seen, processor, stop_all, wait_for
from bench.cluster.cpu import Conditions
from infra.testing import CommittedWatcher, PacedWriter
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics, ensure_topics


def _assignment(admin: AdminClient, group: str) -> tuple[str, dict[str, set[int]]]:
    try:
        # librdkafka times the request out first (an error, caught below): a future abandoned while its
        # request is in flight has crashed librdkafka here (rd_kafka_enq_once assertion).
        desc = admin.describe_consumer_groups([group], request_timeout=5)[group].result(60)
    except Exception as exc:  # a busy or restarting coordinator: asked again by the caller's wait
        return f"not described ({type(exc).__name__})", {}
    members = {
        m.group_instance_id or m.member_id: {tp.partition for tp in m.assignment.topic_partitions}
        for m in desc.members
    }
    return ("stable" if desc.state == ConsumerGroupState.STABLE else str(desc.state)), members


def bench_rebalance(
    kafka: KafkaSettings, work: Path, runs: int, rate: float = 300.0, session_timeout: float = 6.0
) -> dict[str, Any]:
    out: dict[str, Any] = {"session_timeout_s": session_timeout, "rate": rate, "instances": 3, "runs": []}
    for r in range(runs):
        try:
            out["runs"].append(_rebalance_run(kafka, work, r, rate, session_timeout))
        except TimeoutError as exc:  # a run that could not be set up under the load is said, not hidden
            out.setdefault("failed_runs", []).append(f"run {r}: {exc}")
    for name in ("rebalance_s", "restore_s_max", "kill_to_resume_s"):
        vals = [r[name] for r in out["runs"]]
        if vals:
            out[name] = {"p50": statistics.median(vals), "max": max(vals), "min": min(vals),
                         "runs": len(vals)}
    return out




def _rebalance_run(
    kafka: KafkaSettings, work: Path, r: int, rate: float, session_timeout: float
) -> dict[str, Any]:
    admin = AdminClient(kafka.client_config())
    dataset, rows, toml = keyed(work, int(rate * 400), seed=20 + r)  # more than the run needs
    topics = Topics(prefix=f"rb{uuid.uuid4().hex[:6]}", raw_partitions=PARTITIONS)
    ensure_topics(kafka, topics.specs())
    group = f"bench-rb-{r}"
    member = {i: f"{group}-i{i}" for i in range(3)}  # group.instance.id: <group>-<instance id>
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
            work / "state" / f"rb{r}" / str(i),
            work / f"rebalance-{r}.log",
            "--commit-interval",
            "0.5",
            "--session-timeout",
            f"{session_timeout:g}",
        )
        for i in range(3)
    ]
    cond = Conditions()

    def holding(names: set[str]) -> bool:
        state, members = _assignment(admin, group)
        return (
            state == "stable"
            and set(members) == names
            and set().union(*members.values()) == set(range(PARTITIONS))
        )

    try:
        writer.start()
        wait_for(lambda: holding(set(member.values())), 240, "3 instances sharing the partitions")
        wait_for(lambda: len(partitions_seen(watcher)) == PARTITIONS, 240, "predictions from every partition")
        time.sleep(5)
        held: dict[str, set[int]] = {}
        wait_for(lambda: bool(held.update(_assignment(admin, group)[1]) or held.get(member[2])), 60,
              "the assignment of the instance to kill")
        moved = sorted(held[member[2]])
        procs[2].kill()
        killed = time.monotonic()
        procs[2].wait()
        assigned = wait_for(
            lambda: holding({member[0], member[1]}), 120, "the survivors holding every partition"
        )
        wait_for(
            lambda: set(moved) <= partitions_seen(watcher, assigned),
            120,
            "predictions from every moved partition",
        )
        first = {
            p: min(t for t, rec in list(watcher.arrivals) if t > assigned and rec["partition"] == p)
            for p in moved
        }
        time.sleep(2)
    finally:
        writer.stop()
        stop_all(procs)
        watcher.stop()
    gap = watcher.largest_gap(since=killed, field="partition", until=max(first.values()) + 1)
    run = {
        "run": r,
        "moved_partitions": moved,
        "rebalance_s": round(assigned - killed, 2),
        "restore_s_max": round(max(first.values()) - assigned, 2),
        "restore_s_per_partition": {str(p): round(t - assigned, 2) for p, t in first.items()},
        "kill_to_resume_s": round(max(first.values()) - killed, 2),
        "largest_gap_moved_s": round(max(gap.get(p, 0.0) for p in moved), 2),
        "conditions": cond.end(),
    }
    print(json.dumps({"rebalance": run}), flush=True)  # noqa: T201
    return run
