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

__all__ = ["fingerprint", "state_digest", "state_fingerprint"]

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


# Attributes that are caches derived from the rest of an object's state, per class (module and
# qualified name, so the library need not be imported): River's Pipeline builds its execution
# plan lazily on first use, so without this a fresh pipeline and one that has only predicted
# would differ; its BayesianLinearRegression computes the posterior mean from the rest of its
# state lazily, at the first prediction after learning. A class of ours can list its own in
# ``__fingerprint_exclude__`` instead (or leave them out of ``__getstate__``).
_DERIVED: dict[str, frozenset[str]] = {
    "river.compose.pipeline:Pipeline": frozenset(
        {"_plan", "_inference_transformers", "_last_step_cached", "_last_step_params"}
    ),
    "river.linear_model.bayesian_lin_reg:BayesianLinearRegression": frozenset({"_m_arr", "_m_dirty"}),
}


def _qualname(obj: Any) -> bytes:
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return f"{module}:{name}".encode()


def _frame(tag: bytes, payload: bytes) -> bytes:
    return tag + len(payload).to_bytes(8, "little") + payload


def _scalar(obj: Any) -> bytes | None:
    """The encoding of an immutable leaf (or a tuple of them), None for anything else.

    The hot path: model state is mostly dicts of str keys and float values.
    """
    t = type(obj)
    if t is float:
        return b"f" + _FLOAT.pack(obj)
    if t is str:
        return _frame(b"s", obj.encode("utf-8", "surrogatepass"))
    if t is int:
        return _frame(b"i", str(obj).encode())
    if obj is None:
        return b"N"
    if t is bool:
        return b"T" if obj else b"F"
    if t is tuple:
        parts = [_scalar(v) for v in obj]
        if None in parts:
            return None
        return b"(" + len(obj).to_bytes(8, "little") + b"".join(parts) + b")"  # type: ignore[arg-type]
    if t is bytes or t is bytearray:
        return _frame(b"b", bytes(obj))
    if t is complex:
        return b"j" + _FLOAT.pack(obj.real) + _FLOAT.pack(obj.imag)
    if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
        return _frame(b"g", obj.dtype.str.encode()) + _frame(b"", obj.tobytes())
    return None


