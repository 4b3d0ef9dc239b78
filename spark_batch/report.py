"""The replay's report: ``summary.json`` beside ``predictions.parquet`` in the output folder.

The summary is written last (atomically), so its presence means the replay finished: every
snapshot it lists was delivered. It carries what a cut-over needs: per key the partition and
last offset learned, per partition the pinned end offset to continue from.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_batch.rebuild import DUPLICATE, INVALID, LEARNED

__all__ = ["PREDICTIONS", "SUMMARY", "RowTotals", "row_totals", "write_summary"]

SUMMARY = "summary.json"
PREDICTIONS = "predictions.parquet"
_TOP_REASONS = 20


@dataclass(frozen=True)
class RowTotals:
    statuses: dict[str, int]
    invalid_reasons: dict[str, int]  # the most frequent first
    metrics: dict[str, float | int | None]  # cumulative over every learned record of every key


def row_totals(rows: DataFrame) -> RowTotals:
    """Counts per status, the top invalid reasons and pooled metrics, in one Spark action."""
    err = F.col("y_pred") - F.col("y_true")
    groups = rows.groupBy("status", "reason").agg(
        F.count("*").alias("n"), F.sum(err * err).alias("sse"), F.sum(F.abs(err)).alias("sae"),
        F.sum("y_true").alias("sy"), F.sum(F.col("y_true") * F.col("y_true")).alias("syy"),
    ).collect()
    statuses = {LEARNED: 0, DUPLICATE: 0, INVALID: 0}
    reasons: dict[str, int] = {}
    for g in groups:
        statuses[g["status"]] = statuses.get(g["status"], 0) + int(g["n"])
        if g["status"] == INVALID:
            reasons[g["reason"]] = int(g["n"])
    top = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP_REASONS])
    learned = [g for g in groups if g["status"] == LEARNED]
    return RowTotals(statuses, top, _pooled(learned))


def _pooled(groups: list[Any]) -> dict[str, float | int | None]:
    n = sum(int(g["n"]) for g in groups)
    if n == 0:
        return {"n": 0, "rmse": None, "mae": None, "r2": None}
    sse = sum(float(g["sse"]) for g in groups)
    sy = sum(float(g["sy"]) for g in groups)
    sst = sum(float(g["syy"]) for g in groups) - sy * sy / n
    return {
        "n": n,
        "rmse": math.sqrt(sse / n),
        "mae": sum(float(g["sae"]) for g in groups) / n,
        "r2": 1.0 - sse / sst if sst > 0 else None,
    }


def write_summary(out_dir: Path, summary: Mapping[str, Any], keys: Iterable[Mapping[str, Any]]) -> Path:
    doc = {**summary, "keys": sorted(keys, key=lambda k: (k["key"] is None, k["key"] or "", k["partition"]))}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SUMMARY
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
