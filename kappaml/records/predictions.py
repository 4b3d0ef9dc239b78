"""The prediction records, on the predictions topic (the serving spec's) and the challengers
topic (every other spec's). Written once per message by the processor: their ``to_dict`` is
written out by hand (``prediction_dict``, ``served_dict``), the generic one costs about 1 µs more,
and the processor encodes those dicts without building the record at all.

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

__all__ = ["CHALLENGER", "CHAMPION", "SERVED", "Prediction", "ServedPrediction", "decode_prediction",
           "prediction_dict", "served_dict"]

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
        return prediction_dict(self.key, self.id, self.y_true, self.y_pred, self.error, self.version,
                               self.spec, self.partition, self.offset, self.event_ts, self.processed_ts,
                               self.role, self.generation, self.pass_no, self.delay_ms, self.delay_rows,
                               self.served_offset, self.expired)

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
        return served_dict(self.key, self.id, self.y_pred, self.version, self.spec, self.partition,
                           self.offset, self.event_ts, self.processed_ts, self.role, self.generation,
                           self.pass_no)

    def fields_dict(self) -> dict[str, Any]:
        record = self.to_dict()
        del record["v"]
        return record

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @property
    def latency_ms(self) -> int | None:
        return None if self.event_ts is None else self.processed_ts - self.event_ts


# The JSON objects of the two records, from their field values: the processor writes one per
# learned example or served features record (processor/outputs.py) and encodes them without
# building the record (a Prediction costs about 2 us to build); the records' ``to_dict`` are
# these same functions, so what is written and what the records say cannot differ.


def prediction_dict(key: str, id: int | str, y_true: float, y_pred: float, error: float, version: str,
                    spec: str, partition: int, offset: int, event_ts: int | None, processed_ts: int,
                    role: str, generation: int, pass_no: int | None = None, delay_ms: int | None = None,
                    delay_rows: int | None = None, served_offset: int | None = None,
                    expired: bool | None = None) -> dict[str, Any]:
    """``Prediction.to_dict()`` of these field values (the optional ones left out while None)."""
    record = {
        "v": VERSION,
        "key": key,
        "id": id,
        "y_true": y_true,
        "y_pred": y_pred,
        "error": error,
        "version": version,
        "spec": spec,
        "partition": partition,
        "offset": offset,
        "event_ts": event_ts,
        "processed_ts": processed_ts,
        "role": role,
        "generation": generation,
    }
    if pass_no is not None:
        record["pass"] = pass_no
    if delay_ms is not None:
        record["delay_ms"] = delay_ms
    if delay_rows is not None:
        record["delay_rows"] = delay_rows
    if served_offset is not None:
        record["served_offset"] = served_offset
    if expired is not None:
        record["expired"] = expired
    return record


def served_dict(key: str, id: int | str, y_pred: float, version: str, spec: str, partition: int, offset: int,
                event_ts: int | None, processed_ts: int, role: str, generation: int,
                pass_no: int | None = None) -> dict[str, Any]:
    """``ServedPrediction.to_dict()`` of these field values."""
    record = {
        "v": VERSION,
        "kind": SERVED,
        "key": key,
        "id": id,
        "y_pred": y_pred,
        "version": version,
        "spec": spec,
        "partition": partition,
        "offset": offset,
        "event_ts": event_ts,
        "processed_ts": processed_ts,
        "role": role,
        "generation": generation,
    }
    if pass_no is not None:
        record["pass"] = pass_no
    return record


def decode_prediction(value: bytes | bytearray | memoryview | str | None) -> Prediction | ServedPrediction:
    """Either record of the predictions topics, by ``kind`` (``served``, else a scored ``Prediction``)."""
    data = loads(value, "prediction")
    if isinstance(data, dict) and data.get("kind") == SERVED:
        check_version(data, ServedPrediction.WHAT)
        return ServedPrediction._from_fields(data)  # noqa: SLF001
    return Prediction.from_dict(data)
