"""Prequential (test-then-train) regression metrics: cumulative and over a rolling window.

Plain running sums, no clocks and no randomness, so a replay that scores the same
predictions in the same order reports the same numbers; the object pickles with the model.
Targets are shifted by the first target seen before squaring so R2 keeps its precision when
the target's mean is large relative to its spread. The rolling sums are recomputed exactly
from the window every ``window`` updates so subtraction drift cannot build up.

Pairs with a non-finite (or None) prediction or target are not scored: they are counted in
``invalid`` instead of poisoning every later value.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

__all__ = ["PrequentialMetrics"]


class _Sums:
    __slots__ = ("n", "se", "ae", "dy", "dy2")

    def __init__(self) -> None:
        self.n = 0
        self.se = 0.0  # squared errors
        self.ae = 0.0  # absolute errors
        self.dy = 0.0  # shifted targets
        self.dy2 = 0.0  # squared shifted targets

    def add(self, err: float, dy: float, sign: float = 1.0) -> None:
        self.n += 1 if sign > 0 else -1
        self.se += sign * err * err
        self.ae += sign * abs(err)
        self.dy += sign * dy
        self.dy2 += sign * dy * dy

    def rmse(self) -> float | None:
        return math.sqrt(max(self.se, 0.0) / self.n) if self.n else None

    def mae(self) -> float | None:
        return max(self.ae, 0.0) / self.n if self.n else None

    def r2(self) -> float | None:
        if self.n < 2:
            return None
        sst = self.dy2 - self.dy * self.dy / self.n
        # A constant target has no variance to explain.
        if not sst > 1e-12 * max(self.dy2, 1e-300):
            return None
        return 1.0 - self.se / sst

    def __getstate__(self) -> tuple[int, float, float, float, float]:
        return (self.n, self.se, self.ae, self.dy, self.dy2)

    def __setstate__(self, state: tuple[int, float, float, float, float]) -> None:
        self.n, self.se, self.ae, self.dy, self.dy2 = state


class PrequentialMetrics:
    """RMSE, MAE and R2 of (y_true, y_pred) pairs, cumulative and over the last ``window``."""

    def __init__(self, window: int = 500) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        self.window = window
        self.invalid = 0
        self._shift: float | None = None
        self._total = _Sums()
        self._rolling = _Sums()
        self._recent: deque[tuple[float, float]] = deque(maxlen=window)  # (err, shifted y)
        self._since_resum = 0

    @property
    def n(self) -> int:
        return self._total.n

    def update(self, y_true: float, y_pred: float | None) -> bool:
        """Score one pair; False (and ``invalid`` += 1) when either value is not a finite number."""
        try:
            y = float(y_true)
            p = float(y_pred)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            self.invalid += 1
            return False
        err = p - y
        if not (math.isfinite(y) and math.isfinite(p) and math.isfinite(err * err)):
            self.invalid += 1
            return False
        if self._shift is None:
            self._shift = y
        dy = y - self._shift
        # _Sums.add written out: this runs twice per message (the key's metrics and the served
        # ones), and the calls cost more than the sums. Same operations in the same order, so
        # the same floats as add(): x + (-a) is x - a, and 1.0 * a is a, exactly.
        se, ae, dy2 = err * err, abs(err), dy * dy
        total, rolling, recent = self._total, self._rolling, self._recent
        total.n += 1
        total.se += se
        total.ae += ae
        total.dy += dy
        total.dy2 += dy2
        if len(recent) == self.window:
            old_err, old_dy = recent[0]
            rolling.n -= 1
            rolling.se -= old_err * old_err
            rolling.ae -= abs(old_err)
            rolling.dy -= old_dy
            rolling.dy2 -= old_dy * old_dy
        recent.append((err, dy))
        rolling.n += 1
        rolling.se += se
        rolling.ae += ae
        rolling.dy += dy
        rolling.dy2 += dy2
        self._since_resum += 1
        if self._since_resum >= self.window:
            self._resum()
        return True

    def _resum(self) -> None:
        sums = _Sums()
        for err, dy in self._recent:
            sums.add(err, dy)
        self._rolling = sums
        self._since_resum = 0

    def get(self) -> dict[str, Any]:
        """JSON-ready values; a metric that is not defined yet is None."""
        total, rolling = self._total, self._rolling
        return {
            "n": total.n,
            "invalid": self.invalid,
            "rmse": total.rmse(),
            "mae": total.mae(),
            "r2": total.r2(),
            "window": self.window,
            "rolling_n": rolling.n,
            "rolling_rmse": rolling.rmse(),
            "rolling_mae": rolling.mae(),
            "rolling_r2": rolling.r2(),
        }

    def __repr__(self) -> str:
        values = self.get()
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        return f"PrequentialMetrics({shown})"
