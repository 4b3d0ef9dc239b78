"""Rebuild each key's model from its raw records: the function Spark runs on its workers.

Everything here is plain Python and pandas (no Spark), so the exact per-key logic is the
processor's: ``records.decode`` to parse, ``learner.learn_step`` to test-then-train, one record
at a time in offset order. The output is one row per input record (its prediction or why it
was not learned) plus one ``model`` row per key carrying its snapshot and summary.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kappaml.dataset import Dataset
from kappaml.learner import KeyState, ModelError, learn_step
from kappaml.logging import configure_logging, get_logger
from kappaml.records import InvalidRecord, decode
from kappaml.snapshot import Snapshot

__all__ = ["INPUT_COLUMNS", "OUTPUT_SCHEMA", "KeyReplay", "StreamRebuild", "rebuild_key"]

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


class _Rows:
    """Output columns built as plain lists, one DataFrame per batch (pandas costs per call)."""

    NAMES = ("kind", "key", "partition", "offset", "row_id", "ts", "status", "reason", "y_true",
             "y_pred", "snapshot", "summary")

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {name: [] for name in self.NAMES}

    def __len__(self) -> int:
        return len(self.cols["kind"])

    def add(self, **values: Any) -> None:
        for name, column in self.cols.items():
            column.append(values.get(name))

    def frame(self) -> pd.DataFrame:
        # dtype=object for every column: Arrow converts each to the declared Spark type (None
        # becomes null), and pandas 3 would otherwise infer Arrow-backed strings, which
        # pyspark 4.2 cannot ship.
        n = len(self)
        arrays = {}
        for name, column in self.cols.items():
            arr = np.empty(n, dtype=object)
            arr[:] = column
            arrays[name] = arr
        return pd.DataFrame(arrays, dtype=object, copy=False)


class KeyReplay:
    """One (partition, key): its records are fed in offset order, one ``learn_step`` each.

    Groups are (partition, key), not key alone, because the processor's state is scoped so
    too (Quix Streams keeps a store per partition): a key found in two partitions (say, after
    the partition count grew) is two independent models there, and must be here.
    """

    def __init__(self, raw_key: Any, partition: int, dataset: Dataset, spec: str, version: str,
                 window: int = 500) -> None:
        self.partition = partition
        self.key, self._key_problem = _key_text(raw_key)
        self._dataset, self._spec, self._version, self._window = dataset, spec, version, window
        self.state: KeyState | None = None
        self.rows = 0
        self.invalid = 0
        self._last_offset = -1

    def step(self, offset: int, value: Any, out: _Rows) -> None:
        if offset <= self._last_offset:
            raise RuntimeError(f"offset {offset} of key {self.key!r} came after {self._last_offset}: "
                               "the replay needs each key's records in offset order")
        self._last_offset = offset
        self.rows += 1
        row = {"kind": "row", "key": self.key, "partition": self.partition, "offset": offset}
        if self._key_problem is not None:
            self._invalid(out, row, self._key_problem)
            return
        try:
            example = decode(self._dataset, value)
        except InvalidRecord as exc:
            self._invalid(out, row, exc.reason)
            return
        row.update(row_id=str(example.id), ts=example.ts, y_true=example.y)
        if self.key is None or example.key != self.key:
            # The message key decides partition and state; a record claiming another key is bad
            # data (the processor dead-letters it with the same words).
            self._invalid(out, row, f"record key {example.key!r} does not match the message key {self.key!r}")
            return
        if self.state is None:
            self.state = KeyState.new(self.key, self._dataset, self._spec, self._version, window=self._window)
        try:
            result = learn_step(self.state, example, offset)
        except ModelError as exc:  # the processor dead-letters these too
            self._invalid(out, row, exc.reason)
            return
        if result is None:
            out.add(**row, status=DUPLICATE)
        else:
            out.add(**row, status=LEARNED, y_pred=result.y_pred)

    def _invalid(self, out: _Rows, row: dict[str, Any], reason: str) -> None:
        self.invalid += 1
        out.add(**row, status=INVALID, reason=reason)

    def finish(self, out: _Rows) -> None:
        """Add the key's model row: its summary and, if it has a model, the snapshot."""
        summary: dict[str, Any] = {"key": self.key, "partition": self.partition, "offset": -1,
                                   "rows": self.rows, "invalid": self.invalid, "learned": 0,
                                   "duplicates": 0}
        blob: bytes | None = None
        state = self.state
        # A state exists once a valid record arrived, as in the processor, which snapshots it
        # even if the model failed on every example (learned 0, offset -1).
        if state is not None:
            metrics = _finite(state.metrics.get())
            snapshot = Snapshot.of(
                state.model, key=state.key, version=self._version, spec=self._spec, origin="replay",
                partition=self.partition, offset=state.last_offset, learned=state.learned,
                extra={"metrics": metrics, "duplicates": state.skipped, "invalid": self.invalid},
            )
            blob = snapshot.encode()
            summary.update(offset=state.last_offset, learned=state.learned, duplicates=state.skipped,
                           fingerprint=snapshot.fingerprint, metrics=metrics)
        out.add(kind="model", key=self.key, partition=self.partition, offset=summary["offset"],
                snapshot=blob, summary=json.dumps(_finite(summary), allow_nan=False))


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
    out = _Rows()
    for offset, value in zip(offsets.tolist(), values, strict=True):
        replay.step(offset, value, out)
    replay.finish(out)
    return out.frame()


