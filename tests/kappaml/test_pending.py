"""Delayed labels in the core: decoding, LabelPolicy, apply_record against a plain sequential loop."""

from __future__ import annotations

import pickle
import random
import re

import pytest

from kappaml.dataset import GLOBAL_KEY, Dataset, Feature
from kappaml.drift import DriftConfig
from kappaml.fingerprint import fingerprint, state_fingerprint
from kappaml.learner import (
    DUPLICATE,
    EARLY,
    LATE,
    LEARNED,
    PENDING,
    KeyState,
    apply_record,
    learn_step,
)
from kappaml.pending import LabelPolicy, parse_on_missing, parse_ttl, quantiles
from kappaml.records import (
    Example,
    FeaturesRecord,
    InvalidRecord,
    LabelRecord,
    decode,
    encode_record,
    extract,
    make_features,
    make_label,
    make_record,
)
from tests.delayed_reference import reference_loop

DS = Dataset(name="toy", target="y",
             features=(Feature("a", "numeric"), Feature("b", "numeric"), Feature("c", "categorical")))
KEYED = Dataset(name="shops", features=(Feature("a", "numeric"), Feature("hot", "boolean")), target="y",
                key="shop")


def _row(rng: random.Random) -> dict:
    a, b = rng.uniform(0, 10), rng.uniform(-5, 5)
    c = rng.choice(["p", "q"])
    return {"a": a, "b": b, "c": c, "y": 3 * a - 2 * b + (5 if c == "p" else 0) + rng.gauss(0, 0.5)}


# --------------------------------------------------------------------------- decoding


def test_each_kind_decodes_to_its_typed_record() -> None:
    row = {"a": 1.0, "b": 2.0, "c": "p", "y": 9.0}
    assert isinstance(decode(DS, encode_record(make_record(DS, 1, row, 5, "s"))), Example)
    features = decode(DS, encode_record(make_features(DS, 1, row, 5, "s")))
    assert features == FeaturesRecord(id=1, key=GLOBAL_KEY, x={"a": 1.0, "b": 2.0, "c": "p"}, ts=5,
                                      stream="s")
    label = decode(DS, encode_record(make_label(DS, 1, GLOBAL_KEY, 9.0, 7, "s")))
    assert label == LabelRecord(id=1, key=GLOBAL_KEY, y=9.0, ts=7, stream="s")
    # ints and the checked path give the same records
    assert extract(DS, {**make_features(DS, 1, row, 5, "s"), "row": {"a": 1, "b": 2, "c": "p"}}) == features
    assert extract(DS, {**make_label(DS, 1, GLOBAL_KEY, 9.0, 7, "s"), "target": 9}) == label
    keyed = make_features(KEYED, 3, {"a": 1.0, "hot": True, "shop": "x", "y": 2.0}, None)
    assert extract(KEYED, keyed) == FeaturesRecord(id=3, key="x", x={"a": 1.0, "hot": 1.0})


@pytest.mark.parametrize(("change", "reason"), [
    (lambda r: r.pop("id"), "record lacks field(s) ['id']"),
    (lambda r: r.update(target="high"), "target must be a JSON number"),
    (lambda r: r.update(target=True), "target must be a JSON number"),
    (lambda r: r.pop("target"), "record lacks field(s) ['target']"),
    (lambda r: r.update(key=""), "key must be a non-empty string"),
    (lambda r: r.update(id=None), "id must be an integer or a string"),
    (lambda r: r.update(ts="now"), "ts must be integer milliseconds or null"),
    (lambda r: r.update(kind="guess"), "unknown record kind"),
])
def test_a_bad_label_is_an_invalid_record_with_its_reason(change, reason) -> None:
    record = make_label(DS, 1, GLOBAL_KEY, 9.0, 7, "s")
    change(record)
    with pytest.raises(InvalidRecord, match=re.escape(reason)):
        extract(DS, record)


def test_a_non_finite_target_is_refused() -> None:
    value = b'{"kind":"label","id":1,"key":"__all__","ts":1,"target":1e999}'
    with pytest.raises(InvalidRecord, match="target is not finite"):
        decode(DS, value)
    with pytest.raises(InvalidRecord, match="target is not finite"):
        decode(DS, value.replace(b"1e999", b"NaN"))


