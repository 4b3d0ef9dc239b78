"""The local broker is a real Kafka: topics, produce/consume, transactions, restarts."""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from infra.broker import BrokerConfig, LocalBroker, new_cluster_id
from infra.errors import InfraError
from infra.testing import free_port
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics, TopicSpec, ensure_topics
from tests.conftest import REPO


def _consume_all(settings: KafkaSettings, topic: str, expect: int, *, committed_only: bool = True):
    consumer = Consumer({
        **settings.client_config(),
        "group.id": f"g-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed" if committed_only else "read_uncommitted",
    })
    consumer.subscribe([topic])
    values = []
    try:
        for _ in range(100):
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                assert msg.error() is None, msg.error()
                values.append(msg.value())
            if len(values) >= expect:
                # One more short poll: anything beyond `expect` would be a bug we want to see.
                values.extend(m.value() for m in consumer.consume(num_messages=500, timeout=0.5))
                break
    finally:
        consumer.close()
    return values


def test_topics_are_provisioned_idempotently(kafka_settings: KafkaSettings, broker: LocalBroker):
    topics = Topics(prefix=f"p{uuid.uuid4().hex[:8]}", raw_partitions=3)
    created = ensure_topics(kafka_settings, topics.specs())
    assert sorted(created) == sorted(s.name for s in topics.specs())
    assert ensure_topics(kafka_settings, topics.specs()) == []
    listed = broker.topics()
    assert listed[topics.raw] == 3
    assert listed[topics.dlq] == 1


def test_produce_and_consume_roundtrip(kafka_settings: KafkaSettings, topics: Topics):
    producer = Producer(kafka_settings.client_config())
    for i in range(100):
        producer.produce(topics.raw, key=b"k", value=f"v{i}".encode())
    assert producer.flush(10) == 0
    got = _consume_all(kafka_settings, topics.raw, 100)
    assert got == [f"v{i}".encode() for i in range(100)]


def test_transactions_commit_and_abort(kafka_settings: KafkaSettings):
    topic = f"tx{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_settings, [TopicSpec(topic, 1)])
    producer = Producer({**kafka_settings.client_config(), "transactional.id": f"tx-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted")
    producer.flush(10)  # librdkafka would otherwise purge, not abort, the unsent record
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed")
    producer.commit_transaction(30)
    assert _consume_all(kafka_settings, topic, 1) == [b"committed"]
    # read_uncommitted sees the aborted record too: the abort really reached the log.
    assert _consume_all(kafka_settings, topic, 2, committed_only=False) == [b"aborted", b"committed"]


def test_compacted_snapshot_topic(kafka_settings: KafkaSettings, topics: Topics):
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(kafka_settings.client_config())
    resource = ConfigResource(ConfigResource.Type.TOPIC, topics.models)
    configs = admin.describe_configs([resource])[resource].result()
    assert configs["cleanup.policy"].value == "compact"


def _infra(*args: str, data_dir: Path, port: int, cport: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra", *args, "--port", str(port), "--controller-port", str(cport),
         "--data-dir", str(data_dir), "--heap", "512m", "--log-level", "WARNING"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )


def test_cli_up_is_idempotent_and_data_survives_restart(tmp_path: Path):
    port, cport = free_port(), free_port()
    run = lambda *a: _infra(*a, data_dir=tmp_path, port=port, cport=cport)  # noqa: E731
    try:
        first = run("up")
        assert first.returncode == 0, first.stderr
        assert f"bootstrap 127.0.0.1:{port}" in first.stdout
        again = run("up")
        assert again.returncode == 0 and "already running" in again.stdout

        settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}")
        producer = Producer(settings.client_config())
        producer.produce("kappaml.raw", key=b"k", value=b"survives", partition=0)
        assert producer.flush(10) == 0

        status = run("status")
        assert "running" in status.stdout and "kappaml.raw" in status.stdout
        down = run("down")
        assert down.returncode == 0 and "stopped" in down.stdout
        assert run("status").returncode == 3

        assert run("up").returncode == 0
        consumer = Consumer({**settings.client_config(), "group.id": "survive"})
        consumer.assign([TopicPartition("kappaml.raw", 0, 0)])
        msg = consumer.poll(15)
        consumer.close()
        assert msg is not None and msg.value() == b"survives"
    finally:
        run("down")


def test_port_taken_by_something_else_is_a_clear_error(tmp_path: Path):
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(InfraError, match=f"port 127.0.0.1:{port} is taken"):
            LocalBroker(BrokerConfig(port=port, controller_port=free_port(), data_dir=tmp_path)).start()


def test_config_rejects_bad_arguments():
    with pytest.raises(ValueError):
        BrokerConfig(port=0)
    with pytest.raises(ValueError):
        BrokerConfig(port=9000, controller_port=9000)
    with pytest.raises(ValueError):
        BrokerConfig(heap="lots")


def test_cluster_ids_never_start_with_a_dash():
    # One id in 64 would: Kafka's tools then read it as an option (a CI run failed on it).
    ids = [new_cluster_id() for _ in range(2000)]
    assert not [cid for cid in ids if cid.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(cid + "==")) == 16 for cid in ids)


def test_storage_is_formatted_with_an_id_that_starts_with_a_dash(tmp_path: Path):
    # A data dir whose id was written by an older kappaml, or by hand.
    while not (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    broker = LocalBroker(BrokerConfig(port=free_port(), controller_port=free_port(), data_dir=tmp_path,
                                      heap="256m", log_level="WARN"))
    broker.cluster_id_file.write_text(cid)
    try:
        broker.start()
        assert broker.is_ready(timeout=10)
    finally:
        broker.stop()
    assert f"cluster.id={cid}" in (broker.log_dirs / "meta.properties").read_text()
