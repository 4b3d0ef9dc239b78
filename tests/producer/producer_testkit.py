"""Helpers of the producer tests: a real uvicorn server in a thread, SSE reading, Kafka read-back.

Imported by module name (pytest puts this directory on sys.path for its test modules).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from confluent_kafka import Consumer, TopicPartition
from httpx_sse import ServerSentEvent, connect_sse

from infra.testing import free_port, read_topic, running
from kappaml.csvsource import CsvTable
from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics
from producer.server import ServerConfig, create_app


class ThreadServer:
    """The real app under a real uvicorn, in a daemon thread of the test process."""

    def __init__(self, table: CsvTable, config: ServerConfig | None = None) -> None:
        self.app = create_app(table, config)
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
            timeout_graceful_shutdown=2,
        ))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/events"

    @property
    def streams(self):  # type: ignore[no-untyped-def]
        return self.app.state.streams

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.streams.stop.set()
        self.server.should_exit = True
        self.thread.join(15)


def serve_file(path: Path, dataset: Dataset, **config: object) -> ThreadServer:
    return ThreadServer(CsvTable(path, dataset), ServerConfig(**config))  # type: ignore[arg-type]


def read_events(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    limit: int | None = None,
    timeout: float = 30.0,
) -> list[ServerSentEvent]:
    """Events (not comments) until ``end``, the connection closes, or ``limit`` events."""
    out: list[ServerSentEvent] = []
    with httpx.Client(timeout=timeout) as client, connect_sse(
        client, "GET", url, headers=headers or {}, params=params or {}
    ) as source:
        source.response.raise_for_status()
        for sse in source.iter_sse():
            if sse.event in ("", "message") and not sse.data:
                continue  # retry-only block
            out.append(sse)
            if sse.event == "end" or (limit is not None and len(out) >= limit):
                break
    return out


def write_csv(path: Path, header: str, lines: list[str], *, newline: str = "\n") -> Path:
    path.write_bytes((newline.join([header, *lines]) + newline).encode())
    return path


# ---------------------------------------------------------------------------- Kafka


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int
    timestamp: int

    def json(self) -> dict:
        assert self.value is not None
        return json.loads(self.value)

    @classmethod
    def of(cls, msg: Any) -> Message:
        return cls(msg.key(), msg.value(), dict(msg.headers() or []), msg.partition(), msg.offset(),
                   msg.timestamp()[1])


def produced(kafka: KafkaSettings, topic: str) -> int:
    """Messages written so far, committed or not (sum of high watermarks): a progress probe."""
    consumer = Consumer({**kafka.client_config(), "group.id": "probe"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        consumer.close()


def read_messages(kafka: KafkaSettings, topic: str) -> list[Message]:
    """Every committed message of ``topic``, partition by partition."""
    return sorted(map(Message.of, read_topic(kafka, topic)), key=lambda m: (m.partition, m.offset))


# ---------------------------------------------------------------------------- subprocesses


def program(*args: str, log: Path) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """``python -m producer <args>`` in its own process group; killed (group) on exit."""
    return running("producer", *args, log=log)


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def ingest_args(port: int, kafka: KafkaSettings, topics: Topics, tmp: Path, *extra: str) -> tuple[str, ...]:
    return ("ingest", "--url", f"http://127.0.0.1:{port}/events", "--bootstrap", kafka.bootstrap_servers,
            "--topic-prefix", topics.prefix, "--raw-partitions", str(topics.raw_partitions),
            "--state-dir", str(tmp / "state"), "--commit-interval", "0.2", "--max-backoff", "0.5", *extra)