class _Walker:
    """Writes the canonical encoding of one object graph into ``sink`` (an ``update`` callable)."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        # id -> (visit number, object): the object is kept alive so its id cannot be reused
        # by a temporary (e.g. a state dict built by __getstate__) during the walk.
        self._memo: dict[int, tuple[int, Any]] = {}
        # Trees repeat the same feature-name keys in every node: encode each str once.
        self._str_keys: dict[str, bytes] = {}

    def _seen(self, obj: Any) -> bool:
        entry = self._memo.get(id(obj))
        if entry is not None:
            self._sink(b"@" + entry[0].to_bytes(8, "little"))
            return True
        self._memo[id(obj)] = (len(self._memo), obj)
        return False

    def walk(self, root: Any) -> None:
        # An explicit stack: deep trees would exceed the recursion limit.
        stack: list[Any] = [(root,)]
        write = self._sink
        while stack:
            item = stack.pop()
            if type(item) is bytes:
                write(item)
                continue
            children = self._encode(item[0])
            if children:
                stack.extend(reversed(children))

    def _key(self, key: Any) -> bytes:
        """The canonical bytes of a dict key or set member, to sort by and to write."""
        if type(key) is str:
            encoded = self._str_keys.get(key)
            if encoded is None:
                encoded = self._str_keys[key] = _frame(b"s", key.encode("utf-8", "surrogatepass"))
            return encoded
        encoded = _scalar(key)
        if encoded is not None:
            return encoded
        parts: list[bytes] = []
        _Walker(parts.append).walk(key)
        return b"".join(parts)

    @staticmethod
    def _sequence(values: Any, tail: bytes) -> list[Any]:
        """Children for a run of values: consecutive leaves merged into one literal."""
        out: list[Any] = []
        run: list[bytes] = []
        for value in values:
            encoded = _scalar(value)
            if encoded is not None:
                run.append(encoded)
                continue
            if run:
                out.append(b"".join(run))
                run = []
            out.append((value,))
        run.append(tail)
        out.append(b"".join(run))
        return out

    def _encode(self, obj: Any) -> list[Any] | None:
        """Write obj's encoding or header; return its children (literal bytes or (obj,))."""
        encoded = _scalar(obj)
        if encoded is not None:
            self._sink(encoded)
            return None
        t = type(obj)
        if t is tuple:
            self._sink(b"(" + len(obj).to_bytes(8, "little"))
            return self._sequence(obj, b")")
        if t is list:
            if self._seen(obj):
                return None
            self._sink(b"[" + len(obj).to_bytes(8, "little"))
            return self._sequence(obj, b"]")
        if t is dict:
            if self._seen(obj):
                return None
            return self._dict(obj)
        if t is set or t is frozenset:
            if t is set and self._seen(obj):
                return None
            members = sorted(self._key(m) for m in obj)
            self._sink(b"<" + len(members).to_bytes(8, "little") + b"".join(members) + b">")
            return None
        if isinstance(obj, np.ndarray):
            return self._array(obj)
        if isinstance(obj, (type, types.ModuleType, *_FUNCTION_TYPES)):
            self._sink(_frame(b"c", _qualname(obj)))
            return None
        return self._object(obj)

    def _dict(self, mapping: dict) -> list[Any]:
        # Sorted by key encoding only; equal encodings (distinct but equal objects) keep order.
        items = sorted(((self._key(k), v) for k, v in dict.items(mapping)), key=lambda kv: kv[0])
        self._sink(b"{" + len(items).to_bytes(8, "little"))
        out: list[Any] = []
        run: list[bytes] = []
        for key, value in items:
            run.append(key)
            encoded = _scalar(value)
            if encoded is not None:
                run.append(encoded)
                continue
            out.append(b"".join(run))
            run = []
            out.append((value,))
        run.append(b"}")
        out.append(b"".join(run))
        return out

    def _array(self, arr: np.ndarray) -> list[Any] | None:
        # The memory order is part of the state: BLAS picks a different kernel (and rounding)
        # for a Fortran-ordered matrix.
        order = b"F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else b"C"
        header = _frame(b"a", arr.dtype.str.encode() + order) + _frame(b"", repr(arr.shape).encode())
        if arr.dtype.hasobject:
            self._sink(header)
            return self._sequence(arr.ravel(order="C").tolist(), b"a")
        self._sink(header + _frame(b"", np.ascontiguousarray(arr).tobytes()))
        return None

    def _object(self, obj: Any) -> list[Any] | None:
        if self._seen(obj):
            return None
        name = _qualname(type(obj))
        self._sink(_frame(b"o", name))
        if isinstance(obj, deque):
            return [(obj.maxlen,), (list(obj),)]
        if isinstance(obj, dict):  # defaultdict, OrderedDict, Counter...: items plus instance state
            factory = getattr(obj, "default_factory", None)
            return [(factory,), (_without_defaults(obj, factory),), (getattr(obj, "__dict__", None),)]
        try:
            reduced = obj.__reduce_ex__(4)
        except Exception as exc:
            raise TypeError(f"cannot fingerprint a {type(obj).__qualname__}: {exc}") from exc
        if isinstance(reduced, str):  # a global singleton, pickled by name
            self._sink(_frame(b"r", reduced.encode()))
            return None
        reduced = tuple(reduced) + (None,) * (6 - len(reduced))
        func, args, state, list_items, dict_items, _setter = reduced[:6]
        derived = _DERIVED.get(name.decode(), frozenset()) | frozenset(
            getattr(type(obj), "__fingerprint_exclude__", ())
        )
        if derived and isinstance(state, dict):
            state = {k: v for k, v in state.items() if k not in derived}
        children: list[Any] = [(func,), (args,), (state,)]
        if list_items is not None:
            children.append((list(list_items),))
        if dict_items is not None:
            children.append((dict(dict_items),))
        return children


def _without_defaults(mapping: dict, factory: Any) -> dict:
    """The items of a defaultdict that differ from its (scalar) default.

    Reading a missing key of a defaultdict inserts the default, so a model that merely
    predicted on a new feature (River's StandardScaler does this) would otherwise look
    different from one that did not; for reads the two are the same mapping.
    """
    if factory is None:
        return dict(mapping)
    try:
        default = _scalar(factory())
    except Exception:  # a factory that needs arguments or fails: keep every item
        return dict(mapping)
    if default is None:  # object defaults (e.g. running statistics): keep every item
        return dict(mapping)
    return {k: v for k, v in dict.items(mapping) if _scalar(v) != default}


def state_digest(obj: Any) -> bytes:
    """The raw sha256 digest of ``obj``'s canonical encoding."""
    h = hashlib.sha256()
    _Walker(h.update).walk(obj)
    return h.digest()


def fingerprint(model: Any) -> str:
    """Hex sha256 of the model's canonical learned state."""
    return state_digest(model).hex()


def state_fingerprint(state: Any) -> str:
    """Hex sha256 of a ``KeyState``'s model *and* its delayed-label state.

    Covers the pending and early-label ids (with their record numbers) and the delayed-label
    counts (``DelayedLabels.identity``), so two states agree only with equal pending sets and
    equal expiry decisions. A state delayed labels never touched (labelled records only) has
    its model's ``fingerprint``, as before delayed labels existed.
    """
    labels = getattr(state, "labels", None)
    if labels is None or not labels.active:
        return fingerprint(state.model)
    h = hashlib.sha256(b"kappaml-key-state\0")
    h.update(state_digest(state.model))
    _Walker(h.update).walk(labels.identity())
    return h.hexdigest()
