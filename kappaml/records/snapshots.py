"""The models topic's record: a model snapshot, in the binary envelope of ``kappaml.snapshot``
(re-exported here, not duplicated), and its JSON header typed as ``SnapshotHeader``.

The envelope is ``b"KMLS" | format byte | header length | header JSON | model pickle``: its
format byte (1) versions the whole record, so the header carries no ``v`` of its own.
``snapshot_header`` reads the header of a message without unpickling anything (the UI lists
snapshots so; the cut-over picks the replay's with it).
"""

from __future__ import annotations

from typing import Any, Literal

from kappaml.example import InvalidRecord
from kappaml.records.base import Record, doc, record
from kappaml.snapshot import FORMAT, Snapshot, read_header, snapshot_key, snapshot_label

__all__ = ["FORMAT", "Snapshot", "SnapshotHeader", "read_header", "snapshot_header", "snapshot_key",
           "snapshot_label"]


@record("snapshot header")
class SnapshotHeader(Record):
    """Everything a snapshot says about its model, without the model."""

    key: str = doc("the model key")
    version: str = doc("the model version")
    spec: str = doc("the model spec")
    origin: Literal["live", "replay"] = doc("live (the processor) or replay (the Spark replay)")
    partition: int = doc("raw-topic partition the model learned")
    offset: int = doc("last raw-topic offset learned (-1: none yet)")
    learned: int = doc("examples learned")
    fingerprint: str = doc("sha256 of the model's learned state (kappaml.fingerprint), 64 hex digits")
    created_at: int = doc("when the snapshot was taken (ms since the epoch)")
    extra: dict[str, Any] = doc("metadata: live, generation and drifts; replay, also metrics, seen ids and "
                                "the replay's end offsets")
    model_type: str | None = doc("the model's Python class", default=None)
    pickle_len: int | None = doc("length of the model pickle after the header", default=None)
    pickle_sha256: str | None = doc("sha256 of the model pickle", default=None)

    def to_dict(self) -> dict[str, Any]:
        return self.fields_dict()  # the envelope's format byte versions it


def snapshot_header(data: bytes | bytearray | memoryview) -> SnapshotHeader:
    """The typed header of a snapshot message; ``InvalidRecord`` if it is not a snapshot."""
    try:
        header = read_header(data)
    except ValueError as exc:
        raise InvalidRecord(str(exc)) from None
    return SnapshotHeader.from_dict(header)
