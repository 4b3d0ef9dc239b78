"""Raw-topic record -> typed record: ``extract`` (a parsed JSON object) and ``decode`` (message bytes).

A record's ``kind`` decides its type: none (or ``labelled``) -> ``Example``, ``features`` ->
``FeaturesRecord``, ``label`` -> ``LabelRecord`` (``kappaml.example``); any other kind is invalid.

Every record is checked against the data set's declaration; any problem is an ``InvalidRecord``
with a precise reason. This runs once per message in the processor and the replay, so a
record exactly as the producer writes it takes a fast path planned once per data set; any
other record takes the path that checks rule after rule and says what is wrong.
``kappaml.records`` re-exports both functions: import them from there.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kappaml.dataset import GLOBAL_KEY, Dataset
from kappaml.example import Example, FeaturesRecord, InvalidRecord, LabelRecord, RawRecord

__all__ = ["decode", "extract"]

# The kinds of raw record (kappaml.records.raw re-exports them). No "kind" means labelled.
LABELLED, FEATURES, LABEL = "labelled", "features", "label"


def _json_number(value: Any, column: str, what: str) -> float:
    # bool is an int subclass: True is not a valid measurement.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRecord(f"{what} must be a JSON number", column=column, value=value)
    try:
        number = float(value)
    except OverflowError:
        raise InvalidRecord(f"{what} is out of range", column=column, value=value) from None
    if not math.isfinite(number):
        raise InvalidRecord(f"{what} is not finite", column=column, value=value)
    return number


def _check_source(dataset: Dataset, source: Any, declared: Collection[str] | None) -> None:
    """A record names its data set in ``source`` (optional: records written before it existed)."""
    if source is None or source == dataset.name:
        return
    if not isinstance(source, str):
        raise InvalidRecord("source must be a string", column="source", value=source)
    if declared is not None and source not in declared:
        raise InvalidRecord(f"source {source!r} names a data set the log does not declare",
                            column="source", value=source)
    raise InvalidRecord(f"source {source!r} is not the data set {dataset.name!r} learned here",
                        column="source", value=source)


def _check_meta(dataset: Dataset, record: Mapping[str, Any], declared: Collection[str] | None,
                fields: tuple[str, ...]) -> tuple[int | str, int | None, str, int]:
    """The checks every kind shares: (id, ts, stream, pass) of a record that has ``fields``."""
    if not isinstance(record, Mapping):
        raise InvalidRecord("record is not a JSON object", value=type(record).__name__)
    missing = [f for f in fields if f not in record]
    if missing:
        raise InvalidRecord(f"record lacks field(s) {missing}")
    _check_source(dataset, record.get("source"), declared)

    record_id = record["id"]
    if isinstance(record_id, bool) or not isinstance(record_id, (int, str)):
        raise InvalidRecord("id must be an integer or a string", column="id", value=record_id)
    if isinstance(record_id, str) and not record_id:
        raise InvalidRecord("id must not be empty", column="id", value=record_id)

    ts = record.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        raise InvalidRecord("ts must be integer milliseconds or null", column="ts", value=ts)

    stream = record.get("stream")
    if stream is not None and (not isinstance(stream, str) or not stream):
        raise InvalidRecord("stream must be a non-empty string or null", column="stream", value=stream)
    pass_no = record.get("pass", 1)
    if isinstance(pass_no, bool) or not isinstance(pass_no, int) or pass_no < 1:
        raise InvalidRecord("pass must be a positive integer", column="pass", value=pass_no)
    return record_id, ts, stream or "", pass_no


def _checked_x(dataset: Dataset, record: Mapping[str, Any]) -> tuple[str, dict[str, float | str]]:
    """The key and the features ``x`` of a record with a row (labelled or features), checked."""
    row = record["row"]
    if not isinstance(row, Mapping):
        raise InvalidRecord("row is not a JSON object", column="row", value=type(row).__name__)

    key = record["key"]
    if not isinstance(key, str) or not key:
        raise InvalidRecord("key must be a non-empty string", column="key", value=key)
    if dataset.key is None:
        expected = GLOBAL_KEY
    else:
        if dataset.key not in row:
            raise InvalidRecord("missing key column", column=dataset.key)
        expected = str(row[dataset.key])
    if key != expected:
        raise InvalidRecord(f"key {key!r} does not match the row's model key {expected!r}",
                            column="key", value=key)

    x: dict[str, float | str] = {}
    for feature in dataset.features:
        name = feature.name
        if name not in row:
            raise InvalidRecord("missing feature", column=name)
        value = row[name]
        if feature.kind == "numeric":
            x[name] = _json_number(value, name, "value")
        elif feature.kind == "boolean":
            if isinstance(value, bool):
                x[name] = 1.0 if value else 0.0
            elif isinstance(value, int) and value in (0, 1):
                x[name] = float(value)
            else:
                raise InvalidRecord("boolean must be true/false", column=name, value=value)
        else:
            if not isinstance(value, str) or not value:
                raise InvalidRecord("category must be a non-empty string", column=name, value=value)
            x[name] = value
    return key, x


def _extract_checked(dataset: Dataset, record: Mapping[str, Any],
                     declared: Collection[str] | None = None) -> Example:
    """``extract`` of a labelled record checking every rule in turn: the path that explains what is wrong."""
    record_id, ts, stream, pass_no = _check_meta(dataset, record, declared, ("id", "key", "row"))
    key, x = _checked_x(dataset, record)
    row = record["row"]
    if dataset.target not in row:
        raise InvalidRecord("missing target", column=dataset.target)
    y = _json_number(row[dataset.target], dataset.target, "target")
    return Example(id=record_id, key=key, x=x, y=y, ts=ts, stream=stream, pass_no=pass_no)


def _features_checked(dataset: Dataset, record: Mapping[str, Any],
                      declared: Collection[str] | None = None) -> FeaturesRecord:
    """A ``features`` record checked rule after rule (a target in its row is ignored)."""
    record_id, ts, stream, pass_no = _check_meta(dataset, record, declared, ("id", "key", "row"))
    key, x = _checked_x(dataset, record)
    return FeaturesRecord(id=record_id, key=key, x=x, ts=ts, stream=stream, pass_no=pass_no)


def _label_checked(dataset: Dataset, record: Mapping[str, Any],
                   declared: Collection[str] | None = None) -> LabelRecord:
    """A ``label`` record: id, key (the message key decides which model: checked by the caller), target."""
    record_id, ts, stream, _pass = _check_meta(dataset, record, declared, ("id", "key", "target"))
    key = record["key"]
    if not isinstance(key, str) or not key:
        raise InvalidRecord("key must be a non-empty string", column="key", value=key)
    y = _json_number(record["target"], "target", "target")
    return LabelRecord(id=record_id, key=key, y=y, ts=ts, stream=stream)


_EXACT_TYPE = {"numeric": float, "boolean": bool, "categorical": str}
_ABSENT = object()


@dataclass(frozen=True)
class _Plan:
    """What ``extract`` looks up in a record of one data set, worked out once per data set."""

    features: tuple[str, ...]  # declared feature names, in order
    values: Callable[[Mapping[str, Any]], tuple[Any, ...]]  # row -> (*features, target) values
    feature_values: Callable[[Mapping[str, Any]], tuple[Any, ...]]  # row -> feature values
    types: tuple[type, ...]  # the exact type of each of those values in a record as make_record writes it
    feature_types: tuple[type, ...]  # the same without the target's (a features record)
    categorical: tuple[int, ...]  # positions of categorical features (kept as text)
    key_column: str | None
    name: str  # the data set's: a record's ``source``, when it has one


# Dataset holds a dict (units), so it is not hashable: plans are kept by identity. The entry
# holds the data set itself, so its id cannot be reused by another object while cached.
_PLANS: dict[int, tuple[Dataset, _Plan]] = {}
_MAX_PLANS = 256


def _getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """row -> the tuple of its ``names`` values (itemgetter of one name returns no tuple)."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    name = names[0]
    return lambda row: (row[name],)


