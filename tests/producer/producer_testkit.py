"""Helpers of the producer tests: a real uvicorn server in a thread, SSE reading, Kafka read-back.

Imported by module name (pytest puts this directory on sys.path for its test modules).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from confluent_kafka import Consumer, TopicPartition
from httpx_sse import ServerSentEvent, connect_sse

from kappaml.csvsource import CsvTable
from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from producer.server import ServerConfig, create_app

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def read_topic(kafka: KafkaSettings, topic: str, *, idle: float = 1.0) -> list[Message]:
    """Every committed message of ``topic`` (read_committed), partition by partition."""
    consumer = Consumer({**kafka.client_config(), "group.id": f"reader-{os.getpid()}-{time.monotonic_ns()}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        out: list[Message] = []
        for p in sorted(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            while True:
                msg = consumer.poll(idle)
                if msg is None:
                    break
                if msg.error():
                    if msg.error().code() == -191:  # _PARTITION_EOF
                        break
                    raise RuntimeError(msg.error())
                out.append(Message(msg.key(), msg.value(), dict(msg.headers() or []), p, msg.offset(),
                                   msg.timestamp()[1]))
        return out
    finally:
        consumer.close()


# ---------------------------------------------------------------------------- subprocesses


@contextmanager
def program(*args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m producer <args>`` in its own process group; killed (group) on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "producer", *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "KAPPAML_LOG_LEVEL": "INFO"},
        )
    try:
        yield proc
    finally:
        kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def wait_http(url: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout}s")
        time.sleep(0.1)
