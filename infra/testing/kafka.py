"""Writing to and reading back from a real broker, as the tests and the benchmarks do.

``produce_raw`` writes typed rows exactly as the ingest does; ``read_topic`` is the one reader
of a whole topic (``read_all`` gives its messages as tuples).
"""

from __future__ import annotations

import csv
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, OffsetSpec

from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from kappaml.records import encode_record, make_record, model_key, parse_row

__all__ = [
    "COMPACTION_MARKER", "compact_now", "consumer_partitions", "end_offsets", "json_values", "produce_bytes",
    "produce_raw", "produce_records", "read_all", "read_topic", "typed_rows",
]

COMPACTION_MARKER = b"__compaction_marker__"


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
    if producer.flush(30) != 0:
        raise RuntimeError(f"{topic}: records still undelivered after 30 s")
    return n - start_id + 1


def produce_records(settings: KafkaSettings, topic: str, records: Iterable[Mapping[str, Any]]) -> int:
    """Write raw records (``make_record`` / ``make_features`` / ``make_label`` dicts) in the order
    given, each keyed by its ``key`` (its model key), as the ingest does; return how many."""
    producer = Producer({**settings.client_config(), "linger.ms": 5, "enable.idempotence": True})
    n = 0
    for n, record in enumerate(records, start=1):
        producer.produce(topic, key=str(record["key"]).encode(), value=encode_record(record))
        if n % 10_000 == 0:
            producer.flush()
    if producer.flush(30) != 0:
        raise RuntimeError(f"{topic}: records still undelivered after 30 s")
    return n


def produce_bytes(settings: KafkaSettings, topic: str,
                  messages: Iterable[tuple[bytes | None, bytes]]) -> None:
    producer = Producer(settings.client_config())
    for key, value in messages:
        producer.produce(topic, key=key, value=value)
    if producer.flush(30) != 0:
        raise RuntimeError(f"{topic}: records still undelivered after 30 s")


def typed_rows(dataset: Dataset, csv_path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV as typed values, through the same parser the producer uses."""
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        return [parse_row(dataset, fields, i) for i, fields in enumerate(csv.DictReader(fh), start=1)]


def consumer_partitions(settings: KafkaSettings, topic: str) -> list[int]:
    admin = AdminClient(settings.client_config())
    return sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions)


# list_offsets answers these, not flagged retriable, while a new topic's leaders settle.
_LEADER_MOVING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART}


def end_offsets(settings: KafkaSettings, topic: str, *, committed: bool = False) -> dict[int, int]:
    """Each partition's end: the high watermark, or with ``committed`` the last stable offset (what a
    read_committed reader can reach: an open transaction's records are not behind it yet)."""
    admin = AdminClient(settings.client_config())
    level = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    deadline = time.monotonic() + 30
    while True:
        md = admin.list_topics(topic, timeout=10).topics[topic]
        futures = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in md.partitions},
                                     isolation_level=level, request_timeout=10)
        try:
            return {tp.partition: f.result().offset for tp, f in futures.items()}
        except KafkaException as exc:
            # A topic just created, or a broker slow under load, answers NOT_LEADER for a moment.
            error = exc.args[0]
            if not (error.retriable() or error.code() in _LEADER_MOVING) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_settled(settings: KafkaSettings, topic: str, timeout: float = 45.0) -> dict[int, int]:
    """Wait until no transaction is open on ``topic`` (last stable offset == high watermark).

    A read_committed reader stops at the first open transaction: records committed after it by
    other producers stay invisible until it ends. A process that died (or shut down while its
    abort timed out) leaves one open until the broker times it out; a check of the *final*
    output must wait for that, or it reads an older state. Returns the partitions' ends.
    """
    deadline = time.monotonic() + timeout
    while True:
        stable, high = end_offsets(settings, topic, committed=True), end_offsets(settings, topic)
        if stable == high:
            return high
        if time.monotonic() > deadline:
            open_ = {p: (stable.get(p), high[p]) for p in high if stable.get(p) != high[p]}
            raise AssertionError(f"{topic}: transactions still open after {timeout:.0f} s "
                                 f"(partition: (last stable offset, high watermark)) {open_}")
        time.sleep(0.5)


