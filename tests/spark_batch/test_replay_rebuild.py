"""The per-key function Spark runs, checked without Spark against the sequential reference."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
from replay_support import fake_messages, fleet_rows, record_message, sequential_replay, stream_rebuild

from kappaml.dataset import Dataset
from kappaml.fingerprint import fingerprint
from kappaml.lineup import Lineup
from kappaml.models import DEFAULT_SPEC
from kappaml.snapshot import Snapshot
from spark_batch.rebuild import rebuild_key


def _lineup(fleet: Dataset, *challengers: str, **kwargs) -> Lineup:
    return Lineup(fleet, DEFAULT_SPEC, challengers, version="v1", **kwargs)


def _one_key_messages(fleet: Dataset) -> list[tuple[bytes | None, bytes | None]]:
    rows = [r for r in fleet_rows(400, 3) if r["vehicle"] == "veh-001"]
    messages = [record_message(fleet, i + 1, r) for i, r in enumerate(rows)]
    bad_target = json.loads(messages[5][1])
    bad_target["row"]["fuel"] = "lots"
    other_key = json.loads(messages[6][1])
    other_key["key"] = other_key["row"]["vehicle"] = "veh-002"
    return [
        *messages[:20],
        messages[3], messages[4],  # duplicates: same row ids again
        (b"veh-001", b"not json"),
        (b"veh-001", json.dumps(bad_target).encode()),
        (b"veh-001", json.dumps(other_key).encode()),  # record's key is not the message key
        (b"veh-001", None),  # tombstone
        *messages[20:],
    ]


def _frame(messages, partition=1, start=100):
    return pd.DataFrame({
        "key": [k for k, _ in messages],
        "partition": [partition] * len(messages),
        "offset": list(range(start, start + len(messages))),
        "value": [v for _, v in messages],
    })


def test_rebuild_equals_sequential_learn_step_in_any_input_order(fleet):
    messages = _one_key_messages(fleet)
    frame = _frame(messages)
    ref = sequential_replay(
        fake_messages(messages, 1, 100), fleet, DEFAULT_SPEC, "v1"
    )
    (state,) = ref.states.values()

    shuffled = frame.sample(frac=1.0, random_state=random.Random(3).randrange(1000))
    out = rebuild_key(shuffled, _lineup(fleet))
    rows, model = out[out.kind == "row"], out[out.kind == "model"].iloc[0]
    assert list(rows.offset) == sorted(frame.offset)  # replayed in offset order
    for r in rows.itertuples():
        expected = ref.outcomes[(1, r.offset)]
        assert r.status == expected.status, r
        if expected.status == "learned":
            assert r.y_pred == expected.y_pred  # bit-identical predictions
        else:
            assert pd.isna(r.y_pred)
    invalid = rows[rows.status == "invalid"]
    assert len(invalid) == 4 and invalid.reason.notna().all()
    assert "does not match the message key" in " ".join(invalid.reason)
    assert (rows.status == "duplicate").sum() == 2

    summary = json.loads(model.summary)
    snap = Snapshot.decode(model.snapshot)
    assert summary["fingerprint"] == snap.fingerprint == fingerprint(state.model)
    assert (summary["key"], summary["partition"], summary["offset"]) == ("veh-001", 1, state.last_offset)
    assert (summary["learned"], summary["duplicates"], summary["invalid"]) == (state.learned, 2, 4)
    assert (snap.origin, snap.version, snap.spec, snap.partition, snap.offset, snap.learned) == (
        "replay", "v1", DEFAULT_SPEC, 1, state.last_offset, state.learned)
    assert summary["metrics"]["n"] == state.metrics.get()["n"] == state.learned


def test_a_key_without_valid_records_has_no_model(fleet):
    for key, reason in ((b"\xff\xfe", "key is not UTF-8"), (None, "does not match the message key None")):
        out = rebuild_key(_frame([(key, _one_key_messages(fleet)[0][1])]), _lineup(fleet))
        rows, model = out[out.kind == "row"], out[out.kind == "model"].iloc[0]
        assert list(rows.status) == ["invalid"] and reason in rows.reason.iloc[0]
        assert model.snapshot is None and json.loads(model.summary)["learned"] == 0


def _stream(fleet, frame, batch, clustered=True):
    return stream_rebuild(_lineup(fleet), frame, batch, clustered)


def test_streaming_keys_through_batches_equals_one_group_at_a_time(fleet):
    rows = fleet_rows(300, 3)
    messages = [record_message(fleet, i + 1, r) for i, r in enumerate(rows)]
    frame = _frame(messages, partition=0, start=0)
    # What the job feeds the workers: clustered by (partition, key), offsets ascending.
    frame = frame.sort_values(["partition", "key", "offset"], kind="stable", ignore_index=True)
    streamed = _stream(fleet, frame, batch=37)  # batch edges fall inside keys
    per_group = pd.concat([rebuild_key(g, _lineup(fleet)) for _, g in frame.groupby("key")],
                          ignore_index=True)
    assert len(streamed) == len(frame) + 3
    for kind in ("row", "model"):
        mine, theirs = (df[df.kind == kind].dropna(axis="columns", how="all").reset_index(drop=True)
                        for df in (streamed, per_group))
        if kind == "model":
            # Snapshots differ in their creation time only: compare what they hold.
            assert [Snapshot.decode(b).fingerprint for b in mine.snapshot] == [
                Snapshot.decode(b).fingerprint for b in theirs.snapshot]
            mine, theirs = mine.drop(columns="snapshot"), theirs.drop(columns="snapshot")
        pd.testing.assert_frame_equal(mine, theirs)


def test_streaming_interleaved_keys_as_kafka_delivers_them(fleet):
    messages = [record_message(fleet, i + 1, r) for i, r in enumerate(fleet_rows(300, 3))]
    frame = _frame(messages, partition=1, start=0)  # one Kafka partition, keys interleaved
    streamed = _stream(fleet, frame, batch=41, clustered=False)
    rows = streamed[streamed.kind == "row"]
    assert list(rows.offset) == list(frame.offset)  # in the order they came
    per_group = pd.concat([rebuild_key(g, _lineup(fleet)) for _, g in frame.groupby("key")])
    by_slot = lambda df: df.drop(columns=["snapshot", "summary"]).sort_values(  # noqa: E731
        ["kind", "key", "offset"], ignore_index=True)[list(per_group.columns.drop(["snapshot", "summary"]))]
    pd.testing.assert_frame_equal(by_slot(streamed), by_slot(per_group))
    def fingerprints(df):
        return {r.key: json.loads(r.summary)["fingerprint"] for r in df[df.kind == "model"].itertuples()}

    assert fingerprints(streamed) == fingerprints(per_group)


def test_streaming_refuses_unclustered_or_unordered_input(fleet):
    messages = [record_message(fleet, i + 1, r) for i, r in enumerate(fleet_rows(60, 2))]
    frame = _frame(messages, partition=0, start=0)  # keys interleaved, as on the topic
    with pytest.raises(RuntimeError, match="not clustered by key"):
        _stream(fleet, frame, batch=10)
    one_key = frame[frame.key == frame.key.iloc[0]].iloc[::-1]
    with pytest.raises(RuntimeError, match="offset order"):
        _stream(fleet, one_key, batch=10)


def test_rows_of_two_partitions_are_refused(fleet):
    frame = pd.concat([_frame([(b"a", b"x")], partition=0), _frame([(b"a", b"x")], partition=1)])
    with pytest.raises(ValueError, match="one partition"):
        rebuild_key(frame, _lineup(fleet))


class _FragileModel:
    """A model that fails on one target value, as a model bug would on some example."""

    def __init__(self, inner):
        self.inner = inner

    def predict_one(self, x):
        return self.inner.predict_one(x)

    def learn_one(self, x, y):
        if 5.0 < y < 5.5:
            raise ZeroDivisionError("boom")
        self.inner.learn_one(x, y)


def test_model_failures_are_invalid_records_as_in_the_processor(fleet, monkeypatch):
    import kappaml.learner

    real = kappaml.learner.build_model
    monkeypatch.setattr(kappaml.learner, "build_model", lambda spec, ds: _FragileModel(real(spec, ds)))
    messages = _one_key_messages(fleet)
    out = rebuild_key(_frame(messages), _lineup(fleet))
    rows = out[out.kind == "row"]
    failed = rows[rows.reason.fillna("").str.contains("ZeroDivisionError")]
    assert len(failed) > 0 and (failed.status == "invalid").all()
    ref = sequential_replay(
        fake_messages(messages, 1, 100), fleet, DEFAULT_SPEC, "v1"
    )
    assert [ref.outcomes[(1, o)].status for o in rows.offset] == list(rows.status)
    assert json.loads(out[out.kind == "model"].iloc[0].summary)["invalid"] == 4 + len(failed)
