"""The replay's report: ``summary.json`` beside ``predictions.parquet`` in the output folder.

The summary is written last (atomically), so its presence means the replay finished: every
snapshot it lists was delivered. It carries what a cut-over needs: per key the partition and
last offset learned, per partition the pinned end offset to continue from. With challengers,
every spec of the lineup has its own totals and metrics (``specs``) and its own entry per key;
the top-level ``totals``, ``metrics`` and ``invalid_reasons`` are the champion spec's
(``--model-spec``), as without challengers. ``drifts`` lists every drift detection, with the
fields of the processor's drift topic records; ``serving`` is the history of promotions. With
delayed labels, ``labels`` holds the policy and the champion's pooled figures (served, learned
with their label, expired, pending, early and orphan labels, delay percentiles), each key its
own and its ``state_fingerprint`` (model and pending set, as the processor fingerprints it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.dataset

from kappaml.lineup import Lineup, PromotionLog
from kappaml.records import DriftEvent
from spark_batch.errors import ReplayError

__all__ = ["LABEL_COUNTS", "PREDICTIONS", "SUMMARY", "LineupTotals", "Phases", "Totals", "control_report",
           "gather_predictions", "key_label_figures", "serving_report", "write_summary"]

# The per-key delayed-label counts that add up over keys (kappaml.pending.DelayedLabels.figures).
LABEL_COUNTS = ("features_served", "labels_learned", "expired", "pending", "pending_bytes", "early_labels",
                "orphan_labels")
SUMMARY = "summary.json"
PREDICTIONS = "predictions.parquet"
_TOP_REASONS = 20


class Phases:
    """Wall seconds of the replay's phases, for the summary (where a replay's time goes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._open: tuple[str, float] | None = None

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.start(name)
        try:
            yield
        finally:
            self.stop()

    def start(self, name: str) -> None:
        self.stop()
        self._open = (name, time.monotonic())

    def stop(self) -> None:
        if self._open is not None:
            name, began = self._open
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - began, 3)
            self._open = None

    def to_dict(self) -> dict[str, float]:
        return dict(self.seconds)


class Totals:
    """Sums over the keys' summaries: counts, invalid reasons, metrics pooled over every key."""

    def __init__(self) -> None:
        self.keys = 0
        self.models = 0
        self.counts = Counter[str]()
        self.reasons = Counter[str]()
        self.sums = Counter[str]()
        # Delayed labels: the keys' counts summed, their recent delays pooled (as the processor's
        # overall metrics pool them).
        self.labels = Counter[str]()
        self.delays: dict[str, list[int]] = {"ms": [], "rows": []}

    def add(self, key_summary: Mapping[str, Any]) -> None:
        self.keys += 1
        self.models += 1 if key_summary.get("fingerprint") else 0
        for name in ("rows", "learned", "duplicates", "invalid"):
            self.counts[name] += int(key_summary[name])
        self.reasons.update(key_summary.get("reasons", {}))
        self.sums.update(key_summary.get("sums", {}))
        self.counts["drifts"] += int(key_summary.get("drifts", 0))
        labels = key_summary.get("labels")
        if labels:
            self.labels.update({name: int(labels[name]) for name in LABEL_COUNTS})
            for unit, values in key_summary.get("delays", {}).items():
                self.delays[unit].extend(values)

    def label_figures(self) -> dict[str, Any]:
        """The delayed-label figures pooled over the keys (the processor's overall record's fields):
        ``features_served`` = ``labels_learned`` + ``expired`` + ``pending``."""
        from kappaml.pending import quantiles

        return {**{name: self.labels[name] for name in LABEL_COUNTS},
                "delay_ms": quantiles(self.delays["ms"]), "delay_rows": quantiles(self.delays["rows"])}

    def metrics(self) -> dict[str, float | int | None]:
        """Cumulative RMSE, MAE and R2 over every learned record of every key."""
        n = self.counts["learned"]
        if n == 0:
            return {"n": 0, "rmse": None, "mae": None, "r2": None}
        se, sy = self.sums["se"], self.sums["y"]
        sst = self.sums["y2"] - sy * sy / n
        return {
            "n": n,
            "rmse": math.sqrt(se / n),
            "mae": self.sums["ae"] / n,
            "r2": 1.0 - se / sst if sst > 1e-12 * max(self.sums["y2"], 1e-300) else None,
        }

    def top_reasons(self) -> dict[str, int]:
        return dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP_REASONS])

    def to_dict(self) -> dict[str, int]:
        counts = {"rows": self.counts["rows"], "keys": self.keys, "models": self.models,
                  "learned": self.counts["learned"], "duplicates": self.counts["duplicates"],
                  "invalid": self.counts["invalid"]}
        if self.labels:  # a log with features/label records
            counts.update({name: self.labels[name] for name in LABEL_COUNTS if name != "pending_bytes"})
        return counts


