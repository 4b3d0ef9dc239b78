"""Snapshot envelope: round trip, metadata without unpickling, and clear errors on garbage."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kappaml.dataset import builtin
from kappaml.fingerprint import fingerprint
from kappaml.models import DEFAULT_SPEC, build_model
from kappaml.snapshot import Snapshot, parse_label, parse_snapshot_key, read_header, snapshot_key

CO2 = builtin("co2")


def trained_model(n: int = 25):
    model = build_model(DEFAULT_SPEC, CO2)
    for i in range(n):
        x = {f.name: (float(i % 7 + 1) if f.kind == "numeric" else float(i % 5 == k))
             for k, f in enumerate(f for f in CO2.features)}
        model.learn_one(x, 100.0 + 3 * i)
    return model


def make(**overrides) -> Snapshot:
    model = overrides.pop("model", None) or trained_model()
    fields = {
        "key": "__all__",
        "version": "v3",
        "spec": DEFAULT_SPEC,
        "origin": "replay",
        "partition": 1,
        "offset": 4242,
        "learned": 25,
        "created_at": 1_700_000_000_000,
        "extra": {"metrics": {"rmse": 3.5, "r2": None}},
    }
    fields.update(overrides)
    return Snapshot.of(model, **fields)


def test_round_trip_keeps_every_field_and_the_model() -> None:
    snap = make()
    data = snap.encode()
    back = Snapshot.decode(data)
    assert back == snap  # compares all metadata fields
    assert back.extra == snap.extra
    assert fingerprint(back.model) == snap.fingerprint
    x = {f.name: 1.0 for f in CO2.features}
    assert back.model.predict_one(x) == snap.model.predict_one(x)
    assert back.encode() == data  # deterministic bytes for a given snapshot


def test_header_is_readable_without_unpickling() -> None:
    snap = make()
    data = snap.encode()
    # Replace the pickle with bytes that would fail to unpickle, keeping length and digest honest.
    magic, fmt, head_len = struct.unpack_from(">4sBI", data)
    header = json.loads(data[9 : 9 + head_len])
    assert header["fingerprint"] == snap.fingerprint
    assert header["learned"] == 25 and header["origin"] == "replay" and header["offset"] == 4242
    assert header["model_type"].endswith("RecursiveLeastSquares")
    assert read_header(data) == header
    with pytest.raises(ValueError, match="unpickle"):
        Snapshot.decode(_rebuild(header, b"\x80\x05not a pickle"))
    assert read_header(_rebuild(header, b"\x80\x05not a pickle"))["key"] == "__all__"


def _rebuild(header: dict, blob: bytes) -> bytes:
    import hashlib

    header = dict(header, pickle_len=len(blob), pickle_sha256=hashlib.sha256(blob).hexdigest())
    head = json.dumps(header).encode()
    return struct.pack(">4sBI", b"KMLS", 1, len(head)) + head + blob


def test_fingerprint_mismatch_is_detected() -> None:
    snap = make()
    header = read_header(snap.encode())
    other = pickle.dumps(trained_model(26))
    with pytest.raises(ValueError, match="fingerprint"):
        Snapshot.decode(_rebuild(header, other))
    assert Snapshot.decode(_rebuild(header, other), verify=False).learned == 25


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"KML",
        b"garbage bytes that are long enough",
        b"KMLS\x01\x00\x00\x00\x05{}",
        b"KMLS\x01\xff\xff\xff\xff",
        b"KMLS\x01\x00\x00\x00\x02[]",
        b"KMLS\x01\x00\x00\x00\x03\xff\xfe\xfd",
        "text",
        None,
    ],
)
def test_garbage_is_a_value_error(data: object) -> None:
    with pytest.raises(ValueError):
        Snapshot.decode(data)  # type: ignore[arg-type]


def test_every_truncation_and_a_flipped_byte_are_value_errors() -> None:
    data = make().encode()
    for cut in list(range(0, 64)) + list(range(len(data) - 64, len(data))):
        with pytest.raises(ValueError):
            Snapshot.decode(data[:cut])
    for pos in (2, 4, 20, len(data) // 2, len(data) - 1):
        flipped = bytearray(data)
        flipped[pos] ^= 0x41
        with pytest.raises(ValueError):
            Snapshot.decode(bytes(flipped))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_value_error(data: bytes) -> None:
    for blob in (data, b"KMLS\x01" + data):
        with pytest.raises(ValueError):
            Snapshot.decode(blob)


@pytest.mark.parametrize(
    "overrides",
    [
        {"origin": "batch"},
        {"key": ""},
        {"version": "v/1"},
        {"version": ""},
        {"partition": -1},
        {"offset": -2},
        {"learned": -1},
        {"learned": True},
        {"created_at": 1.5},
        {"extra": {"bad": float("nan")}},
    ],
)
def test_invalid_fields_are_rejected(overrides: dict) -> None:
    with pytest.raises(ValueError):
        make(**overrides).encode()


def test_bad_fingerprint_is_rejected() -> None:
    snap = make()
    with pytest.raises(ValueError, match="fingerprint"):
        Snapshot(**{**snap.metadata(), "fingerprint": "xyz", "model": snap.model})


def test_kafka_keys() -> None:
    assert snapshot_key("v1", "__all__") == "v1/__all__"
    assert parse_snapshot_key("v1/a/b") == ("v1", "a/b")  # keys may contain slashes
    assert make(origin="live").kafka_key == "v3/__all__"
    for bad in ("nokey", "/x"):
        with pytest.raises(ValueError):
            parse_snapshot_key(bad)
    with pytest.raises(ValueError):
        snapshot_key("a/b", "k")


def test_live_and_replay_snapshots_of_one_version_never_share_a_key() -> None:
    keys = {snapshot_key("v1", "k", spec, origin) for spec in ("", "linear") for origin in ("live", "replay")}
    assert keys == {"v1/k", "v1+linear/k", "v1@replay/k", "v1+linear@replay/k"}
    assert make(origin="replay").kafka_key == "v3@replay/__all__"
    for key in keys:
        label, model_key = parse_snapshot_key(key)
        assert model_key == "k"
        version, spec, origin = parse_label(label)
        assert snapshot_key(version, "k", spec, origin) == key
    for bad in ("v@1", "v+1"):  # would read as a label
        with pytest.raises(ValueError, match="must not contain"):
            snapshot_key(bad, "k")
