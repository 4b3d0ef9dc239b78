"""Prequential metrics against numpy, the rolling window, invalid pairs, pickling."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kappaml.evaluation import PrequentialMetrics


def reference(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    e = p - y
    sst = ((y - y.mean()) ** 2).sum()
    return (
        float(np.sqrt((e**2).mean())),
        float(np.abs(e).mean()),
        float(1 - (e**2).sum() / sst) if sst > 0 else math.nan,
    )


@pytest.mark.parametrize("window", [1, 7, 500])
def test_cumulative_and_rolling_match_numpy(window: int) -> None:
    rng = np.random.default_rng(window)
    y = rng.normal(250.0, 50.0, 2_345)
    p = y + rng.normal(0.0, 4.0, y.size)
    m = PrequentialMetrics(window=window)
    for a, b in zip(y, p, strict=True):
        assert m.update(float(a), float(b))
    got = m.get()
    assert got["n"] == y.size and got["invalid"] == 0 and got["window"] == window
    rmse, mae, r2 = reference(y, p)
    assert got["rmse"] == pytest.approx(rmse, rel=1e-9)
    assert got["mae"] == pytest.approx(mae, rel=1e-9)
    assert got["r2"] == pytest.approx(r2, rel=1e-9)
    assert got["rolling_n"] == window
    rmse, mae, r2 = reference(y[-window:], p[-window:])
    assert got["rolling_rmse"] == pytest.approx(rmse, rel=1e-7)
    assert got["rolling_mae"] == pytest.approx(mae, rel=1e-7)
    if window > 1:
        assert got["rolling_r2"] == pytest.approx(r2, rel=1e-6, abs=1e-9)
    else:
        assert got["rolling_r2"] is None


def test_empty_and_undefined_values_are_none() -> None:
    m = PrequentialMetrics()
    got = m.get()
    assert got["n"] == 0 and got["rmse"] is None and got["r2"] is None and got["rolling_mae"] is None
    m.update(5.0, 4.0)
    m.update(5.0, 6.0)  # constant target: R2 is undefined, not -inf
    got = m.get()
    assert got["rmse"] == 1.0 and got["mae"] == 1.0 and got["r2"] is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None, "x", 1e300])
def test_non_finite_pairs_are_counted_not_scored(bad: object) -> None:
    m = PrequentialMetrics(window=3)
    m.update(1.0, 2.0)
    assert not m.update(3.0, bad)  # type: ignore[arg-type]
    if bad is not None and bad != 1e300:
        assert not m.update(bad, 3.0)  # type: ignore[arg-type]
    got = m.get()
    assert got["n"] == 1 and got["rmse"] == 1.0 and got["invalid"] >= 1
    assert all(v is None or math.isfinite(v) for v in got.values())


@pytest.mark.parametrize("window", [0, -1, 2.5, True])
def test_bad_window_is_rejected(window: object) -> None:
    with pytest.raises(ValueError):
        PrequentialMetrics(window=window)  # type: ignore[arg-type]


def test_pickle_round_trip_and_determinism() -> None:
    rng = np.random.default_rng(0)
    ys, noise = rng.normal(0, 10, 300), rng.normal(0, 1, 300)
    pairs = [(float(a), float(a + b)) for a, b in zip(ys, noise, strict=True)]
    a, b = PrequentialMetrics(window=50), PrequentialMetrics(window=50)
    for y, p in pairs[:200]:
        a.update(y, p)
        b.update(y, p)
    c = pickle.loads(pickle.dumps(a))
    for y, p in pairs[200:]:
        a.update(y, p)
        b.update(y, p)
        c.update(y, p)
    assert a.get() == b.get() == c.get()


def test_large_offset_targets_keep_r2_precise() -> None:
    # A tiny spread around a huge mean: naive sum-of-squares would cancel to garbage.
    rng = np.random.default_rng(1)
    y = 1e9 + rng.normal(0.0, 1.0, 5_000)
    p = y + rng.normal(0.0, 0.1, y.size)
    m = PrequentialMetrics(window=1_000)
    for a, b in zip(y, p, strict=True):
        m.update(float(a), float(b))
    assert m.get()["r2"] == pytest.approx(reference(y, p)[2], abs=1e-6)
    assert m.get()["rolling_r2"] == pytest.approx(reference(y[-1000:], p[-1000:])[2], abs=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=1, max_size=120),
    st.integers(1, 40),
)
def test_rolling_window_equals_recomputation(pairs: list[tuple[float, float]], window: int) -> None:
    m = PrequentialMetrics(window=window)
    for y, p in pairs:
        m.update(y, p)
    tail = pairs[-window:]
    errs = [p - y for y, p in tail]
    got = m.get()
    assert got["rolling_n"] == len(tail)
    expected = math.sqrt(sum(e * e for e in errs) / len(errs))
    assert got["rolling_rmse"] == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert got["rolling_mae"] == pytest.approx(sum(abs(e) for e in errs) / len(errs), rel=1e-6, abs=1e-6)
