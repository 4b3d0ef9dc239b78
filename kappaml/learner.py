"""One prequential step for one key: skip duplicates, predict, then learn, then score.

The live processor and the Spark replay both call :func:`apply_record` (or, for a log of
labelled records only, :func:`learn_step`) on a :class:`KeyState`, so the two cannot drift
apart: the same records in the same order give the same model, pending set and expiries.

Delayed labels (issue 17). A key's records are handled in offset order, each spec of the
line-up with its own ``KeyState``; ``apply_record(state, record, offset, policy)`` is the one
entry point for every kind (``kappaml.records.decode`` gives the typed record):

1. ``state.labels.tick``: the key's record number ``seq`` += 1 (any kind); its event-time
   clock follows the record's ``ts`` (the largest so far).
2. :func:`expire_step`: before the record is handled, the pending predictions older than the
   policy's TTL expire, in (due, seq) order (``LabelPolicy``: N records of the key or S
   seconds of event time, never the wall clock): dropped, or learned with the missing-label
   value and scored against the served prediction; early labels older than the TTL are
   dropped (orphan labels). An expired id is closed: its late label or features are ignored.
3. By kind:

   * ``Example`` (labelled): :func:`learn_step`, as before delayed labels existed.
   * ``FeaturesRecord``: :func:`predict_step`. A duplicate (id learned, pending or closed)
     changes nothing. Else the current model predicts (the served prediction); an early
     label of the id waiting -> learned at once; else kept as ``PendingPrediction``.
   * ``LabelRecord``: :func:`label_step`. Closed id -> late (an orphan label); learned id
     -> duplicate; pending -> learn the stored features with this target, score the STORED
     served prediction (delayed prequential), update the drift monitor; else kept as an early
     label (a second early label of the id is a duplicate).

``apply_record`` returns an :class:`Outcome`: ``status``, the ``served`` prediction (features),
the ``learned`` :class:`StepResult` (with ``delay_ms``/``delay_rows`` for a delayed label), the
``expired`` list, and ``error`` when the model raised (a ``ModelError``: dead-letter the record;
the state is as if the failed step had not been tried, the expiries before it stand).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kappaml.compat import STATE_CODE
from kappaml.dataset import Dataset
from kappaml.drift import Detection, DriftConfig, DriftMonitor
from kappaml.evaluation import PrequentialMetrics
from kappaml.models import build_model
from kappaml.pending import NO_TTL, DelayedLabels, EarlyLabel, LabelPolicy, PendingPrediction
from kappaml.records import Example, FeaturesRecord, InvalidRecord, LabelRecord
from kappaml.seen import SeenIds

__all__ = ["DUPLICATE", "EARLY", "ERROR", "LATE", "LEARNED", "PENDING", "STATE_CODE", "Expiry",
           "IncompatibleState", "KeyState", "ModelError", "Outcome", "Served", "StepResult", "apply_record",
           "expire_step", "label_step", "learn_step", "predict_step"]


class IncompatibleState(RuntimeError):
    """A stored state was pickled by other model code (kappaml/compat.py); it cannot be trusted."""


class ModelError(InvalidRecord):
    """The model raised on this example: it goes where invalid records go, with the reason.

    A subclass of ``InvalidRecord`` so the processor and the replay route it the same way.
    """


@dataclass
class KeyState:
    """Everything derived from one key's events: the model, its metrics, what it has learned."""

    key: str
    spec: str
    version: str
    model: Any
    metrics: PrequentialMetrics = field(default_factory=PrequentialMetrics)
    seen: SeenIds = field(default_factory=SeenIds)
    learned: int = 0
    skipped: int = 0
    last_offset: int = -1
    code: str = ""
    drift: DriftMonitor | None = None
    # 0 for the first model; +1 each time the drift policy "reset" replaced it by a fresh one.
    generation: int = 0
    drifts: int = 0  # drift detections so far
    # Delayed labels: predictions served and waiting for their label, early labels, counts.
    labels: DelayedLabels = field(default_factory=DelayedLabels)
    # Drift policy "background" (kappaml/background.py): the fresh model learning beside this
    # one since a detection, if any, and the highest generation handed out so far.
    background: Any = None
    latest_generation: int = 0
    # (generation, model) a takeover replaced, frozen, for a rollback to a generation; and the
    # offset of the last such rollback record applied to this key.
    former: Any = None
    controls_at: int = -1

    @classmethod
    def new(cls, key: str, dataset: Dataset, spec: str, version: str, window: int = 500,
            drift: DriftConfig | None = None) -> KeyState:
        return cls(key=key, spec=spec, version=version, model=build_model(spec, dataset),
                   metrics=PrequentialMetrics(window=window), code=STATE_CODE,
                   drift=DriftMonitor(drift) if drift is not None else None)

    def check_compatible(self) -> None:
        if self.code != STATE_CODE:
            raise IncompatibleState(
                f"the stored state of key {self.key!r} (version {self.version}) was written by other "
                f"model code ({self.code or 'unknown'}, now {STATE_CODE}); run the new code as a new "
                "--model-version, which rebuilds its models from the log"
            )


