"""Records of a declared data set: CSV text -> typed row -> raw-topic JSON -> ``Example``.

Two directions share one set of rules so the producer and the consumers cannot disagree:

* ``parse_row`` turns the text fields of one CSV row into typed values (the producer side);
  ``make_record`` / ``encode_record`` wrap them in the raw-topic value format.
* ``extract`` / ``decode`` validate a raw-topic value and return an ``Example`` (the processor
  and Spark replay side).

Every problem is an ``InvalidRecord`` carrying a precise reason (and, for CSV rows, the row,
column and offending value); no other exception escapes ``decode``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kappaml.dataset import GLOBAL_KEY, Dataset

__all__ = [
    "Example",
    "InvalidRecord",
    "RowParser",
    "decode",
    "encode_record",
    "extract",
    "make_record",
    "model_key",
    "parse_row",
]

# Python's float() also accepts "1_000", "nan", "infinity" and "0x..." (via int): a CSV number
# is the plain decimal notation only.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
# Offending values are echoed in error messages; bound them so a 1 MB field stays a log line.
_MAX_ECHO = 120


def _echo(value: Any) -> Any:
    if isinstance(value, str):
        # Surrogate escapes (undecodable bytes) must not break JSON encoders downstream.
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value if len(value) <= _MAX_ECHO else value[:_MAX_ECHO] + "..."
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return _echo(repr(value))


class InvalidRecord(ValueError):
    """A row or record that cannot become an ``Example``; ``reason`` says why.

    ``row``, ``column`` and ``value`` locate the problem when known (CSV rows: the 1-based row
    number, the column name, the offending text, shortened).
    """

    def __init__(
        self,
        reason: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: Any = None,
    ) -> None:
        self.reason = reason
        self.row = row
        self.column = column
        self.value = _echo(value)
        where = []
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + reason + (f" (value {self.value!r})" if value is not None else ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (the SSE ``invalid`` event and dead-letter payloads)."""
        return {"reason": self.reason, "row": self.row, "column": self.column, "value": self.value}


@dataclass(frozen=True)
class Example:
    """One labelled example for the key's model; ``x`` keys are the declared feature names, in order."""

    id: int | str
    key: str
    x: dict[str, float | str]
    y: float
    ts: int | None = None


# --------------------------------------------------------------------------- CSV text -> values


def _parse_number(text: str, column: str, row: int | None, what: str = "value") -> float:
    # Fast path for the common case; float() alone would also take "1_0", "nan" and non-ASCII digits.
    if text.isascii() and "_" not in text:
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if number - number == 0.0:  # finite
                return number
    stripped = text.strip()
    if not stripped:
        raise InvalidRecord(f"missing {what}", row=row, column=column, value=text)
    if _NUMBER.fullmatch(stripped) is None:
        lowered = stripped.lower().lstrip("+-")
        if lowered in ("nan", "inf", "infinity"):
            raise InvalidRecord(f"{what} is not finite", row=row, column=column, value=text)
        raise InvalidRecord(f"{what} is not a number", row=row, column=column, value=text)
    number = float(stripped)
    if not math.isfinite(number):
        raise InvalidRecord(f"{what} is out of range", row=row, column=column, value=text)
    return number


def _parse_bool(text: str, column: str, row: int | None) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    if not lowered:
        raise InvalidRecord("missing value", row=row, column=column, value=text)
    raise InvalidRecord("not a boolean (True/False/1/0)", row=row, column=column, value=text)


def _parse_text(text: str, column: str, row: int | None, what: str) -> str:
    stripped = text.strip()
    if not stripped:
        raise InvalidRecord(f"missing {what}", row=row, column=column, value=text)
    return stripped


def _parse_bool_fast(text: str, column: str, row: int | None, what: str) -> bool:
    flag = _BOOL_FAST.get(text)
    return flag if flag is not None else _parse_bool(text, column, row)


_BOOL_FAST = {"True": True, "False": False, "true": True, "false": False, "1": True, "0": False}
_CONVERTERS: dict[str, Any] = {"numeric": _parse_number, "boolean": _parse_bool_fast, "text": _parse_text}


