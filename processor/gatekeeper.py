"""``--promotion auto``: the processor side of the promotion gate (kappaml/gate.py).

Per record, the processor hands over each spec's :class:`~kappaml.learner.Outcome`
(:meth:`Gatekeeper.scored`), then says the record is done (:meth:`Gatekeeper.record_done`):
the rows both the serving spec and a challenger scored become pairs of squared errors in the
partition's :class:`~kappaml.gate.PartitionGate`. When the gate finds a better challenger,
the processor writes a :class:`~kappaml.records.Promotion` control record (reason ``gate``,
with the evidence) to *that* partition of the raw topic: the decision rests on that
partition's rows only, and the champion is per partition. It goes through the application's
producer, so under exactly-once it commits with the gate's state and the consumed offsets (a
crash before the commit aborts it, and the re-run decides again at the same offset). Every
look also publishes one ``gate`` record per challenger to the metrics topic (processor/gatelooks.py).
A drift detection of the serving spec at a record restarts the partition's gate before that
record's rows are paired (kappaml/gatedrift.py).

The switch happens here, at once: the promotion record carries the offset it was decided at
(``after``), and from the next record on the promoted spec serves; read back later from the
log, the record is skipped (processor/app.py ``_control``: the gate decides the same at the
same offset on any instance and after any crash, so it is in effect), and the Spark replay
applies it after ``after`` too (kappaml/lineup.py PromotionLog).
Waiting for the record to come back would serve the spec the gate has just found worse for
every row written in between: under exactly-once the record is readable only after the
gate's commit, so about a commit interval of rows (350 at 400 rows/s in bench_adapt), and with
a backlog the whole backlog.
The gate's state lives in the partition's store beside the champion and is re-read at the
first use in each checkpoint, so it moves with the partition to another instance.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from kappaml.gate import Candidate, GateConfig, PartitionGate
from kappaml.learner import Outcome, StepResult
from kappaml.lineup import CONTROL_HEADER, CONTROL_KEY_BYTES, Promotion
from kappaml.logging import get_logger
from kappaml.records import GATE_KEY, GateEvidence
from processor.gatelooks import gate_looks
from processor.outputs import now_ms

if TYPE_CHECKING:
    from processor.app import Processor

__all__ = ["Gatekeeper"]

log = get_logger(__name__)

_GATE = "gate"
# One scored row of a record: its id, the offset of its served prediction (delayed labels)
# and whether it expired; two specs scored "the same row" when these agree.
_RowRef = tuple[Any, Any, bool]


def _rows(outcome: Outcome) -> list[tuple[_RowRef, StepResult]]:
    results = [e.learned for e in outcome.expired if e.learned is not None]
    if outcome.learned is not None:
        results.append(outcome.learned)
    return [((r.id, r.served_offset, r.expired), r) for r in results]


class Gatekeeper:
    def __init__(self, processor: Processor, config: GateConfig) -> None:
        self.p = processor
        self.config = config
        self._gates: dict[int, PartitionGate] = {}
        self._loaded: set[int] = set()
        # The current record's scored rows: row -> {spec: squared error}, in scoring order.
        self._errors: dict[_RowRef, dict[str, float]] = {}
        self._detected: set[str] = set()  # the specs whose drift monitor fired at the current record

    def _gate(self, partition: int) -> PartitionGate:
        if partition not in self._loaded:
            state = self.p.store_transaction(partition).as_state(prefix=CONTROL_KEY_BYTES)
            stored = state.get(_GATE)
            # The stored gate is the committed one: ours if we held the partition all along,
            # another instance's after a rebalance, the last checkpoint's after a crash.
            self._gates[partition] = stored if isinstance(stored, PartitionGate) else PartitionGate()
            self._loaded.add(partition)
        return self._gates[partition]

    def scored(self, spec: str, outcome: Outcome) -> None:
        """What one spec did with the current record; called for every spec, before record_done."""
        if outcome.learned is None and not outcome.expired:
            return
        for ref, result in _rows(outcome):
            if result.drift is not None:
                self._detected.add(spec)
            err = (result.y_pred - result.y_true) ** 2
            if math.isfinite(err):  # an overflowing error cannot be compared: no pair
                self._errors.setdefault(ref, {})[spec] = err

    def record_done(self, partition: int, offset: int, serving: str) -> None:
        """The record at ``offset`` is handled by every spec: pair its rows, maybe promote."""
        detected = False
        if self._detected:  # rare: no new set per record
            detected = serving in self._detected
            self._detected.clear()
        if not self._errors and not detected:
            return
        rows, self._errors = self._errors, {}
        gate = self._gate(partition)
        if detected and gate.drifted(self.config):
            log.info("gate: drift detected, starting afresh", partition=partition, offset=offset,
                     serving=serving, scored=gate.scored)
        for errors in rows.values():
            looks = gate.looks
            candidate = gate.observe(serving, errors, self.config)
            if gate.looks != looks:  # a look: publish what it saw of each challenger
                self._publish_looks(gate, candidate, partition, offset, serving)
            if candidate is not None and self._promote(gate, candidate, partition, offset):
                serving = candidate.spec  # the record's further rows (expiries) pair with it

    def applied(self, partition: int, promotion: Promotion, previous: str | None = None) -> None:
        """A promotion took effect in the partition (the gate's own at its decision, any other
        where its control record is read)."""
        self._gate(partition).switched(promotion.reason, previous, self.config.auto_rollback)

    def checkpoint(self) -> None:
        """Store the gates touched in this checkpoint (with the models and the offsets)."""
        for partition in self._loaded:
            state = self.p.store_transaction(partition).as_state(prefix=CONTROL_KEY_BYTES)
            state.set(_GATE, self._gates[partition])
        self._loaded.clear()

    def _publish_looks(self, gate: PartitionGate, candidate: Candidate | None, partition: int, offset: int,
                       serving: str) -> None:
        # Through the application's producer, like the promotion record: exactly once.
        for look in gate_looks(gate, self.config, candidate, version=self.p.lineup.version,
                               instance=self.p.instance, partition=partition, offset=offset,
                               serving=serving, ts=now_ms()):
            self.p.producer.produce(self.p.settings.topics.metrics, key=GATE_KEY, value=look.encode())

    def _promote(self, gate: PartitionGate, candidate: Candidate, partition: int, offset: int) -> bool:
        """Write the promotion; True when it took effect at once (module docstring)."""
        d, cfg, version = candidate.decision, self.config, self.p.lineup.version
        evidence = GateEvidence(
            partition=partition, offset=offset, scored=candidate.scored, serving=candidate.serving,
            pairs=d.pairs, n=d.n, wins=d.wins, p_value=d.p_value, look=candidate.look, alpha=d.alpha,
            mse_serving=d.mse_serving, mse_challenger=d.mse_challenger, confidence=cfg.confidence,
            margin=cfg.margin, window=cfg.window)
        # The id names the decision: a re-run after a crash decides the same at the same
        # offset, so the same id (an at-least-once duplicate is recognisably one).
        # "gate-..." or "auto-rollback-...": both may be decided at one offset, never twice each.
        promotion = Promotion(version=version, spec=candidate.spec,
                              id=f"{candidate.reason}-{version}-{partition}-{offset}",
                              by=f"gate@{self.p.instance}", reason=candidate.reason, evidence=evidence,
                              after=offset)
        self.p.producer.produce(self.p.settings.topics.raw, key=CONTROL_KEY_BYTES, value=promotion.encode(),
                                partition=partition, headers=[(CONTROL_HEADER, b"promote")])
        gate.pending = promotion.id
        what = "gate: promoting" if candidate.reason == "gate" else "gate: rolling back"
        log.info(what, partition=partition, offset=offset, spec=candidate.spec,
                 serving=candidate.serving, why=d.why)
        # The same steps as a control record read back (applied() included): the gate starts over.
        return self.p.apply_promotion(promotion, partition, offset, candidate.serving) is None
