"""The replay's prequential metrics, published where the live processor publishes its own.

The UI's Evaluation page draws every series of the metrics topic: per (version, key, spec) the
records of scope ``key`` and the version's ``overall`` records. The replay computes the same
cumulative and rolling RMSE/MAE/R² over its served predictions (the champion spec's, in offset
order per key, as live), and publishes a bounded number of points per series, labelled
``origin=replay``, so a replayed version is drawn beside the live ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from kappaml.evaluation import PrequentialMetrics
from kappaml.kafka import KafkaSettings
from kappaml.logging import get_logger
from kappaml.records import OVERALL_KEY, KeyMetrics, OverallMetrics
from spark_batch.errors import ReplayError

__all__ = ["publish_metrics"]

log = get_logger(__name__)

# Points per series: enough for a smooth line, few enough for a UI reading the whole topic.
MAX_POINTS_PER_KEY = 200
MAX_POINTS_OVERALL = 500
MAX_RECORDS = 20_000


def _points(predictions: Path, spec: str) -> dict[str, list[tuple[int, int, float, float, int | None]]]:
    """Per key: (partition, offset, y_true, y_pred, ts) of the rows ``spec`` learned, in order."""
    import pyarrow.compute as pc  # pyarrow comes with pyspark on the driver
    import pyarrow.dataset as ds

    table = ds.dataset(predictions, format="parquet").to_table(
        columns=["partition", "offset", "key", "ts", "y_true", "y_pred"],
        filter=(pc.field("spec") == spec) & (pc.field("status") == "learned"))
    by_key: dict[str, list[tuple[int, int, float, float, int | None]]] = {}
    columns = [table.column(c).to_pylist() for c in ("key", "partition", "offset", "y_true", "y_pred", "ts")]
    for key, partition, offset, y_true, y_pred, ts in zip(*columns, strict=True):
        by_key.setdefault(key, []).append((partition, offset, y_true, y_pred, ts))
    for rows in by_key.values():
        # Stable, by position only: a record can score several served predictions (its label and
        # expiries learned before it), in the order the key's state learned them.
        rows.sort(key=lambda r: (r[0], r[1]))
    return by_key


def _record(scope: str, key: str, version: str, spec: str, metrics: PrequentialMetrics, ts: int,
            **extra: Any) -> bytes:
    values = metrics.get()
    cls = KeyMetrics if scope == "key" else OverallMetrics
    return cls(key=key, version=version, spec=spec, origin="replay", role="champion", learned=values["n"],
               ts=ts, **values, **extra).encode()


def publish_metrics(kafka: KafkaSettings, topic: str, predictions: Path, version: str, spec: str,
                    window: int, labels: Mapping[str, Any] | None = None) -> int:
    """Publish the replay's metrics series of ``spec`` to ``topic``; how many records.

    ``labels``: with delayed labels, the figures at the end of the replay (``keys``: per key;
    ``overall``: pooled, with the label policy), carried by each series' last record, in the
    fields of the processor's records (features_served, labels_learned, expired, pending, ...).
    """
    key_labels = (labels or {}).get("keys", {})
    overall_labels = (labels or {}).get("overall", {})
    by_key = _points(predictions, spec)
    now = int(time.time() * 1000)
    producer = Producer({**kafka.client_config(), "enable.idempotence": "true", "linger.ms": "20"})
    errors: list[str] = []

    def send(key: str, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, key=key.encode("utf-8"), value=value,
                                 on_delivery=lambda err, _m: err is not None and errors.append(err.str()))
                return
            except BufferError:
                producer.poll(0.5)

    per_key = max(2, min(MAX_POINTS_PER_KEY, MAX_RECORDS // max(len(by_key), 1)))
    overall = PrequentialMetrics(window=window)
    merged: list[tuple[int, int, float, float, int | None]] = []
    sent = 0
    for key, rows in by_key.items():
        metrics = PrequentialMetrics(window=window)
        step = math.ceil(len(rows) / per_key)
        for i, (_p, offset, y_true, y_pred, ts) in enumerate(rows, start=1):
            metrics.update(y_true, y_pred)
            if i % step == 0 or i == len(rows):
                extra = key_labels.get(key, {}) if i == len(rows) else {}
                send(key, _record("key", key, version, spec, metrics, ts if ts is not None else now,
                                  last_offset=offset, **extra))
                sent += 1
        merged.extend(rows)
    # Overall: every served prediction in event order (offsets are only ordered per partition).
    merged.sort(key=lambda r: (r[4] if r[4] is not None else 0, r[0], r[1]))
    step = math.ceil(len(merged) / MAX_POINTS_OVERALL) if merged else 1
    for i, (_p, _o, y_true, y_pred, ts) in enumerate(merged, start=1):
        overall.update(y_true, y_pred)
        if i % step == 0 or i == len(merged):
            extra = overall_labels if i == len(merged) else {}
            send(OVERALL_KEY, _record("overall", OVERALL_KEY, version, spec, overall,
                                      ts if ts is not None else now, keys=len(by_key), **extra))
            sent += 1
    left = producer.flush(60)
    if left or errors:
        raise ReplayError(f"replay metrics not delivered to {topic}: "
                          f"{left} pending, {len(errors)} refused{': ' + errors[0] if errors else ''}")
    log.info("replay metrics published", topic=topic, records=sent, keys=len(by_key), version=version)
    return sent
