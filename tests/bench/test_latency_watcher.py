"""bench.latency's Watcher: each committed record stamped once, with its event and processing times."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from bench.latency import Watcher, measure, percentile
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics

pytestmark = pytest.mark.kafka


def _transaction(kafka: KafkaSettings, topic: str, values: list[dict], *, commit: bool) -> None:
    producer = Producer({**kafka.client_config(), "transactional.id": uuid.uuid4().hex})
    producer.init_transactions(30)
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, json.dumps(value).encode())
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def test_watcher_stamps_each_committed_record_once(kafka_settings: KafkaSettings, topics: Topics) -> None:
    watcher = Watcher(kafka_settings, topics.predictions)
    watcher.start()
    try:
        _transaction(kafka_settings, topics.predictions, [{"ts": 5, "id": 0}], commit=False)
        raw = [{"ts": 1_000 + i} for i in range(30)]
        predictions = [{"event_ts": 2_000 + i, "processed_ts": 2_100 + i} for i in range(30)]
        _transaction(kafka_settings, topics.predictions, raw + predictions, commit=True)
        deadline = time.monotonic() + 30
        while len(watcher.samples) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.done.set()
        watcher.join(10)
    assert len(watcher.samples) == 60  # the aborted record is never seen (read_committed)
    # The topic may have several partitions: no order across them.
    by_ts = {ts: processed for ts, _, processed in watcher.samples}
    assert by_ts == {**{1_000 + i: None for i in range(30)}, **{2_000 + i: 2_100 + i for i in range(30)}}
    now = int(time.time() * 1000)
    assert all(now - 60_000 < seen <= now for _, seen, _ in watcher.samples)


def test_percentile_and_bad_arguments(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    assert percentile([3, 1, 2, 4], 50) == 2 and percentile([3, 1, 2, 4], 99) == 4
    with pytest.raises(ValueError, match="unknown system"):
        measure(kafka_settings, tmp_path, system="spark")
    with pytest.raises(ValueError, match="rate and seconds"):
        measure(kafka_settings, tmp_path, system="ingest", rate=0)
