"""Rebuild one key's model from its raw records, exactly as the processor builds it.

Everything here is plain Python and pandas (no Spark), so the exact per-key logic is the
processor's: ``records.decode`` to parse, ``learner.learn_step`` to test-then-train, one record
at a time in offset order. The output is one row per input record (its prediction or why it
was not learned) plus one ``model`` row per key carrying its snapshot and summary.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from kappaml.dataset import Dataset
from kappaml.learner import KeyState, ModelError, learn_step
from kappaml.records import InvalidRecord, decode
from kappaml.snapshot import Snapshot

__all__ = ["DUPLICATE", "INPUT_COLUMNS", "INVALID", "LEARNED", "OUTPUT_SCHEMA", "KeyReplay", "OutputRows",
           "rebuild_key"]

# What the job hands over per record: the raw Kafka key bytes, its position, its value bytes.
INPUT_COLUMNS = ("key", "partition", "offset", "value")

# kind = "row": one per input record; kind = "model": one per key (snapshot + summary JSON).
OUTPUT_SCHEMA = (
    "kind string, key string, partition int, offset long, row_id string, ts long, "
    "status string, reason string, y_true double, y_pred double, snapshot binary, summary string"
)

LEARNED, DUPLICATE, INVALID = "learned", "duplicate", "invalid"
# Distinct invalid reasons counted per key; the rest are counted together.
_MAX_REASONS = 20
_OTHER_REASONS = "(other reasons)"


def _key_text(raw: Any) -> tuple[str | None, str | None]:
    """(model key, None), or (None, why the key is unusable): the processor's rules."""
    if raw is None:
        return None, None  # every record of the group then fails the key match below
    try:
        return bytes(raw).decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"key is not UTF-8: {exc}"


class OutputRows:
    """Output columns built as plain lists, one DataFrame per input batch."""

    def __init__(self) -> None:
        self.kind: list[str] = []
        self.key: list[str | None] = []
        self.partition: list[int] = []
        self.offset: list[int] = []
        self.row_id: list[str | None] = []
        self.ts: list[int | None] = []
        self.status: list[str | None] = []
        self.reason: list[str | None] = []
        self.y_true: list[float] = []
        self.y_pred: list[float] = []
        self.snapshot: list[bytes | None] = []
        self.summary: list[str | None] = []

    def row(self, key: str | None, partition: int, offset: int, status: str, *, row_id: str | None = None,
            ts: int | None = None, reason: str | None = None, y_true: float = math.nan,
            y_pred: float = math.nan) -> None:
        self.kind.append("row")
        self.key.append(key)
        self.partition.append(partition)
        self.offset.append(offset)
        self.row_id.append(row_id)
        self.ts.append(ts)
        self.status.append(status)
        self.reason.append(reason)
        self.y_true.append(y_true)
        self.y_pred.append(y_pred)
        self.snapshot.append(None)
        self.summary.append(None)

    def model(self, key: str | None, partition: int, offset: int, snapshot: bytes | None,
              summary: str) -> None:
        self.kind.append("model")
        self.key.append(key)
        self.partition.append(partition)
        self.offset.append(offset)
        for column in (self.row_id, self.ts, self.status, self.reason):
            column.append(None)
        self.y_true.append(math.nan)
        self.y_pred.append(math.nan)
        self.snapshot.append(snapshot)
        self.summary.append(summary)

    def frame(self) -> pd.DataFrame:
        def text(values: list[Any]) -> pd.Series:
            # object dtype: None stays null through Arrow, and pandas 3 would otherwise infer
            # Arrow-backed strings, which pyspark 4.2 cannot ship.
            return pd.Series(values, dtype=object)

        def floats(values: list[float]) -> pd.arrays.FloatingArray:
            array = np.asarray(values, dtype=np.float64)
            return pd.arrays.FloatingArray(array, np.isnan(array))  # NaN here means "none": null

        ts = pd.array(self.ts, dtype="Int64")
        return pd.DataFrame({
            "kind": text(self.kind), "key": text(self.key),
            "partition": np.asarray(self.partition, dtype=np.int32),
            "offset": np.asarray(self.offset, dtype=np.int64),
            "row_id": text(self.row_id), "ts": ts, "status": text(self.status),
            "reason": text(self.reason), "y_true": floats(self.y_true), "y_pred": floats(self.y_pred),
            "snapshot": text(self.snapshot), "summary": text(self.summary),
        })


