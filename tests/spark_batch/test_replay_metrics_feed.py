"""Issue 15, item 4: a replay's metrics reach the metrics topic the Evaluation page draws.

A real ``python -m spark_batch replay`` (spark-submit) over a raw topic on the real broker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from replay_support import base_args, check_replay_metrics, run_cli

from infra.testing import produce_raw, read_topic, typed_rows
from kappaml.dataset import builtin

pytestmark = [pytest.mark.kafka, pytest.mark.spark]


@pytest.mark.slow
def test_a_replay_publishes_its_metrics_and_prints_its_headline(kafka_settings, topics, tmp_path: Path):
    """In make test-all: make test runs the same checks (check_replay_metrics) on the replay of
    tests/processor/test_cutover.py, one spark-submit fewer."""
    from kappaml import synthetic

    dataset = builtin("co2")
    rows = typed_rows(dataset, synthetic.write_csv(tmp_path / "s.csv", n_rows=600, seed=5))
    produce_raw(kafka_settings, topics.raw, dataset, rows)
    out = tmp_path / "out"
    proc = run_cli(base_args(kafka_settings, topics.prefix, out, "co2", "v2"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(m.value()) for m in read_topic(kafka_settings, topics.metrics)]
    assert all(r["origin"] == "replay" for r in records if r.get("version") == "v2")
    check_replay_metrics(kafka_settings, topics.metrics, proc, summary, "v2", "rls", 600)
