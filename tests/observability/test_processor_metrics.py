"""The processor's lifecycle metrics, metrics on, against the real broker: promotions, drift, challengers."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest

from infra.testing import json_values, produce_raw, read_all
from kappaml.drift import DriftConfig
from kappaml.lineup import Promotion, publish_promotion
from processor import Processor
from tests.observability.test_programs import sample
from tests.observability.test_prometheus import needs_promtool, promtool_check_metrics
from tests.processor.test_processor import fleet, make_settings

pytestmark = pytest.mark.kafka


@needs_promtool
def test_promotions_drift_and_challengers_are_counted(kafka_settings, topics, tmp_path: Path) -> None:
    dataset, rows, _toml = fleet(tmp_path, 1800, seed=13)
    settings = make_settings(kafka_settings, topics, tmp_path / "live", dataset, challengers=("linear",),
                             drift=DriftConfig(policy="reset"), metrics_port=0, commit_interval=0.5)
    produce_raw(kafka_settings, topics.raw, dataset, rows[:1200])
    publish_promotion(kafka_settings, topics.raw, Promotion("v1", "linear"))
    scaled = [{**r, dataset.target: r[dataset.target] * 1.6} for r in rows[1200:]]
    produce_raw(kafka_settings, topics.raw, dataset, scaled, start_id=1201)
    processor = Processor(settings)
    processor.run(idle_timeout=3)
    assert processor.metrics is not None
    text = generate_latest(processor.metrics.registry).decode()
    promtool_check_metrics(text)

    assert sample(text, "kappaml_processor_messages_total") == 1800 + topics.raw_partitions
    assert sample(text, "kappaml_processor_messages_learned_total") == 1800
    # The promotion is a control record on every raw partition, applied on each.
    assert sample(text, "kappaml_processor_promotions_total", spec="linear") == topics.raw_partitions
    drifts = json_values(read_all(kafka_settings, topics.drift))
    assert drifts, "the 1.6x target change must be detected"
    for spec in ("rls", "linear"):
        expected = sum(d["spec"] == spec for d in drifts)
        assert (sample(text, "kappaml_processor_drift_detections_total", spec=spec, action="reset") or 0) \
            == expected
        assert sample(text, "kappaml_processor_learn_seconds_count", spec=spec) == 1800
    assert sample(text, "kappaml_processor_rolling_rmse", spec="linear", role="champion") > 0
    assert sample(text, "kappaml_processor_rolling_rmse", spec="rls", role="challenger") > 0
    assert sample(text, "kappaml_processor_state_keys") == len({r[dataset.key] for r in rows})
    assert sample(text, "kappaml_processor_state_bytes") > 0
