"""--drift-policy background with delayed labels, against the real broker (and the replay's worker).

Every row is a ``features`` record now and its ``label`` record ``DELAY`` rows later. A
background model is started at the label record whose learning made the serving model's
drift monitor fire; it learns only the rows whose features it saw (kappaml/background.py
``_start``: its pending set starts empty), so the rows of the key that were waiting for their
label at its start are never its. This checks that from the log alone (which features and
labels came after the start), against the background model's own predictions in the
challengers topic; that every row is served and scored once in the predictions topic; that
the takeover is decided after the change; and that the replay's worker
(:class:`spark_batch.stream.StreamRebuild`, what each Spark task runs) serves the same.
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from infra.testing import json_values, produce_records, read_all
from kappaml.background import background_step, take_over
from kappaml.dataset import Dataset
from kappaml.drift import DriftConfig
from kappaml.example import FeaturesRecord, LabelRecord
from kappaml.fingerprint import fingerprint
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, apply_record
from kappaml.lineup import CONTROL_KEY_BYTES, Lineup, Promotion
from kappaml.records import SERVED, decode
from kappaml.topics import Topics
from tests.delayed_reference import split_rows
from tests.processor.test_background_takeover import FLAGS, GATE, KEY, SPEC, changed, check_background_looks
from tests.processor.test_processor import _start, fleet, latest_snapshots
from tests.spark_batch.test_replay_background import _replay

pytestmark = pytest.mark.kafka

N, CHANGE = 2400, 1200
DELAY = 30  # rows of the whole stream (6 keys): about 5 of the key's own records


def _count(kafka: KafkaSettings, topic: str) -> int:
    return len(read_all(kafka, topic, timeout=20))


def _feed(kafka: KafkaSettings, topics: Topics, records: list[dict], start: int, stop: int,
          step: int) -> None:
    """Records [start, stop) in chunks, each once the processor has handled the previous ones (one
    main-topic prediction per record: served for features, scored for a label), so a takeover
    record the processor writes lands among the records still to come."""
    for lo in range(start, stop, step):
        hi = min(lo + step, stop)
        produce_records(kafka, topics.raw, records[lo:hi])
        deadline = time.monotonic() + 120
        while _count(kafka, topics.predictions) < hi:
            assert time.monotonic() < deadline, f"records up to {hi} not handled within 120 s"
            time.sleep(0.3)


def _reference(raw: list, dataset: Dataset) -> dict:
    """Uninterrupted, in-process over the raw log with the core functions: what the processor must
    have served, the takeovers it must have decided, and the background model's learned count at
    its takeover."""
    states: dict[str, KeyState] = {}
    drift = DriftConfig(policy="background", gate=GATE)
    served: dict[tuple[int, int], tuple[float, int]] = {}
    decisions, learned_at_takeover = [], {}
    for key, value, partition, offset in sorted(raw, key=lambda m: (m[2], m[3])):
        if key == CONTROL_KEY_BYTES:  # a takeover, read back: it happened where it was decided
            promotion = Promotion.decode(value)
            assert not take_over(states[promotion.key], promotion.generation)
            continue
        record = decode(dataset, value)
        ks = states.setdefault(record.key, KeyState.new(record.key, dataset, SPEC, "v1", drift=drift))
        main = apply_record(ks, record, offset)
        if main.served is not None:
            served[(partition, offset)] = (main.served.y_pred, main.served.generation)
        running = ks.background
        step = background_step(ks, record, offset, main, serving=True, gate=GATE)
        if step.takeover is not None:
            decisions.append((partition, offset, record.key, step.generation))
            learned_at_takeover[record.key] = running.state.learned
    return {"served": served, "decisions": decisions, "learned": learned_at_takeover, "states": states}


def test_a_background_model_learns_only_the_rows_whose_features_it_saw(kafka_settings, topics,
                                                                       tmp_path: Path):
    dataset, rows, toml = fleet(tmp_path, N, seed=11)
    records, dropped = split_rows(dataset, changed(rows, dataset, CHANGE), delay=DELAY)
    assert not dropped and len(records) == 2 * N
    # The first label of a changed row of KEY: no detection can be caused before it.
    first_changed_label = next(i for i, r in enumerate(records)
                               if r["kind"] == "label" and r["key"] == KEY and r["id"] > CHANGE)
    proc = _start(topics, kafka_settings, tmp_path / "state", "--dataset", str(toml), *FLAGS)
    try:
        _feed(kafka_settings, topics, records, 0, first_changed_label, first_changed_label)
        _feed(kafka_settings, topics, records, first_changed_label, len(records), 100)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err[-3000:]

    raw = read_all(kafka_settings, topics.raw)
    controls = [(p, o, Promotion.decode(v)) for k, v, p, o in raw if k == CONTROL_KEY_BYTES]
    assert len(controls) == 1, controls
    (at_p, at_o, takeover), = controls
    assert (takeover.reason, takeover.key, takeover.spec, takeover.generation) == ("takeover", KEY, SPEC, 1)
    taken = takeover.after  # it took over at the record that decided it
    assert taken == takeover.evidence.offset < at_o
    # KEY's records in its partition, by offset: which kind, which row.
    mine = {o: decode(dataset, v) for k, v, p, o in raw if k == KEY.encode() and p == at_p}
    features_at = {r.id: o for o, r in mine.items() if isinstance(r, FeaturesRecord)}
    label_at = {r.id: o for o, r in mine.items() if isinstance(r, LabelRecord)}
    change_at = min(o for o, r in mine.items() if isinstance(r, LabelRecord) and r.id > CHANGE)

    # The serving model's detection that started the background model: after the change.
    drifts = [d for d in json_values(read_all(kafka_settings, topics.drift)) if d["key"] == KEY]
    assert drifts and all(d["role"] == "champion" for d in drifts)
    started = drifts[0]["offset"]
    assert change_at <= started < takeover.evidence.offset < at_o
    assert all(d["key"] == KEY for d in json_values(read_all(kafka_settings, topics.drift)))

    # The background model's own predictions: served for the features after its start, scored for
    # the rows whose features AND label came after it (until the takeover); the rows
    # pending at its start are not its own, though their labels came while it ran.
    challengers = json_values(read_all(kafka_settings, topics.challengers))
    shadow = [p for p in challengers if p["role"] == "background"]
    assert {(p["key"], p["spec"], p["generation"], p["partition"]) for p in shadow} == {(KEY, SPEC, 1, at_p)}
    bg_served = sorted(p["id"] for p in shadow if p.get("kind") == SERVED)
    bg_scored = sorted(p["id"] for p in shadow if p.get("kind") != SERVED)
    assert bg_served == sorted(i for i, o in features_at.items() if started < o <= taken)
    expected = sorted(i for i, o in features_at.items() if started < o and label_at[i] <= taken)
    assert bg_scored == expected
    waiting = [i for i, o in features_at.items() if o < started < label_at[i] <= taken]
    assert waiting and not set(waiting) & set(bg_scored), "rows pending at the start are not learned"
    ref = _reference(raw, dataset)
    ev = takeover.evidence
    check_background_looks(kafka_settings, topics, at_p, started, ev)
    assert ref["decisions"] == [(at_p, takeover.evidence.offset, KEY, 1)]
    assert ref["learned"] == {KEY: len(expected)}
    # Every row it learned was paired but the cold ones: served before its first label came, they
    # were predicted by a model that knew nothing (kappaml/background.py).
    warm_from = min(label_at[i] for i in expected)
    cold = [i for i in expected if features_at[i] <= warm_from]
    assert cold and ev.scored == sum(label_at[i] <= ev.offset for i in expected if i not in cold)

    # The main topic: every row served once and scored once; served as the reference serves, by
    # generation 1 in KEY after the takeover, generation 0 everywhere else.
    main = json_values(read_all(kafka_settings, topics.predictions, expect=2 * N))
    served = [p for p in main if p.get("kind") == SERVED]
    scored = [p for p in main if p.get("kind") != SERVED]
    assert sorted(p["id"] for p in served) == sorted(p["id"] for p in scored) == list(range(1, N + 1))
    for p in served:
        later = p["key"] == KEY and p["offset"] > taken
        assert (p["y_pred"], p["generation"]) == ref["served"][(p["partition"], p["offset"])]
        assert p["generation"] == (1 if later else 0) and p["role"] == "champion"
    assert any(p["key"] == KEY and p["offset"] > taken for p in served), "no row after the takeover"
    snaps = latest_snapshots(kafka_settings, topics)
    assert {k: s.fingerprint for k, s in snaps.items()} == {
        k: fingerprint(ks.model) for k, ks in ref["states"].items()}

    # The replay's worker over the same log: the same served, scored and background predictions.
    lineup = Lineup(dataset, SPEC, drift=DriftConfig(policy="background", gate=GATE))
    replayed, summaries = _replay(raw, lineup, tmp_path / "predictions")
    champion = replayed[replayed.role == "champion"]
    live_rows = defaultdict(set)
    for p in main:
        kind = "served" if p.get("kind") == SERVED else "learned"
        live_rows[kind].add((p["partition"], p["offset"], str(p["id"]), p["y_pred"], p["generation"]))
    for kind in ("served", "learned"):
        rows_ = champion[champion.status == kind]
        assert set(zip(rows_.partition, rows_.offset, rows_.row_id, rows_.y_pred, rows_.generation,
                       strict=True)) == live_rows[kind]
        assert len(rows_) == N
    background = replayed[replayed.role == "background"]
    assert sorted(zip(background.status, background.offset, background.y_pred, strict=True)) == sorted(
        ("served" if p.get("kind") == SERVED else "learned", p["offset"], p["y_pred"]) for p in shadow)
    assert {k: s["fingerprint"] for k, s in summaries.items()} == {k: s.fingerprint for k, s in snaps.items()}
    assert summaries[KEY]["takeovers"] == [{"spec": SPEC, "generation": 1,
                                            "after": summaries[KEY]["takeovers"][0]["after"]}]
