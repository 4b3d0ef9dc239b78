"""Issue 15, item 3: the default stream stays out of sample; a looping CSV says when it is not.

Real ``producer serve`` processes (SSE), then the processor on the real broker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.testing import free_port, produce_bytes, read_all, wait_http
from kappaml import synthetic
from kappaml.dataset import builtin
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics
from processor import Processor, ProcessorSettings
from tests.producer.producer_testkit import program, read_events

pytestmark = pytest.mark.kafka


def looped(tmp_path: Path, *serve_args: str, rows: int) -> list[dict]:
    port = free_port()
    with program("serve", "--port", str(port), "--cache-dir", str(tmp_path / "cache"), *serve_args,
                 log=tmp_path / "serve.log"):
        wait_http(f"http://127.0.0.1:{port}/health")
        events = read_events(f"http://127.0.0.1:{port}/events", params={"loop": "true"}, limit=3 * rows)
    return [json.loads(e.data) for e in events if e.event == "record"]


def test_the_default_synthetic_stream_is_new_rows_on_every_pass(tmp_path: Path) -> None:
    records = looped(tmp_path, "--synthetic-rows", "40", rows=40)
    assert len(records) == 120
    passes = [[tuple(sorted(r["row"].items())) for r in records[i:i + 40]] for i in (0, 40, 80)]
    assert len({row for rows in passes for row in rows}) > 110  # not the same 40 rows thrice
    assert [r["id"] for r in records] == list(range(1, 121))
    assert all("pass" not in r for r in records)  # every pass is out of sample


def test_a_looping_csv_marks_its_repeated_passes(tmp_path: Path) -> None:
    csv = synthetic.write_csv(tmp_path / "real.csv", n_rows=30, seed=9)
    records = looped(tmp_path, "--csv", str(csv), rows=30)
    assert [r.get("pass", 1) for r in records] == [1] * 30 + [2] * 30 + [3] * 30
    assert [r["row"] for r in records[30:60]] == [r["row"] for r in records[:30]]


def test_predictions_of_a_repeated_pass_say_so(kafka_settings: KafkaSettings, topics: Topics,
                                               tmp_path: Path) -> None:
    csv = synthetic.write_csv(tmp_path / "real.csv", n_rows=30, seed=9)
    records = looped(tmp_path, "--csv", str(csv), rows=30)
    produce_bytes(kafka_settings, topics.raw, [(r["key"].encode(), json.dumps(r).encode()) for r in records])
    settings = ProcessorSettings(dataset=builtin("co2"), model_spec="rls", kafka=kafka_settings,
                                 topics=topics, state_dir=tmp_path / "state", commit_interval=0.2)
    Processor(settings).run(idle_timeout=3)
    predictions = [json.loads(v) for _k, v, _p, _o in read_all(kafka_settings, topics.predictions)]
    assert len(predictions) == 90
    by_id = {p["id"]: p.get("pass", 1) for p in predictions}
    assert [by_id[i] for i in range(1, 91)] == [1] * 30 + [2] * 30 + [3] * 30
