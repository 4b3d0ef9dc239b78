"""The metrics topic's records, told apart by ``scope``: ``key`` (one key's model), ``overall``
(one processor's, or one replay's, pooled figures), ``comparison`` (every spec side by side,
``kappaml.records.comparison``), ``promotion`` (a promotion a processor applied) and ``gate``
(one look of the promotion gate at one challenger, ``kappaml.records.gatelook``).

``decode_metrics`` reads any of them. The processor writes them at every checkpoint; the
Spark replay writes ``key`` and ``overall`` series labelled ``origin=replay``
(``spark_batch.metrics_feed``), without the processor-only fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from kappaml.example import InvalidRecord
from kappaml.records.base import Record, check_version, doc, loads, record
from kappaml.records.comparison import COMPARISON_KEY, Comparison
from kappaml.records.control import GateEvidence
from kappaml.records.gatelook import GATE_KEY, GateLook

__all__ = ["OVERALL_KEY", "PROMOTION_KEY", "KeyMetrics", "MetricsRecord", "OverallMetrics",
           "PromotionApplied", "decode_metrics", "metrics_from_dict"]

# Kafka keys (and ``key`` fields) of the records that are not one model key's.
OVERALL_KEY = "__overall__"
PROMOTION_KEY = "__promotion__"

_N = "predictions scored (cumulative)"
# Delayed labels: features_served = labels_learned + expired + pending, always.
_SERVED = "features records predicted (served predictions; duplicates excluded)"
_LEARNED = "served predictions learned with their label (delayed prequential)"
_EXPIRED = "served predictions whose label did not come within --label-ttl (dropped or learned)"
_PENDING = "served predictions waiting for their label now"
_BYTES = "approximate stored size of the pending predictions (bytes)"
_EARLY = "labels waiting for their features now"
_ORPHANS = "labels that never paired: early labels past --label-ttl, labels after their prediction expired"
_DELAY_MS = "label delay (label ts - features ts, ms) p50/p95/p99 over the recent labels"
_DELAY_ROWS = "label delay in records of the key, p50/p95/p99 over the recent labels"
_WINDOW = "of the rolling window (the last `window` predictions)"


@record("key metrics record")
class KeyMetrics(Record):
    """One key's prequential metrics of one spec, at a checkpoint (or a point of a replay's series)."""

    scope: Literal["key"] = doc("the record's kind", default="key")
    key: str = doc("the model key")
    version: str = doc("the model version")
    spec: str = doc("the model spec")
    learned: int = doc("examples learned")
    ts: int = doc("when it was written (ms since the epoch; the replay: the event time of the point)")
    role: str | None = doc("champion or challenger", default=None)
    origin: str | None = doc("replay for the Spark replay's series; absent for the processor's", default=None)
    generation: int | None = doc("drift resets so far (processor)", default=None)
    drifts: int | None = doc("drift detections so far (processor)", default=None)
    skipped: int | None = doc("duplicates skipped (processor)", default=None)
    last_offset: int | None = doc("raw-topic offset of the last record learned", default=None)
    n: int | None = doc(_N, default=None)
    invalid: int | None = doc("examples the metrics refused", default=None)
    rmse: float | None = doc("cumulative RMSE (null until defined)", default=None, keep_null=True)
    mae: float | None = doc("cumulative MAE (null until defined)", default=None, keep_null=True)
    r2: float | None = doc("cumulative R² (null until defined)", default=None, keep_null=True)
    window: int | None = doc("size of the rolling window", default=None)
    rolling_n: int | None = doc(f"predictions {_WINDOW}", default=None)
    rolling_rmse: float | None = doc(f"RMSE {_WINDOW}", default=None, keep_null=True)
    rolling_mae: float | None = doc(f"MAE {_WINDOW}", default=None, keep_null=True)
    rolling_r2: float | None = doc(f"R² {_WINDOW}", default=None, keep_null=True)
    # Delayed labels (processor; absent while the key had no features/label records).
    features_served: int | None = doc(_SERVED, default=None)
    labels_learned: int | None = doc(_LEARNED, default=None)
    expired: int | None = doc(_EXPIRED, default=None)
    pending: int | None = doc(_PENDING, default=None)
    pending_bytes: int | None = doc(_BYTES, default=None)
    early_labels: int | None = doc(_EARLY, default=None)
    orphan_labels: int | None = doc(_ORPHANS, default=None)
    delay_ms: dict[str, float] | None = doc(_DELAY_MS, default=None)
    delay_rows: dict[str, float] | None = doc(_DELAY_ROWS, default=None)


@record("overall metrics record")
class OverallMetrics(Record):
    """Pooled figures of every key: the served predictions of one processor instance, or a replay's."""

    scope: Literal["overall"] = doc("the record's kind", default="overall")
    key: str = doc(f"always {OVERALL_KEY}", default=OVERALL_KEY)
    version: str = doc("the model version")
    spec: str = doc("the spec the version was started with (the scores are of the served predictions)")
    learned: int = doc("examples learned by the serving models")
    ts: int = doc("when it was written (ms since the epoch)")
    rmse: float | None = doc("RMSE of the served predictions", default=None, keep_null=True)
    mae: float | None = doc("MAE of the served predictions", default=None, keep_null=True)
    rolling_rmse: float | None = doc("RMSE over each key's rolling window, pooled", default=None,
                                     keep_null=True)
    rolling_mae: float | None = doc("MAE over each key's rolling window, pooled", default=None,
                                    keep_null=True)
    keys: int | None = doc("model keys", default=None)
    role: str | None = doc("champion (replay)", default=None)
    origin: str | None = doc("replay for the Spark replay's series", default=None)
    # The processor's.
    champions: dict[str, str] | None = doc("the spec serving each partition (after promotions)", default=None)
    challengers: list[str] | None = doc("the challenger specs", default=None)
    instance: str | None = doc("the processor instance", default=None)
    scored: str | None = doc("whose predictions the errors are of: served", default=None)
    skipped: int | None = doc("duplicates skipped by the serving models", default=None)
    invalid: int | None = doc("messages dead-lettered (processor) or refused by the metrics (replay)",
                              default=None)
    served: int | None = doc("predictions served", default=None)
    drifts: int | None = doc("drift detections of every spec", default=None)
    throughput: float | None = doc("messages per second over the last interval", default=None)
    latency_ms: dict[str, float] | None = doc("event-to-prediction latency quantiles (p50, p95, p99)",
                                             default=None)
    duplicates: dict[str, Any] | None = doc("the duplicate watch: share of rows skipped as already learned",
                                            default=None)
    timing: dict[str, Any] | None = doc("checkpoint timing and GC pauses, now and then", default=None)
    # The replay's (kappaml.evaluation.PrequentialMetrics of every served prediction).
    n: int | None = doc(_N, default=None)
    r2: float | None = doc("cumulative R²", default=None)
    window: int | None = doc("size of the rolling window", default=None)
    rolling_n: int | None = doc(f"predictions {_WINDOW}", default=None)
    rolling_r2: float | None = doc(f"R² {_WINDOW}", default=None)
    # Delayed labels, pooled over the serving models (processor; absent without any).
    features_served: int | None = doc(_SERVED, default=None)
    labels_learned: int | None = doc(_LEARNED, default=None)
    expired: int | None = doc(_EXPIRED, default=None)
    pending: int | None = doc(_PENDING, default=None)
    pending_bytes: int | None = doc(_BYTES, default=None)
    early_labels: int | None = doc(_EARLY, default=None)
    orphan_labels: int | None = doc(_ORPHANS, default=None)
    delay_ms: dict[str, float] | None = doc(_DELAY_MS, default=None)
    delay_rows: dict[str, float] | None = doc(_DELAY_ROWS, default=None)
    label_ttl: str | None = doc("the processor's --label-ttl (N records, Ns seconds of event time, none)",
                                default=None)
    on_missing_label: str | None = doc("the processor's --on-missing-label (drop or learn=VALUE)",
                                       default=None)


