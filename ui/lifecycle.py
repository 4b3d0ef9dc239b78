"""Model lifecycle records -> pandas frames: drift detections, champion/challenger comparisons,
promotions (pure functions, no Streamlit). The record formats are the processor's (ISSUE9)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from kappaml.records import Comparison, DriftEvent, OverallMetrics, PromotionApplied
from ui.decisions import applied_text
from ui.frames import METRICS, Series, model_labels, number
from ui.store import OVERALL_KEY

__all__ = [
    "champions_frame",
    "comparison_frame",
    "comparison_instances",
    "drift_frame",
    "drift_marks",
    "latest_comparison_frame",
    "promotable",
    "promotion_marks",
    "promotions_frame",
]

_DRIFT_COLUMNS = ["time", "key", "model", "version", "spec", "role", "generation", "detector", "policy",
                  "action", "error_before", "error_after", "learned", "partition", "offset", "id"]


def _time(ms: Any) -> pd.Timestamp | None:
    value = number(ms)
    return pd.to_datetime(value, unit="ms", utc=True) if value is not None else None


def drift_frame(records: list[DriftEvent], labels: Mapping[tuple[str, str], str] | None = None,
                key: str | None = None) -> pd.DataFrame:
    """Detections, newest first; of one model key, or all of them (``key`` None or overall)."""
    labels = labels or {}
    rows = []
    for r in reversed(records):
        if key not in (None, OVERALL_KEY) and r.key != key:
            continue
        version, spec = r.version, r.spec
        rows.append({
            "time": _time(r.ts), "key": r.key,
            "model": labels.get((version, spec), f"{version}+{spec}" if spec else version),
            "version": version, "spec": spec, "role": r.role, "generation": r.generation,
            "detector": r.detector, "policy": r.policy, "action": r.action,
            "error_before": number(r.error_before), "error_after": number(r.error_after),
            "learned": r.learned, "partition": r.partition, "offset": r.offset, "id": str(r.id),
        })
    return pd.DataFrame(rows, columns=_DRIFT_COLUMNS).astype({"learned": "Int64"})


def drift_marks(records: list[DriftEvent], series: Series, key: str) -> pd.DataFrame:
    """Where each detection of ``key`` sits on the metric charts' two horizontal axes.

    ``time`` is when the processor handled the detecting message. ``messages``: for one key,
    the examples its model had learned; on the overall chart, whose axis counts every key's
    messages, the ``learned`` of that version's newest overall record at the detection's time
    (empty when there is none yet).
    """
    frame = drift_frame(records, model_labels(series.keys()), key)
    frame["messages"] = frame["learned"]
    if key == OVERALL_KEY and not frame.empty:
        overall = pd.DataFrame(
            [{"version": v, "time": _time(r.ts), "overall_learned": number(r.learned)}
             for (v, k, _s), rs in series.items() if k == OVERALL_KEY for r in rs
             if isinstance(r, OverallMetrics)],
            columns=["version", "time", "overall_learned"]).dropna()
        if overall.empty:
            frame["messages"] = None
        else:
            located = pd.merge_asof(
                frame.dropna(subset=["time"]).sort_values("time"), overall.sort_values("time"),
                on="time", by="version", direction="backward")
            frame = located.assign(messages=located["overall_learned"]).drop(columns="overall_learned")
    return frame


def comparison_instances(records: list[Comparison]) -> list[str]:
    """The processor instances that wrote comparison records, the most recently heard first."""
    newest: dict[str, float] = {}
    for r in records:
        newest[r.instance] = r.ts
    return sorted(newest, key=lambda i: newest[i], reverse=True)


def _partition_order(partition: str) -> tuple[int, int, str]:
    # Partitions are JSON object keys, so strings: sort 2 before 10, and survive a bad one.
    return (0, int(partition), "") if partition.isdigit() else (1, 0, partition)


_COMPARISON_COLUMNS = ["time", "instance", "spec", "role", "learned", "drifts", "metric", "window", "value"]


def comparison_frame(records: list[Comparison], instance: str | None = None) -> pd.DataFrame:
    """Long format: one row per (record, spec, metric, window) of the comparison records."""
    rows = []
    for r in records:
        if instance is not None and r.instance != instance:
            continue
        for spec, figures in r.specs.items():
            for metric, cumulative, rolling in METRICS[:2]:  # RMSE, MAE: R² is not compared
                for window, name in (("cumulative", cumulative), ("rolling", rolling)):
                    value = number(getattr(figures, name))
                    if value is None:
                        continue
                    rows.append({"time": r.ts, "instance": r.instance, "spec": spec, "role": figures.role,
                                 "learned": figures.learned, "drifts": figures.drifts, "metric": metric,
                                 "window": window, "value": value})
    frame = pd.DataFrame(rows, columns=_COMPARISON_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    return frame


def latest_comparison_frame(records: list[Comparison], instance: str | None = None) -> pd.DataFrame:
    """The newest comparison of ``instance``: one row per spec, the serving specs first."""
    mine = [r for r in records if instance is None or r.instance == instance]
    if not mine:
        return pd.DataFrame()
    newest = mine[-1]
    champions = newest.champions
    serving: dict[str, list[str]] = {}
    for partition, spec in champions.items():
        serving.setdefault(str(spec), []).append(str(partition))
    rows = []
    for spec, f in newest.specs.items():
        # No per-partition map (no promotion yet): the champion serves them all.
        everywhere = "all" if not champions and f.role == "champion" else "-"
        rows.append({
            "spec": spec, "role": f.role,
            "champion of partitions": ", ".join(sorted(serving.get(spec, []), key=_partition_order))
            or everywhere,
            "learned": f.learned, "RMSE (rolling)": number(f.rolling_rmse),
            "MAE (rolling)": number(f.rolling_mae), "RMSE": number(f.rmse),
            "MAE": number(f.mae), "drifts": f.drifts,
            # What the spec's learning step costs this processor per message (mean since it started).
            "µs per message": number(f.learn_us),
        })
    frame = pd.DataFrame(rows)
    return frame.sort_values("role", key=lambda r: r != "champion", kind="stable").reset_index(drop=True)


def champions_frame(records: list[Comparison]) -> pd.DataFrame:
    """The spec serving each partition, newest word per partition over every instance.

    Before any promotion the processor may send no per-partition map: every partition is then
    served by the spec whose role is champion.
    """
    serving: dict[str, tuple[float, str]] = {}
    for r in records:
        ts = r.ts
        for partition, spec in r.champions.items():
            if str(partition) not in serving or ts >= serving[str(partition)][0]:
                serving[str(partition)] = (ts, str(spec))
    if serving:
        rows = [{"partition": p, "champion": serving[p][1]} for p in sorted(serving, key=_partition_order)]
    elif records:
        champions = [s for s, f in records[-1].specs.items() if f.role == "champion"]
        rows = [{"partition": "all", "champion": ", ".join(champions) or "?"}]
    else:
        rows = []
    return pd.DataFrame(rows, columns=["partition", "champion"])


def promotable(records: list[Comparison]) -> list[str]:
    """The specs of the newest comparison that do not serve every partition yet.

    A spec serving some partitions only (say, after a promotion some processor has not
    applied yet) may be promoted again to serve them all; the champion of every partition
    may not.
    """
    if not records:
        return []
    serving = set(champions_frame(records)["champion"])
    return sorted(spec for spec in records[-1].specs if serving != {spec})


_PROMOTION_COLUMNS = ["time", "version", "spec", "previous", "reason", "partition", "offset", "by", "id"]


def promotions_frame(records: list[PromotionApplied], version: str | None = None) -> pd.DataFrame:
    """Promotions as the processor applied them (one record per partition), newest first;
    ``reason``: who decided (manual for ``processor promote`` and the UI's Promote button)."""
    rows = [{
        "time": _time(r.ts), "version": r.version, "spec": applied_text(r), "previous": r.previous,
        "reason": r.reason or "manual",
        "partition": r.partition, "offset": r.offset, "by": r.by, "id": r.id,
    } for r in reversed(records) if version is None or r.version == version]
    return pd.DataFrame(rows, columns=_PROMOTION_COLUMNS)


def promotion_marks(records: list[PromotionApplied], version: str) -> pd.DataFrame:
    """The promotions of ``version`` with a time, for the comparison charts."""
    return promotions_frame(records, version).dropna(subset=["time"])