@pytest.mark.parametrize(("change", "reason"), [
    (lambda r: r["row"].pop("a"), "missing feature"),
    (lambda r: r["row"].update(a="x"), "value must be a JSON number"),
    (lambda r: r["row"].update(c=""), "category must be a non-empty string"),
    (lambda r: r.update(key="other"), "does not match the row's model key"),
    (lambda r: r.pop("row"), "lacks field"),
])
def test_a_bad_features_record_is_an_invalid_record_with_its_reason(change, reason) -> None:
    record = make_features(DS, 1, {"a": 1.0, "b": 2.0, "c": "p", "y": 9.0}, 5)
    change(record)
    with pytest.raises(InvalidRecord, match=reason):
        extract(DS, record)


# --------------------------------------------------------------------------- the policy


def test_label_policy_parses_the_flag_values() -> None:
    assert parse_ttl("500") == (500, None)
    assert parse_ttl("30s") == (None, 30_000)
    assert parse_ttl("1.5s") == (None, 1500)
    assert parse_ttl(None) == parse_ttl("") == parse_ttl("none") == (None, None)
    for bad in ("0", "-1", "ten", "0s", "nans", "5m"):
        with pytest.raises(ValueError, match="--label-ttl"):
            parse_ttl(bad)
    assert parse_on_missing("drop") is None and parse_on_missing(None) is None
    assert parse_on_missing("learn=0") == 0.0 and parse_on_missing("learn=-2.5") == -2.5
    for bad in ("learn=", "learn=nan", "keep", "learn=x"):
        with pytest.raises(ValueError, match="--on-missing-label"):
            parse_on_missing(bad)
    policy = LabelPolicy.parse("30s", "learn=0")
    assert (policy.ttl_rows, policy.ttl_ms, policy.learn_missing) == (None, 30_000, 0.0)
    assert (policy.ttl_text, policy.on_missing_text) == ("30s", "learn=0")
    assert LabelPolicy.parse("200").mode == "rows" and LabelPolicy().mode is None


def test_quantiles_are_nearest_rank() -> None:
    assert quantiles(range(1, 101)) == {"p50": 50, "p95": 95, "p99": 99}
    assert quantiles([]) == {}


# --------------------------------------------------------------------------- the rules, case by case


def _state() -> KeyState:
    return KeyState.new(GLOBAL_KEY, DS, "rls", "v1")


def _features(i: int, ts: int | None = None, stream: str = "s") -> FeaturesRecord:
    return FeaturesRecord(id=i, key=GLOBAL_KEY, x={"a": float(i), "b": 1.0, "c": "p"}, ts=ts, stream=stream)


def _label(i: int, y: float = 10.0, ts: int | None = None, stream: str = "s") -> LabelRecord:
    return LabelRecord(id=i, key=GLOBAL_KEY, y=y, ts=ts, stream=stream)


def _accounts(ks: KeyState) -> None:
    labels = ks.labels
    assert labels.served == labels.paired + labels.expired + len(labels.pending)


def test_features_serve_now_and_learn_when_the_label_comes() -> None:
    ks = _state()
    first = apply_record(ks, _features(1, ts=1000), 0)
    assert first.status == PENDING and first.served is not None and first.learned is None
    assert ks.learned == 0 and len(ks.labels.pending) == 1
    learned = apply_record(ks, _label(1, 12.0, ts=4000), 1)
    assert learned.status == LEARNED and learned.learned is not None
    result = learned.learned
    assert (result.y_true, result.y_pred, result.delay_ms, result.delay_rows) == (12.0, first.served.y_pred,
                                                                                   3000, 1)
    assert result.served_offset == 0 and ks.last_offset == 1 and ks.learned == 1
    assert ks.metrics.n == 1 and not ks.labels.pending
    assert ks.labels.figures()["delay_ms"] == {"p50": 3000, "p95": 3000, "p99": 3000}
    _accounts(ks)


