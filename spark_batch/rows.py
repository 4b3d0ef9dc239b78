"""The rows the replay's workers hand back to Spark, built as plain column lists.

``kind = "row"``: one per (input record, spec of the lineup): its prediction, or why that spec
did not learn it. ``kind = "model"``: one per (partition, key, spec), carrying the snapshot and
the summary JSON. The driver splits the two kinds into ``predictions.parquet`` and the models.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DUPLICATE", "INPUT_COLUMNS", "INVALID", "LEARNED", "OUTPUT_SCHEMA", "OutputRows"]

# What the job hands over per record: the raw Kafka key bytes, its position, its value bytes.
INPUT_COLUMNS = ("key", "partition", "offset", "value")

OUTPUT_SCHEMA = (
    "kind string, key string, partition int, offset long, row_id string, ts long, "
    "status string, reason string, y_true double, y_pred double, "
    "spec string, role string, generation int, snapshot binary, summary string"
)

LEARNED, DUPLICATE, INVALID = "learned", "duplicate", "invalid"


class OutputRows:
    """Output columns as lists, one DataFrame per input batch (cheaper than a frame per row)."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in (
            "kind", "key", "partition", "offset", "row_id", "ts", "status", "reason", "y_true", "y_pred",
            "spec", "role", "generation", "snapshot", "summary")}

    def __len__(self) -> int:
        return len(self.columns["kind"])

    def row(self, key: str | None, partition: int, offset: int, status: str, spec: str, role: str,
            generation: int, *, row_id: str | None = None, ts: int | None = None, reason: str | None = None,
            y_true: float = math.nan, y_pred: float = math.nan) -> None:
        self._append("row", key, partition, offset, row_id, ts, status, reason, y_true, y_pred, spec, role,
                     generation, None, None)

    def model(self, key: str | None, partition: int, offset: int, spec: str, role: str, generation: int,
              snapshot: bytes | None, summary: str) -> None:
        self._append("model", key, partition, offset, None, None, None, None, math.nan, math.nan, spec, role,
                     generation, snapshot, summary)

    def _append(self, *values: Any) -> None:
        for column, value in zip(self.columns.values(), values, strict=True):
            column.append(value)

    def frame(self) -> pd.DataFrame:
        c = self.columns

        def text(values: list[Any]) -> pd.Series:
            # object dtype: None stays null through Arrow, and pandas 3 would otherwise infer
            # Arrow-backed strings, which pyspark 4.2 cannot ship.
            return pd.Series(values, dtype=object)

        def floats(values: list[float]) -> pd.arrays.FloatingArray:
            array = np.asarray(values, dtype=np.float64)
            return pd.arrays.FloatingArray(array, np.isnan(array))  # NaN here means "none": null

        return pd.DataFrame({
            "kind": text(c["kind"]), "key": text(c["key"]),
            "partition": np.asarray(c["partition"], dtype=np.int32),
            "offset": np.asarray(c["offset"], dtype=np.int64),
            "row_id": text(c["row_id"]), "ts": pd.array(c["ts"], dtype="Int64"),
            "status": text(c["status"]), "reason": text(c["reason"]),
            "y_true": floats(c["y_true"]), "y_pred": floats(c["y_pred"]),
            "spec": text(c["spec"]), "role": text(c["role"]),
            "generation": np.asarray(c["generation"], dtype=np.int32),
            "snapshot": text(c["snapshot"]), "summary": text(c["summary"]),
        })
