"""Model snapshots for the Predict page: headers to choose from, decoded models to predict with."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from kappaml.records.snapshots import Snapshot, SnapshotHeader, snapshot_header
from ui.store import SnapshotRef

__all__ = ["SnapshotChoice", "choices", "load_model", "pick"]


@dataclass(frozen=True)
class SnapshotChoice:
    ref: SnapshotRef
    header: SnapshotHeader

    @property
    def created_at(self) -> int:
        return self.header.created_at


@st.cache_data(show_spinner=False, max_entries=1024)
def _header(version: str, key: str, partition: int, offset: int, _value: bytes) -> SnapshotHeader | str:
    # (version, key, partition, offset) identifies the bytes: a Kafka record never changes.
    try:
        return snapshot_header(_value)
    except ValueError as exc:  # InvalidRecord included
        return str(exc)


def choices(snapshots: dict[tuple[str, str], SnapshotRef]) -> tuple[list[SnapshotChoice], list[str]]:
    """Readable snapshots (newest first) and the problems of the unreadable ones."""
    good: list[SnapshotChoice] = []
    problems: list[str] = []
    for (version, key), ref in snapshots.items():
        header = _header(version, key, ref.partition, ref.offset, ref.value)
        if isinstance(header, str):
            problems.append(f"{version}/{key} (offset {ref.offset}): {header}")
        else:
            good.append(SnapshotChoice(ref, header))
    good.sort(key=lambda c: (c.created_at, c.ref.received_at), reverse=True)
    return good, problems


@st.cache_resource(show_spinner="Loading the model snapshot…", max_entries=16)
def _decode(version: str, key: str, partition: int, offset: int, _value: bytes) -> Snapshot:
    # Decoding verifies the pickle digest and re-computes the fingerprint.
    return Snapshot.decode(_value)


def load_model(ref: SnapshotRef) -> Snapshot:
    """The decoded snapshot; ValueError with the reason when it is corrupt."""
    return _decode(ref.version, ref.key, ref.partition, ref.offset, ref.value)


def pick(available: list[SnapshotChoice], label: str, model_key: str, *,
         latest: str) -> SnapshotChoice | None:
    """The newest snapshot of ``model_key`` under ``label``; for ``latest``, a live one if any.

    A replay's snapshots (labels ending in ``@replay``) are chosen by naming their label: the
    newest snapshot overall may be a replay of the live version, which is not what it serves.
    """
    matching = [c for c in available  # newest first
                if c.ref.key == model_key and (label == latest or c.ref.version == label)]
    if label == latest:
        matching = [c for c in matching if "@" not in c.ref.version] or matching
    return matching[0] if matching else None
