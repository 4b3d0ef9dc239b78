"""CPU of processes, sampled from /proc, and the machine around one measurement."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench import machine

_TICK = os.sysconf("SC_CLK_TCK")


# -- CPU of processes, sampled from /proc ---------------------------------------------------------
def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, CPU-seconds of the process itself) from /proc, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def descendants(roots: Iterable[int]) -> set[int]:
    """``roots`` and every live process below them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            children.setdefault(st[0], []).append(int(entry.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


class CpuSampler:
    """Every ``every`` seconds, the CPU-seconds so far of each group of processes.

    ``groups`` maps a label to the root pids whose whole trees count. A process's last sample
    stands for it once it is gone, so one that exits between two samples loses at most
    ``every`` seconds of its CPU. ``at(t)`` interpolates between samples.
    """

    def __init__(self, groups: Callable[[], dict[str, list[int]]], every: float = 0.25) -> None:
        self.groups, self.every = groups, every
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._seen: dict[str, dict[int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")

    def __enter__(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        now = time.monotonic()
        for label, roots in self.groups().items():
            seen = self._seen.setdefault(label, {})
            for pid in descendants(roots):
                st = _stat(pid)
                if st is not None:
                    seen[pid] = max(seen.get(pid, 0.0), st[1])
        self.samples.append((now, {label: sum(seen.values()) for label, seen in self._seen.items()}))

    def at(self, t: float, label: str) -> float:
        points = [(at, cpu.get(label, 0.0)) for at, cpu in self.samples]
        if t <= points[0][0]:
            return points[0][1]
        for (t0, c0), (t1, c1) in zip(points, points[1:], strict=False):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * (t - t0) / max(t1 - t0, 1e-9)
        return points[-1][1]

    def total(self, label: str) -> float:
        return self.samples[-1][1].get(label, 0.0) - self.samples[0][1].get(label, 0.0)


class Conditions:
    """The machine around one measurement: the load average before and after, and the CPU that
    processes not of this run used meanwhile (bench/machine.py's ``others_cpu``: the machine's
    busy time from /proc/stat minus this run's, here this process and every process below it,
    brokers and Spark daemons included, sampled every half second)."""

    def __init__(self) -> None:
        self.load_before = machine.load_average()["loadavg"]
        self.start = machine.cpu_seconds()
        self.mine = CpuSampler(lambda: {"mine": [os.getpid()]}, every=0.5).__enter__()

    def end(self) -> dict[str, Any]:
        self.mine.__exit__(None, None, None)
        end = machine.cpu_seconds()
        others = machine.others_cpu({**self.start, "own_s": 0.0}, {**end, "own_s": self.mine.total("mine")})
        return {"load_before": self.load_before, "load_after": machine.load_average()["loadavg"], **others}
