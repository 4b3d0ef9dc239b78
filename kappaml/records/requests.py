"""Prediction requests and labels checked against a data set's declaration (the API's input).

A request's features are checked by the same rules as a raw-topic record: the features become
a labelled-shaped record (a placeholder target) and go through ``decoding``'s checked path, so
the API refuses exactly what the processor would, with the same reasons. Only what a record
cannot say is checked here: an unknown field, a target among the features, a missing key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kappaml.dataset import GLOBAL_KEY, Dataset
from kappaml.example import InvalidRecord
from kappaml.records.decoding import _extract_checked, _json_number

__all__ = ["CheckedFeatures", "check_features", "check_label"]

# Stands in for the target, which a prediction request never has: any finite number passes.
_PLACEHOLDER_TARGET = 0.0


@dataclass(frozen=True)
class CheckedFeatures:
    """A valid request: its model key, the model's input ``x`` and the typed row to log."""

    key: str
    x: dict[str, float | str]
    row: dict[str, Any]


def _request_key(dataset: Dataset, key: Any, features: Mapping[str, Any]) -> str:
    if key is not None and (not isinstance(key, str) or not key):
        raise InvalidRecord("key must be a non-empty string", column="key", value=key)
    if dataset.key is None:
        if key is not None and key != GLOBAL_KEY:
            raise InvalidRecord(f"data set {dataset.name!r} has one global model: omit key or send "
                                f"{GLOBAL_KEY!r}", column="key", value=key)
        return GLOBAL_KEY
    if dataset.key in features:
        if key is not None and key != str(features[dataset.key]):
            raise InvalidRecord(f"key {key!r} does not match the features' {dataset.key!r}",
                                column="key", value=key)
        return str(features[dataset.key])
    if key is None:
        raise InvalidRecord(f"key is required: data set {dataset.name!r} has one model per "
                            f"{dataset.key!r} (send key, or {dataset.key!r} among the features)",
                            column="key")
    return key


def check_features(dataset: Dataset, features: Any, key: Any = None) -> CheckedFeatures:
    """The checked features of one request; ``InvalidRecord`` naming the field and the reason."""
    if not isinstance(features, Mapping):
        raise InvalidRecord("features must be a JSON object", column="features",
                            value=type(features).__name__)
    model_key = _request_key(dataset, key, features)
    declared = set(dataset.feature_names)
    if dataset.key is not None:
        declared.add(dataset.key)
    if dataset.target in features:
        raise InvalidRecord("the target is not a feature: post it to /labels once it is known",
                            column=dataset.target)
    unknown = sorted(str(name) for name in features if name not in declared)
    if unknown:
        raise InvalidRecord(f"not a declared feature of data set {dataset.name!r} (declared: "
                            f"{', '.join(dataset.feature_names)})", column=unknown[0])
    row = {name: features[name] for name in dataset.feature_names if name in features}
    if dataset.key is not None:
        row[dataset.key] = model_key
    example = _extract_checked(dataset, {"id": 0, "key": model_key,
                                         "row": {**row, dataset.target: _PLACEHOLDER_TARGET}})
    return CheckedFeatures(key=model_key, x=example.x, row=row)


def check_label(dataset: Dataset, record_id: Any, key: Any, target: Any) -> tuple[str, str, float]:
    """(id, model key, target) of one label; ``InvalidRecord`` naming the field and the reason."""
    if not isinstance(record_id, str) or not record_id or len(record_id) > 128:
        raise InvalidRecord("id must be the non-empty string /predict answered (at most 128 characters)",
                            column="id", value=record_id)
    if key is None and dataset.key is None:
        key = GLOBAL_KEY
    if not isinstance(key, str) or not key:
        raise InvalidRecord("key must be a non-empty string", column="key", value=key)
    if dataset.key is None and key != GLOBAL_KEY:
        raise InvalidRecord(f"data set {dataset.name!r} has one global model: omit key or send "
                            f"{GLOBAL_KEY!r}", column="key", value=key)
    return record_id, key, _json_number(target, "target", "target")
