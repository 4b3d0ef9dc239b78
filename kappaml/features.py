"""Feature roles from a declaration, and a River transformer that encodes them for dict models.

``FeatureRoles`` splits a Dataset's features by kind so a model never names a column.
``InteractionEncoder`` turns an example's ``x`` into the all-numeric dict River's linear
models and trees expect: numerics and booleans pass through, a categorical value becomes a
one-hot key ``"name=value"``, and (optionally) every numeric is multiplied by every active
indicator (boolean or one-hot level), which lets a linear model learn one slope per group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from river import base

from kappaml.dataset import Dataset

__all__ = ["FeatureRoles", "InteractionEncoder", "feature_lists"]


@dataclass(frozen=True)
class FeatureRoles:
    numeric: tuple[str, ...]
    indicators: tuple[str, ...]
    categorical: tuple[str, ...]

    @classmethod
    def of(cls, dataset: Dataset) -> FeatureRoles:
        def names(kind: str) -> tuple[str, ...]:
            return tuple(f.name for f in dataset.features if f.kind == kind)

        return cls(numeric=names("numeric"), indicators=names("boolean"), categorical=names("categorical"))


def _number(value: object) -> float:
    """A finite float, or 0.0 (River's "absent") for anything else."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def feature_lists(
    numeric: Sequence[str], indicators: Sequence[str], categorical: Sequence[str]
) -> tuple[list[str], list[str], list[str]]:
    """The three name lists of a feature-aware model, each name under exactly one kind.

    Lists, not tuples: River's parameter introspection (clone, repr) reads a tuple
    parameter as a (class, params) pair and fails on an empty one.
    """
    lists = list(numeric), list(indicators), list(categorical)
    names = [n for names in lists for n in names]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"features listed under two kinds or twice: {dupes}")
    return lists


class InteractionEncoder(base.Transformer):
    """Stateless encoder: numerics, indicators, one-hot categoricals and their products."""

    def __init__(
        self,
        numeric: Sequence[str] = (),
        indicators: Sequence[str] = (),
        categorical: Sequence[str] = (),
        interactions: bool = True,
    ) -> None:
        self.numeric, self.indicators, self.categorical = feature_lists(numeric, indicators, categorical)
        self.interactions = bool(interactions)

    def transform_one(self, x: dict) -> dict:
        out: dict[str, float] = {}
        for name in self.numeric:
            out[name] = _number(x.get(name, 0.0))
        active: list[str] = []
        for name in self.indicators:
            value = _number(x.get(name, 0.0))
            out[name] = value
            if value != 0.0:
                active.append(name)
        for name in self.categorical:
            level = x.get(name)
            if level is not None:
                key = f"{name}={level}"
                out[key] = 1.0
                active.append(key)
        if self.interactions:
            for group in active:
                weight = out[group]
                for name in self.numeric:
                    out[f"{name}*{group}"] = out[name] * weight
        return out