def _plan(dataset: Dataset) -> _Plan:
    entry = _PLANS.get(id(dataset))
    if entry is not None and entry[0] is dataset:
        return entry[1]
    names = (*dataset.feature_names, dataset.target)
    plan = _Plan(
        features=dataset.feature_names,
        values=operator.itemgetter(*names),  # at least one feature and the target: always a tuple
        feature_values=_getter(dataset.feature_names),
        types=(*(_EXACT_TYPE[f.kind] for f in dataset.features), float),
        feature_types=tuple(_EXACT_TYPE[f.kind] for f in dataset.features),
        categorical=tuple(i for i, f in enumerate(dataset.features) if f.kind == "categorical"),
        key_column=dataset.key,
        name=dataset.name,
    )
    if len(_PLANS) >= _MAX_PLANS:  # many short-lived declarations (tests): start afresh
        _PLANS.clear()
    _PLANS[id(dataset)] = (dataset, plan)
    return plan


def _extract_fast(plan: _Plan, record: Any) -> Example | None:
    """The ``Example`` of a record exactly as ``make_record`` writes it, else None.

    It accepts only records ``_extract_checked`` accepts, and builds the same ``Example``;
    anything else (ints for floats, 0/1 for booleans, a problem) returns None and the checked
    path decides, so every error message comes from one place. Exact type tests keep bools
    out of numbers and subclasses out altogether.
    """
    if type(record) is not dict:
        return None
    row = record.get("row")
    record_id = record.get("id")
    key = record.get("key")
    ts = record.get("ts")
    source = record.get("source")
    stream = record.get("stream")
    pass_no = record.get("pass", 1)
    id_type = type(record_id)
    if (
        (source is not None and source != plan.name)
        or type(row) is not dict
        or (stream is not None and (type(stream) is not str or not stream))
        or type(pass_no) is not int
        or pass_no < 1
        or not (id_type is int or (id_type is str and record_id))
        or (ts is not None and type(ts) is not int)
        or type(key) is not str
        or not key
    ):
        return None
    if plan.key_column is None:
        if key != GLOBAL_KEY:
            return None
    else:
        raw_key = row.get(plan.key_column, _ABSENT)
        if raw_key is _ABSENT or key != str(raw_key):
            return None
    try:
        values = plan.values(row)
    except KeyError:
        return None
    if tuple(map(type, values)) != plan.types:
        return None
    if plan.categorical:
        if not all(values[i] for i in plan.categorical):
            return None
        # float(True) is 1.0: booleans convert like numbers.
        converted = [v if t is str else float(v) for v, t in zip(values, plan.types, strict=True)]
        numbers = [v for v in converted if type(v) is float]
    else:
        converted = numbers = list(map(float, values))
    total = sum(numbers)
    if total - total != 0.0:  # a NaN or an infinity somewhere (or a huge sum: checked path)
        return None
    # zip stops at the features: the last value is the target. Positional, in Example's field
    # order (id, key, x, y, ts, stream, pass_no): building a class with keywords costs a dict,
    # 0.54 vs 0.23 us, once per message.
    return Example(record_id, key, dict(zip(plan.features, converted, strict=False)), converted[-1], ts,
                   stream or "", pass_no)


