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
