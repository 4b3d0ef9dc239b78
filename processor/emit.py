"""The outputs of one record for one spec: what ``kappaml.learner.apply_record`` did, published.

* a ``features`` record: its ``ServedPrediction`` at once (predictions topic for the serving
  spec, challengers topic for the others);
* every example learned (a labelled record, a label pairing its features, an expiry learned
  with the missing-label value): its scored ``Prediction``, with the delay of a delayed label;
  the served tally of the partition scores it when the serving spec learned it;
* a drift detection: its ``DriftEvent``.

All of it goes through the processor's transactional producer, in the checkpoint's transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from kappaml.learner import DUPLICATE, ERROR, Expiry, KeyState, ModelError, Outcome, StepResult
from kappaml.logging import get_logger
from processor.outputs import drift_event, encode_scored_prediction, encode_served_prediction, now_ms

if TYPE_CHECKING:
    from processor.app import Processor

__all__ = ["Emitter"]

log = get_logger(__name__)


class _Row(NamedTuple):
    """What a drift event names: the row whose learning raised it and the record's event time."""

    id: int | str | None
    ts: int | None


class Emitter:
    def __init__(self, processor: Processor) -> None:
        self.p = processor
        self.topics = processor.settings.topics
        # Topics' names are properties (f-strings): looked up once here, not per record.
        self._predictions, self._challengers = self.topics.predictions, self.topics.challengers

    def _topic(self, serving: bool) -> str:
        return self._predictions if serving else self._challengers

    def outcome(self, ks: KeyState, outcome: Outcome, *, serving: bool, key: bytes, partition: int,
                offset: int, ts: int | None, value: bytes, role: str | None = None) -> None:
        """Publish what one spec did with the record at ``offset`` (event time ``ts``).

        ``role``: ``background`` for a background model (kappaml/background.py): its records go
        to the challengers topic, and its model errors are logged, not dead-lettered (the main
        model of its spec handles the same record).
        """
        p = self.p
        if outcome.expired:
            self._expired(ks, outcome.expired, serving=serving, key=key, partition=partition, offset=offset,
                          ts=ts, role=role)
        status = outcome.status
        if status == DUPLICATE:
            p.duplicates.skipped += serving
            return
        if status == ERROR:
            if role is None:
                self._model_error(ks, outcome.error, key, partition, offset, value)
            else:
                log.error("background model failed on a message", key=ks.key, spec=ks.spec, offset=offset,
                          reason=outcome.error.reason if outcome.error else None)
        served = outcome.served
        processed = 0
        if served is not None:
            processed = now_ms()
            record = encode_served_prediction(ks, served, partition, offset, processed,
                                              role or ("champion" if serving else "challenger"))
            p.produce_output(self._topic(serving), key, record)
            if serving:
                p.stats.served += 1
                if served.ts is not None:
                    p.stats.latencies_ms.append(processed - served.ts)
        result = outcome.learned
        if result is not None:
            self._learned(ks, result, serving=serving, key=key, partition=partition, offset=offset, ts=ts,
                          processed=processed or now_ms(), role=role)

    def _learned(self, ks: KeyState, result: StepResult, *, serving: bool, key: bytes, partition: int,
                 offset: int, ts: int | None, processed: int, role: str | None = None) -> None:
        p = self.p
        role = role or ("champion" if serving else "challenger")
        record = encode_scored_prediction(ks, result, partition, offset, processed, role, ts)
        p.produce_output(self._topic(serving), key, record)
        if serving:
            p.stats.learned += 1
            p.champions.served[partition].update(result.y_true, result.y_pred)
            if result.served_offset is None and ts is not None:  # a labelled record: predicted just now
                p.stats.latencies_ms.append(processed - ts)
        if result.drift is not None:
            event = drift_event(ks, _Row(result.id, ts), result, partition, offset, role, processed)  # type: ignore[arg-type]
            log.warning("drift detected", key=ks.key, spec=ks.spec, offset=offset,
                        error_before=round(event.error_before, 3),
                        error_after=round(event.error_after, 3), action=event.action)
            p.produce_output(self.topics.drift, key, event.encode())
            p.metrics.drift(ks.spec, event.action)

    def _expired(self, ks: KeyState, expired: list[Expiry], *, serving: bool, key: bytes, partition: int,
                 offset: int, ts: int | None, role: str | None = None) -> None:
        processed = now_ms()
        for expiry in expired:
            if expiry.error is not None:
                log.error("model failed learning an expired prediction's missing-label value", key=ks.key,
                          spec=ks.spec, id=expiry.id, offset=offset, reason=expiry.error)
            if expiry.learned is not None:
                self._learned(ks, expiry.learned, serving=serving, key=key, partition=partition,
                              offset=offset, ts=ts, processed=processed, role=role)

    def _model_error(self, ks: KeyState, error: ModelError | None, key: bytes, partition: int, offset: int,
                     value: bytes) -> None:
        assert error is not None
        log.error("model failed on a message; sent to the dead-letter topic", key=ks.key, spec=ks.spec,
                  partition=partition, offset=offset, reason=error.reason)
        self.p.send_dead_letter(error, partition, offset, key, value)