class KeyReplay:
    """One (partition, key): its records are fed in offset order, one ``learn_step`` each.

    Groups are (partition, key), not key alone, because the processor's state is scoped so
    too (Quix Streams keeps a store per partition): a key found in two partitions (say, after
    the partition count grew) is two independent models there, and must be here.
    """

    def __init__(self, raw_key: Any, partition: int, dataset: Dataset, spec: str, version: str,
                 window: int = 500, end_offsets: Mapping[int, int] | None = None) -> None:
        self.partition = partition
        self._end_offsets = {str(p): int(o) for p, o in sorted((end_offsets or {}).items())}
        self.key, self._key_problem = _key_text(raw_key)
        self._dataset, self._spec, self._version, self._window = dataset, spec, version, window
        self.state: KeyState | None = None
        self.rows = 0
        self.invalid = 0
        self.reasons: Counter[str] = Counter()
        # Order-free sums of the learned rows, so the driver can pool metrics over all keys.
        self.sums = [0.0, 0.0, 0.0, 0.0]  # squared errors, absolute errors, y, y squared
        self._last_offset = -1

    def step(self, offset: int, value: Any, out: OutputRows) -> None:
        if offset <= self._last_offset:
            raise RuntimeError(f"offset {offset} of key {self.key!r} came after {self._last_offset}: "
                               "the replay needs each key's records in offset order")
        self._last_offset = offset
        self.rows += 1
        key, partition = self.key, self.partition
        if self._key_problem is not None:
            self._invalid(out, offset, self._key_problem)
            return
        try:
            example = decode(self._dataset, value)
        except InvalidRecord as exc:
            self._invalid(out, offset, exc.reason)
            return
        row_id, ts, y = str(example.id), example.ts, example.y
        if key is None or example.key != key:
            # The message key decides partition and state; a record claiming another key is bad
            # data (the processor dead-letters it with the same words).
            reason = f"record key {example.key!r} does not match the message key {key!r}"
            self._invalid(out, offset, reason, row_id=row_id, ts=ts, y_true=y)
            return
        if self.state is None:
            self.state = KeyState.new(key, self._dataset, self._spec, self._version, window=self._window)
        try:
            result = learn_step(self.state, example, offset)
        except ModelError as exc:  # the processor dead-letters these too
            self._invalid(out, offset, exc.reason, row_id=row_id, ts=ts, y_true=y)
            return
        if result is None:
            out.row(key, partition, offset, DUPLICATE, row_id=row_id, ts=ts, y_true=y)
            return
        err = result.y_pred - y
        sums = self.sums
        sums[0] += err * err
        sums[1] += abs(err)
        sums[2] += y
        sums[3] += y * y
        out.row(key, partition, offset, LEARNED, row_id=row_id, ts=ts, y_true=y, y_pred=result.y_pred)

    def _invalid(self, out: OutputRows, offset: int, reason: str, **values: Any) -> None:
        self.invalid += 1
        if reason in self.reasons or len(self.reasons) < _MAX_REASONS:
            self.reasons[reason] += 1
        else:
            self.reasons[_OTHER_REASONS] += 1
        out.row(self.key, self.partition, offset, INVALID, reason=reason, **values)

    def finish(self, out: OutputRows) -> None:
        """Add the key's model row: its summary and, if it has a model, the snapshot."""
        summary: dict[str, Any] = {"key": self.key, "partition": self.partition, "offset": -1,
                                   "rows": self.rows, "invalid": self.invalid, "learned": 0,
                                   "duplicates": 0, "reasons": dict(self.reasons),
                                   "sums": dict(zip(("se", "ae", "y", "y2"), self.sums, strict=True))}
        blob: bytes | None = None
        state = self.state
        # A state exists once a valid record arrived, as in the processor, which snapshots it
        # even if the model failed on every example (learned 0, offset -1).
        if state is not None:
            metrics = _finite(state.metrics.get())
            snapshot = Snapshot.of(
                state.model, key=state.key, version=self._version, spec=self._spec, origin="replay",
                partition=self.partition, offset=state.last_offset, learned=state.learned,
                # For a cut-over (processor --from-replay): "seen", the row ids learned, so
                # duplicates of rows learned before the cut stay skipped; "end_offsets", per raw
                # partition the pinned end of the replay, where the processor continues.
                extra={"metrics": metrics, "duplicates": state.skipped, "invalid": self.invalid,
                       "seen": state.seen.to_json(), "end_offsets": self._end_offsets},
            )
            blob = snapshot.encode()
            summary.update(offset=state.last_offset, learned=state.learned, duplicates=state.skipped,
                           fingerprint=snapshot.fingerprint, metrics=metrics)
        out.model(self.key, self.partition, summary["offset"], blob,
                  json.dumps(_finite(summary), allow_nan=False))


def rebuild_key(
    pdf: pd.DataFrame, dataset: Dataset, spec: str, version: str, window: int = 500
) -> pd.DataFrame:
    """Replay one (partition, key) group, rows in any order, into its output rows (model row last)."""
    partitions = pdf["partition"].to_numpy()
    if len(partitions) and partitions.min() != partitions.max():
        raise ValueError("rebuild_key needs the rows of one partition")
    if pdf["key"].nunique(dropna=False) > 1:
        raise ValueError("rebuild_key needs the rows of one key")
    order = np.argsort(pdf["offset"].to_numpy(), kind="stable")
    offsets = pdf["offset"].to_numpy()[order]
    values = pdf["value"].to_numpy()[order]
    replay = KeyReplay(pdf["key"].iat[0] if len(pdf) else None, int(partitions[0]) if len(pdf) else 0,
                       dataset, spec, version, window)
    out = OutputRows()
    for offset, value in zip(offsets.tolist(), values, strict=True):
        replay.step(offset, value, out)
    replay.finish(out)
    return out.frame()


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
