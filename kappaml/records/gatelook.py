"""The gate-look record (metrics topic, scope ``gate``): one look of the promotion gate at one
challenger of one partition (kappaml/gate.py), written by the processor with ``--promotion auto``.

The gate looks at every ``--gate-every``-th scored row of a partition; at each look it writes
one record per challenger, passed or not, so the UI can draw each challenger's statistic over
the offsets. They go through the application's producer: under exactly-once they commit with
the gate's state and the consumed offsets, so a re-run after a crash writes each look once.

With ``--drift-policy background`` the gate's looks at a background model (kappaml/background.py:
a fresh model of the key's spec, started by a drift detection, against the main model of that
spec) are records of this kind too, with ``role`` ``background``, the ``model_key`` and the
background model's ``generation``; ``spec`` and ``serving`` are then both that spec, ``look`` and
``scored`` count the background model's own looks and paired rows, and ``promoted`` says the
look decided its takeover.
"""

from __future__ import annotations

from typing import Literal

from kappaml.records.base import Record, doc, record

__all__ = ["GATE_KEY", "GateLook"]

GATE_KEY = "__gate__"


@record("gate look record")
class GateLook(Record):
    """One look of the promotion gate at one challenger, in one partition of the raw topic."""

    scope: Literal["gate"] = doc("the record's kind", default="gate")
    key: str = doc(f"always {GATE_KEY}", default=GATE_KEY)
    version: str = doc("the model version")
    partition: int = doc("the raw-topic partition the gate looked at")
    offset: int = doc("raw-topic offset of the record whose scoring made the look")
    scored: int = doc("the partition's scored rows so far (the gate looks at every N-th; role background: "
                      "the rows paired with the main model so far)")
    look: int = doc("the gate's k-th look at the partition since its last switch or drift restart (role "
                    "background: at the background model since it started)")
    serving: str = doc("the spec serving the partition")
    spec: str = doc("the challenger looked at")
    pairs: int = doc("rows in the window scored by both specs")
    n: int = doc("pairs whose squared errors differ (the sign test's trials)")
    wins: int = doc("of those, the pairs where the challenger's error was lower")
    p_value: float = doc("one-sided exact sign test: P(X >= wins), X ~ Binomial(n, 1/2)")
    alpha: float = doc("the level of this look: (1 - confidence) / (k (k+1))")
    mse_serving: float = doc("the serving spec's mean squared error over the window")
    mse_challenger: float = doc("the challenger's mean squared error over the window")
    passed: bool = doc("enough pairs, p_value <= alpha and the MSE margin held")
    promoted: bool = doc("the gate chose this challenger at this look (it wrote a promotion)")
    why: str = doc("why it passed or not, in words")
    ts: int = doc("when it was written (ms since the epoch)")
    instance: str | None = doc("the processor instance", default=None)
    role: str | None = doc("background: a look at a background model (drift policy background), not at a "
                           "challenger; absent for a challenger", default=None)
    model_key: str | None = doc("role background: the model key whose background model was looked at",
                                default=None)
    generation: int | None = doc("role background: the background model's generation", default=None)