class RowParser:
    """``parse_row`` for one data set, with the per-column work planned once (the producer's hot path)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        # (column, kind, what-it-is for messages) in the order of the typed row.
        plan: list[tuple[str, str, str]] = [
            (f.name, "text", "category") if f.kind == "categorical" else (f.name, f.kind, "value")
            for f in dataset.features
        ]
        plan.append((dataset.target, "numeric", "target"))
        plan += [(c, "text", w) for c, w in ((dataset.key, "key"), (dataset.id_column, "id")) if c]
        self.columns = tuple(c for c, _, _ in plan)
        self._plan = tuple((c, _CONVERTERS[kind], what) for c, kind, what in plan)

    def parse(self, fields: Mapping[str, str], row: int | None = None) -> dict[str, Any]:
        """Typed values of one CSV row, keyed by the declared columns (features, target, key, id)."""
        values: dict[str, Any] = {}
        for column, convert, what in self._plan:
            try:
                text = fields[column]
            except KeyError:
                reason = "missing target column" if what == "target" else "missing column"
                raise InvalidRecord(reason, row=row, column=column) from None
            values[column] = convert(text, column, row, what)
        return values

    def parse_fields(
        self, texts: list[str], positions: tuple[int, ...], row: int | None = None
    ) -> dict[str, Any]:
        """Like ``parse`` for a split CSV line; ``positions[i]`` is the field of ``self.columns[i]``."""
        return {
            column: convert(texts[pos], column, row, what)
            for (column, convert, what), pos in zip(self._plan, positions, strict=True)
        }


def parse_row(dataset: Dataset, fields: Mapping[str, str], row: int | None = None) -> dict[str, Any]:
    """Typed values of one CSV row, keyed by the declared columns in declaration order.

    ``fields`` maps column names to the row's text (columns the data set does not declare are
    ignored). Numeric features and the target become floats, booleans bools, categoricals,
    the key and the id column stripped non-empty strings.
    """
    return RowParser(dataset).parse(fields, row)



# --------------------------------------------------------------------------- values -> raw record


def model_key(dataset: Dataset, row: Mapping[str, Any]) -> str:
    """The model key of a typed row: its key column's value, or ``GLOBAL_KEY``."""
    return GLOBAL_KEY if dataset.key is None else str(row[dataset.key])


def make_record(
    dataset: Dataset, row_number: int, row: Mapping[str, Any], ts: int | None
) -> dict[str, Any]:
    """The raw-topic value (as a dict) of a typed row; the id is the id column's value or ``row_number``."""
    record_id: int | str = row_number if dataset.id_column is None else str(row[dataset.id_column])
    return {
        "id": record_id,
        "key": model_key(dataset, row),
        "ts": ts,
        "source": dataset.name,
        "row": dict(row),
    }


def encode_record(record: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN/inf are refused, they are never valid in a record."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


# --------------------------------------------------------------------------- raw record -> Example


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


def extract(dataset: Dataset, record: Mapping[str, Any]) -> Example:
    """Validate a decoded raw-topic record and return its ``Example``."""
    if not isinstance(record, Mapping):
        raise InvalidRecord("record is not a JSON object", value=type(record).__name__)
    missing = [f for f in ("id", "key", "row") if f not in record]
    if missing:
        raise InvalidRecord(f"record lacks field(s) {missing}")

    record_id = record["id"]
    if isinstance(record_id, bool) or not isinstance(record_id, (int, str)):
        raise InvalidRecord("id must be an integer or a string", column="id", value=record_id)
    if isinstance(record_id, str) and not record_id:
        raise InvalidRecord("id must not be empty", column="id", value=record_id)

    ts = record.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        raise InvalidRecord("ts must be integer milliseconds or null", column="ts", value=ts)

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

    if dataset.target not in row:
        raise InvalidRecord("missing target", column=dataset.target)
    y = _json_number(row[dataset.target], dataset.target, "target")
    return Example(id=record_id, key=key, x=x, y=y, ts=ts)


def decode(dataset: Dataset, value: bytes | bytearray | memoryview | None) -> Example:
    """Parse a raw-topic message value; any problem is an ``InvalidRecord``, never another error."""
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
        raise InvalidRecord(f"value is not JSON: {exc}") from None
    try:
        return extract(dataset, data)
    except InvalidRecord:
        raise
    except Exception as exc:  # a defensive net: decode's contract is InvalidRecord only
        raise InvalidRecord(f"unexpected record shape: {type(exc).__name__}: {exc}") from None
