"""Small helpers for tests that talk to the session's real broker."""

from __future__ import annotations

import csv
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from kappaml.records import encode_record, make_record, model_key, parse_row


def produce_raw(settings: KafkaSettings, topic: str, dataset: Dataset,
                rows: Iterable[Mapping[str, Any]], *, start_id: int = 1) -> int:
    """Write typed rows to the raw topic exactly as the ingest does; return how many."""
    producer = Producer({**settings.client_config(), "linger.ms": 5})
    n = 0
    for n, row in enumerate(rows, start=start_id):
        record = make_record(dataset, n, row, ts=int(time.time() * 1000))
        producer.produce(topic, key=model_key(dataset, row).encode(), value=encode_record(record),
                         headers={"row_id": str(record["id"])})
        if n % 10_000 == 0:
            producer.flush()
    assert producer.flush(30) == 0
    return n - start_id + 1


def produce_bytes(settings: KafkaSettings, topic: str,
                  messages: Iterable[tuple[bytes | None, bytes]]) -> None:
    producer = Producer(settings.client_config())
    for key, value in messages:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def typed_rows(dataset: Dataset, csv_path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV as typed values, through the same parser the producer uses."""
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        return [parse_row(dataset, fields, i) for i, fields in enumerate(csv.DictReader(fh), start=1)]


def end_offsets(settings: KafkaSettings, topic: str) -> dict[int, int]:
    consumer = Consumer({**settings.client_config(), "group.id": f"probe-{uuid.uuid4().hex}"})
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in md.partitions}
    finally:
        consumer.close()


def read_all(settings: KafkaSettings, topic: str, *, expect: int | None = None,
             timeout: float = 60.0, committed: bool = True) -> list[Any]:
    """Every message of ``topic`` from the start (read_committed), as (key, value, partition, offset).

    With ``expect``, waits (up to ``timeout``) until at least that many are there; without it,
    reads up to the end offsets seen at the start.
    """
    consumer = Consumer({
        **settings.client_config(),
        "group.id": f"reader-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed" if committed else "read_uncommitted",
    })
    md = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in md.partitions])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    idle_rounds = 0
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            for msg in batch:
                if msg.error():
                    continue
                out.append((msg.key(), msg.value(), msg.partition(), msg.offset()))
            if expect is not None and len(out) >= expect:
                # A short extra read: more than expected must show up as a failure.
                idle_rounds += 0 if batch else 1
                if idle_rounds >= 2:
                    break
            elif expect is None and not batch:
                idle_rounds += 1
                if idle_rounds >= 3:
                    break
    finally:
        consumer.close()
    return out


def json_values(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(value) for _key, value, _p, _o in messages]


COMPACTION_MARKER = b"__compaction_marker__"


def compact_now(settings: KafkaSettings, topic: str, timeout: float = 90.0) -> None:
    """Make the broker compact ``topic`` now, and wait until it has.

    Compaction only cleans closed segments: the topic gets a tiny ``segment.ms``, a marker
    record rolls the segment, and the marker written twice under one key must shrink to one.
    """
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    admin = AdminClient(settings.client_config())
    entries = [ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET) for name, value in
               (("segment.ms", "100"), ("min.cleanable.dirty.ratio", "0.0001"),
                ("min.compaction.lag.ms", "0"), ("delete.retention.ms", "100"))]
    for future in admin.incremental_alter_configs([ConfigResource("topic", topic,
                                                                  incremental_configs=entries)]).values():
        future.result(30)
    marker = COMPACTION_MARKER + uuid.uuid4().hex.encode()
    producer = Producer(settings.client_config())
    partitions = consumer_partitions(settings, topic)
    deadline = time.monotonic() + timeout
    written = 0
    while time.monotonic() < deadline:
        for p in partitions:
            for _ in range(2):
                producer.produce(topic, key=marker, value=b"x", partition=p)
                written += 1
        producer.flush(10)
        time.sleep(2)
        seen = sum(1 for key, *_ in read_all(settings, topic, timeout=10) if key == marker)
        if seen < written:
            return
    raise AssertionError(f"{topic} was not compacted within {timeout:.0f} s")


def consumer_partitions(settings: KafkaSettings, topic: str) -> list[int]:
    consumer = Consumer({**settings.client_config(), "group.id": f"probe-{uuid.uuid4().hex}"})
    try:
        return sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    finally:
        consumer.close()
