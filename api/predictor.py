"""One prediction from the replica's newest snapshot of (label, key), or the declared fallback."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from api.replica import Replica
from api.settings import Fallback
from kappaml.dataset import Dataset
from kappaml.fingerprint import fingerprint
from kappaml.models import build_model
from kappaml.snapshot import parse_label

__all__ = ["Answer", "NoModel", "Predictor"]


class NoModel(LookupError):
    """Nothing may answer for (label, key): the label is unknown, or the fallback is reject."""

    def __init__(self, label: str, key: str | None) -> None:
        super().__init__(label, key)
        self.label, self.key = label, key


@dataclass(frozen=True)
class Answer:
    prediction: float
    key: str
    version: str
    spec: str
    generation: int
    offset: int  # last raw-topic offset the model learned (-1: nothing yet)
    fingerprint: str
    staleness_ms: int | None  # since the processor's checkpoint that made the snapshot


@dataclass(frozen=True)
class _Fresh:
    model: Any
    fingerprint: str


class Predictor:
    """``answer(label, key, x)``: see the module docstring; ``NoModel`` when nothing may answer."""

    def __init__(self, dataset: Dataset, replica: Replica, default_version: str, default_spec: str,
                 fallback: Fallback) -> None:
        self.dataset, self.replica = dataset, replica
        self.default_version, self.default_spec, self.fallback = default_version, default_spec, fallback
        self._fresh: dict[str, _Fresh] = {}

    def answer(self, label: str, key: str, x: dict[str, float | str]) -> Answer:
        served = self.replica.get(label, key)
        if served is None:
            return self._fallback(label, key, x)
        snap = served.snapshot
        return Answer(prediction=_number(snap.model.predict_one(x)), key=key, version=snap.version,
                      spec=snap.spec, generation=int(snap.extra.get("generation", 0)), offset=snap.offset,
                      fingerprint=snap.fingerprint,
                      staleness_ms=max(0, int(time.time() * 1000) - snap.created_at))

    def _fallback(self, label: str, key: str, x: dict[str, float | str]) -> Answer:
        version, spec, _origin = parse_label(label)
        if self.fallback == "reject":
            raise NoModel(label, key)
        spec = spec or self.replica.spec_of(label) or (self.default_spec if label == self.default_version
                                                       else "")
        if not spec:
            raise NoModel(label, None)
        fresh = self._fresh.get(spec)
        if fresh is None:
            model = build_model(spec, self.dataset)
            fresh = self._fresh[spec] = _Fresh(model, fingerprint(model))
        # A clone per answer: predicting may touch a model's lazily built state.
        prediction = _number(fresh.model.clone().predict_one(x))
        return Answer(prediction=prediction, key=key, version=version, spec=spec, generation=0, offset=-1,
                      fingerprint=fresh.fingerprint, staleness_ms=None)


def _number(value: Any) -> float:
    # The processor scores a model's None or non-finite answer as 0 (kappaml.learner): the same here.
    if value is None:
        return 0.0
    number = float(value)
    return number if math.isfinite(number) else 0.0
