"""The promotion gate and the decisions taken without an operator -> pandas frames (pure, no Streamlit).

``gate_frame``: the gate's looks (``gate`` metrics records, kappaml/records/gatelook.py), one row
per look and challenger, for the chart of each challenger's p-value against the look's level; a
background model's looks (drift policy background) are a line of their own, named by its key and
generation, with their own levels (``series``: ``gate`` for the gate's own looks).
``decisions_frame``: every applied promotion that carries a reason (``gate``, ``rollback``, or
whatever reason a later kind of decision writes), with the gate's evidence when it has one.
``applied_text``: what an applied promotion put in place, in words: a spec, or, for the drift
policy background's takeovers and rollbacks to a generation (which change one key's model, or
every key's that a takeover changed, not the serving spec), which generation of which models.
"""

from __future__ import annotations

import pandas as pd

from kappaml.background import ANY_SPEC
from kappaml.records import Comparison, GateLook, PromotionApplied
from kappaml.records.control import TAKEOVER
from ui.frames import number

__all__ = ["GATE_SERIES", "applied_text", "decisions_frame", "gate_frame", "gate_partitions", "look_name",
           "rollback_choice"]


def applied_text(r: PromotionApplied) -> str:
    """What serves after ``r``: its spec; for a takeover or a rollback to a generation, which
    generation of which key's model (the record's spec is then not a serving spec: a rollback
    to a generation of every spec says ``*``)."""
    if r.generation is None:
        return r.spec
    if r.reason == TAKEOVER:
        return f"{r.spec} generation {r.generation} of key {r.model_key} (background model took over)"
    specs = "every spec" if r.spec == ANY_SPEC else r.spec
    return f"generation {r.generation} of {specs} (in each key a later takeover replaced it)"

_GATE_COLUMNS = ["time", "partition", "offset", "look", "serving", "challenger", "series", "pairs", "n",
                 "wins", "win share", "p_value", "alpha", "mse_serving", "mse_challenger", "passed",
                 "promoted", "why", "instance"]
GATE_SERIES = "gate"  # the series of the gate's own looks at the challengers


def look_name(r: GateLook) -> str:
    """The line a look belongs to: the challenger's spec, or the background model it judged."""
    if r.role is None:
        return r.spec
    return f"{r.spec} {r.role}, key {r.model_key}, generation {r.generation}"


def gate_partitions(looks: list[GateLook], version: str) -> list[int]:
    """The raw partitions the gate of ``version`` has looked at, in order."""
    return sorted({r.partition for r in looks if r.version == version})


def gate_frame(looks: list[GateLook], version: str, partition: int | None = None) -> pd.DataFrame:
    """The looks of ``version`` (of one partition, or all), in offset order per partition."""
    rows = [{
        "time": pd.to_datetime(r.ts, unit="ms", utc=True), "partition": r.partition, "offset": r.offset,
        "look": r.look, "serving": r.serving, "challenger": look_name(r),
        "series": GATE_SERIES if r.role is None else look_name(r), "pairs": r.pairs, "n": r.n,
        "wins": r.wins, "win share": r.wins / r.n if r.n else None, "p_value": number(r.p_value),
        "alpha": number(r.alpha), "mse_serving": number(r.mse_serving),
        "mse_challenger": number(r.mse_challenger), "passed": r.passed, "promoted": r.promoted,
        "why": r.why, "instance": r.instance,
    } for r in looks if r.version == version and (partition is None or r.partition == partition)]
    frame = pd.DataFrame(rows, columns=_GATE_COLUMNS)
    return frame.sort_values(["partition", "offset", "challenger"], kind="stable").reset_index(drop=True)


_DECISION_COLUMNS = ["time", "reason", "partition", "before", "after", "deciding offset", "in effect after",
                     "look", "window (pairs)", "wins", "n", "p-value", "alpha", "MSE before", "MSE after",
                     "by", "id"]


def decisions_frame(records: list[PromotionApplied], version: str | None = None) -> pd.DataFrame:
    """Every applied promotion with a reason (not a plain manual promote), newest first.

    ``before``/``after``: the spec serving the partition before and after it. The evidence
    columns are the gate's (empty for a decision without any): the offset whose scoring
    decided, the window, the sign test and both specs' mean squared errors over the window.
    """
    rows = []
    for r in reversed(records):
        if r.reason is None or (version is not None and r.version != version):
            continue
        ev = r.evidence
        rows.append({
            "time": pd.to_datetime(r.ts, unit="ms", utc=True), "reason": r.reason, "partition": r.partition,
            "before": r.previous, "after": applied_text(r), "deciding offset": ev.offset if ev else None,
            "in effect after": r.offset, "look": ev.look if ev else None,
            "window (pairs)": ev.pairs if ev else None, "wins": ev.wins if ev else None,
            "n": ev.n if ev else None, "p-value": number(ev.p_value) if ev else None,
            "alpha": number(ev.alpha) if ev else None,
            "MSE before": number(ev.mse_serving) if ev else None,
            "MSE after": number(ev.mse_challenger) if ev else None, "by": r.by, "id": r.id,
        })
    frame = pd.DataFrame(rows, columns=_DECISION_COLUMNS)
    ints = ["deciding offset", "look", "window (pairs)", "wins", "n"]
    return frame.astype(dict.fromkeys(ints, "Int64"))


def rollback_choice(comparisons: list[Comparison], decisions: pd.DataFrame) -> tuple[list[str], int]:
    """The specs a rollback may go to (the newest comparison's) and the one to offer first:
    the spec that served before the gate's newest promotion, when there is one."""
    specs = sorted(comparisons[-1].specs) if comparisons else []
    gated = decisions[decisions["reason"] == "gate"]
    before = gated["before"].iloc[0] if not gated.empty else None
    return specs, specs.index(before) if before in specs else 0