# The results of a step (StepResult, Served, Expiry, Outcome) are built for every record, in
# the processor and the replay: slotted and not frozen, since a frozen dataclass sets each field
# through object.__setattr__ (a StepResult took about 2.0 us to build so, 0.6 us now). Nothing
# changes them once returned.
@dataclass(slots=True)
class StepResult:
    y_true: float
    y_pred: float
    # A rise of the error level found by the key's drift monitor at this example, if any.
    drift: Detection | None = None
    reset: bool = False  # the drift policy replaced the model after this example
    generation: int = 0  # of the model that made the prediction
    id: int | str | None = None  # the row learned
    pass_no: int = 1
    # Delayed labels: how long the label took (label ts - features ts; rows: the key's records
    # in between), the features record whose served prediction is scored.
    delay_ms: int | None = None
    delay_rows: int | None = None
    served_offset: int | None = None
    served_ts: int | None = None
    expired: bool = False  # no label came: learned with the missing-label value

    @property
    def error(self) -> float:
        return self.y_pred - self.y_true


def _predict(state: KeyState, x: dict[str, Any]) -> float:
    try:
        y_pred = state.model.predict_one(x)
    except Exception as exc:  # any model failure is reported, never fatal
        raise ModelError(f"model {state.spec} failed: {type(exc).__name__}: {exc}") from exc
    # Some River models answer None before their first example: score that as 0 so the
    # prequential metric stays defined and identical in the processor and the replay.
    return float(y_pred) if y_pred is not None and math.isfinite(y_pred) else 0.0


def _learned(state: KeyState, y: float, y_pred: float, offset: int) -> tuple[Detection | None, bool]:
    """After a successful learn_one: score, count, watch for drift, maybe reset the model."""
    state.metrics.update(y, y_pred)
    state.learned += 1
    state.last_offset = offset
    detection = state.drift.update(abs(y_pred - y)) if state.drift is not None else None
    if detection is not None:
        state.drifts += 1
    reset = detection is not None and state.drift is not None and state.drift.config.policy == "reset"
    if reset:
        # clone(): the same model spec and parameters, nothing learned; the drift monitor
        # starts over too, warm-up included, since a fresh model's errors fall steeply.
        state.model = state.model.clone()
        state.generation += 1
        state.drift.restart()  # type: ignore[union-attr]
    return detection, reset


def learn_step(state: KeyState, example: Example, offset: int) -> StepResult | None:
    """Test-then-train on one example; None when its row id was already learned from its
    stream (skipped): the same row id from another stream (another file) is new data."""
    seen = state.seen.scope(example.stream)
    if example.id in seen:
        state.skipped += 1
        return None
    y_pred = _predict(state, example.x)
    try:
        state.model.learn_one(example.x, example.y)
    except Exception as exc:  # any model failure is reported, never fatal
        raise ModelError(f"model {state.spec} failed: {type(exc).__name__}: {exc}") from exc
    seen.add(example.id)
    generation = state.generation
    detection, reset = _learned(state, example.y, y_pred, offset)
    # Positional, in StepResult's field order (y_true, y_pred, drift, reset, generation, id, pass_no):
    # building a class with keywords costs a dict, 0.60 vs 0.24 us, once per labelled record.
    return StepResult(example.y, y_pred, detection, reset, generation, example.id, example.pass_no)


