"""A content hash of a model's learned state, equal across processes and pickle round-trips.

``fingerprint(model)`` walks the object graph the way pickle sees it (``__reduce_ex__``,
so ``__getstate__`` exclusions such as caches apply) and feeds a canonical encoding to
sha256: every value is type-tagged, floats are their exact IEEE-754 bytes, numpy arrays
are dtype + shape + C-order bytes, dict items and set members are sorted by the encoding of
their keys (so neither insertion order nor hash seeds matter), classes and functions are
their qualified names, and a container or object met twice is written as a back-reference
to its first visit number (shared structure and cycles, never memory addresses).

Two processes that learned the same examples in the same order therefore agree, a pickle
round-trip keeps the value, and any learned number that changes changes the hash.
"""

from __future__ import annotations

import hashlib
import struct
import types
from collections import deque
from typing import Any

import numpy as np

__all__ = ["fingerprint", "state_digest"]

_FLOAT = struct.Struct("<d")
_FUNCTION_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
)


def _qualname(obj: Any) -> bytes:
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return f"{module}:{name}".encode()


def _frame(tag: bytes, payload: bytes) -> bytes:
    return tag + len(payload).to_bytes(8, "little") + payload


class _Walker:
    """Writes the canonical encoding of one object graph into ``sink`` (an ``update`` callable)."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        # id -> (visit number, object): the object is kept alive so its id cannot be reused
        # by a temporary (e.g. a state dict built by __getstate__) during the walk.
        self._memo: dict[int, tuple[int, Any]] = {}

    def _seen(self, obj: Any) -> bool:
        entry = self._memo.get(id(obj))
        if entry is not None:
            self._sink(b"@" + entry[0].to_bytes(8, "little"))
            return True
        self._memo[id(obj)] = (len(self._memo), obj)
        return False

    def walk(self, root: Any) -> None:
        stack: list[Any] = [(root,)]
        write = self._sink
        while stack:
            item = stack.pop()
            if isinstance(item, bytes):
                write(item)
                continue
            obj = item[0]
            children = self._encode(obj)
            if children:
                stack.extend(reversed(children))

    def _key(self, key: Any) -> bytes:
        """The canonical bytes of a dict key or set member, to sort by and to write."""
        parts: list[bytes] = []
        _Walker(parts.append).walk(key)
        return b"".join(parts)

    def _encode(self, obj: Any) -> list[Any] | None:
        """Write obj's scalar encoding, or its header; return its children (bytes or (obj,))."""
        write = self._sink
        if obj is None:
            write(b"N")
        elif obj is True or obj is False:
            write(b"T" if obj else b"F")
        elif type(obj) is int:
            write(_frame(b"i", str(obj).encode()))
        elif type(obj) is float:
            write(b"f" + _FLOAT.pack(obj))
        elif type(obj) is str:
            write(_frame(b"s", obj.encode("utf-8", "surrogatepass")))
        elif type(obj) in (bytes, bytearray):
            write(_frame(b"b", bytes(obj)))
        elif type(obj) is complex:
            write(b"j" + _FLOAT.pack(obj.real) + _FLOAT.pack(obj.imag))
        elif isinstance(obj, np.generic):
            write(_frame(b"g", obj.dtype.str.encode()) + _frame(b"", obj.tobytes()))
        elif isinstance(obj, np.ndarray):
            return self._array(obj)
        elif type(obj) is tuple:
            write(b"(" + len(obj).to_bytes(8, "little"))
            return [(v,) for v in obj] + [b")"]
        elif type(obj) is list:
            if self._seen(obj):
                return None
            write(b"[" + len(obj).to_bytes(8, "little"))
            return [(v,) for v in obj] + [b"]"]
        elif type(obj) is dict:
            if self._seen(obj):
                return None
            return self._dict(b"{", obj)
        elif type(obj) in (set, frozenset):
            if type(obj) is set and self._seen(obj):
                return None
            members = sorted(self._key(m) for m in obj)
            write(b"<" + len(members).to_bytes(8, "little") + b"".join(members) + b">")
        elif isinstance(obj, type) or isinstance(obj, _FUNCTION_TYPES) or isinstance(obj, types.ModuleType):
            write(_frame(b"c", _qualname(obj)))
        else:
            return self._object(obj)
        return None

    def _dict(self, tag: bytes, mapping: Any) -> list[Any]:
        # Sorted by key encoding only; equal encodings (distinct but equal objects) keep order.
        items = sorted(((self._key(k), v) for k, v in _items(mapping)), key=lambda kv: kv[0])
        self._sink(tag + len(items).to_bytes(8, "little"))
        out: list[Any] = []
        for key, value in items:
            out.append(key)
            out.append((value,))
        out.append(b"}")
        return out

    def _array(self, arr: np.ndarray) -> list[Any] | None:
        # The memory order is part of the state: BLAS picks a different kernel (and rounding)
        # for a Fortran-ordered matrix.
        order = b"F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else b"C"
        header = _frame(b"a", arr.dtype.str.encode() + order) + _frame(b"", repr(arr.shape).encode())
        if arr.dtype.hasobject:
            self._sink(header)
            return [(v,) for v in arr.ravel(order="C").tolist()] + [b"a"]
        self._sink(header + _frame(b"", np.ascontiguousarray(arr).tobytes()))
        return None

    def _object(self, obj: Any) -> list[Any] | None:
        if self._seen(obj):
            return None
        write = self._sink
        write(_frame(b"o", _qualname(type(obj))))
        if isinstance(obj, deque):
            return [(obj.maxlen,), (list(obj),)]
        if isinstance(obj, dict):  # defaultdict, OrderedDict, Counter...: items plus instance state
            return [(getattr(obj, "default_factory", None),), (dict(obj),), (getattr(obj, "__dict__", None),)]
        try:
            reduced = obj.__reduce_ex__(4)
        except Exception as exc:
            raise TypeError(f"cannot fingerprint a {type(obj).__qualname__}: {exc}") from exc
        if isinstance(reduced, str):  # a global singleton, pickled by name
            write(_frame(b"r", reduced.encode()))
            return None
        reduced = tuple(reduced) + (None,) * (6 - len(reduced))
        func, args, state, list_items, dict_items, _setter = reduced[:6]
        children: list[Any] = [(func,), (args,), (state,)]
        if list_items is not None:
            children.append((list(list_items),))
        if dict_items is not None:
            children.append((dict(dict_items),))
        return children


def _items(mapping: Any) -> Any:
    return dict.items(mapping) if isinstance(mapping, dict) else mapping.items()


def state_digest(obj: Any) -> bytes:
    """The raw sha256 digest of ``obj``'s canonical encoding."""
    h = hashlib.sha256()
    _Walker(h.update).walk(obj)
    return h.digest()


def fingerprint(model: Any) -> str:
    """Hex sha256 of the model's canonical learned state."""
    return state_digest(model).hex()
