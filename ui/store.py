"""Bounded in-memory state the background reader fills and the pages read.

Every method takes the lock for a short copy, so a page never waits on Kafka: it renders
whatever the reader has gathered so far.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from kappaml.records import (
    COMPARISON_KEY,
    OVERALL_KEY,
    PROMOTION_KEY,
    Comparison,
    DeadLetter,
    DriftEvent,
    GateLook,
    KeyMetrics,
    MetricsRecord,
    OverallMetrics,
    Prediction,
    PromotionApplied,
    ServedPrediction,
)

__all__ = [
    "COMPARISON_KEY",
    "OVERALL_KEY",
    "PROMOTION_KEY",
    "GroupLag",
    "KafkaStatus",
    "LiveStore",
    "PipelineInfo",
    "Series",
    "SnapshotRef",
    "StoreView",
    "TopicInfo",
]


# (version, model key, spec): since challengers run beside the champion, one model key of one
# version has one series per spec.
MetricsKey = tuple[str, str, str]


class Series:
    """An append-only history that thins out its oldest half instead of forgetting it.

    When full, every other point of the older half is dropped: recent points keep full
    resolution, the whole history stays visible at a coarser one, memory stays bounded.
    """

    def __init__(self, cap: int = 2000) -> None:
        if cap < 8:
            raise ValueError(f"a series needs a capacity of at least 8 points, got {cap}")
        self.cap = cap
        self.points: list[Any] = []

    def append(self, point: Any) -> None:
        self.points.append(point)
        if len(self.points) > self.cap:
            half = self.cap // 2
            self.points = self.points[:half:2] + self.points[half:]

    def __len__(self) -> int:
        return len(self.points)


@dataclass(frozen=True)
class SnapshotRef:
    """The newest encoded snapshot of one (version, key); decoded only when a page needs it."""

    version: str
    key: str
    partition: int
    offset: int
    value: bytes
    received_at: float


@dataclass(frozen=True)
class TopicInfo:
    name: str
    role: str
    start_offsets: dict[int, int]
    end_offsets: dict[int, int]

    @property
    def partitions(self) -> int:
        return len(self.end_offsets)

    @property
    def messages(self) -> int:
        """Messages currently retained (compaction and transaction markers make this approximate)."""
        return sum(self.end_offsets[p] - self.start_offsets.get(p, 0) for p in self.end_offsets)


@dataclass(frozen=True)
class GroupLag:
    group: str
    version: str
    committed: dict[int, int]
    lag: dict[int, int]

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


@dataclass(frozen=True)
class PipelineInfo:
    topics: tuple[TopicInfo, ...] = ()
    groups: tuple[GroupLag, ...] = ()
    raw_rate: float | None = None  # messages/s appended to the raw topic since the previous look
    taken_at: float = 0.0


@dataclass(frozen=True)
class KafkaStatus:
    connected: bool = False
    error: str | None = None
    checked_at: float = 0.0
    # The project's topics that were missing at the last look (the pipeline was never started).
    missing_topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoreView:
    """A consistent copy of everything, taken under the lock in one go."""

    status: KafkaStatus
    loaded: bool
    metrics: dict[MetricsKey, list[KeyMetrics | OverallMetrics]]
    comparisons: dict[str, list[Comparison]]  # version -> comparison records, oldest first
    promotions: list[PromotionApplied]  # oldest first
    gate_looks: list[GateLook]  # the promotion gate's looks, oldest first
    drifts: list[DriftEvent]  # oldest first
    # Scored predictions, and with delayed labels the served ones (before their label).
    predictions: list[Prediction | ServedPrediction]
    dlq: list[DeadLetter]
    dlq_reasons: dict[tuple[str, str], int]
    snapshots: dict[tuple[str, str], SnapshotRef]
    pipeline: PipelineInfo
    unreadable: int
    last_unreadable: str | None

    @property
    def has_data(self) -> bool:
        return bool(self.metrics or self.predictions or self.snapshots or self.dlq or self.drifts
                    or self.comparisons)

    def latest_overall(self) -> dict[str, OverallMetrics]:
        """The newest overall metrics record of each version."""
        latest: dict[str, OverallMetrics] = {}
        for (version, key, _spec), points in self.metrics.items():
            last = points[-1] if points else None
            if key != OVERALL_KEY or not isinstance(last, OverallMetrics):
                continue
            if version not in latest or last.ts >= latest[version].ts:
                latest[version] = last
        return latest


@dataclass
class LiveStore:
    series_cap: int = 2000
    predictions_cap: int = 5000
    dlq_cap: int = 200
    drift_cap: int = 500
    promotions_cap: int = 200
    gate_cap: int = 5000  # a look per challenger every --gate-every rows of a partition
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _status: KafkaStatus = field(default_factory=KafkaStatus)
    _loaded: bool = False
    _metrics: dict[MetricsKey, Series] = field(default_factory=dict)
    _comparisons: dict[str, Series] = field(default_factory=dict)
    _promotions: deque[PromotionApplied] = field(init=False)
    _gate_looks: deque[GateLook] = field(init=False)
    _drifts: deque[DriftEvent] = field(init=False)
    _predictions: deque[Prediction | ServedPrediction] = field(init=False)
    _dlq: deque[DeadLetter] = field(init=False)
    _dlq_reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    _snapshots: dict[tuple[str, str], SnapshotRef] = field(default_factory=dict)
    _pipeline: PipelineInfo = field(default_factory=PipelineInfo)
    _unreadable: int = 0
    _last_unreadable: str | None = None

    def __post_init__(self) -> None:
        self._predictions = deque(maxlen=self.predictions_cap)
        self._dlq = deque(maxlen=self.dlq_cap)
        self._promotions = deque(maxlen=self.promotions_cap)
        self._gate_looks = deque(maxlen=self.gate_cap)
        self._drifts = deque(maxlen=self.drift_cap)

    # -- writers (the reader thread) ------------------------------------------------------
    def add_metrics(self, record: MetricsRecord) -> None:
        """Per-key and overall records become series; comparisons, promotions and the gate's
        looks are kept apart, so they never show up as model keys."""
        version = record.version
        with self._lock:
            if isinstance(record, PromotionApplied):
                self._promotions.append(record)
                return
            if isinstance(record, GateLook):
                self._gate_looks.append(record)
                return
            if isinstance(record, Comparison):
                series = self._comparisons.get(version)
                if series is None:
                    series = self._comparisons[version] = Series(self.series_cap)
                series.append(record)
                return
            series_key = (version, record.key, record.spec)
            series = self._metrics.get(series_key)
            if series is None:
                series = self._metrics[series_key] = Series(self.series_cap)
            series.append(record)

    def add_drift(self, record: DriftEvent) -> None:
        with self._lock:
            self._drifts.append(record)

    def add_predictions(self, records: list[Prediction | ServedPrediction]) -> None:
        with self._lock:
            self._predictions.extend(records)

    def add_dead_letter(self, record: DeadLetter) -> None:
        with self._lock:
            self._dlq.append(record)
            self._dlq_reasons[(record.stage, record.reason)] += 1

    def put_snapshot(self, ref: SnapshotRef) -> None:
        with self._lock:
            self._snapshots[(ref.version, ref.key)] = ref

    def drop_snapshot(self, version: str, key: str) -> None:
        with self._lock:
            self._snapshots.pop((version, key), None)

    def set_status(self, status: KafkaStatus) -> None:
        with self._lock:
            self._status = status

    def set_pipeline(self, info: PipelineInfo) -> None:
        with self._lock:
            self._pipeline = info

    def set_loaded(self) -> None:
        with self._lock:
            self._loaded = True

    def unreadable(self, what: str) -> None:
        with self._lock:
            self._unreadable += 1
            self._last_unreadable = what

    # -- readers (the pages) -------------------------------------------------------------
    def view(self) -> StoreView:
        with self._lock:
            return StoreView(
                status=self._status,
                loaded=self._loaded,
                metrics={k: list(s.points) for k, s in self._metrics.items()},
                comparisons={v: list(s.points) for v, s in self._comparisons.items()},
                promotions=list(self._promotions),
                gate_looks=list(self._gate_looks),
                drifts=list(self._drifts),
                predictions=list(self._predictions),
                dlq=list(self._dlq),
                dlq_reasons=dict(self._dlq_reasons),
                snapshots=dict(self._snapshots),
                pipeline=self._pipeline,
                unreadable=self._unreadable,
                last_unreadable=self._last_unreadable,
            )

    def status(self) -> KafkaStatus:
        with self._lock:
            return self._status
