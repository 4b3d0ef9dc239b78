"""The dead letter: a message (or CSV row) that could not be used, and why (the DLQ topic).

Two stages write them. The processor (``stage`` processor) keeps where the poison message was
(``source``: topic, partition, offset) and its value, shortened to 2 KiB, as text or base64.
The producer (``stage`` producer) names the data set in ``source`` and the row in ``id``, with
the reason's ``column``, ``value`` and ``row``. Readers must take any of these as absent.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from kappaml.example import InvalidRecord
from kappaml.records.base import Record, doc, loads, record

__all__ = ["MAX_PAYLOAD", "DeadLetter", "read_dead_letter"]

# Bytes of a poison message kept in its dead letter.
MAX_PAYLOAD = 2048


@record("dead letter")
class DeadLetter(Record):
    """Why a message went to the dead-letter topic instead of a model, and where it came from."""

    stage: str = doc("who dead-lettered it: processor or producer")
    reason: str = doc("why, in words")
    ts: int | None = doc("when (ms since the epoch)", default=None)
    source: dict[str, Any] | str | None = doc(
        "processor: the poison message's {topic, partition, offset}; producer: the data set", default=None)
    key: str | None = doc("the message key (undecodable bytes replaced)", default=None, keep_null=True)
    id: str | int | None = doc("producer: the row id (the SSE event id)", default=None)
    detail: dict[str, Any] | None = doc("processor: the reason's row, column and value when known",
                                        default=None)
    column: str | None = doc("producer: the offending column", default=None)
    row: int | None = doc("producer: the offending CSV row", default=None)
    value: Any = doc("processor: the message value, shortened (see value_encoding); producer: the "
                     "offending value", default=None)
    value_encoding: str | None = doc("processor: utf-8 or base64 (a value that is not UTF-8)", default=None)
    value_bytes: int | None = doc("processor: the message value's full length", default=None)
    truncated: bool | None = doc("processor: whether value was shortened", default=None)

    @classmethod
    def of_message(cls, reason: str, *, topic: str, partition: int, offset: int, key: bytes | None,
                   value: bytes | None, ts: int, detail: dict[str, Any] | None = None) -> DeadLetter:
        """The processor's dead letter of a poison message, keeping enough of it to find and inspect it."""
        payload = value or b""
        try:
            shown = payload[:MAX_PAYLOAD].decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            shown = base64.b64encode(payload[:MAX_PAYLOAD]).decode()
            encoding = "base64"
        return cls(stage="processor", reason=reason, detail=detail or {},
                   source={"topic": topic, "partition": partition, "offset": offset},
                   key=key.decode("utf-8", "replace") if key is not None else None, value=shown,
                   value_encoding=encoding, value_bytes=len(payload), truncated=len(payload) > MAX_PAYLOAD,
                   ts=ts)

    def encode(self) -> bytes:
        # A producer's offending value may be anything the SSE event held: never refuse to dead-letter.
        return orjson.dumps(self.to_dict(), default=str)

    @property
    def where(self) -> str:
        """``topic[partition]@offset`` of a processor's dead letter, else ""."""
        s = self.source
        if not isinstance(s, dict) or not s:
            return ""
        return f"{s.get('topic')}[{s.get('partition')}]@{s.get('offset')}"


def read_dead_letter(value: bytes | None) -> DeadLetter:
    """The dead letter in a DLQ message; one that is not readable is shown as such, never dropped."""
    try:
        return DeadLetter.from_dict(loads(value, "dead letter"))
    except InvalidRecord as exc:
        return DeadLetter(stage="?", reason=f"unreadable dead letter: {exc.reason}")
