"""A real 3-node KRaft cluster on this machine: replicated topics, a leader SIGKILLed, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from infra.cluster import ClusterConfig, LocalCluster
from infra.testing import REPO, free_port, free_port_run, read_all
from kappaml import synthetic
from kappaml.kafka import KafkaSettings
from kappaml.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.kafka



def _produce(bootstrap: str, topic: str, ids: range) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": 60_000})
    for i in ids:
        producer.produce(topic, key=str(i % 7).encode(), value=str(i).encode())
    assert producer.flush(90) == 0


def _read(bootstrap: str, topic: str, n: int, timeout: float = 90) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=1.0):
                if not msg.error():
                    got.append(int(msg.value()))
    finally:
        consumer.close()
    return got


def _topic_config(bootstrap: str, topic: str) -> dict:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for _attempt in range(30):  # a new topic reaches every node's metadata a moment later
        try:
            return next(iter(admin.describe_configs([ConfigResource("topic", topic)]).values())).result(30)
        except KafkaException:
            time.sleep(0.5)
    raise AssertionError(f"topic {topic} not described")


def test_three_nodes_replicate_everything_and_survive_a_dead_leader(tmp_path: Path) -> None:
    # Where ``python -m infra run --brokers 3 --data-dir tmp/data`` looks for its cluster.
    config = ClusterConfig(nodes=3, port=free_port_run(6), data_dir=tmp_path / "data" / "kafka-cluster",
                           heap="384m", log_level="WARN")
    cluster = LocalCluster(config)
    assert cluster.start() == [1, 2, 3]
    try:
        kafka = KafkaSettings(bootstrap_servers=config.bootstrap)
        ensure_topics(kafka, [TopicSpec("events", 3)])  # no replication given: the cluster's default
        assert _topic_config(config.bootstrap, "events")["min.insync.replicas"].value == "2"
        status = cluster.status()
        assert all(node["answering"] for node in status["nodes"].values())
        assert status["controller"] in (1, 2, 3)
        parts = {k: v for k, v in status["partitions"].items() if k.startswith("events[")}
        assert len(parts) == 3 and all(len(p["replicas"]) == 3 and len(p["isr"]) == 3 for p in parts.values())
        internal = [v for k, v in status["partitions"].items() if k.startswith("__")]
        assert all(len(p["replicas"]) == 3 for p in internal)

        _produce(config.bootstrap, "events", range(0, 500))
        leader = parts["events[0]"]["leader"]
        cluster.kill_node(leader)  # a machine failure: SIGKILL of the node leading partition 0
        _produce(config.bootstrap, "events", range(500, 1000))  # acks=all still met by 2 in sync
        assert sorted(_read(config.bootstrap, "events", 1000)) == list(range(1000))

        cluster.start_node(leader)  # comes back, rejoins and catches up
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            isr = [p["isr"] for k, p in cluster.status()["partitions"].items() if k.startswith("events[")]
            if all(leader in members for members in isr):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"node {leader} did not rejoin the in-sync replicas: {isr}")
        consumer = Consumer({"bootstrap.servers": config.node(leader).bootstrap, "group.id": "probe"})
        try:
            ends = [consumer.get_watermark_offsets(TopicPartition("events", p), timeout=10)[1]
                    for p in range(3)]
        finally:
            consumer.close()
        assert sum(ends) == 1000
        _make_run_on_the_cluster(config, tmp_path)
    finally:
        assert sorted(cluster.stop()) == [1, 2, 3]
        assert cluster.running() == []


def _make_run_on_the_cluster(config: ClusterConfig, tmp: Path) -> None:
    """``make run ARGS="--brokers 3"``: the whole pipeline on the running cluster, one CSV pass."""
    csv = synthetic.write_csv(tmp / "small.csv", n_rows=300, seed=3)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "KAPPAML_TOPIC_PREFIX": prefix, "KAPPAML_STATE_DIR": str(tmp / "state"),
           "KAPPAML_RAW_PARTITIONS": "3"}
    argv = [sys.executable, "-m", "infra", "run", "--brokers", "3", "--port", str(config.port),
            "--data-dir", str(tmp / "data"), "--csv", str(csv), "--rate", "0",
            "--sse-port", str(free_port()), "--ui-port", str(free_port()), "--feeds-port", str(free_port()),
            "--metrics-port", "0"]
    out = tmp / "run.txt"
    with out.open("wb") as sink:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        predicted = 0
        while predicted < 300:
            assert proc.poll() is None, out.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{predicted} of 300 predicted:\n{out.read_text()[-3000:]}"
            time.sleep(2)
            predicted = len(read_all(KafkaSettings(bootstrap_servers=config.bootstrap),
                                     f"{prefix}.predictions", timeout=10))
        assert "3 nodes, replication 3, min.insync.replicas 2" in out.read_text()
        raw = _topic_config(config.bootstrap, f"{prefix}.raw")
        assert raw["min.insync.replicas"].value == "2"
        described = AdminClient({"bootstrap.servers": config.bootstrap}).list_topics(timeout=10)
        replicas = {len(p.replicas) for p in described.topics[f"{prefix}.predictions"].partitions.values()}
        assert replicas == {3}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(90)
    assert code == 0, out.read_text()[-3000:]
    assert config.nodes == len(LocalCluster(config).running()), "a cluster it did not start keeps running"
