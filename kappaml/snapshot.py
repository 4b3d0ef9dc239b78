"""A versioned model snapshot and its wire format on the models topic.

Wire format (all integers big-endian)::

    b"KMLS" | format version (1 byte) | header length (4 bytes) | header | model pickle

The header is UTF-8 JSON with every field except the model, plus the pickle's length and
sha256, so a reader (the UI, a CLI) can list snapshots without unpickling anything
(:func:`read_header`). ``Snapshot.decode`` checks the magic, lengths, header fields and the
pickle digest before unpickling, and by default re-computes the model's fingerprint. Only
decode snapshots from a topic you trust: unpickling runs code.

The Kafka key of a snapshot is ``snapshot_key(version, key, spec, origin)``: a *label*, a slash,
the model key. The label is the version, ``+spec`` for a challenger spec, and ``@replay`` for
a Spark replay's snapshot: ``v1/k``, ``v1+linear/k``, ``v1@replay/k``. Live and replay
snapshots of one version therefore never share a key, and compaction of the models topic
keeps the newest of each (a replay of the live version must not replace the live models).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from kappaml.fingerprint import fingerprint

__all__ = ["ORIGINS", "Snapshot", "parse_label", "parse_snapshot_key", "read_header", "snapshot_key",
           "snapshot_label"]

Origin = Literal["live", "replay"]
ORIGINS: tuple[str, ...] = ("live", "replay")

MAGIC = b"KMLS"
FORMAT = 1
_PREFIX = struct.Struct(">4sBI")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_META = ("key", "version", "spec", "origin", "partition", "offset", "learned", "fingerprint", "created_at")


def snapshot_label(version: str, spec: str = "", origin: str = "live") -> str:
    """``version``, ``+spec`` for a challenger spec, ``@replay`` for a replay's snapshot."""
    _check_version(version)
    if "@" in version or "+" in version:
        raise ValueError(f"version must not contain '@' or '+' (they label snapshots), got {version!r}")
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
    label = f"{version}+{spec}" if spec else version
    return label if origin == "live" else f"{label}@{origin}"


def snapshot_key(version: str, key: str, spec: str = "", origin: str = "live") -> str:
    """The Kafka key of a model snapshot: its label (see ``snapshot_label``), a slash, the model key.

    A challenger (any spec but the one the version was started with) is labelled
    ``version+spec``, so each spec of a version keeps its own newest snapshot per key.
    """
    return f"{snapshot_label(version, spec, origin)}/{key}"


def parse_snapshot_key(text: str) -> tuple[str, str]:
    """(label, key) of a snapshot's Kafka key; labels never contain a slash."""
    label, sep, key = text.partition("/")
    if not sep or not label:
        raise ValueError(f"not a snapshot key (label/key): {text!r}")
    return label, key


def parse_label(label: str) -> tuple[str, str, str]:
    """(version, spec or "", origin) of a snapshot label."""
    rest, at, origin = label.partition("@")
    version, _plus, spec = rest.partition("+")
    return version, spec, origin if at else "live"


