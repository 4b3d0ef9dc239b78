"""The prediction records, on the predictions topic (the serving spec's) and the challengers
topic (every other spec's). Written once per message by the processor: their ``to_dict`` is
written out by hand, the generic one costs about 1 µs more.

* ``Prediction``: a scored prediction, one per (learned example, spec). For a labelled record
  it is made and scored at once; with delayed labels it is written when the label arrives
  and scores the prediction served earlier (``delay_ms``, ``delay_rows``, ``served_offset``),
  or when no label came in time and the missing-label value was learned (``expired``).
* ``ServedPrediction`` (``"kind": "served"``): the prediction served for a ``features``
  record at once, before its label is known (no ``y_true``).

``decode_prediction`` reads either.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from kappaml.records.base import VERSION, Record, check_version, doc, loads, record

__all__ = ["CHALLENGER", "CHAMPION", "SERVED", "Prediction", "ServedPrediction", "decode_prediction"]

SERVED = "served"

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
    # Delayed labels (absent for a labelled record).
    delay_ms: int | None = doc("label ts - features ts: how long the label took (ms of event time)",
                               default=None)
    delay_rows: int | None = doc("records of the key between the features and their label", default=None)
    served_offset: int | None = doc("raw-topic offset of the features record whose served prediction "
                                    "this scores (offset: the record that completed it)", default=None)
    expired: bool | None = doc("true: no label came within the TTL; y_true is the missing-label value",
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
        if self.served_offset is not None:  # delayed labels: the rest are rarely set without it
            for name in ("delay_ms", "delay_rows", "served_offset"):
                if getattr(self, name) is not None:
                    record[name] = getattr(self, name)
        elif self.delay_ms is not None or self.delay_rows is not None:
            record.update({n: getattr(self, n) for n in ("delay_ms", "delay_rows")
                           if getattr(self, n) is not None})
        if self.expired is not None:
            record["expired"] = self.expired
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


@record("served prediction")
class ServedPrediction(Record):
    """The prediction served for a ``features`` record, at once: its label is not known yet.

    Exactly one per features record and spec; the ``Prediction`` that scores it follows when
    the label arrives (its ``served_offset`` is this record's ``offset``).
    """

    kind: Literal["served"] = doc("the record's kind: a prediction served before its label", default=SERVED)
    key: str = doc("the model key (the message key)")
    id: int | str = doc("the row id of the features record")
    y_pred: float = doc("the prediction served")
    version: str = doc("the model version")
    spec: str = doc("the model spec that predicted")
    partition: int = doc("raw-topic partition of the features record")
    offset: int = doc("raw-topic offset of the features record")
    event_ts: int | None = doc("the features record's event time (ms since the epoch), null if none")
    processed_ts: int = doc("when the processor served it (ms since the epoch)")
    role: str = doc("champion (served) or challenger (shadowing)")
    generation: int = doc("the model's generation: drift resets so far when it predicted")
    pass_no: int | None = doc("the pass of a looping replay, from 2 on (absent: the first)", wire="pass",
                              default=None)

    def to_dict(self) -> dict[str, Any]:
        record = {
            "v": VERSION,
            "kind": SERVED,
            "key": self.key,
            "id": self.id,
            "y_pred": self.y_pred,
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
        return None if self.event_ts is None else self.processed_ts - self.event_ts


def decode_prediction(value: bytes | bytearray | memoryview | str | None) -> Prediction | ServedPrediction:
    """Either record of the predictions topics, by ``kind`` (``served``, else a scored ``Prediction``)."""
    data = loads(value, "prediction")
    if isinstance(data, dict) and data.get("kind") == SERVED:
        check_version(data, ServedPrediction.WHAT)
        return ServedPrediction._from_fields(data)  # noqa: SLF001
    return Prediction.from_dict(data)