def _meta_fast(plan: _Plan, record: dict[str, Any]) -> bool:
    """Whether id, key, ts, source, stream and pass are exactly as the producer writes them."""
    record_id = record.get("id")
    key = record.get("key")
    ts = record.get("ts")
    source = record.get("source")
    stream = record.get("stream")
    pass_no = record.get("pass", 1)
    id_type = type(record_id)
    return not (
        (source is not None and source != plan.name)
        or (stream is not None and (type(stream) is not str or not stream))
        or type(pass_no) is not int
        or pass_no < 1
        or not (id_type is int or (id_type is str and record_id))
        or (ts is not None and type(ts) is not int)
        or type(key) is not str
        or not key
    )


def _features_fast(plan: _Plan, record: dict[str, Any]) -> FeaturesRecord | None:
    """``_extract_fast`` for a ``features`` record (no target), else None (the checked path decides)."""
    row = record.get("row")
    if type(row) is not dict or not _meta_fast(plan, record):
        return None
    key = record["key"]
    if plan.key_column is None:
        if key != GLOBAL_KEY:
            return None
    else:
        raw_key = row.get(plan.key_column, _ABSENT)
        if raw_key is _ABSENT or key != str(raw_key):
            return None
    try:
        values = plan.feature_values(row)
    except KeyError:
        return None
    if tuple(map(type, values)) != plan.feature_types:
        return None
    if plan.categorical:
        if not all(values[i] for i in plan.categorical):
            return None
        converted = [v if t is str else float(v) for v, t in zip(values, plan.types, strict=False)]
        numbers = [v for v in converted if type(v) is float]
    else:
        converted = numbers = list(map(float, values))
    total = sum(numbers)
    if total - total != 0.0:
        return None
    return FeaturesRecord(id=record["id"], key=key, x=dict(zip(plan.features, converted, strict=True)),
                          ts=record.get("ts"), stream=record.get("stream") or "",
                          pass_no=record.get("pass", 1))


