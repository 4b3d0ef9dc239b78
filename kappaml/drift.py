"""Drift detection on a model's prequential absolute error.

A :class:`DriftMonitor` feeds every absolute error to a River drift detector and reports a
:class:`Detection` when the error level has *risen*. A falling error (the model learning, or
the world becoming easier) is a change too, but no reason to alert anyone: River's detectors
flag both directions, so the monitor keeps only the rises.

The monitor lives in the key's :class:`kappaml.learner.KeyState`, is pickled with it and is
updated by :func:`kappaml.learner.learn_step`, so the live processor and the Spark replay see
the same detections at the same offsets.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from river import drift

from kappaml.gate import GateConfig

__all__ = ["DETECTORS", "POLICIES", "Detection", "DriftConfig", "DriftMonitor"]

Policy = Literal["alert", "reset", "background"]
POLICIES: tuple[str, ...] = ("alert", "reset", "background")


def _adwin() -> Any:
    return drift.ADWIN()


def _page_hinkley() -> Any:
    # mode="up": only rises of the error count. Threshold 100 (of relative error, see
    # DriftMonitor.update): with the default 50, shuffled CO2 data raised false alarms.
    return drift.PageHinkley(mode="up", threshold=100)


CAP = 6.0  # measured on the CO2 data: see docs/lifecycle.md, "Drift"

DETECTORS = {"adwin": _adwin, "page-hinkley": _page_hinkley}


@dataclass(frozen=True)
class DriftConfig:
    """Which detector watches each model, and what happens when it fires.

    ``policy="alert"`` only publishes the detection; ``"reset"`` also starts the key's model
    afresh from the next example (a new model generation); ``"background"`` starts a fresh
    model beside it, which takes over when ``gate`` finds it better (kappaml/background.py).
    ``warmup``: examples learned before the detector starts, because a new model's errors fall
    steeply and that fall is no drift.
    ``recent``: how many of the latest errors make the "error after" level of a detection.
    """

    detector: str = "adwin"
    policy: Policy = "alert"
    warmup: int = 100
    recent: int = 30
    cap: float = CAP
    gate: GateConfig = field(default_factory=GateConfig)  # policy background: when it takes over

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown drift detector {self.detector!r}; choose one of {sorted(DETECTORS)}")
        if self.policy not in POLICIES:
            raise ValueError(f"unknown drift policy {self.policy!r}; choose one of {list(POLICIES)}")
        if self.warmup < 0 or self.recent < 1:
            raise ValueError(f"warmup must be >= 0 and recent >= 1, got {self.warmup}, {self.recent}")
        if not self.cap > 1.0:
            raise ValueError(f"cap must be > 1 (a multiple of the error level), got {self.cap}")


@dataclass(frozen=True)
class Detection:
    detector: str
    error_before: float  # mean absolute error since the previous detection (or the warm-up)
    error_after: float  # mean absolute error of the latest ``recent`` examples
    seen: int  # errors the monitor has been given, this one included


class DriftMonitor:
    """``update(abs_error)`` for every example; a :class:`Detection` when the error rose."""

    def __init__(self, config: DriftConfig) -> None:
        self.config = config
        self.detector = DETECTORS[config.detector]()
        self.seen = 0
        self._recent: deque[float] = deque(maxlen=config.recent)
        self._segment_sum = 0.0
        self._segment_n = 0

    def update(self, abs_error: float) -> Detection | None:
        self.seen += 1
        if self.seen <= self.config.warmup:
            return None
        self._recent.append(abs_error)
        level = self._segment_sum / self._segment_n if self._segment_n >= self.config.recent else None
        self._segment_sum += abs_error
        self._segment_n += 1
        if level is None or level <= 0.0:
            return None  # the level of this segment is not known yet
        # The detector sees the error relative to the current level, capped: absolute errors
        # are heavy-tailed (one odd example can be off by 20 times the usual error), and
        # capped, a lone outlier cannot fake a change of the mean, while a real rise, many
        # errors well above the old level, still shows. Relative, the detectors' thresholds
        # mean the same on any target's scale (Page-Hinkley's are absolute).
        self.detector.update(min(abs_error / level, self.config.cap))
        if not self.detector.drift_detected:
            return None
        recent_sum = sum(self._recent)
        before_n = self._segment_n - len(self._recent)
        before = ((self._segment_sum - recent_sum) / before_n if before_n > 0
                  else self._segment_sum / self._segment_n)
        after = recent_sum / len(self._recent)
        # The next segment starts with the recent errors: they belong to the new level.
        self._segment_sum, self._segment_n = recent_sum, len(self._recent)
        if after <= before:
            return None
        return Detection(self.config.detector, before, after, self.seen)

    def restart(self) -> None:
        """Forget everything: the model it watches was replaced by a fresh one."""
        self.__init__(self.config)  # type: ignore[misc]