class LineupTotals:
    """Totals per spec of the lineup, and every drift detection, from the keys' summaries."""

    def __init__(self, lineup: Lineup) -> None:
        self.lineup = lineup
        self.specs = {spec: Totals() for spec in lineup.specs}
        self.drifts: list[DriftEvent] = []

    def add(self, key_summary: dict[str, Any]) -> None:
        """Count one (key, spec) summary; its detections move to ``drifts``."""
        self.drifts.extend(key_summary.pop("detections", []))
        self.specs[key_summary["spec"]].add(key_summary)

    @property
    def champion(self) -> Totals:
        return self.specs[self.lineup.champion]

    def by_spec(self) -> dict[str, dict[str, Any]]:
        return {spec: {"role": "champion" if spec == self.lineup.champion else "challenger",
                       "totals": t.to_dict(), "metrics": t.metrics(), "drifts": t.counts["drifts"],
                       "invalid_reasons": t.top_reasons(),
                       **({"labels": t.label_figures()} if t.labels else {})}
                for spec, t in self.specs.items()}

    def sorted_drifts(self) -> list[DriftEvent]:
        order = {spec: i for i, spec in enumerate(self.lineup.specs)}
        return sorted(self.drifts, key=lambda d: (d.partition, d.offset, order[d.spec]))


def key_label_figures(keys: Iterable[Mapping[str, Any]], spec: str) -> dict[str, dict[str, Any]]:
    """Per model key, the delayed-label figures of ``spec`` (a key in two partitions: pooled)."""
    per_key: dict[str, Totals] = {}
    for summary in keys:
        if summary.get("spec") == spec and summary.get("labels") and summary.get("key") is not None:
            per_key.setdefault(summary["key"], Totals()).add(summary)
    return {key: totals.label_figures() for key, totals in per_key.items()}


def control_report(promotions: PromotionLog, records: int) -> dict[str, Any]:
    """The control records of the range: promotions applied, ignored (other versions) and
    refused, i.e. those the processor dead-letters (not JSON, unknown, a spec not running)."""
    applied = sum(len(c) for c in promotions.changes().values())
    refused = len(promotions.problems)
    return {"records": records, "promotions": applied, "ignored": records - applied - refused,
            "invalid": refused,
            "problems": [{"partition": p, "offset": o, "reason": r} for p, o, r in promotions.problems]}


def serving_report(promotions: PromotionLog, partitions: Iterable[int]) -> dict[str, Any]:
    """Which spec served each partition: from the start, the champion; from the record after
    each promotion's control record (``offset``), the promoted spec; ``final``: at the end."""
    changes = promotions.changes()
    return {"champion": promotions.lineup.champion,
            "changes": {str(p): [{"offset": o, "spec": s} for o, s in c] for p, c in sorted(changes.items())},
            "final": {str(p): promotions.champion_at(p, 1 << 62) for p in sorted(partitions)}}


def gather_predictions(file_rows: Path, written: Path, target: Path) -> int:
    """Move the prediction files the committed task outputs name from ``written`` into
    ``target`` (a fresh folder), drop the rest (failed attempts'); returns the rows moved."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    rows = 0
    if file_rows.exists():
        names = pyarrow.dataset.dataset(file_rows, format="parquet").to_table(columns=["summary", "offset"])
        for name, count in zip(*(names.column(i).to_pylist() for i in range(2)), strict=True):
            if not (written / name).exists():
                raise ReplayError(f"prediction file {name} is not in {written}: the output folder must be "
                                  "one the driver and the executors share (any local path with local[N])")
            os.replace(written / name, target / name)
            rows += count
    shutil.rmtree(written, ignore_errors=True)
    return rows


def write_summary(out_dir: Path, summary: Mapping[str, Any], keys: Iterable[Mapping[str, Any]]) -> Path:
    # Per key: what a cut-over needs and its metrics; the pooling sums stay internal.
    entries = [{k: v for k, v in key.items() if k not in ("sums", "reasons", "detections", "delays")}
               for key in keys]
    order = {spec: i for i, spec in enumerate(summary.get("specs", {}))}
    entries.sort(key=lambda k: (k["key"] is None, k["key"] or "", k["partition"],
                                order.get(k.get("spec"), 0)))
    doc = {**summary, "keys": entries}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SUMMARY
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
