"""The processor refuses records of a data set the log does not declare (real broker)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kappaml import synthetic
from kappaml.catalog import publish_declaration
from kappaml.dataset import builtin
from kappaml.models import DEFAULT_SPEC
from processor import Processor, ProcessorSettings
from tests.kafka_helpers import json_values, produce_raw, read_all, typed_rows

pytestmark = pytest.mark.kafka


def test_a_record_whose_source_the_log_does_not_declare_is_dead_lettered(kafka_settings, topics, tmp_path):
    co2 = builtin("co2")
    publish_declaration(kafka_settings, topics.datasets, co2)
    rows = typed_rows(synthetic.dataset(), synthetic.write_csv(tmp_path / "s.csv", n_rows=60, seed=5))
    produce_raw(kafka_settings, topics.raw, co2, rows[:50])
    # The same columns under a name nobody declared.
    produce_raw(kafka_settings, topics.raw, replace(co2, name="ghost"), rows[50:51], start_id=51)
    settings = ProcessorSettings(dataset=co2, model_spec=DEFAULT_SPEC, kafka=kafka_settings, topics=topics,
                                 state_dir=tmp_path / "state")
    Processor(settings).run(idle_timeout=4)
    assert len(read_all(kafka_settings, topics.predictions, expect=50)) == 50
    dead = json_values(read_all(kafka_settings, topics.dlq, expect=1))
    assert [d["reason"] for d in dead] == ["source 'ghost' names a data set the log does not declare"]
