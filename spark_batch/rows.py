"""What the replay's workers produce, built as plain column lists and handed on as Arrow.

Predictions, one row per (input record, spec of the lineup): its prediction, or why that spec
did not learn it (:class:`PredictionRows`). With delayed labels (issue 17) a record can give a
spec more than one row, the processor's output records: a ``features`` record its ``served``
prediction (no ``y_true``), a record completing an earlier served prediction (its label, or
the expiry check before it) a ``learned`` row scoring that served prediction (``served_offset``,
``delay_ms``, ``delay_rows``; ``expired`` when the missing-label value was learned), an expiry
with ``--on-missing-label drop`` an ``expired`` row. Each task writes its own to a Parquet file
(:class:`PredictionFile`): the bulk of the output never goes back through the JVM, whose
Parquet writer cost more CPU than the rows' own Python work saved by parallelism.

The few other rows go back to Spark (:class:`OutputRows`, ``mapInArrow``): ``model``, one per
(partition, key, spec), with the snapshot and the summary JSON; ``control``, one per control
record (a promotion), its value in ``snapshot``, for the driver to apply; ``file``, the
prediction file a task wrote (``summary``: its name; ``offset``: its rows). Spark commits
these rows for successful task attempts only, so the driver keeps exactly the files they name.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["CONTROL", "DUPLICATE", "EARLY", "EXPIRED", "FILE", "INPUT_COLUMNS", "INVALID", "LATE", "LEARNED",
           "MODEL", "OUTPUT_SCHEMA", "PREDICTION_SCHEMA", "SERVED", "OutputRows", "PredictionFile",
           "PredictionRows"]

# What the job hands over per record: the raw Kafka key bytes, its position, its value bytes.
INPUT_COLUMNS = ("key", "partition", "offset", "value")

PREDICTION_SCHEMA = pa.schema([
    ("key", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()), ("row_id", pa.string()),
    ("ts", pa.int64()), ("status", pa.string()), ("reason", pa.string()), ("y_true", pa.float64()),
    ("y_pred", pa.float64()), ("spec", pa.string()), ("role", pa.string()), ("generation", pa.int32()),
    # Delayed labels (null for a labelled record's row): the features record whose served
    # prediction a learned row scores, how long its label took, whether it expired instead.
    ("served_offset", pa.int64()), ("delay_ms", pa.int64()), ("delay_rows", pa.int64()),
    ("expired", pa.bool_()),
])
_OUTPUT_ARROW = pa.schema([
    ("kind", pa.string()), ("key", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()),
    ("spec", pa.string()), ("role", pa.string()), ("generation", pa.int32()), ("snapshot", pa.binary()),
    ("summary", pa.string()),
])
# The same schema in Spark's words.
OUTPUT_SCHEMA = ("kind string, key string, partition int, offset long, spec string, role string, "
                 "generation int, snapshot binary, summary string")

MODEL, CONTROL, FILE = "model", "control", "file"
LEARNED, DUPLICATE, INVALID = "learned", "duplicate", "invalid"
# Delayed labels: a served prediction (features), a label waiting for its features, a label
# after its prediction expired, a served prediction expired without learning (drop).
SERVED, EARLY, LATE, EXPIRED = "served", "early", "late", "expired"


def _batch(columns: list[Any], schema: pa.Schema) -> pa.RecordBatch:
    # Lists to Arrow in C; y values are never NaN here (decode refuses them): None is the null.
    return pa.RecordBatch.from_arrays(
        [pa.array(column, type=f.type) for column, f in zip(columns, schema, strict=True)], schema=schema)


class PredictionRows:
    """Prediction rows, one Arrow batch per input batch.

    Kept as tuples in :data:`PREDICTION_SCHEMA`'s order and turned into columns once per
    batch (in C): one append per row, the replay's hot path (:meth:`append`).
    """

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        # (key, partition, offset, row_id, ts, status, reason, y_true, y_pred, spec, role, generation,
        #  served_offset, delay_ms, delay_rows, expired)
        self.append = self.rows.append

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, key: str | None, partition: int, offset: int, status: str, spec: str, role: str,
            generation: int, row_id: str | None = None, ts: int | None = None, reason: str | None = None,
            y_true: float | None = None, y_pred: float | None = None, served_offset: int | None = None,
            delay_ms: int | None = None, delay_rows: int | None = None, expired: bool | None = None) -> None:
        """One (record, spec) outcome, by name."""
        self.rows.append((key, partition, offset, row_id, ts, status, reason, y_true, y_pred, spec, role,
                          generation, served_offset, delay_ms, delay_rows, expired))

    def batch(self) -> pa.RecordBatch:
        columns = list(zip(*self.rows, strict=True)) if self.rows else [() for _ in PREDICTION_SCHEMA]
        return _batch(columns, PREDICTION_SCHEMA)

    def frame(self) -> pd.DataFrame:
        """As pandas (a null y is NaN): for tests and one-key runs."""
        return self.batch().to_pandas()


class OutputRows:
    """The rows a task hands back to Spark: models, control records, its prediction file."""

    def __init__(self) -> None:
        self.columns: list[list[Any]] = [[] for _ in _OUTPUT_ARROW]

    def __len__(self) -> int:
        return len(self.columns[0])

    def model(self, key: str | None, partition: int, offset: int, spec: str, role: str, generation: int,
              snapshot: bytes | None, summary: str) -> None:
        self._append(MODEL, key, partition, offset, spec, role, generation, snapshot, summary)

    def control(self, partition: int, offset: int, value: bytes | None) -> None:
        self._append(CONTROL, None, partition, offset, None, None, 0, value, None)

    def file(self, name: str, rows: int) -> None:
        self._append(FILE, None, 0, rows, None, None, 0, None, name)

    def _append(self, *values: Any) -> None:
        for column, value in zip(self.columns, values, strict=True):
            column.append(value)

    def batch(self) -> pa.RecordBatch:
        return _batch(self.columns, _OUTPUT_ARROW)

    def frame(self) -> pd.DataFrame:
        return self.batch().to_pandas()


class PredictionFile:
    """One task's predictions, written as they come to ``folder/part-<uuid>.parquet``.

    A uniquely named file per task attempt: a failed or repeated attempt leaves a file no
    committed ``file`` row names, which the driver then drops.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / f"part-{uuid.uuid4().hex}.parquet"
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, rows: PredictionRows) -> None:
        if not len(rows):
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, PREDICTION_SCHEMA, compression="snappy")
        self._writer.write_batch(rows.batch())
        self.rows += len(rows)

    def close(self, out: OutputRows) -> None:
        """Finish the file and name it in the task's output (nothing if no row was written)."""
        if self._writer is not None:
            self._writer.close()
            out.file(self.path.name, self.rows)
