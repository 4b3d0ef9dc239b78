"""The fault-injection run on a cluster: 3 Kafka nodes, a processor group, a Spark standalone cluster.

A keyed data set streams through SSE -> ingest -> a group of processor instances on a 3-node
KRaft cluster (replication 3, min.insync.replicas 2) while a seeded injector SIGKILLs the node
leading the most partitions (and the processor's transaction coordinator, when one node holds
both it is that one), and one processor instance, kept down long enough that its partitions
move to the others. Then the Kappa replay runs on a Spark master with two workers, one of which
is SIGKILLed while the replay's tasks run (Spark re-runs them on the other). The accounting:
nothing lost or duplicated, and every key's model, live and replayed, equal to one sequential,
undisturbed pass over the log.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from infra.cluster import ClusterConfig, LocalCluster
from infra.spark import SparkCluster, SparkClusterConfig
from infra.testing import (
    discard_cluster,
    end_offsets,
    free_port,
    free_port_run,
    kill,
    read_all,
    start,
    wait_http,
)
from kappaml import synthetic
from kappaml.dataset import Dataset, builtin
from kappaml.fingerprint import fingerprint
from kappaml.kafka import KafkaSettings
from kappaml.snapshot import Snapshot
from kappaml.topics import Topics, ensure_topics
from tests.chaos.harness import Report, Supervised, reference

__all__ = ["ClusterChaosConfig", "run_cluster"]

GROUP = "chaos-processor-v1"  # the processor's consumer group (and transactional id prefix)


@dataclass(frozen=True)
class ClusterChaosConfig:
    workdir: Path
    rows: int = 2400
    keys: int = 12
    raw_partitions: int = 12
    processors: int = 2
    seed: int = 7
    rate: float = 150.0
    session_timeout: float = 6.0
    timeout: float = 400.0
    replay: bool = True


def _keyed_csv(config: ClusterChaosConfig) -> tuple[Path, Path, Dataset]:
    """Synthetic CO2 rows with a ``vehicle`` key column, and the TOML that declares them."""
    base = synthetic.write_csv(config.workdir / "base.csv", n_rows=config.rows, seed=config.seed)
    path = config.workdir / "fleet.csv"
    with base.open(newline="") as src, path.open("w", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=[*(reader.fieldnames or []), "vehicle"])
        writer.writeheader()
        for i, row in enumerate(reader):
            writer.writerow({**row, "vehicle": f"v{i % config.keys}"})
    co2 = builtin("co2")
    feats = ",\n".join(f'{{ name = "{f.name}", kind = "{f.kind}" }}' for f in co2.features)
    toml = config.workdir / "fleet.toml"
    toml.write_text(f'name = "fleet"\ntarget = "{co2.target}"\nkey = "vehicle"\nfeatures = [\n{feats}\n]\n')
    return path, toml, Dataset.from_toml(toml)


def _java_hash(text: str) -> int:
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h


def busiest_leader(cluster: LocalCluster, prefix: str, transactional_id: str) -> tuple[int, str]:
    """The node leading the most partitions of the project's topics, the transaction coordinator
    of ``transactional_id`` counting as many as all of them (Kafka places a transactional id on
    the ``__transaction_state`` partition of its Java hash code)."""
    status = cluster.status()
    state_parts = sum(1 for name in status["partitions"] if name.startswith("__transaction_state["))
    coordinator_part = (_java_hash(transactional_id) & 0x7FFFFFFF) % max(state_parts, 1)
    coordinator = status["partitions"].get(f"__transaction_state[{coordinator_part}]", {}).get("leader")
    led = Counter(p["leader"] for name, p in status["partitions"].items() if name.startswith(prefix + "."))
    score = Counter(led)
    if coordinator is not None:
        score[coordinator] += sum(led.values()) + 1
    node, _n = score.most_common(1)[0]
    role = ", the transaction coordinator" if node == coordinator else ""
    return node, f"node {node} (leads {led[node]} partitions{role})"


def _committed_output(kafka: KafkaSettings, topic: str) -> bool:
    return sum(end_offsets(kafka, topic).values()) > 0


def run_cluster(config: ClusterChaosConfig, on_event=lambda _m: None) -> Report:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    config.workdir.mkdir(parents=True, exist_ok=True)
    report = Report()
    data, toml, dataset = _keyed_csv(config)
    report.rows_in = config.rows
    cluster = LocalCluster(ClusterConfig(nodes=3, port=free_port_run(6), data_dir=config.workdir / "kafka",
                                         heap="384m", log_level="WARN"))
    cluster.start()
    try:
        _live(config, cluster, data, toml, dataset, report, on_event)
        if config.replay:
            _replay(config, cluster, toml, report, on_event)
    finally:
        discard_cluster(cluster)  # a temp cluster: its clean shutdown would add 30 s, proving nothing
    report.seconds = time.monotonic() - t0
    return report



def _live(config: ClusterChaosConfig, cluster: LocalCluster, data: Path, toml: Path, dataset: Dataset,
          report: Report, on_event) -> None:  # type: ignore[no-untyped-def]
    work = config.workdir
    kafka = KafkaSettings(bootstrap_servers=cluster.config.bootstrap)
    topics = Topics(prefix="chaos", raw_partitions=config.raw_partitions)
    ensure_topics(kafka, topics.specs())
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    port = free_port()
    common = ["--bootstrap", kafka.bootstrap_servers, "--topic-prefix", topics.prefix,
              "--raw-partitions", str(config.raw_partitions)]
    serve = Supervised("serve", "producer", ["serve", "--csv", str(data), "--dataset", str(toml),
                                             "--port", str(port)], logs / "serve.log", False)
    ingest = Supervised("ingest", "producer", [
        "ingest", "--url", f"http://127.0.0.1:{port}/events", *common, "--rate", f"{config.rate:g}",
        "--state-dir", str(work / "ingest-state"), "--commit-interval", "0.2", "--max-backoff", "0.5"],
        logs / "ingest.log", True)
    processors = [Supervised(f"processor-{i}", "processor", [
        *common, "--state-dir", str(work / f"processor-state-{i}"), "--commit-interval", "0.5",
        "--dataset", str(toml), "--drift", "none", "--session-timeout", f"{config.session_timeout:g}",
        "--instance-id", f"chaos-{i}"], logs / f"processor-{i}.log", False)
        for i in range(config.processors)]
    programs = [serve, ingest, *processors]
    rng = random.Random(config.seed)
    duration = config.rows / config.rate
    faults = sorted([(rng.uniform(0.2, 0.4) * duration, "kill broker"),
                     (rng.uniform(0.5, 0.7) * duration, "kill processor")])
    try:
        serve.start()
        wait_http(f"http://127.0.0.1:{port}/health", proc=serve.proc)
        ingest.start()
        for p in processors:
            p.start()
        started = time.monotonic()
        deadline = started + config.timeout
        down: tuple[int, float] | None = None
        while not (ingest.finished and not faults and down is None):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the ingest did not finish within {config.timeout:.0f}s")
            while faults and time.monotonic() - started >= faults[0][0]:
                at, action = faults.pop(0)
                if action == "kill broker" and not _committed_output(kafka, topics.predictions):
                    # Not before the processors' transactions run: their coordinator is a target.
                    faults = sorted([*faults, (time.monotonic() - started + 1.0, action)])
                    continue
                if action == "kill broker":
                    node, why = busiest_leader(cluster, topics.prefix, f"{GROUP}-chaos-0")
                    cluster.kill_node(node)
                    down = (node, time.monotonic() + 10.0)
                    report.faults.append(f"SIGKILL kafka {why} @{at:.1f}s")
                else:
                    victim = processors[rng.randrange(len(processors))]
                    # Kept down past its session timeout: its partitions must move to the others.
                    victim.sigkill(down_for=config.session_timeout + 6.0)
                    report.faults.append(f"SIGKILL {victim.name} (down {config.session_timeout + 6:.0f}s) "
                                         f"@{at:.1f}s")
                on_event(report.faults[-1])
            if down is not None and time.monotonic() >= down[1]:
                cluster.start_node(down[0])  # back: it rejoins the quorum and catches up
                on_event(f"kafka node {down[0]} restarted")
                down = None
            for program in programs:
                program.supervise()
            time.sleep(0.2)
        raw = read_all(kafka, topics.raw)
        states, learnable = reference(kafka, raw, dataset)
        while time.monotonic() < deadline:
            for p in processors:
                p.supervise()
            predicted = {str(json.loads(v)["id"]) for _k, v, _p, _o in read_all(kafka, topics.predictions)}
            if learnable <= predicted:
                break
            time.sleep(2.0)
    finally:
        for program in programs:
            program.stop()
    ids = [str(json.loads(v)["id"]) for _k, v, _p, _o in raw]
    dead = [json.loads(v) for _k, v, _p, _o in read_all(kafka, topics.dlq)]
    predicted_all = [str(json.loads(v)["id"]) for _k, v, _p, _o in read_all(kafka, topics.predictions)]
    latest: dict[str, Snapshot] = {}
    for _k, value, _p, _o in read_all(kafka, topics.models):
        snap = Snapshot.decode(value)
        if snap.key not in latest or snap.learned >= latest[snap.key].learned:
            latest[snap.key] = snap
    report.raw_records = len(ids)
    report.raw_duplicates = len(ids) - len(set(ids))
    report.dlq_rows = sum(1 for d in dead if d.get("stage") == "producer")
    report.dlq_by_reason = Counter(f"{d.get('stage') or 'processor'}: {str(d.get('reason'))[:70]}"
                                   for d in dead)
    report.lost_rows = sorted({str(i) for i in range(1, config.rows + 1)} - set(ids), key=int)
    report.learnable = len(learnable)
    report.learned = len(set(predicted_all))
    report.prediction_duplicates = len(predicted_all) - len(set(predicted_all))
    report.not_learned = sorted(learnable - set(predicted_all), key=int)
    report.fingerprints = {key: (fingerprint(ks.model), latest[key].fingerprint if key in latest else None)
                           for key, ks in states.items()}
    report.programs = {p.name: {"starts": p.starts, "sigkills": p.kills, "unexpected exits": p.unexpected}
                       for p in programs}
    replicas = {len(p.replicas) for p in AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
                .list_topics(timeout=10).topics[topics.raw].partitions.values()}
    report.programs["raw topic replicas"] = {"per partition": sorted(replicas)}


def _replay(config: ClusterChaosConfig, cluster: LocalCluster, toml: Path, report: Report,
            on_event) -> None:  # type: ignore[no-untyped-def]
    work = config.workdir
    spark = SparkCluster(SparkClusterConfig(workers=2, port=free_port(), webui_port=free_port(),
                                            worker_memory="768m", data_dir=work / "spark"))
    spark.start()
    out = work / "replay"
    args = ["replay", "--bootstrap", cluster.config.bootstrap, "--topic-prefix", "chaos", "--dataset",
            str(toml), "--version", "v1", "--output-dir", str(out), "--master", spark.config.master_url,
            "--shuffle-partitions", "2", "--spark-conf", "spark.executor.memory=512m",
            "--spark-conf", "spark.ui.enabled=false", "--no-class-archive"]
    killed = False
    try:
        proc = start("spark_batch", args, work / "logs" / "replay.log")
        deadline = time.monotonic() + config.timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                kill(proc)
                raise TimeoutError(f"the replay did not finish within {config.timeout:.0f}s")
            status = spark.status() or {}
            busy = [i for i, w in enumerate(status.get("workers", []), start=1)
                    if w.get("state") == "ALIVE" and w.get("coresused", 0) > 0]
            if not killed and status.get("activeapps") and len(busy) == 2:
                time.sleep(3.0)  # let tasks start on both, then lose one machine
                spark.kill_worker(busy[-1])
                killed = True
                report.faults.append(f"SIGKILL spark worker-{busy[-1]} during the replay")
                on_event(report.faults[-1])
            time.sleep(0.5)
        report.programs["replay"] = {"exit code": proc.returncode, "worker killed": killed}
    finally:
        spark.stop()
    if proc.returncode != 0:
        report.fingerprints["replay"] = ("exit 0", f"exit {proc.returncode}")
        return
    summary = json.loads((out / "summary.json").read_text())
    replayed = {k["key"]: k["fingerprint"] for k in summary["keys"] if k.get("fingerprint")}
    for key, (ref, _live) in list(report.fingerprints.items()):
        report.fingerprints[f"{key} (replay)"] = (ref, replayed.get(key))
