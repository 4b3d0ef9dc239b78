"""``--drift-policy background``: the processor side of kappaml/background.py.

Per record and spec, after the spec's main model handled it, :meth:`Backgrounds.step` gives
the background model of the key (if any) its turn, publishes its predictions (challengers
topic, role ``background``, its own generation) and, when the gate finds it better, writes a
takeover control record to the key's partition through the application's producer (and every
gate look at it as a ``gate`` record to the metrics topic, processor/gatelooks.py): under
exactly-once it commits with the key's state (where ``pending`` is set) and the consumed
offsets, like the gate's promotions. The takeover itself happened in ``background_step`` at the
deciding record (the Spark replay's workers run it too, so they take over at the same one); the
record is the log's history of it, and reading it back changes nothing
(:meth:`Backgrounds.control`; a takeover record of an older log, written to be applied where it
is read, still is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kappaml.background import BACKGROUND, GenerationRollback, apply_rollbacks, background_step, take_over
from kappaml.gate import GateConfig
from kappaml.learner import KeyState, Outcome
from kappaml.lineup import CONTROL_HEADER, CONTROL_KEY_BYTES, Promotion
from kappaml.logging import get_logger
from kappaml.records import GATE_KEY, GateEvidence
from kappaml.records.control import TAKEOVER
from processor.gatelooks import background_looks
from processor.outputs import now_ms

if TYPE_CHECKING:
    from processor.app import Processor

__all__ = ["Backgrounds"]

log = get_logger(__name__)

_ROLLBACKS = "generation_rollbacks"


class Backgrounds:
    def __init__(self, processor: Processor, gate: GateConfig) -> None:
        self.p = processor
        self.gate = gate
        # Per partition, the rollbacks to a generation read so far (kappaml/background.py),
        # kept in the partition's store beside its champion; re-read in each checkpoint, since
        # another instance may have served the partition in between.
        self._rollbacks: dict[int, list[GenerationRollback]] = {}
        self._loaded: set[int] = set()

    def rollbacks(self, partition: int) -> list[GenerationRollback]:
        if partition not in self._loaded:
            state = self.p.store_transaction(partition).as_state(prefix=CONTROL_KEY_BYTES)
            self._rollbacks[partition] = [tuple(r) for r in state.get(_ROLLBACKS) or []]  # type: ignore[misc]
            self._loaded.add(partition)
        return self._rollbacks[partition]

    def before(self, states: dict[str, KeyState], partition: int, offset: int) -> None:
        """Before a key's record: the rollbacks to a generation it has not seen yet."""
        rollbacks = self.rollbacks(partition)
        if rollbacks:
            for ks in states.values():
                if apply_rollbacks(ks, rollbacks, offset):
                    log.info("rolled back to the model a takeover replaced", key=ks.key, spec=ks.spec,
                             generation=ks.generation, offset=offset)

    def rollback(self, promotion: Promotion, partition: int, offset: int) -> None:
        """A rollback to a generation read back: recorded for the partition's keys."""
        assert promotion.generation is not None
        rollbacks = self.rollbacks(partition)
        rollbacks.append((offset, promotion.spec, promotion.generation))
        self.p.store_transaction(partition).as_state(prefix=CONTROL_KEY_BYTES).set(_ROLLBACKS, rollbacks)

    def checkpoint(self) -> None:
        self._loaded.clear()

    def step(self, ks: KeyState, record: Any, offset: int, main: Outcome, *, serving: bool, key: bytes,
             partition: int, ts: int | None, value: bytes) -> None:
        p = self.p
        step = background_step(ks, record, offset, main, serving=serving, gate=self.gate,
                               policy=p.settings.labels)
        if step.outcome is not None:
            bg = ks.background.state if ks.background is not None else None
            if bg is not None or step.dropped or step.takeover is not None:
                # The background KeyState (gone from ks once dropped or taken over: its outcome
                # at this record still counts; taken over, ks holds its model and generation).
                p.emitter.outcome(bg or ks, step.outcome, serving=False, key=key, partition=partition,
                                  offset=offset, ts=ts, value=value, role=BACKGROUND)
        if step.started:
            log.info("drift: background model started", key=ks.key, spec=ks.spec, offset=offset,
                     generation=step.generation)
        elif step.ignored:
            log.info("drift while a background model runs: ignored", key=ks.key, spec=ks.spec, offset=offset)
        if step.dropped:
            log.info("background model dropped: not better within its patience", key=ks.key, spec=ks.spec,
                     offset=offset, generation=step.generation, paired=step.paired)
        if step.looks:
            # Each look as a gate record (metrics topic), through the application's producer like
            # the takeover record: exactly once, with the key's state and the offsets.
            metrics = p.settings.topics.metrics
            for look in background_looks(step.looks, key=ks.key, spec=ks.spec, version=p.lineup.version,
                                         instance=p.instance, partition=partition, offset=offset,
                                         ts=now_ms()):
                p.producer.produce(metrics, key=GATE_KEY, value=look.encode())
        if step.takeover is not None:
            look = next(each.look for each in step.looks if each.takeover)
            self._write(ks, step.generation, step.paired, look, step.takeover, partition, offset)

    def _write(self, ks: KeyState, generation: int, paired: int, look: int, d: Any, partition: int,
               offset: int) -> None:
        p, cfg, version = self.p, self.gate, self.p.lineup.version
        evidence = GateEvidence(
            partition=partition, offset=offset, scored=paired, serving=ks.spec, pairs=d.pairs, n=d.n,
            wins=d.wins, p_value=d.p_value, look=look, alpha=d.alpha,
            mse_serving=d.mse_serving, mse_challenger=d.mse_challenger, confidence=cfg.confidence,
            margin=cfg.margin, window=cfg.window)
        # Named by the decision: a re-run after a crash decides the same at the same offset.
        takeover = Promotion(version=version, spec=ks.spec,
                             id=f"takeover-{version}-{partition}-{offset}-{ks.spec}",
                             by=f"gate@{p.instance}", reason=TAKEOVER, evidence=evidence, key=ks.key,
                             generation=generation, after=offset)
        p.producer.produce(p.settings.topics.raw, key=CONTROL_KEY_BYTES, value=takeover.encode(),
                           partition=partition, headers=[(CONTROL_HEADER, b"promote")])
        log.info("background model better: taken over, takeover written", key=ks.key, spec=ks.spec,
                 partition=partition, offset=offset, generation=generation, why=d.why)
        serving = p.champions.champion(partition, p.store_transaction)
        p.record_applied(takeover, serving, partition, offset, model_key=ks.key, generation=generation)

    def control(self, promotion: Promotion, partition: int, offset: int) -> bool:
        """A takeover record read back: nothing to do for one this processor decided (it took over
        then); for an older log's record, written to act here, the key's background model
        becomes its spec's model."""
        assert promotion.key is not None and promotion.generation is not None
        states = self.p.cache.get(partition, promotion.key, self.p.store_transaction)
        self.before(states, partition, offset)  # earlier rollbacks first, in offset order
        ks = states.get(promotion.spec)
        done = ks is not None and take_over(ks, promotion.generation)
        if done or promotion.after is None:
            log.info("takeover" if done else "takeover without its background model: nothing to do",
                     key=promotion.key, spec=promotion.spec, generation=promotion.generation,
                     partition=partition)
        return done
