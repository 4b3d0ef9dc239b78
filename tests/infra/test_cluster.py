"""A real 3-node KRaft cluster on this machine: replicated topics, a leader SIGKILLed, nothing lost."""

from __future__ import annotations

import random
import socket
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from infra.cluster import ClusterConfig, LocalCluster
from kappaml.kafka import KafkaSettings
from kappaml.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.kafka


def _free_run(n: int) -> int:
    """A base port with ``n`` consecutive free ports above it."""
    for _ in range(50):
        base = random.randrange(20_000, 40_000)
        try:
            socks = []
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")


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
    config = ClusterConfig(nodes=3, port=_free_run(6), data_dir=tmp_path / "cluster", heap="384m",
                           log_level="WARN")
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
    finally:
        assert sorted(cluster.stop()) == [1, 2, 3]
        assert cluster.running() == []