def test_a_label_before_its_features_waits_and_pairs() -> None:
    ks = _state()
    assert apply_record(ks, _label(1, ts=50), 0).status == EARLY
    assert apply_record(ks, _label(1, ts=60), 1).status == DUPLICATE  # a second early label
    outcome = apply_record(ks, _features(1, ts=100), 2)
    assert outcome.status == LEARNED and outcome.served is not None
    assert outcome.learned is not None and outcome.learned.delay_ms == -50
    assert not ks.labels.early and ks.learned == 1
    _accounts(ks)


def test_duplicates_change_nothing() -> None:
    ks = _state()
    apply_record(ks, _features(1), 0)
    before = state_fingerprint(ks)
    assert apply_record(ks, _features(1), 1).status == DUPLICATE  # pending already
    apply_record(ks, _label(1), 2)
    assert apply_record(ks, _label(1), 3).status == DUPLICATE
    assert apply_record(ks, _features(1), 4).status == DUPLICATE  # learned already
    assert ks.learned == 1 and ks.labels.served == 1 and ks.skipped == 3
    assert before != state_fingerprint(ks)
    # the same id in another stream is another row
    assert apply_record(ks, _features(1, stream="t"), 5).status == PENDING


def test_a_label_for_an_unknown_id_waits_then_is_an_orphan() -> None:
    ks = _state()
    policy = LabelPolicy(ttl_rows=2)
    assert apply_record(ks, _label(99), 0, policy).status == EARLY
    apply_record(ks, _features(1), 1, policy)
    apply_record(ks, _features(2), 2, policy)
    outcome = apply_record(ks, _features(3), 3, policy)
    assert outcome.orphaned == 1 and ks.labels.orphans == 1 and not ks.labels.early


def test_ttl_in_rows_expires_in_order_and_a_late_label_is_ignored() -> None:
    ks = _state()
    policy = LabelPolicy(ttl_rows=2)
    apply_record(ks, _features(1), 0, policy)  # seq 1
    apply_record(ks, _features(2), 1, policy)  # seq 2
    assert apply_record(ks, _label(1), 2, policy).status == LEARNED  # seq 3: 2 records later, in time
    outcome = apply_record(ks, _features(3), 3, policy)  # seq 4: #2 waited 2 records: still in
    assert not outcome.expired
    outcome = apply_record(ks, _features(4), 4, policy)  # seq 5: #2 expires
    assert [e.id for e in outcome.expired] == [2] and outcome.expired[0].learned is None
    assert ks.labels.expired == 1 and ks.learned == 1
    assert apply_record(ks, _label(2), 5, policy).status == LATE
    assert apply_record(ks, _features(2), 6, policy).status == DUPLICATE
    _accounts(ks)


def test_ttl_in_event_seconds_and_learn_on_missing() -> None:
    ks = _state()
    policy = LabelPolicy.parse("10s", "learn=0")
    apply_record(ks, _features(1, ts=1_000), 0, policy)
    apply_record(ks, _features(2, ts=5_000), 1, policy)
    assert not apply_record(ks, _features(3, ts=11_000), 2, policy).expired  # exactly 10 s: in time
    outcome = apply_record(ks, _features(4, ts=11_001), 3, policy)
    assert [e.id for e in outcome.expired] == [1]
    expired = outcome.expired[0].learned
    assert expired is not None and expired.expired and expired.y_true == 0.0
    assert ks.learned == 1 and ks.labels.expired_learned == 1 and ks.metrics.n == 1
    # an out-of-order (older) record does not move the clock back
    assert not apply_record(ks, _features(5, ts=2_000), 4, policy).expired
    # ... and a record already older than the TTL expires at the next record, first: (due, seq) order
    assert [e.id for e in apply_record(ks, _label(9, ts=15_001), 5, policy).expired] == [5, 2]
    _accounts(ks)


def test_labelled_records_learn_as_before() -> None:
    ks, plain = _state(), _state()
    rng = random.Random(3)
    for i in range(50):
        row = _row(rng)
        example = extract(DS, make_record(DS, i, row, None))
        assert apply_record(ks, example, i).status == LEARNED
        learn_step(plain, example, i)
    assert fingerprint(ks.model) == fingerprint(plain.model) == state_fingerprint(ks)
    assert ks.metrics.get() == plain.metrics.get()


