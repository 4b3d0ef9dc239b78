"""The recursive least squares regressor: exactness against the closed-form ridge solution, layout, guards."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest

from kappaml.fingerprint import fingerprint
from kappaml.rls import MAX_ABS, RecursiveLeastSquares

NUMERIC = ("size", "load")
INDICATORS = ("eco",)
CATEGORICAL = ("region",)
REGIONS = ("north", "south", "east")


def stream(n: int, seed: int, regions: tuple[str, ...] = REGIONS) -> list[tuple[dict, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = {
            "size": rng.uniform(0.5, 5.0),
            "load": rng.choice([0.0, rng.uniform(100.0, 3000.0)]),
            "eco": float(rng.random() < 0.3),
            "region": rng.choice(regions),
        }
        y = 10 * x["size"] + 0.02 * x["load"] * (1 + regions.index(x["region"])) - 5 * x["eco"]
        out.append((x, y + rng.gauss(0, 1)))
    return out


def closed_form(rows: list[tuple[dict, float]], prior: float, intercept_prior: float, interactions: bool):
    """Posterior mean of Bayesian ridge with the model's documented prior, solved in one go."""
    levels: list[str] = []
    scale: dict[str, float] = {}
    for x, _ in rows:
        if x["region"] not in levels:
            levels.append(x["region"])
        for name in NUMERIC:
            if name not in scale and x[name] != 0.0:
                scale[name] = abs(x[name])

    # A numeric never seen non-zero keeps the plain prior (its weights are untouched anyway).
    col_prior = [prior] + [prior / scale.get(name, 1.0) ** 2 for name in NUMERIC]

    def vector(x: dict) -> np.ndarray:
        v = np.array([1.0] + [x[name] for name in NUMERIC])
        u = np.array([1.0, x["eco"]] + [1.0 if x["region"] == level else 0.0 for level in levels])
        return np.outer(u, v).ravel() if interactions else np.concatenate((v, u[1:]))

    if interactions:
        diag = np.array([col_prior[j] for _ in range(2 + len(levels)) for j in range(len(col_prior))])
    else:
        diag = np.array(col_prior + [prior] * (1 + len(levels)))
    diag[0] = intercept_prior
    X = np.array([vector(x) for x, _ in rows])
    y = np.array([t for _, t in rows])
    w = np.linalg.solve(np.diag(1.0 / diag) + X.T @ X, X.T @ y)
    return w, vector


@pytest.mark.parametrize("interactions", [True, False])
@pytest.mark.parametrize("n", [1, 2, 7, 40, 400])
def test_weights_equal_the_closed_form_ridge_solution(interactions: bool, n: int) -> None:
    rows = stream(n, seed=n)
    model = RecursiveLeastSquares(NUMERIC, INDICATORS, CATEGORICAL, interactions=interactions)
    for x, y in rows:
        model.predict_one(x)
        model.learn_one(x, y)
    w, vector = closed_form(rows, model.prior, model.intercept_prior, interactions)
    assert model.dim == w.size
    for x, _ in stream(20, seed=1000 + n):
        if x["region"] not in {r[0]["region"] for r in rows}:
            continue
        expected = float(vector(x) @ w)
        lo, hi = min(t for _, t in rows), max(t for _, t in rows)
        expected = min(max(expected, lo - (hi - lo)), hi + (hi - lo))  # the documented clipping
        assert model.predict_one(x) == pytest.approx(expected, rel=1e-7, abs=1e-7)


def test_first_prediction_is_zero_then_the_running_mean_dominates() -> None:
    model = RecursiveLeastSquares(NUMERIC, INDICATORS, CATEGORICAL)
    x, _ = stream(1, seed=0)[0]
    assert model.predict_one(x) == 0.0
    model.learn_one(x, 250.0)
    assert model.predict_one(stream(1, seed=1)[0][0]) == pytest.approx(250.0, rel=1e-3)


def test_new_levels_grow_the_layout_until_max_dim() -> None:
    # 1 + 2 numerics = 3 columns; 1 + 1 indicator + levels rows: max_dim 15 leaves room for 3 levels.
    model = RecursiveLeastSquares(NUMERIC, INDICATORS, CATEGORICAL, max_dim=15)
    assert model.interactions and model.dim == 6
    regions = ("a", "b", "c", "d", "e")
    for x, y in stream(100, seed=2, regions=regions):
        model.learn_one(x, y)
    assert model.dim == 15
    # Levels past the cap are coded like unseen levels: finite answers, no growth.
    assert math.isfinite(model.predict_one({"size": 1.0, "load": 5.0, "eco": 0.0, "region": "zzz"}))


