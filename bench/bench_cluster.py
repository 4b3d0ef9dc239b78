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

Writes bench/results/cluster.json and the "Cluster" section of bench/REPORT.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from bench import machine
from bench.harness import summary
from infra.broker import BrokerConfig, LocalBroker
from infra.cluster import ClusterConfig, LocalCluster
from infra.spark import SparkCluster, SparkClusterConfig
from infra.testing import CommittedWatcher, PacedWriter, free_port, free_port_run, produce_raw, typed_rows
from kappaml import synthetic
from kappaml.dataset import Dataset, builtin
from kappaml.kafka import KafkaSettings
from kappaml.logging import configure_logging
from kappaml.topics import Topics, ensure_topics

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
REPORT = REPO / "bench" / "REPORT.md"
SECTIONS = ("scaling", "rebalance", "broker", "rf", "spark")
PARTITIONS = 12
KEYS = 24
_TICK = os.sysconf("SC_CLK_TCK")


# -- CPU of processes, sampled from /proc ---------------------------------------------------------
def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, CPU-seconds of the process itself) from /proc, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def descendants(roots: Iterable[int]) -> set[int]:
    """``roots`` and every live process below them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            children.setdefault(st[0], []).append(int(entry.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


class CpuSampler:
    """Every ``every`` seconds, the CPU-seconds so far of each group of processes.

    ``groups`` maps a label to the root pids whose whole trees count. A process's last sample
    stands for it once it is gone, so one that exits between two samples loses at most
    ``every`` seconds of its CPU. ``at(t)`` interpolates between samples.
    """

    def __init__(self, groups: Callable[[], dict[str, list[int]]], every: float = 0.25) -> None:
        self.groups, self.every = groups, every
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._seen: dict[str, dict[int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")

    def __enter__(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        now = time.monotonic()
        for label, roots in self.groups().items():
            seen = self._seen.setdefault(label, {})
            for pid in descendants(roots):
                st = _stat(pid)
                if st is not None:
                    seen[pid] = max(seen.get(pid, 0.0), st[1])
        self.samples.append((now, {label: sum(seen.values()) for label, seen in self._seen.items()}))

    def at(self, t: float, label: str) -> float:
        points = [(at, cpu.get(label, 0.0)) for at, cpu in self.samples]
        if t <= points[0][0]:
            return points[0][1]
        for (t0, c0), (t1, c1) in zip(points, points[1:], strict=False):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * (t - t0) / max(t1 - t0, 1e-9)
        return points[-1][1]

    def total(self, label: str) -> float:
        return self.samples[-1][1].get(label, 0.0) - self.samples[0][1].get(label, 0.0)


class Conditions:
    """The machine around one measurement: the load average before and after, and the CPU that
    processes not of this run used meanwhile (bench/machine.py's ``others_cpu``: the machine's
    busy time from /proc/stat minus this run's, here this process and every process below it,
    brokers and Spark daemons included, sampled every half second)."""

    def __init__(self) -> None:
        self.load_before = machine.load_average()["loadavg"]
        self.start = machine.cpu_seconds()
        self.mine = CpuSampler(lambda: {"mine": [os.getpid()]}, every=0.5).__enter__()

    def end(self) -> dict[str, Any]:
        self.mine.__exit__(None, None, None)
        end = machine.cpu_seconds()
        others = machine.others_cpu({**self.start, "own_s": 0.0}, {**end, "own_s": self.mine.total("mine")})
        return {"load_before": self.load_before, "load_after": machine.load_average()["loadavg"], **others}


# -- the keyed data -------------------------------------------------------------------------------
def keyed(work: Path, n: int, keys: int = KEYS, seed: int = 11) -> tuple[Dataset, list[dict], Path]:
    """Synthetic CO2 rows with a ``vehicle`` key (``keys`` of them), and the TOML declaring them."""
    co2 = builtin("co2")
    rows = typed_rows(
        synthetic.dataset(), synthetic.write_csv(work / f"rows-{n}-{seed}.csv", n_rows=n, seed=seed)
    )
    for i, row in enumerate(rows):
        row["vehicle"] = f"v{i % keys}"
    feats = ",\n".join(f'{{ name = "{f.name}", kind = "{f.kind}" }}' for f in co2.features)
    toml = work / "fleet.toml"
    toml.write_text(f'name = "fleet"\ntarget = "{co2.target}"\nkey = "vehicle"\nfeatures = [\n{feats}\n]\n')
    return Dataset.from_toml(toml), rows, toml


def processor(
    kafka: KafkaSettings,
    prefix: str,
    toml: Path,
    group: str,
    version: str,
    instance: str,
    state: Path,
    log: Path,
    *extra: str,
) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "processor",
        "--bootstrap",
        kafka.bootstrap_servers,
        "--topic-prefix",
        prefix,
        "--raw-partitions",
        str(PARTITIONS),
        "--dataset",
        str(toml),
        "--group",
        group,
        "--model-version",
        version,
        "--instance-id",
        instance,
        "--state-dir",
        str(state),
        "--log-level",
        "WARNING",
        *extra,
    ]
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def _stop_all(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic()


class _VersionCount:
    """How many predictions of ``version`` the watcher has seen (counted as they come)."""

    def __init__(self, watcher: CommittedWatcher, version: str) -> None:
        self.watcher, self.version, self.seen, self.n = watcher, version, 0, 0

    def __call__(self) -> int:
        arrivals = self.watcher.arrivals
        end = len(arrivals)
        self.n += sum(1 for _t, r in arrivals[self.seen:end] if r.get("version") == self.version)
        self.seen = end
        return self.n


def _nth_arrival(watcher: CommittedWatcher, version: str, n: int) -> float:
    k = 0
    for t, record in list(watcher.arrivals):
        if record.get("version") == version:
            k += 1
            if k >= n:
                return t
    raise ValueError(f"fewer than {n} predictions of {version}")


# -- scaling --------------------------------------------------------------------------------------
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
                    count = _VersionCount(watcher, version)
                    done = _wait(lambda: count() >= messages, 600, f"{messages} predictions of {k} instances")  # noqa: B023
                    cpu.sample()
                    _stop_all(procs)
                t10 = _nth_arrival(watcher, version, messages // 10)
                t90 = _nth_arrival(watcher, version, messages * 9 // 10)
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


# -- rebalance and restore after a SIGKILLed instance ------------------------------------------------
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


def _partitions_seen(watcher: CommittedWatcher, since: float = 0.0) -> set[int]:
    """The partitions of the predictions that arrived after ``since`` (arrivals are in time order)."""
    seen = set()
    for t, rec in reversed(list(watcher.arrivals)):
        if t <= since:
            break
        seen.add(rec["partition"])
    return seen


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
        _wait(lambda: holding(set(member.values())), 240, "3 instances sharing the partitions")
        _wait(lambda: len(_partitions_seen(watcher)) == PARTITIONS, 240, "predictions from every partition")
        time.sleep(5)
        held: dict[str, set[int]] = {}
        _wait(lambda: bool(held.update(_assignment(admin, group)[1]) or held.get(member[2])), 60,
              "the assignment of the instance to kill")
        moved = sorted(held[member[2]])
        procs[2].kill()
        killed = time.monotonic()
        procs[2].wait()
        assigned = _wait(
            lambda: holding({member[0], member[1]}), 120, "the survivors holding every partition"
        )
        _wait(
            lambda: set(moved) <= _partitions_seen(watcher, assigned),
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
        _stop_all(procs)
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


# -- a broker leader SIGKILLed -----------------------------------------------------------------------
def bench_broker(
    cluster: LocalCluster, kafka: KafkaSettings, work: Path, runs: int, rate: float = 300.0
) -> dict[str, Any]:
    out: dict[str, Any] = {"rate": rate, "instances": 2, "commit_interval_s": 0.5, "runs": []}
    for r in range(runs):
        try:
            out["runs"].append(_broker_run(cluster, kafka, work, r, rate))
        except TimeoutError as exc:
            out.setdefault("failed_runs", []).append(f"run {r}: {exc}")
        _wait(lambda: _full_isr(cluster), 240, "every replica back in sync")
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
        _wait(lambda: len(_partitions_seen(watcher)) == PARTITIONS, 240, "predictions from every partition")
        time.sleep(10)
        node, why = busiest_leader(cluster, topics.prefix, f"{group}-i0")
        before = time.monotonic()
        cluster.kill_node(node)
        killed = time.monotonic()
        time.sleep(30)
        after = time.monotonic()
        # A silence still going on at the end of the window counts too: wait for it to end.
        _wait(lambda: len(_partitions_seen(watcher, after)) == PARTITIONS, 180,
              "predictions after the window")
        resumed = time.monotonic()
    finally:
        writer.stop()
        _stop_all(procs)
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


# -- replication 3 / acks=all vs a single broker ----------------------------------------------------
def bench_rf(
    cluster_kafka: KafkaSettings, single_kafka: KafkaSettings, work: Path, runs: int, rows: int, messages: int
) -> dict[str, Any]:
    from bench.bench_ingest import bench_throughput
    from bench.bench_processor import _backlog, kappaml_rate

    proc_rows = typed_rows(synthetic.dataset(), synthetic.write_csv(work / "rf-rows.csv", messages, seed=1))
    out: dict[str, Any] = {"ingest_rows": rows, "processor_messages": messages, "runs": []}
    targets = {"3 nodes, RF 3, acks=all, min.insync 2": cluster_kafka, "single broker, RF 1": single_kafka}
    for r in range(runs):
        for name, kafka in targets.items():
            cond = Conditions()
            (work / f"rf-ingest-{r}-{name[:1]}").mkdir(parents=True, exist_ok=True)
            ingest = bench_throughput(rows, kafka, work / f"rf-ingest-{r}-{name[:1]}")
            rate = kappaml_rate(
                kafka, _backlog(kafka, proc_rows), "exactly-once", messages, work / f"rf-proc-{r}-{name[:1]}"
            )
            run = {
                "target": name,
                "run": r,
                "ingest_rows_per_s": ingest["rows_per_s"],
                "ingest_committed": ingest["committed_in_raw_topic"],
                "processor_msg_per_s": round(rate),
                "conditions": cond.end(),
            }
            out["runs"].append(run)
            print(json.dumps({"rf": run}), flush=True)  # noqa: T201
    for name in targets:
        mine = [r for r in out["runs"] if r["target"] == name]
        out[name] = {k: summary([r[k] for r in mine]) for k in ("ingest_rows_per_s", "processor_msg_per_s")}
        out[name]["others_cores"] = summary([r["conditions"]["others_cores"] for r in mine])
    return out


# -- the Spark replay: local[2] vs a standalone cluster ----------------------------------------------
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


# -- the report -------------------------------------------------------------------------------------
def _mm(s: dict[str, Any], fmt: str = "{:,.2f}") -> str:
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])}, {s['runs']} runs)"


def _others(runs: list[dict[str, Any]]) -> str:
    cores = [r["conditions"]["others_cores"] for r in runs]
    loads = [r["conditions"]["load_before"][0] for r in runs]
    return f"load {min(loads):.1f}–{max(loads):.1f}; others {min(cores):.2f}–{max(cores):.2f} cores"


def _pairs(runs: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(ingest, processor) ratio of the cluster to the single broker, per run (pair)."""
    out = []
    for r in sorted({run["run"] for run in runs}):
        both = [run for run in runs if run["run"] == r]
        if len(both) == 2:
            cluster, single = sorted(both, key=lambda run: not run["target"].startswith("3 nodes"))
            out.append((cluster["ingest_rows_per_s"] / single["ingest_rows_per_s"],
                        cluster["processor_msg_per_s"] / single["processor_msg_per_s"]))
    return out


