"""The processor refuses records of a data set the log does not declare (real broker)."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from infra.testing import json_values, produce_raw, read_all, typed_rows
from kappaml import synthetic
from kappaml.catalog import publish_declaration
from kappaml.dataset import builtin
from kappaml.models import DEFAULT_SPEC
from processor import Processor, ProcessorSettings
from tests.conftest import REPO

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


def _processor(kafka_settings, topics, tmp_path, *extra: str, log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "processor", "--bootstrap", kafka_settings.bootstrap_servers,
            "--topic-prefix", topics.prefix, "--raw-partitions", str(topics.raw_partitions),
            "--state-dir", str(tmp_path / "state"), "--commit-interval", "0.5", *extra]
    with log.open("w") as err:
        return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)


def test_a_processor_started_before_the_ingest_waits_for_the_declaration(kafka_settings, topics, tmp_path):
    log = tmp_path / "processor.log"
    proc = _processor(kafka_settings, topics, tmp_path, "--dataset-wait", "120", "--exit-when-idle", "5",
                      "--log-level", "INFO", log=log)
    deadline = time.monotonic() + 60
    while "waiting for the ingest to declare the data set" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    co2 = builtin("co2")
    publish_declaration(kafka_settings, topics.datasets, co2)
    rows = typed_rows(synthetic.dataset(), synthetic.write_csv(tmp_path / "s.csv", n_rows=30, seed=4))
    produce_raw(kafka_settings, topics.raw, co2, rows)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert len(read_all(kafka_settings, topics.predictions, expect=30)) == 30


def test_a_processor_gives_up_waiting_with_a_one_line_error(kafka_settings, topics, tmp_path):
    log = tmp_path / "processor.log"
    proc = _processor(kafka_settings, topics, tmp_path, "--dataset-wait", "1", "--log-level", "WARNING",
                      log=log)
    assert proc.wait(timeout=60) == 2
    expected = (f"error: the log declares no data set yet ({topics.datasets} is empty): "
                "start the ingest first, or name one with --dataset")
    assert log.read_text().strip().splitlines() == [expected]