def test_interactions_are_dropped_when_they_cannot_fit() -> None:
    many = tuple(f"b{i}" for i in range(30))
    model = RecursiveLeastSquares(NUMERIC, many, (), max_dim=40)
    assert not model.interactions
    assert model.dim == 1 + len(NUMERIC) + len(many)
    with pytest.raises(ValueError):
        RecursiveLeastSquares(NUMERIC, many, (), max_dim=10)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prior": 0.0},
        {"prior": -1.0},
        {"prior": math.inf},
        {"intercept_prior": math.nan},
        {"max_dim": 0},
        {"max_dim": 2.5},
        {"numeric": ("a",), "indicators": ("a",)},
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RecursiveLeastSquares(**kwargs)


def test_reused_encoding_is_never_stale() -> None:
    """predict_one(x) then learn_one on a different (or mutated) x learns the right row."""
    rows = stream(60, seed=3)
    plain = RecursiveLeastSquares(NUMERIC, INDICATORS, CATEGORICAL)
    tricky = RecursiveLeastSquares(NUMERIC, INDICATORS, CATEGORICAL)
    for i, (x, y) in enumerate(rows):
        plain.learn_one(x, y)
        other = rows[(i + 7) % len(rows)][0]
        tricky.predict_one(other)
        mutated = dict(x)
        tricky.predict_one(mutated)
        mutated["size"] = x["size"]  # same content, different dict: may be reused
        tricky.learn_one(mutated, y)
    assert np.array_equal(plain.weights, tricky.weights)
    # A dict mutated between predict and learn must be re-encoded.
    x, y = stream(1, seed=4)[0]
    a, b = pickle.loads(pickle.dumps(plain)), pickle.loads(pickle.dumps(plain))
    a.learn_one(dict(x), y)
    changed = dict(x, size=x["size"] + 1.0)
    b.predict_one(changed)
    changed["size"] = x["size"]
    b.learn_one(changed, y)
    assert np.array_equal(a.weights, b.weights)


def test_cache_is_not_part_of_the_state() -> None:
    model = RecursiveLeastSquares(NUMERIC, INDICATORS, CATEGORICAL)
    for x, y in stream(20, seed=5):
        model.learn_one(x, y)
    before = fingerprint(model)
    model.predict_one(stream(1, seed=6)[0][0])
    assert fingerprint(model) == before


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 10 * MAX_ABS, "seven", None])
def test_unusable_rows_are_counted_not_learned(bad: object) -> None:
    model = RecursiveLeastSquares(NUMERIC, INDICATORS, CATEGORICAL)
    rows = stream(10, seed=7)
    for x, y in rows:
        model.learn_one(x, y)
    weights = model.weights
    x, y = rows[0]
    model.learn_one(dict(x, size=bad), y)
    model.learn_one(x, bad)  # type: ignore[arg-type]
    assert np.array_equal(model.weights, weights)
    assert model.n_skipped == 2
    assert math.isfinite(model.predict_one(dict(x, load=bad)))


@pytest.mark.parametrize(
    ("numeric", "indicators", "categorical"),
    [(("size",), (), ()), ((), ("eco",), ()), ((), (), ("region",)), ((), ("eco",), ("region",))],
)
def test_degenerate_layouts_learn(numeric: tuple, indicators: tuple, categorical: tuple) -> None:
    """One numeric, only indicators, only a categorical: each learns its part of the signal."""
    rng = random.Random(8)
    effect = {"north": 5.0, "south": -3.0, "east": 1.0}
    model = RecursiveLeastSquares(numeric, indicators, categorical)
    errors = []
    for i in range(300):
        region = rng.choice(sorted(effect))
        x = {"size": rng.uniform(1, 3), "eco": float(rng.random() < 0.5), "region": region}
        y = 10.0
        y += 4.0 * x["size"] if numeric else 0.0
        y += -6.0 * x["eco"] if indicators else 0.0
        y += effect[x["region"]] if categorical else 0.0
        p = model.predict_one(x)
        if i >= 200:
            errors.append(abs(p - y))
        model.learn_one(x, y)
    assert max(errors) < 1e-2  # noise-free and inside the model class: only the ridge prior remains
