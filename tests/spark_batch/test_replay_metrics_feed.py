"""Issue 15, item 4: a replay's metrics reach the metrics topic the Evaluation page draws.

A real ``python -m spark_batch replay`` (spark-submit) over a raw topic on the real broker,
then the UI's Evaluation page (AppTest) on the same topics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from replay_support import base_args, run_cli

from infra.testing import produce_raw, read_topic, typed_rows
from kappaml.dataset import builtin

pytestmark = [pytest.mark.kafka, pytest.mark.spark]


def test_a_replay_publishes_its_metrics_and_prints_its_headline(kafka_settings, topics, tmp_path: Path):
    from kappaml import synthetic

    dataset = builtin("co2")
    rows = typed_rows(dataset, synthetic.write_csv(tmp_path / "s.csv", n_rows=600, seed=5))
    produce_raw(kafka_settings, topics.raw, dataset, rows)
    out = tmp_path / "out"
    proc = run_cli(base_args(kafka_settings, topics.prefix, out, "co2", "v2"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())

    records = [json.loads(m.value()) for m in read_topic(kafka_settings, topics.metrics)]
    replay = [r for r in records if r.get("version") == "v2"]
    assert replay and all(r["origin"] == "replay" and r["spec"] == "rls" for r in replay)
    keys = [r for r in replay if r["scope"] == "key"]
    overall = [r for r in replay if r["scope"] == "overall"]
    assert {r["key"] for r in keys} == {"__all__"} and all(r["key"] == "__overall__" for r in overall)
    # Cumulative and rolling, ending on the replay's own figures.
    assert [r["learned"] for r in keys] == sorted(r["learned"] for r in keys) and keys[-1]["learned"] == 600
    assert math.isclose(keys[-1]["rmse"], summary["metrics"]["rmse"], rel_tol=1e-9)
    assert math.isclose(overall[-1]["rmse"], summary["metrics"]["rmse"], rel_tol=1e-9)
    assert keys[-1]["rolling_rmse"] is not None and keys[-1]["window"] == 500
    assert summary["metrics_published"] == len(replay)

    # The end of `python -m spark_batch replay`: its headline figures.
    rmse = summary["metrics"]["rmse"]
    assert f"replay v2 (rls): 600 rows, 1 keys, 600 learned, 0 duplicates, 0 invalid; RMSE {rmse:.3f}" \
        in proc.stdout, proc.stdout[-2000:]
    assert "shown on the UI's Evaluation page (origin=replay)" in proc.stdout