# --------------------------------------------------------------------------- delayed labels

LEARNED, PENDING, EARLY, DUPLICATE, LATE, ERROR = "learned", "pending", "early", "duplicate", "late", "error"


@dataclass(slots=True)
class Served:
    """The prediction served for a ``features`` record (before its label is known)."""

    id: int | str
    stream: str
    y_pred: float
    generation: int  # of the model that predicted
    ts: int | None
    pass_no: int = 1


@dataclass(slots=True)
class Expiry:
    """A pending prediction whose label did not come within the TTL."""

    id: int | str
    stream: str
    y_pred: float
    generation: int
    ts: int | None  # of the features record
    offset: int  # of the features record
    learned: StepResult | None = None  # learned with the missing-label value (on_missing learn=V)
    error: str | None = None  # the model failed learning it


@dataclass(slots=True)
class Outcome:
    """What one record did to one spec's ``KeyState`` (see the module docstring)."""

    status: str  # LEARNED, PENDING, EARLY, DUPLICATE, LATE or ERROR
    served: Served | None = None
    learned: StepResult | None = None
    expired: Sequence[Expiry] = ()
    orphaned: int = 0  # early labels dropped by the expiry check before this record
    error: ModelError | None = None


def _learn_delayed(state: KeyState, x: dict[str, Any], y: float, p: PendingPrediction, ref: tuple[str, Any],
                   offset: int, *, label_ts: int | None, label_seq: int, expired: bool = False) -> StepResult:
    """learn_one(x, y) for a served prediction ``p``, scoring ``p.y_pred`` (not a new prediction)."""
    try:
        state.model.learn_one(x, y)
    except Exception as exc:
        raise ModelError(f"model {state.spec} failed: {type(exc).__name__}: {exc}") from exc
    state.seen.scope(ref[0]).add(ref[1])
    detection, reset = _learned(state, y, p.y_pred, offset)
    delay_ms = label_ts - p.ts if label_ts is not None and p.ts is not None else None
    delay_rows = label_seq - p.seq
    if not expired:
        labels = state.labels
        labels.delays_rows.append(delay_rows)
        if delay_ms is not None:
            labels.delays_ms.append(delay_ms)
    return StepResult(y_true=y, y_pred=p.y_pred, drift=detection, reset=reset, generation=p.generation,
                      id=ref[1], delay_ms=delay_ms, delay_rows=delay_rows, served_offset=p.offset,
                      served_ts=p.ts, expired=expired, pass_no=p.pass_no)


def expire_step(state: KeyState, policy: LabelPolicy, offset: int) -> tuple[list[Expiry], int]:
    """Expire what the TTL says has waited too long, at the key's current ``seq`` and clock.

    Returns the expired predictions (in (due, seq) order) and the number of early labels dropped.
    ``offset``: of the record whose arrival triggers the check (a learned expiry's last_offset).
    """
    labels = state.labels
    out: list[Expiry] = []
    for ref, p in labels.due_pending(policy):
        labels.expired += 1
        labels.closed.scope(ref[0]).add(ref[1])
        learned, error = None, None
        if policy.learn_missing is not None:
            try:
                learned = _learn_delayed(state, labels.x_dict(p), policy.learn_missing, p, ref, offset,
                                         label_ts=None, label_seq=labels.seq, expired=True)
                labels.expired_learned += 1
            except ModelError as exc:
                error = exc.reason
        out.append(Expiry(id=ref[1], stream=ref[0], y_pred=p.y_pred, generation=p.generation, ts=p.ts,
                          offset=p.offset, learned=learned, error=error))
    orphaned = len(labels.due_early(policy))
    labels.orphans += orphaned
    return out, orphaned


