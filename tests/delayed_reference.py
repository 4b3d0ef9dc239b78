"""An independent, plain sequential loop over one key's raw records with delayed labels.

It applies the rules of issue 17 (docs/processor.md, "Delayed labels") written out again with
plain dicts, sharing nothing with ``kappaml.learner`` / ``kappaml.pending`` but the model
itself: the tests compare its model fingerprint, pending ids and counts with what the core
functions (and the processor, and the replay) end with.

Records are the raw JSON objects (``make_record`` / ``make_features`` / ``make_label``), one
key's, in offset order; every record is valid.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from kappaml.dataset import Dataset
from kappaml.fingerprint import fingerprint
from kappaml.models import build_model
from kappaml.records import make_features, make_label, model_key

__all__ = ["Reference", "reference_loop", "split_rows"]


@dataclass
class Reference:
    model: Any
    pending: dict[tuple[str, Any], dict[str, Any]] = field(default_factory=dict)
    early: dict[tuple[str, Any], dict[str, Any]] = field(default_factory=dict)
    learned: list[tuple[str, Any]] = field(default_factory=list)  # in learning order
    expired: list[tuple[str, Any]] = field(default_factory=list)  # in expiry order
    served: int = 0
    paired: int = 0
    orphans: int = 0
    duplicates: int = 0
    served_predictions: dict[tuple[str, Any], float] = field(default_factory=dict)
    scored: list[tuple[Any, float, float]] = field(default_factory=list)  # (id, y_true, y_pred served)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.model)

    def pending_ids(self) -> set[tuple[str, Any]]:
        return set(self.pending)


def _predict(model: Any, x: dict[str, Any]) -> float:
    y = model.predict_one(x)
    return float(y) if y is not None and math.isfinite(y) else 0.0


def reference_loop(dataset: Dataset, spec: str, records: list[dict[str, Any]], *, ttl_rows: int | None = None,
                   ttl_ms: int | None = None, learn_missing: float | None = None) -> Reference:
    """One key's records in offset order -> the model and the delayed-label bookkeeping."""
    ref = Reference(model=build_model(spec, dataset))
    model = ref.model
    learned: set[tuple[str, Any]] = set()
    closed: set[tuple[str, Any]] = set()
    seq = 0
    clock: int | None = None
    for record in records:
        seq += 1
        ts = record.get("ts")
        if ts is not None:
            clock = ts if clock is None else max(clock, ts)

        def old(entry: dict[str, Any], _seq: int = seq, _clock: int | None = clock) -> bool:
            if ttl_rows is not None:
                return _seq - entry["seq"] > ttl_rows
            if ttl_ms is not None and _clock is not None and entry["ts"] is not None:
                return _clock - entry["ts"] > ttl_ms
            return False

        def order(item: tuple[tuple[str, Any], dict[str, Any]]) -> tuple[int, int]:
            entry = item[1]
            return (entry["seq"] if ttl_rows is not None else entry["ts"], entry["seq"])

        for rid, entry in sorted([(r, e) for r, e in ref.pending.items() if old(e)], key=order):
            del ref.pending[rid]
            closed.add(rid)
            ref.expired.append(rid)
            if learn_missing is not None:
                model.learn_one(entry["x"], learn_missing)
                learned.add(rid)
                ref.learned.append(rid)
        for rid in [r for r, e in ref.early.items() if old(e)]:
            del ref.early[rid]
            ref.orphans += 1

        rid = (record.get("stream") or "", record["id"])
        kind = record.get("kind", "labelled")
        if kind == "labelled":
            if rid in learned:
                ref.duplicates += 1
                continue
            x = {f: record["row"][f] for f in dataset.feature_names}
            x = {f: (float(v) if not isinstance(v, str) else v) for f, v in x.items()}
            model.predict_one(x)
            model.learn_one(x, float(record["row"][dataset.target]))
            learned.add(rid)
            ref.learned.append(rid)
        elif kind == "features":
            if rid in learned or rid in ref.pending or rid in closed:
                ref.duplicates += 1
                continue
            x = {f: record["row"][f] for f in dataset.feature_names}
            x = {f: (float(v) if not isinstance(v, str) else v) for f, v in x.items()}
            y_pred = _predict(model, x)
            ref.served += 1
            ref.served_predictions[rid] = y_pred
            if rid in ref.early:
                label = ref.early.pop(rid)
                model.learn_one(x, label["y"])
                learned.add(rid)
                ref.learned.append(rid)
                ref.paired += 1
                ref.scored.append((rid[1], label["y"], y_pred))
            else:
                ref.pending[rid] = {"x": x, "y_pred": y_pred, "seq": seq, "ts": ts}
        else:
            y = float(record["target"])
            if rid in closed:
                ref.orphans += 1
            elif rid in learned or rid in ref.early:
                ref.duplicates += 1
            elif rid in ref.pending:
                entry = ref.pending.pop(rid)
                model.learn_one(entry["x"], y)
                learned.add(rid)
                ref.learned.append(rid)
                ref.paired += 1
                ref.scored.append((rid[1], y, entry["y_pred"]))
            else:
                ref.early[rid] = {"y": y, "seq": seq, "ts": ts}
    return ref


def split_rows(dataset: Dataset, rows: list[dict[str, Any]], *, delay: int, drop: float = 0.0, seed: int = 1,
               ts0: int = 1_700_000_000_000, ts_step: int = 1000, stream: str | None = None
               ) -> tuple[list[dict[str, Any]], set[int]]:
    """Every row (id = its 1-based number) as a ``features`` record now and its ``label`` ``delay``
    rows later (event time ``delay * ts_step`` later); a fraction ``drop`` of labels never comes.

    Returns the records in log order (the labels due at a row before its features) and the ids
    whose label was dropped.
    """
    rng = random.Random(seed)
    events: list[tuple[int, int, dict[str, Any]]] = []
    dropped: set[int] = set()
    for i, row in enumerate(rows, start=1):
        ts = ts0 + i * ts_step
        events.append((i, 1, make_features(dataset, i, row, ts, stream)))
        if rng.random() < drop:
            dropped.add(i)
            continue
        label = make_label(dataset, i, model_key(dataset, row), float(row[dataset.target]),
                           ts + delay * ts_step, stream)
        events.append((i + delay, 0, label))
    events.sort(key=lambda e: (e[0], e[1]))
    return [record for _p, _o, record in events], dropped
