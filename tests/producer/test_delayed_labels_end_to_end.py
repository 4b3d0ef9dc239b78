"""Delayed labels end to end: ``producer serve --label-delay 200 --label-drop 0.05 --seed 1`` and
``producer ingest`` as real processes, then the processor, against the real broker.

The first 1,500 rows of the CO2 CSV: one served prediction per row (read_committed), exactly the
rows whose label was sent learned, once, and the dropped ones expired (or, within the TTL of the
stream's end, still pending); the model and the pending set equal a sequential loop's over the log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from producer_testkit import ingest_args, program

from infra.testing import free_port, json_values, read_all, wait_http
from kappaml.dataset import builtin
from kappaml.fingerprint import state_fingerprint
from kappaml.kafka import KafkaSettings
from kappaml.pending import LabelPolicy
from kappaml.records import SERVED
from kappaml.topics import Topics
from processor import Processor
from producer.labels import LabelSchedule
from tests.processor.test_delayed_labels import _references
from tests.processor.test_processor import latest_snapshots, make_settings

pytestmark = pytest.mark.kafka

ROWS = 1500


@pytest.mark.slow
def test_co2_served_once_learned_when_labelled_dropped_ones_expire(
    co2_csv: Path, kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    """In make test-all. make test covers its parts through real Kafka: the same chain of real
    programs with delayed labels in tests/first_hour/test_make_run_delayed_labels.py (every row
    served, every label sent learned, the dropped ones expired or pending), the raw topic exact in
    tests/producer/test_ingest_delayed_labels.py, and the model, pending set and predictions equal
    to a sequential loop in tests/processor/test_delayed_labels.py (the co2 test and the SIGKILLs)."""
    lines = co2_csv.read_text().splitlines()[: ROWS + 1]
    csv = tmp_path / "co2_head.csv"
    csv.write_text("\n".join(lines) + "\n")
    port = free_port()
    log = tmp_path / "run.log"
    serve = ("serve", "--csv", str(csv), "--port", str(port),
             "--label-delay", "200", "--label-drop", "0.05", "--seed", "1")
    with program(*serve, log=log):
        wait_http(f"http://127.0.0.1:{port}/health")
        ingest_argv = ingest_args(port, kafka_settings, topics, tmp_path, "--csv", str(csv))
        with program(*ingest_argv, log=log) as ingest:
            ingest.wait(120)
            assert ingest.returncode == 0, log.read_text()[-3000:]

    dataset = builtin("co2")
    policy = LabelPolicy.parse("1000")  # records of the key: a label 200 rows late is ~400 records late
    Processor(make_settings(kafka_settings, topics, tmp_path, dataset, labels=policy)).run(idle_timeout=4)

    schedule = LabelSchedule(delay_rows=200, drop=0.05, seed=1)
    dropped = {i for i in range(1, ROWS + 1) if schedule.dropped(str(i))}
    assert 0.03 * ROWS < len(dropped) < 0.07 * ROWS
    ref, ks = _references(kafka_settings, topics, dataset, policy)["__all__"]
    learned = {rid for _s, rid in ref.learned}
    expired = {rid for _s, rid in ref.expired}
    pending = {rid for _s, rid in ref.pending}
    assert learned == set(range(1, ROWS + 1)) - dropped, "exactly the labelled rows learned"
    assert expired and expired | pending == dropped and not expired & pending, "the dropped ones expired"
    assert max(pending, default=0) > max(expired), "only the newest dropped ones are still within the TTL"

    outputs = json_values(read_all(kafka_settings, topics.predictions))
    served = [p for p in outputs if p.get("kind") == SERVED]
    scored = [p for p in outputs if p.get("kind") != SERVED]
    assert sorted(p["id"] for p in served) == list(range(1, ROWS + 1)), "one served prediction per row"
    assert sorted(p["id"] for p in scored) == sorted(learned), "each labelled row scored once"
    by_offset = {p["offset"]: p for p in served}
    assert all(by_offset[p["served_offset"]]["y_pred"] == p["y_pred"] for p in scored)
    assert all(p["delay_rows"] > 0 and p["delay_ms"] >= 0 for p in scored)

    snapshot = latest_snapshots(kafka_settings, topics)["__all__"]
    assert snapshot.fingerprint == ref.fingerprint, "the model equals the plain sequential loop's"
    assert snapshot.extra["state_fingerprint"] == state_fingerprint(ks), "pending set and expiries equal"
    metrics = [m for m in json_values(read_all(kafka_settings, topics.metrics))
               if m["scope"] == "key" and "features_served" in m]
    final = metrics[-1]
    assert (final["features_served"], final["labels_learned"], final["expired"], final["pending"]) == (
        ROWS, len(learned), len(expired), len(pending))
    assert all(m["features_served"] == m["labels_learned"] + m["expired"] + m["pending"] for m in metrics)
