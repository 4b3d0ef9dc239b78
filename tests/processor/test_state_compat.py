"""A restarted processor refuses a stored state written by other model code (real store, real broker)."""

from __future__ import annotations

import pytest

from infra.testing import produce_raw, read_all, typed_rows
from kappaml import learner, synthetic
from kappaml.compat import state_code
from kappaml.dataset import builtin
from kappaml.learner import IncompatibleState
from kappaml.models import DEFAULT_SPEC
from processor import Processor, ProcessorSettings

pytestmark = pytest.mark.kafka


def test_a_state_of_another_river_version_is_refused_on_restart(kafka_settings, topics, tmp_path,
                                                                monkeypatch):
    co2 = builtin("co2")
    rows = typed_rows(synthetic.dataset(), synthetic.write_csv(tmp_path / "s.csv", n_rows=40, seed=2))
    produce_raw(kafka_settings, topics.raw, co2, rows[:20])
    settings = ProcessorSettings(dataset=co2, model_spec=DEFAULT_SPEC, kafka=kafka_settings, topics=topics,
                                 state_dir=tmp_path / "state", drift=None)
    Processor(settings).run(idle_timeout=3)
    assert len(read_all(kafka_settings, topics.predictions, expect=20)) == 20
    # The same state store, read by code built against another River release.
    monkeypatch.setattr(learner, "STATE_CODE", state_code(river="0.0.1"))
    produce_raw(kafka_settings, topics.raw, co2, rows[20:], start_id=21)
    with pytest.raises(IncompatibleState, match="new --model-version"):
        Processor(settings).run(idle_timeout=3)