def read_topic(settings: KafkaSettings, topic: str, *, expect: int | None = None, timeout: float = 60.0,
               committed: bool = True) -> list[Message]:
    """Every message of ``topic`` from the start (read_committed unless told), in order per partition.

    Without ``expect``: up to the end offsets of the moment of the call; AssertionError if they are
    not reached within ``timeout``. With ``expect``: until at least that many are there and a short
    read more finds no others (more than expected must show up as a failure), or until ``timeout``.
    """
    consumer = Consumer({
        **settings.client_config(),
        "group.id": f"reader-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed" if committed else "read_uncommitted",
    })
    ends = end_offsets(settings, topic, committed=committed) if expect is None else {}
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    remaining = {p for p, end in ends.items() if end > 0}
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    idle_rounds = 0
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            out.extend(msg for msg in batch if not msg.error())
            if expect is None:
                if remaining:
                    for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                        if tp.offset >= ends[tp.partition]:
                            remaining.discard(tp.partition)
                if not remaining:
                    break
            elif len(out) >= expect:
                idle_rounds += 0 if batch else 1
                if idle_rounds >= 2:
                    break
    finally:
        consumer.close()
    if expect is None and remaining:
        raise AssertionError(f"{topic}: partitions {sorted(remaining)} not read to their end in {timeout} s")
    return out


def read_all(settings: KafkaSettings, topic: str, *, expect: int | None = None,
             timeout: float = 60.0, committed: bool = True) -> list[Any]:
    """:func:`read_topic`'s messages as (key, value, partition, offset)."""
    return [(m.key(), m.value(), m.partition(), m.offset())
            for m in read_topic(settings, topic, expect=expect, timeout=timeout, committed=committed)]


def json_values(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(value) for _key, value, _p, _o in messages]


def compact_now(settings: KafkaSettings, topic: str, timeout: float = 90.0) -> None:
    """Make the broker compact ``topic`` now, and wait until it has.

    Compaction only cleans closed segments: the topic gets a tiny ``segment.ms``, a marker
    record rolls the segment, and the marker written twice under one key must shrink to one.
    """
    admin = AdminClient(settings.client_config())
    entries = [ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET) for name, value in
               (("segment.ms", "100"), ("min.cleanable.dirty.ratio", "0.0001"),
                ("min.compaction.lag.ms", "0"), ("delete.retention.ms", "100"))]
    for future in admin.incremental_alter_configs([ConfigResource("topic", topic,
                                                                  incremental_configs=entries)]).values():
        future.result(30)
    # The log cleaner looks for work every log.cleaner.backoff.ms (15 s by default): every call
    # waited that out. Shorter while we wait (a dynamic broker setting), then as configured.
    _cleaner_backoff(admin, "200")
    try:
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
            time.sleep(0.5)
            seen = sum(1 for key, *_ in read_all(settings, topic, timeout=10) if key == marker)
            if seen < written:
                return
    finally:
        _cleaner_backoff(admin, None)
    raise AssertionError(f"{topic} was not compacted within {timeout:.0f} s")


def _cleaner_backoff(admin: AdminClient, ms: str | None) -> None:
    """Set each broker's log.cleaner.backoff.ms (None: back to its static value)."""
    op = AlterConfigOpType.SET if ms is not None else AlterConfigOpType.DELETE
    entry = ConfigEntry("log.cleaner.backoff.ms", ms or "", incremental_operation=op)
    brokers = admin.list_topics(timeout=10).brokers
    resources = [ConfigResource("broker", str(b), incremental_configs=[entry]) for b in brokers]
    for future in admin.incremental_alter_configs(resources).values():
        future.result(30)
