"""The prediction record: one per (learned message, spec), on the predictions topic (the serving
spec's) and the challengers topic (every other spec's). Written once per message by the
processor: its ``to_dict`` is written out by hand, the generic one costs about 1 µs more.
"""

from __future__ import annotations

from typing import Any

import orjson

from kappaml.records.base import VERSION, Record, doc, record

__all__ = ["CHALLENGER", "CHAMPION", "Prediction"]

CHAMPION, CHALLENGER = "champion", "challenger"


@record("prediction")
class Prediction(Record):
    """What a model predicted for one message before learning it (prequential: test, then train)."""

    key: str = doc("the model key (the message key)")
    id: int | str = doc("the row id of the raw record")
    y_true: float = doc("the target of the record")
    y_pred: float = doc("the prediction made before learning the record")
    error: float = doc("y_pred - y_true")
    version: str = doc("the model version")
    spec: str = doc("the model spec that predicted")
    partition: int = doc("raw-topic partition of the message")
    offset: int = doc("raw-topic offset of the message")
    event_ts: int | None = doc("the record's event time (ms since the epoch), null if it has none")
    processed_ts: int = doc("when the processor handled the message (ms since the epoch)")
    role: str = doc("champion (served) or challenger (shadowing)")
    generation: int = doc("the model's generation: drift resets so far when it predicted")
    pass_no: int | None = doc("the pass of a looping replay, from 2 on (absent: the first)", wire="pass",
                              default=None)

    def to_dict(self) -> dict[str, Any]:
        record = {
            "v": VERSION,
            "key": self.key,
            "id": self.id,
            "y_true": self.y_true,
            "y_pred": self.y_pred,
            "error": self.error,
            "version": self.version,
            "spec": self.spec,
            "partition": self.partition,
            "offset": self.offset,
            "event_ts": self.event_ts,
            "processed_ts": self.processed_ts,
            "role": self.role,
            "generation": self.generation,
        }
        if self.pass_no is not None:
            record["pass"] = self.pass_no
        return record

    def fields_dict(self) -> dict[str, Any]:
        record = self.to_dict()
        del record["v"]
        return record

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @property
    def latency_ms(self) -> int | None:
        """From the event time to the prediction; None without an event time."""
        return None if self.event_ts is None else self.processed_ts - self.event_ts
