"""The models topic's typed header: a snapshot as the processor and the replay write it reads back."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from records_kit import records, schema_for

from kappaml.dataset import builtin
from kappaml.models import build_model
from kappaml.records import InvalidRecord
from kappaml.records.snapshots import Snapshot, SnapshotHeader, read_header, snapshot_header


@settings(deadline=None)  # no timing asserted: a loaded machine is slow
@given(records(SnapshotHeader))
def test_every_header_survives_a_round_trip(header: SnapshotHeader) -> None:
    assert SnapshotHeader.decode(header.encode()) == header
    assert "v" not in header.to_dict()  # the envelope's format byte versions a snapshot


def test_a_written_snapshot_has_a_typed_header() -> None:
    model = build_model("linear", builtin("co2"))
    snap = Snapshot.of(model, key="k", version="v1", spec="linear", origin="replay", partition=1, offset=9,
                       learned=10, extra={"generation": 0, "drifts": 0})
    header = snapshot_header(snap.encode())
    assert (header.key, header.origin, header.offset) == ("k", "replay", 9)
    assert header.fingerprint == snap.fingerprint
    assert header.extra == {"generation": 0, "drifts": 0} and header.pickle_len
    raw = read_header(snap.encode())
    assert header.to_dict() == raw
    import jsonschema  # noqa: PLC0415

    jsonschema.validate(json.loads(json.dumps(raw)), schema_for(SnapshotHeader))


@pytest.mark.parametrize(("value", "words"), [(b"KMLS", "too short"),
                                             (b"nope" * 10, "not a kappaml snapshot")])
def test_what_is_not_a_snapshot_is_refused_with_a_reason(value: bytes, words: str) -> None:
    with pytest.raises(InvalidRecord, match=words):
        snapshot_header(value)