def _check_version(version: object) -> None:
    if not isinstance(version, str) or not version or "/" in version:
        raise ValueError(f"version must be a non-empty string without '/', got {version!r}")


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Snapshot:
    """One model at one point of its stream.

    ``offset`` is the last source offset learned (-1: none yet) in ``partition``;
    ``learned`` the number of examples learned; ``created_at`` ms since the epoch.
    ``extra`` is optional JSON metadata (e.g. the prequential metrics) kept in the header.
    """

    key: str
    version: str
    spec: str
    origin: Origin
    partition: int
    offset: int
    learned: int
    fingerprint: str
    model: Any = field(repr=False, compare=False)
    created_at: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"key must be a non-empty string, got {self.key!r}")
        _check_version(self.version)
        if not isinstance(self.spec, str) or not self.spec:
            raise ValueError(f"spec must be a non-empty string, got {self.spec!r}")
        if self.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, got {self.origin!r}")
        _check_int("partition", self.partition, 0)
        _check_int("offset", self.offset, -1)
        _check_int("learned", self.learned, 0)
        _check_int("created_at", self.created_at, 0)
        if not isinstance(self.fingerprint, str) or not _HEX64.fullmatch(self.fingerprint):
            raise ValueError(f"fingerprint must be 64 lowercase hex digits, got {self.fingerprint!r}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra must be a dict, got {type(self.extra).__name__}")

    @classmethod
    def of(
        cls,
        model: Any,
        *,
        key: str,
        version: str,
        spec: str,
        origin: Origin,
        partition: int,
        offset: int,
        learned: int,
        created_at: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Snapshot:
        """A snapshot of ``model`` now, with its fingerprint computed."""
        return cls(
            key=key,
            version=version,
            spec=spec,
            origin=origin,
            partition=partition,
            offset=offset,
            learned=learned,
            fingerprint=fingerprint(model),
            model=model,
            created_at=int(time.time() * 1000) if created_at is None else created_at,
            extra=dict(extra or {}),
        )

    @property
    def kafka_key(self) -> str:
        return snapshot_key(self.version, self.key, origin=self.origin)

    def metadata(self) -> dict[str, Any]:
        """Every field but the model, as JSON-ready values."""
        meta = {name: getattr(self, name) for name in _META}
        meta["extra"] = self.extra
        return meta

    def encode(self) -> bytes:
        blob = pickle.dumps(self.model, protocol=pickle.HIGHEST_PROTOCOL)
        header = self.metadata()
        header["model_type"] = f"{type(self.model).__module__}.{type(self.model).__qualname__}"
        header["pickle_len"] = len(blob)
        header["pickle_sha256"] = hashlib.sha256(blob).hexdigest()
        try:
            head = json.dumps(header, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"snapshot metadata is not JSON-serialisable: {exc}") from None
        return _PREFIX.pack(MAGIC, FORMAT, len(head)) + head + blob

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, *, verify: bool = True) -> Snapshot:
        """Parse ``encode()``'s bytes; ValueError on anything else. ``verify`` re-fingerprints."""
        header, blob = _split(data)
        try:
            model = pickle.loads(blob)
        except Exception as exc:  # a corrupt pickle can raise nearly anything
            raise ValueError(f"snapshot model does not unpickle: {type(exc).__name__}: {exc}") from None
        try:
            snap = cls(**{name: header[name] for name in _META}, model=model, extra=header.get("extra", {}))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"snapshot header lacks or mistypes a field: {exc}") from None
        if verify and fingerprint(model) != snap.fingerprint:
            raise ValueError("snapshot model does not match its fingerprint")
        return snap


def _split(data: bytes | bytearray | memoryview) -> tuple[dict[str, Any], bytes]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"a snapshot is bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < _PREFIX.size:
        raise ValueError(f"not a kappaml snapshot: {len(data)} bytes is too short")
    magic, fmt, head_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"not a kappaml snapshot: magic {magic!r}, expected {MAGIC!r}")
    if fmt != FORMAT:
        raise ValueError(f"unsupported snapshot format {fmt} (this reader knows {FORMAT})")
    end = _PREFIX.size + head_len
    if end > len(data):
        raise ValueError("truncated snapshot: header runs past the end")
    try:
        header = json.loads(data[_PREFIX.size : end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"snapshot header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError("snapshot header is not a JSON object")
    blob = data[end:]
    if header.get("pickle_len") != len(blob):
        raise ValueError(f"truncated or padded snapshot: model is {len(blob)} bytes, "
                         f"header says {header.get('pickle_len')!r}")
    if header.get("pickle_sha256") != hashlib.sha256(blob).hexdigest():
        raise ValueError("corrupt snapshot: model bytes do not match their sha256")
    return header, blob


def read_header(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """A snapshot's metadata (and model_type, pickle_len, pickle_sha256) without unpickling."""
    header, _ = _split(data)
    missing = [name for name in _META if name not in header]
    if missing:
        raise ValueError(f"snapshot header lacks {missing}")
    return header
