"""Throughput and event-to-prediction latency between two checkpoints; each spec's learning cost."""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from kappaml.observability import Buckets
from kappaml.observability.processor import LEARN_BUCKETS

__all__ = ["IntervalStats", "LearnCost", "TimedLearnCost"]

# Enough samples for a stable p99 without letting a long checkpoint grow memory.
_MAX_SAMPLES = 20_000


@dataclass
class IntervalStats:
    messages: int = 0
    invalid: int = 0
    learned: int = 0  # examples the serving model learned (labelled records, delayed labels, expiries)
    served: int = 0  # features records the serving model predicted (delayed labels)
    latencies_ms: list[int] = field(default_factory=list)
    _invalid_total: int = 0
    _since: float = field(default_factory=time.monotonic)

    def take(self) -> dict[str, Any]:
        """The figures of the interval that ends now; starts the next one."""
        now = time.monotonic()
        elapsed = max(now - self._since, 1e-9)
        lat = sorted(self.latencies_ms[-_MAX_SAMPLES:])
        self._invalid_total += self.invalid
        figures = {
            "throughput": round(self.messages / elapsed, 1),
            "latency_ms": {
                f"p{q}": lat[min(len(lat) - 1, int(len(lat) * q / 100))] for q in (50, 95, 99)
            } if lat else {},
            "invalid_total": self._invalid_total,
        }
        self.messages, self.invalid, self.learned, self.served, self.latencies_ms, self._since = (
            0, 0, 0, 0, [], now)
        return figures


@dataclass
class LearnCost:
    """Time spent in each spec's test-then-train step, in this process since it started.

    Measured inside the pipeline, where a model costs more than in a tight loop (its caches
    are shared with the Kafka clients and the other specs): what a challenger really costs.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)

    def add(self, spec: str, seconds: float) -> None:
        self.seconds[spec] = self.seconds.get(spec, 0.0) + seconds
        self.steps[spec] = self.steps.get(spec, 0) + 1

    def micros(self, spec: str) -> float | None:
        """Mean microseconds per step, None before the spec's first step."""
        steps = self.steps.get(spec, 0)
        return round(self.seconds[spec] / steps * 1e6, 2) if steps else None


class TimedLearnCost(LearnCost):
    """``LearnCost`` as a histogram per spec (the Prometheus learn-time metric): with metrics on only.

    The histogram's sum and count are the seconds and steps ``LearnCost`` keeps, so they replace
    them: timing each step into buckets costs about what the plain sums cost (bench_metrics).
    """

    def __init__(self) -> None:
        super().__init__()
        self.buckets: dict[str, Buckets] = {}

    def add(self, spec: str, seconds: float, _bisect: Any = bisect_left,
            _bounds: Any = LEARN_BUCKETS) -> None:
        buckets = self.buckets.get(spec)
        if buckets is None:
            buckets = self.buckets[spec] = Buckets(_bounds)
        buckets.counts[_bisect(_bounds, seconds)] += 1
        buckets.sum += seconds

    def micros(self, spec: str) -> float | None:
        buckets = self.buckets.get(spec)
        steps = sum(buckets.counts) if buckets is not None else 0
        return round(buckets.sum / steps * 1e6, 2) if buckets is not None and steps else None
