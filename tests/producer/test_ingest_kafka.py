"""``python -m producer serve`` + ``ingest`` as real processes against the real broker.

The raw topic is read back with read_committed: it must hold every row exactly once, also when
the ingest is SIGKILLed mid-stream and the SSE server is restarted.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from producer_testkit import ingest_args, produced, program, read_messages, wait_until, write_csv

from infra.testing import free_port, kill, wait_http
from kappaml.dataset import GLOBAL_KEY
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics

pytestmark = pytest.mark.kafka


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_exactly_once(kafka: KafkaSettings, topics: Topics, n: int) -> list:
    messages = read_messages(kafka, topics.raw)
    ids = [int(m.headers["row_id"]) for m in messages]
    assert len(ids) == n, f"{len(ids)} records, {len(ids) - len(set(ids))} duplicates"
    assert sorted(ids) == list(range(1, n + 1))
    return messages


def test_co2_replay_exactly_once_through_kills_and_a_server_restart(
    co2_csv: Path, kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    port = free_port()
    serve = ("serve", "--csv", str(co2_csv), "--port", str(port))
    ingest = ingest_args(port, kafka_settings, topics, tmp_path, "--csv", str(co2_csv), "--rate", "1000")
    raw = topics.raw
    log = tmp_path / "run.log"
    with program(*serve, log=log) as server:
        wait_http(f"http://127.0.0.1:{port}/health")

        # 1. SIGKILL the whole ingest (Application and its source process) mid-stream.
        with program(*ingest, log=log) as first:
            wait_until(lambda: produced(kafka_settings, raw) >= 800, 60, "first progress", first)
            kill(first, signal.SIGKILL)
        count1 = produced(kafka_settings, raw)
        assert count1 < 7385

        # 2. SIGKILL only the Application process: its orphaned source child notices, commits
        # what it produced and exits; nothing is lost or duplicated.
        with program(*ingest, log=log) as second:
            wait_until(lambda: produced(kafka_settings, raw) >= count1 + 1500, 60, "second progress", second)
            second.kill()
            second.wait(10)
            wait_until(lambda: not group_alive(second.pid), 20, "the orphaned source process to exit")
        assert "ingest parent process is gone" in log.read_text()
        count2 = produced(kafka_settings, raw)
        assert count2 < 7385 + 100  # still mid-stream (the watermark also counts transaction markers)

        # 3. A third ingest; the SSE server is killed and restarted under it.
        with program(*ingest, log=log) as third:
            wait_until(lambda: produced(kafka_settings, raw) >= count2 + 1000, 60, "third progress", third)
            kill(server, signal.SIGKILL)
            time.sleep(1.0)
            with program(*serve, log=log):
                third.wait(120)
                assert third.returncode == 0, log.read_text()[-3000:]

    messages = assert_exactly_once(kafka_settings, topics, 7385)
    text = log.read_text()
    assert text.count('"stream connected"') >= 4  # three ingests, one reconnect after the restart
    for m in messages[:50]:
        record = m.json()
        assert m.key == GLOBAL_KEY.encode() and record["key"] == GLOBAL_KEY
        assert str(record["id"]) == m.headers["row_id"].decode()
        assert m.timestamp == record["ts"]
        assert record["source"] == "co2"
    assert read_messages(kafka_settings, topics.dlq) == []


TOML = """
name = "shops"
target = "sales"
key = "shop"
id_column = "uid"
features = [{ name = "price", kind = "numeric" }, { name = "promo", kind = "boolean" }]
"""


def test_bad_rows_go_to_the_dead_letter_topic_and_keys_partition(
    kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    declaration = tmp_path / "shops.toml"
    declaration.write_text(TOML)
    lines = [
        "u1,north,1.5,True,10",
        "u2,south,abc,False,11",   # non-numeric feature
        "u3,north,2.5,False,",     # missing target
        "",                        # empty line
        "u5,west,3.5,True,12,99",  # extra column
        "u6,south,4.5,False,13",
        "u7,,5.5,True,14",         # missing key
        "u8,west,nan,True,15",     # NaN
    ]
    csv = write_csv(tmp_path / "shops.csv", "uid,shop,price,promo,sales", lines)
    port = free_port()
    log = tmp_path / "run.log"
    with program("serve", "--csv", str(csv), "--dataset", str(declaration), "--port", str(port), log=log):
        wait_http(f"http://127.0.0.1:{port}/health")
        # No --dataset for the ingest: it asks the server for the declaration.
        with program(*ingest_args(port, kafka_settings, topics, tmp_path), log=log) as ingest:
            ingest.wait(90)
            assert ingest.returncode == 0, log.read_text()[-3000:]

    raw = read_messages(kafka_settings, topics.raw)
    assert sorted(m.headers["row_id"].decode() for m in raw) == ["u1", "u6"]
    for m in raw:
        record = m.json()
        assert m.key == record["row"]["shop"].encode() == record["key"].encode()
    dlq = sorted(read_messages(kafka_settings, topics.dlq), key=lambda m: m.json()["row"])
    reasons = {m.json()["row"]: m.json() for m in dlq}
    assert sorted(reasons) == [2, 3, 4, 5, 7, 8]
    for row, value in reasons.items():
        assert value["stage"] == "producer" and value["source"] == "shops"
        assert value["id"] == str(row) and dlq[0].headers["row_id"]
        assert value["reason"]
    assert reasons[2]["column"] == "price" and reasons[2]["value"] == "abc"
    assert reasons[3]["column"] == "sales" and "target" in reasons[3]["reason"]
    assert reasons[4]["reason"] == "empty line"
    assert "extra columns" in reasons[5]["reason"]
    assert reasons[7]["column"] == "shop"
    assert reasons[8]["column"] == "price" and "finite" in reasons[8]["reason"]


def test_sigterm_stops_both_programs_gracefully_and_resume_is_exact(
    kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    # No --csv: the embedded synthetic CO2 data (3,000 rows).
    serve = ("serve", "--port", str(port), "--cache-dir", str(tmp_path / "cache"), "--synthetic-rows", "3000")
    # The first run commits after every read from the stream (the low-latency setting: many
    # small transactions), the second with the default batching: the resume joins them exactly.
    ingest = ingest_args(port, kafka_settings, topics, tmp_path, "--rate", "1000", "--commit-interval", "0")
    with program(*serve, log=log) as server:
        health = wait_http(f"http://127.0.0.1:{port}/health").json()
        assert health["dataset"] == "co2-synthetic" and health["synthetic"] is True
        with program(*ingest, log=log) as first:
            wait_until(lambda: produced(kafka_settings, topics.raw) >= 500, 60, "progress", first)
            first.send_signal(signal.SIGTERM)
            first.wait(20)
            assert first.returncode == 0, log.read_text()[-3000:]
        committed = read_messages(kafka_settings, topics.raw)
        ids = sorted(int(m.headers["row_id"]) for m in committed)
        assert 0 < len(ids) < 3000 and ids == list(range(1, len(ids) + 1))  # a prefix, no gap
        with program(*ingest_args(port, kafka_settings, topics, tmp_path), log=log) as second:
            second.wait(90)
            assert second.returncode == 0
        server.send_signal(signal.SIGTERM)
        server.wait(20)
        assert server.returncode == 0
    messages = assert_exactly_once(kafka_settings, topics, 3000)
    assert {m.json()["source"] for m in messages} == {"co2-synthetic"}
    assert '"ingest stopped"' in log.read_text()
