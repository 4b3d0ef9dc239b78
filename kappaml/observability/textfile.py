"""The Spark replay's metrics as a Prometheus textfile (node-exporter's textfile-collector format).

A replay is a batch job: nothing stays up to be scraped. It writes ``metrics.prom`` beside its
``summary.json`` (and to ``--metrics-textfile PATH`` when given), atomically, with the figures
of the finished run. Point node-exporter's ``--collector.textfile.directory`` at the folder of
``--metrics-textfile`` (docs/metrics.md). Every value is a gauge: the last replay's figures,
labelled with its model version and spec.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

__all__ = ["TEXTFILE", "replay_registry", "write_replay_textfile"]

TEXTFILE = "metrics.prom"
_TOTALS = (
    ("rows", "Raw-topic records the last replay read."),
    ("keys", "Keys (models) the last replay learned."),
    ("learned", "Records the last replay's champion spec learned."),
    ("duplicates", "Records the last replay skipped as duplicates."),
    ("invalid", "Records the last replay found invalid."),
)

# Delayed labels (issue 17): features_served = labels_learned + expired + pending.
_LABELS = (
    ("features_served", "Features records the last replay's champion spec served a prediction for."),
    ("labels_learned", "Served predictions the last replay learned with their label."),
    ("expired", "Served predictions whose label did not come within --label-ttl in the last replay."),
    ("pending", "Served predictions still waiting for their label at the end of the last replay."),
    ("orphan_labels", "Labels that never paired with their features in the last replay."),
)


def replay_registry(summary: Mapping[str, Any], finished: float | None = None) -> CollectorRegistry:
    """The registry of one finished replay's figures, from its summary document."""
    registry = CollectorRegistry()
    labels = ["version", "spec"]
    values = [str(summary.get("version", "")), str(summary.get("spec", ""))]
    totals = summary.get("totals", {})
    p = "kappaml_replay_"
    for name, doc in _TOTALS:
        Gauge(p + name, doc, labels, registry=registry).labels(*values).set(float(totals.get(name, 0)))
    delayed = summary.get("labels") or {}
    if "features_served" in delayed:  # a log with delayed labels: the champion's figures at the end
        for name, doc in _LABELS:
            Gauge(p + name, doc, labels, registry=registry).labels(*values).set(float(delayed.get(name, 0)))
    Gauge(p + "drifts", "Drift detections in the last replay.", labels, registry=registry).labels(
        *values).set(len(summary.get("drifts", [])))
    Gauge(p + "published_snapshots", "Model snapshots the last replay published.", labels,
          registry=registry).labels(*values).set(float(summary.get("published", 0)))
    rmse = (summary.get("metrics") or {}).get("rmse")
    if rmse is not None:
        Gauge(p + "rmse", "Prequential RMSE of the last replay's champion spec (target units).", labels,
              registry=registry).labels(*values).set(float(rmse))
    phases = Gauge(p + "phase_seconds", "Wall seconds of each phase of the last replay.", [*labels, "phase"],
                   registry=registry)
    for phase, seconds in sorted((summary.get("phases") or {}).items()):
        phases.labels(*values, phase).set(float(seconds))
    Gauge(p + "duration_seconds", "Wall seconds of the last replay, start to summary.", labels,
          registry=registry).labels(*values).set(float(summary.get("seconds", 0.0)))
    Gauge(p + "last_success_timestamp_seconds", "When the last replay finished (Unix time).", labels,
          registry=registry).labels(*values).set(time.time() if finished is None else finished)
    return registry


def write_replay_textfile(summary: Mapping[str, Any], *paths: Path | None) -> list[Path]:
    """Write the replay's textfile at each of ``paths`` (None skipped); atomic, like summary.json."""
    registry = replay_registry(summary)
    written = []
    for path in paths:
        if path is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry)
        written.append(path)
    return written
