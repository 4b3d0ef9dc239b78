"""The records the processor writes: predictions, dead letters, metrics, model snapshots."""

from __future__ import annotations

import base64
import json
import math
import time
from typing import Any

from kappaml.evaluation import PrequentialMetrics
from kappaml.learner import KeyState, StepResult
from kappaml.records import Example

__all__ = ["dead_letter", "drift_event", "key_metrics", "now_ms", "pooled", "pooled_metrics", "prediction"]

_MAX_PAYLOAD = 2048


def now_ms() -> int:
    return int(time.time() * 1000)


def prediction(ks: KeyState, example: Example, result: StepResult, partition: int, offset: int,
               processed_ms: int, role: str = "champion") -> dict[str, Any]:
    record = _prediction(ks, example, result, partition, offset, processed_ms, role)
    if example.pass_no > 1:  # a looping CSV's row seen before: not an out-of-sample error
        record["pass"] = example.pass_no
    return record


def _prediction(ks: KeyState, example: Example, result: StepResult, partition: int, offset: int,
                processed_ms: int, role: str) -> dict[str, Any]:
    return {
        "key": ks.key,
        "id": example.id,
        "y_true": result.y_true,
        "y_pred": result.y_pred,
        "error": result.error,
        "version": ks.version,
        "spec": ks.spec,
        "partition": partition,
        "offset": offset,
        "event_ts": example.ts,
        "processed_ts": processed_ms,
        "role": role,
        "generation": result.generation,
    }


def drift_event(ks: KeyState, example: Example, result: StepResult, partition: int, offset: int,
                role: str, ts: int) -> dict[str, Any]:
    detection = result.drift
    assert detection is not None
    return {
        "key": ks.key,
        "version": ks.version,
        "spec": ks.spec,
        "role": role,
        "generation": ks.generation,
        "detector": detection.detector,
        "policy": "reset" if result.reset else "alert",
        "action": "reset" if result.reset else "alert",
        "partition": partition,
        "offset": offset,
        "id": example.id,
        "error_before": detection.error_before,
        "error_after": detection.error_after,
        "learned": ks.learned,
        "event_ts": example.ts,
        "ts": ts,
    }


def dead_letter(reason: str, *, topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes | None, detail: dict[str, Any] | None = None) -> bytes:
    """A DLQ record that keeps enough of the poison message to find and inspect it."""
    payload = value or b""
    try:
        shown: str = payload[:_MAX_PAYLOAD].decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        shown = base64.b64encode(payload[:_MAX_PAYLOAD]).decode()
        encoding = "base64"
    record = {
        "stage": "processor",
        "reason": reason,
        "detail": detail or {},
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "key": key.decode("utf-8", "replace") if key is not None else None,
        "value": shown,
        "value_encoding": encoding,
        "value_bytes": len(payload),
        "truncated": len(payload) > _MAX_PAYLOAD,
        "ts": now_ms(),
    }
    return json.dumps(record).encode()


def key_metrics(ks: KeyState, ts: int, role: str = "champion") -> dict[str, Any]:
    return {
        "scope": "key",
        "key": ks.key,
        "version": ks.version,
        "spec": ks.spec,
        "role": role,
        "generation": ks.generation,
        "drifts": ks.drifts,
        "learned": ks.learned,
        "skipped": ks.skipped,
        "last_offset": ks.last_offset,
        **ks.metrics.get(),
        "ts": ts,
    }


def pooled(states: list[KeyState]) -> dict[str, Any]:
    """Exact pooled cumulative and rolling RMSE/MAE of several keys' prequential metrics."""
    return {
        "learned": sum(ks.learned for ks in states),
        **{k: v for k, v in pooled_metrics([ks.metrics for ks in states]).items() if k != "n"},
        "drifts": sum(ks.drifts for ks in states),
    }


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
