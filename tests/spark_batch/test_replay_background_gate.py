"""Drift policy background with --promotion auto: the gate's promotion serves from the row it was
decided at (``Promotion.after``), before its control record comes in the stream; the replay's
worker (:class:`spark_batch.stream.StreamRebuild`, given the range's control records first, as
spark_batch/replay.py does for this policy) must switch there too and serve what the processor
served."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from infra.testing import json_values, read_all
from kappaml.drift import DriftConfig
from kappaml.lineup import CONTROL_KEY_BYTES, Lineup, Promotion, PromotionLog
from spark_batch.stream import StreamRebuild
from tests.processor.test_background_takeover import GATE, GATE_FLAGS
from tests.processor.test_gatekeeper import _feed, shifted
from tests.processor.test_processor import _start, fleet

pytestmark = pytest.mark.kafka

SERVING, CHALLENGER = "rls", "linear"
N, CHANGE = 1200, 600


def _replay(raw: list, lineup: Lineup, folder: Path, controls: tuple) -> tuple[dict, list]:
    """The replay of the log, one worker task per partition: (partition, offset) -> (spec, y_pred)
    of the served rows (roles set by PromotionLog, as the driver does) and the background rows."""
    folder.mkdir()
    for partition in sorted({p for _k, _v, p, _o in raw}):
        mine = sorted((m for m in raw if m[2] == partition), key=lambda m: m[3])
        batch = pa.RecordBatch.from_pydict({"key": [m[0] for m in mine], "partition": [partition] * len(mine),
                                            "offset": [m[3] for m in mine], "value": [m[1] for m in mine]})
        task = StreamRebuild(lineup=lineup, predictions_dir=str(folder), clustered=False,
                             controls=controls)
        for _out in task(iter([batch])):
            pass
    rows = pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))])
    log = PromotionLog(lineup, [(p, o, v) for k, v, p, o in raw if k == CONTROL_KEY_BYTES])
    learned = rows[(rows.status == "learned") & (rows.role != "background")]
    served = {(r.partition, r.offset): (r.spec, r.y_pred) for r in learned.itertuples()
              if log.champion_at(r.partition, r.offset) == r.spec}
    shadow = rows[rows.role == "background"]
    return served, sorted(zip(shadow.offset, shadow.spec, shadow.y_pred, shadow.generation, strict=True))


def test_the_replay_switches_where_the_gate_decided_with_background_models(kafka_settings, topics, tmp_path):
    dataset, rows, toml = fleet(tmp_path, N, seed=11)
    rows = shifted(rows, dataset, CHANGE)
    proc = _start(topics, kafka_settings, tmp_path / "state", "--dataset", str(toml), "--drift-policy",
                  "background", "--promotion", "auto", "--challengers", CHALLENGER, *GATE_FLAGS)
    try:
        _feed(kafka_settings, topics, dataset, rows, 0, CHANGE, CHANGE)
        _feed(kafka_settings, topics, dataset, rows, CHANGE, N, 40)  # so records land among rows
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err[-3000:]

    raw = read_all(kafka_settings, topics.raw)
    controls = [(p, o, v) for k, v, p, o in raw if k == CONTROL_KEY_BYTES]
    gate = [(p, o, Promotion.decode(v)) for p, o, v in controls if json.loads(v).get("reason") == "gate"]
    assert gate, "the gate promoted nowhere: the test saw no switch"
    # The premise: rows came between a decision and its record, served by the promoted spec.
    between = [(p, o) for _k, _v, p, o in raw if any(gp == p and g.after < o < go for gp, go, g in gate)]
    assert between and all(g.spec == CHALLENGER and g.after is not None for _p, _o, g in gate)

    live = {(p["partition"], p["offset"]): (p["spec"], p["y_pred"])
            for p in json_values(read_all(kafka_settings, topics.predictions, expect=N))}
    assert {live[b][0] for b in between} == {CHALLENGER}
    live_shadow = sorted((p["offset"], p["spec"], p["y_pred"], p["generation"])
                         for p in json_values(read_all(kafka_settings, topics.challengers))
                         if p["role"] == "background")
    lineup = Lineup(dataset, SERVING, (CHALLENGER,), drift=DriftConfig(policy="background", gate=GATE))
    served, shadow = _replay(raw, lineup, tmp_path / "replayed", tuple(controls))
    assert served == live
    # The background models too: which spec serves decides whose detection starts one.
    assert shadow == live_shadow
