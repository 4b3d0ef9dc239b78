"""Drift policy ``background``: a fresh model learns beside the drifted one; the gate decides.

With ``--drift-policy background``, a drift detection in the model of the spec *serving* the
key's partition does not throw that model away (``reset``) nor only report it (``alert``): it
starts a :class:`Background` model of the same spec for that key, a new generation, learning
from the next record on and predicting before it learns, like any challenger. The model that
drifted keeps serving. The two are compared on exactly the same rows with the promotion
gate's paired machinery (:mod:`kappaml.gate`: sign test, alpha spending over the looks,
margin, ``--gate-*`` settings): the background model's own :class:`~kappaml.gate.PairedWindow`
of (main, background) squared errors, looked at every ``every``-th paired row, in offset order;
started by a detection, it looks at every ``drift_every``-th paired row from ``drift_min_pairs``
pairs until it has ``window`` pairs, as the gate after a detection does (kappaml/gatedrift.py).
A prediction it made before it had learned anything is not paired: its first one, and with
delayed labels those of the rows whose features came before its first label did. Such cold
predictions say nothing of the model it becomes, and they stayed in the window until they slid
out: with labels 30 records late, a clearly better background model took over at its 17th look
(140 pairs) instead of its first or second.

When it passes, :func:`background_step` takes over at once (:func:`take_over`), from the next
record of the key on, and says so (``BackgroundStep.takeover``): the processor and the Spark
replay both run it on the same records, so both take over at the same one. The processor
writes a takeover control record (a :class:`~kappaml.records.Promotion` with reason
``takeover``, the key, the generation and ``after``, the deciding offset) to the key's
partition, in the checkpoint's transaction, for the log's history (the UI, audits); read back,
it changes nothing (its background model is gone). Waiting for it would serve the drifted model
for a commit interval more, and with a backlog for the whole backlog. The background model
then becomes the spec's model of the key (its generation, a fresh drift monitor); the metrics,
seen ids and pending predictions carry on, as after a ``reset``. The model it replaced is kept,
frozen (it learns no more: drift said it is worse, and a learning copy would cost a model's
learning time per key for good), as ``KeyState.former``, until the next takeover replaces it:
``python -m processor rollback --to GENERATION`` brings it back.

Rollback to a generation: a promotion control record with reason ``rollback`` and a
``generation`` G (spec ``*``: every spec, or one spec). In every key whose model of that spec
came from a takeover to a generation above G while the model it replaced had a generation of
at most G, that replaced model serves again (and learns again from the next record; its
background model, if one runs, is dropped). Other keys do not change. The record is one per
partition; it is applied to each key of the partition before the key's next record
(:func:`apply_rollbacks`, ``KeyState.controls_at`` says how far a key is), which gives the
same states as applying it to every key at once, without loading every key.

False alarms cost one background model, never more: a detection while a background model runs
is ignored (counted in ``Background.ignored``), and a background model not taken over after
``PATIENCE`` gate windows of paired rows is dropped, so a later real drift can start another.
Everything here is the key's state (pickled with its :class:`~kappaml.learner.KeyState`), so it
survives a crash with the offsets and the replay rebuilds it identically.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any

from kappaml.gate import Decision, GateConfig, PairedWindow, decide
from kappaml.gatedrift import look_due
from kappaml.learner import KeyState, Outcome, StepResult, apply_record
from kappaml.pending import NO_TTL, DelayedLabels, LabelPolicy

__all__ = ["ANY_SPEC", "BACKGROUND", "PATIENCE", "Background", "BackgroundLook", "BackgroundStep",
           "GenerationRollback", "apply_rollbacks", "background_step", "take_over"]

BACKGROUND = "background"  # the policy, and the role of the background model's records
PATIENCE = 10  # gate windows of paired rows a background model gets to take over
ANY_SPEC = "*"  # a rollback to a generation of every spec

# (offset of the control record in its partition, spec or ANY_SPEC, generation)
GenerationRollback = tuple[int, str, int]


@dataclass
class Background:
    """The background model of one key and spec, and its evidence against the main model."""

    state: KeyState  # its own model, metrics, seen ids (a copy of the main's at the start)
    started: int  # offset of the record whose detection started it (it learns from the next)
    window: PairedWindow
    paired: int = 0  # rows scored by both the main and this model
    looks: int = 0  # gate looks (with enough pairs)
    pending: bool = False  # a takeover was decided at this record: no more looks (it takes over)
    ignored: int = 0  # detections in the main model while this one ran
    # Offset of the record it first learned at: what it predicted up to there, it predicted
    # knowing nothing.
    warm_from: int | None = None


@dataclass(frozen=True)
class BackgroundLook:
    """One gate look at a background model against the main model of its spec (the processor
    publishes each as a ``gate`` record with role ``background``, as the gate's looks at the
    challengers: processor/gatelooks.py)."""

    generation: int  # of the background model looked at
    look: int  # its k-th look since it started
    paired: int  # rows paired so far (the look came at this one)
    decision: Decision
    takeover: bool  # this look decided the takeover


@dataclass(frozen=True)
class BackgroundStep:
    """What the background policy did at one record of one key and spec."""

    outcome: Outcome | None = None  # the background model's own, when one ran at this record
    generation: int = 0  # of that background model (or of the one started)
    started: bool = False  # a detection started a background model (it learns from the next record)
    ignored: bool = False  # a detection came while one ran: ignored
    dropped: bool = False  # out of patience: the background model was dropped
    takeover: Decision | None = None  # the gate passed it: write the takeover record
    paired: int = 0
    looks: tuple[BackgroundLook, ...] = ()  # the gate's looks at it at this record, in order


def _results(outcome: Outcome) -> list[StepResult]:
    results = [e.learned for e in outcome.expired if e.learned is not None]
    if outcome.learned is not None:
        results.append(outcome.learned)
    return results


def _sq_errors(outcome: Outcome) -> dict[tuple[Any, Any, bool], float]:
    """Each scored row of the outcome, by (id, served offset, expired): its squared error."""
    out = {}
    for r in _results(outcome):
        err = (r.y_pred - r.y_true) ** 2
        if math.isfinite(err):
            out[(r.id, r.served_offset, r.expired)] = err
    return out


def _start(state: KeyState, offset: int, gate: GateConfig) -> Background:
    generation = max(state.generation, state.latest_generation) + 1
    state.latest_generation = generation
    # clone(): the spec's model with its parameters, nothing learned. The seen ids are copied,
    # so a duplicate of a row learned before is skipped by both models alike; delayed labels
    # start empty: it learns the rows whose features it saw.
    fresh = KeyState(key=state.key, spec=state.spec, version=state.version, model=state.model.clone(),
                     metrics=type(state.metrics)(window=state.metrics.window), seen=copy.deepcopy(state.seen),
                     code=state.code, drift=None, generation=generation, labels=DelayedLabels())
    return Background(state=fresh, started=offset, window=PairedWindow(gate.window))


def background_step(state: KeyState, record: Any, offset: int, main: Outcome, *, serving: bool,
                    gate: GateConfig, policy: LabelPolicy = NO_TTL) -> BackgroundStep:
    """After ``apply_record(state, record, offset)`` gave ``main``: the background model's turn.

    ``serving``: ``state``'s spec serves the key's partition at this record (only its
    detections start a background model). Call it for every spec under the background policy.
    """
    bg = state.background
    step = BackgroundStep()
    if bg is not None:
        outcome = apply_record(bg.state, record, offset, policy)
        if bg.warm_from is None and bg.state.learned:
            bg.warm_from = offset
        mine = _sq_errors(main)
        theirs = _sq_errors(outcome)
        takeover = None
        looks: list[BackgroundLook] = []
        for ref, err in theirs.items():
            own = mine.get(ref)
            served_at = offset if ref[1] is None else ref[1]  # with delayed labels: the features'
            if own is None or bg.warm_from is None or served_at <= bg.warm_from:
                continue  # a cold prediction says nothing of the model it becomes (module docstring)
            bg.window.add(own, err)
            bg.paired += 1
            need = look_due(gate, bg.paired, bg.paired)  # its pairs all came after the detection
            if bg.pending or need is None or len(bg.window) < need:
                continue
            bg.looks += 1
            decision = decide(bg.window, gate, bg.looks, need)
            if decision.promote:  # the first pass is the takeover: pending stops the looks
                takeover = decision
                bg.pending = True
            looks.append(BackgroundLook(bg.state.generation, bg.looks, bg.paired, decision, decision.promote))
        dropped = not bg.pending and bg.paired >= PATIENCE * gate.window
        if dropped:
            state.background = None
        step = BackgroundStep(outcome=outcome, generation=bg.state.generation, dropped=dropped,
                              takeover=takeover, paired=bg.paired, looks=tuple(looks))
    detected = any(r.drift is not None for r in _results(main))
    if step.takeover is not None:
        take_over(state, step.generation)
        return step  # the detection, if any, was of the model just replaced
    if detected and serving:
        if state.background is not None:
            state.background.ignored += 1
            step = replace(step, ignored=True)
        else:
            state.background = _start(state, offset, gate)
            step = replace(step, generation=state.background.state.generation, started=True)
    return step


def take_over(state: KeyState, generation: int) -> bool:
    """The background model of ``generation`` becomes the spec's model (``background_step`` calls
    it when the gate passes it). False (nothing changes) when there is none such (dropped, or
    taken over: a takeover record read back)."""
    bg = state.background
    if bg is None or bg.state.generation != generation:
        return False
    state.former = (state.generation, state.model)
    state.model = bg.state.model
    state.generation = generation
    if state.drift is not None:
        state.drift.restart()  # a young model: its own warm-up before it is watched
    state.background = None
    return True


def apply_rollbacks(state: KeyState, rollbacks: list[GenerationRollback], offset: int) -> int:
    """Before the key's record at ``offset``: the partition's rollbacks to a generation read
    since the key's last record (module docstring). Returns how many changed its model."""
    changed = 0
    for at, spec, generation in rollbacks:
        if at <= state.controls_at or at >= offset:
            continue
        state.controls_at = at
        former = state.former
        if spec not in (ANY_SPEC, state.spec) or former is None:
            continue
        if state.generation > generation >= former[0]:
            state.generation, state.model = former
            state.former = None
            state.background = None
            if state.drift is not None:
                state.drift.restart()
            changed += 1
    return changed