def _failed(section: dict[str, Any]) -> str:
    failed = section.get("failed_runs", [])
    return f" Runs not set up under the load, left out: {'; '.join(failed)}." if failed else ""


def render(res: dict[str, Any]) -> str:
    lines = [
        "## Cluster (`python -m bench.bench_cluster`)",
        "",
        f"Run on {res['started']} in {res['duration_s']:,.0f} s on {res['machine']['cores']} cores "
        f"shared with other sessions: load average (1/5/15 min) {res['load_start']['loadavg']} at the start, "
        f'{res["load_end"]["loadavg"]} at the end. "others" is the CPU, in cores, that processes not '
        "of this run used during a figure's runs (machine busy time from /proc/stat minus this run's "
        "processes): everything here ran on the cores they left. A 3-node KRaft cluster "
        "(`infra/cluster.py`, 512 MiB heap per node, replication 3, min.insync.replicas 2), "
        f"topics of {PARTITIONS} partitions, a keyed data set of {KEYS} keys (synthetic CO2 rows, "
        "spec `rls`, drift detector `adwin`, the processor's defaults). Figures: median (min–max, runs). "
        "Raw numbers: `bench/results/cluster.json`. Not part of `make bench` (it runs 3 brokers, a "
        "single one and Spark daemons for about 25 minutes): `python -m bench.bench_cluster` rewrites "
        "this section only, `--render-only` from the last results.",
        "",
    ]
    if "scaling" in res:
        s = res["scaling"]
        lines += [
            "**Processor instances in one group** (the same backlog of "
            f"{s['messages']:,} messages for each; CPU of the processor processes only, from /proc; "
            "steady: from 10% to 90% of the predictions committed):",
            "",
            "| instances | CPU-s / 1,000 msgs, steady "
            "| CPU-s / 1,000 msgs, whole run (start-up and join included) "
            "| brokers' CPU-s / 1,000 msgs, steady | msg/s, steady | conditions |",
            "|---|---|---|---|---|---|",
        ]
        for k in ("1", "2", "3"):
            if k in s:
                mine = [r for r in s["runs"] if str(r["instances"]) == k]
                lines.append(
                    f"| {k} | {_mm(s[k]['cpu_s_per_1000_steady'], '{:.3f}')} | "
                    f"{_mm(s[k]['cpu_s_per_1000_total'], '{:.3f}')} | "
                    f"{_mm(s[k]['broker_cpu_s_per_1000_steady'], '{:.3f}')} | "
                    f"{_mm(s[k]['msg_per_s_steady'], '{:,.0f}')} | {_others(mine)} |"
                )
        lines.append("")
    if "spark" in res:
        s = res["spark"]
        lines += [
            f"**Spark replay** of that backlog ({s['messages']:,} messages, {s['partitions']} partitions, "
            "`--no-publish`, 2 tasks' worth of cores either way; CPU of the driver, executors, Python "
            "workers and, on the standalone cluster, its master's and workers' daemons):",
            "",
            "| master | wall s | CPU-s | CPU-s / 1,000 msgs | conditions |",
            "|---|---|---|---|---|",
        ]
        for mode in ("local[2]", "standalone, 2 workers"):
            if mode in s:
                mine = [r for r in s["runs"] if r["mode"] == mode]
                lines.append(
                    f"| {mode} | {_mm(s[mode]['wall_s'], '{:.1f}')} | {_mm(s[mode]['cpu_s'], '{:.1f}')} | "
                    f"{_mm(s[mode]['cpu_s_per_1000'], '{:.3f}')} | {_others(mine)} |"
                )
        lines.append("")
    if "rebalance" in res and "rebalance_s" in res["rebalance"]:
        s = res["rebalance"]
        lines += [
            f"**An instance SIGKILLed** (3 instances, a stream of {s['rate']:g} rows/s, session timeout "
            f"{s['session_timeout_s']:g} s, commit interval 0.5 s; {s['rebalance_s']['runs']} runs): "
            f"rebalance (kill → the survivors hold all {PARTITIONS} partitions, group stable) "
            f"p50 {s['rebalance_s']['p50']:.1f} s, max {s['rebalance_s']['max']:.1f} s; state restore "
            "(→ the first committed prediction of every moved partition, its keys' models restored from "
            f"the changelog) p50 {s['restore_s_max']['p50']:.1f} s, max {s['restore_s_max']['max']:.1f} s; "
            f"kill → every moved partition predicting again p50 {s['kill_to_resume_s']['p50']:.1f} s, "
            f"max {s['kill_to_resume_s']['max']:.1f} s ({_others(s['runs'])}).{_failed(s)}",
            "",
        ]
    if "broker" in res and "largest_gap_s" in res["broker"]:
        s = res["broker"]
        victims = "; ".join(r["killed"] for r in s["runs"])
        lines += [
            f"**A broker leader SIGKILLed** (2 instances, {s['rate']:g} rows/s, commit interval 0.5 s; "
            f"killed: {victims}): the largest gap in committed predictions after the kill (the node "
            "stays down 30 s; a silence still going on then is counted to its end) "
            f"{_mm(s['largest_gap_s'])} s, per partition {_mm(s['largest_partition_gap_s'])} s; "
            f"in the 10 s before it {_mm(s['largest_gap_before_kill_s'])} s ({_others(s['runs'])})."
            f"{_failed(s)}",
            "",
        ]
    if "rf" in res:
        s = res["rf"]
        lines += [
            f"**Replication 3 / acks=all vs a single broker**, same run, alternating (ingest: "
            f"{s['ingest_rows']:,} rows SSE → raw topic, 4 partitions; "
            f"processor: {s['processor_messages']:,} "
            "messages, exactly-once, one partition, in-process):",
            "",
            "| Kafka | ingest rows/s | processor msg/s | conditions |",
            "|---|---|---|---|",
        ]
        for name in ("3 nodes, RF 3, acks=all, min.insync 2", "single broker, RF 1"):
            if name in s:
                mine = [r for r in s["runs"] if r["target"] == name]
                lines.append(
                    f"| {name} | {_mm(s[name]['ingest_rows_per_s'], '{:,.0f}')} | "
                    f"{_mm(s[name]['processor_msg_per_s'], '{:,.0f}')} | {_others(mine)} |"
                )
        pairs = _pairs(s["runs"])
        if pairs:
            lines += ["", "The load changed a lot between runs; each pair (the cluster, then the single "
                      "broker, back to back) is the fairer comparison. Cluster ÷ single broker per pair: "
                      "ingest "
                      + ", ".join(f"{a:.2f}" for a, _b in pairs) + "; processor "
                      + ", ".join(f"{b:.2f}" for _a, b in pairs) + "."]
        lines.append("")
    for section, reason in res.get("errors", {}).items():
        lines += [f"**Not measured in this run: {section}** ({reason}).", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(section: str, path: Path = REPORT) -> None:
    """Put ``section`` in place of the report's "Cluster" section, or append it."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(r"^## Cluster\b.*?(?=^## |\Z)", re.M | re.S)
    text = (
        pattern.sub(lambda _m: section + "\n", text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    path.write_text(text)


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