def _label_fast(plan: _Plan, record: dict[str, Any]) -> LabelRecord | None:
    target = record.get("target")
    if type(target) is not float or target - target != 0.0 or not _meta_fast(plan, record):
        return None
    return LabelRecord(id=record["id"], key=record["key"], y=target, ts=record.get("ts"),
                       stream=record.get("stream") or "")


def extract(dataset: Dataset, record: Mapping[str, Any],
            declared: Collection[str] | None = None) -> RawRecord:
    """Validate a decoded raw-topic record and return its typed record, by its ``kind``.

    No ``kind`` (or ``labelled``): an ``Example``; ``features``: a ``FeaturesRecord``; ``label``:
    a ``LabelRecord``. ``declared``: the data set names the log declares (``kappaml.catalog``),
    only to say why a record of another data set is refused."""
    # A parsed message is a dict: the exact type test first spares the ABC's isinstance check.
    kind = record.get("kind") if type(record) is dict or isinstance(record, Mapping) else None
    if kind is None or kind == LABELLED:
        # The common, valid record costs a few dict lookups; any doubt goes to the checked path.
        example = _extract_fast(_plan(dataset), record)
        return example if example is not None else _extract_checked(dataset, record, declared)
    if kind == FEATURES:
        fast = _features_fast(_plan(dataset), record) if type(record) is dict else None
        return fast if fast is not None else _features_checked(dataset, record, declared)
    if kind == LABEL:
        label = _label_fast(_plan(dataset), record) if type(record) is dict else None
        return label if label is not None else _label_checked(dataset, record, declared)
    raise InvalidRecord(f"unknown record kind (expected one of {LABELLED}, {FEATURES}, {LABEL})",
                        column="kind", value=kind)


def decode(dataset: Dataset, value: bytes | bytearray | memoryview | None,
           declared: Collection[str] | None = None) -> RawRecord:
    """Parse a raw-topic message value; any problem is an ``InvalidRecord``, never another error."""
    if type(value) is bytes:
        # orjson validates UTF-8 itself: one pass instead of decode() and then a parse. Any
        # failure is parsed again below, so the error message names the real problem.
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            pass
        else:
            return _extract_safely(dataset, data, declared)
    if value is None:
        raise InvalidRecord("empty message (tombstone)")
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecord(f"value is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        # orjson: 8x faster than json here, and strict (no NaN/Infinity tokens, 64-bit ints).
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        data = _non_finite(text)
        if data is None:
            raise InvalidRecord(f"value is not JSON: {exc}") from None
    return _extract_safely(dataset, data, declared)


def _non_finite(text: str) -> Any:
    """A value that is JSON but for NaN, Infinity or an overflowing number (Python's json writes
    them), parsed so the checks can say which field is not finite; None if it is not even that."""
    if "NaN" not in text and "Infinity" not in text and "e" not in text.lower():
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _extract_safely(dataset: Dataset, data: Any, declared: Collection[str] | None) -> RawRecord:
    try:
        return extract(dataset, data, declared)
    except InvalidRecord:
        raise
    except Exception as exc:  # a defensive net: decode's contract is InvalidRecord only
        raise InvalidRecord(f"unexpected record shape: {type(exc).__name__}: {exc}") from None
