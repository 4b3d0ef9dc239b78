"""Drift policy background in the replay's worker code, without Spark (the short version of
tests/processor/test_background_takeover.py::test_the_replay_takes_over_at_the_same_offsets).

The processor runs over a stream where one key changes, takes a key's model over through the
log and is rolled back to generation 0; the replay's per-partition function
(:class:`spark_batch.stream.StreamRebuild`, what each Spark task runs) then reads the same log
in offset order and must serve the same predictions, with the same generations, and end with
the same models as the processor's latest snapshots.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from infra.testing import json_values, read_all
from kappaml.drift import DriftConfig
from kappaml.lineup import CONTROL_KEY_BYTES, Lineup
from spark_batch.stream import StreamRebuild
from tests.processor.test_background_takeover import (
    EXTRA,
    GATE,
    KEY,
    SPEC,
    N,
    run_with_rollback_to_generation_0,
)
from tests.processor.test_processor import latest_snapshots

pytestmark = pytest.mark.kafka


def _replay(raw: list, lineup: Lineup, folder: Path) -> tuple[pd.DataFrame, dict[str, dict]]:
    """StreamRebuild over each partition's records, in offset order, as a Spark task gets them."""
    folder.mkdir()
    summaries = {}
    for partition in sorted({p for _k, _v, p, _o in raw}):
        mine = sorted((m for m in raw if m[2] == partition), key=lambda m: m[3])
        batch = pa.RecordBatch.from_pydict({"key": [m[0] for m in mine], "partition": [partition] * len(mine),
                                            "offset": [m[3] for m in mine], "value": [m[1] for m in mine]})
        task = StreamRebuild(lineup=lineup, predictions_dir=str(folder), clustered=False)
        for out in task(iter([batch])):
            table = out.to_pydict()
            for kind, summary in zip(table["kind"], table["summary"], strict=True):
                if kind == "model":
                    doc = json.loads(summary)
                    summaries[doc["key"]] = doc
    return pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))]), summaries


def test_the_replay_worker_takes_over_and_rolls_back_as_the_processor(kafka_settings, topics, tmp_path):
    extra = EXTRA
    dataset = run_with_rollback_to_generation_0(kafka_settings, topics, tmp_path)

    raw = read_all(kafka_settings, topics.raw)
    reasons = sorted(json.loads(v)["reason"] for k, v, _p, _o in raw if k == CONTROL_KEY_BYTES)
    assert reasons == ["rollback", "rollback", "takeover"]
    lineup = Lineup(dataset, SPEC, drift=DriftConfig(policy="background", gate=GATE))
    replayed, summaries = _replay(raw, lineup, tmp_path / "predictions")

    served = replayed[(replayed.role == "champion") & (replayed.status == "learned")]
    live = {(p["partition"], p["offset"]): (p["y_pred"], p["generation"])
            for p in json_values(read_all(kafka_settings, topics.predictions, expect=N + extra))}
    assert {(r.partition, r.offset): (r.y_pred, r.generation) for r in served.itertuples()} == live
    assert set(served[served.key == KEY].generation) == {0, 1}  # taken over, then rolled back
    shadow = replayed[replayed.role == "background"]
    live_shadow = [p for p in json_values(read_all(kafka_settings, topics.challengers))
                   if p["role"] == "background"]
    assert len(shadow) == len(live_shadow) > 0
    assert sorted(zip(shadow.offset, shadow.y_pred, shadow.generation, strict=True)) == sorted(
        (p["offset"], p["y_pred"], p["generation"]) for p in live_shadow)
    snaps = latest_snapshots(kafka_settings, topics)
    assert {k: s["fingerprint"] for k, s in summaries.items()} == {k: s.fingerprint for k, s in snaps.items()}
    assert summaries[KEY]["generation"] == 0 and summaries[KEY]["takeovers"][0]["generation"] == 1
