"""Rebuild one key's models from its raw records, exactly as the processor builds them.

Everything here is plain Python (no Spark), so the exact per-key logic is the processor's:
``records.decode`` to parse any kind of raw record (labelled, ``features``, ``label``),
``learner.apply_record`` with the processor's label policy (``--label-ttl``,
``--on-missing-label``) to expire, predict, learn or keep pending, one record at a time in
offset order, once per spec of the :class:`kappaml.lineup.Lineup` (the champion and its
challengers each see every record). The output is one prediction row per (input record, spec)
(more where a record completes or expires earlier served predictions, see
:mod:`spark_batch.rows`) plus one ``model`` row per (key, spec) with its snapshot and summary.

Roles are written as if the version's own champion (``--model-spec``) served every record:
who serves does not change what any spec learns, and the promotions that change it are
control records a key's task may never see. The driver applies them afterwards
(:mod:`spark_batch.serving`), where there are any.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from kappaml import learner
from kappaml.background import BACKGROUND, GenerationRollback, apply_rollbacks, background_step, take_over
from kappaml.fingerprint import state_fingerprint
from kappaml.learner import ERROR, LEARNED, PENDING, Expiry, KeyState, StepResult, apply_record
from kappaml.lineup import Lineup
from kappaml.pending import NO_TTL, LabelPolicy
from kappaml.records import DriftEvent, FeaturesRecord, InvalidRecord, decode
from kappaml.snapshot import Snapshot
from spark_batch import rows as row_kinds
from spark_batch.rows import EXPIRED, INVALID, SERVED, OutputRows, PredictionRows

__all__ = ["CHALLENGER", "CHAMPION", "KeyReplay", "rebuild_key"]

CHAMPION, CHALLENGER = "champion", "challenger"
# Distinct invalid reasons counted per key; the rest are counted together.
_MAX_REASONS = 20
_OTHER_REASONS = "(other reasons)"
# apply_record's outcomes that make one plain row (the others: see KeyReplay.step).
_ROW_STATUS = {learner.DUPLICATE: row_kinds.DUPLICATE, learner.EARLY: row_kinds.EARLY,
               learner.LATE: row_kinds.LATE}


def _key_text(raw: Any) -> tuple[str | None, str | None]:
    """(model key, None), or (None, why the key is unusable): the processor's rules."""
    if raw is None:
        return None, None  # every record of the group then fails the key match below
    try:
        return bytes(raw).decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"key is not UTF-8: {exc}"


@dataclass
class _Tally:
    """What one spec did with one key's records, beyond what its KeyState keeps."""

    invalid: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    # Order-free sums of the learned rows, so the driver can pool metrics over all keys:
    # squared errors, absolute errors, y, y squared (added by KeyReplay.step).
    sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    drifts: list[dict[str, Any]] = field(default_factory=list)

    def invalid_row(self, reason: str) -> None:
        self.invalid += 1
        if reason in self.reasons or len(self.reasons) < _MAX_REASONS:
            self.reasons[reason] += 1
        else:
            self.reasons[_OTHER_REASONS] += 1


class _Row(NamedTuple):
    """What a drift record names (as the processor's): the row learned and the record's event time."""

    id: int | str | None
    ts: int | None


