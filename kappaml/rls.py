"""Exact online least squares (recursive least squares) as a River regressor.

Each ``learn_one`` is a Sherman-Morrison update of the posterior of a Bayesian ridge
regression, so after every example the weights are exactly the ridge solution of all
examples so far: no learning rate, nothing to tune per data set, and the model converges
after a few dozen rows, which is what keeps early prequential errors small.

Features come from the declaration only. ``indicators`` (boolean 0/1 features) and the
one-hot levels of ``categorical`` features form ``u = [1, indicators..., levels...]``; with
``v = [1, numerics...]`` the model regresses on every product ``u_i * v_j``: an intercept, the
numeric slopes, and one intercept and one set of slopes per indicator (the interactions).
A new categorical level appends a block to the end of the layout and the covariance grows by
a prior block, which is exact: the level was 0 in every earlier example.

One prior must fit features of any unit, so the prior variance of a weight on numeric ``j``
is ``prior / s_j**2`` where ``s_j`` is the first non-zero ``|x_j|`` learned (clamped to
1e-8..1e8); that is ridge on ``x_j / s_j`` without dividing every row. It is set when the
feature is first non-zero, while its weights are still untouched, so it is exact too. The
intercept gets a very wide prior (``intercept_prior``) so the first predictions are the
running mean of the target.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from river import base
from scipy.linalg import blas

from kappaml.features import feature_lists

__all__ = ["MAX_ABS", "RecursiveLeastSquares"]

# Beyond this x'Px an update cancels catastrophically in float64: such rows are refused.
_MAX_GAIN = 1e15
# Values beyond this magnitude are refused (learning) or answered with the mean (predicting):
# their squares and products with the covariance would overflow.
MAX_ABS = 1e100
# A numeric's first non-zero magnitude sets its prior, clamped so the prior stays finite.
_SCALE_RANGE = (1e-8, 1e8)


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


class RecursiveLeastSquares(base.Regressor):
    """Bayesian ridge regression updated exactly, one example at a time.

    Parameters
    ----------
    numeric, indicators, categorical
        Feature names by kind; other keys of ``x`` are ignored, missing ones count as 0.
    interactions
        Regress on ``u (x) v`` (indicator x numeric products) instead of ``[v, u]``.
    prior
        Prior variance (in noise-variance units) of each weight except the intercept, for
        numerics relative to their first non-zero magnitude.
    intercept_prior
        Prior variance of the intercept.
    max_dim
        Cap on the number of weights; categorical levels that would exceed it share the
        all-zero code of unseen levels. Interactions are dropped when even one level per
        categorical feature would not fit.
    clip
        Clip predictions to the seen target range widened by its width on both sides.

    Rows with a non-numeric, non-finite or absurdly large (``MAX_ABS``) value, or so extreme
    that the update would be numerically meaningless, are not learned (counted in
    ``n_skipped``); predictions are always finite.
    """

    def __init__(
        self,
        numeric: Sequence[str] = (),
        indicators: Sequence[str] = (),
        categorical: Sequence[str] = (),
        interactions: bool = True,
        prior: float = 100.0,
        intercept_prior: float = 1e6,
        max_dim: int = 512,
        clip: bool = True,
    ) -> None:
        self.numeric, self.indicators, self.categorical = feature_lists(numeric, indicators, categorical)
        self.prior = _positive("prior", prior)
        self.intercept_prior = _positive("intercept_prior", intercept_prior)
        if isinstance(max_dim, bool) or int(max_dim) != max_dim or max_dim < 1:
            raise ValueError(f"max_dim must be a positive integer, got {max_dim!r}")
        self.max_dim = int(max_dim)
        self.clip = bool(clip)

        nv = 1 + len(self.numeric)
        nu = 1 + len(self.indicators)
        # Interactions need room for every indicator and at least one level per categorical.
        self.interactions = bool(interactions) and (nu + len(self.categorical)) * nv <= self.max_dim
        dim = nu * nv if self.interactions else nv + nu - 1
        if dim > self.max_dim:
            raise ValueError(f"{dim} weights needed for the numeric and boolean features, max_dim={max_dim}")
        self._nv = nv
        # The values x contributes, "sources": [1, numerics..., indicators..., admitted levels...];
        # weight k multiplies sources[_iu[k]] * sources[_iv[k]].
        self._names = (*self.numeric, *self.indicators)
        self._n_sources = 1 + len(self._names)
        self._levels: list[dict[str, int]] = [{} for _ in self.categorical]  # level -> source index
        self._iu, self._iv = self._layout()
        # Prior variance of the weights on column j of v; numerics get theirs when first non-zero.
        self._col_prior = [self.prior] * nv
        self._unscaled = list(range(len(self.numeric)))  # numerics not yet seen non-zero
        diag = np.full(dim, self.prior)
        diag[0] = self.intercept_prior
        # Fortran order: BLAS dger updates it in place.
        self._P = np.asfortranarray(np.diag(diag))
        self._w = np.zeros(dim)
        self._n = 0
        self._skipped = 0
        self._y_min = math.inf
        self._y_max = -math.inf
        self._y_mean = 0.0
        # (values read, categorical values, vector, raw w.x) of the last predict_one:
        # learn_one on the same x reuses them.
        self._cache: tuple[tuple, tuple, np.ndarray, float] | None = None
        self._getter: Callable[[dict], tuple] | None = None  # built lazily, not pickled

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        # The cache is a pure function of x and the state; keep it out of pickles and
        # fingerprints.
        state = self.__dict__.copy()
        state["_cache"] = None
        state["_getter"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------ encoding
    def _layout(self) -> tuple[np.ndarray, np.ndarray]:
        """Source indices of the two factors of every weight (see ``_iu``/``_iv``)."""
        u_src = [0, *range(1 + len(self.numeric), 1 + len(self._names))]
        # Levels get increasing source indices as they are admitted: appended blocks.
        u_src.extend(sorted(i for levels in self._levels for i in levels.values()))
        v_src = list(range(1 + len(self.numeric)))
        if self.interactions:
            iu = [i for i in u_src for _ in v_src]
            iv = [j for _ in u_src for j in v_src]
        else:
            iu = [0] * len(v_src) + u_src[1:]
            iv = v_src + [0] * (len(u_src) - 1)
        return np.array(iu, dtype=np.intp), np.array(iv, dtype=np.intp)

    def _make_getter(self) -> Callable[[dict], tuple]:
        names = self._names
        if len(names) >= 2:
            return operator.itemgetter(*names)
        if len(names) == 1:
            name = names[0]
            return lambda x: (x[name],)
        return lambda x: ()

    def _read(self, x: dict) -> tuple | None:
        """The numeric and indicator values of x (missing -> 0); None if one is unusable."""
        getter = self._getter
        if getter is None:
            getter = self._getter = self._make_getter()
        try:
            values = getter(x)
            # NaN fails the comparison too; a str raises TypeError. No max(..., default=0.0):
            # parsing that keyword cost more than the max itself (callgrind, once per message).
            if (max(map(abs, values)) if values else 0.0) <= MAX_ABS:
                return values
        except (KeyError, TypeError):
            pass
        try:  # the slow path: absent keys and numbers of other types
            values = tuple(float(x.get(name, 0.0)) for name in self._names)
        except (TypeError, ValueError, OverflowError):
            return None
        return values if (max(map(abs, values)) if values else 0.0) <= MAX_ABS else None

    def _categories(self, x: dict) -> tuple:
        return tuple(x.get(name) for name in self.categorical)

    def _encode(self, values: tuple, categories: tuple) -> np.ndarray | None:
        """The regression vector under the current layout (unseen levels -> 0)."""
        try:
            sources = np.array((1.0, *values), dtype=float)
        except (TypeError, ValueError, OverflowError):
            return None
        if self.categorical:
            sources = np.concatenate((sources, np.zeros(self._n_sources - sources.size)))
            for value, levels in zip(categories, self._levels, strict=True):
                index = levels.get(str(value)) if value is not None else None
                if index is not None:
                    sources[index] = 1.0
        return sources.take(self._iu) * sources.take(self._iv)

    def _grow(self, values: tuple, categories: tuple) -> bool:
        """Set the prior of numerics first seen non-zero; admit new levels.

        True when the layout or a prior changed (an earlier encoding of x is then stale).
        """
        changed = False
        if self._unscaled:
            for j in [j for j in self._unscaled if values[j] != 0.0]:
                changed = True
                self._unscaled.remove(j)
                scale = min(max(abs(float(values[j])), _SCALE_RANGE[0]), _SCALE_RANGE[1])
                prior = self.prior / (scale * scale)
                self._col_prior[j + 1] = prior
                # Every weight on column j+1 of v is still at its prior: re-set it.
                for k in np.flatnonzero(self._iv == j + 1):
                    self._P[k, k] = prior
        for value, levels in zip(categories, self._levels, strict=True):
            if value is None or str(value) in levels:
                continue
            block = self._nv if self.interactions else 1
            dim = self._w.size
            if dim + block > self.max_dim:
                continue  # no room: this level keeps the all-zero code of unseen levels
            changed = True
            levels[str(value)] = self._n_sources
            self._n_sources += 1
            # The new weights never mattered before (their feature was 0): a prior block.
            P = np.zeros((dim + block, dim + block), order="F")
            P[:dim, :dim] = self._P
            P[dim:, dim:] = np.diag(self._col_prior if self.interactions else [self.prior])
            self._P = P
            self._w = np.concatenate((self._w, np.zeros(block)))
            self._iu, self._iv = self._layout()
        return changed

    # ------------------------------------------------------------------ river API
    def predict_one(self, x: dict) -> float:
        values = self._read(x)
        if values is None:
            return self._fallback()
        categories = self._categories(x) if self.categorical else ()
        vec = self._encode(values, categories)
        if vec is None:
            return self._fallback()
        raw = float(self._w.dot(vec))
        self._cache = (values, categories, vec, raw)
        y = raw
        if self.clip and self._n:
            width = self._y_max - self._y_min
            y = min(max(y, self._y_min - width), self._y_max + width)
        return y if math.isfinite(y) else self._fallback()

    def _fallback(self) -> float:
        return self._y_mean if math.isfinite(self._y_mean) else 0.0

    def learn_one(self, x: dict, y: float) -> None:
        cache, self._cache = self._cache, None
        try:
            y = float(y)
        except (TypeError, ValueError, OverflowError):
            y = math.nan
        values = None
        if cache is not None and self._getter is not None:
            try:
                values = self._getter(x)
            except KeyError:
                values = None
            if values != cache[0]:
                values = None  # not the x just predicted: read and check it properly
        if values is None:
            values = self._read(x)
        if values is None or not abs(y) <= MAX_ABS:
            self._skipped += 1
            return
        categories = self._categories(x) if self.categorical else ()
        changed = self._grow(values, categories)
        # predict_one then learn_one on the same x is the hot path: reuse its encoding.
        if cache is not None and not changed and cache[0] == values and cache[1] == categories:
            vec, raw = cache[2], cache[3]
        else:
            encoded = self._encode(values, categories)
            if encoded is None:
                self._skipped += 1
                return
            vec, raw = encoded, float(self._w.dot(encoded))
        Pv = self._P.dot(vec)
        gain = float(vec.dot(Pv))
        err = y - raw
        # gain < 0 means P lost definiteness to rounding; such an update would make it worse.
        if not (0.0 <= gain <= _MAX_GAIN and math.isfinite(err)):
            self._skipped += 1
            return
        denom = 1.0 + gain
        self._w += Pv * (err / denom)
        self._P = blas.dger(-1.0 / denom, Pv, Pv, a=self._P, overwrite_a=1)
        self._n += 1
        self._y_min = min(self._y_min, y)
        self._y_max = max(self._y_max, y)
        self._y_mean += (y - self._y_mean) / self._n

    # ------------------------------------------------------------------ introspection
    @property
    def n_learned(self) -> int:
        return self._n

    @property
    def n_skipped(self) -> int:
        return self._skipped

    @property
    def dim(self) -> int:
        return int(self._w.size)

    @property
    def weights(self) -> np.ndarray:
        return self._w.copy()
