"""What bench_adapt measures inside the processor's process: messages and CPU, the gate's time, load."""

from __future__ import annotations

import os
import time
from typing import Any

from bench.bench_eo_tail import _busy_s, _tree_cpu_s
from processor import Processor

__all__ = ["Clock", "cpu_reading", "others_since", "time_gate"]


class Clock:
    """Counts the processor's messages and its CPU from the first to the last (wraps timer.message)."""

    def __init__(self, message: Any) -> None:
        self.message = message
        self.messages, self.first, self.last = 0, 0.0, 0.0

    def __call__(self) -> None:
        self.message()
        now = time.process_time()
        if not self.messages:
            self.first = now
        self.messages += 1
        self.last = now


def time_gate(processor: Processor) -> list[float]:
    """Time every call into the gate (Gatekeeper.scored, record_done, applied, checkpoint)."""
    spent = [0.0]
    gate = processor.gatekeeper
    if gate is None:
        return spent
    for name in ("scored", "record_done", "applied", "checkpoint"):
        method = getattr(gate, name)

        def timed(*args: Any, _m: Any = method) -> Any:
            started = time.perf_counter()
            try:
                return _m(*args)
            finally:
                spent[0] += time.perf_counter() - started
        setattr(gate, name, timed)
    return spent


def cpu_reading() -> tuple[float, float, float]:
    """(machine busy CPU-s from /proc/stat, this process tree's CPU-s, the broker included, wall s)."""
    return _busy_s(), _tree_cpu_s(os.getpid(), set()), time.monotonic()


def others_since(start: tuple[float, float, float], end: tuple[float, float, float]) -> dict[str, float]:
    """What other processes used between two ``cpu_reading()`` readings: CPU-s, and cores on average."""
    others = max((end[0] - start[0]) - (end[1] - start[1]), 0.0)
    wall = max(end[2] - start[2], 1e-9)
    return {"others_cpu_s": round(others, 1), "wall_s": round(wall, 1),
            "others_cores": round(others / wall, 2)}
