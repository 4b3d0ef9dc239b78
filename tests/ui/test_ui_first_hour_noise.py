"""Issue 15, item 8: a refused request and a client going away are routine, logged as such.

Real programs: ``python -m ui feeds`` on the real broker and ``python -m producer serve``.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from infra.testing import free_port, start, stop, wait_http
from kappaml import synthetic
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics

pytestmark = pytest.mark.kafka


def test_a_client_leaving_a_busy_feed_is_one_debug_line(kafka_settings: KafkaSettings, topics: Topics,
                                                         tmp_path: Path) -> None:
    producer = Producer({**kafka_settings.client_config(), "linger.ms": 20})
    pad = "x" * 400
    for i in range(20_000):
        producer.produce(topics.predictions, value=json.dumps({"id": i, "pad": pad}).encode(),
                         partition=i % 2)
        if i % 5000 == 0:
            producer.flush()
    assert producer.flush(30) == 0
    port, log = free_port(), tmp_path / "feeds.log"
    proc = start("ui", ["feeds", "--port", str(port), "--bootstrap", kafka_settings.bootstrap_servers,
                        "--topic-prefix", topics.prefix,
                        # A client that drops after the whole backlog is written is found by the
                        # next write: a keep-alive, 1 s later instead of 15.
                        "--heartbeat", "1"], log, {"KAPPAML_LOG_LEVEL": "DEBUG"})
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=60, proc=proc, log=log)
        for _ in range(3):
            # A browser tab closed mid-backlog: read a little, then drop the connection.
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(b"GET /streams/predictions HTTP/1.1\r\nHost: x\r\n\r\n")
                client.recv(4096)
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            time.sleep(1.5)
        deadline = time.monotonic() + 15
        def settled() -> bool:
            text = log.read_text()
            return text.count("feed client went away") >= text.count("feed stream opened") >= 1

        while not settled() and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        stop(proc, timeout=15)
    text = log.read_text()
    assert "socket.send() raised exception" not in text
    # Every stream that opened and lost its client says so once. (A connection dropped before its
    # stream opened has nothing to say: that happens when the server reads the request late.)
    opened = text.count("feed stream opened")
    assert 1 <= opened <= 3 and text.count("feed client went away") == opened, text[-4000:]
    gone = [json.loads(line) for line in text.splitlines() if "feed client went away" in line]
    assert {g["level"] for g in gone} == {"debug"}
    assert '"level": "error"' not in text


def test_a_bad_sse_query_is_a_json_400_logged_without_a_traceback(tmp_path: Path) -> None:
    csv = synthetic.write_csv(tmp_path / "s.csv", n_rows=20, seed=1)
    port, log = free_port(), tmp_path / "serve.log"
    proc = start("producer", ["serve", "--csv", str(csv), "--port", str(port)], log)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=60, proc=proc, log=log)
        for bad in ({"params": {"rate": "-1"}}, {"headers": {"Last-Event-ID": "abc"}}):
            response = httpx.get(f"http://127.0.0.1:{port}/events", timeout=10, **bad)  # type: ignore[arg-type]
            assert response.status_code == 400
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["status_code"] == 400
        time.sleep(0.5)
    finally:
        stop(proc, timeout=15)
    text = log.read_text()
    assert "Uncaught exception" not in text and "Traceback" not in text and '"exc_info"' not in text
    refused = [json.loads(line) for line in text.splitlines() if '"request refused"' in line]
    assert len(refused) == 2 and {r["level"] for r in refused} == {"info"}
