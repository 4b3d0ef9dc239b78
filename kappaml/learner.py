"""One prequential step for one key: skip duplicates, predict, then learn, then score.

The live processor and the Spark replay both call :func:`learn_step` on a :class:`KeyState`,
so the two cannot drift apart: the same examples in the same order give the same model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from kappaml.compat import STATE_CODE
from kappaml.dataset import Dataset
from kappaml.drift import Detection, DriftConfig, DriftMonitor
from kappaml.evaluation import PrequentialMetrics
from kappaml.models import build_model
from kappaml.records import Example, InvalidRecord
from kappaml.seen import SeenIds

__all__ = ["STATE_CODE", "IncompatibleState", "KeyState", "ModelError", "StepResult", "learn_step"]


class IncompatibleState(RuntimeError):
    """A stored state was pickled by other model code (kappaml/compat.py); it cannot be trusted."""


class ModelError(InvalidRecord):
    """The model raised on this example: it goes where invalid records go, with the reason.

    A subclass of ``InvalidRecord`` so the processor and the replay route it the same way.
    """


@dataclass
class KeyState:
    """Everything derived from one key's events: the model, its metrics, what it has learned."""

    key: str
    spec: str
    version: str
    model: Any
    metrics: PrequentialMetrics = field(default_factory=PrequentialMetrics)
    seen: SeenIds = field(default_factory=SeenIds)
    learned: int = 0
    skipped: int = 0
    last_offset: int = -1
    code: str = ""
    drift: DriftMonitor | None = None
    # 0 for the first model; +1 each time the drift policy "reset" replaced it by a fresh one.
    generation: int = 0
    drifts: int = 0  # drift detections so far

    @classmethod
    def new(cls, key: str, dataset: Dataset, spec: str, version: str, window: int = 500,
            drift: DriftConfig | None = None) -> KeyState:
        return cls(key=key, spec=spec, version=version, model=build_model(spec, dataset),
                   metrics=PrequentialMetrics(window=window), code=STATE_CODE,
                   drift=DriftMonitor(drift) if drift is not None else None)

    def check_compatible(self) -> None:
        if self.code != STATE_CODE:
            raise IncompatibleState(
                f"the stored state of key {self.key!r} (version {self.version}) was written by other "
                f"model code ({self.code or 'unknown'}, now {STATE_CODE}); run the new code as a new "
                "--model-version, which rebuilds its models from the log"
            )


@dataclass(frozen=True)
class StepResult:
    y_true: float
    y_pred: float
    # A rise of the error level found by the key's drift monitor at this example, if any.
    drift: Detection | None = None
    reset: bool = False  # the drift policy replaced the model after this example
    generation: int = 0  # of the model that made the prediction

    @property
    def error(self) -> float:
        return self.y_pred - self.y_true


def learn_step(state: KeyState, example: Example, offset: int) -> StepResult | None:
    """Test-then-train on one example; None when its row id was already learned from its
    stream (skipped): the same row id from another stream (another file) is new data."""
    seen = state.seen.scope(example.stream)
    if example.id in seen:
        state.skipped += 1
        return None
    try:
        y_pred = state.model.predict_one(example.x)
        # Some River models answer None before their first example: score that as 0 so the
        # prequential metric stays defined and identical in the processor and the replay.
        y_pred = float(y_pred) if y_pred is not None and math.isfinite(y_pred) else 0.0
        state.model.learn_one(example.x, example.y)
    except Exception as exc:  # any model failure is reported, never fatal
        raise ModelError(f"model {state.spec} failed: {type(exc).__name__}: {exc}") from exc
    state.metrics.update(example.y, y_pred)
    seen.add(example.id)
    state.learned += 1
    state.last_offset = offset
    detection = state.drift.update(abs(y_pred - example.y)) if state.drift is not None else None
    if detection is not None:
        state.drifts += 1
    reset = detection is not None and state.drift is not None and state.drift.config.policy == "reset"
    generation = state.generation
    if reset:
        # clone(): the same model spec and parameters, nothing learned; the drift monitor
        # starts over too, warm-up included, since a fresh model's errors fall steeply.
        state.model = state.model.clone()
        state.generation += 1
        state.drift.restart()  # type: ignore[union-attr]
    return StepResult(y_true=example.y, y_pred=y_pred, drift=detection, reset=reset, generation=generation)

