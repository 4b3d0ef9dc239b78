"""Champion, challengers, promotions and drift in the per-key replay, checked without Spark."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from replay_support import fake_messages, fleet_rows, record_message, sequential_replay, stream_rebuild

from kappaml.dataset import Dataset
from kappaml.drift import DriftConfig
from kappaml.gate import GateConfig
from kappaml.lineup import CONTROL_KEY_BYTES, Lineup, Promotion, PromotionLog
from kappaml.models import DEFAULT_SPEC
from kappaml.snapshot import Snapshot
from spark_batch.rebuild import rebuild_key
from spark_batch.serving import END, relabel_predictions, role_at

CHALLENGERS = ("rls_additive", "linear")




def _frame(messages, partition=0, start=0) -> pd.DataFrame:
    return pd.DataFrame({"key": [k for k, _ in messages], "partition": [partition] * len(messages),
                         "offset": list(range(start, start + len(messages))),
                         "value": [v for _, v in messages]})


def _one_key(fleet: Dataset, n: int = 200) -> list[tuple[bytes | None, bytes | None]]:
    rows = [r for r in fleet_rows(n * 3, 3) if r["vehicle"] == "veh-001"]
    messages = [record_message(fleet, i + 1, r) for i, r in enumerate(rows)]
    return [*messages[:30], messages[4], (b"veh-001", b"not json"), *messages[30:]]


def _by_spec(out: pd.DataFrame, spec: str) -> pd.DataFrame:
    rows = out[(out.kind == "row") & (out.spec == spec)]
    return rows[["offset", "status", "reason", "y_pred", "generation"]].reset_index(drop=True)


def _summaries(out: pd.DataFrame) -> dict[str, dict]:
    return {r.spec: json.loads(r.summary) for r in out[out.kind == "model"].itertuples()}


def test_each_spec_learns_every_record_as_a_run_of_its_own(fleet):
    frame = _frame(_one_key(fleet))
    out = rebuild_key(frame, Lineup(fleet, DEFAULT_SPEC, CHALLENGERS, version="v1"))
    assert (out.kind == "row").sum() == len(frame) * 3  # one row per (record, spec)
    summaries = _summaries(out)
    for spec in (DEFAULT_SPEC, *CHALLENGERS):
        alone = rebuild_key(frame, Lineup(fleet, spec, version="v1"))
        pd.testing.assert_frame_equal(_by_spec(out, spec), _by_spec(alone, spec))
        (single,) = _summaries(alone).values()
        assert summaries[spec]["fingerprint"] == single["fingerprint"]
        assert (summaries[spec]["learned"], summaries[spec]["duplicates"], summaries[spec]["invalid"]) == (
            single["learned"], 1, 1)
    roles = out[out.kind == "row"].groupby("spec").role.unique()
    assert roles.to_dict() == {DEFAULT_SPEC: ["champion"], "rls_additive": ["challenger"],
                               "linear": ["challenger"]}


class _FragileModel:
    def __init__(self, inner):
        self.inner = inner

    def predict_one(self, x):
        return self.inner.predict_one(x)

    def learn_one(self, x, y):
        if 5.0 < y < 5.5:
            raise ZeroDivisionError("boom")
        self.inner.learn_one(x, y)


def test_a_model_error_of_one_spec_spares_the_others(fleet, monkeypatch):
    import kappaml.learner

    real = kappaml.learner.build_model
    def build(spec, ds):
        return _FragileModel(real(spec, ds)) if spec == "linear" else real(spec, ds)

    monkeypatch.setattr(kappaml.learner, "build_model", build)
    frame = _frame(_one_key(fleet))
    out = rebuild_key(frame, Lineup(fleet, DEFAULT_SPEC, CHALLENGERS, version="v1"))
    failed = _by_spec(out, "linear")
    failed = failed[failed.reason.fillna("").str.contains("ZeroDivisionError")]
    assert len(failed) > 0 and (failed.status == "invalid").all()
    for spec in (DEFAULT_SPEC, "rls_additive"):
        rows = _by_spec(out, spec)
        assert (rows[rows.offset.isin(failed.offset)].status == "learned").all()
    summaries = _summaries(out)
    assert summaries["linear"]["invalid"] == 1 + len(failed)
    assert summaries["linear"]["learned"] == summaries[DEFAULT_SPEC]["learned"] - len(failed)


def _control(promotion: Promotion | bytes) -> tuple[bytes, bytes]:
    return CONTROL_KEY_BYTES, promotion if isinstance(promotion, bytes) else promotion.encode()


@pytest.mark.parametrize("clustered", [False, True])
def test_promotions_decide_who_serves_and_control_records_are_no_data(fleet, clustered, tmp_path):
    lineup = Lineup(fleet, DEFAULT_SPEC, CHALLENGERS, version="v1")
    data = [record_message(fleet, i + 1, r) for i, r in enumerate(fleet_rows(300, 3))]
    controls = {
        60: _control(Promotion("v1", "linear")),
        61: _control(b"{broken"),  # dead-lettered by the processor: counted, not applied
        150: _control(Promotion("v1", "hoeffding")),  # a spec this lineup does not run
        151: _control(Promotion("v2", DEFAULT_SPEC)),  # another version's: ignored
        200: _control(Promotion("v1", "rls_additive")),
    }
    messages, it = [], iter(data)
    for offset in range(len(data) + len(controls)):
        messages.append(controls.get(offset) or next(it))
    frame = _frame(messages, partition=1)
    if clustered:
        frame = frame.sort_values(["partition", "key", "offset"], kind="stable", ignore_index=True)
    out = stream_rebuild(lineup, frame, batch=70, clustered=clustered)
    rows = out[out.kind == "row"]
    assert set(rows.offset).isdisjoint(controls) and len(rows) == len(data) * 3
    assert (rows.status == "learned").all()  # control records are not invalid data
    # The workers pass the control records on; the driver reads them as the processor does.
    passed = out[out.kind == "control"]
    assert sorted(zip(passed.offset, passed.snapshot, strict=True)) == [(o, v) for o, (_k, v) in
                                                                         sorted(controls.items())]
    promotions = PromotionLog(lineup, zip(passed.partition, passed.offset, passed.snapshot, strict=True))
    assert [(o, reason.split(":")[0]) for _p, o, reason in promotions.problems] == [
        (61, "control record is not JSON"), (150, "cannot promote 'hoeffding'")]

    # Written as Spark writes them (several files), then relabelled by the driver.
    folder = tmp_path / "predictions.parquet"
    folder.mkdir()
    for i, part in enumerate((rows.iloc[: len(rows) // 2], rows.iloc[len(rows) // 2:])):
        part.to_parquet(folder / f"part-{i}.parquet", index=False)
    assert relabel_predictions(folder, promotions) == 2
    rows = pd.read_parquet(folder)
    serving = rows[rows.role == "champion"].set_index("offset").spec.sort_index()
    assert serving.index.tolist() == sorted(set(rows.offset))  # exactly one champion per record
    expected = ["rls" if o < 60 else "linear" if o < 200 else "rls_additive" for o in serving.index]
    assert serving.tolist() == expected
    # Who serves changes nothing in what each spec learns: the same predictions, row by row,
    # as a run of that spec alone over the data records.
    for spec in lineup.specs:
        alone = stream_rebuild(Lineup(fleet, spec, version="v1"), _frame(data, partition=1), 1000, False)
        alone = alone[alone.kind == "row"]
        mine = rows[rows.spec == spec]
        assert dict(zip(mine.row_id, mine.y_pred, strict=True)) == dict(
            zip(alone.row_id, alone.y_pred, strict=True))
    final = {spec: role_at(promotions, 1, END, spec) for spec in lineup.specs}
    assert final == {DEFAULT_SPEC: "challenger", "linear": "challenger", "rls_additive": "champion"}
    assert relabel_predictions(folder, PromotionLog(lineup, [])) == 0  # nothing to do without promotions


def test_drift_detections_and_reset_generations_match_the_sequential_rules(fleet):
    rows = [r for r in fleet_rows(1500, 3) if r["vehicle"] == "veh-002"]
    cut = len(rows) // 2
    for r in rows[cut:]:
        r["fuel"] *= 1.5  # the world changes half-way
    messages = [record_message(fleet, i + 1, r) for i, r in enumerate(rows)]
    drift = DriftConfig(policy="reset")
    lineup = Lineup(fleet, DEFAULT_SPEC, ("rls_additive",), version="v1", drift=drift)
    out = rebuild_key(_frame(messages), lineup)
    summaries = _summaries(out)
    for spec in (DEFAULT_SPEC, "rls_additive"):
        ref = sequential_replay(fake_messages(messages, 0), fleet, spec,
                                "v1", drift=drift)
        assert ref.drifts and all(offset >= cut for _p, offset, *_ in ref.drifts)  # none before the change
        detections = summaries[spec]["detections"]
        assert [(d["offset"], d["generation"], d["action"]) for d in detections] == [
            (offset, generation, "reset") for _p, offset, _k, generation, _reset in ref.drifts]
        assert all(d["error_after"] > d["error_before"] and d["spec"] == spec for d in detections)
        spec_rows = _by_spec(out, spec)
        assert spec_rows.generation.tolist() == [ref.outcomes[(0, o)].generation for o in spec_rows.offset]
        assert spec_rows.y_pred.tolist() == [ref.outcomes[(0, o)].y_pred for o in spec_rows.offset]
        (state,) = ref.states.values()
        snap = Snapshot.decode(out[(out.kind == "model") & (out.spec == spec)].snapshot.iloc[0])
        assert snap.extra["generation"] == state.generation == len(ref.drifts)
        assert summaries[spec]["drifts"] == len(ref.drifts)


def test_with_background_models_the_replay_switches_where_the_gate_decided(fleet):
    # One key's world changes at row 400. The gate's promotion of linear was decided at offset
    # 200 and its record lands at 700: from 201 on linear serves, so linear's detection of the
    # change starts the background model. Without the control records read first, rls's would.
    rows = [r for r in fleet_rows(2400, 3) if r["vehicle"] == "veh-002"][:800]
    for r in rows[400:]:
        r["fuel"] = r["fuel"] * 1.5 + 20
    data = [record_message(fleet, i + 1, r) for i, r in enumerate(rows)]
    gate = Promotion("v1", "linear", reason="gate", after=200)
    messages = [*data[:700], _control(gate), *data[700:]]
    drift = DriftConfig(policy="background", gate=GateConfig(window=100, min_pairs=50, every=20))
    lineup = Lineup(fleet, DEFAULT_SPEC, ("linear",), version="v1", drift=drift)

    def background_specs(**options: object) -> set[str]:
        out = stream_rebuild(lineup, _frame(messages), batch=100, clustered=False, **options)
        return set(out[(out.kind == "row") & (out.role == "background")].spec)

    assert background_specs(controls=((0, 700, gate.encode()),)) == {"linear"}
    assert background_specs() == {DEFAULT_SPEC}
