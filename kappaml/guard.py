"""A wrapper that keeps any River regressor's answers finite and plausible.

SGD models, trees with linear leaves and forests can answer None before they learn, or blow
up on an unlucky stream. ``Guarded`` answers the running mean of the target instead of
None/NaN/inf, clips answers to the seen target range widened by its width on both sides,
keeps rows with non-finite or absurdly large (``MAX_ABS``) numbers away from the inner
model, and counts (instead of raising) arithmetic errors of the inner model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from river import base

__all__ = ["MAX_ABS", "Guarded"]

# Inputs beyond this magnitude overflow inside linear models (squares, outer products).
MAX_ABS = 1e100


def _usable(x: dict) -> bool:
    """False when a numeric value of x is NaN, infinite or beyond MAX_ABS."""
    for value in x.values():
        if isinstance(value, (int, float)) and not abs(value) <= MAX_ABS:
            return False
    return True


class Guarded(base.Wrapper, base.Regressor):
    """Finite, clipped answers and refused unusable rows around any River regressor.

    Parameters
    ----------
    regressor
        The wrapped regressor (or a pipeline ending in one).
    clip
        Clip answers to the seen target range widened by its width on both sides.
    """

    def __init__(self, regressor: base.Estimator, clip: bool = True) -> None:
        # A Pipeline ending in a regressor counts as one (River's isinstance says so).
        if not isinstance(regressor, base.Regressor):
            raise ValueError(f"Guarded wraps a River regressor, got {type(regressor).__name__}")
        self.regressor = regressor
        self.clip = bool(clip)
        self._n = 0
        self._y_min = math.inf
        self._y_max = -math.inf
        self._y_mean = 0.0
        # Examples not learned: unusable values or an arithmetic error. Predictions are not
        # counted: predict_one must leave the state (and the fingerprint) alone.
        self.n_skipped = 0

    @property
    def _wrapped_model(self) -> base.Estimator:
        return self.regressor

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        from river import linear_model  # only River's own checks need it

        yield {"regressor": linear_model.LinearRegression()}

    def _fallback(self) -> float:
        return self._y_mean if math.isfinite(self._y_mean) else 0.0

    def predict_one(self, x: dict, **kwargs: Any) -> float:
        if not _usable(x):
            return self._fallback()
        try:
            y = self.regressor.predict_one(x, **kwargs)
            y = float(y) if y is not None else math.nan
        except (ArithmeticError, ValueError, TypeError):
            y = math.nan
        if not math.isfinite(y):
            return self._fallback()
        if self.clip and self._n:
            width = self._y_max - self._y_min
            y = min(max(y, self._y_min - width), self._y_max + width)
        return y if math.isfinite(y) else self._fallback()

    def learn_one(self, x: dict, y: float, **kwargs: Any) -> None:
        try:
            y = float(y)
        except (TypeError, ValueError, OverflowError):
            y = math.nan
        if not abs(y) <= MAX_ABS or not _usable(x):
            self.n_skipped += 1
            return
        try:
            self.regressor.learn_one(x, y, **kwargs)
        except ArithmeticError:
            # Overflow deep in an inner model on extreme values: count it, keep serving.
            self.n_skipped += 1
            return
        self._n += 1
        self._y_min = min(self._y_min, y)
        self._y_max = max(self._y_max, y)
        self._y_mean += (y - self._y_mean) / self._n
