"""The promotion gate: is a challenger better than the serving spec, with evidence? (issue 19)

With ``--promotion auto`` the processor compares, per partition of the raw topic, each
challenger with the spec serving that partition on exactly the same scored rows: a row enters
a challenger's :class:`PairedWindow` only when both specs scored it (learned it and scored the
prediction they made for it). The window keeps the last ``window`` pairs of squared errors.

The statistic is a one-sided exact **sign test**: of the ``n`` pairs whose squared errors
differ (ties carry no evidence and are left out), the challenger wins ``wins``. Under the null
hypothesis "neither spec errs less more often", ``wins ~ Binomial(n, 1/2)``; the p-value is
``P(X >= wins)``, summed exactly with integers (no sampling, no seed, the same on every
machine). It asks only *how often* the challenger errs less, so a few huge errors cannot
decide alone; the **margin** adds *by how much*: the challenger's mean squared error over the
window must be at least ``margin`` (relative) below the serving spec's.

Repeated looks: the gate looks again and again at a stream that never ends, and a test at
level 0.05 run at every look would sooner or later promote a challenger that is merely equal
(a simulation: 55 % of 2,000-row streams with two equal specs, looking every 50 rows). So the
k-th look since the last switch of the partition tests at ``alpha_k = (1 - confidence) / (k (k+1))``;
these sum to ``1 - confidence``, so the probability that a challenger which is not better is
promoted before the next switch is at most ``1 - confidence`` (a union bound over the looks).
The price: evidence must grow stronger as the looks go by (with a window of 200 and confidence
0.95, about 67 % of wins at the 100th look), and after a change the window still holds rows
from before it. So a drift detection of the serving spec restarts the gate as a switch does
(looks counted from 1, windows cleared) and makes it look more often for a while
(kappaml/gatedrift.py): the bound then holds between two switches or restarts,
``1 - confidence`` per restart. A challenger passes a look when there are at least ``min_pairs``
pairs (only such looks count), ``p <= alpha_k`` and the margin holds.

Auto-rollback (``auto_rollback``): a gate promotion puts the newly serving spec on probation
for the next ``window`` rows that it and the former champion (now a challenger, still learning)
both score. During the probation, a promotion of the former champion by the looks above is an
``auto-rollback``; and when the former champion's window is full (exactly the probation's
rows), one verdict: the same sign test, the former champion against the new one, at the level
``1 - confidence`` without margin (a single test per promotion: no spending needed; any
significant worsening suffices). If the former champion errs less significantly often, the gate
writes a promotion of it with reason ``auto-rollback``. Either way the probation ends there. A
partition rolled back automatically is then held, like after a manual rollback: the same
challenger would otherwise be promoted again by the same evidence that promoted it first.

Determinism: the gate is evaluated at every ``every``-th scored row of the partition, in
offset order, never at wall-clock checkpoints, and its state is stored with the partition's
models and offsets. A processor restarted after a crash therefore repeats the same
evaluations at the same offsets and reaches the same decision there.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from kappaml.gatedrift import fast_phase, look_due, pairs_needed

__all__ = ["Candidate", "Decision", "GateConfig", "PairedWindow", "PartitionGate", "decide",
           "probation_verdict", "sign_test_p"]


@dataclass(frozen=True)
class GateConfig:
    """The gate's parameters (flags ``--gate-*``, see docs/lifecycle.md)."""

    window: int = 200  # the last N paired rows compared
    confidence: float = 0.95  # overall: P(a not-better challenger is ever promoted) <= 1 - confidence
    margin: float = 0.05  # and the challenger's MSE is at least this much (relative) lower
    min_pairs: int = 100  # no decision on fewer pairs than this
    every: int = 50  # evaluate at every N-th scored row of the partition
    # After a gate promotion, roll back when the former champion proves better (module docstring).
    auto_rollback: bool = False
    # After a drift detection (kappaml/gatedrift.py): look at every N-th scored row, from
    # drift_min_pairs pairs (at most min_pairs), until the window is full; 0: detections change nothing.
    drift_every: int = 5
    drift_min_pairs: int = 30

    def __post_init__(self) -> None:
        for name, low in (("window", 1), ("every", 1), ("drift_every", 0), ("drift_min_pairs", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"gate {name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(self.confidence, (int, float)) and 0.5 <= self.confidence < 1.0):
            raise ValueError(f"gate confidence must be in [0.5, 1), got {self.confidence!r}")
        if not (isinstance(self.margin, (int, float)) and 0.0 <= self.margin < 1.0):
            raise ValueError(f"gate margin must be in [0, 1) (relative MSE reduction), got {self.margin!r}")
        if isinstance(self.min_pairs, bool) or not isinstance(self.min_pairs, int) or \
                not 1 <= self.min_pairs <= self.window:
            raise ValueError(f"gate min_pairs must be an integer in [1, window={self.window}], "
                             f"got {self.min_pairs!r}")

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    def alpha_at(self, look: int) -> float:
        """The level of the ``look``-th look (1, 2, ...) since a switch or restart; they sum to ``alpha``."""
        if look < 1:
            raise ValueError(f"looks are counted from 1, got {look}")
        return self.alpha / (look * (look + 1))


def sign_test_p(wins: int, n: int) -> float:
    """One-sided exact sign test: ``P(X >= wins)`` for ``X ~ Binomial(n, 1/2)`` (1.0 when n == 0).

    Summed in integers and divided once, so the result does not depend on summation order.
    """
    if n < 0 or not 0 <= wins <= max(n, 0):
        raise ValueError(f"need 0 <= wins <= n, got wins={wins}, n={n}")
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(wins, n + 1))
    return tail / (1 << n)


@dataclass
class PairedWindow:
    """The last ``size`` (serving squared error, challenger squared error) pairs of one challenger."""

    size: int
    pairs: deque[tuple[float, float]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.pairs = deque(self.pairs, maxlen=self.size)

    def add(self, serving: float, challenger: float) -> None:
        self.pairs.append((serving, challenger))

    def __len__(self) -> int:
        return len(self.pairs)


@dataclass(frozen=True)
class Decision:
    """One evaluation of one challenger, with its evidence."""

    promote: bool
    pairs: int  # pairs in the window
    n: int  # pairs whose errors differ (the sign test's trials)
    wins: int  # of those, the challenger's error was lower
    p_value: float
    alpha: float  # the level this look tested at (GateConfig.alpha_at)
    mse_serving: float
    mse_challenger: float
    why: str  # the reason it passes or not, for logs and the record

    @property
    def improvement(self) -> float:
        """Relative MSE reduction of the challenger (0 when the serving MSE is 0)."""
        return (self.mse_serving - self.mse_challenger) / self.mse_serving if self.mse_serving > 0 else 0.0


def decide(window: PairedWindow, config: GateConfig, look: int = 1, min_pairs: int | None = None) -> Decision:
    """Does the challenger of ``window`` beat the serving spec at the ``look``-th look (module docstring)?

    ``min_pairs``: the pairs this look needs (default ``config.min_pairs``; fewer after a drift).
    """
    need = config.min_pairs if min_pairs is None else min_pairs
    pairs = list(window.pairs)
    k = len(pairs)
    n = sum(1 for s, c in pairs if s != c)
    wins = sum(1 for s, c in pairs if c < s)
    p = sign_test_p(wins, n)
    mse_s = math.fsum(s for s, _ in pairs) / k if k else 0.0
    mse_c = math.fsum(c for _, c in pairs) / k if k else 0.0
    rel = (mse_s - mse_c) / mse_s if mse_s > 0 else 0.0
    alpha = config.alpha_at(look)
    if k < need:
        why, ok = f"{k} pairs < min_pairs {need}", False
    elif p > alpha:
        why, ok = f"sign test p={p:.3g} > {alpha:.3g} (look {look})", False
    elif rel < config.margin:
        why, ok = f"MSE reduction {rel:.3f} < margin {config.margin:g}", False
    else:
        why, ok = (f"wins {wins}/{n}, p={p:.3g} <= {alpha:.3g} (look {look}), MSE {mse_c:.4g} vs "
                   f"{mse_s:.4g} ({rel:.1%} lower)"), True
    return Decision(ok, k, n, wins, p, alpha, mse_s, mse_c, why)


def probation_verdict(window: PairedWindow, config: GateConfig) -> Decision:
    """Auto-rollback's verdict on a full probation window (module docstring): does the former
    champion (the window's challenger) err less significantly often, at ``1 - confidence``?"""
    d = decide(window, config, 1)
    ok = d.pairs >= config.min_pairs and d.p_value <= config.alpha and d.mse_challenger < d.mse_serving
    why = (f"former champion wins {d.wins}/{d.n}, p={d.p_value:.3g} {'<=' if ok else 'or MSE not lower, >'} "
           f"{config.alpha:.3g} (probation verdict), MSE {d.mse_challenger:.4g} vs {d.mse_serving:.4g}")
    return replace(d, promote=ok, alpha=config.alpha, why=why)


@dataclass(frozen=True)
class Candidate:
    """The challenger the gate would promote, decided at the partition's ``scored``-th scored row."""

    spec: str
    serving: str
    scored: int
    look: int
    decision: Decision
    reason: str = "gate"  # or "auto-rollback": the former champion after a gate promotion


@dataclass
class PartitionGate:
    """The gate's state in one partition, stored with it (pure: no Kafka, no clock).

    ``observe`` is called once per scored row, in offset order; ``switched`` when a promotion
    (of any origin) is applied in the partition. ``pending``: the id of a promotion this gate
    wrote and that is not applied yet (the processor applies it at once); no other is proposed
    meanwhile. ``held``: a rollback
    was applied; the gate stays quiet until a manual promotion says otherwise. ``looks``: the
    evaluations with enough pairs since the last switch or restart (the alpha spending).
    ``drifted`` is called when the serving spec's drift monitor fired at a record of the
    partition, before that record's rows are observed (kappaml/gatedrift.py).
    """

    scored: int = 0
    looks: int = 0
    windows: dict[str, PairedWindow] = field(default_factory=dict)
    pending: str | None = None
    held: bool = False
    watch: str | None = None  # auto-rollback: the champion a gate promotion replaced, on trial
    # ``scored`` at the last restart by a drift detection, while its fast phase lasts. A plain
    # default: a gate pickled before this field existed loads with None (no restart).
    drift_at: int | None = None

    def _since_drift(self, config: GateConfig) -> int | None:
        since = None if self.drift_at is None else self.scored - self.drift_at
        return since if fast_phase(config, since) else None

    def pairs_needed(self, config: GateConfig) -> int:
        """The pairs a look at the current row needs (fewer in the fast phase after a detection)."""
        return pairs_needed(config, self._since_drift(config))

    def drifted(self, config: GateConfig) -> bool:
        """The serving spec detected a drift at the current record: restart, unless that is off or
        a restart's fast phase is still on (kappaml/gatedrift.py). True when it restarted."""
        if config.drift_every == 0 or self._since_drift(config) is not None:
            return False
        # The probation (watch) goes on: its verdict comes when the cleared window is full again.
        self.windows.clear()
        self.looks = 0
        self.drift_at = self.scored
        return True

    def observe(self, serving: str, sq_errors: Mapping[str, float], config: GateConfig) -> Candidate | None:
        """One scored row: ``sq_errors`` holds each spec's squared error on it (serving included)."""
        own = sq_errors.get(serving)
        if own is None:
            return None  # the serving spec did not score this row: no pair, no count
        self.scored += 1
        for spec, err in sq_errors.items():
            if spec == serving:
                continue
            window = self.windows.get(spec)
            if window is None or window.size != config.window:
                window = self.windows[spec] = PairedWindow(config.window, window.pairs if window else deque())
            window.add(own, err)
        if self.watch is not None and self.pending is None:
            former = self.windows.get(self.watch)
            if former is not None and len(former) >= config.window:
                watched, self.watch = self.watch, None  # the probation's one verdict
                verdict = probation_verdict(former, config)
                if verdict.promote:
                    return Candidate(watched, serving, self.scored, 1, verdict, reason="auto-rollback")
        since = self._since_drift(config)
        if since is None:
            self.drift_at = None  # the fast phase is over (or there was none)
        need = look_due(config, self.scored, since)
        if need is None or self.pending is not None or self.held:
            return None
        if not any(len(w) >= need for w in self.windows.values()):
            return None  # not a look: nothing could pass yet, so it spends no alpha
        self.looks += 1
        best: Candidate | None = None
        for spec in sorted(self.windows):  # sorted: a tie in MSE goes to the same spec every time
            decision = decide(self.windows[spec], config, self.looks, need)
            if decision.promote and (best is None or decision.mse_challenger < best.decision.mse_challenger):
                best = Candidate(spec, serving, self.scored, self.looks, decision)
        if best is not None and best.spec == self.watch:
            best = replace(best, reason="auto-rollback")  # the former champion, back in its probation
        return best

    def switched(self, reason: str | None, previous: str | None = None, auto_rollback: bool = False) -> None:
        """A promotion was applied here: the pairs compared the old serving spec; start over.

        ``previous``: the spec that served until now; after a gate promotion with
        ``auto_rollback`` it is on trial (see the module docstring).
        """
        self.windows.clear()
        self.looks = 0
        self.pending = None
        self.drift_at = None  # a new serving spec: the ordinary cadence
        self.watch = previous if reason == "gate" and auto_rollback else None
        if reason in ("rollback", "auto-rollback"):
            self.held = True
        elif reason != "gate":
            self.held = False  # a manual promotion: the operator has decided again
