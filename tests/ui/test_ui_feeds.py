"""The SSE feeds (``python -m ui feeds``) against the real broker: resume, bad ids, Kafka down."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from httpx_sse import ServerSentEvent, connect_sse
from litestar.testing import TestClient

from infra.testing import free_port, read_all, start, stop, wait_http
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics
from ui.feeds import FeedConfig, create_feeds_app
from ui.settings import UISettings

pytestmark = pytest.mark.kafka

TIMEOUT = httpx.Timeout(10.0, read=10.0)


@pytest.fixture
def feeds(kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path) -> Iterator[str]:
    """``python -m ui feeds`` on a free port; yields its base URL."""
    port = free_port()
    log = tmp_path / "feeds.log"
    proc = start("ui", ["feeds", "--port", str(port), "--bootstrap", kafka_settings.bootstrap_servers,
                        "--topic-prefix", topics.prefix, "--heartbeat", "1"], log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", timeout=60, proc=proc, log=log)
        yield url
    finally:
        stop(proc, timeout=15)


def _predictions(kafka: KafkaSettings, topic: str, ids: range, *, transactional: bool) -> None:
    """Prediction-like records spread over two partitions; optionally in a transaction, which
    leaves a commit marker in the log like the processor's exactly-once output does."""
    config = {**kafka.client_config(), "linger.ms": 5}
    if transactional:
        config["transactional.id"] = f"ui-test-{uuid.uuid4().hex}"
    producer = Producer(config)
    if transactional:
        producer.init_transactions(30)
        producer.begin_transaction()
    for i in ids:
        record = {"key": f"k{i % 3}", "id": i, "y_true": float(i), "y_pred": float(i) + 0.5,
                  "version": "v1"}
        producer.produce(topic, key=record["key"].encode(), value=json.dumps(record).encode(),
                         partition=i % 2)
    if transactional:
        producer.commit_transaction(30)
    assert producer.flush(30) == 0


def _read(url: str, n: int, headers: dict[str, str] | None = None) -> list[ServerSentEvent]:
    events: list[ServerSentEvent] = []
    with httpx.Client(timeout=TIMEOUT) as client, \
            connect_sse(client, "GET", url, headers=headers or {}) as source:
        source.response.raise_for_status()
        for event in source.iter_sse():
            events.append(event)
            if len(events) >= n:
                break
    return events


def test_resume_with_last_event_id_continues_exactly_after_the_last_event(
        feeds: str, kafka_settings: KafkaSettings, topics: Topics) -> None:
    _predictions(kafka_settings, topics.predictions, range(0, 30), transactional=True)
    _predictions(kafka_settings, topics.predictions, range(30, 60), transactional=False)
    stream = f"{feeds}/streams/predictions"

    first = _read(f"{stream}?from=beginning", 25)
    assert {e.event for e in first} == {"prediction"}
    assert first[0].retry == 2000
    resumed = _read(stream, 35, headers={"Last-Event-ID": first[-1].id})
    ids = [json.loads(e.data)["id"] for e in first + resumed]
    assert sorted(ids) == list(range(60))  # nothing lost, nothing twice

    # Per partition the order is the log's; the final id is, per partition, the offset after
    # the last record (transaction markers take offsets too, so it is not simply the count).
    by_partition: dict[int, list[int]] = {0: [], 1: []}
    for i in ids:
        by_partition[i % 2].append(i)
    assert all(v == sorted(v) for v in by_partition.values())
    log = read_all(kafka_settings, topics.predictions, expect=60)
    after_last = {p: max(o for _k, _v, part, o in log if part == p) + 1 for p in (0, 1)}
    assert resumed[-1].id == f"0:{after_last[0]},1:{after_last[1]}"

    # Resuming at the very end waits for new events only; the query form works like the header.
    _predictions(kafka_settings, topics.predictions, range(60, 64), transactional=False)
    tail = _read(f"{stream}?last_event_id={resumed[-1].id}", 4)
    assert sorted(json.loads(e.data)["id"] for e in tail) == [60, 61, 62, 63]


def test_a_new_stream_starts_at_the_end_by_default(feeds: str, kafka_settings: KafkaSettings,
                                                   topics: Topics) -> None:
    _predictions(kafka_settings, topics.predictions, range(0, 10), transactional=False)
    with httpx.Client(timeout=TIMEOUT) as client, \
            connect_sse(client, "GET", f"{feeds}/streams/metrics") as metrics:
        metrics.response.raise_for_status()  # the stream is positioned when the headers arrive
        producer = Producer(kafka_settings.client_config())
        for i in range(3):
            producer.produce(topics.metrics, key=b"__overall__",
                             value=json.dumps({"scope": "overall", "learned": i}).encode())
        assert producer.flush(30) == 0
        events = []
        for event in metrics.iter_sse():
            events.append(event)
            if len(events) == 3:
                break
    assert [e.event for e in events] == ["metrics"] * 3
    assert [json.loads(e.data)["learned"] for e in events] == [0, 1, 2]
    assert [e.id for e in events] == ["0:1", "0:2", "0:3"]


@pytest.mark.parametrize("last_id, message", [
    ("garbage", "comma-separated partition:offset pairs"),
    ("0:1,0:2", "names partition 0 twice"),
    ("7:0", "names partition(s) [7]"),
    ("0:999999,1:0", "is ahead of topic"),
])
def test_a_bad_last_event_id_is_a_400_with_a_clear_message(
        kafka_settings: KafkaSettings, topics: Topics, last_id: str, message: str) -> None:
    app = create_feeds_app(UISettings(kafka=kafka_settings, prefix=topics.prefix))
    with TestClient(app) as client:
        response = client.get("/streams/predictions", headers={"Last-Event-ID": last_id})
        assert response.status_code == 400
        assert message in response.json()["detail"]
        response = client.get("/streams/predictions", params={"from": "middle"})
        assert response.status_code == 400


def test_kafka_down_is_a_503_that_says_so(topics: Topics) -> None:
    down = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    app = create_feeds_app(UISettings(kafka=down, prefix=topics.prefix), FeedConfig(request_timeout=1.5))
    with TestClient(app) as client:
        response = client.get("/streams/metrics")
    assert response.status_code == 503
    assert "not reachable" in response.json()["detail"]
    assert response.headers["retry-after"] == "2"


def test_a_missing_topic_is_a_503_that_says_so(kafka_settings: KafkaSettings) -> None:
    app = create_feeds_app(UISettings(kafka=kafka_settings, prefix=f"never-{uuid.uuid4().hex[:8]}"),
                           FeedConfig(request_timeout=1.0))
    with TestClient(app) as client:
        response = client.get("/streams/predictions")
    assert response.status_code == 503
    assert "does not exist yet" in response.json()["detail"]


def test_the_drift_feed_relays_each_detection(feeds: str, kafka_settings: KafkaSettings,
                                              topics: Topics) -> None:
    producer = Producer(kafka_settings.client_config())
    for learned in (120, 260):
        producer.produce(topics.drift, key=b"__all__", value=json.dumps(
            {"key": "__all__", "detector": "adwin", "learned": learned}).encode())
    assert producer.flush(30) == 0
    events = _read(f"{feeds}/streams/drift?from=beginning", 2)
    assert [e.event for e in events] == ["drift", "drift"]
    assert [json.loads(e.data)["learned"] for e in events] == [120, 260]
    assert events[-1].id == "0:2"