@record("promotion record")
class PromotionApplied(Record):
    """A promotion as one processor applied it to one partition (from the record after ``offset`` on)."""

    scope: Literal["promotion"] = doc("the record's kind", default="promotion")
    key: str = doc(f"always {PROMOTION_KEY}", default=PROMOTION_KEY)
    version: str = doc("the model version")
    spec: str = doc("the spec now serving the partition")
    previous: str = doc("the spec that served it before")
    partition: int = doc("the raw-topic partition")
    offset: int = doc("raw-topic offset after which it serves: the control record's, or for the gate's "
                      "own promotions the one it decided at (Promotion.after)")
    id: str = doc("the promotion's id (the same in every partition)")
    by: str = doc("who asked for it (user@host)")
    requested_ts: int = doc("when it was requested (ms since the epoch)")
    ts: int = doc("when it was applied (ms since the epoch)")
    instance: str | None = doc("the processor instance that applied it", default=None)
    reason: str | None = doc("the control record's reason: gate, rollback, auto-rollback, takeover; absent "
                             "for a manual promote", default=None)
    model_key: str | None = doc("reason takeover: the model key whose background model took over",
                                default=None)
    evidence: GateEvidence | None = doc("the control record's evidence (reasons gate, auto-rollback, "
                                        "takeover)", default=None)
    generation: int | None = doc("reason takeover: the generation now serving the key; rollback to a "
                                 "generation: that generation", default=None)


MetricsRecord = KeyMetrics | OverallMetrics | Comparison | PromotionApplied | GateLook
_SCOPES: dict[str, type[Record]] = {"key": KeyMetrics, "overall": OverallMetrics, "comparison": Comparison,
                                    "promotion": PromotionApplied, "gate": GateLook}


def metrics_from_dict(data: Any) -> MetricsRecord:
    """The typed record of a metrics-topic JSON object, by its ``scope``."""
    if not isinstance(data, Mapping):
        raise InvalidRecord("metrics record is not a JSON object", value=type(data).__name__)
    cls = _SCOPES.get(data.get("scope"))  # type: ignore[arg-type]
    if cls is None:
        raise InvalidRecord(f"metrics record has an unknown scope (expected one of {sorted(_SCOPES)})",
                            column="scope", value=data.get("scope"))
    check_version(data, cls.WHAT)
    return cls._from_fields(data)  # type: ignore[return-value]  # noqa: SLF001


def decode_metrics(value: bytes | bytearray | memoryview | str | None) -> MetricsRecord:
    """``metrics_from_dict`` of a message value."""
    return metrics_from_dict(loads(value, "metrics record"))


__all__ += ["COMPARISON_KEY", "GATE_KEY"]
