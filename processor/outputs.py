"""The records the processor writes (typed in ``kappaml.records``): predictions, drift events,
dead letters, metrics."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson

from kappaml.evaluation import PrequentialMetrics
from kappaml.learner import KeyState, Served, StepResult
from kappaml.pending import quantiles
from kappaml.records import (
    CHAMPION,
    DeadLetter,
    DriftEvent,
    Example,
    KeyMetrics,
    Prediction,
    SpecFigures,
)
from kappaml.records.predictions import prediction_dict, served_dict

__all__ = ["dead_letter", "drift_event", "encode_scored_prediction", "encode_served_prediction",
           "key_metrics", "label_figures", "now_ms", "pooled", "pooled_metrics", "prediction", "spec_figures"]


def now_ms() -> int:
    return int(time.time() * 1000)


def prediction(ks: KeyState, example: Example, result: StepResult, partition: int, offset: int,
               processed_ms: int, role: str = CHAMPION) -> Prediction:
    return Prediction(
        key=ks.key, id=example.id, y_true=result.y_true, y_pred=result.y_pred, error=result.error,
        version=ks.version, spec=ks.spec, partition=partition, offset=offset, event_ts=example.ts,
        processed_ts=processed_ms, role=role, generation=result.generation,
        # A looping CSV's row seen before: not an out-of-sample error.
        pass_no=example.pass_no if example.pass_no > 1 else None,
    )


def encode_served_prediction(ks: KeyState, served: Served, partition: int, offset: int, processed_ms: int,
                             role: str = CHAMPION) -> bytes:
    """The ``ServedPrediction`` of a features record, encoded: the prediction served, before its label.

    Once per features record and spec: encoded from the field values (``served_dict``, the
    record's own ``to_dict``) without building the record.
    """
    return orjson.dumps(served_dict(
        ks.key, served.id, served.y_pred, ks.version, ks.spec, partition, offset, served.ts, processed_ms,
        role, served.generation, served.pass_no if served.pass_no > 1 else None))


def encode_scored_prediction(ks: KeyState, result: StepResult, partition: int, offset: int, processed_ms: int,
                             role: str, event_ts: int | None) -> bytes:
    """The scored ``Prediction`` of any example learned at ``offset`` (event time ``event_ts``),
    encoded: a labelled record's, or the served one a delayed label (or an expiry) completed.

    Once per learned example and spec: encoded from the field values (``prediction_dict``, the
    record's own ``to_dict``) without building the record (bench: about 2 us per message).
    """
    delayed = result.served_offset is not None
    return orjson.dumps(prediction_dict(
        ks.key, result.id if result.id is not None else "", result.y_true, result.y_pred, result.error,
        ks.version, ks.spec, partition, offset, event_ts, processed_ms, role, result.generation,
        result.pass_no if result.pass_no > 1 else None, result.delay_ms,
        result.delay_rows if delayed else None, result.served_offset, True if result.expired else None))


def drift_event(ks: KeyState, example: Example, result: StepResult, partition: int, offset: int,
                role: str, ts: int) -> DriftEvent:
    detection = result.drift
    assert detection is not None
    action = "reset" if result.reset else "alert"
    return DriftEvent(
        key=ks.key, version=ks.version, spec=ks.spec, role=role, generation=ks.generation,
        detector=detection.detector, policy=action, action=action, partition=partition, offset=offset,
        id=example.id, error_before=detection.error_before, error_after=detection.error_after,
        learned=ks.learned, event_ts=example.ts, ts=ts,
    )


def dead_letter(reason: str, *, topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes | None, detail: dict[str, Any] | None = None) -> bytes:
    """A DLQ record that keeps enough of the poison message to find and inspect it."""
    return DeadLetter.of_message(reason, topic=topic, partition=partition, offset=offset, key=key,
                                 value=value, detail=detail, ts=now_ms()).encode()


def key_metrics(ks: KeyState, ts: int, role: str = CHAMPION) -> KeyMetrics:
    labels = ks.labels.figures() if ks.labels.active else {}
    return KeyMetrics(key=ks.key, version=ks.version, spec=ks.spec, role=role, generation=ks.generation,
                      drifts=ks.drifts, learned=ks.learned, skipped=ks.skipped, last_offset=ks.last_offset,
                      ts=ts, **ks.metrics.get(), **labels)


_COUNTS = ("features_served", "labels_learned", "expired", "pending", "pending_bytes", "early_labels",
           "orphan_labels")


def label_figures(states: list[KeyState]) -> dict[str, Any]:
    """The delayed-label figures of several keys, pooled ({} when none had delayed labels).

    The delay quantiles are of every key's recent delays together.
    """
    active = [ks.labels for ks in states if ks.labels.active]
    if not active:
        return {}
    figures = [labels.figures() for labels in active]
    pooled_figures: dict[str, Any] = {name: sum(f[name] for f in figures) for name in _COUNTS}
    pooled_figures["delay_ms"] = quantiles([d for labels in active for d in labels.delays_ms])
    pooled_figures["delay_rows"] = quantiles([d for labels in active for d in labels.delays_rows])
    return pooled_figures


def pooled(states: list[KeyState]) -> dict[str, Any]:
    """Exact pooled cumulative and rolling RMSE/MAE of several keys' prequential metrics."""
    return {
        "learned": sum(ks.learned for ks in states),
        **{k: v for k, v in pooled_metrics([ks.metrics for ks in states]).items() if k != "n"},
        "drifts": sum(ks.drifts for ks in states),
    }


def spec_figures(states: list[KeyState], role: str, learn_us: float | None) -> SpecFigures:
    """One spec's line of the comparison record: its pooled figures over ``states``."""
    return SpecFigures(role=role, learn_us=learn_us, **pooled(states))


def pooled_metrics(metrics: list[PrequentialMetrics]) -> dict[str, Any]:
    """Exact pooled cumulative and rolling RMSE/MAE of several prequential tallies."""
    values = [m.get() for m in metrics]
    n = sum(v["n"] for v in values if v["n"])
    rn = sum(v["rolling_n"] for v in values if v["rolling_n"])

    def mean(weight: str, field: str, square: bool) -> float | None:
        total = n if weight == "n" else rn
        if not total:
            return None
        acc = sum(v[weight] * (v[field] ** 2 if square else v[field]) for v in values if v[weight])
        return math.sqrt(acc / total) if square else acc / total

    return {
        "n": n,
        "rmse": mean("n", "rmse", True),
        "mae": mean("n", "mae", False),
        "rolling_rmse": mean("rolling_n", "rolling_rmse", True),
        "rolling_mae": mean("rolling_n", "rolling_mae", False),
    }
