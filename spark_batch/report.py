"""The replay's report: ``summary.json`` beside ``predictions.parquet`` in the output folder.

The summary is written last (atomically), so its presence means the replay finished: every
snapshot it lists was delivered. It carries what a cut-over needs: per key the partition and
last offset learned, per partition the pinned end offset to continue from.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["PREDICTIONS", "SUMMARY", "Totals", "write_summary"]

SUMMARY = "summary.json"
PREDICTIONS = "predictions.parquet"
_TOP_REASONS = 20


class Totals:
    """Sums over the keys' summaries: counts, invalid reasons, metrics pooled over every key."""

    def __init__(self) -> None:
        self.keys = 0
        self.models = 0
        self.counts = Counter[str]()
        self.reasons = Counter[str]()
        self.sums = Counter[str]()

    def add(self, key_summary: Mapping[str, Any]) -> None:
        self.keys += 1
        self.models += 1 if key_summary.get("fingerprint") else 0
        for name in ("rows", "learned", "duplicates", "invalid"):
            self.counts[name] += int(key_summary[name])
        self.reasons.update(key_summary.get("reasons", {}))
        self.sums.update(key_summary.get("sums", {}))

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
        return {"rows": self.counts["rows"], "keys": self.keys, "models": self.models,
                "learned": self.counts["learned"], "duplicates": self.counts["duplicates"],
                "invalid": self.counts["invalid"]}


def write_summary(out_dir: Path, summary: Mapping[str, Any], keys: Iterable[Mapping[str, Any]]) -> Path:
    # Per key: what a cut-over needs and its metrics; the pooling sums stay internal.
    entries = [{k: v for k, v in key.items() if k not in ("sums", "reasons")} for key in keys]
    entries.sort(key=lambda k: (k["key"] is None, k["key"] or "", k["partition"]))
    doc = {**summary, "keys": entries}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SUMMARY
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