@dataclass(frozen=True)
class StreamRebuild:
    """The function Spark runs per partition of the job (``mapInPandas``), picklable.

    Its input is that partition's records clustered by (partition, key) and sorted by offset
    within each key, in Arrow batches; each key is replayed as its records stream past, so a
    worker holds one batch and the states of the keys in flight, whatever a key's size.
    Clustering is checked, not assumed: a key seen again after another one is an error.
    """

    dataset: Dataset
    spec: str
    version: str
    window: int = 500
    keys_total: int = 0
    log_level: str = "INFO"
    log_json: bool | None = None

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        configure_logging(self.log_level, json=self.log_json)
        progress = _TaskProgress(self.keys_total)
        finished: set[tuple[int, Any]] = set()
        current: KeyReplay | None = None
        slot: tuple[int, Any] | None = None
        for pdf in batches:
            out = _Rows()
            keys = pdf["key"].to_numpy()
            partitions = pdf["partition"].to_numpy().tolist()
            offsets = pdf["offset"].to_numpy().tolist()
            values = pdf["value"].to_numpy()
            for i, offset in enumerate(offsets):
                raw = keys[i]
                this = (partitions[i], None if raw is None else bytes(raw))
                if this != slot:
                    if current is not None and slot is not None:
                        current.finish(out)
                        finished.add(slot)
                        progress.key_done(current.rows)
                    if this in finished:
                        raise RuntimeError(f"records of key {this[1]!r} (partition {this[0]}) arrived "
                                           "in two runs: the input is not clustered by key")
                    slot = this
                    current = KeyReplay(raw, this[0], self.dataset, self.spec, self.version, self.window)
                assert current is not None
                current.step(offset, values[i], out)
            yield out.frame()
        if current is not None:
            out = _Rows()
            current.finish(out)
            progress.key_done(current.rows)
            yield out.frame()
        progress.log(final=True)

    def as_udf(self) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
        """A plain function: pyspark inspects the arguments of what it is given, and counts
        ``self`` in those of a callable object."""

        def rebuild_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            return self(batches)

        return rebuild_partition


class _TaskProgress:
    """Keys and rows finished by one Spark task, logged every few seconds and at its end."""

    def __init__(self, keys_total: int) -> None:
        self.keys_total = keys_total
        self.keys = 0
        self.rows = 0
        self.last = time.monotonic()
        self.log_ = get_logger("spark_batch.worker")

    def key_done(self, rows: int) -> None:
        self.keys += 1
        self.rows += rows
        if time.monotonic() - self.last >= _PROGRESS_EVERY_S:
            self.log()

    def log(self, final: bool = False) -> None:
        self.last = time.monotonic()
        self.log_.info("replay task done" if final else "replay progress (this task)",
                       keys_done=self.keys, keys_total=self.keys_total, rows_done=self.rows)


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
