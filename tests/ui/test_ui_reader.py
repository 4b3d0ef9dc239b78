"""The UI's Kafka reader against the real broker: when it says "loaded", the backlog is on screen."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from kappaml.kafka import KafkaSettings
from kappaml.records import KeyMetrics, MetricsRecord
from kappaml.topics import Topics
from ui.reader import LiveReader, ReaderLimits
from ui.settings import UISettings
from ui.store import LiveStore

pytestmark = pytest.mark.kafka

# Long enough that the last-resort deadline never decides these tests.
LIMITS = ReaderLimits(load_timeout=300)


def _record(n: int) -> bytes:
    return KeyMetrics(version="v1", key="__all__", spec="rls", learned=n, n=n, rmse=1.0,
                      ts=1_700_000_000_000 + n).encode()


def _last_n(reader: LiveReader) -> int:
    series = reader.store.view().metrics.get(("v1", "__all__", "rls"), [])
    return series[-1].n if series else 0


@pytest.fixture
def reader_of(kafka_settings: KafkaSettings, topics: Topics) -> Iterator[LiveReader]:
    reader = LiveReader(UISettings(kafka=kafka_settings, prefix=topics.prefix), LIMITS)
    yield reader
    reader.close()


def test_loaded_means_what_was_committed_at_start_then_transactions_as_they_commit(
        kafka_settings: KafkaSettings, topics: Topics, reader_of: LiveReader) -> None:
    # A processor mid-transaction when the UI starts: its records stay hidden (read_committed)
    # and the reader still finishes loading, then shows them once they are committed.
    plain = Producer(kafka_settings.client_config())
    for n in range(1, 11):
        plain.produce(topics.metrics, value=_record(n), partition=0)
    assert plain.flush(30) == 0
    txn = Producer({**kafka_settings.client_config(), "transactional.id": f"t-{uuid.uuid4().hex}"})
    txn.init_transactions(30)
    txn.begin_transaction()
    for n in range(11, 16):
        txn.produce(topics.metrics, value=_record(n), partition=0)
    assert txn.flush(30) == 0

    reader_of.start()
    assert reader_of.wait_loaded(30)
    assert _last_n(reader_of) == 10
    txn.commit_transaction(30)
    deadline = time.monotonic() + 30
    while _last_n(reader_of) != 15 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _last_n(reader_of) == 15


class SlowStore(LiveStore):
    """A store that takes its time over every metrics record: any writer outpaces its reader."""

    def add_metrics(self, record: MetricsRecord) -> None:
        time.sleep(0.0005)
        super().add_metrics(record)


def test_loaded_while_a_partition_is_written_faster_than_it_is_read(
        kafka_settings: KafkaSettings, topics: Topics) -> None:
    reader = LiveReader(UISettings(kafka=kafka_settings, prefix=topics.prefix), LIMITS, SlowStore())
    producer = Producer({**kafka_settings.client_config(), "linger.ms": 5})
    backlog = 2000
    for n in range(1, backlog + 1):
        producer.produce(topics.metrics, value=_record(n), partition=0)
        producer.poll(0)
    assert producer.flush(30) == 0
    stop = threading.Event()

    def keep_writing() -> None:
        # About 4,000 records/s: twice what the slow store reads, so the partition's end keeps
        # moving away, yet bounded: unpaced, a fast broker took in so much before the reader's
        # assignment that reading up to that end took longer than the wait (a failed run).
        n, deadline = backlog, time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            for _ in range(40):
                n += 1
                try:
                    producer.produce(topics.metrics, value=_record(n), partition=0)
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            time.sleep(0.01)
        producer.flush(30)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        reader.start()
        assert reader.wait_loaded(45), "a busy partition kept the reader from ever loading"
        assert _last_n(reader) >= backlog  # everything written before it started
    finally:
        stop.set()
        reader.close()
        writer.join(60)
