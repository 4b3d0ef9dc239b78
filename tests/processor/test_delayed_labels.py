"""Delayed labels through the real broker: features now, labels later, exactly once, also across SIGKILLs.

The raw topic gets ``features`` and ``label`` records written directly (``split_rows``); the
processor's outputs are compared with two sequential loops over the same log read back: the
core's ``apply_record`` (its state fingerprint covers the pending ids) and the independent
``tests.delayed_reference`` loop (model fingerprint, pending ids, counts).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from infra.testing import json_values, produce_bytes, produce_records, read_all, typed_rows
from kappaml.dataset import Dataset, builtin
from kappaml.fingerprint import fingerprint, state_fingerprint
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, apply_record
from kappaml.models import DEFAULT_SPEC
from kappaml.pending import LabelPolicy
from kappaml.records import SERVED, decode, encode_record, make_features, make_label
from kappaml.snapshot import Snapshot
from kappaml.topics import Topics
from processor import Processor
from tests.delayed_reference import Reference, reference_loop, split_rows
from tests.processor.test_processor import _progress, _start, latest_snapshots, make_settings, synthetic_rows

pytestmark = pytest.mark.kafka


def _log(kafka: KafkaSettings, topics: Topics) -> dict[str, list[tuple[int, dict]]]:
    """The raw topic read back: per key, (offset, record) in offset order."""
    per_key: dict[str, list[tuple[int, dict]]] = {}
    for key, value, _p, offset in sorted(read_all(kafka, topics.raw), key=lambda m: (m[2], m[3])):
        per_key.setdefault(key.decode(), []).append((offset, json.loads(value)))
    return per_key


def _references(kafka: KafkaSettings, topics: Topics, dataset: Dataset, policy: LabelPolicy
                ) -> dict[str, tuple[Reference, KeyState]]:
    out = {}
    for key, records in _log(kafka, topics).items():
        ks = KeyState.new(key, dataset, DEFAULT_SPEC, "v1")
        for offset, record in records:
            apply_record(ks, decode(dataset, json.dumps(record).encode()), offset, policy)
        ref = reference_loop(dataset, DEFAULT_SPEC, [r for _o, r in records], ttl_rows=policy.ttl_rows,
                             ttl_ms=policy.ttl_ms, learn_missing=policy.learn_missing)
        out[key] = (ref, ks)
    return out


def _check_outputs(kafka: KafkaSettings, topics: Topics, dataset: Dataset, policy: LabelPolicy, n: int,
                   dropped: set[int], delay_ms: int) -> None:
    ref, ks = _references(kafka, topics, dataset, policy)["__all__"]
    assert ref.served == n and ks.labels.served == n
    assert ref.fingerprint == fingerprint(ks.model), "the core and the plain loop agree"
    assert ref.paired == ks.labels.paired and len(ref.expired) == ks.labels.expired
    assert set(ref.pending) == set(ks.labels.pending)
    learned_ids = {rid for _s, rid in ref.learned}
    expired_ids = {rid for _s, rid in ref.expired}
    pending_ids = {rid for _s, rid in ref.pending}
    assert expired_ids and expired_ids <= dropped, "only dropped labels expire"
    assert dropped == expired_ids | (dropped & pending_ids), "every dropped label expired or still waits"
    assert learned_ids.isdisjoint(dropped)

    outputs = json_values(read_all(kafka, topics.predictions, expect=n + ref.paired))
    served = [p for p in outputs if p.get("kind") == SERVED]
    scored = [p for p in outputs if p.get("kind") != SERVED]
    assert sorted(p["id"] for p in served) == list(range(1, n + 1)), "one served prediction per features"
    assert sorted(p["id"] for p in scored) == sorted(learned_ids), "the labelled ones learned, once"
    assert all("y_true" not in p for p in served)
    assert {p["delay_ms"] for p in scored} == {delay_ms}
    by_offset = {p["offset"]: p for p in served}
    assert all(by_offset[p["served_offset"]]["y_pred"] == p["y_pred"] for p in scored), \
        "the scored prediction is the one served"
    expected = {(rid, y) for (_s, rid), y in ref.served_predictions.items()}
    assert {(p["id"], p["y_pred"]) for p in served} == expected, "served what the plain loop predicts"

    snap = latest_snapshots(kafka, topics)["__all__"]
    assert snap.learned == len(ref.learned) == ks.learned
    assert snap.fingerprint == ref.fingerprint, "the model equals the plain sequential loop's"
    assert snap.extra["state_fingerprint"] == state_fingerprint(ks), "pending set and expiries equal"
    assert snap.extra["pending"] == len(ref.pending)

    metrics = json_values(read_all(kafka, topics.metrics))
    keyed = [m for m in metrics if m["scope"] == "key" and "features_served" in m]
    assert keyed, "no key metrics with delayed-label figures"
    for m in keyed:  # at every checkpoint
        assert m["features_served"] == m["labels_learned"] + m["expired"] + m["pending"], m
    final = keyed[-1]
    assert (final["features_served"], final["labels_learned"], final["expired"], final["pending"]) == (
        n, ref.paired, len(ref.expired), len(ref.pending))
    assert final["delay_ms"]["p50"] == final["delay_ms"]["p99"] == delay_ms
    assert final["pending_bytes"] > 0
    overall = [m for m in metrics if m["scope"] == "overall" and "features_served" in m]
    assert overall and overall[-1]["features_served"] == n and overall[-1]["expired"] == len(ref.expired)
    assert all(m["features_served"] == m["labels_learned"] + m["expired"] + m["pending"] for m in overall)
    assert overall[-1]["label_ttl"] == policy.ttl_text


def test_co2_with_delayed_and_dropped_labels_equals_the_sequential_loop(kafka_settings, topics, tmp_path,
                                                                       co2_csv):
    dataset = builtin("co2")
    rows = typed_rows(dataset, co2_csv)
    records, dropped = split_rows(dataset, rows, delay=200, drop=0.05, seed=1)
    produce_records(kafka_settings, topics.raw, records)
    policy = LabelPolicy.parse("1000")
    Processor(make_settings(kafka_settings, topics, tmp_path, dataset, labels=policy)).run(idle_timeout=4)
    _check_outputs(kafka_settings, topics, dataset, policy, len(rows), dropped, 200_000)


def _wait_for_outputs(kafka: KafkaSettings, topics: Topics, n: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    got = 0
    while time.monotonic() < deadline:
        got = len(read_all(kafka, topics.predictions, timeout=30))
        if got >= n:
            return
        time.sleep(1)
    raise AssertionError(f"only {got} of {n} predictions after {timeout}s")


def test_sigkill_three_times_mid_stream_keeps_counts_and_fingerprint(kafka_settings, topics, tmp_path):
    dataset = builtin("co2")
    # 6,000 rows (~11,700 records): three kill rounds commit ~3,200 of them here, so each kill
    # still lands mid-stream (asserted below) and the restart has most of the log left to do.
    rows = synthetic_rows(tmp_path, 6_000, seed=3)
    records, dropped = split_rows(dataset, rows, delay=100, drop=0.05, seed=1)
    produce_records(kafka_settings, topics.raw, records)
    policy = LabelPolicy.parse("300")
    flags = ("--dataset", "co2", "--label-ttl", "300")
    state_dir = tmp_path / "state"
    group = f"{topics.prefix}-processor-v1"
    for _round in range(3):
        before = _progress(kafka_settings, group, topics.raw)
        proc = _start(topics, kafka_settings, state_dir, *flags)
        deadline = time.monotonic() + 120
        while _progress(kafka_settings, group, topics.raw) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    progressed = _progress(kafka_settings, group, topics.raw)
    assert 0 < progressed < len(records), "the kills must land mid-stream"
    ref, _ks = _references(kafka_settings, topics, dataset, policy)["__all__"]
    proc = _start(topics, kafka_settings, state_dir, *flags)
    try:
        _wait_for_outputs(kafka_settings, topics, len(rows) + ref.paired)
        _wait_for_snapshot_learned(kafka_settings, topics, len(ref.learned))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    _check_outputs(kafka_settings, topics, dataset, policy, len(rows), dropped, 100_000)


def _wait_for_snapshot_learned(kafka: KafkaSettings, topics: Topics, learned: int,
                               timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = latest_snapshots(kafka, topics).get("__all__")
        if snap is not None and snap.learned >= learned:
            return
        time.sleep(1)


def test_early_duplicate_unknown_foreign_and_non_finite_labels(kafka_settings, topics, tmp_path: Path):
    dataset = builtin("co2")
    rows = synthetic_rows(tmp_path, 3, seed=2)
    key = "__all__"

    def features(i: int) -> tuple[bytes, bytes]:
        return key.encode(), encode_record(make_features(dataset, i, rows[i - 1], 1000 * i, "s"))

    def label(i: int, y: float = 200.0, ts: int = 5000, message_key: str = key) -> tuple[bytes, bytes]:
        return message_key.encode(), encode_record(make_label(dataset, i, key, y, ts, "s"))

    messages = [
        label(1, 210.0, ts=500),  # before its features: waits
        features(1),  # pairs with it at once
        features(2),
        label(2, 220.0),  # learned
        label(2, 220.0),  # duplicate: ignored
        label(999),  # no such features (yet): waits as an early label
        (key.encode(), b'{"kind":"label","id":3,"key":"__all__","ts":1,"stream":"s","target":1e999}'),
        label(3, message_key="other"),  # a label for another key's model: not this message key's
        (key.encode(), b'{"kind":"label","key":"__all__","ts":1,"target":1.0}'),  # no id
        features(3),  # pending at the end
    ]
    produce_bytes(kafka_settings, topics.raw, messages)
    Processor(make_settings(kafka_settings, topics, tmp_path, dataset)).run(idle_timeout=4)

    outputs = json_values(read_all(kafka_settings, topics.predictions, expect=5))
    served = sorted(p["id"] for p in outputs if p.get("kind") == SERVED)
    scored = {p["id"]: p for p in outputs if p.get("kind") != SERVED}
    assert served == [1, 2, 3] and sorted(scored) == [1, 2]
    assert scored[1]["y_true"] == 210.0 and scored[1]["delay_ms"] == 500 - 1000
    assert scored[2]["y_true"] == 220.0 and scored[2]["delay_ms"] == 5000 - 2000
    dead = json_values(read_all(kafka_settings, topics.dlq, expect=3))
    reasons = sorted(d["reason"] for d in dead)
    assert len(reasons) == 3, reasons
    assert any("target is not finite" in r for r in reasons), reasons
    assert any("does not match the message key" in r for r in reasons), reasons
    assert any("lacks field(s) ['id']" in r for r in reasons), reasons
    metrics = [m for m in json_values(read_all(kafka_settings, topics.metrics))
               if m["scope"] == "key" and "features_served" in m]
    final = metrics[-1]
    assert (final["features_served"], final["labels_learned"], final["pending"], final["early_labels"],
            final["skipped"], final["learned"]) == (3, 2, 1, 1, 1, 2)


def test_challengers_keep_their_own_pending_sets_and_learn_the_missing_value(kafka_settings, topics,
                                                                            tmp_path):
    dataset = builtin("co2")
    rows = synthetic_rows(tmp_path, 800, seed=4)
    records, _dropped = split_rows(dataset, rows, delay=50, drop=0.1, seed=2)
    produce_records(kafka_settings, topics.raw, records)
    policy = LabelPolicy.parse("150", "learn=200")
    settings = make_settings(kafka_settings, topics, tmp_path, dataset, labels=policy,
                             challengers=("linear",))
    Processor(settings).run(idle_timeout=4)

    log = _log(kafka_settings, topics)["__all__"]
    snaps: dict[str, Snapshot] = {}
    for _k, value, _p, _o in read_all(kafka_settings, topics.models):
        snap = Snapshot.decode(value)
        if snap.spec not in snaps or snap.learned >= snaps[snap.spec].learned:
            snaps[snap.spec] = snap
    for spec, topic in ((DEFAULT_SPEC, topics.predictions), ("linear", topics.challengers)):
        ks = KeyState.new("__all__", dataset, spec, "v1")
        for offset, record in log:
            apply_record(ks, decode(dataset, json.dumps(record).encode()), offset, policy)
        ref = reference_loop(dataset, spec, [r for _o, r in log], ttl_rows=150, learn_missing=200.0)
        assert ref.expired and ks.labels.expired == len(ref.expired)
        outputs = json_values(read_all(kafka_settings, topic, expect=len(rows) + len(ref.learned)))
        served = sorted(p["id"] for p in outputs if p.get("kind") == SERVED)
        scored = [p for p in outputs if p.get("kind") != SERVED]
        assert served == list(range(1, len(rows) + 1)) and {p["spec"] for p in outputs} == {spec}
        expired = [p for p in scored if p.get("expired")]
        assert sorted(p["id"] for p in expired) == sorted(rid for _s, rid in ref.expired)
        assert all(p["y_true"] == 200.0 for p in expired)
        assert snaps[spec].fingerprint == ref.fingerprint == fingerprint(ks.model), spec
        assert snaps[spec].extra["state_fingerprint"] == state_fingerprint(ks), spec
