"""Where a checkpoint's time goes, and the garbage collector's pauses: to find what stalls output.

A checkpoint is split into the parts the processor runs itself (``states``: dirty models into
the store transaction; ``snapshots``: fingerprint, encode and produce; ``metrics``: the metrics
records) and ``commit``: from the end of those to the next message processed, i.e. Quix Streams
writing the changelogs, flushing the producer and committing the transaction and the offsets
(plus the wait for that next message). ``gap`` is the time from one checkpoint's start to the
next's. Python's cyclic garbage collector stops the whole process while it runs; its pauses
are timed per generation through ``gc.callbacks``.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from typing import Any

__all__ = ["CheckpointTimer", "GcPauses"]

PARTS = ("states", "snapshots", "metrics", "commit", "gap")
_SAMPLES = 4096


def _quantiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of durations in seconds, as milliseconds."""
    ordered = sorted(values)
    last = len(ordered) - 1
    return {"p50": round(ordered[min(last, len(ordered) // 2)] * 1000, 3),
            "p99": round(ordered[min(last, int(len(ordered) * 0.99))] * 1000, 3),
            "max": round(ordered[-1] * 1000, 3)}


class CheckpointTimer:
    """Per part, the last few thousand durations (seconds); ``summary()`` in milliseconds."""

    def __init__(self) -> None:
        self.samples: dict[str, deque[float]] = {part: deque(maxlen=_SAMPLES) for part in PARTS}
        self._started = 0.0
        self._mark = 0.0
        self._committing_since = 0.0

    def start(self) -> None:
        now = time.perf_counter()
        if self._committing_since:  # a checkpoint with nothing processed since the last one
            self.samples["commit"].append(now - self._committing_since)
            self._committing_since = 0.0
        if self._started:
            self.samples["gap"].append(now - self._started)
        self._started = self._mark = now

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.samples[part].append(now - self._mark)
        self._mark = now

    def done(self) -> None:
        """The processor's own part is over; Quix commits until the next message."""
        self._committing_since = time.perf_counter()

    def message(self) -> None:
        if self._committing_since:
            self.samples["commit"].append(time.perf_counter() - self._committing_since)
            self._committing_since = 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        return {part: _quantiles(list(values)) for part, values in self.samples.items() if values}


class GcPauses:
    """Counts and times the garbage collector's runs per generation while installed."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self._since = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._since = time.perf_counter()
            return
        generation = info.get("generation", 2)
        took = time.perf_counter() - self._since
        self.count[generation] += 1
        self.seconds[generation] += took
        self.longest[generation] = max(self.longest[generation], took)

    def install(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, dict[str, float]]:
        return {f"gen{g}": {"count": self.count[g], "total_ms": round(self.seconds[g] * 1000, 3),
                            "max_ms": round(self.longest[g] * 1000, 3)} for g in range(3)}
