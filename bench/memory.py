"""Peak resident memory of a process and all its descendants, sampled from /proc."""

from __future__ import annotations

import os
import threading
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may hold spaces and parentheses: the ppid follows the last ')'.
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def tree_rss_mb(pid: int, match: str | None = None) -> float:
    """Summed RSS of ``pid``'s tree; with ``match``, only of the subtrees whose command line holds it."""
    tree = _children()
    total, todo = 0, [(pid, match is None)]
    while todo:
        p, counted = todo.pop()
        counted = counted or (match is not None and match in _cmdline(p))
        if counted:
            total += _rss_bytes(p)
        todo.extend((c, counted) for c in tree.get(p, []))
    return total / 1024 / 1024


class TreePeak:
    """Samples the summed RSS of ``pid`` and its descendants every ``every`` seconds until stopped.

    A sum of RSS counts shared pages once per process, and sampling can miss a short spike:
    it is an estimate, stated as such in the report.
    """

    def __init__(self, pid: int, every: float = 0.5, match: str | None = None) -> None:
        if every <= 0:
            raise ValueError("every must be > 0")
        self.pid, self.every, self.peak_mb, self.match = pid, every, 0.0, match
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self) -> None:
        self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid, self.match))

    def stop(self) -> float:
        if not self._stop.is_set():
            self.sample()
            self._stop.set()
            self._thread.join(5)
        return round(self.peak_mb, 1)
