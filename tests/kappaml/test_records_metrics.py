"""The metrics topic's typed records (key, overall, comparison, promotion, gate): round trips, the
records the processor and the replay write, and refusals with reasons."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from records_kit import assert_round_trip, reason_of, records

from kappaml.evaluation import PrequentialMetrics
from kappaml.learner import KeyState
from kappaml.records import (
    Comparison,
    GateLook,
    InvalidRecord,
    KeyMetrics,
    OverallMetrics,
    PromotionApplied,
    SpecFigures,
    decode_metrics,
    metrics_from_dict,
)
from processor.outputs import key_metrics, spec_figures
from spark_batch.metrics_feed import _record

# As the processor wrote them before records carried "v" (the log holds these).
OLD_OVERALL = {
    "scope": "overall", "key": "__overall__", "version": "v1", "spec": "rls", "champions": {"0": "rls"},
    "challengers": ["linear"], "instance": "host-1", "keys": 3, "scored": "served", "learned": 90,
    "skipped": 1, "invalid": 2, "served": 90, "rmse": 1.5, "mae": 1.0, "rolling_rmse": None,
    "rolling_mae": None, "drifts": 0, "throughput": 812.5, "latency_ms": {"p50": 3, "p95": 9, "p99": 12},
    "ts": 1_700_000_000_000,
    "duplicates": {"skipped": 1, "share": None, "recent_skipped": 0, "recent_rows": 0, "threshold": 0.5,
                   "warning": False},
}
OLD_COMPARISON = {
    "scope": "comparison", "key": "__comparison__", "version": "v1", "instance": "host-1", "champions": {},
    "specs": {"rls": {"learned": 9, "rmse": 1.0, "mae": 0.5, "rolling_rmse": 1.0, "rolling_mae": 0.5,
                      "drifts": 0, "role": "champion", "learn_us": 41.5}},
    "ts": 5,
}
OLD_PROMOTION = {"scope": "promotion", "key": "__promotion__", "version": "v1", "spec": "linear",
                 "previous": "rls", "partition": 0, "offset": 60, "id": "p-1", "by": "me@host",
                 "requested_ts": 1, "ts": 2, "instance": "host-1"}


@settings(deadline=None)  # no timing asserted: a loaded machine is slow
@given(st.one_of(records(KeyMetrics), records(OverallMetrics), records(Comparison),
                 records(PromotionApplied), records(GateLook)))
def test_every_metrics_record_survives_a_round_trip(record) -> None:
    assert_round_trip(record)
    assert decode_metrics(record.encode()) == record  # told apart by scope


def _state() -> KeyState:
    ks = KeyState(key="k", spec="rls", version="v1", model=None, metrics=PrequentialMetrics(window=3))
    for y, p in ((1.0, 1.5), (2.0, 2.5), (4.0, 3.0)):
        ks.metrics.update(y, p)
    ks.learned, ks.last_offset = 3, 2
    return ks


def test_the_processors_key_metrics_decode() -> None:
    record = key_metrics(_state(), ts=9, role="challenger")
    decoded = decode_metrics(record.encode())
    assert decoded == record and isinstance(decoded, KeyMetrics)
    assert (decoded.n, decoded.learned, decoded.last_offset, decoded.role) == (3, 3, 2, "challenger")
    assert decoded.rmse == pytest.approx(_state().metrics.get()["rmse"])
    # Undefined metrics are written as null, as before.
    assert orjson.loads(key_metrics(KeyState(key="k", spec="rls", version="v1", model=None), 1).encode())[
        "rmse"] is None


def test_the_replays_metrics_points_decode() -> None:
    metrics = _state().metrics
    point = decode_metrics(_record("key", "k", "v1", "rls", metrics, 7, last_offset=2))
    assert isinstance(point, KeyMetrics) and point.origin == "replay" and point.last_offset == 2
    overall = decode_metrics(_record("overall", "__overall__", "v1", "rls", metrics, 7, keys=4))
    assert isinstance(overall, OverallMetrics)
    assert (overall.keys, overall.n, overall.origin) == (4, 3, "replay")


def test_records_without_v_decode() -> None:
    overall = metrics_from_dict(OLD_OVERALL)
    assert isinstance(overall, OverallMetrics)
    assert overall.latency_ms == {"p50": 3, "p95": 9, "p99": 12} and overall.duplicates["threshold"] == 0.5
    assert overall.to_dict() == {"v": 1, **OLD_OVERALL}
    comparison = metrics_from_dict(OLD_COMPARISON)
    assert isinstance(comparison, Comparison)
    assert comparison.specs["rls"] == SpecFigures(role="champion", learned=9, drifts=0, rmse=1.0, mae=0.5,
                                                  rolling_rmse=1.0, rolling_mae=0.5, learn_us=41.5)
    assert comparison.to_dict() == {"v": 1, **OLD_COMPARISON}
    promotion = metrics_from_dict(OLD_PROMOTION)
    assert isinstance(promotion, PromotionApplied) and promotion.previous == "rls"
    assert promotion.to_dict() == {"v": 1, **OLD_PROMOTION}


def test_spec_figures_are_the_pooled_figures() -> None:
    figures = spec_figures([_state(), _state()], "champion", 12.0)
    assert (figures.learned, figures.drifts, figures.learn_us) == (6, 0, 12.0)
    assert figures.rmse == pytest.approx(_state().metrics.get()["rmse"])


@pytest.mark.parametrize(("value", "words"), [
    ({**OLD_PROMOTION, "scope": "nonsense"}, "unknown scope"),
    ({k: v for k, v in OLD_PROMOTION.items() if k != "scope"}, "unknown scope"),
    ({**OLD_OVERALL, "v": 3}, "format version 3"),
    ({**OLD_OVERALL, "champions": ["rls"]}, "champions must be a JSON object or null"),
    ({**OLD_OVERALL, "latency_ms": {"p50": "fast"}}, "latency_ms.p50 must be a number"),
    ({**OLD_COMPARISON, "specs": {"rls": {"role": "champion"}}}, "specs.rls: spec figures lacks field(s)"),
    ({**OLD_COMPARISON, "specs": {"rls": 3}}, "specs.rls must be a spec figures object"),
    ({**OLD_PROMOTION, "offset": "60"}, "offset must be an integer"),
    ("[]", "metrics record is not a JSON object"),
])
def test_bad_metrics_records_are_refused_with_a_reason(value: object, words: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        decode_metrics(value) if isinstance(value, str) else metrics_from_dict(value)
    assert words in str(caught.value)


def test_a_scope_decoded_by_the_wrong_class_is_refused() -> None:
    assert "scope must be 'key'" in reason_of(KeyMetrics, {**OLD_OVERALL})
