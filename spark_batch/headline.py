"""The one paragraph ``python -m spark_batch replay`` prints at the end: what the replay found."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["headline"]


def _number(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def headline(summary_path: Path) -> str:
    """``replay v2 (rls): 7,385 rows, 1 key ... RMSE 4.080, MAE ..., R² ..., 23.4 s`` from summary.json."""
    try:
        doc = json.loads(summary_path.read_text())
    except (OSError, ValueError) as exc:
        return f"replay finished; its summary could not be read ({summary_path}: {exc})"
    totals, metrics = doc.get("totals", {}), doc.get("metrics", {})
    shown = "shown on the UI's Evaluation page (origin=replay)" if doc.get("metrics_published") else \
        "not published (--no-publish)"
    labels = doc.get("labels") or {}
    delayed = ""
    if "features_served" in labels:  # a log with features/label records
        delayed = (f"\n  delayed labels (--label-ttl {labels.get('label_ttl')}, --on-missing-label "
                   f"{labels.get('on_missing_label')}): {labels['features_served']:,} served, "
                   f"{labels.get('labels_learned', 0):,} learned with their label, "
                   f"{labels.get('expired', 0):,} expired, {labels.get('pending', 0):,} pending, "
                   f"{labels.get('orphan_labels', 0):,} orphan labels")
    return (
        f"replay {doc.get('version')} ({doc.get('spec')}): {totals.get('rows', 0):,} rows, "
        f"{totals.get('keys', 0):,} keys, {totals.get('learned', 0):,} learned, "
        f"{totals.get('duplicates', 0):,} duplicates, {totals.get('invalid', 0):,} invalid; "
        f"RMSE {_number(metrics.get('rmse'))}, MAE {_number(metrics.get('mae'))}, "
        f"R² {_number(metrics.get('r2'))}; {_number(doc.get('seconds'), 1)} s{delayed}\n"
        f"  metrics {shown}; summary {summary_path}"
    )
