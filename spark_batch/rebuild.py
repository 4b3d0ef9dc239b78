"""Rebuild one key's model from its raw records: the function Spark runs per key group.

Everything here is plain Python and pandas (no Spark), so the exact per-key logic is the
processor's: ``records.decode`` to parse, ``learner.learn_step`` to test-then-train, one record
at a time in offset order. The output is one row per input record (its prediction or why it
was not learned) plus one ``model`` row carrying the key's snapshot and summary.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kappaml.dataset import Dataset
from kappaml.learner import KeyState, ModelError, learn_step
from kappaml.logging import configure_logging, get_logger
from kappaml.records import InvalidRecord, decode
from kappaml.snapshot import Snapshot

__all__ = ["INPUT_COLUMNS", "OUTPUT_SCHEMA", "KeyRebuild", "rebuild_key"]

# What the job hands over per record: the raw Kafka key bytes, its position, its value bytes.
INPUT_COLUMNS = ("key", "partition", "offset", "value")

# kind = "row": one per input record; kind = "model": one per key (snapshot + summary JSON).
OUTPUT_SCHEMA = (
    "kind string, key string, partition int, offset long, row_id string, ts long, "
    "status string, reason string, y_true double, y_pred double, snapshot binary, summary string"
)

LEARNED, DUPLICATE, INVALID = "learned", "duplicate", "invalid"
_PROGRESS_EVERY_S = 5.0


def _key_text(raw: Any) -> tuple[str | None, str | None]:
    """(model key, None), or (None, why the key is unusable): the processor's rules."""
    if raw is None:
        return None, None  # every record of the group then fails the key match below
    try:
        return bytes(raw).decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"key is not UTF-8: {exc}"


class _WorkerProgress:
    """Per Python worker: keys and rows finished, logged every few seconds (not per key)."""

    def __init__(self) -> None:
        self.keys = 0
        self.rows = 0
        self.last = time.monotonic()
        self.configured = False

    def done(self, log_level: str, log_json: bool | None, keys_total: int, rows: int) -> None:
        if not self.configured:
            configure_logging(log_level, json=log_json)
            self.configured = True
        self.keys += 1
        self.rows += rows
        now = time.monotonic()
        if now - self.last >= _PROGRESS_EVERY_S or keys_total <= 1:
            self.last = now
            get_logger("spark_batch.worker").info(
                "replay progress (this worker)", keys_done=self.keys, keys_total=keys_total,
                rows_done=self.rows,
            )


_progress = _WorkerProgress()


@dataclass(frozen=True)
class KeyRebuild:
    """The per-key function, picklable for Spark: ``applyInPandas(KeyRebuild(...).as_udf(), ...)``."""

    dataset: Dataset
    spec: str
    version: str
    window: int = 500
    keys_total: int = 0
    log_level: str = "INFO"
    log_json: bool | None = None

    def __call__(self, pdf: pd.DataFrame) -> pd.DataFrame:
        out = rebuild_key(pdf, self.dataset, self.spec, self.version, self.window)
        _progress.done(self.log_level, self.log_json, self.keys_total, len(pdf))
        return out

    def as_udf(self) -> Callable[[pd.DataFrame], pd.DataFrame]:
        """A plain one-argument function: pyspark counts ``self`` in a callable object's
        arguments and would then pass the grouping key as well."""

        def rebuild_group(pdf: pd.DataFrame) -> pd.DataFrame:
            return self(pdf)

        return rebuild_group


