"""How bench/REPORT.md writes a figure: numbers, median (min–max, runs), ratios, tables."""

from __future__ import annotations

import math
from typing import Any


def num(v: Any, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not math.isfinite(v):
        return "diverged (∞)" if v > 0 else "nan"
    if abs(v) >= 1e7:
        return f"{v:.1e}"
    return f"{v:,.{digits}f}"


def runs_of(s: dict | None, digits: int = 0) -> str:
    """'median (min–max, n runs)' of a summary."""
    if not s:
        return "not measured"
    return f"{num(s['median'], digits)} ({num(s['min'], digits)}–{num(s['max'], digits)}, {s['runs']} runs)"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or not all(math.isfinite(x) for x in (a, b)):
        return "–"
    r = a / b
    return f"{r:.2f}×" if r >= 0.01 else f"{r:.1e}×"


def median_of(s: dict | None) -> float | None:
    return s["median"] if s else None


def met(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**missed**")




def table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)