class KeyReplay:
    """One (partition, key): its records are fed in offset order, one ``learn_step`` per spec.

    Groups are (partition, key), not key alone, because the processor's state is scoped so
    too (Quix Streams keeps a store per partition): a key found in two partitions (say, after
    the partition count grew) is two independent models there, and must be here.
    """

    def __init__(self, raw_key: Any, partition: int, lineup: Lineup,
                 end_offsets: Mapping[int, int] | None = None,
                 declared: frozenset[str] | None = None, policy: LabelPolicy = NO_TTL) -> None:
        self.partition = partition
        self.lineup = lineup
        self.policy = policy  # --label-ttl / --on-missing-label, as the processor's
        self._roles = {spec: CHAMPION if spec == lineup.champion else CHALLENGER for spec in lineup.specs}
        self._end_offsets = {str(p): int(o) for p, o in sorted((end_offsets or {}).items())}
        self.key, self._key_problem = _key_text(raw_key)
        # One state per spec, created with the first valid record, as the processor does.
        self.states: dict[str, KeyState] | None = None
        self.tallies = {spec: _Tally() for spec in lineup.specs}
        # Per spec (name, state, tally, role), in lineup order, once the states exist: what
        # step() loops over for every record.
        self._plan: list[tuple[str, KeyState, _Tally, str]] = []
        self.rows = 0
        self._last_offset = -1
        self._dataset = lineup.dataset
        self._declared = declared
        self.takeovers: list[dict[str, Any]] = []  # drift policy background: applied here
        self.background_rows = 0

    def step(self, offset: int, value: Any, out: PredictionRows, serving: str | None = None,
             rollbacks: list[GenerationRollback] | None = None) -> None:
        """One record, in offset order: handled by every spec. The replay's hot path.

        Every kind goes through the processor's own ``apply_record`` with the same label policy:
        the expiry check before the record, then the record itself (see :mod:`kappaml.learner`).
        ``serving``: the spec serving the partition at this record, known (and needed) under
        the drift policy background only, whose background models then take their turn;
        ``rollbacks``: the partition's rollbacks to a generation so far (same policy).
        """
        if offset <= self._last_offset:
            raise RuntimeError(f"offset {offset} of key {self.key!r} came after {self._last_offset}: "
                               "the replay needs each key's records in offset order")
        self._last_offset = offset
        self.rows += 1
        if self._key_problem is not None:
            self._invalid_record(out, offset, self._key_problem)
            return
        try:
            record = decode(self._dataset, value, self._declared)
        except InvalidRecord as exc:
            self._invalid_record(out, offset, exc.reason)
            return
        row_id, ts = str(record.id), record.ts
        y = record.y if not isinstance(record, FeaturesRecord) else None
        key = self.key
        if key is None or record.key != key:
            # The message key decides partition and state; a record claiming another key is bad
            # data (the processor dead-letters it with the same words).
            reason = f"record key {record.key!r} does not match the message key {key!r}"
            self._invalid_record(out, offset, reason, row_id, ts, y)
            return
        if self.states is None:
            self.states = self.lineup.new_states(key)
            self._plan = [(spec, state, self.tallies[spec], self._roles[spec])
                          for spec, state in self.states.items()]
        partition, append, policy = self.partition, out.append, self.policy
        if rollbacks:
            for state in self.states.values():
                apply_rollbacks(state, rollbacks, offset)
        for spec, state, tally, role in self._plan:
            outcome = apply_record(state, record, offset, policy)
            if serving is not None:
                self._background(state, record, offset, outcome, spec == serving, ts, out)
            if outcome.expired:
                self._expired(state, tally, outcome.expired, offset, ts, role, out)
            status = outcome.status
            served = outcome.served
            if served is not None:
                append((key, partition, offset, row_id, ts, SERVED, None, None, served.y_pred, spec, role,
                        served.generation, None, None, None, None))
            if status == LEARNED:
                result = outcome.learned
                assert result is not None
                self._learned(state, tally, result, offset, ts, role, out)
            elif status == PENDING:
                continue
            elif status == ERROR:  # the processor dead-letters these too; the other specs go on
                assert outcome.error is not None
                reason = outcome.error.reason
                tally.invalid_row(reason)
                append((key, partition, offset, row_id, ts, INVALID, reason, y, None, spec, role,
                        state.generation, None, None, None, None))
            else:  # DUPLICATE, EARLY (a label waiting for its features), LATE (after its expiry)
                append((key, partition, offset, row_id, ts, _ROW_STATUS[status], None, y, None, spec, role,
                        state.generation, None, None, None, None))

    def _background(self, state: KeyState, record: Any, offset: int, main: learner.Outcome, serving: bool,
                    ts: int | None, out: PredictionRows) -> None:
        """Drift policy background: the key's background model of ``state``'s spec, as the processor's."""
        drift = self.lineup.drift
        assert drift is not None
        step = background_step(state, record, offset, main, serving=serving, gate=drift.gate,
                               policy=self.policy)
        if step.takeover is not None:  # taken over at once, as in the processor
            self.takeovers.append({"spec": state.spec, "generation": step.generation, "after": offset})
        outcome = step.outcome
        if outcome is None:
            return
        spec, key, partition, append = state.spec, self.key, self.partition, out.append
        row_id = str(record.id)
        for expiry in outcome.expired:
            if expiry.learned is not None:
                self._background_row(expiry.learned, offset, ts, spec, out)
        if outcome.served is not None:
            append((key, partition, offset, row_id, ts, SERVED, None, None, outcome.served.y_pred, spec,
                    BACKGROUND, outcome.served.generation, None, None, None, None))
        if outcome.learned is not None:
            self._background_row(outcome.learned, offset, ts, spec, out)
        self.background_rows += 1

    def _background_row(self, result: StepResult, offset: int, ts: int | None, spec: str,
                        out: PredictionRows) -> None:
        delayed = result.served_offset is not None
        out.append((self.key, self.partition, offset, str(result.id), ts, LEARNED, None, result.y_true,
                    result.y_pred, spec, BACKGROUND, result.generation, result.served_offset, result.delay_ms,
                    result.delay_rows if delayed else None, True if result.expired else None))

    def take_over(self, spec: str, generation: int, rollbacks: list[GenerationRollback] | None,
                  offset: int) -> bool:
        """A takeover record of this key, read in offset order (kappaml/background.py): written by
        processors that took over where the record is read back; the background step now takes
        over at the deciding record, so for newer logs this finds nothing to do."""
        if rollbacks and self.states is not None:
            for each in self.states.values():  # earlier rollbacks first, in offset order
                apply_rollbacks(each, rollbacks, offset)
        state = self.states.get(spec) if self.states is not None else None
        done = state is not None and take_over(state, generation)
        if done:
            self.takeovers.append({"spec": spec, "generation": generation, "after": self._last_offset})
        return done

    def _learned(self, state: KeyState, tally: _Tally, result: StepResult, offset: int, ts: int | None,
                 role: str, out: PredictionRows) -> None:
        """A scored prediction: a labelled record's, or the served one a label (or an expiry) completed."""
        y, y_pred = result.y_true, result.y_pred
        # Order-free sums for the driver's pooled metrics (_Tally.sums), inline: per record.
        err = y_pred - y
        sums = tally.sums
        sums[0] += err * err
        sums[1] += abs(err)
        sums[2] += y
        sums[3] += y * y
        if result.drift is not None:
            tally.drifts.append(self._drift(state, _Row(result.id, ts), result, offset, role))
        # generation: of the model that made this prediction, as in the processor's prediction
        # records (a reset at this very record counts from the next one).
        delayed = result.served_offset is not None
        out.append((self.key, self.partition, offset, str(result.id), ts, LEARNED, None, y, y_pred,
                    state.spec, role, result.generation, result.served_offset, result.delay_ms,
                    result.delay_rows if delayed else None, True if result.expired else None))

    def _expired(self, state: KeyState, tally: _Tally, expired: list[Expiry], offset: int, ts: int | None,
                 role: str, out: PredictionRows) -> None:
        """Served predictions whose label did not come within the TTL, expired before this record."""
        for expiry in expired:
            if expiry.learned is not None:  # --on-missing-label learn=VALUE
                self._learned(state, tally, expiry.learned, offset, ts, role, out)
                continue
            # Dropped; or the model failed learning the missing-label value (the processor logs it).
            out.append((self.key, self.partition, offset, str(expiry.id), ts, EXPIRED, expiry.error, None,
                        expiry.y_pred, state.spec, role, expiry.generation, expiry.offset, None, None, True))

    def _invalid_record(self, out: PredictionRows, offset: int, reason: str, row_id: str | None = None,
                        ts: int | None = None, y_true: float | None = None) -> None:
        """A record no spec can learn: invalid for every spec, with the same reason."""
        for spec, tally in self.tallies.items():
            tally.invalid_row(reason)
            generation = self.states[spec].generation if self.states is not None else 0
            out.row(self.key, self.partition, offset, INVALID, spec, self._roles[spec], generation, row_id,
                    ts, reason, y_true)

    def _drift(self, state: KeyState, row: Any, result: StepResult, offset: int, role: str) -> dict[str, Any]:
        """A detection: the processor's drift record (without its ``ts``), JSON-ready for the summary."""
        detection, config = result.drift, self.lineup.drift
        assert detection is not None and config is not None
        return DriftEvent(
            key=state.key, version=self.lineup.version, spec=state.spec, role=role,
            generation=state.generation,
            detector=detection.detector, policy=config.policy, action="reset" if result.reset else "alert",
            partition=self.partition, offset=offset, id=row.id, error_before=detection.error_before,
            error_after=detection.error_after, learned=state.learned, event_ts=row.ts,
        ).fields_dict()

    def finish(self, out: OutputRows) -> None:
        """Add one model row per spec: its summary and, if it has a model, the snapshot."""
        for spec, tally in self.tallies.items():
            role = self._roles[spec]
            summary: dict[str, Any] = {
                "key": self.key, "partition": self.partition, "spec": spec, "role": role, "offset": -1,
                "rows": self.rows, "invalid": tally.invalid, "learned": 0, "duplicates": 0, "generation": 0,
                "drifts": len(tally.drifts), "detections": tally.drifts, "reasons": dict(tally.reasons),
                "sums": dict(zip(("se", "ae", "y", "y2"), tally.sums, strict=True)),
            }
            blob: bytes | None = None
            state = self.states[spec] if self.states is not None else None
            # A state exists once a valid record arrived, as in the processor, which snapshots it
            # even if the model failed on every example (learned 0, offset -1).
            if state is not None:
                metrics = _finite(state.metrics.get())
                snapshot = Snapshot.of(
                    state.model, key=state.key, version=self.lineup.version, spec=spec, origin="replay",
                    partition=self.partition, offset=state.last_offset, learned=state.learned,
                    # For a cut-over (processor --from-replay): "seen", the row ids learned, so
                    # duplicates of rows learned before the cut stay skipped; "end_offsets", per raw
                    # partition the pinned end of the replay, where the processor continues.
                    extra={"metrics": metrics, "duplicates": state.skipped, "invalid": tally.invalid,
                           "seen": state.seen.to_json(), "end_offsets": self._end_offsets,
                           "generation": state.generation, "drifts": len(tally.drifts),
                           **(self._label_extra(state) if state.labels.active else {})},
                )
                blob = snapshot.encode()
                summary.update(offset=state.last_offset, learned=state.learned, duplicates=state.skipped,
                               generation=state.generation, fingerprint=snapshot.fingerprint, metrics=metrics,
                               # The model and the delayed-label state (pending and early ids, the
                               # expiry decisions' counts): the processor's state fingerprint.
                               state_fingerprint=state_fingerprint(state))
                if state.background is not None:  # drift policy background: still in the background
                    bg = state.background
                    summary["background"] = {"generation": bg.state.generation, "started": bg.started,
                                             "learned": bg.state.learned, "paired": bg.paired,
                                             "fingerprint": state_fingerprint(bg.state)}
                summary["takeovers"] = [t for t in self.takeovers if t["spec"] == spec]
                labels = state.labels
                if labels.active:
                    summary["labels"] = labels.figures()
                    # For the pooled delay percentiles (the driver's), not written out.
                    summary["delays"] = {"ms": list(labels.delays_ms), "rows": list(labels.delays_rows)}
            out.model(self.key, self.partition, summary["offset"], spec, role, summary["generation"], blob,
                      json.dumps(_finite(summary), allow_nan=False))


    @staticmethod
    def _label_extra(state: KeyState) -> dict[str, Any]:
        """A snapshot's delayed-label fields: the live processor's, and the figures."""
        labels = state.labels
        return {"state_fingerprint": state_fingerprint(state), "pending": len(labels.pending),
                "expired": labels.expired, "features_served": labels.served, "labels": labels.figures()}


