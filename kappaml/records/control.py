"""Control records: written to *every* partition of the raw topic, under the Kafka key
``kappaml.lineup.CONTROL_KEY``, read in offset order by the processor and the replay.

The one kind so far is the promotion (``control`` promote): from the record after it on, in
its partition, ``spec`` serves ``version``. How promotions are applied is ``kappaml.lineup``'s.
"""

from __future__ import annotations

import getpass
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import field
from typing import Any, Literal

import orjson

from kappaml.example import InvalidRecord
from kappaml.records.base import Record, check_version, doc, record

__all__ = ["Promotion"]


def _by() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@record("control record", kw_only=False)
class Promotion(Record):
    """A control record: from here on, in this partition, ``spec`` serves ``version``."""

    version: str = doc("the model version whose serving spec changes")
    spec: str = doc("the spec that serves from the next record on")
    id: str = field(default_factory=lambda: uuid.uuid4().hex,
                    metadata={"doc": "the promotion's id, the same in every partition"})
    ts: int = field(default_factory=lambda: int(time.time() * 1000),
                    metadata={"doc": "when it was requested (ms since the epoch)"})
    by: str = field(default_factory=_by, metadata={"doc": "who requested it (user@host)"})
    control: Literal["promote"] = doc("the kind of control record", default="promote")

    @classmethod
    def from_dict(cls, data: Any) -> Promotion:
        """Lenient about id, ts and by (records written before they existed), strict about the rest."""
        if not isinstance(data, Mapping) or data.get("control") != "promote":
            raise InvalidRecord(f"unknown control record (expected control=promote): {str(data)[:200]}")
        check_version(data, "control record")
        version, spec = data.get("version"), data.get("spec")
        if not isinstance(version, str) or not isinstance(spec, str) or not version or not spec:
            raise InvalidRecord("promote control record needs non-empty string fields version and spec")
        ts = data.get("ts")
        return cls(version=version, spec=spec, id=str(data.get("id", "")),
                   ts=ts if isinstance(ts, int) else 0, by=str(data.get("by", "")))

    @classmethod
    def decode(cls, value: bytes | bytearray | memoryview | str | None) -> Promotion:
        """The promotion in a control record's value; ``InvalidRecord`` saying why if it is not one."""
        try:
            data = orjson.loads(value or b"")
        except orjson.JSONDecodeError as exc:
            raise InvalidRecord(f"control record is not JSON: {exc}") from exc
        return cls.from_dict(data)
