"""Issue 15, item 1: a new user switches to another CSV in the same clone.

Real programs on the real broker: ``producer serve`` + ``producer ingest`` and ``python -m
processor``. A different file is new data (learned); the same file ingested again is still
duplicates, and the processor says so (log warning, overall metrics record).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer

from infra.testing import free_port, read_all, wait_http
from kappaml import synthetic
from kappaml.kafka import KafkaSettings
from kappaml.provenance import stream_name
from kappaml.topics import Topics
from tests.conftest import REPO
from tests.producer.producer_testkit import program

pytestmark = pytest.mark.kafka


def ingest_file(csv: Path, kafka: KafkaSettings, topics: Topics, state: Path, log: Path) -> None:
    """``make run`` with this CSV, up to the end of the file (no loop)."""
    port = free_port()
    with program("serve", "--csv", str(csv), "--port", str(port), log=log):
        wait_http(f"http://127.0.0.1:{port}/health")
        with program("ingest", "--url", f"http://127.0.0.1:{port}/events", "--bootstrap",
                     kafka.bootstrap_servers, "--topic-prefix", topics.prefix, "--raw-partitions",
                     str(topics.raw_partitions), "--state-dir", str(state), "--commit-interval", "0.2",
                     log=log) as ingest:
            assert ingest.wait(120) == 0, log.read_text()[-3000:]


def process(kafka: KafkaSettings, topics: Topics, state: Path, log: Path) -> dict:
    """Run the processor until idle; its latest overall metrics record."""
    with log.open("ab") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "processor", "--bootstrap", kafka.bootstrap_servers, "--topic-prefix",
             topics.prefix, "--raw-partitions", str(topics.raw_partitions), "--state-dir", str(state),
             "--commit-interval", "0.2", "--exit-when-idle", "4"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=240, check=False)
    assert proc.returncode == 0, log.read_text()[-3000:]
    overall = [json.loads(v) for k, v, _p, _o in read_all(kafka, topics.metrics) if k == b"__overall__"]
    return overall[-1]


def test_another_csv_is_learned_and_the_same_csv_again_is_flagged_as_duplicates(
        kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path) -> None:
    first = synthetic.write_csv(tmp_path / "first.csv", n_rows=300, seed=1)
    second = synthetic.write_csv(tmp_path / "second.csv", n_rows=200, seed=2)
    log = tmp_path / "programs.log"
    ingest_state, proc_state = tmp_path / "ingest-state", tmp_path / "processor-state"

    ingest_file(first, kafka_settings, topics, ingest_state, log)
    overall = process(kafka_settings, topics, proc_state, log)
    assert (overall["learned"], overall["skipped"]) == (300, 0)

    # Ctrl-C, then the same clone with another CSV: its rows 1..200 are new data.
    ingest_file(second, kafka_settings, topics, ingest_state, log)
    overall = process(kafka_settings, topics, proc_state, log)
    assert (overall["learned"], overall["skipped"]) == (500, 0)
    assert overall["duplicates"]["warning"] is False

    # The first file once more, from a copy: the same bytes are the same stream, so the ingest
    # resumes after its last row and writes nothing new.
    copy = tmp_path / "copy-of-first.csv"
    copy.write_bytes(first.read_bytes())
    ingest_file(copy, kafka_settings, topics, ingest_state, log)
    assert len(read_all(kafka_settings, topics.raw)) == 500

    # Its rows written to the raw topic again (an upstream that sends them twice): every one is
    # a duplicate, and the processor says so instead of only counting.
    stream = synthetic_stream(first)
    again = [(k, v, p) for k, v, p, _o in read_all(kafka_settings, topics.raw)
             if json.loads(v)["stream"] == stream]
    assert len(again) == 300
    producer = Producer(kafka_settings.client_config())
    for key, value, partition in again:
        producer.produce(topics.raw, value, key, partition=partition)
    assert producer.flush(30) == 0
    log.write_bytes(b"")
    overall = process(kafka_settings, topics, proc_state, log)
    assert (overall["learned"], overall["skipped"]) == (500, 300)
    duplicates = overall["duplicates"]
    assert duplicates["warning"] is True and duplicates["share"] == 1.0
    assert duplicates["recent_skipped"] == duplicates["recent_rows"] >= 100
    assert "a large share of recent input was skipped as already learned" in log.read_text()


def synthetic_stream(csv: Path) -> str:
    return stream_name("co2", csv)
