"""The machinery of every typed output record: one ``@record`` decorator, one validator, one encoder.

A record class is a frozen, slotted, keyword-only dataclass whose type hints *are* its wire
format: ``from_dict`` checks a decoded JSON object against them field by field (raising
``InvalidRecord`` with the field and the reason), ``to_dict``/``encode`` write them back, and
``kappaml.records.schemas`` turns the same hints into the published JSON Schemas, so the
three cannot disagree.

Versioning: every encoded record carries ``"v": 1``. A record without ``"v"`` (the log holds
records written before it existed) is read as v1; a higher ``v`` is refused with a reason
(an incompatible format this reader does not know). Additive changes keep ``v`` at 1: a new
field is an optional field (default None, left out of the JSON while None), and readers
ignore fields they do not know, so older readers keep working.

Field rules: a field without a default is required (its value may still be null where its
type allows None); a field defaulting to None is optional and omitted when None; any other
default (the ``scope`` constants) is always written.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any, ClassVar, Literal, TypeVar

import orjson

from kappaml.example import InvalidRecord

__all__ = ["VERSION", "Record", "doc", "record"]

VERSION = 1

R = TypeVar("R", bound="Record")
Check = Callable[[Any, str], Any]


def doc(text: str, *, wire: str | None = None, default: Any = MISSING, keep_null: bool = False) -> Any:
    """A record field with its description (published in the schema) and, if it differs from
    the attribute, its name on the wire (``pass`` is a Python keyword). ``keep_null``: an
    optional field (default None) that is written even while None, as a null."""
    return dataclasses.field(default=default, metadata={"doc": text, "wire": wire, "keep_null": keep_null})


@dataclasses.dataclass(frozen=True)
class Field:
    attr: str
    wire: str
    hint: Any
    check: Check
    required: bool
    omit_none: bool  # optional: left out of the JSON while None
    default: Any
    doc: str
    nested: bool  # holds records (or a dict of them): to_dict recurses


class Record:
    """Base of the typed records; see the module docstring. Subclasses are made by ``@record``."""

    __slots__ = ()
    # What the record is, for messages and schema titles ("prediction", "drift event", ...).
    WHAT: ClassVar[str] = "record"
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    _PLAN: ClassVar[tuple[tuple[str, str, Check], ...]] = ()  # (wire, attr, check) per field
    _REQUIRED: ClassVar[frozenset[str]] = frozenset()

    def fields_dict(self) -> dict[str, Any]:
        """The JSON-ready fields, without ``v`` (nested records are written so)."""
        out: dict[str, Any] = {}
        for f in self.FIELDS:
            value = getattr(self, f.attr)
            if value is None and f.omit_none:
                continue
            if f.nested and value is not None:
                value = _dump_nested(value)
            out[f.wire] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, **self.fields_dict()}

    def encode(self) -> bytes:
        """Compact UTF-8 JSON (NaN and infinities become null, as orjson writes them)."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        """The record of a decoded JSON object; ``InvalidRecord`` saying which field is wrong and why."""
        if not isinstance(data, Mapping):
            raise InvalidRecord(f"{cls.WHAT} is not a JSON object", value=type(data).__name__)
        check_version(data, cls.WHAT)
        return cls._from_fields(data)

    @classmethod
    def _from_fields(cls: type[R], data: Mapping[str, Any]) -> R:
        if not cls._REQUIRED.issubset(data.keys()):
            missing = [f.wire for f in cls.FIELDS if f.required and f.wire not in data]
            raise InvalidRecord(f"{cls.WHAT} lacks field(s) {missing}")
        values = {}
        get = data.get
        for wire, attr, check in cls._PLAN:
            raw = get(wire, _ABSENT)
            if raw is not _ABSENT:  # else not required: the dataclass default
                values[attr] = check(raw, wire)
        return cls(**values)

    @classmethod
    def decode(cls: type[R], value: bytes | bytearray | memoryview | str | None) -> R:
        return cls.from_dict(loads(value, cls.WHAT))


_ABSENT = object()


def loads(value: bytes | bytearray | memoryview | str | None, what: str) -> Any:
    """Parsed JSON of a message value; ``InvalidRecord`` if it is none or not JSON."""
    if value is None:
        raise InvalidRecord(f"{what} is empty (a null message value)")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"{what} is not JSON: {exc}") from None


def check_version(data: Mapping[str, Any], what: str) -> None:
    """A record without ``v`` is v1; anything but a known version is refused, saying so."""
    v = data.get("v", VERSION)
    if v == VERSION and type(v) is int:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InvalidRecord(f"{what}: v must be a positive integer (the record format version)",
                            column="v", value=v)
    raise InvalidRecord(f"{what} has format version {v}, newer than this reader knows ({VERSION}): "
                        "upgrade kappaml to read it", column="v", value=v)


def _dump_nested(value: Any) -> Any:
    if isinstance(value, Record):
        return value.fields_dict()
    if isinstance(value, dict):
        return {k: _dump_nested(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump_nested(v) for v in value]
    return value


# --------------------------------------------------------------------------- type hints -> checks


def _fail(wire: str, what: str, value: Any) -> InvalidRecord:
    return InvalidRecord(f"{wire} must be {what}", column=wire, value=value)


def _check_str(value: Any, wire: str) -> str:
    if not isinstance(value, str):
        raise _fail(wire, "a string", value)
    return value


def _check_int(value: Any, wire: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(wire, "an integer", value)
    return value


def _check_float(value: Any, wire: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(wire, "a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(wire, "a finite number", value)
    return value


def _check_bool(value: Any, wire: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(wire, "true or false", value)
    return value


def _check_any(value: Any, wire: str) -> Any:
    return value


_SIMPLE: dict[Any, Check] = {str: _check_str, int: _check_int, float: _check_float, bool: _check_bool,
                             Any: _check_any, object: _check_any}
_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}


def _describe(hint: Any) -> str:
    if hint in _NAMES:
        return _NAMES[hint]
    origin = typing.get_origin(hint)
    if origin is dict:
        return "a JSON object"
    if origin is list:
        return "a JSON array"
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    if isinstance(hint, type) and issubclass(hint, Record):
        return f"a {hint.WHAT} object"
    return str(hint)


def checker(hint: Any) -> Check:
    """The validating converter of one type hint (the types records use; others are refused)."""
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        nullable = len(options) < len(args)
        checks = [checker(a) for a in options]
        what = " or ".join(_describe(a) for a in args)

        def check_union(value: Any, wire: str) -> Any:
            if value is None and nullable:
                return None
            for check in checks:
                try:
                    return check(value, wire)
                except InvalidRecord:
                    continue
            raise _fail(wire, what, value)

        if len(checks) == 1 and nullable:
            single = checks[0]

            def check_nullable(value: Any, wire: str) -> Any:
                if value is None:
                    return None
                try:
                    return single(value, wire)
                except InvalidRecord as exc:
                    if exc.column != wire:  # a nested field's reason: keep it
                        raise
                    raise _fail(wire, what, value) from None

            return check_nullable
        return check_union
    if origin is Literal:
        allowed = args

        def check_literal(value: Any, wire: str) -> Any:
            if type(value) is not str or value not in allowed:
                raise _fail(wire, " or ".join(repr(a) for a in allowed), value)
            return value

        return check_literal
    if origin is dict:
        key_hint, value_hint = args or (str, Any)
        if key_hint is not str:
            raise TypeError(f"record dict keys must be str, got {key_hint}")
        item = checker(value_hint)

        def check_dict(value: Any, wire: str) -> dict[str, Any]:
            if not isinstance(value, Mapping):
                raise _fail(wire, "a JSON object", value)
            return {str(k): item(v, f"{wire}.{k}") for k, v in value.items()}

        return check_dict
    if origin in (list, tuple):
        item = checker(args[0]) if args else _check_any

        def check_list(value: Any, wire: str) -> Any:
            if not isinstance(value, (list, tuple)):
                raise _fail(wire, "a JSON array", value)
            items = [item(v, f"{wire}[{i}]") for i, v in enumerate(value)]
            return tuple(items) if origin is tuple else items

        return check_list
    if isinstance(hint, type) and issubclass(hint, Record):
        nested = hint

        def check_record(value: Any, wire: str) -> Any:
            if not isinstance(value, Mapping):
                raise _fail(wire, f"a {nested.WHAT} object", value)
            try:
                return nested._from_fields(value)  # noqa: SLF001 - nested records carry no "v"
            except InvalidRecord as exc:
                raise InvalidRecord(f"{wire}: {exc.reason}", column=wire, value=exc.value) from None

        return check_record
    raise TypeError(f"no record check for type {hint!r}")


def _holds_records(hint: Any) -> bool:
    if isinstance(hint, type) and issubclass(hint, Record):
        return True
    return any(_holds_records(a) for a in typing.get_args(hint))


def record(what: str, *, kw_only: bool = True) -> Callable[[type[R]], type[R]]:
    """Make a ``Record`` subclass a frozen, slotted (keyword-only) dataclass with its field plan."""

    def wrap(cls: type[R]) -> type[R]:
        made = dataclasses.dataclass(frozen=True, slots=True, kw_only=kw_only)(cls)
        hints = typing.get_type_hints(made)
        plan = []
        for f in dataclasses.fields(made):
            hint = hints[f.name]
            has_default = f.default is not MISSING or f.default_factory is not MISSING
            plan.append(Field(
                attr=f.name, wire=f.metadata.get("wire") or f.name, hint=hint, check=checker(hint),
                required=not has_default,
                omit_none=has_default and f.default is None and not f.metadata.get("keep_null"),
                default=f.default, doc=f.metadata.get("doc", ""), nested=_holds_records(hint)))
        made.FIELDS = tuple(plan)
        made._PLAN = tuple((f.wire, f.attr, f.check) for f in plan)  # noqa: SLF001 - the class being made
        made._REQUIRED = frozenset(f.wire for f in plan if f.required)  # noqa: SLF001 - the class being made
        made.WHAT = what
        made.__init__ = _fast_init(made, kw_only)  # type: ignore[misc]
        return made

    return wrap


def _fast_init(cls: type, kw_only: bool) -> Callable[..., None]:
    """The dataclass's ``__init__``, setting each slot through its descriptor.

    A frozen dataclass's own ``__init__`` calls ``object.__setattr__(self, name, value)`` per
    field: a prediction record (14 fields, one per message in the processor) took about 1.9 µs
    to build that way and about 1.0 µs so (bench/bench_typed_records.py).
    """
    fields = dataclasses.fields(cls)
    env: dict[str, Any] = {}
    params, body = [], []
    for f in fields:
        env[f"_s_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is not MISSING:
            env[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
            body.append(f"    _s_{f.name}(self, {f.name})")
        elif f.default_factory is not MISSING:
            env[f"_f_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_ABSENT")
            body.append(f"    _s_{f.name}(self, _f_{f.name}() if {f.name} is _ABSENT else {f.name})")
        else:
            params.append(f.name)
            body.append(f"    _s_{f.name}(self, {f.name})")
    env["_ABSENT"] = _ABSENT
    if hasattr(cls, "__post_init__"):
        env["_post_init"] = cls.__post_init__
        body.append("    _post_init(self)")
    star = "*, " if kw_only else ""
    names = ", ".join(env)
    source = (f"def _make({names}):\n"
              f"  def __init__(self, {star}{', '.join(params)}):\n"
              + "\n".join("  " + line for line in body or ["    pass"])
              + "\n  return __init__\n")
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - generated from the class's own field names, as dataclasses does
    init = namespace["_make"](**env)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init
