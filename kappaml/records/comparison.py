"""The comparison record (metrics topic, scope ``comparison``): every spec of a lineup side by
side over the same messages, written by the processor at every checkpoint when it runs
challengers. ``kappaml.records.metrics.decode_metrics`` reads it with the other scopes."""

from __future__ import annotations

from typing import Literal

from kappaml.records.base import Record, doc, record

__all__ = ["COMPARISON_KEY", "Comparison", "SpecFigures"]

COMPARISON_KEY = "__comparison__"


@record("spec figures")
class SpecFigures(Record):
    """One spec's pooled figures over every key of the processor."""

    role: str = doc("champion (serves some partition) or challenger")
    learned: int = doc("examples learned")
    drifts: int = doc("drift detections")
    rmse: float | None = doc("cumulative RMSE, pooled over the keys", default=None, keep_null=True)
    mae: float | None = doc("cumulative MAE, pooled over the keys", default=None, keep_null=True)
    rolling_rmse: float | None = doc("rolling-window RMSE, pooled over the keys", default=None,
                                     keep_null=True)
    rolling_mae: float | None = doc("rolling-window MAE, pooled over the keys", default=None, keep_null=True)
    learn_us: float | None = doc("mean µs of the spec's test-then-train step in this process", default=None,
                                 keep_null=True)


@record("comparison record")
class Comparison(Record):
    """Champion and challengers compared, as one processor instance sees them."""

    scope: Literal["comparison"] = doc("the record's kind", default="comparison")
    key: str = doc(f"always {COMPARISON_KEY}", default=COMPARISON_KEY)
    version: str = doc("the model version")
    instance: str = doc("the processor instance")
    champions: dict[str, str] = doc("the spec serving each partition (empty before any promotion)")
    specs: dict[str, SpecFigures] = doc("each spec's figures")
    ts: int = doc("when it was written (ms since the epoch)")
