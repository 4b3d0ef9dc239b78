"""The records the processor writes: predictions, dead letters, metrics, model snapshots."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from kappaml.learner import KeyState, StepResult
from kappaml.records import Example

__all__ = ["dead_letter", "key_metrics", "now_ms", "prediction"]

_MAX_PAYLOAD = 2048


def now_ms() -> int:
    return int(time.time() * 1000)


def prediction(ks: KeyState, example: Example, result: StepResult, partition: int, offset: int,
               processed_ms: int) -> dict[str, Any]:
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


def key_metrics(ks: KeyState, ts: int) -> dict[str, Any]:
    return {
        "scope": "key",
        "key": ks.key,
        "version": ks.version,
        "spec": ks.spec,
        "learned": ks.learned,
        "skipped": ks.skipped,
        "last_offset": ks.last_offset,
        **ks.metrics.get(),
        "ts": ts,
    }
