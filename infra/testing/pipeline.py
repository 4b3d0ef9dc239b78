"""A paced writer of raw records, and a read_committed watcher that times what readers actually see."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from kappaml.records import encode_record, make_record, model_key

__all__ = ["CommittedWatcher", "PacedWriter"]


class PacedWriter(threading.Thread):
    """Writes ``rows`` to the raw topic at ``rate`` rows/s, as the ingest would, in a thread."""

    def __init__(self, kafka: KafkaSettings, topic: str, dataset: Dataset,
                 rows: Sequence[Mapping[str, Any]], rate: float) -> None:
        super().__init__(daemon=True, name="paced-writer")
        if rate <= 0:
            raise ValueError(f"rate must be > 0 rows/s, got {rate}")
        self.kafka, self.topic, self.dataset, self.rows, self.rate = kafka, topic, dataset, rows, rate
        self.written = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        producer = Producer({**self.kafka.client_config(), "linger.ms": 2})
        started = time.monotonic()
        for n, row in enumerate(self.rows, start=1):
            if self.stopped.is_set():
                break
            delay = started + n / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            record = make_record(self.dataset, n, row, ts=int(time.time() * 1000))
            producer.produce(self.topic, key=model_key(self.dataset, row).encode(),
                             value=encode_record(record), headers={"row_id": str(record["id"])})
            producer.poll(0)
            self.written = n
        producer.flush(30)

    def stop(self) -> None:
        self.stopped.set()


class CommittedWatcher(threading.Thread):
    """Follows a JSON output topic as a read_committed reader and stamps each record's arrival.

    ``arrivals`` holds (monotonic seconds, record) in arrival order; ``gaps(field)`` the largest
    silence between two arrivals for each value of ``field`` (e.g. the raw partition).
    """

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        super().__init__(daemon=True, name="committed-watcher")
        self.kafka, self.topic = kafka, topic
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.stopped = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        consumer = Consumer({**self.kafka.client_config(), "group.id": f"watcher-{uuid.uuid4().hex}",
                             "enable.auto.commit": False, "isolation.level": "read_committed"})
        try:
            parts = consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions
            consumer.assign([TopicPartition(self.topic, p, 0) for p in parts])
            self.ready.set()
            while not self.stopped.is_set():
                for msg in consumer.consume(num_messages=500, timeout=0.05):
                    if not msg.error():
                        self.arrivals.append((time.monotonic(), orjson.loads(msg.value())))
        finally:
            consumer.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)

    def count(self) -> int:
        return len(self.arrivals)

    def largest_gap(self, since: float = 0.0, field: str | None = None,
                    until: float = float("inf")) -> dict[Any, float]:
        """The longest silence (seconds) ending in [since, until), per value of ``field`` (None: overall)."""
        last: dict[Any, float] = {}
        gaps: dict[Any, float] = {}
        for at, record in list(self.arrivals):
            group = record.get(field) if field else None
            if group in last and since <= at < until:
                gaps[group] = max(gaps.get(group, 0.0), at - last[group])
            last[group] = at
        return gaps