def predict_step(state: KeyState, features: FeaturesRecord, offset: int) -> Outcome:
    """A ``features`` record: serve a prediction now; learn when (or if) its label is here."""
    labels = state.labels
    stream, rid = features.stream, features.id
    ref = (stream, rid)
    if rid in state.seen.scope(stream) or ref in labels.pending or rid in labels.closed.scope(stream):
        labels.duplicate_features += 1
        state.skipped += 1
        return Outcome(DUPLICATE)
    y_pred = _predict(state, features.x)
    labels.served += 1
    generation = state.generation
    served = Served(id=rid, stream=stream, y_pred=y_pred, generation=generation, ts=features.ts,
                    pass_no=features.pass_no)
    pending = PendingPrediction(x=labels.x_of(features.x), y_pred=y_pred, ts=features.ts,  # type: ignore[arg-type]
                                seq=labels.seq, offset=offset, generation=generation,
                                pass_no=features.pass_no)
    early = labels.early.get(ref)
    if early is None:
        labels.add_pending(ref, pending)
        return Outcome(PENDING, served=served)
    labels.pop_early(ref)
    try:
        result = _learn_delayed(state, features.x, early.y, pending, ref, offset, label_ts=early.ts,
                                label_seq=early.seq)
    except ModelError as exc:
        # Served but not learned: it waits (and expires) like any pending prediction; its label is lost.
        labels.add_pending(ref, pending)
        labels.orphans += 1
        return Outcome(ERROR, served=served, error=exc)
    labels.paired += 1
    return Outcome(LEARNED, served=served, learned=result)


def label_step(state: KeyState, label: LabelRecord, offset: int) -> Outcome:
    """A ``label`` record: learn its pending features, or wait for them."""
    labels = state.labels
    stream, rid = label.stream, label.id
    ref = (stream, rid)
    if rid in labels.closed.scope(stream):
        labels.orphans += 1  # too late: its prediction expired
        return Outcome(LATE)
    if rid in state.seen.scope(stream):
        labels.duplicate_labels += 1
        state.skipped += 1
        return Outcome(DUPLICATE)
    p = labels.pending.get(ref)
    if p is None:
        if ref in labels.early:
            labels.duplicate_labels += 1
            state.skipped += 1
            return Outcome(DUPLICATE)
        labels.add_early(ref, EarlyLabel(y=label.y, ts=label.ts, seq=labels.seq, offset=offset))
        return Outcome(EARLY)
    result = _learn_delayed(state, labels.x_dict(p), label.y, p, ref, offset, label_ts=label.ts,
                            label_seq=labels.seq)
    labels.pop_pending(ref)
    labels.paired += 1
    return Outcome(LEARNED, learned=result)


def apply_record(state: KeyState, record: Example | FeaturesRecord | LabelRecord, offset: int,
                 policy: LabelPolicy = NO_TTL) -> Outcome:
    """Handle one decoded raw record of the key (any kind) at ``offset``: tick, expire, dispatch.

    Never raises for a model failure: ``Outcome.error`` holds the ``ModelError`` (status ERROR).
    """
    labels = state.labels
    labels.set_mode(policy)
    labels.tick(record.ts)
    # Nothing waits under a TTL (no --label-ttl, or a labelled stream): nothing can be due.
    expired, orphaned = expire_step(state, policy, offset) if labels.waiting else ((), 0)
    try:
        if isinstance(record, FeaturesRecord):
            outcome = predict_step(state, record, offset)
        elif isinstance(record, LabelRecord):
            outcome = label_step(state, record, offset)
        else:
            result = learn_step(state, record, offset)
            outcome = Outcome(DUPLICATE) if result is None else Outcome(LEARNED, learned=result)
    except ModelError as exc:
        outcome = Outcome(ERROR, error=exc)
    if expired or orphaned:
        outcome.expired = expired
        outcome.orphaned = orphaned
    return outcome

