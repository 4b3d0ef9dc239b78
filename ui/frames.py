"""Store contents -> tidy pandas frames for the charts and tables (pure functions, no Streamlit)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from kappaml.pending import parse_ttl
from kappaml.records import DeadLetter, KeyMetrics, OverallMetrics, Prediction, ServedPrediction
from ui.store import OVERALL_KEY, MetricsKey

__all__ = [
    "DELAY_QUANTILES",
    "METRICS",
    "WAITING",
    "WINDOWS",
    "delay_histogram_frame",
    "delayed_counts_frame",
    "delayed_summary_frame",
    "delay_quantiles_frame",
    "dlq_frame",
    "latest_metrics_frame",
    "metrics_frame",
    "model_keys",
    "model_labels",
    "number",
    "predictions_frame",
    "served_frame",
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
                       "event_ts", "processed_ts", "pass", "latency_ms", "delay_ms", "delay_rows", "expired"]

AnyPrediction = Prediction | ServedPrediction


def predictions_frame(records: list[AnyPrediction], *, key: str | None = None,
                      version: str | None = None) -> pd.DataFrame:
    """Scored predictions with a finite truth and prediction, newest last; optionally one key/version.

    With delayed labels a scored prediction is written when its label came (``delay_ms``,
    ``delay_rows``) or when it expired and the missing-label value was learned (``expired``); the
    served predictions still waiting for their label have no truth yet (``served_frame``).
    """
    rows = []
    for r in records:
        if not isinstance(r, Prediction):
            continue
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
            "delay_ms": r.delay_ms, "delay_rows": r.delay_rows, "expired": bool(r.expired),
        })
    frame = pd.DataFrame(rows, columns=_PREDICTION_COLUMNS)
    for column in ("event_ts", "processed_ts"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame


# The statuses of a served prediction (delayed labels) on the Predictions page.
WAITING, LABELLED, EXPIRED = "waiting for its label", "labelled", "expired (no label)"
_SERVED_COLUMNS = ["version", "spec", "key", "id", "y_pred", "y_true", "error", "status", "partition",
                   "offset", "event_ts", "processed_ts", "delay_ms", "delay_rows"]


def served_frame(records: list[AnyPrediction], *, key: str | None = None, version: str | None = None,
                 ttl: Mapping[str, str | None] | None = None) -> pd.DataFrame:
    """The served predictions (delayed labels), newest last, each with its ``status``.

    A served prediction is ``labelled`` once the scored prediction naming it (same version, spec,
    partition and ``served_offset`` = its offset) was read, ``expired`` when that one says no
    label came in time (the missing-label value was learned), else ``waiting for its label``.

    Under ``--on-missing-label drop`` an expired prediction gets no record. ``ttl`` (version ->
    the processor's ``--label-ttl``, from its overall metrics) then marks as expired a served
    prediction that has waited longer than that: more later predictions of its key (served and
    scored, about the key's records) than N, or an event time older than the key's newest by
    more than S seconds.
    """
    scored: dict[tuple[str, str, int, int], Prediction] = {}
    served: list[tuple[int, ServedPrediction]] = []
    # Per (version, spec, key): how many predictions so far, and the newest event time.
    counts: dict[tuple[str, str, str], int] = {}
    clocks: dict[tuple[str, str, str], int] = {}
    for r in records:
        if key is not None and r.key != key:
            continue
        if version is not None and r.version != version:
            continue
        group = (r.version, r.spec, r.key)
        counts[group] = counts.get(group, 0) + 1
        if r.event_ts is not None:
            clocks[group] = max(clocks.get(group, r.event_ts), r.event_ts)
        if isinstance(r, ServedPrediction):
            served.append((counts[group], r))
        elif r.served_offset is not None:
            scored[(r.version, r.spec, r.partition, r.served_offset)] = r
    limits = {v: parse_ttl(text) for v, text in (ttl or {}).items() if _ttl_ok(text)}
    rows = []
    for position, s in served:
        done = scored.get((s.version, s.spec, s.partition, s.offset))
        status = WAITING if done is None else (EXPIRED if done.expired else LABELLED)
        if status == WAITING and s.version in limits:
            group = (s.version, s.spec, s.key)
            ttl_rows, ttl_ms = limits[s.version]
            if ttl_rows is not None and counts[group] - position > ttl_rows:
                status = EXPIRED
            elif ttl_ms is not None and s.event_ts is not None and clocks[group] - s.event_ts > ttl_ms:
                status = EXPIRED
        y_true = None if done is None else number(done.y_true)
        rows.append({
            "version": s.version, "spec": s.spec, "key": s.key, "id": str(s.id), "y_pred": number(s.y_pred),
            "y_true": y_true, "error": None if y_true is None or s.y_pred is None else s.y_pred - y_true,
            "status": status, "partition": s.partition, "offset": s.offset,
            "event_ts": s.event_ts, "processed_ts": s.processed_ts,
            "delay_ms": None if done is None else done.delay_ms,
            "delay_rows": None if done is None else done.delay_rows,
        })
    frame = pd.DataFrame(rows, columns=_SERVED_COLUMNS)
    for column in ("event_ts", "processed_ts"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame


def _ttl_ok(text: str | None) -> bool:
    try:
        return parse_ttl(text) != (None, None)
    except ValueError:
        return False


# ------------------------------------------------------------------------------- delayed labels
# (label, field of the metrics records); served = learned + expired + pending at every checkpoint.
DELAYED_COUNTS: tuple[tuple[str, str], ...] = (
    ("served", "features_served"),
    ("learned", "labels_learned"),
    ("expired", "expired"),
    ("pending", "pending"),
    ("early labels", "early_labels"),
    ("orphan labels", "orphan_labels"),
)
DELAY_QUANTILES = ("p50", "p95", "p99")


def _delayed(record: KeyMetrics | OverallMetrics) -> bool:
    return number(getattr(record, "features_served", None)) is not None


def delayed_summary_frame(series: Series, key: str) -> pd.DataFrame:
    """The newest delayed-label figures of each (version, spec) of one key (empty without any).

    ``balanced``: served = learned + expired + pending, as it must be at every checkpoint.
    """
    labels = model_labels(series.keys())
    rows = []
    for (version, series_key, spec), records in sorted(series.items()):
        if series_key != key:
            continue
        last = next((r for r in reversed(records) if _delayed(r)), None)
        if last is None:
            continue
        row: dict[str, Any] = {"model": labels[(version, spec)], "version": version, "spec": spec}
        for label, name in DELAYED_COUNTS:
            row[label] = int(getattr(last, name) or 0)
        row["balanced"] = row["served"] == row["learned"] + row["expired"] + row["pending"]
        pending_bytes = number(last.pending_bytes)
        row["pending (kB)"] = None if pending_bytes is None else round(pending_bytes / 1000, 1)
        for q in DELAY_QUANTILES:
            row[f"delay {q} (s)"] = _seconds((last.delay_ms or {}).get(q))
            row[f"delay {q} (records)"] = number((last.delay_rows or {}).get(q))
        if isinstance(last, OverallMetrics):
            row["label TTL"] = last.label_ttl
            row["on missing label"] = last.on_missing_label
        rows.append(row)
    return pd.DataFrame(rows)


def _seconds(ms: Any) -> float | None:
    value = number(ms)
    return None if value is None else value / 1000


def delayed_counts_frame(series: Series, key: str) -> pd.DataFrame:
    """Long format of the pending and expired counts over the checkpoints of one key."""
    labels = model_labels(series.keys())
    rows: list[dict[str, Any]] = []
    for (version, series_key, spec), records in series.items():
        if series_key != key:
            continue
        for record in records:
            if not _delayed(record):
                continue
            for label in ("pending", "expired"):
                rows.append({"model": labels[(version, spec)], "version": version, "spec": spec,
                             "messages": number(record.features_served), "time": number(record.ts),
                             "count": label, "value": int(getattr(record, label) or 0)})
    frame = pd.DataFrame(rows, columns=["model", "version", "spec", "messages", "time", "count", "value"])
    frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    return frame


def delay_quantiles_frame(series: Series, key: str, unit: str = "ms") -> pd.DataFrame:
    """Long format of the label delay p50/p95/p99 over the checkpoints of one key: seconds of
    event time (``unit="ms"``, from ``delay_ms``) or the key's records (``"rows"``)."""
    labels = model_labels(series.keys())
    field_name = "delay_ms" if unit == "ms" else "delay_rows"
    rows: list[dict[str, Any]] = []
    for (version, series_key, spec), records in series.items():
        if series_key != key:
            continue
        for record in records:
            quantiles = getattr(record, field_name, None) or {}
            for q in DELAY_QUANTILES:
                value = number(quantiles.get(q))
                if value is None:
                    continue
                rows.append({"model": labels[(version, spec)], "version": version, "spec": spec,
                             "messages": number(record.features_served), "time": number(record.ts),
                             "quantile": q, "value": value / 1000 if unit == "ms" else value})
    frame = pd.DataFrame(rows, columns=["model", "version", "spec", "messages", "time", "quantile", "value"])
    frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    return frame


def delay_histogram_frame(records: list[AnyPrediction], key: str | None = None) -> pd.DataFrame:
    """The label delays of the newest scored predictions (labelled, not expired) the UI holds."""
    rows = []
    for r in records:
        if not isinstance(r, Prediction) or r.expired or r.delay_rows is None:
            continue
        if key is not None and r.key != key:
            continue
        rows.append({"version": r.version, "spec": r.spec, "key": r.key,
                     "delay_s": _seconds(r.delay_ms), "delay_rows": r.delay_rows})
    return pd.DataFrame(rows, columns=["version", "spec", "key", "delay_s", "delay_rows"])


def dlq_frame(records: list[DeadLetter]) -> pd.DataFrame:
    """The newest dead letters first: when, which stage, why, where from."""
    rows = []
    for r in reversed(records):
        rows.append({
            "time": pd.to_datetime(r.ts, unit="ms", utc=True) if r.ts is not None else None,
            "stage": r.stage, "reason": r.reason, "source": r.where, "key": r.key,
        })
    return pd.DataFrame(rows, columns=["time", "stage", "reason", "source", "key"])
