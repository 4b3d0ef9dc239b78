"""Helpers of the typed-record tests: a hypothesis strategy for any record class, built from the
same type hints its decoder checks, and the round-trip assertions every record must pass."""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal

import jsonschema
from hypothesis import strategies as st

from kappaml.records import InvalidRecord, Record
from kappaml.records.schemas import SCHEMAS, schema_of

_text = st.text(max_size=12)
_int = st.integers(min_value=-(2**53), max_value=2**53)
_float = st.floats(allow_nan=False, allow_infinity=False, width=64)
_json = st.recursive(st.none() | st.booleans() | _int | _float | _text,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                     max_leaves=8)


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    simple = {str: _text, int: _int, float: _float, bool: st.booleans(), type(None): st.none()}
    if hint in simple:
        return simple[hint]
    if hint is Any or hint is object:
        return _json
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[strategy_for(a) for a in args])
    if origin is Literal:
        return st.sampled_from(args)
    if origin is dict:
        return st.dictionaries(_text, strategy_for(args[1]) if args else _json, max_size=3)
    if origin is list:
        return st.lists(strategy_for(args[0]) if args else _json, max_size=3)
    if isinstance(hint, type) and issubclass(hint, Record):
        return records(hint)
    raise TypeError(hint)


def records(cls: type[Record]) -> st.SearchStrategy[Any]:
    """Any valid record of ``cls``: every field drawn from its type (optional ones sometimes absent)."""
    return st.builds(cls, **{f.attr: strategy_for(f.hint) for f in cls.FIELDS})


def schema_for(cls: type[Record]) -> dict[str, Any]:
    return schema_of(next(s for s in SCHEMAS if s.record is cls))


def assert_round_trip(record: Record) -> None:
    """decode(encode(r)) == r, from_dict(to_dict(r)) == r, and the encoded record fits its schema."""
    cls = type(record)
    encoded = record.encode()
    assert cls.decode(encoded) == record
    assert cls.from_dict(record.to_dict()) == record
    assert json.loads(encoded)["v"] == 1
    jsonschema.validate(json.loads(encoded), schema_for(cls))


def reason_of(cls: type[Record], value: Any) -> str:
    """The reason ``cls`` gives for refusing ``value`` (bytes are decoded, anything else is a dict)."""
    try:
        cls.decode(value) if isinstance(value, (bytes, str)) or value is None else cls.from_dict(value)
    except InvalidRecord as exc:
        assert exc.reason
        return str(exc)
    raise AssertionError(f"{cls.__name__} accepted {value!r}")