def rebuild_key(pdf: pd.DataFrame, lineup: Lineup, policy: LabelPolicy = NO_TTL) -> pd.DataFrame:
    """Replay one (partition, key) group, rows in any order: its prediction rows (``kind`` "row")
    then its model rows, as one frame. For tests and one-key runs."""
    partitions = pdf["partition"].to_numpy()
    if len(partitions) and partitions.min() != partitions.max():
        raise ValueError("rebuild_key needs the rows of one partition")
    if pdf["key"].nunique(dropna=False) > 1:
        raise ValueError("rebuild_key needs the rows of one key")
    order = np.argsort(pdf["offset"].to_numpy(), kind="stable")
    offsets = pdf["offset"].to_numpy()[order]
    values = pdf["value"].to_numpy()[order]
    replay = KeyReplay(pdf["key"].iat[0] if len(pdf) else None, int(partitions[0]) if len(pdf) else 0,
                       lineup, policy=policy)
    rows, out = PredictionRows(), OutputRows()
    for offset, value in zip(offsets.tolist(), values, strict=True):
        replay.step(offset, value, rows)
    replay.finish(out)
    return pd.concat([rows.frame().assign(kind="row"), out.frame()], ignore_index=True)


def _finite(value: Any) -> Any:
    """JSON-ready: NaN/inf (e.g. R2 of one sample) become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