def test_drift_and_resets_follow_the_delayed_errors() -> None:
    ks = KeyState.new(GLOBAL_KEY, DS, "rls", "v1", drift=DriftConfig(policy="reset", warmup=10))
    for i in range(300):
        apply_record(ks, _features(i), 2 * i)
        outcome = apply_record(ks, _label(i, y=float(i) if i < 150 else 1000.0 - 3 * i), 2 * i + 1)
        assert outcome.status == LEARNED
    assert ks.drifts >= 1 and ks.generation >= 1


# --------------------------------------------------------------------------- against the plain loop


def _mixed_log(seed: int, n: int, *, delay: int, drop: float, early: float, dup: float,
               ts_step: int = 1000) -> list[dict]:
    """n rows split into features now and their label ``delay`` records later (some dropped,
    some early, some duplicated), one key, with increasing event times."""
    rng = random.Random(seed)
    events: list[tuple[int, int, dict]] = []  # (position, tiebreak, record)
    for i in range(n):
        row = _row(rng)
        ts = i * ts_step
        kind = rng.random()
        if kind < 0.1:
            events.append((i, 0, make_record(DS, i, row, ts, "s")))
            continue
        events.append((i, 0, make_features(DS, i, row, ts, "s")))
        if rng.random() < drop:
            continue
        lag = rng.randint(0, 2 * delay)
        when = i - rng.randint(1, 5) if rng.random() < early else i + lag
        label_ts = ts + lag * ts_step
        events.append((when, 1, make_label(DS, i, GLOBAL_KEY, row["y"], label_ts, "s")))
        if rng.random() < dup:
            again = make_label(DS, i, GLOBAL_KEY, row["y"], label_ts, "s")
            events.append((when + rng.randint(0, 3), 2, again))
    events.append((n // 2, 3, make_label(DS, 10**6, GLOBAL_KEY, 1.0, n // 2 * ts_step, "s")))  # unknown id
    return [record for _w, _t, record in sorted(events, key=lambda e: (e[0], e[1]))]


@pytest.mark.parametrize("policy", [
    LabelPolicy(),
    LabelPolicy.parse("40"),
    LabelPolicy.parse("25s", "learn=0"),
    LabelPolicy.parse("15", "learn=7.5"),
], ids=["no-ttl", "rows", "seconds-learn", "rows-learn"])
@pytest.mark.parametrize("spec", ["rls", "linear"])
def test_apply_record_equals_the_plain_sequential_loop(policy: LabelPolicy, spec: str) -> None:
    records = _mixed_log(7, 400, delay=20, drop=0.05, early=0.05, dup=0.05)
    ks = KeyState.new(GLOBAL_KEY, DS, spec, "v1")
    for offset, record in enumerate(records):
        apply_record(ks, extract(DS, record), offset, policy)
        if offset % 97 == 0:  # a restart: the state goes through the store's pickle
            ks = pickle.loads(pickle.dumps(ks))
        _accounts(ks)
    ref = reference_loop(DS, spec, records, ttl_rows=policy.ttl_rows, ttl_ms=policy.ttl_ms,
                         learn_missing=policy.learn_missing)
    assert fingerprint(ks.model) == ref.fingerprint
    assert set(ks.labels.pending) == ref.pending_ids()
    assert set(ks.labels.early) == set(ref.early)
    labels = ks.labels
    assert (labels.served, labels.paired, labels.expired, labels.orphans) == (
        ref.served, ref.paired, len(ref.expired), ref.orphans)
    assert ks.learned == len(ref.learned)
    if policy.mode is not None:
        assert labels.expired > 0
    # the same log again, straight through: the same state fingerprint
    again = KeyState.new(GLOBAL_KEY, DS, spec, "v1")
    for offset, record in enumerate(records):
        apply_record(again, extract(DS, record), offset, policy)
    assert state_fingerprint(again) == state_fingerprint(ks) != fingerprint(ks.model)


def test_the_state_fingerprint_covers_the_pending_ids() -> None:
    a, b = _state(), _state()
    apply_record(a, _features(1), 0)
    apply_record(b, _features(2), 0)
    assert fingerprint(a.model) == fingerprint(b.model)
    assert state_fingerprint(a) != state_fingerprint(b)


def test_pending_predictions_are_small_pickled() -> None:
    ks = _state()
    rng = random.Random(1)
    for i in range(2000):
        row = _row(rng)
        apply_record(ks, extract(DS, make_features(DS, i, row, i * 1000, "s")), i)
    empty = _state()
    per_entry = (len(pickle.dumps(ks)) - len(pickle.dumps(empty))) / 2000
    assert per_entry < 150, per_entry
    assert 0 < ks.labels.bytes / 2000 < 300


def test_served_and_scored_predictions_round_trip_and_decode_apart() -> None:
    from kappaml.records import Prediction, ServedPrediction, decode_prediction

    served = ServedPrediction(key="k", id=3, y_pred=1.5, version="v1", spec="rls", partition=0, offset=10,
                              event_ts=5, processed_ts=9, role="champion", generation=0)
    assert decode_prediction(served.encode()) == served
    assert served.to_dict() == ServedPrediction.__mro__[1].to_dict(served)
    scored = Prediction(key="k", id=3, y_true=2.0, y_pred=1.5, error=-0.5, version="v1", spec="rls",
                        partition=0, offset=20, event_ts=5, processed_ts=30, role="champion", generation=0,
                        delay_ms=100, delay_rows=4, served_offset=10)
    assert decode_prediction(scored.encode()) == scored and "expired" not in scored.to_dict()
    assert scored.to_dict() == Prediction.__mro__[1].to_dict(scored)
    with pytest.raises(InvalidRecord, match="y_true"):
        Prediction.decode(served.encode())


@pytest.mark.parametrize("policy", [LabelPolicy.parse("40"), LabelPolicy.parse("25s", "learn=0")],
                         ids=["rows", "seconds"])
def test_a_store_keeping_pending_buckets_apart_restores_the_same_state(policy: LabelPolicy) -> None:
    """What processor/cache.py does: pending predictions in buckets of their own, only the
    changed buckets written at each checkpoint, the rest of the state pickled without them."""
    records = _mixed_log(9, 3000, delay=300, drop=0.05, early=0.02, dup=0.02)
    straight = KeyState.new(GLOBAL_KEY, DS, "rls", "v1")
    for offset, record in enumerate(records):
        apply_record(straight, extract(DS, record), offset, policy)

    store: dict[object, object] = {}
    ks = KeyState.new(GLOBAL_KEY, DS, "rls", "v1")
    ks.labels.externalize()
    written = []
    for offset, record in enumerate(records):
        apply_record(ks, extract(DS, record), offset, policy)
        if offset % 50 == 0:  # a checkpoint
            dirty = ks.labels.take_dirty_buckets()
            written.append(len(dirty))
            for bucket, entries in dirty:
                if entries is None:
                    store.pop(bucket, None)
                else:
                    store[bucket] = pickle.loads(pickle.dumps(entries))
            blob = pickle.dumps(ks)
            if offset % 350 == 0:  # a restart: load the state, then its buckets
                ks = pickle.loads(blob)
                assert not ks.labels.pending
                ks.labels.restore([store.get(b) for b in ks.labels.stored_buckets])  # type: ignore[misc]
                ks.labels.externalize()
    assert state_fingerprint(ks) == state_fingerprint(straight)
    assert fingerprint(ks.model) == fingerprint(straight.model)
    assert max(written) <= 3, "a checkpoint writes the few buckets that changed"
    inline, apart = _state(), _state()  # the replay's way (all in the pickle), the processor's
    apart.labels.externalize()
    for i in range(2000):
        apply_record(inline, _features(i), i)
        apply_record(apart, _features(i), i)
    assert len(pickle.dumps(inline)) - len(pickle.dumps(apart)) > 2000 * 40, \
        "the pickled state holds no pending predictions"