def rebuild_key(
    pdf: pd.DataFrame, dataset: Dataset, spec: str, version: str, window: int = 500
) -> pd.DataFrame:
    """Replay one group (one Kafka key in one partition, rows in any order) into its output rows.

    Groups are (partition, key), not key alone, because the processor's state is scoped so too
    (Quix Streams keeps a store per partition): a key found in two partitions (say, after the
    partition count grew) is two independent models there, and must be here.
    """
    # Plain numpy from here on: pandas' per-call overhead is paid once per key, and a job
    # may have a million keys.
    partitions = pdf["partition"].to_numpy()
    if len(partitions) and partitions.min() != partitions.max():
        raise ValueError("rebuild_key needs the rows of one partition")
    order = np.argsort(pdf["offset"].to_numpy(), kind="stable")
    offsets = pdf["offset"].to_numpy()[order]
    values = pdf["value"].to_numpy()[order]
    raw_key = pdf["key"].iat[0] if len(pdf) else None
    key, key_problem = _key_text(raw_key)

    n = len(pdf)
    row_ids: list[str | None] = [None] * n
    ts: list[int | None] = [None] * n
    status: list[str] = [INVALID] * n
    reason: list[str | None] = [None] * n
    y_true: list[float | None] = [None] * n
    y_pred: list[float | None] = [None] * n

    partition = int(partitions[0]) if n else -1
    state: KeyState | None = None
    invalid = 0
    for i in range(n):
        offset = int(offsets[i])
        if key_problem is not None:
            reason[i] = key_problem
            invalid += 1
            continue
        try:
            example = decode(dataset, values[i])
        except InvalidRecord as exc:
            reason[i] = exc.reason
            invalid += 1
            continue
        row_ids[i] = str(example.id)
        ts[i] = example.ts
        y_true[i] = example.y
        if key is None or example.key != key:
            # The message key decides partition and state; a record claiming another key is bad
            # data (the processor dead-letters it with the same words).
            reason[i] = f"record key {example.key!r} does not match the message key {key!r}"
            invalid += 1
            continue
        if state is None:
            state = KeyState.new(key, dataset, spec, version, window=window)
        try:
            result = learn_step(state, example, offset)
        except ModelError as exc:  # the processor dead-letters these too
            reason[i] = exc.reason
            invalid += 1
            continue
        if result is None:
            status[i] = DUPLICATE
            continue
        status[i] = LEARNED
        y_pred[i] = result.y_pred

    summary: dict[str, Any] = {
        "key": key,
        "rows": n,
        "partition": partition,
        "offset": -1,
        "invalid": invalid,
        "learned": 0,
        "duplicates": 0,
    }
    blob: bytes | None = None
    # A state exists once a valid record arrived, as in the processor, which snapshots it even
    # if the model failed on every example (learned 0, offset -1).
    if state is not None:
        metrics = _finite(state.metrics.get())
        snapshot = Snapshot.of(
            state.model, key=state.key, version=version, spec=spec, origin="replay",
            partition=partition, offset=state.last_offset, learned=state.learned,
            extra={"metrics": metrics, "duplicates": state.skipped, "invalid": invalid},
        )
        blob = snapshot.encode()
        summary.update(offset=state.last_offset, learned=state.learned, duplicates=state.skipped,
                       fingerprint=snapshot.fingerprint, metrics=metrics)

    # The model row goes last, after one row per record.
    def column(values: list[Any], last: Any = None) -> np.ndarray:
        # None stays null through Arrow.
        out = np.empty(n + 1, dtype=object)
        out[:n] = values
        out[n] = last
        return out

    # dtype=object for every column: Arrow converts each to the declared Spark type anyway,
    # and it keeps pandas 3 from inferring Arrow-backed strings, which pyspark 4.2 cannot ship.
    return pd.DataFrame({
        "kind": column(["row"] * n, "model"),
        "key": column([key] * n, key),
        "partition": column([partition] * n, partition),
        "offset": column(offsets.tolist(), summary["offset"]),
        "row_id": column(row_ids),
        "ts": column(ts),
        "status": column(status),
        "reason": column(reason),
        "y_true": column(y_true),
        "y_pred": column(y_pred),
        "snapshot": column([None] * n, blob),
        "summary": column([None] * n, json.dumps(_finite(summary), allow_nan=False)),
    }, dtype=object, copy=False)


def _finite(value: Any) -> Any:
    """JSON-ready: NaN/inf (e.g. R2 of one sample) become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
