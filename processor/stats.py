"""Throughput and event-to-prediction latency between two checkpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IntervalStats"]

# Enough samples for a stable p99 without letting a long checkpoint grow memory.
_MAX_SAMPLES = 20_000


@dataclass
class IntervalStats:
    messages: int = 0
    invalid: int = 0
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
        self.messages, self.invalid, self.latencies_ms, self._since = 0, 0, [], now
        return figures
