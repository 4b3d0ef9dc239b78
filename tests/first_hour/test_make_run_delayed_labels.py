"""``make run ARGS="--label-delay N ..."``: the README's delayed-labels example, as a real stack."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.broker import LocalBroker
from infra.testing import json_values, read_all
from kappaml import synthetic
from kappaml.kafka import KafkaSettings
from producer.labels import LabelSchedule
from tests.first_hour.test_make_run import RunningStack

pytestmark = pytest.mark.kafka


def test_make_run_with_delayed_labels(broker: LocalBroker, kafka_settings: KafkaSettings,
                                     tmp_path: Path) -> None:
    csv = synthetic.write_csv(tmp_path / "small.csv", n_rows=400, seed=3)
    stack = RunningStack(broker, tmp_path, "--csv", str(csv), "--rate", "0", "--label-delay", "50",
                         "--label-drop", "0.1", "--seed", "1", "--label-ttl", "150")
    dropped = {i for i in range(1, 401) if LabelSchedule(delay_rows=50, drop=0.1, seed=1).dropped(str(i))}
    try:
        stack.wait_for("kappaml is running", 120)
        stack.wait_for("ingest finished", 120)
        kinds = [r.get("kind") for r in json_values(read_all(kafka_settings, f"{stack.prefix}.raw"))]
        assert kinds.count("features") == 400 and kinds.count("label") == 400 - len(dropped)
        # The processor serves every row, learns every label sent, and the dropped ones expire.
        deadline, final = time.monotonic() + 120, None
        while time.monotonic() < deadline:
            metrics = [m for m in json_values(read_all(kafka_settings, f"{stack.prefix}.metrics"))
                       if m.get("scope") == "key" and "features_served" in m]
            final = metrics[-1] if metrics else None
            if final and final["labels_learned"] == 400 - len(dropped):
                break
            time.sleep(1)
        assert final is not None, stack.text()[-3000:]
        assert (final["features_served"], final["labels_learned"]) == (400, 400 - len(dropped))
        assert final["expired"] + final["pending"] == len(dropped) and final["expired"] > 0
    finally:
        code = stack.stop()
    assert code == 0, stack.text()[-3000:]
