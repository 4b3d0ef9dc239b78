"""Store contents -> tidy pandas frames for the charts and tables (pure functions, no Streamlit)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from kappaml.records import DeadLetter, KeyMetrics, OverallMetrics, Prediction
from ui.store import OVERALL_KEY, MetricsKey

__all__ = [
    "METRICS",
    "WINDOWS",
    "dlq_frame",
    "latest_metrics_frame",
    "metrics_frame",
    "model_keys",
    "model_labels",
    "number",
    "predictions_frame",
]

# (label, field of the cumulative value, field of the rolling value); see kappaml.evaluation.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("RMSE", "rmse", "rolling_rmse"),
    ("MAE", "mae", "rolling_mae"),
    ("R²", "r2", "rolling_r2"),
)
WINDOWS = ("cumulative", "rolling")

_METRIC_COLUMNS = ["model", "version", "key", "spec", "messages", "time", "metric", "window", "value"]

Series = Mapping[MetricsKey, list[KeyMetrics | OverallMetrics]]


def messages(record: KeyMetrics | OverallMetrics) -> int:
    """Predictions scored (``n``); a processor's overall record counts them as ``learned``."""
    return record.n if record.n is not None else record.learned


def number(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, text, booleans, NaN, infinities)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def model_keys(series_keys: Iterable[MetricsKey]) -> list[str]:
    """The model keys with metrics, overall first."""
    series_keys = list(series_keys)
    keys = sorted({key for _version, key, _spec in series_keys if key != OVERALL_KEY})
    return ([OVERALL_KEY] if any(k == OVERALL_KEY for _v, k, _s in series_keys) else []) + keys


def model_labels(series_keys: Iterable[MetricsKey]) -> dict[tuple[str, str], str]:
    """A name for each (version, spec): the version for the spec it was started with, else
    ``version+spec``, the names the challengers' snapshots have on the models topic.

    The spec a version was started with is the one of its overall records; without them, a
    version that runs a single spec is simply named by its version.
    """
    specs: dict[str, set[str]] = {}
    home: dict[str, set[str]] = {}
    for version, key, spec in series_keys:
        specs.setdefault(version, set()).add(spec)
        if key == OVERALL_KEY:
            home.setdefault(version, set()).add(spec)
    labels = {}
    for version, seen in specs.items():
        started_with = home.get(version) or (seen if len(seen) == 1 else set())
        for spec in seen:
            labels[(version, spec)] = version if spec in started_with else f"{version}+{spec}"
    return labels


def metrics_frame(series: Series, key: str) -> pd.DataFrame:
    """Long format: one row per (record, metric, window) of one model key, every version and spec.

    ``model`` names the line (see ``model_labels``). ``messages`` is the number of predictions
    scored (``n``; overall records: ``learned``). Values that are not defined yet (None: e.g.
    R² before two examples) are left out.
    """
    labels = model_labels(series.keys())
    rows: list[dict[str, Any]] = []
    for (version, series_key, spec), records in series.items():
        if series_key != key:
            continue
        model = labels[(version, spec)]
        for record in records:
            scored, ts = number(messages(record)), number(record.ts)
            for label, cumulative, rolling in METRICS:
                for window, name in zip(WINDOWS, (cumulative, rolling), strict=True):
                    value = number(getattr(record, name))
                    if value is None:
                        continue
                    rows.append({
                        "model": model, "version": version, "key": key, "spec": spec,
                        "messages": scored, "time": ts, "metric": label, "window": window,
                        "value": value,
                    })
    frame = pd.DataFrame(rows, columns=_METRIC_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    return frame


def latest_metrics_frame(series: Series, key: str) -> pd.DataFrame:
    """The newest record of each (version, spec) of one key, for the summary table."""
    labels = model_labels(series.keys())
    rows = []
    for (version, series_key, spec), records in sorted(series.items()):
        if series_key != key or not records:
            continue
        last = records[-1]
        row: dict[str, Any] = {"model": labels[(version, spec)], "version": version, "spec": spec,
                               "role": last.role, "messages": messages(last), "drifts": last.drifts}
        for label, cumulative, rolling in METRICS:
            row[label] = number(getattr(last, cumulative))
            row[f"{label} (rolling)"] = number(getattr(last, rolling))
        # Time of day only (UTC, 24-hour): a full timestamp was cut off in the table.
        row["updated (UTC)"] = (pd.to_datetime(last.ts, unit="ms", utc=True).strftime("%H:%M:%S")
                                if last.ts else None)
        rows.append(row)
    return pd.DataFrame(rows)


_PREDICTION_COLUMNS = ["version", "spec", "key", "id", "y_true", "y_pred", "error", "partition", "offset",
                       "event_ts", "processed_ts", "pass", "latency_ms"]


def predictions_frame(records: list[Prediction], *, key: str | None = None,
                      version: str | None = None) -> pd.DataFrame:
    """Predictions with a finite truth and prediction, newest last; optionally one key/version."""
    rows = []
    for r in records:
        if key is not None and r.key != key:
            continue
        if version is not None and r.version != version:
            continue
        y_true, y_pred = number(r.y_true), number(r.y_pred)
        if y_true is None or y_pred is None:
            continue
        rows.append({
            "version": r.version, "spec": r.spec, "key": r.key, "id": str(r.id),
            "y_true": y_true, "y_pred": y_pred, "error": y_pred - y_true,
            "partition": r.partition, "offset": r.offset,
            "event_ts": r.event_ts, "processed_ts": r.processed_ts,
            "pass": r.pass_no or 1, "latency_ms": r.latency_ms,
        })
    frame = pd.DataFrame(rows, columns=_PREDICTION_COLUMNS)
    for column in ("event_ts", "processed_ts"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame


def dlq_frame(records: list[DeadLetter]) -> pd.DataFrame:
    """The newest dead letters first: when, which stage, why, where from."""
    rows = []
    for r in reversed(records):
        rows.append({
            "time": pd.to_datetime(r.ts, unit="ms", utc=True) if r.ts is not None else None,
            "stage": r.stage, "reason": r.reason, "source": r.where, "key": r.key,
        })
    return pd.DataFrame(rows, columns=["time", "stage", "reason", "source", "key"])
